/**
 * elfy (named by the user) as an oracle for what it reads correctly: ELF header fields,
 * program headers and section names/offsets/sizes of ordinary 64-bit ELFs. Where elfy is
 * wrong the test pins the known elfy bug instead of accepting any difference, so a change in
 * either reader shows up. Bugs pinned here are why src/elf is our own reader (README).
 */
import { describe, expect, test } from "vitest";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { parseElf } from "../../src/elf/index.js";

const elfy = createRequire(import.meta.url)("elfy") as { parse(b: Buffer): any };

function sampleElfs(dir: string, count: number): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = `${dir}/${name}`;
    try {
      const st = statSync(p);
      if (!st.isFile() || st.size < 64 || st.size > 8 << 20) continue;
      const head = readFileSync(p).subarray(0, 5);
      if (head[0] === 0x7f && head[1] === 0x45 && head[4] === 2) out.push(p);
    } catch {}
    if (out.length >= count) break;
  }
  return out;
}

const files = sampleElfs("/usr/bin", 40);

describe("elfy agrees with our reader where elfy is right", () => {
  test.each(files)("%s", (path) => {
    const data = readFileSync(path);
    const ours = parseElf(new Uint8Array(data), { file: path });
    const theirs = elfy.parse(data);
    const h = ours.header;
    expect(theirs.entry).toBe(Number(h.entry));
    expect([theirs.phoff, theirs.shoff]).toEqual([Number(h.phoff), Number(h.shoff)]);
    expect([theirs.phnum, theirs.shnum, theirs.shstrndx]).toEqual([h.phnum, h.shnum, h.shstrndx]);
    expect(theirs.body.programs.map((p: any) => [p.offset, p.vaddr, p.filesz, p.memsz, p.align])).toEqual(
      ours.segments.map((s) => [s.offset, s.vaddr, s.filesz, s.memsz, s.align].map(Number)),
    );
    expect(theirs.body.sections.map((s: any) => s.name)).toEqual(ours.sections.map((s) => s.name));
    expect(theirs.body.sections.map((s: any) => [s.off, s.size])).toEqual(ours.sections.map((s) => [Number(s.offset), Number(s.size)]));
  });
});

describe("known elfy bugs (why it is only an oracle)", () => {
  test("EI_OSABI 0 (System V) is reported as 'hpux'", () => {
    const data = readFileSync(files[0]);
    expect(parseElf(new Uint8Array(data)).header.osabi).toBe(0);
    expect(elfy.parse(data).osabi).toBe("hpux");
  });

  test("an ELF without section headers (as read back from memory) makes elfy throw a TypeError", () => {
    const data = Buffer.from(readFileSync(files[0]));
    // e_shoff = 0, e_shnum = 0, e_shstrndx = 0: what a loaded image or a core file looks like.
    data.writeBigUInt64LE(0n, 0x28);
    data.writeUInt16LE(0, 0x3c);
    data.writeUInt16LE(0, 0x3e);
    expect(() => elfy.parse(data)).toThrow(TypeError);
    const ours = parseElf(new Uint8Array(data));
    expect(ours.sections).toHaveLength(0);
    expect(ours.segments.length).toBeGreaterThan(0);
  });
});
