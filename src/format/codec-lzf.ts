/**
 * LZF, byte-compatible with liblzf (`lzf_compress` / `lzf_decompress`, no header): the codec
 * of the CryoPID lineage and of the user's lzfjs. docs/FORMAT.md §4.8 codec 2.
 *
 * The stream is a list of items, each starting with a control byte (lzf_d.c):
 *
 *     ctrl < 32     literal run: the next ctrl + 1 bytes (1 … 32) are copied as they are
 *     ctrl ≥ 32     back-reference: len = ctrl >> 5; when len = 7 the next byte is added;
 *                   then one byte `low`; the match is len + 2 bytes (3 … 264) copied from
 *                   ((ctrl & 0x1f) << 8 | low) + 1 bytes back (1 … 8192)
 *
 * There is no end marker: the stream ends with its last item. Our compressor is a greedy hash
 * matcher like liblzf's default (VERY_FAST) mode, but it hashes and matches 4 bytes rather than
 * 3: a 3-byte match saves at most one byte and often hides a longer match that starts just
 * after it, so the 4-byte matcher compresses better (measured: ELF 1.737 vs 1.718, heap-like
 * memory 2.356 vs 2.262) at the same speed. Its output differs from liblzf's byte for byte
 * but any conforming decoder (liblzf, lzfjs, ours) reads it.
 *
 * The decoder trusts nothing: each item is checked against the input end, the output end and
 * the output start before any byte moves, and every item consumes input (so it terminates).
 */
import { CodecError } from "./codec-error.js";
import { allocOutput, hash32, matchLength, positions, scratchFor } from "./codec-common.js";

const MAX_LITERAL_RUN = 32;
/** Back-references run 3 … 264 bytes; our compressor looks for matches of 4 or more. */
const SEARCH_MATCH = 4;
const MAX_MATCH = 264; // 7 + 255 + 2
const MAX_DISTANCE = 8192; // 13-bit offset + 1

/** After 2^SKIP_TRIGGER positions without a match the search step grows by one. */
const SKIP_TRIGGER = 5;

/**
 * Writes src[from, to) as literal runs of at most 32 bytes; returns the new output position,
 * or −1 when they do not fit in dst.
 */
function writeLiterals(src: Uint8Array, from: number, to: number, dst: Uint8Array, op: number): number {
  const count = to - from;
  if (count === 0) return op;
  const runs = Math.ceil(count / MAX_LITERAL_RUN);
  if (op + count + runs > dst.length) return -1;
  while (from < to) {
    const run = Math.min(MAX_LITERAL_RUN, to - from);
    dst[op++] = run - 1;
    const runEnd = from + run;
    while (from < runEnd) dst[op++] = src[from++];
  }
  return op;
}

/**
 * Compresses `src` into `dst`; returns the compressed length, or 0 when it does not fit in
 * `dst` — liblzf's `lzf_compress` contract (an empty `src` also gives 0). Pass a `dst` of
 * `src.length − 1` bytes to ask for "only if it shrinks"; `src.length + ⌈src.length / 32⌉`
 * bytes always suffice.
 */
export function lzfCompressInto(src: Uint8Array, dst: Uint8Array): number {
  const end = src.length;
  if (end === 0) return 0;
  const dstEnd = dst.length;
  const srcView = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const table = positions;
  table.fill(0);
  // Matches are looked for while 4 bytes can be read at ip; the last 3 bytes are literals.
  const searchEnd = end - SEARCH_MATCH;
  let op = 0;
  let literalStart = 0;
  let ip = 0;
  let misses = 0;
  while (ip <= searchEnd) {
    const word = srcView.getInt32(ip, true);
    const slot = hash32(word);
    const ref = table[slot];
    table[slot] = ip;
    const distance = ip - ref;
    if (distance > 0 && distance <= MAX_DISTANCE && srcView.getInt32(ref, true) === word) {
      const maxLength = Math.min(MAX_MATCH, end - ip);
      const length = matchLength(srcView, ref, ip, SEARCH_MATCH, maxLength);

      op = writeLiterals(src, literalStart, ip, dst, op);
      const lengthCode = length - 2;
      const offsetCode = distance - 1;
      if (op < 0 || op + (lengthCode < 7 ? 2 : 3) > dstEnd) return 0;
      if (lengthCode < 7) {
        dst[op++] = (lengthCode << 5) | (offsetCode >>> 8);
      } else {
        dst[op++] = (7 << 5) | (offsetCode >>> 8);
        dst[op++] = lengthCode - 7;
      }
      dst[op++] = offsetCode & 0xff;

      ip += length;
      literalStart = ip;
      misses = 0;
      // Remember the two positions just before ip, as liblzf does.
      if (ip <= searchEnd) {
        table[hash32(srcView.getInt32(ip - 2, true))] = ip - 2;
        table[hash32(srcView.getInt32(ip - 1, true))] = ip - 1;
      }
    } else {
      // Step further the longer nothing matched: incompressible stretches (random pages,
      // compressed files) cost little, as in LZ4's fast mode. liblzf steps by one; the format
      // does not care.
      ip += 1 + (misses++ >>> SKIP_TRIGGER);
    }
  }
  op = writeLiterals(src, literalStart, end, dst, op);
  return op < 0 ? 0 : op;
}

/**
 * Compresses `src` with LZF. Returns `undefined` when the result would not be smaller than
 * the input (liblzf returns 0 then; callers store the chunk uncompressed), so an empty input
 * also gives `undefined`.
 */
export function lzfCompress(src: Uint8Array): Uint8Array | undefined {
  if (src.length < 2) return undefined;
  const dst = scratchFor(src.length - 1);
  const length = lzfCompressInto(src, dst);
  if (length === 0) return undefined;
  const out = allocOutput(length);
  out.set(dst.subarray(0, length));
  return out;
}

/**
 * Decodes an LZF stream into `dst`; returns the number of bytes written (≤ dst.length).
 * Bytes of `dst` past the returned count may have been overwritten. Throws CodecError on
 * malformed input, including output that would not fit in `dst`.
 */
export function lzfDecompressInto(src: Uint8Array, dst: Uint8Array): number {
  const srcEnd = src.length;
  const dstEnd = dst.length;
  const srcView = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const dstView = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  let ip = 0;
  let op = 0;
  while (ip < srcEnd) {
    const itemAt = ip;
    const ctrl = src[ip++];
    if (ctrl < 32) {
      const run = ctrl + 1;
      if (run > srcEnd - ip) throw new CodecError(`LZF literal run of ${run} bytes runs past the end of the input`, itemAt);
      if (run > dstEnd - op) throw new CodecError(`LZF literal run of ${run} bytes overflows the ${dstEnd}-byte output`, itemAt);
      if (run <= 16 && srcEnd - ip >= 16 && dstEnd - op >= 16) {
        // Room to spare: a fixed 8 or 16 bytes as unaligned words; bytes past the run are
        // rewritten by what follows.
        dstView.setInt32(op, srcView.getInt32(ip, true), true);
        dstView.setInt32(op + 4, srcView.getInt32(ip + 4, true), true);
        if (run > 8) {
          dstView.setInt32(op + 8, srcView.getInt32(ip + 8, true), true);
          dstView.setInt32(op + 12, srcView.getInt32(ip + 12, true), true);
        }
        ip += run;
        op += run;
      } else {
        const runEnd = ip + run;
        while (ip < runEnd) dst[op++] = src[ip++];
      }
      continue;
    }

    let length = ctrl >>> 5;
    if (length === 7) {
      if (ip >= srcEnd) throw new CodecError("LZF back-reference length cut off by the end of the input", itemAt);
      length += src[ip++];
    }
    if (ip >= srcEnd) throw new CodecError("LZF back-reference offset cut off by the end of the input", itemAt);
    const distance = (((ctrl & 0x1f) << 8) | src[ip++]) + 1;
    length += 2;
    if (distance > op) {
      throw new CodecError(`LZF back-reference distance ${distance} points before the output start (${op} bytes written)`, itemAt);
    }
    if (length > dstEnd - op) throw new CodecError(`LZF back-reference of ${length} bytes overflows the ${dstEnd}-byte output`, itemAt);

    let from = op - distance;
    if (length <= 16 && distance >= 4 && dstEnd - op >= 16) {
      // In order, 4 bytes at a time: with distance ≥ 4 each word's source is already written.
      dstView.setInt32(op, dstView.getInt32(from, true), true);
      dstView.setInt32(op + 4, dstView.getInt32(from + 4, true), true);
      if (length > 8) {
        dstView.setInt32(op + 8, dstView.getInt32(from + 8, true), true);
        dstView.setInt32(op + 12, dstView.getInt32(from + 12, true), true);
      }
      op += length;
    } else if (length < 32 || distance < length) {
      // Forward byte copy: right for overlapping references too (they repeat the last bytes).
      const matchEnd = op + length;
      while (op < matchEnd) dst[op++] = dst[from++];
    } else {
      dst.copyWithin(op, from, from + length);
      op += length;
    }
  }
  return op;
}

/**
 * Decodes an LZF stream that must expand to exactly `rawSize` bytes. Allocates exactly
 * `rawSize` bytes; anything else — short, long or malformed — is a CodecError.
 */
export function lzfDecompress(src: Uint8Array, rawSize: number): Uint8Array {
  if (!Number.isSafeInteger(rawSize) || rawSize < 0) throw new CodecError(`raw size ${rawSize} is not a byte count`);
  const dst = allocOutput(rawSize);
  const written = lzfDecompressInto(src, dst);
  if (written !== rawSize) throw new CodecError(`LZF data decodes to ${written} bytes, expected ${rawSize}`, src.length);
  return dst;
}
