/**
 * GNU symbol versioning (LSB "Symbol Versioning"): .gnu.version (versym, one Elf_Half per dynsym
 * entry), .gnu.version_d (verdef: versions this object defines) and .gnu.version_r (verneed:
 * versions it needs from each DT_NEEDED library). The walk over the verdef/verneed chains is
 * bounded by the entry counts and by the table size, so a looping vd_next cannot hang us.
 */
import { ElfError } from "./errors.js";
import { SHN_UNDEF, VERDAUX, VERDEF, VERNAUX, VERNEED, VERSYM_HIDDEN, VERSYM_VERSION, VER_FLG_BASE } from "./raw.js";
import type { StringTable } from "./strtab.js";
import type { ByteView } from "./view.js";

export interface VersionDefinition {
  /** vd_ndx: the versym value that selects this version. */
  index: number;
  flags: number;
  /** The first verdaux name: the version name (the file's soname for VER_FLG_BASE). */
  name: string;
  nameOffset: number;
  /** Names of the parent versions (further verdaux entries). */
  parents: string[];
  isBase: boolean;
}

export interface VersionRequirement {
  /** vna_other: the versym value that selects this version. */
  index: number;
  name: string;
  /** The library that must provide it (vn_file). */
  file: string;
  flags: number;
  hash: number;
}

/** What a symbol's versym resolves to. */
export interface SymbolVersion {
  name: string;
  /** VERSYM_HIDDEN set: "name@VER" rather than the default "name@@VER". */
  hidden: boolean;
  /** Set for versions required from another object (verneed): that library. */
  file?: string;
  /** The versym index (without the hidden bit). */
  index: number;
}

/** Hard bound on chain walks: a verdef/verneed chain longer than this is corrupt. */
const MAX_VERSION_ENTRIES = 1 << 16;

export function readVerdef(v: ByteView, off: number, size: number, count: number, strtab: StringTable): VersionDefinition[] {
  const out: VersionDefinition[] = [];
  const end = off + size;
  let p = off;
  const limit = Math.min(count > 0 ? count : MAX_VERSION_ENTRIES, MAX_VERSION_ENTRIES);
  for (let i = 0; i < limit; i++) {
    if (p + VERDEF.size > end) throw new ElfError("ELF_TRUNCATED", "version definition runs past its table", p);
    v.need(p, VERDEF.size, "version definition");
    const flags = v.u16(p + VERDEF.flags);
    const index = v.u16(p + VERDEF.ndx);
    const cnt = v.u16(p + VERDEF.cnt);
    const aux = v.u32(p + VERDEF.aux);
    const next = v.u32(p + VERDEF.next);
    let a = p + aux;
    let name = "";
    let nameOffset = 0;
    const parents: string[] = [];
    for (let j = 0; j < cnt && j < 256; j++) {
      if (!(a >= off && a + VERDAUX.size <= end)) throw new ElfError("ELF_BAD_TABLE", "version definition auxiliary entry outside its table", a);
      const n = v.u32(a + VERDAUX.name);
      if (j === 0) {
        name = strtab.getOr(n);
        nameOffset = n;
      } else parents.push(strtab.getOr(n));
      const an = v.u32(a + VERDAUX.next);
      if (an === 0) break;
      a += an;
    }
    out.push({ index, flags, name, nameOffset, parents, isBase: (flags & VER_FLG_BASE) !== 0 });
    if (next === 0) break;
    p += next;
  }
  return out;
}

export function readVerneed(v: ByteView, off: number, size: number, count: number, strtab: StringTable): VersionRequirement[] {
  const out: VersionRequirement[] = [];
  const end = off + size;
  let p = off;
  const limit = Math.min(count > 0 ? count : MAX_VERSION_ENTRIES, MAX_VERSION_ENTRIES);
  for (let i = 0; i < limit; i++) {
    if (p + VERNEED.size > end) throw new ElfError("ELF_TRUNCATED", "version requirement runs past its table", p);
    v.need(p, VERNEED.size, "version requirement");
    const cnt = v.u16(p + VERNEED.cnt);
    const file = strtab.getOr(v.u32(p + VERNEED.file));
    const aux = v.u32(p + VERNEED.aux);
    const next = v.u32(p + VERNEED.next);
    let a = p + aux;
    for (let j = 0; j < cnt && j < MAX_VERSION_ENTRIES; j++) {
      if (!(a >= off && a + VERNAUX.size <= end)) throw new ElfError("ELF_BAD_TABLE", "version requirement auxiliary entry outside its table", a);
      out.push({
        hash: v.u32(a + VERNAUX.hash),
        flags: v.u16(a + VERNAUX.flags),
        index: v.u16(a + VERNAUX.other),
        name: strtab.getOr(v.u32(a + VERNAUX.name)),
        file,
      });
      const an = v.u32(a + VERNAUX.next);
      if (an === 0) break;
      a += an;
    }
    if (next === 0) break;
    p += next;
  }
  return out;
}

/**
 * Resolves versym entries to version names. Follows readelf (binutils 2.40,
 * get_symbol_version_string): index 0 (local) and 1 (global, base) carry no version; a
 * defined symbol looks in verdef first, except the symbol that names the version itself; then
 * verneed, whose hits print as "name@VER (n)".
 */
export class VersionTable {
  /** One Elf_Half per dynamic symbol, zero-copy; may be shorter than the symbol table if corrupt. */
  readonly versym: ByteView | undefined;
  readonly versymOffset: number;
  readonly versymCount: number;
  readonly definitions: VersionDefinition[];
  readonly requirements: VersionRequirement[];
  readonly #def = new Map<number, VersionDefinition>();
  readonly #need = new Map<number, VersionRequirement>();

  constructor(versym: ByteView | undefined, versymOffset: number, versymCount: number, definitions: VersionDefinition[], requirements: VersionRequirement[]) {
    this.versym = versym;
    this.versymOffset = versymOffset;
    this.versymCount = versymCount;
    this.definitions = definitions;
    this.requirements = requirements;
    for (const d of definitions) if (!this.#def.has(d.index)) this.#def.set(d.index, d);
    for (const r of requirements) if (!this.#need.has(r.index)) this.#need.set(r.index, r);
  }

  /** Raw versym value for symbol `i` (hidden bit included), or -1 if there is none. */
  raw(i: number): number {
    if (!this.versym || i < 0 || i >= this.versymCount) return -1;
    return this.versym.u16(this.versymOffset + 2 * i);
  }

  /** The version of dynamic symbol `i` (its st_shndx and st_name decide defined-ness and self-naming). */
  resolve(i: number, shndx: number, nameOffset: number): SymbolVersion | undefined {
    const raw = this.raw(i);
    if (raw < 0) return undefined;
    const index = raw & VERSYM_VERSION;
    const hidden = (raw & VERSYM_HIDDEN) !== 0;
    if (raw === 0 || raw === 1) return undefined;
    if (shndx !== SHN_UNDEF && raw !== 0x8001) {
      const d = this.#def.get(index);
      if (d) {
        if (d.nameOffset === nameOffset) return undefined;
        return { name: d.name, hidden, index };
      }
    }
    const r = this.#need.get(raw) ?? (hidden ? undefined : this.#need.get(index));
    if (r) return { name: r.name, hidden, file: r.file, index };
    return undefined;
  }

  /** Version definition by versym index. */
  definition(index: number): VersionDefinition | undefined {
    return this.#def.get(index);
  }
  /** Version requirement by vna_other. */
  requirement(index: number): VersionRequirement | undefined {
    return this.#need.get(index);
  }
}
