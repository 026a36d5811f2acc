/**
 * Differential test against the machine's binutils: every ELF under /usr/lib and /usr/bin
 * (a deterministic sample of 150 files up to 16 MiB by default; all of them with
 * CKIMG_FULL_SWEEP=1; those matching the regex CKIMG_SWEEP_FILTER) must read exactly as readelf -W (symbols with versions, dynamic
 * entries, relocations, notes) and objdump -d (PLT labels) show it.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseElf } from "../../src/elf/index.js";
import { compareDynamic, compareNotes, comparePlt, compareRelocs, compareSymbols, loadElf } from "./compare.js";
import { findElfFiles, hasTool, sample } from "./oracle.js";

const full = process.env.CKIMG_FULL_SWEEP === "1";
const tools = hasTool("readelf") && hasTool("objdump");
const all = tools ? findElfFiles(["/usr/lib", "/usr/bin"]) : [];
const only = process.env.CKIMG_SWEEP_FILTER ? new RegExp(process.env.CKIMG_SWEEP_FILTER) : undefined;
const files = only ? all.filter((f) => only.test(f)) : full ? all : sample(all, 150, 16 << 20);

describe.skipIf(!tools)(`ELF files of this machine vs readelf/objdump (${files.length} of ${all.length}${full ? ", full sweep" : ", sample"})`, () => {
  it("finds ELF files to compare", () => {
    expect(files.length).toBeGreaterThan(only ? 0 : 20);
  });
  for (const file of files) {
    it(file, () => {
      const elf = parseElf(loadElf(file), { file });
      const diffs = [
        ...compareSymbols(elf, file),
        ...compareDynamic(elf, file),
        ...compareRelocs(elf, file),
        ...compareNotes(elf, file),
        ...comparePlt(elf, file),
      ];
      expect(diffs).toEqual([]);
    });
  }
});

/** The committed corpus (big-endian AArch64, MIPS, i386, cores, odd layouts) against the same oracles. */
const CORPUS_FILES = [
  "pyelftools-aarch64_be_gnu_hash.so.elf", "pyelftools-android_dyntags.so.elf", "pyelftools-core_linux32.elf",
  "pyelftools-core_linux64.elf", "pyelftools-debuglink", "pyelftools-lib_relro.so.elf", "pyelftools-simple_mipsel.elf",
  "pyelftools-unicode_symbols.elf", "pyelftools-note_with_segment_padding.elf", "pyelftools-x64_bad_sections.elf",
  "ckimg-ibt-now-relr", "ckimg-m32-pie", "ckimg-libv.so",
];

describe.skipIf(!tools)("corpus/elf vs readelf/objdump", () => {
  for (const name of CORPUS_FILES) {
    it(name, () => {
      const file = join(__dirname, "../../corpus/elf", name);
      const elf = parseElf(loadElf(file), { file });
      expect([...compareSymbols(elf, file), ...compareDynamic(elf, file), ...compareRelocs(elf, file), ...compareNotes(elf, file), ...comparePlt(elf, file)]).toEqual([]);
    });
  }
});
