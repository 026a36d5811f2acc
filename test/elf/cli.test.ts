/**
 * `ckimg elf`: the pure renderers and the verb's exit codes and trouble lines, called without
 * spawning a process.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ELF_VERB, readForSymbols, renderElf, symbolRows, symbolsJson } from "../../src/cli/elf.js";
import { formatTrouble, type CliContext } from "../../src/cli/common.js";
import { parseElf } from "../../src/elf/index.js";

const CORPUS = join(__dirname, "../../corpus/elf");

function ctx(): CliContext & { out: string; err: string } {
  const c = { out: "", err: "", stderrIsTty: false, stdout: (s: string) => void (c.out += s), stderr: (s: string) => void (c.err += s) };
  return c;
}

describe("ckimg elf", () => {
  it("syms --json: the byte-built JSON parses and equals the object rows, for every corpus file", () => {
    for (const f of ["ckimg-libv.so", "ckimg-m32-pie", "pyelftools-unicode_symbols.elf", "pyelftools-aarch64_be_gnu_hash.so.elf", "pyelftools-simple_mipsel.elf"]) {
      const elf = parseElf(new Uint8Array(readFileSync(join(CORPUS, f))));
      const json = JSON.parse(new TextDecoder().decode(symbolsJson(elf)));
      expect(json).toEqual(JSON.parse(JSON.stringify(symbolRows(elf))));
      expect(json.length).toBe(elf.symbolTables().reduce((n, t) => n + t.count, 0));
    }
  });

  it("syms --json shape: table, name, version only when versioned, hex value, numeric size", () => {
    const elf = parseElf(new Uint8Array(readFileSync(join(CORPUS, "ckimg-libv.so"))));
    const rows = JSON.parse(new TextDecoder().decode(symbolsJson(elf))) as Record<string, unknown>[];
    const foo = rows.filter((r) => r.name === "foo");
    expect(foo.map((r) => r.version).sort()).toEqual(["V1", "V2"]);
    expect(Object.keys(foo[0])).toEqual(["table", "name", "version", "value", "size", "type", "bind", "visibility", "section"]);
    expect(foo[0].value).toMatch(/^0x[0-9a-f]+$/);
    expect(typeof foo[0].size).toBe("number");
    expect(rows.find((r) => r.name === "")).not.toHaveProperty("version");
  });

  it("readForSymbols reads only what symbols need, and gives the same answer as a full read", () => {
    const file = join(CORPUS, "ckimg-ibt-now-relr");
    const sparse = parseElf(readForSymbols(file));
    const full = parseElf(new Uint8Array(readFileSync(file)));
    expect(symbolsJson(sparse)).toEqual(symbolsJson(full));
  });

  it("plt --json lists objdump-style names with their GOT slots", () => {
    const elf = parseElf(new Uint8Array(readFileSync(join(CORPUS, "ckimg-ibt-now-relr"))));
    const rows = JSON.parse(renderElf("plt", elf, "x", true) as string);
    expect(rows.map((r: { name: string }) => r.name)).toEqual(expect.arrayContaining(["puts", "printf", "free"]));
    for (const r of rows) {
      expect(r.address).toMatch(/^0x[0-9a-f]+$/);
      expect(r.got).toMatch(/^0x[0-9a-f]+$/);
    }
  });

  it("dynamic, relocs and notes render as JSON and as text", () => {
    const elf = parseElf(new Uint8Array(readFileSync(join(CORPUS, "ckimg-ibt-now-relr"))));
    const dyn = JSON.parse(renderElf("dynamic", elf, "x", true) as string);
    expect(dyn.find((r: { tag: string }) => r.tag === "NEEDED").text).toBe("libc.so.6");
    expect(dyn.find((r: { tag: string }) => r.tag === "FLAGS_1").text).toContain("NOW");
    const rel = JSON.parse(renderElf("relocs", elf, "x", true) as string);
    expect(rel.some((r: { type: string }) => r.type === "RELR")).toBe(true);
    expect(rel.find((r: { symbol?: string }) => r.symbol === "puts").version).toBe("GLIBC_2.2.5");
    const notes = JSON.parse(renderElf("notes", elf, "x", true) as string);
    expect(notes.find((n: { type: string }) => n.type.startsWith("NT_GNU_PROPERTY")).description).toContain("IBT");
    expect(renderElf(undefined, elf, "x", false)).toContain("bind now:   yes");
    expect(renderElf("relocs", elf, "x", false)).toContain("R_X86_64_JUMP_SLOT");
  });

  it("exit 0 and output through the context", async () => {
    const c = ctx();
    expect(await ELF_VERB.run(["plt", join(CORPUS, "ckimg-m32-pie")], c)).toBe(0);
    expect(c.out).toContain("puts@plt");
    const j = ctx();
    expect(await ELF_VERB.run(["syms", join(CORPUS, "ckimg-m32-pie"), "--json"], j)).toBe(0);
    expect(JSON.parse(j.out).length).toBeGreaterThan(10);
  });

  it("trouble: a truncated file is an ElfError with file, detail and offset for formatTrouble", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ckimg-elf-cli-"));
    try {
      const path = join(dir, "cut.so");
      writeFileSync(path, readFileSync(join(CORPUS, "ckimg-libv.so")).subarray(0, 3000));
      let err: unknown;
      try {
        await ELF_VERB.run(["syms", path, "--json"], ctx());
      } catch (e) {
        err = e;
      }
      expect(formatTrouble(err)).toMatch(new RegExp(`^ckimg: ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: section header table .* at offset \\d+$`));
      await expect(ELF_VERB.run(["bogus", path], ctx())).rejects.toThrow(/expected/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the built CLI exits 2 with the trouble line for a non-ELF file", () => {
    let status = 0;
    let stderr = "";
    try {
      execFileSync(process.execPath, [join(__dirname, "../../bin/ckimg"), "elf", join(CORPUS, "README.md")], { stdio: "pipe" });
    } catch (e) {
      status = (e as { status: number }).status;
      stderr = String((e as { stderr: Buffer }).stderr);
    }
    expect(status).toBe(2);
    expect(stderr).toMatch(/^ckimg: .*README\.md: not an ELF file: bad magic \(expected \\x7fELF\) at offset 0\n$/);
  });
});
