/**
 * Pieces shared by the LZ4 and LZF encoders (both LZ77 over a 4-byte hash of the input):
 * the position table, the hash, word-at-a-time match extension, and output buffers.
 * Everything here is synchronous: a compressor fills the shared scratch and table, copies its
 * result out and returns before anyone else can use them.
 */

/** log2 of the position table size: 16 Ki entries, as the reference fast modes use. */
export const HASH_LOG = 14;
const HASH_SHIFT = 32 - HASH_LOG;
/** 2654435761 (Knuth) as an int32, for Math.imul. */
const HASH_PRIME = -1640531535;

/** Position table of the compressors, built once and cleared per call (deterministic output). */
export const positions = new Int32Array(1 << HASH_LOG);

/** Hash of 4 bytes read as one int32. */
export function hash32(word: number): number {
  return Math.imul(word, HASH_PRIME) >>> HASH_SHIFT;
}

/**
 * Extends a match of `length` equal bytes at `ref` and `at` (ref < at) up to `maxLength`,
 * a word at a time; the first differing byte of a word is the lowest set byte of a XOR b.
 */
export function matchLength(view: DataView, ref: number, at: number, length: number, maxLength: number): number {
  while (length + 4 <= maxLength) {
    const diff = view.getInt32(ref + length, true) ^ view.getInt32(at + length, true);
    if (diff !== 0) return length + ((31 - Math.clz32(diff & -diff)) >>> 3);
    length += 4;
  }
  while (length < maxLength && view.getUint8(ref + length) === view.getUint8(at + length)) length++;
  return length;
}

/** Outputs up to this size are built in a reused scratch buffer, then copied out exactly. */
const SCRATCH_LIMIT = 4 << 20;
let scratch = new Uint8Array(0);

/** A buffer of exactly `size` bytes: a view of the shared scratch when small enough. */
export function scratchFor(size: number): Uint8Array {
  if (size > SCRATCH_LIMIT) return new Uint8Array(size);
  if (scratch.length < size) scratch = new Uint8Array(Math.max(size, 64 << 10));
  return scratch.subarray(0, size);
}

/**
 * A fresh, unzeroed buffer of exactly `size` bytes, as a plain Uint8Array. Measured here:
 * `new Uint8Array(1 MiB)` costs ~300 µs (zeroing and page faults, as long as decoding the
 * megabyte), `Buffer.allocUnsafeSlow` ~30 µs. Safe because every caller fills all `size`
 * bytes before returning it (a decode that succeeds has written [0, rawSize) in order) and
 * drops it on failure.
 */
export function allocOutput(size: number): Uint8Array {
  return new Uint8Array(Buffer.allocUnsafeSlow(size).buffer, 0, size);
}
