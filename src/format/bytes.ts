/**
 * Bounds-checked little-endian cursors over record payloads. The reader knows the absolute
 * file offset of its first byte so every error names where in the file it happened.
 */
import { ImageError, type ImageErrorCode, type ImageErrorWhere } from "./errors.js";

const utf8 = new TextDecoder("utf-8", { fatal: false });
const utf8Encoder = new TextEncoder();

export class ByteReader {
  readonly view: DataView;
  pos = 0;

  constructor(
    readonly bytes: Uint8Array,
    /** Absolute file offset of bytes[0]: errors report `base + pos`. */
    readonly base: number,
    readonly where: ImageErrorWhere,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.pos;
  }

  /** A field out of range (rule P3 unless told: P1 fixed_size, P2 a VARIABLE field past the payload). */
  fail(code: ImageErrorCode, detail: string, at = this.pos, rule = "P3"): never {
    throw new ImageError(code, detail, { ...this.where, offset: this.base + at, rule });
  }

  need(n: number, what: string): void {
    if (n > this.bytes.length - this.pos) this.fail("BAD_FIELD", `${what} needs ${n} bytes, ${this.remaining} left in the payload`, this.pos, "P2");
  }

  u8(): number {
    this.need(1, "u8");
    return this.bytes[this.pos++];
  }
  u16(): number {
    this.need(2, "u16");
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4, "u32");
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.need(8, "u64");
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** A view (no copy) of the next n bytes. */
  bytesView(n: number, what: string): Uint8Array {
    this.need(n, what);
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  /** STR: u32 length + bytes, kept as raw bytes. */
  strBytes(what: string): Uint8Array {
    const len = this.u32();
    return this.bytesView(len, what);
  }
  /** STR decoded as UTF-8 (invalid sequences become U+FFFD; use strBytes for exact bytes). */
  str(what: string): string {
    return utf8.decode(this.strBytes(what));
  }

  /** Read the FIXED size prefix, refusing sizes below the 1.0 size or beyond the payload. */
  fixedSize(minimum: number, typeName: string): number {
    const size = this.u32();
    if (size < minimum || size > this.bytes.length) {
      this.fail("BAD_FIELD", `${typeName} fixed_size ${size} outside [${minimum}, ${this.bytes.length}]`, this.pos - 4, "P1");
    }
    return size;
  }

  /** A u32 count of entries of `entrySize` bytes each, checked against what is left. */
  count(entrySize: number, what: string): number {
    const n = this.u32();
    if (n * entrySize > this.remaining) this.fail("BAD_FIELD", `${what} count ${n} exceeds the payload`, this.pos - 4, "P2");
    return n;
  }

  u32At(off: number): number {
    return this.view.getUint32(off, true);
  }
  u64At(off: number): bigint {
    return this.view.getBigUint64(off, true);
  }
}

/** Growable little-endian writer (doubling), for metadata payloads. */
export class ByteWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.reserve(1);
    this.buf[this.length++] = v;
    return this;
  }
  u16(v: number): this {
    this.reserve(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
    return this;
  }
  u32(v: number): this {
    this.reserve(4);
    this.view.setUint32(this.length, v >>> 0, true);
    this.length += 4;
    return this;
  }
  u64(v: bigint | number): this {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt.asUintN(64, BigInt(v)), true);
    this.length += 8;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }
  zeros(n: number): this {
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
    return this;
  }
  str(s: string | Uint8Array): this {
    const b = typeof s === "string" ? utf8Encoder.encode(s) : s;
    return this.u32(b.length).bytes(b);
  }
  /** Patch a u32 written earlier (reserve-then-patch for sizes). */
  patchU32(at: number, v: number): this {
    this.view.setUint32(at, v >>> 0, true);
    return this;
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
