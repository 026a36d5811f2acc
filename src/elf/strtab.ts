/**
 * String tables (SHT_STRTAB, DT_STRTAB): NUL-terminated names addressed by byte offset.
 * Strings are decoded on demand, never all at once: a 7 MiB .strtab costs nothing until a name
 * is asked for.
 */
import { ElfError } from "./errors.js";

const utf8 = new TextDecoder("utf-8");

/** Node's Buffer when present: its utf8Slice decodes a range without a subarray. */
interface NodeBufferLike extends Uint8Array {
  utf8Slice(start: number, end: number): string;
}
const NodeBuffer = (globalThis as unknown as { Buffer?: { from(b: ArrayBufferLike, off: number, len: number): NodeBufferLike } }).Buffer;

/** A decoder bound to one byte array (the string table): native slicing when on Node. */
export function makeDecoder(bytes: Uint8Array): (start: number, end: number) => string {
  if (NodeBuffer) {
    const b = NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (typeof b.utf8Slice === "function") return (start, end) => (end > start ? b.utf8Slice(start, end) : "");
  }
  return (start, end) => decodeString(bytes, start, end);
}

/** Decode bytes [start, end) as UTF-8, with an allocation-light path for short ASCII names. */
export function decodeString(bytes: Uint8Array, start: number, end: number): string {
  const len = end - start;
  if (len <= 0) return "";
  if (len <= 256) {
    let ascii = true;
    for (let i = start; i < end; i++) {
      if (bytes[i] >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  }
  return utf8.decode(bytes.subarray(start, end));
}

export class StringTable {
  /** The table's bytes (a zero-copy subarray of the file or memory read). */
  readonly bytes: Uint8Array;
  /** File offset (or vaddr) of byte 0, for error offsets. */
  readonly origin: number | bigint;

  readonly #decode: (start: number, end: number) => string;

  constructor(bytes: Uint8Array, origin: number | bigint = 0) {
    this.bytes = bytes;
    this.origin = origin;
    this.#decode = makeDecoder(bytes);
  }

  get size(): number {
    return this.bytes.length;
  }

  /** End (exclusive) of the string at `off`: the NUL, or the table end if unterminated. */
  end(off: number): number {
    // A plain loop: names are short, and TypedArray#indexOf costs more to call than to scan.
    const b = this.bytes;
    const n = b.length;
    let e = off;
    while (e < n && b[e] !== 0) e++;
    return e;
  }

  /** The string at byte offset `off`; ELF_BAD_INDEX when `off` is outside the table. */
  get(off: number): string {
    if (!(off >= 0 && off < this.bytes.length)) {
      if (off === 0 && this.bytes.length === 0) return "";
      const o = typeof this.origin === "bigint" ? this.origin + BigInt(off >>> 0) : this.origin + off;
      throw new ElfError("ELF_BAD_INDEX", `string offset ${off} outside string table of ${this.bytes.length} bytes`, o);
    }
    return this.#decode(off, this.end(off));
  }

  /** Like get(), but returns `fallback` (readelf prints "<corrupt>") instead of throwing. */
  getOr(off: number, fallback = "<corrupt>"): string {
    if (!(off >= 0 && off < this.bytes.length)) return off === 0 ? "" : fallback;
    return this.#decode(off, this.end(off));
  }
}
