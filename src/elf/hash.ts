/**
 * Symbol hash tables: SysV DT_HASH (gABI "Hash Table") and GNU DT_GNU_HASH. Used to look a
 * name up without scanning, and, in images without section headers, to learn how many
 * dynamic symbols there are (DT_SYMTAB carries no size).
 */
import { ElfError, MAX_ENTRIES } from "./errors.js";
import type { ByteView } from "./view.js";
import type { SymbolTable } from "./symbol.js";

/** The gABI ELF hash (elf_hash). */
export function elfHash(name: Uint8Array): number {
  let h = 0;
  for (let i = 0; i < name.length; i++) {
    h = ((h << 4) + name[i]) >>> 0;
    const g = h & 0xf0000000;
    if (g !== 0) h ^= g >>> 24;
    h &= ~g >>> 0;
    h >>>= 0;
  }
  return h >>> 0;
}

/** The GNU hash (dl_new_hash): h = h * 33 + c, from 5381. */
export function gnuHash(name: Uint8Array): number {
  let h = 5381;
  for (let i = 0; i < name.length; i++) h = (Math.imul(h, 33) + name[i]) >>> 0;
  return h >>> 0;
}

const enc = new TextEncoder();

export class SysvHashTable {
  readonly nbucket: number;
  readonly nchain: number;
  readonly #v: ByteView;
  readonly #off: number;

  /** DT_HASH: nbucket, nchain, bucket[nbucket], chain[nchain], all Elf32_Word (8-byte on s390x/alpha, not handled). */
  constructor(v: ByteView, off: number, origin: number | bigint) {
    if (!v.has(off, 8)) throw new ElfError("ELF_TRUNCATED", "hash table header runs past end of data", origin);
    this.nbucket = v.u32(off);
    this.nchain = v.u32(off + 4);
    if (this.nbucket > MAX_ENTRIES || this.nchain > MAX_ENTRIES || !v.has(off + 8, 4 * (this.nbucket + this.nchain))) {
      throw new ElfError("ELF_TRUNCATED", `hash table (${this.nbucket} buckets, ${this.nchain} chains) runs past end of data`, origin);
    }
    this.#v = v;
    this.#off = off;
  }

  /** Number of symbols in the table it indexes: nchain, by definition. */
  get symbolCount(): number {
    return this.nchain;
  }

  find(name: string, syms: SymbolTable, accept: (i: number) => boolean): number {
    if (this.nbucket === 0) return -1;
    const want = enc.encode(name);
    const h = elfHash(want);
    const v = this.#v;
    let i = v.u32(this.#off + 8 + 4 * (h % this.nbucket));
    for (let steps = 0; i !== 0 && steps <= this.nchain; steps++) {
      if (i >= this.nchain || i >= syms.count) return -1;
      if (syms.nameEquals(i, want) && accept(i)) return i;
      i = v.u32(this.#off + 8 + 4 * this.nbucket + 4 * i);
    }
    return -1;
  }
}

export class GnuHashTable {
  readonly nbuckets: number;
  readonly symoffset: number;
  readonly bloomSize: number;
  readonly bloomShift: number;
  readonly #v: ByteView;
  readonly #buckets: number;
  readonly #chains: number;
  readonly #wordBytes: number;
  readonly #bloom: number;
  readonly #chainLimit: number;

  /**
   * DT_GNU_HASH: nbuckets, symoffset, bloom_size, bloom_shift, bloom[bloom_size] (ELFCLASS
   * words), buckets[nbuckets], then one chain word per symbol from symoffset on, the last of
   * each chain with bit 0 set. `avail` bounds the chain array (table size when known).
   */
  constructor(v: ByteView, off: number, origin: number | bigint, avail?: number) {
    if (!v.has(off, 16)) throw new ElfError("ELF_TRUNCATED", "GNU hash header runs past end of data", origin);
    this.nbuckets = v.u32(off);
    this.symoffset = v.u32(off + 4);
    this.bloomSize = v.u32(off + 8);
    this.bloomShift = v.u32(off + 12);
    this.#wordBytes = v.is64 ? 8 : 4;
    if (this.nbuckets > MAX_ENTRIES || this.bloomSize > MAX_ENTRIES) {
      throw new ElfError("ELF_BAD_TABLE", `GNU hash with ${this.nbuckets} buckets and ${this.bloomSize} bloom words`, origin);
    }
    this.#bloom = off + 16;
    this.#buckets = this.#bloom + this.bloomSize * this.#wordBytes;
    this.#chains = this.#buckets + 4 * this.nbuckets;
    if (!v.has(this.#bloom, this.#chains - this.#bloom)) {
      throw new ElfError("ELF_TRUNCATED", `GNU hash (${this.nbuckets} buckets) runs past end of data`, origin);
    }
    const end = avail !== undefined ? Math.min(v.length, off + avail) : v.length;
    this.#chainLimit = Math.max(0, Math.floor((end - this.#chains) / 4));
    this.#v = v;
  }

  /** No bucket holds a symbol: the table hashes nothing (symbolCount is then just symoffset). */
  get isEmpty(): boolean {
    for (let b = 0; b < this.nbuckets; b++) if (this.#v.u32(this.#buckets + 4 * b) !== 0) return false;
    return true;
  }

  /**
   * Number of dynamic symbols: one past the highest symbol any bucket chain reaches (the
   * dynamic linker's own method; symbols below symoffset are not hashed). Bounded by the bytes
   * available, so a chain without its end bit cannot run away.
   */
  get symbolCount(): number {
    const v = this.#v;
    let max = 0;
    for (let b = 0; b < this.nbuckets; b++) {
      const s = v.u32(this.#buckets + 4 * b);
      if (s > max) max = s;
    }
    if (max === 0) return this.symoffset;
    if (max < this.symoffset) throw new ElfError("ELF_BAD_TABLE", `GNU hash bucket ${max} below symoffset ${this.symoffset}`, this.#buckets);
    let k = max - this.symoffset;
    for (;;) {
      if (k >= this.#chainLimit) throw new ElfError("ELF_TRUNCATED", "GNU hash chain runs past end of data", this.#chains + 4 * k);
      if (v.u32(this.#chains + 4 * k) & 1) break;
      k++;
    }
    return this.symoffset + k + 1;
  }

  find(name: string, syms: SymbolTable, accept: (i: number) => boolean): number {
    if (this.nbuckets === 0) return -1;
    const want = enc.encode(name);
    const h = gnuHash(want);
    const v = this.#v;
    // Bloom filter (two bits per name) first: most misses end here.
    if (this.bloomSize > 0) {
      const bits = this.#wordBytes * 8;
      const wi = Math.floor(h / bits) % this.bloomSize;
      const wordOff = this.#bloom + wi * this.#wordBytes;
      const b1 = h % bits;
      const b2 = (h >>> (this.bloomShift & 31)) % bits;
      const bit = (bitIndex: number): number => {
        if (this.#wordBytes === 4) return (v.u32(wordOff) >>> bitIndex) & 1;
        const half = bitIndex >= 32 ? 1 : 0;
        const word = v.u32(wordOff + (v.le ? half * 4 : (1 - half) * 4));
        return (word >>> (bitIndex & 31)) & 1;
      };
      if (!bit(b1) || !bit(b2)) return -1;
    }
    let i = v.u32(this.#buckets + 4 * (h % this.nbuckets));
    if (i === 0 || i < this.symoffset) return -1;
    for (;;) {
      const k = i - this.symoffset;
      if (k >= this.#chainLimit || i >= syms.count) return -1;
      const ch = v.u32(this.#chains + 4 * k);
      if ((ch | 1) === (h | 1) && syms.nameEquals(i, want) && accept(i)) return i;
      if (ch & 1) return -1;
      i++;
    }
  }
}
