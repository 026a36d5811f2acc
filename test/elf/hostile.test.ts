/**
 * Hostile input: random truncation and corruption of the corpus ELFs must end in a result or
 * an ElfError, never another exception (TypeError, RangeError...). Every public reader is
 * exercised on each mutant, including the CLI's renderers and the in-memory path. Loops and
 * allocations are bounded by design (counts × entsize are checked against the data first);
 * fast-check shrinks any failure to a minimal mutation, to be kept as a regression below.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ElfError, abiTagOf, auxvOf, buildSymbolIndex, gotSlots, mappedFilesOf, parseElf, parseLoadedElf, pltStubs,
  prpsinfoOf, prstatusOf, raw, readerFromSegments, xstateOf, gnuPropertiesOf,
} from "../../src/elf/index.js";
import { renderElf } from "../../src/cli/elf.js";

const CORPUS = join(__dirname, "../../corpus/elf");
const files = readdirSync(CORPUS).filter((f) => !f.endsWith(".md")).sort();
const blobs = files.map((f) => new Uint8Array(readFileSync(join(CORPUS, f))));

const CAP = 3000;

/** Touch everything a caller could ask for; return a small digest so nothing is optimized away. */
export function exercise(data: Uint8Array): number {
  let n = 0;
  const elf = parseElf(data, { file: "mutant" });
  n += elf.numSections + elf.segments.length;
  for (const s of elf.sections) n += s.name.length + s.typeName.length;
  for (const t of elf.symbolTables()) {
    for (let i = 0; i < Math.min(t.count, CAP); i++) {
      const s = t.symbol(i);
      n += s.name.length + (s.version?.length ?? 0);
    }
    if (t.count > 1) n += t.lookup(t.name(t.count - 1)) ? 1 : 0;
  }
  const d = elf.dynamic;
  if (d) {
    n += d.needed.length + (d.soname?.length ?? 0) + (d.bindNow ? 1 : 0);
    n += d.symbols?.count ?? 0;
    n += (d.rela?.count ?? 0) + (d.jmprel?.count ?? 0) + d.relr.length;
  }
  for (const r of elf.relocationSections()) {
    if (r.table) for (let i = 0; i < Math.min(r.table.count, CAP); i++) n += r.table.get(i).type;
    n += r.relr?.length ?? 0;
  }
  for (const g of elf.notes()) {
    for (const note of g.notes) {
      n += note.desc.length;
      if (note.owner === "GNU" && note.type === raw.NT_GNU_ABI_TAG) n += abiTagOf(note, elf.littleEndian)?.abi[0] ?? 0;
      if (note.owner === "GNU" && note.type === raw.NT_GNU_PROPERTY_TYPE_0) n += gnuPropertiesOf(note, elf.is64, elf.littleEndian, elf.machine).length;
      if (note.owner === "CORE" && note.type === raw.NT_PRSTATUS) n += prstatusOf(note, elf.machine, elf.littleEndian)?.pid ?? 0;
      if (note.owner === "CORE" && note.type === raw.NT_PRPSINFO) n += prpsinfoOf(note, elf.machine, elf.littleEndian)?.pid ?? 0;
      if (note.owner === "CORE" && note.type === raw.NT_FILE) n += mappedFilesOf(note, elf.is64, elf.littleEndian).length;
      if (note.owner === "CORE" && note.type === raw.NT_AUXV) n += auxvOf(note, elf.is64, elf.littleEndian).length;
      if (note.owner === "LINUX" && note.type === raw.NT_X86_XSTATE) n += xstateOf(note, elf.littleEndian)?.size ?? 0;
    }
  }
  n += (elf.buildId?.length ?? 0) + (elf.interp?.length ?? 0) + (elf.debugLink?.crc ?? 0) + (elf.cet.ibt ? 1 : 0);
  n += pltStubs(elf).length + gotSlots(elf).length;
  const idx = buildSymbolIndex([...(elf.symtab ?? [])].slice(0, CAP));
  n += idx.lookup(elf.header.entry) ? 1 : 0;
  for (const sub of [undefined, "syms", "plt", "dynamic", "relocs", "notes"]) {
    const out = renderElf(sub, elf, "mutant", true);
    n += out.length;
  }
  const load = elf.segments.find((s) => s.type === raw.PT_LOAD);
  if (load) {
    const bias = elf.header.type === raw.ET_DYN ? 0x7f0000000000n : 0n;
    const loaded = parseLoadedElf(readerFromSegments(data, elf.segments, bias), load.vaddr - load.offset + bias);
    n += loaded.needed.length + (loaded.dynsym?.count ?? 0);
  }
  return n;
}

/** Run `f`; pass if it returns or throws ElfError, rethrow anything else. */
function survives(data: Uint8Array): boolean {
  try {
    exercise(data);
  } catch (e) {
    if (e instanceof ElfError) {
      expect(typeof e.code).toBe("string");
      expect(e.detail.length).toBeGreaterThan(0);
      expect(typeof e.offset === "number" || typeof e.offset === "bigint").toBe(true);
      return true;
    }
    throw e;
  }
  return true;
}

const WORDS = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0xffffffff];

/** A mutation: byte flips anywhere, header-biased word overwrites, and truncation. */
const mutation = fc.record({
  file: fc.nat({ max: files.length - 1 }),
  flips: fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }),
  words: fc.array(fc.tuple(fc.nat({ max: 4095 }), fc.constantFrom(...WORDS), fc.boolean()), { maxLength: 6 }),
  cut: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { freq: 3 }),
});

function apply(m: { file: number; flips: [number, number][]; words: [number, number, boolean][]; cut: number | null }): Uint8Array {
  const src = blobs[m.file];
  const b = new Uint8Array(src);
  for (const [pos, val] of m.flips) b[Math.min(b.length - 1, Math.floor(pos * b.length))] = val;
  const dv = new DataView(b.buffer);
  // Header, program and section header tables live in the first 4 KiB or at e_shoff: hit both.
  const shoff = b.length >= 48 ? Number(b[4] === 2 ? dv.getUint32(40, true) : dv.getUint32(32, true)) : 0;
  for (const [pos, val, atSh] of m.words) {
    const at = (atSh && shoff > 0 && shoff < b.length ? shoff : 0) + pos;
    if (at + 4 <= b.length) dv.setUint32(at, val, true);
  }
  return m.cut === null ? b : b.subarray(0, Math.floor(m.cut * b.length));
}

describe("hostile ELF input", () => {
  it("has a corpus to mutate", () => {
    expect(files.length).toBeGreaterThanOrEqual(8);
  });

  for (const [i, f] of files.entries()) {
    it(`${f}: unmodified reads or fails with ElfError`, () => {
      expect(survives(blobs[i])).toBe(true);
    });
  }

  it("random corruption and truncation: a result or ElfError, nothing else", () => {
    fc.assert(fc.property(mutation, (m) => survives(apply(m))), { numRuns: Number(process.env.CKIMG_FUZZ_RUNS ?? 400), seed: Number(process.env.CKIMG_FUZZ_SEED ?? 4242) });
  });

  it("every truncation of a small ELF header region fails cleanly", () => {
    const b = blobs[files.indexOf("ckimg-libv.so")];
    for (let n = 0; n < 4096; n += 7) expect(survives(b.subarray(0, n))).toBe(true);
  });

  it("short, empty and non-ELF inputs give the right codes", () => {
    const code = (d: Uint8Array) => {
      try {
        parseElf(d);
        return "ok";
      } catch (e) {
        return (e as ElfError).code;
      }
    };
    expect(code(new Uint8Array(0))).toBe("ELF_TRUNCATED");
    expect(code(new TextEncoder().encode("#!/bin/sh\necho hello world\n"))).toBe("ELF_BAD_MAGIC");
    const bad = new Uint8Array(blobs[0]);
    bad[4] = 3;
    expect(code(bad)).toBe("ELF_BAD_CLASS");
    bad[4] = 2;
    bad[5] = 0;
    expect(code(bad)).toBe("ELF_BAD_DATA");
  });

  it("a dynamic symbol count in the billions is refused before allocating", () => {
    // DT_HASH with nchain = 0x7fffffff: the count is checked against the data.
    const b = new Uint8Array(blobs[files.indexOf("ckimg-libv.so")]);
    const elf = parseElf(b);
    const g = elf.sections.find((s) => s.type === raw.SHT_GNU_HASH)!;
    new DataView(b.buffer).setUint32(Number(g.offset) + 4, 0x7fffffff, true); // symoffset
    expect(survives(b)).toBe(true);
  });
});
