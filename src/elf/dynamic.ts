/**
 * The dynamic section (gABI "Dynamic Section"): the dynamic linker's table of contents, and
 * the only way to find symbols, versions and relocations in an image without section headers.
 * `DynamicTables` resolves every pointer tag through an AddressSpace, which is either the file's
 * PT_LOAD mapping or a process's memory.
 */
import { ElfError, MAX_ENTRIES } from "./errors.js";
import {
  DF_1_NAMES, DF_1_NOW, DF_BIND_NOW, DF_NAMES, DT_BIND_NOW, DT_FLAGS, DT_FLAGS_1, DT_GNU_HASH,
  DT_HASH, DT_JMPREL, DT_NAMES, DT_NEEDED, DT_NULL, DT_PLTREL, DT_PLTRELSZ, DT_REL, DT_RELA,
  DT_RELAENT, DT_RELASZ, DT_RELENT, DT_RELR, DT_RELRSZ, DT_RELSZ, DT_RPATH, DT_RUNPATH, DT_SONAME,
  DT_STRSZ, DT_STRTAB, DT_SYMENT, DT_SYMTAB, DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM,
  DT_VERSYM, DYN32, DYN64, SYM32, SYM64, DT_MIPS_NAMES, EM_MIPS, DT_AUXILIARY, DT_FILTER, DT_CONFIG, DT_DEPAUDIT, DT_AUDIT,
} from "./raw.js";
import { StringTable } from "./strtab.js";
import { SymbolTable } from "./symbol.js";
import { GnuHashTable, SysvHashTable } from "./hash.js";
import { VersionTable, readVerdef, readVerneed } from "./version.js";
import { RelocationTable, decodeRelr } from "./relocation.js";
import { ByteView } from "./view.js";

export interface DynamicEntry {
  /** d_tag (as a number; tags beyond 2^53 only occur in corrupt files). */
  tag: number;
  /** d_val / d_ptr as stored (unrelocated in files, possibly relocated in memory). */
  value: bigint;
}

/** readelf's tag spelling ("NEEDED", "GNU_HASH", "MIPS_FLAGS"...) or its fallback text for unknown tags. */
export function dynamicTagName(tag: number, machine = 0): string {
  const n = DT_NAMES[tag] ?? (machine === EM_MIPS ? DT_MIPS_NAMES[tag] : undefined);
  if (n !== undefined) return n;
  const h = tag.toString(16);
  if (tag >= 0x70000000 && tag <= 0x7fffffff) return `Processor Specific: ${h}`;
  if (tag >= 0x6000000d && tag <= 0x6ffff000) return `Operating System specific: ${h}`;
  return `<unknown>: ${h}`;
}

/** Read Elf_Dyn entries up to and including the first DT_NULL (as the dynamic linker stops). */
export function readDynamicEntries(v: ByteView, off: number, size: number): DynamicEntry[] {
  const L = v.is64 ? DYN64 : DYN32;
  const n = Math.floor(size / L.size);
  if (n > MAX_ENTRIES) throw new ElfError("ELF_LIMIT", `${n} dynamic entries exceed the limit`, off);
  v.need(off, n * L.size, `dynamic section (${n} entries)`);
  const out: DynamicEntry[] = [];
  for (let i = 0; i < n; i++) {
    const p = off + i * L.size;
    const t = v.sword(p + L.tag);
    const tag = t >= -0x1fffffffffffffn && t <= 0x1fffffffffffffn ? Number(t) : Number.MAX_SAFE_INTEGER;
    out.push({ tag, value: v.word(p + L.val) });
    if (tag === DT_NULL) break;
  }
  return out;
}

/** Where tables named by d_ptr values live: file (via PT_LOAD) or process memory. */
export interface AddressSpace {
  /** Bytes [vaddr, vaddr+len) as a view and offset, or undefined if not all readable. */
  read(vaddr: bigint, len: number): { view: ByteView; offset: number } | undefined;
  /** How many bytes from vaddr are readable in one piece (to the end of its segment). */
  extent(vaddr: bigint): number;
  /** Turn a d_ptr of `tag` into an address `read` understands (relocated or not). */
  pointer(tag: number, value: bigint): bigint;
  /** Describe an address for error offsets (file offset when known). */
  where(vaddr: bigint): number | bigint;
}

/** Cap for the dynamic string table. */
const MAX_STRTAB = 1 << 26;

/** Cap for tables of unknown size (verdef/verneed) read out of an address space. */
const MAX_VERSION_TABLE = 1 << 20;

/**
 * Everything reachable from the dynamic entries: strings, DT_NEEDED/SONAME/RPATH/RUNPATH,
 * flags, the dynamic symbol table (count from DT_HASH or DT_GNU_HASH), versions and the
 * relocation tables. Each table is built on first use; a broken one throws ElfError then.
 */
export class DynamicTables {
  readonly entries: DynamicEntry[];
  readonly machine: number;
  readonly osabi: number;
  readonly space: AddressSpace;
  readonly #is64: boolean;
  #strtab: StringTable | null | undefined;
  #symtab: SymbolTable | null | undefined;
  #versions: VersionTable | null | undefined;
  #gnu: GnuHashTable | null | undefined;
  #sysv: SysvHashTable | null | undefined;

  constructor(entries: DynamicEntry[], space: AddressSpace, machine: number, osabi: number, is64: boolean) {
    this.entries = entries;
    this.space = space;
    this.machine = machine;
    this.osabi = osabi;
    this.#is64 = is64;
  }

  /** The first entry with `tag`, its raw value. */
  get(tag: number): bigint | undefined {
    for (const e of this.entries) if (e.tag === tag) return e.value;
    return undefined;
  }
  all(tag: number): bigint[] {
    return this.entries.filter((e) => e.tag === tag).map((e) => e.value);
  }
  /** A pointer tag, resolved to an address `space.read` accepts. */
  ptr(tag: number): bigint | undefined {
    const v = this.get(tag);
    return v === undefined ? undefined : this.space.pointer(tag, v);
  }

  #need(vaddr: bigint, len: number, what: string): { view: ByteView; offset: number } {
    // Bounded by the segment before anything is read: a hostile size never reaches `read`.
    if (len > this.space.extent(vaddr)) {
      throw new ElfError("ELF_TRUNCATED", `${what} (${len} bytes at 0x${vaddr.toString(16)}) runs past its segment`, this.space.where(vaddr));
    }
    const r = this.space.read(vaddr, len);
    if (!r) throw new ElfError("ELF_UNMAPPED", `${what} (${len} bytes at 0x${vaddr.toString(16)}) not in any loaded segment`, this.space.where(vaddr));
    return r;
  }

  /** DT_STRTAB with DT_STRSZ. */
  get strtab(): StringTable | undefined {
    if (this.#strtab === undefined) {
      this.#strtab = null;
      const a = this.ptr(DT_STRTAB);
      const sz = this.get(DT_STRSZ);
      if (a !== undefined && sz !== undefined) {
        // Capped (64 MiB, 12x node's .dynstr) so a hostile DT_STRSZ cannot ask a memory reader for more.
        const n = sz > BigInt(MAX_STRTAB) ? MAX_STRTAB : Number(sz);
        const r = this.#need(a, n, "dynamic string table");
        this.#strtab = new StringTable(r.view.bytes.subarray(r.offset, r.offset + n), this.space.where(a));
      }
    }
    return this.#strtab ?? undefined;
  }

  /** A string-valued tag's strings (DT_NEEDED, DT_SONAME, ...), resolved in DT_STRTAB. */
  strings(tag: number): string[] {
    const st = this.strtab;
    return this.all(tag).map((v) => (st ? st.getOr(v > 0xffffffffn ? -1 : Number(v)) : "<corrupt>"));
  }
  get needed(): string[] {
    return this.strings(DT_NEEDED);
  }
  get soname(): string | undefined {
    return this.strings(DT_SONAME)[0];
  }
  get rpath(): string | undefined {
    return this.strings(DT_RPATH)[0];
  }
  get runpath(): string | undefined {
    return this.strings(DT_RUNPATH)[0];
  }
  get flags(): number {
    return Number((this.get(DT_FLAGS) ?? 0n) & 0xffffffffn);
  }
  get flags1(): number {
    return Number((this.get(DT_FLAGS_1) ?? 0n) & 0xffffffffn);
  }
  /** Resolved at load, not lazily: DT_BIND_NOW, DF_BIND_NOW or DF_1_NOW (ld -z now). */
  get bindNow(): boolean {
    return this.get(DT_BIND_NOW) !== undefined || (this.flags & DF_BIND_NOW) !== 0 || (this.flags1 & DF_1_NOW) !== 0;
  }

  get gnuHash(): GnuHashTable | undefined {
    if (this.#gnu === undefined) {
      this.#gnu = null;
      const a = this.ptr(DT_GNU_HASH);
      if (a !== undefined) {
        const size = this.#gnuHashSize(a);
        const r = this.#need(a, size, "GNU hash table");
        this.#gnu = new GnuHashTable(r.view, r.offset, this.space.where(a), size);
      }
    }
    return this.#gnu ?? undefined;
  }

  /**
   * The GNU hash table's byte size, found the way the dynamic linker walks it: header, bloom
   * words, buckets, then chain words up to the end bit of the highest bucket's chain. Reads
   * only what it needs (images in process memory are read piecewise).
   */
  #gnuHashSize(a: bigint): number {
    const h = this.#need(a, 16, "GNU hash header");
    const v = h.view;
    const nb = v.u32(h.offset);
    const symoff = v.u32(h.offset + 4);
    const bloom = v.u32(h.offset + 8);
    if (nb > MAX_ENTRIES || bloom > MAX_ENTRIES) throw new ElfError("ELF_BAD_TABLE", `GNU hash with ${nb} buckets and ${bloom} bloom words`, this.space.where(a));
    const head = 16 + bloom * (this.#is64 ? 8 : 4);
    const bk = this.#need(a + BigInt(head), 4 * nb, "GNU hash buckets");
    let max = 0;
    for (let i = 0; i < nb; i++) max = Math.max(max, bk.view.u32(bk.offset + 4 * i));
    const chains = head + 4 * nb;
    if (max < symoff) return chains;
    let k = max - symoff;
    const CHUNK = 1024;
    for (let guard = 0; guard < MAX_ENTRIES / CHUNK; guard++) {
      const start = a + BigInt(chains + 4 * k);
      const avail = Math.min(CHUNK, Math.floor(this.space.extent(start) / 4));
      if (avail <= 0) throw new ElfError("ELF_TRUNCATED", "GNU hash chain runs past end of its segment", this.space.where(start));
      const c = this.#need(start, 4 * avail, "GNU hash chain");
      for (let j = 0; j < avail; j++, k++) {
        if (c.view.u32(c.offset + 4 * j) & 1) return chains + 4 * (k + 1);
      }
    }
    throw new ElfError("ELF_LIMIT", "GNU hash chain longer than the entry limit", this.space.where(a));
  }

  get sysvHash(): SysvHashTable | undefined {
    if (this.#sysv === undefined) {
      this.#sysv = null;
      const a = this.ptr(DT_HASH);
      if (a !== undefined) {
        const h = this.#need(a, 8, "hash table header");
        const nb = h.view.u32(h.offset);
        const nc = h.view.u32(h.offset + 4);
        if (nb > MAX_ENTRIES || nc > MAX_ENTRIES) throw new ElfError("ELF_BAD_TABLE", `hash table with ${nb} buckets and ${nc} chains`, this.space.where(a));
        const r = this.#need(a, 8 + 4 * (nb + nc), "hash table");
        this.#sysv = new SysvHashTable(r.view, r.offset, this.space.where(a));
      }
    }
    return this.#sysv ?? undefined;
  }

  /**
   * Number of dynamic symbols: DT_HASH's nchain, else the GNU hash walk. A GNU hash with no
   * hashed symbol at all (every bucket empty: an executable that defines nothing dynamic)
   * says nothing about the undefined ones before symoffset, and GNU ld then writes
   * symoffset 1; the table is then bounded by the next dynamic table after it (ld lays out
   * .dynsym, .dynstr, .gnu.version... back to back), and at least by the relocations' symbol
   * indexes.
   */
  get symbolCount(): number | undefined {
    if (this.get(DT_HASH) !== undefined) return this.sysvHash!.symbolCount;
    if (this.get(DT_GNU_HASH) === undefined) return undefined;
    const g = this.gnuHash!;
    const n = g.symbolCount;
    if (!g.isEmpty) return n;
    const sym = this.ptr(DT_SYMTAB);
    if (sym === undefined) return n;
    const L = this.#is64 ? SYM64 : SYM32;
    const entsize = Number((this.get(DT_SYMENT) ?? BigInt(L.size)) & 0xffffn) || L.size;
    let next: bigint | undefined;
    for (const t of [DT_STRTAB, DT_VERSYM, DT_VERDEF, DT_VERNEED, DT_GNU_HASH, DT_RELA, DT_REL, DT_JMPREL, DT_RELR]) {
      const a = this.ptr(t);
      if (a !== undefined && a > sym && (next === undefined || a < next)) next = a;
    }
    let count = n;
    if (next !== undefined) {
      const bytes = Math.min(Number(next - sym > BigInt(MAX_ENTRIES) ? BigInt(MAX_ENTRIES) : next - sym), this.space.extent(sym));
      count = Math.max(count, Math.floor(bytes / entsize));
    }
    return count;
  }

  get versions(): VersionTable | undefined {
    if (this.#versions === undefined) {
      this.#versions = null;
      const vs = this.ptr(DT_VERSYM);
      const st = this.strtab;
      const count = this.symbolCount;
      if (vs !== undefined && st && count !== undefined) {
        const r = this.#need(vs, 2 * count, "symbol version table");
        const defs = this.#versionTable(DT_VERDEF, DT_VERDEFNUM, st, readVerdef);
        const needs = this.#versionTable(DT_VERNEED, DT_VERNEEDNUM, st, readVerneed);
        this.#versions = new VersionTable(r.view, r.offset, count, defs, needs);
      }
    }
    return this.#versions ?? undefined;
  }

  #versionTable<T>(tag: number, numTag: number, st: StringTable, read: (v: ByteView, off: number, size: number, count: number, st: StringTable) => T[]): T[] {
    const a = this.ptr(tag);
    if (a === undefined) return [];
    const num = Number((this.get(numTag) ?? 0n) & 0xffffn);
    const ext = Math.min(this.space.extent(a), MAX_VERSION_TABLE);
    // Version tables carry no size: read a small piece first, more only if the chain needs it.
    for (let size = Math.min(ext, 1 << 14); ; size = Math.min(ext, size * 8)) {
      const r = this.#need(a, size, "version table");
      try {
        return read(r.view, r.offset, size, num, st);
      } catch (e) {
        if (!(e instanceof ElfError) || size >= ext) throw e;
      }
    }
  }

  /** The dynamic symbol table from DT_SYMTAB, sized by the hash table. */
  get symbols(): SymbolTable | undefined {
    if (this.#symtab === undefined) {
      this.#symtab = null;
      const a = this.ptr(DT_SYMTAB);
      const st = this.strtab;
      if (a !== undefined && st) {
        const L = this.#is64 ? SYM64 : SYM32;
        const entsize = Number((this.get(DT_SYMENT) ?? BigInt(L.size)) & 0xffffn) || L.size;
        const count = this.symbolCount ?? 0;
        const r = this.#need(a, count * entsize, "dynamic symbol table");
        this.#symtab = new SymbolTable({
          kind: "dynsym", view: r.view, offset: r.offset, count, entsize, strtab: st,
          origin: this.space.where(a), machine: this.machine, osabi: this.osabi,
          versions: this.versions, gnuHash: this.gnuHash, sysvHash: this.sysvHash,
        });
      }
    }
    return this.#symtab ?? undefined;
  }

  #relocs(ptrTag: number, sizeTag: number, entTag: number | undefined, rela: boolean): RelocationTable | undefined {
    const a = this.ptr(ptrTag);
    const sz = this.get(sizeTag);
    if (a === undefined || sz === undefined || sz === 0n) return undefined;
    const n = sz > BigInt(MAX_ENTRIES * 24) ? MAX_ENTRIES * 25 : Number(sz);
    const ent = entTag === undefined ? 0 : Number((this.get(entTag) ?? 0n) & 0xffffn);
    const r = this.#need(a, n, "relocation table");
    return new RelocationTable(r.view, r.offset, n, rela, ent, this.space.where(a));
  }
  /** DT_RELA/DT_RELASZ. */
  get rela(): RelocationTable | undefined {
    return this.#relocs(DT_RELA, DT_RELASZ, DT_RELAENT, true);
  }
  /** DT_REL/DT_RELSZ. */
  get rel(): RelocationTable | undefined {
    return this.#relocs(DT_REL, DT_RELSZ, DT_RELENT, false);
  }
  /** DT_JMPREL/DT_PLTRELSZ, REL or RELA per DT_PLTREL. */
  get jmprel(): RelocationTable | undefined {
    const rela = (this.get(DT_PLTREL) ?? BigInt(DT_RELA)) === BigInt(DT_RELA);
    return this.#relocs(DT_JMPREL, DT_PLTRELSZ, rela ? DT_RELAENT : DT_RELENT, rela);
  }
  /** DT_RELR decoded to the (unrelocated) addresses it covers. */
  get relr(): bigint[] {
    const a = this.ptr(DT_RELR);
    const sz = this.get(DT_RELRSZ);
    if (a === undefined || sz === undefined) return [];
    const n = sz > BigInt(MAX_ENTRIES) ? MAX_ENTRIES : Number(sz);
    const r = this.#need(a, n, "RELR table");
    return decodeRelr(r.view, r.offset, n, this.space.where(a));
  }
}

/** A dynamic relocation table found through DT_* tags. */
export interface DynamicRelocationTable {
  /** "DT_RELA", "DT_REL", "DT_JMPREL". */
  name: string;
  table: RelocationTable;
  symbols?: SymbolTable;
  /** The table's address (as `space.read` takes it). */
  address: bigint;
}

/** DT_RELA, DT_REL and DT_JMPREL tables, in that order (the dynamic linker's order). */
export function dynamicRelocationTables(d: DynamicTables): DynamicRelocationTable[] {
  const out: DynamicRelocationTable[] = [];
  const sym = d.symbols;
  const add = (name: string, tag: number, t: RelocationTable | undefined) => {
    if (t) out.push({ name, table: t, symbols: sym, address: d.ptr(tag)! });
  };
  add("DT_RELA", DT_RELA, d.rela);
  add("DT_REL", DT_REL, d.rel);
  add("DT_JMPREL", DT_JMPREL, d.jmprel);
  return out;
}

/** Flags text as readelf prints DT_FLAGS ("BIND_NOW") and DT_FLAGS_1 ("NOW PIE"). */
export function flagsText(tag: number, value: bigint): string {
  const table = tag === DT_FLAGS ? DF_NAMES : DF_1_NAMES;
  const parts: string[] = [];
  let rest = value;
  for (const [bit, name] of table) {
    if (value & BigInt(bit)) {
      parts.push(name);
      rest &= ~BigInt(bit);
    }
  }
  if (rest !== 0n) parts.push(`0x${rest.toString(16)}`);
  return parts.join(" ");
}

/** Tags whose value is a string table offset. */
export const STRING_TAGS = new Set<number>([DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_AUXILIARY, DT_FILTER, DT_CONFIG, DT_DEPAUDIT, DT_AUDIT]);
