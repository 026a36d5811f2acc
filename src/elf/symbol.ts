/**
 * Symbol tables (.symtab, .dynsym): a lazy view over Elf32_Sym/Elf64_Sym entries. Raw field
 * accessors (nameOffset(i), info(i), value(i)...) read straight from the buffer for hot loops;
 * symbol(i) materializes one ElfSymbol with its name, section and version resolved.
 */
import { ElfError } from "./errors.js";
import {
  EM_X86_64, SHN_ABS, SHN_COMMON, SHN_HIOS, SHN_HIPROC, SHN_LOOS, SHN_LOPROC, SHN_LORESERVE,
  SHN_UNDEF, SHN_XINDEX, STB_NAMES, STT_NAMES, STV_NAMES, SYM32, SYM64,
} from "./raw.js";
import type { StringTable } from "./strtab.js";
import type { SymbolVersion, VersionTable } from "./version.js";
import type { ByteView } from "./view.js";
import type { GnuHashTable, SysvHashTable } from "./hash.js";

export type SymbolTableKind = "symtab" | "dynsym";

export interface ElfSymbol {
  table: SymbolTableKind;
  /** Index in its table. */
  index: number;
  name: string;
  value: bigint;
  size: bigint;
  /** readelf's spellings: "FUNC", "OBJECT", "IFUNC", ...; bind "GLOBAL"/"WEAK"/"UNIQUE"...; visibility "DEFAULT"... */
  type: string;
  bind: string;
  visibility: string;
  /** Raw st_info / st_other. */
  info: number;
  other: number;
  /** Section index, resolved through SHT_SYMTAB_SHNDX for SHN_XINDEX. */
  shndx: number;
  /** Section name when section headers exist, else readelf's Ndx column ("UND", "ABS", "COM", "12"). */
  section: string;
  /** Symbol version (dynsym only). */
  version?: string;
  /** Version is hidden ("name@VER", not the default "name@@VER"). */
  versionHidden?: boolean;
  /** For a required version (verneed): the library expected to provide it. */
  versionFile?: string;
}

export interface SymbolTableInit {
  kind: SymbolTableKind;
  view: ByteView;
  offset: number;
  count: number;
  entsize: number;
  strtab: StringTable;
  /** File offset (or vaddr) of entry 0, for error reports. */
  origin: number | bigint;
  machine: number;
  osabi: number;
  versions?: VersionTable;
  /** SHT_SYMTAB_SHNDX entries (one Elf32_Word per symbol), for extended section numbering. */
  shndxTable?: { view: ByteView; offset: number; count: number };
  /** Section name by index; undefined when the file has no section headers. */
  sectionName?: (shndx: number) => string | undefined;
  gnuHash?: GnuHashTable;
  sysvHash?: SysvHashTable;
}

/**
 * readelf's type name (get_symbol_type). Like readelf, STT_GNU_IFUNC reads "IFUNC" only
 * under ELFOSABI_GNU/FREEBSD (GNU ld sets ELFOSABI_GNU when it emits one); the number is in
 * `info` either way.
 */
export function symbolTypeName(type: number, osabi: number): string {
  if (type < STT_NAMES.length) return STT_NAMES[type];
  if (type === 10 && (osabi === 3 || osabi === 9)) return "IFUNC";
  if (type >= 13) return `<processor specific>: ${type}`;
  if (type >= 10) return `<OS specific>: ${type}`;
  return `<unknown>: ${type}`;
}

/** readelf's binding name (get_symbol_binding): STB_GNU_UNIQUE reads "UNIQUE" only under ELFOSABI_GNU. */
export function symbolBindName(bind: number, osabi: number): string {
  if (bind < STB_NAMES.length) return STB_NAMES[bind];
  if (bind === 10 && osabi === 3) return "UNIQUE";
  if (bind >= 13) return `<processor specific>: ${bind}`;
  if (bind >= 10) return `<OS specific>: ${bind}`;
  return `<unknown>: ${bind}`;
}

export function symbolVisibilityName(other: number): string {
  return STV_NAMES[other & 3];
}

/** readelf's Ndx column (get_symbol_index_type). */
export function sectionIndexText(shndx: number, machine: number): string {
  if (shndx === SHN_UNDEF) return "UND";
  if (shndx === SHN_ABS) return "ABS";
  if (shndx === SHN_COMMON) return "COM";
  if (shndx === 0xff02 && machine === EM_X86_64) return "LARGE_COM";
  if (shndx >= SHN_LOPROC && shndx <= SHN_HIPROC) return `PRC[0x${shndx.toString(16).padStart(4, "0")}]`;
  if (shndx >= SHN_LOOS && shndx <= SHN_HIOS) return `OS [0x${shndx.toString(16).padStart(4, "0")}]`;
  if (shndx >= SHN_LORESERVE && shndx <= 0xffff) return `RSV[0x${shndx.toString(16).padStart(4, "0")}]`;
  return String(shndx);
}

export class SymbolTable implements Iterable<ElfSymbol> {
  readonly kind: SymbolTableKind;
  readonly count: number;
  readonly entsize: number;
  readonly strtab: StringTable;
  readonly versions: VersionTable | undefined;
  readonly gnuHash: GnuHashTable | undefined;
  readonly sysvHash: SysvHashTable | undefined;
  /** The view and offset of entry 0: raw access for hot loops (see fieldOffsets). */
  readonly view: ByteView;
  readonly offset: number;
  readonly origin: number | bigint;
  readonly machine: number;
  readonly osabi: number;
  readonly #shndx: SymbolTableInit["shndxTable"];
  readonly #sectionName: SymbolTableInit["sectionName"];
  readonly #L: typeof SYM32 | typeof SYM64;

  constructor(init: SymbolTableInit) {
    const L = init.view.is64 ? SYM64 : SYM32;
    if (init.entsize < L.size) {
      throw new ElfError("ELF_BAD_ENTSIZE", `symbol entry size ${init.entsize} smaller than ${L.size}`, init.origin);
    }
    // Checked before anything is read: count × entsize must lie inside the data.
    init.view.need(init.offset, init.count * init.entsize, `${init.kind} (${init.count} symbols)`);
    this.kind = init.kind;
    this.count = init.count;
    this.entsize = init.entsize;
    this.strtab = init.strtab;
    this.versions = init.versions;
    this.gnuHash = init.gnuHash;
    this.sysvHash = init.sysvHash;
    this.view = init.view;
    this.offset = init.offset;
    this.origin = init.origin;
    this.machine = init.machine;
    this.osabi = init.osabi;
    this.#shndx = init.shndxTable;
    this.#sectionName = init.sectionName;
    this.#L = L;
  }

  /** Byte offsets of each field inside one entry (for hot loops over `view`). */
  get fieldOffsets(): typeof SYM32 | typeof SYM64 {
    return this.#L;
  }

  #at(i: number): number {
    if (!(i >= 0 && i < this.count)) throw new ElfError("ELF_BAD_INDEX", `symbol index ${i} outside ${this.kind} of ${this.count}`, this.origin);
    return this.offset + i * this.entsize;
  }

  nameOffset(i: number): number {
    return this.view.u32(this.#at(i) + this.#L.name);
  }
  name(i: number): string {
    return this.strtab.getOr(this.nameOffset(i));
  }
  info(i: number): number {
    return this.view.u8(this.#at(i) + this.#L.info);
  }
  other(i: number): number {
    return this.view.u8(this.#at(i) + this.#L.other);
  }
  /** st_shndx as stored (SHN_XINDEX not resolved). */
  rawShndx(i: number): number {
    return this.view.u16(this.#at(i) + this.#L.shndx);
  }
  /** st_shndx with SHN_XINDEX resolved through SHT_SYMTAB_SHNDX (gABI "Extended Section Indexes"). */
  shndx(i: number): number {
    const s = this.rawShndx(i);
    if (s !== SHN_XINDEX || !this.#shndx) return s;
    const t = this.#shndx;
    if (i >= t.count) return s;
    return t.view.u32(t.offset + 4 * i);
  }
  value(i: number): bigint {
    return this.view.word(this.#at(i) + this.#L.value);
  }
  size(i: number): bigint {
    return this.view.word(this.#at(i) + this.#L.size_);
  }
  type(i: number): number {
    return this.info(i) & 0xf;
  }
  bind(i: number): number {
    return this.info(i) >> 4;
  }

  /** The version of symbol i (dynsym with .gnu.version only). */
  version(i: number): SymbolVersion | undefined {
    if (!this.versions) return undefined;
    return this.versions.resolve(i, this.shndx(i), this.nameOffset(i));
  }

  /**
   * Section name, or readelf's Ndx text for special indexes and files without section headers.
   * `extended`: the index came through SHT_SYMTAB_SHNDX, so it is a real section index even
   * inside the reserved range.
   */
  sectionText(shndx: number, extended = false): string {
    if (shndx !== SHN_UNDEF && (extended || shndx < SHN_LORESERVE) && this.#sectionName) {
      const n = this.#sectionName(shndx);
      if (n !== undefined) return n;
    }
    if (extended) return String(shndx);
    return sectionIndexText(shndx, this.machine);
  }

  /** Materialize symbol i. */
  symbol(i: number): ElfSymbol {
    const off = this.#at(i);
    const v = this.view;
    const L = this.#L;
    const info = v.u8(off + L.info);
    const other = v.u8(off + L.other);
    const nameOff = v.u32(off + L.name);
    const shndx = this.shndx(i);
    const sym: ElfSymbol = {
      table: this.kind,
      index: i,
      name: this.strtab.getOr(nameOff),
      value: v.word(off + L.value),
      size: v.word(off + L.size_),
      type: symbolTypeName(info & 0xf, this.osabi),
      bind: symbolBindName(info >> 4, this.osabi),
      visibility: STV_NAMES[other & 3],
      info,
      other,
      shndx,
      section: this.sectionText(shndx, v.u16(off + L.shndx) === SHN_XINDEX),
    };
    if (this.versions) {
      const ver = this.versions.resolve(i, shndx, nameOff);
      if (ver) {
        sym.version = ver.name;
        sym.versionHidden = ver.hidden;
        if (ver.file !== undefined) sym.versionFile = ver.file;
      }
    }
    return sym;
  }

  *[Symbol.iterator](): Iterator<ElfSymbol> {
    for (let i = 0; i < this.count; i++) yield this.symbol(i);
  }

  /** All symbols as an array (pyelftools: iter_symbols). */
  symbols(): ElfSymbol[] {
    const out: ElfSymbol[] = new Array(this.count);
    for (let i = 0; i < this.count; i++) out[i] = this.symbol(i);
    return out;
  }

  /**
   * Find a defined-or-undefined symbol by name: through DT_GNU_HASH or DT_HASH when present
   * (dynsym), else a linear scan. With `version`, only a symbol of that version matches.
   */
  lookup(name: string, version?: string): ElfSymbol | undefined {
    const matches = (i: number): boolean => {
      if (version === undefined) return true;
      return this.version(i)?.name === version;
    };
    if (this.gnuHash) {
      const i = this.gnuHash.find(name, this, matches);
      if (i >= 0) return this.symbol(i);
      // Symbols below symoffset (the undefined ones) are not hashed: scan just those.
      const want = new TextEncoder().encode(name);
      const end = Math.min(this.gnuHash.symoffset, this.count);
      for (let k = 1; k < end; k++) if (this.nameEquals(k, want) && matches(k)) return this.symbol(k);
      return undefined;
    }
    if (this.sysvHash) {
      const i = this.sysvHash.find(name, this, matches);
      return i < 0 ? undefined : this.symbol(i);
    }
    const want = new TextEncoder().encode(name);
    for (let i = 1; i < this.count; i++) {
      if (this.nameEquals(i, want) && matches(i)) return this.symbol(i);
    }
    return undefined;
  }

  /** Compare symbol i's name bytes with `want` without decoding. */
  nameEquals(i: number, want: Uint8Array): boolean {
    const off = this.nameOffset(i);
    const b = this.strtab.bytes;
    if (off + want.length >= b.length) return false;
    for (let k = 0; k < want.length; k++) if (b[off + k] !== want[k]) return false;
    return b[off + want.length] === 0;
  }
}

/** readelf -Ws's name column: name plus "@@VER", "@VER" or "@VER (n)". */
export function versionedName(sym: ElfSymbol, versionIndex?: number): string {
  if (sym.version === undefined) return sym.name;
  if (sym.versionFile !== undefined) return `${sym.name}@${sym.version} (${versionIndex ?? "?"})`;
  return sym.versionHidden ? `${sym.name}@${sym.version}` : `${sym.name}@@${sym.version}`;
}
