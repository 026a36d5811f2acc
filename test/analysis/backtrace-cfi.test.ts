/**
 * Differential test of the .eh_frame reader: for every row of every FDE that `readelf -wF`
 * (binutils' interpreted CFI table) prints, the row our interpreter builds at that location has
 * the same CFA rule, the same return-address rule and the same saved-register offsets.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseElf } from "../../src/elf/index.js";
import { EhFrame, type CfaRow } from "../../src/analysis/index.js";

const DWARF: Record<string, number> = {
  rax: 0, rdx: 1, rcx: 2, rbx: 3, rsi: 4, rdi: 5, rbp: 6, rsp: 7, r8: 8, r9: 9, r10: 10, r11: 11, r12: 12, r13: 13, r14: 14, r15: 15, ra: 16, rip: 16,
};

interface OracleRow { loc: bigint; cfa: string; cols: Map<string, string> }

/** readelf -wF → rows per FDE (FDEs without rows take their CIE's initial row). */
function oracle(path: string): OracleRow[] {
  // readelf exits 1 on some files (e.g. libc: no debuglink target) yet prints the whole table.
  const text = spawnSync("readelf", ["-wF", path], { encoding: "utf8", maxBuffer: 1 << 28 }).stdout;
  const cieRows = new Map<string, { cfa: string; cols: Map<string, string> }>();
  const out: OracleRow[] = [];
  let kind: "cie" | "fde" | undefined, cieOff = "", fdeCie = "", fdeBegin = 0n, cols: string[] = [], fdeRows = 0;
  const finishFde = () => {
    if (kind === "fde" && fdeRows === 0) {
      const c = cieRows.get(fdeCie);
      if (c) out.push({ loc: fdeBegin, cfa: c.cfa, cols: c.cols });
    }
  };
  for (const line of text.split("\n")) {
    let m;
    if ((m = /^([0-9a-f]+) [0-9a-f]+ [0-9a-f]+ CIE/.exec(line))) {
      finishFde();
      kind = "cie";
      cieOff = m[1];
    } else if ((m = /^[0-9a-f]+ [0-9a-f]+ [0-9a-f]+ FDE cie=([0-9a-f]+) pc=([0-9a-f]+)\.\./.exec(line))) {
      finishFde();
      kind = "fde";
      fdeCie = m[1];
      fdeBegin = BigInt("0x" + m[2]);
      fdeRows = 0;
    } else if (/^\s+LOC\s+CFA/.test(line)) {
      cols = line.trim().split(/\s+/).slice(2);
    } else if ((m = /^([0-9a-f]{16}) (\S+)\s+(.*)$/.exec(line)) && kind) {
      // A register rule prints as "r9 (r9)": one value.
      const vals = m[3].trim().replace(/\b(r\d+) \(\w+\)/g, "$1").split(/\s+/);
      const row = { cfa: m[2], cols: new Map(cols.map((c, i) => [c, vals[i]])) };
      if (kind === "cie") {
        if (!cieRows.has(cieOff)) cieRows.set(cieOff, row);
      } else {
        out.push({ loc: BigInt("0x" + m[1]), ...row });
        fdeRows++;
      }
    }
  }
  finishFde();
  return out;
}

function cfaText(r: CfaRow): string {
  if ("expr" in r.cfa) return "exp";
  const name = Object.keys(DWARF).find((k) => DWARF[k] === (r.cfa as { reg: number }).reg) ?? `r${(r.cfa as { reg: number }).reg}`;
  return `${name}+${r.cfa.offset}`;
}

function ruleText(r: CfaRow, reg: number): string {
  const rule = r.regs.get(reg);
  if (!rule || rule.kind === "undefined") return "u";
  switch (rule.kind) {
    case "offset": return `c${rule.offset >= 0n ? "+" : ""}${rule.offset}`;
    case "val_offset": return `v${rule.offset >= 0n ? "+" : ""}${rule.offset}`;
    case "same": return "s";
    case "register": return `r${rule.reg}`;
    case "expression": return "exp";
    case "val_expression": return "vexp";
  }
}

const FILES = ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/usr/bin/perl", "/usr/bin/python3.11", "/usr/bin/bash"];

describe("EhFrame vs readelf -wF", () => {
  for (const path of FILES) {
    it(path, () => {
      const eh = EhFrame.fromElf(parseElf(readFileSync(path), { file: path }))!;
      expect(eh).toBeDefined();
      const rows = oracle(path);
      expect(rows.length).toBeGreaterThan(100);
      const bad: string[] = [];
      for (const o of rows) {
        const r = eh.rowAt(o.loc);
        if (!r) {
          bad.push(`0x${o.loc.toString(16)}: no row`);
          continue;
        }
        if (cfaText(r) !== o.cfa) bad.push(`0x${o.loc.toString(16)}: CFA ${cfaText(r)} != ${o.cfa}`);
        for (const [col, want] of o.cols) {
          const reg = DWARF[col];
          if (reg === undefined) continue;
          const got = reg === 16 ? ruleText(r, r.raReg) : ruleText(r, reg);
          // readelf prints "u" for registers with no rule, and "s" only when stated.
          if (got !== want && !(want === "u" && got === "s")) bad.push(`0x${o.loc.toString(16)}: ${col} ${got} != ${want}`);
        }
      }
      expect(bad.slice(0, 10)).toEqual([]);
    });
  }
});
