/**
 * ckimg's ELF reader: lazy, zero-copy views over one Uint8Array; ELF32/ELF64, both endians;
 * symbols with versions, hash lookup, dynamic section, relocations (REL/RELA/RELR), notes
 * (incl. core notes and GNU properties), PLT/GOT naming as objdump does, address → symbol,
 * and images read back from process memory without section headers.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { parseElf, pltStubs, buildSymbolIndex, ElfError } from "ckimg/elf";
 *
 * try {
 *   const elf = parseElf(readFileSync("/bin/true"), { file: "/bin/true" });
 *   console.log(elf.typeName, elf.interp, elf.needed, elf.buildId);
 *   for (const stub of pltStubs(elf)) console.log(stub.address.toString(16), stub.name);
 *   const index = buildSymbolIndex(elf.dynsym ?? []);
 *   const hit = index.lookup(elf.header.entry);
 *   console.log(hit ? `${hit.symbol.name}+${hit.offset}` : "no symbol");
 * } catch (e) {
 *   if (e instanceof ElfError) console.error(`${e.file}: ${e.detail} at offset ${e.offset} (${e.code})`);
 *   else throw e;
 * }
 * ```
 */
export { ElfError, MAX_ENTRIES } from "./errors.js";
export type { ElfErrorCode } from "./errors.js";
export { parseElf, ElfFile, readHeader } from "./file.js";
export type { ElfHeader, ParseOptions, RelocationSection, NoteGroup } from "./file.js";
export { Section } from "./section.js";
export { Segment } from "./segment.js";
export { StringTable, decodeString } from "./strtab.js";
export { SymbolTable, symbolTypeName, symbolBindName, symbolVisibilityName, sectionIndexText, versionedName } from "./symbol.js";
export type { ElfSymbol, SymbolTableKind } from "./symbol.js";
export { VersionTable } from "./version.js";
export type { SymbolVersion, VersionDefinition, VersionRequirement } from "./version.js";
export { GnuHashTable, SysvHashTable, elfHash, gnuHash } from "./hash.js";
export { DynamicTables, dynamicTagName, flagsText, readDynamicEntries, STRING_TAGS } from "./dynamic.js";
export { dynamicRelocationTables } from "./dynamic.js";
export type { DynamicEntry, AddressSpace, DynamicRelocationTable } from "./dynamic.js";
export { RelocationTable, decodeRelr, relocationTypeName } from "./relocation.js";
export type { Relocation } from "./relocation.js";
export {
  readNotes, noteTypeName, buildIdOf, abiTagOf, gnuPropertiesOf, gnuPropertyText, x86Features,
  prstatusOf, prpsinfoOf, mappedFilesOf, auxvOf, xstateOf, X86_64_REGS, I386_REGS,
} from "./note.js";
export type { ElfNote, AbiTag, GnuProperty, PrStatus, PrPsInfo, MappedFile, AuxvEntry, XState } from "./note.js";
export { pltStubs, gotSlots, slotLabel } from "./plt.js";
export type { PltStub, GotSlot, GotSlotKind } from "./plt.js";
export { buildSymbolIndex } from "./symindex.js";
export type { SymbolIndex, SymbolHit, SymbolIndexOptions } from "./symindex.js";
export { parseLoadedElf, readerFromSegments } from "./loaded.js";
export type { LoadedElf, LoadedElfOptions, MemoryReader } from "./loaded.js";
export * as raw from "./raw.js";
