/**
 * Relocations: REL and RELA tables (gABI "Relocation") and RELR (gABI 2022 "Relative
 * relocation", DT_RELR / SHT_RELR): a compact list of addresses to which the load bias is added.
 * Type names follow binutils 2.40 for x86-64 and i386 (all), AArch64 (dynamic and common
 * static ones); other types are undefined (callers print the number).
 */
import { ElfError, MAX_ENTRIES } from "./errors.js";
import { EM_386, EM_AARCH64, EM_X86_64, REL32, REL64, R_386_NAMES, R_AARCH64_NAMES, R_X86_64_NAMES } from "./raw.js";
import type { ByteView } from "./view.js";

export interface Relocation {
  /** r_offset: the address (or, in ET_REL, the section offset) to patch. */
  offset: bigint;
  /** Raw r_info. */
  info: bigint;
  type: number;
  /** Index into the linked symbol table (0: none). */
  symbolIndex: number;
  /** r_addend for RELA; 0n for REL (the addend is in the patched word). */
  addend: bigint;
  hasAddend: boolean;
}

/** Relocation type name for a machine ("R_X86_64_JUMP_SLOT"); undefined when unknown. */
export function relocationTypeName(machine: number, type: number): string | undefined {
  if (machine === EM_X86_64) return R_X86_64_NAMES[type] ?? (type === 250 ? "R_X86_64_GNU_VTINHERIT" : type === 251 ? "R_X86_64_GNU_VTENTRY" : undefined);
  if (machine === EM_386) return R_386_NAMES[type];
  if (machine === EM_AARCH64) return R_AARCH64_NAMES[type];
  return undefined;
}

/**
 * A REL/RELA table as a lazy list. r_info splits as (sym << 32 | type) on ELF64 and
 * (sym << 8 | type) on ELF32.
 */
export class RelocationTable {
  readonly count: number;
  readonly hasAddend: boolean;
  readonly entsize: number;
  readonly #v: ByteView;
  readonly #off: number;

  constructor(v: ByteView, off: number, size: number, hasAddend: boolean, entsize: number, origin: number | bigint) {
    const L = v.is64 ? REL64 : REL32;
    const min = hasAddend ? L.relaSize : L.size;
    if (entsize === 0) entsize = min;
    if (entsize < min) throw new ElfError("ELF_BAD_ENTSIZE", `relocation entry size ${entsize} smaller than ${min}`, origin);
    const count = Math.floor(size / entsize);
    if (count > MAX_ENTRIES) throw new ElfError("ELF_LIMIT", `${count} relocations exceed the limit of ${MAX_ENTRIES}`, origin);
    v.need(off, count * entsize, `relocation table (${count} entries)`);
    this.count = count;
    this.hasAddend = hasAddend;
    this.entsize = entsize;
    this.#v = v;
    this.#off = off;
  }

  /** r_offset of entry i as bigint. */
  offsetAt(i: number): bigint {
    return this.#v.word(this.#off + i * this.entsize);
  }

  get(i: number): Relocation {
    if (!(i >= 0 && i < this.count)) throw new ElfError("ELF_BAD_INDEX", `relocation index ${i} outside table of ${this.count}`, this.#off);
    const v = this.#v;
    const p = this.#off + i * this.entsize;
    const L = v.is64 ? REL64 : REL32;
    const offset = v.word(p + L.offset);
    let type: number;
    let symbolIndex: number;
    let info: bigint;
    if (v.is64) {
      const lo = v.dv.getUint32(p + L.info + (v.le ? 0 : 4), v.le);
      const hi = v.dv.getUint32(p + L.info + (v.le ? 4 : 0), v.le);
      type = lo;
      symbolIndex = hi;
      info = (BigInt(hi) << 32n) | BigInt(lo);
    } else {
      const w = v.u32(p + L.info);
      type = w & 0xff;
      symbolIndex = w >>> 8;
      info = BigInt(w);
    }
    const addend = this.hasAddend ? v.sword(p + L.addend) : 0n;
    return { offset, info, type, symbolIndex, addend, hasAddend: this.hasAddend };
  }

  *[Symbol.iterator](): Iterator<Relocation> {
    for (let i = 0; i < this.count; i++) yield this.get(i);
  }

  all(): Relocation[] {
    const out: Relocation[] = new Array(this.count);
    for (let i = 0; i < this.count; i++) out[i] = this.get(i);
    return out;
  }
}

/**
 * Decode a RELR table: an even entry is an address (the next word to relocate); an odd entry
 * is a bitmap of the (wordsize*8 - 1) words following the last address, bit i+1 ⇒ word i.
 * Returns the addresses, unrelocated. Bounded by MAX_RELR_ADDRESSES.
 */
/** RELR expands up to 63 addresses per word: cap the expansion, not just the table. */
export const MAX_RELR_ADDRESSES = 1 << 23;

export function decodeRelr(v: ByteView, off: number, size: number, origin: number | bigint): bigint[] {
  const w = v.is64 ? 8 : 4;
  const n = Math.floor(size / w);
  v.need(off, n * w, `RELR table (${n} entries)`);
  const out: bigint[] = [];
  const W = BigInt(w);
  const bitsPerEntry = w * 8 - 1;
  let base = 0n;
  for (let i = 0; i < n; i++) {
    const p = off + i * w;
    if (v.is64) {
      const lo = v.dv.getUint32(p + (v.le ? 0 : 4), v.le);
      if ((lo & 1) === 0) {
        const a = v.u64(p);
        out.push(a);
        base = a + W;
      } else {
        const hi = v.dv.getUint32(p + (v.le ? 4 : 0), v.le);
        // Bits 1..31 in lo, 32..63 in hi.
        for (let b = 1; b < 32; b++) if ((lo >>> b) & 1) out.push(base + BigInt(b - 1) * W);
        for (let b = 0; b < 32; b++) if ((hi >>> b) & 1) out.push(base + BigInt(b + 31) * W);
        base += BigInt(bitsPerEntry) * W;
      }
    } else {
      const e = v.u32(p);
      if ((e & 1) === 0) {
        out.push(BigInt(e));
        base = BigInt(e) + W;
      } else {
        for (let b = 1; b < 32; b++) if ((e >>> b) & 1) out.push(base + BigInt(b - 1) * W);
        base += BigInt(bitsPerEntry) * W;
      }
    }
    if (out.length > MAX_RELR_ADDRESSES) throw new ElfError("ELF_LIMIT", `RELR table expands past ${MAX_RELR_ADDRESSES} addresses`, origin);
  }
  return out;
}
