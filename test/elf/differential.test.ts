/**
 * Differential test against the machine's binutils: every ELF under /usr/lib and /usr/bin
 * (a deterministic sample of 150 files up to 16 MiB by default; all of them with
 * CKIMG_FULL_SWEEP=1; those matching the regex CKIMG_SWEEP_FILTER) must read exactly as readelf -W (symbols with versions, dynamic
 * entries, relocations, notes) and objdump -d (PLT labels) show it.
 */
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
