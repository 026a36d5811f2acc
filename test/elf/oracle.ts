/**
 * Oracles: run the machine's binutils (readelf -W, objdump -d) and parse their text into
 * plain records to compare with the library. Parsers are deliberately small and strict:
 * a line they do not understand is reported, not skipped silently.
 */
import { execFileSync } from "node:child_process";
import { closeSync, openSync, readSync, readdirSync, statSync, lstatSync } from "node:fs";
import { join } from "node:path";

export function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "latin1", maxBuffer: 1 << 30, stdio: ["ignore", "pipe", "ignore"], env: { ...process.env, LC_ALL: "C" } });
  } catch (e) {
    // readelf exits 1 after warnings but still prints what it could.
    const out = (e as { stdout?: string }).stdout;
    if (typeof out === "string") return out;
    throw e;
  }
}

export function hasTool(cmd: string): boolean {
  try {
    execFileSync(cmd, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export interface ReadelfSymbol {
  table: string;
  index: number;
  value: bigint;
  size: bigint;
  type: string;
  bind: string;
  vis: string;
  ndx: string;
  /** Name including readelf's version suffix ("@@VER", "@VER", "@VER (n)"). */
  name: string;
}

/** readelf -Ws (both .dynsym and .symtab). */
export function readelfSymbols(text: string): ReadelfSymbol[] {
  const out: ReadelfSymbol[] = [];
  let table = "";
  const re = /^\s*(\d+): ([0-9a-f]+) +(\d+|0x[0-9a-f]+) (\S+(?: specific>: \d+|>: \d+)?) +(\S+(?: specific>: \d+|>: \d+)?) +(\S+)(?: \[[^\]]*\])? +(UND|ABS|COM|LARGE_COM|\d+|PRC\[0x[0-9a-f]+\]|OS \[0x[0-9a-f]+\]|RSV\[0x[0-9a-f]+\]) ?(.*)$/;
  for (const line of text.split("\n")) {
    const h = /^Symbol table '([^']*)'/.exec(line);
    if (h) {
      table = h[1];
      continue;
    }
    const m = re.exec(line);
    if (!m || !table) continue;
    out.push({
      table, index: Number(m[1]), value: BigInt("0x" + m[2]), size: BigInt(m[3]), type: m[4], bind: m[5], vis: m[6], ndx: m[7], name: m[8],
    });
  }
  return out;
}

export interface ReadelfDynamic {
  tag: bigint;
  name: string;
  text: string;
}

export function readelfDynamic(text: string): ReadelfDynamic[] {
  const out: ReadelfDynamic[] = [];
  for (const line of text.split("\n")) {
    const m = /^ 0x([0-9a-f]+) \((.*?)\) +(.*)$/.exec(line);
    if (m) out.push({ tag: BigInt("0x" + m[1]), name: m[2], text: m[3].trimEnd() });
  }
  return out;
}

export interface ReadelfReloc {
  section: string;
  offset: bigint;
  info: bigint;
  type: string;
  /** Symbol name as readelf prints it (with "@VER"), "" when none. */
  symbol: string;
  /** Addend as readelf prints it (RELA only): signed. */
  addend?: bigint;
}

export interface ReadelfRelocs {
  relocs: ReadelfReloc[];
  /** RELR sections: name → offsets count. */
  relr: Map<string, number>;
}

export function readelfRelocs(text: string): ReadelfRelocs {
  const relocs: ReadelfReloc[] = [];
  const relr = new Map<string, number>();
  let section = "";
  let isRelr = false;
  for (const line of text.split("\n")) {
    const h = /^Relocation section '([^']*)' at offset/.exec(line);
    if (h) {
      section = h[1];
      isRelr = false;
      continue;
    }
    const r = /^ +(\d+) offsets?$/.exec(line);
    if (r && section) {
      relr.set(section, Number(r[1]));
      isRelr = true;
      continue;
    }
    if (isRelr || !section) continue;
    const m = /^([0-9a-f]{8,16}) +([0-9a-f]{8,16}) (\S+) *(.*)$/.exec(line);
    if (!m) continue;
    // Quirk: readelf shows a relocation against an IFUNC symbol as "name()" in the value column.
    const rest = m[4].trimEnd().replace(/^\S+\(\) +/, "0000000000000000 ");
    let symbol = "";
    let addend: bigint | undefined;
    const withSym = /^([0-9a-f]{8,16}) +(.*?)(?: ([+-]) ([0-9a-f]+))?$/.exec(rest);
    if (withSym && rest.includes(" ")) {
      symbol = withSym[2];
      if (withSym[3]) addend = (withSym[3] === "-" ? -1n : 1n) * BigInt("0x" + withSym[4]);
    } else if (/^[0-9a-f]+$/.test(rest)) {
      addend = BigInt("0x" + rest);
    } else if (rest !== "") {
      symbol = rest;
    }
    relocs.push({ section, offset: BigInt("0x" + m[1]), info: BigInt("0x" + m[2]), type: m[3], symbol, addend });
  }
  return { relocs, relr };
}

export interface ReadelfNote {
  section: string;
  owner: string;
  size: number;
  type: string;
  description: string;
}

export function readelfNotes(text: string): ReadelfNote[] {
  const out: ReadelfNote[] = [];
  let section = "";
  for (const line of text.split("\n")) {
    const h = /^Displaying notes found in: (.*)$/.exec(line) ?? /^Displaying notes found at file offset/.exec(line);
    if (h) {
      section = h[1] ?? "PT_NOTE";
      continue;
    }
    const m = /^  (\S.*?) +0x([0-9a-f]{8})\t(.*?)(?:\t\s*(.*))?$/.exec(line);
    if (m && section) out.push({ section, owner: m[1], size: parseInt(m[2], 16), type: m[3].trim(), description: (m[4] ?? "").trim() });
  }
  return out;
}

/** objdump -d's `name@plt` labels in the PLT sections: address → name (without "@plt"). */
export function objdumpPltLabels(file: string, sections: string[]): Map<bigint, string> {
  const out = new Map<bigint, string>();
  if (sections.length === 0) return out;
  const args = ["-d", "-w"];
  for (const s of sections) args.push("-j", s);
  const text = run("objdump", [...args, file]);
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+) <(.*)@plt>:$/.exec(line);
    if (m) out.set(BigInt("0x" + m[1]), m[2]);
  }
  return out;
}

/** Regular ELF files under the given roots (no symlinks), sorted. */
export function findElfFiles(roots: string[], maxFiles = Infinity): string[] {
  const out: string[] = [];
  const head = new Uint8Array(4);
  const walk = (dir: string, depth: number): void => {
    if (out.length >= maxFiles || depth > 12) return;
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dir, n);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p, depth + 1);
      else if (st.isFile() && st.size >= 64) {
        try {
          const fd = openSync(p, "r");
          readSync(fd, head, 0, 4, 0);
          closeSync(fd);
        } catch {
          continue;
        }
        if (head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) out.push(p);
      }
    }
  };
  for (const r of roots) walk(r, 0);
  return out.sort();
}

/** A deterministic sample of `n` files, spread over the sorted list, within a size budget each. */
export function sample(files: string[], n: number, maxBytes: number): string[] {
  const small = files.filter((f) => statSync(f).size <= maxBytes);
  if (small.length <= n) return small;
  const out: string[] = [];
  const step = small.length / n;
  for (let i = 0; i < n; i++) out.push(small[Math.floor(i * step)]);
  return out;
}
