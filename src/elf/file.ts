/**
 * parseElf: the ELF file as a whole. Validates the header and the header tables up front, keeps
 * views and offsets, and builds everything else (symbols, versions, dynamic tables,
 * relocations, notes) on first use. Nothing here copies the file's bytes.
 */
import { ElfError } from "./errors.js";
import {
  EHDR32, EHDR64, EI_ABIVERSION, EI_CLASS, EI_DATA, EI_OSABI, EI_VERSION, ELFCLASS32, ELFCLASS64,
  ELFDATA2LSB, ELFDATA2MSB, ELFMAG, ET_CORE, ET_NAMES, EM_NAMES, PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_NOTE,
  SHN_LORESERVE, SHN_UNDEF, SHN_XINDEX, SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_HASH, SHT_GNU_VERDEF,
  SHT_GNU_VERNEED, SHT_GNU_VERSYM, SHT_HASH, SHT_NOBITS, SHT_NOTE, SHT_REL, SHT_RELA, SHT_RELR,
  SHT_STRTAB, SHT_SYMTAB, SHT_SYMTAB_SHNDX, NT_GNU_BUILD_ID, NT_GNU_PROPERTY_TYPE_0, DT_VERSYM,
} from "./raw.js";
import { ByteView, toIndex } from "./view.js";
import { Section, readSectionHeaders } from "./section.js";
import { Segment, readProgramHeaders } from "./segment.js";
import { StringTable, decodeString } from "./strtab.js";
import { SymbolTable } from "./symbol.js";
import { VersionTable, readVerdef, readVerneed } from "./version.js";
import { GnuHashTable, SysvHashTable } from "./hash.js";
import { AddressSpace, DynamicEntry, DynamicTables, dynamicRelocationTables, readDynamicEntries } from "./dynamic.js";
import { RelocationTable, decodeRelr } from "./relocation.js";
import { ElfNote, GnuProperty, buildIdOf, gnuPropertiesOf, readNotes, x86Features } from "./note.js";

export interface ElfHeader {
  /** 32 or 64 (EI_CLASS). */
  class: 32 | 64;
  littleEndian: boolean;
  identVersion: number;
  osabi: number;
  abiVersion: number;
  /** e_type: ET_REL, ET_EXEC, ET_DYN, ET_CORE... */
  type: number;
  machine: number;
  version: number;
  entry: bigint;
  phoff: bigint;
  shoff: bigint;
  flags: number;
  ehsize: number;
  phentsize: number;
  /** Program header count, with PN_XNUM resolved through section 0's sh_info. */
  phnum: number;
  shentsize: number;
  /** Section count, with extended numbering (e_shnum 0) resolved through section 0's sh_size. */
  shnum: number;
  /** Section name table index, SHN_XINDEX resolved through section 0's sh_link. */
  shstrndx: number;
}

export interface ParseOptions {
  /** The path, copied into every ElfError this file raises (for messages). */
  file?: string;
}

export interface RelocationSection {
  /** Section name (".rela.plt") or, without section headers, the dynamic tag ("DT_JMPREL"). */
  name: string;
  section?: Section;
  /** REL/RELA entries; undefined for RELR. */
  table?: RelocationTable;
  /** RELR: the decoded addresses. */
  relr?: bigint[];
  /** The symbol table the entries index (sh_link), if any. */
  symbols?: SymbolTable;
  /** File offset of the table. */
  offset: number;
}

export interface NoteGroup {
  /** Section name, or "PT_NOTE" for a segment when there are no section headers. */
  name: string;
  offset: number;
  size: number;
  notes: ElfNote[];
}

const PN_XNUM = 0xffff;

function readIdent(data: Uint8Array): { is64: boolean; le: boolean } {
  if (data.length < 16) throw new ElfError("ELF_TRUNCATED", `ELF identification needs 16 bytes, file has ${data.length}`, 0);
  for (let i = 0; i < 4; i++) {
    if (data[i] !== ELFMAG[i]) throw new ElfError("ELF_BAD_MAGIC", "not an ELF file: bad magic (expected \\x7fELF)", i);
  }
  const cls = data[EI_CLASS];
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) throw new ElfError("ELF_BAD_CLASS", `unsupported ELF class ${cls} (expected 1 or 2)`, EI_CLASS);
  const enc = data[EI_DATA];
  if (enc !== ELFDATA2LSB && enc !== ELFDATA2MSB) throw new ElfError("ELF_BAD_DATA", `unsupported ELF data encoding ${enc} (expected 1 or 2)`, EI_DATA);
  return { is64: cls === ELFCLASS64, le: enc === ELFDATA2LSB };
}

/** Read and check the ELF header (gABI "ELF Header"); extended numbering is resolved by the caller. */
export function readHeader(v: ByteView): ElfHeader {
  const L = v.is64 ? EHDR64 : EHDR32;
  v.need(0, L.size, "ELF header");
  return {
    class: v.is64 ? 64 : 32,
    littleEndian: v.le,
    identVersion: v.u8(EI_VERSION),
    osabi: v.u8(EI_OSABI),
    abiVersion: v.u8(EI_ABIVERSION),
    type: v.u16(L.type),
    machine: v.u16(L.machine),
    version: v.u32(L.version),
    entry: v.word(L.entry),
    phoff: v.word(L.phoff),
    shoff: v.word(L.shoff),
    flags: v.u32(L.flags),
    ehsize: v.u16(L.ehsize),
    phentsize: v.u16(L.phentsize),
    phnum: v.u16(L.phnum),
    shentsize: v.u16(L.shentsize),
    shnum: v.u16(L.shnum),
    shstrndx: v.u16(L.shstrndx),
  };
}

export class ElfFile {
  readonly data: Uint8Array;
  readonly view: ByteView;
  readonly header: ElfHeader;
  readonly sections: Section[];
  readonly segments: Segment[];
  readonly file: string | undefined;
  #symtab: SymbolTable | null | undefined;
  #dynsym: SymbolTable | null | undefined;
  #dynamic: DynamicTables | null | undefined;
  #notes: NoteGroup[] | undefined;

  constructor(data: Uint8Array, opts: ParseOptions = {}) {
    this.file = opts.file;
    try {
      const { is64, le } = readIdent(data);
      this.data = data;
      this.view = new ByteView(data, le, is64);
      const h = readHeader(this.view);
      this.header = h;
      this.sections = this.#readSections(h);
      if (h.phnum === PN_XNUM && this.sections.length > 0) h.phnum = this.sections[0].info;
      this.segments = h.phoff === 0n || h.phnum === 0 ? [] : readProgramHeaders(this.view, toIndex(h.phoff), h.phnum, h.phentsize);
    } catch (e) {
      throw this.#tag(e);
    }
  }

  #tag(e: unknown): unknown {
    if (e instanceof ElfError && this.file !== undefined && e.file === undefined) e.file = this.file;
    return e;
  }

  #readSections(h: ElfHeader): Section[] {
    if (h.shoff === 0n) return [];
    const off = toIndex(h.shoff);
    const names: { table?: StringTable } = {};
    // Extended numbering (gABI): e_shnum 0 ⇒ count in section 0's sh_size; SHN_XINDEX ⇒ sh_link.
    let count = h.shnum;
    if (count === 0) {
      const first = readSectionHeaders(this.view, off, 1, h.shentsize, names)[0];
      count = toIndex(first.size);
      if (count > Math.floor(this.view.length / Math.max(1, h.shentsize))) {
        throw new ElfError("ELF_TRUNCATED", `extended section count ${first.size} cannot fit in the file`, off);
      }
      h.shnum = count;
      if (h.shstrndx === SHN_XINDEX) h.shstrndx = first.link;
    } else if (h.shstrndx === SHN_XINDEX) {
      h.shstrndx = readSectionHeaders(this.view, off, 1, h.shentsize, names)[0].link;
    }
    const secs = readSectionHeaders(this.view, off, count, h.shentsize, names);
    const si = h.shstrndx;
    if (si !== SHN_UNDEF && si < secs.length && secs[si].type !== SHT_NOBITS) {
      const s = secs[si];
      const o = toIndex(s.offset);
      const n = toIndex(s.size);
      if (this.view.has(o, n)) names.table = new StringTable(this.data.subarray(o, o + n), o);
    }
    return secs;
  }

  get is64(): boolean {
    return this.view.is64;
  }
  get littleEndian(): boolean {
    return this.view.le;
  }
  get machine(): number {
    return this.header.machine;
  }
  /** "DYN", "EXEC", "REL", "CORE". */
  get typeName(): string {
    return ET_NAMES[this.header.type] ?? `0x${this.header.type.toString(16)}`;
  }
  get machineName(): string {
    return EM_NAMES[this.header.machine] ?? `<unknown>: 0x${this.header.machine.toString(16)}`;
  }

  // ---- Sections ------------------------------------------------------------------------
  get numSections(): number {
    return this.sections.length;
  }
  section(index: number): Section {
    const s = this.sections[index];
    if (!s) throw this.#tag(new ElfError("ELF_BAD_INDEX", `section index ${index} outside ${this.sections.length} sections`, toIndex(this.header.shoff)));
    return s;
  }
  sectionByName(name: string): Section | undefined {
    return this.sections.find((s) => s.name === name);
  }
  sectionsByType(type: number): Section[] {
    return this.sections.filter((s) => s.type === type);
  }
  /** Name of section `index`, undefined if out of range. */
  sectionName(index: number): string | undefined {
    return this.sections[index]?.name;
  }

  // ---- Address mapping -------------------------------------------------------------------
  /** File offset holding virtual address `vaddr` (first PT_LOAD whose file bytes contain it). */
  vaddrToOffset(vaddr: bigint): number | undefined {
    for (const s of this.segments) {
      if (s.type === PT_LOAD && vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) {
        const o = toIndex(s.offset + (vaddr - s.vaddr));
        return o < this.data.length ? o : undefined;
      }
    }
    return undefined;
  }
  /** Bytes at [vaddr, vaddr+len) from the file, zero-copy; undefined if not all in one PT_LOAD's file bytes. */
  readVaddr(vaddr: bigint, len: number): Uint8Array | undefined {
    for (const s of this.segments) {
      if (s.type === PT_LOAD && vaddr >= s.vaddr && vaddr + BigInt(len) <= s.vaddr + s.filesz) {
        const o = toIndex(s.offset + (vaddr - s.vaddr));
        if (!this.view.has(o, len)) return undefined;
        return this.data.subarray(o, o + len);
      }
    }
    return undefined;
  }
  /** The file as the dynamic linker sees it: PT_LOAD mappings, d_ptr values unrelocated. */
  addressSpace(): AddressSpace {
    const self = this;
    return {
      read(vaddr, len) {
        const o = self.vaddrToOffset(vaddr);
        if (o === undefined) return undefined;
        const ext = this.extent(vaddr);
        if (len > ext) return undefined;
        return { view: self.view, offset: o };
      },
      extent(vaddr) {
        for (const s of self.segments) {
          if (s.type === PT_LOAD && vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) {
            const o = toIndex(s.offset + (vaddr - s.vaddr));
            const segEnd = toIndex(s.offset + s.filesz);
            return Math.max(0, Math.min(segEnd, self.data.length) - o);
          }
        }
        return 0;
      },
      pointer: (_tag, value) => value,
      where: (vaddr) => self.vaddrToOffset(vaddr) ?? vaddr,
    };
  }

  // ---- Dynamic -----------------------------------------------------------------------------
  /** The dynamic section's entries and tables (PT_DYNAMIC, else SHT_DYNAMIC); undefined if static. */
  get dynamic(): DynamicTables | undefined {
    if (this.#dynamic === undefined) {
      this.#dynamic = null;
      try {
        // As the dynamic linker (and readelf) see it: PT_DYNAMIC decides whether there is one,
        // the .dynamic section header (when present) gives its exact extent. Without program
        // headers (relocatable objects), the section alone.
        let entries: DynamicEntry[] | undefined;
        const seg = this.segments.find((s) => s.type === PT_DYNAMIC);
        const sec = this.sections.find((s) => s.type === SHT_DYNAMIC);
        if (seg || this.segments.length === 0) {
          if (sec) entries = readDynamicEntries(this.view, toIndex(sec.offset), toIndex(sec.size));
          else if (seg) entries = readDynamicEntries(this.view, toIndex(seg.offset), toIndex(seg.filesz));
        }
        if (entries) this.#dynamic = new DynamicTables(entries, this.addressSpace(), this.header.machine, this.header.osabi, this.is64);
      } catch (e) {
        throw this.#tag(e);
      }
    }
    return this.#dynamic ?? undefined;
  }
  /** The raw dynamic entries ([] for static files). */
  dynamicEntries(): DynamicEntry[] {
    return this.dynamic?.entries ?? [];
  }
  get needed(): string[] {
    return this.dynamic?.needed ?? [];
  }
  get soname(): string | undefined {
    return this.dynamic?.soname;
  }
  get bindNow(): boolean {
    return this.dynamic?.bindNow ?? false;
  }
  /** PT_INTERP's path (the dynamic linker), NUL stripped. */
  get interp(): string | undefined {
    const s = this.segments.find((p) => p.type === PT_INTERP);
    if (!s) return undefined;
    const b = this.#guard(() => s.data());
    let e = b.indexOf(0);
    if (e < 0) e = b.length;
    return decodeString(b, 0, e);
  }

  #guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      throw this.#tag(e);
    }
  }

  // ---- Symbols -----------------------------------------------------------------------------
  #sectionSymbols(s: Section, kind: "symtab" | "dynsym"): SymbolTable {
    const { offset, size } = s.range();
    const link = this.sections[s.link];
    let strtab: StringTable;
    if (link && link.type === SHT_STRTAB) {
      const r = link.range();
      strtab = new StringTable(this.data.subarray(r.offset, r.offset + r.size), r.offset);
    } else strtab = new StringTable(new Uint8Array(0), 0);
    const entsize = toIndex(s.entsize) || (this.is64 ? 24 : 16);
    const count = Math.floor(size / entsize);
    let shndxTable: { view: ByteView; offset: number; count: number } | undefined;
    const x = this.sections.find((q) => q.type === SHT_SYMTAB_SHNDX && q.link === s.index);
    if (x && this.view.has(toIndex(x.offset), toIndex(x.size))) shndxTable = { view: this.view, offset: toIndex(x.offset), count: Math.floor(toIndex(x.size) / 4) };
    let versions: VersionTable | undefined;
    let gnuHash: GnuHashTable | undefined;
    let sysvHash: SysvHashTable | undefined;
    if (kind === "dynsym") {
      // Versions apply when the dynamic linker would see them: DT_VERSYM (or no program headers).
      if (this.segments.length === 0 || this.dynamic?.get(DT_VERSYM) !== undefined) versions = this.#sectionVersions(count, strtab);
      const g = this.sections.find((q) => q.type === SHT_GNU_HASH && q.link === s.index);
      if (g) {
        const r = g.range();
        gnuHash = new GnuHashTable(this.view, r.offset, r.offset, r.size);
      }
      const h = this.sections.find((q) => q.type === SHT_HASH && q.link === s.index);
      if (h) sysvHash = new SysvHashTable(this.view, h.range().offset, h.range().offset);
    }
    return new SymbolTable({
      kind, view: this.view, offset, count, entsize, strtab, origin: offset,
      machine: this.header.machine, osabi: this.header.osabi, versions, shndxTable, gnuHash, sysvHash,
      sectionName: (i) => (i < this.sections.length ? this.sections[i].name : undefined),
    });
  }

  #sectionVersions(count: number, strtab: StringTable): VersionTable | undefined {
    const vs = this.sections.find((q) => q.type === SHT_GNU_VERSYM);
    if (!vs) return undefined;
    const r = vs.range();
    const n = Math.min(count, Math.floor(r.size / 2));
    const vd = this.sections.find((q) => q.type === SHT_GNU_VERDEF);
    const vn = this.sections.find((q) => q.type === SHT_GNU_VERNEED);
    const defs = vd ? readVerdef(this.view, vd.range().offset, vd.range().size, vd.info, strtab) : [];
    const needs = vn ? readVerneed(this.view, vn.range().offset, vn.range().size, vn.info, strtab) : [];
    return new VersionTable(this.view, r.offset, n, defs, needs);
  }

  /** .symtab (static symbol table), if present. */
  get symtab(): SymbolTable | undefined {
    if (this.#symtab === undefined) {
      this.#symtab = null;
      const s = this.sections.find((q) => q.type === SHT_SYMTAB);
      if (s) this.#symtab = this.#guard(() => this.#sectionSymbols(s, "symtab"));
    }
    return this.#symtab ?? undefined;
  }
  /** .dynsym from its section, or, without section headers, from DT_SYMTAB sized by the hash table. */
  get dynsym(): SymbolTable | undefined {
    if (this.#dynsym === undefined) {
      this.#dynsym = null;
      const s = this.sections.find((q) => q.type === SHT_DYNSYM);
      if (s) this.#dynsym = this.#guard(() => this.#sectionSymbols(s, "dynsym"));
      else if (this.sections.length === 0) this.#dynsym = this.#guard(() => this.dynamic?.symbols) ?? null;
    }
    return this.#dynsym ?? undefined;
  }
  /** Both tables, .symtab first? No: readelf order, .dynsym then .symtab (section order). */
  symbolTables(): SymbolTable[] {
    const out: SymbolTable[] = [];
    const ordered = this.sections.filter((s) => s.type === SHT_SYMTAB || s.type === SHT_DYNSYM);
    if (ordered.length === 0) {
      if (this.dynsym) out.push(this.dynsym);
      return out;
    }
    for (const s of ordered) {
      const t = s.type === SHT_DYNSYM ? this.dynsym : this.symtab;
      if (t) out.push(t);
    }
    return out;
  }

  // ---- Relocations ---------------------------------------------------------------------------
  /**
   * Every relocation table: SHT_REL/SHT_RELA/SHT_RELR sections in section order, or without
   * section headers the dynamic ones (DT_RELA/DT_REL, DT_RELR, DT_JMPREL).
   */
  relocationSections(): RelocationSection[] {
    return this.#guard(() => {
      const out: RelocationSection[] = [];
      const secs = this.sections.filter((s) => s.type === SHT_REL || s.type === SHT_RELA || s.type === SHT_RELR);
      if (this.sections.length > 0) {
        for (const s of secs) {
          const { offset, size } = s.range();
          const linked = this.sections[s.link];
          const symbols = linked === undefined || s.link === 0 ? undefined : linked.type === SHT_DYNSYM ? this.dynsym : linked.type === SHT_SYMTAB ? this.symtab : undefined;
          if (s.type === SHT_RELR) out.push({ name: s.name, section: s, relr: decodeRelr(this.view, offset, size, offset), offset });
          else out.push({ name: s.name, section: s, table: new RelocationTable(this.view, offset, size, s.type === SHT_RELA, toIndex(s.entsize), offset), symbols, offset });
        }
        return out;
      }
      const d = this.dynamic;
      if (!d) return out;
      for (const t of dynamicRelocationTables(d)) out.push({ name: t.name, table: t.table, symbols: t.symbols, offset: this.vaddrToOffset(t.address) ?? 0 });
      const relr = d.relr;
      if (relr.length) out.push({ name: "DT_RELR", relr, offset: this.vaddrToOffset(d.get(36) ?? 0n) ?? 0 });
      return out;
    });
  }

  // ---- Notes ---------------------------------------------------------------------------------
  /**
   * Notes by SHT_NOTE section, or by PT_NOTE segment for core files and files without note
   * sections (a core's notes are defined by its segments; gdb's "note0" sections are a view).
   */
  notes(): NoteGroup[] {
    if (this.#notes === undefined) {
      this.#notes = this.#guard(() => {
        const out: NoteGroup[] = [];
        // readelf's rule: note sections, except for core files, or when there are none.
        const secs = this.sections.filter((s) => s.type === SHT_NOTE);
        if (secs.length > 0 && this.header.type !== ET_CORE) {
          for (const s of secs) {
            const { offset, size } = s.range();
            out.push({ name: s.name, offset, size, notes: readNotes(this.view, offset, size, Number(s.addralign)) });
          }
        } else {
          for (const p of this.segments.filter((q) => q.type === PT_NOTE)) {
            const off = toIndex(p.offset);
            const size = toIndex(p.filesz);
            out.push({ name: "PT_NOTE", offset: off, size, notes: readNotes(this.view, off, size, Number(p.align)) });
          }
        }
        return out;
      });
    }
    return this.#notes;
  }
  /** NT_GNU_BUILD_ID as hex. */
  get buildId(): string | undefined {
    for (const g of this.notes()) for (const n of g.notes) if (n.owner === "GNU" && n.type === NT_GNU_BUILD_ID) return buildIdOf(n);
    return undefined;
  }
  /** NT_GNU_PROPERTY_TYPE_0 properties. */
  get gnuProperties(): GnuProperty[] {
    const out: GnuProperty[] = [];
    for (const g of this.notes()) for (const n of g.notes) if (n.owner === "GNU" && n.type === NT_GNU_PROPERTY_TYPE_0) out.push(...gnuPropertiesOf(n, this.is64, this.littleEndian, this.machine));
    return out;
  }
  /** CET markings: IBT and SHSTK from GNU_PROPERTY_X86_FEATURE_1_AND. */
  get cet(): { ibt: boolean; shstk: boolean } {
    return x86Features(this.gnuProperties);
  }
  /** .gnu_debuglink: file name, then (4-aligned) a CRC32 of the debug file. */
  get debugLink(): { file: string; crc: number } | undefined {
    const s = this.sectionByName(".gnu_debuglink");
    if (!s || s.type === SHT_NOBITS) return undefined;
    const b = this.#guard(() => s.data());
    let e = b.indexOf(0);
    if (e < 0) return undefined;
    const name = decodeString(b, 0, e);
    const c = (e + 4) & ~3;
    if (c + 4 > b.length) return undefined;
    const crc = new DataView(b.buffer, b.byteOffset + c, 4).getUint32(0, this.littleEndian);
    return { file: name, crc };
  }
}

/** Parse an ELF file held in memory. Throws ElfError (with `file` set from opts) when malformed. */
export function parseElf(data: Uint8Array, opts: ParseOptions = {}): ElfFile {
  return new ElfFile(data, opts);
}
