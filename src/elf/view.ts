/**
 * Endian-aware field access over one Uint8Array, decided once per file and passed down
 * (gimli `object` passes `Endianness` to every accessor; we keep it in one small object).
 * Every read is bounds-checked by DataView; callers check whole tables up front so that a
 * RangeError can only mean a bug, and `need` turns missing bytes into ELF_TRUNCATED.
 */
import { ElfError } from "./errors.js";

export class ByteView {
  readonly bytes: Uint8Array;
  readonly dv: DataView;
  readonly le: boolean;
  readonly is64: boolean;
  readonly length: number;

  constructor(bytes: Uint8Array, le: boolean, is64: boolean) {
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.le = le;
    this.is64 = is64;
    this.length = bytes.length;
  }

  /** Throw ELF_TRUNCATED unless [off, off+len) lies inside the data. */
  need(off: number, len: number, what: string): void {
    if (!(off >= 0 && len >= 0 && off + len <= this.length)) {
      const left = Math.max(0, this.length - Math.max(0, off));
      throw new ElfError("ELF_TRUNCATED", `${what} needs ${len} bytes, only ${left} left in ${this.length}`, off);
    }
  }
  has(off: number, len: number): boolean {
    return off >= 0 && len >= 0 && off + len <= this.length;
  }

  u8(off: number): number {
    return this.bytes[off];
  }
  u16(off: number): number {
    return this.dv.getUint16(off, this.le);
  }
  u32(off: number): number {
    return this.dv.getUint32(off, this.le);
  }
  i32(off: number): number {
    return this.dv.getInt32(off, this.le);
  }
  u64(off: number): bigint {
    return this.dv.getBigUint64(off, this.le);
  }
  i64(off: number): bigint {
    return this.dv.getBigInt64(off, this.le);
  }
  /** An address/offset-sized word (Elf32_Addr or Elf64_Addr) as bigint. */
  word(off: number): bigint {
    return this.is64 ? this.dv.getBigUint64(off, this.le) : BigInt(this.dv.getUint32(off, this.le));
  }
  /** A signed word (Elf32_Sword/Elf64_Sxword) as bigint. */
  sword(off: number): bigint {
    return this.is64 ? this.dv.getBigInt64(off, this.le) : BigInt(this.dv.getInt32(off, this.le));
  }
  /**
   * A word as a JS number when it fits in 2^53 (offsets and sizes inside a buffer always do);
   * otherwise +Infinity, which fails every bounds check.
   */
  wordNum(off: number): number {
    if (!this.is64) return this.dv.getUint32(off, this.le);
    const lo = this.dv.getUint32(off + (this.le ? 0 : 4), this.le);
    const hi = this.dv.getUint32(off + (this.le ? 4 : 0), this.le);
    return hi < 0x200000 ? hi * 4294967296 + lo : Infinity;
  }
  /** A sub-view sharing endianness and class. */
  sub(off: number, len: number): ByteView {
    return new ByteView(this.bytes.subarray(off, off + len), this.le, this.is64);
  }
}

/** Convert a bigint file offset/size to number, Infinity when it cannot index a buffer. */
export function toIndex(v: bigint): number {
  return v <= 0x1fffffffffffffn ? Number(v) : Infinity;
}
