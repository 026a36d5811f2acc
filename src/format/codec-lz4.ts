/**
 * LZ4 *block* format (no frame): what `LZ4_compress_default` writes and `LZ4_decompress_safe`
 * reads. docs/FORMAT.md §4.8 stores each PAGES chunk as one such block.
 *
 * A block is a list of sequences. Each sequence is
 *
 *     token                 high nibble: literal count, low nibble: match length − 4
 *     [255 … 255, last]     literal count continues while bytes are 255 (when nibble = 15)
 *     literals
 *     offset (u16 LE)       1 … 65535, distance back from the current output position
 *     [255 … 255, last]     match length continues likewise (when nibble = 15)
 *
 * The last sequence has literals only and ends the block. The reference decoder also relies on
 * two end-of-block rules that our encoder keeps (lz4_Block_format.md, "End of block conditions"):
 * the last 5 bytes are always literals, and the last match starts at least 12 bytes before the
 * end. Inputs shorter than 13 bytes are therefore stored as literals only.
 *
 * The decoder trusts nothing: every length, offset and copy is checked against both buffers
 * before it happens, the input position advances on every step (so it always terminates), and
 * it never writes past `dst` nor allocates more than the caller's raw size.
 */
import { CodecError } from "./codec-error.js";
import { allocOutput, hash32, matchLength, positions, scratchFor } from "./codec-common.js";

const MIN_MATCH = 4;
/** The last LAST_LITERALS bytes of a block are literals. */
const LAST_LITERALS = 5;
/** A match starts at least MATCH_FIND_LIMIT bytes before the end of the block. */
const MATCH_FIND_LIMIT = 12;
const MAX_OFFSET = 65535;
/**
 * After 2^SKIP_TRIGGER failed probes the search step grows by one: incompressible data is
 * skipped quickly (the reference's "acceleration 1" heuristic).
 */
const SKIP_TRIGGER = 6;

/**
 * The decoder's fast path runs while this many bytes remain in both buffers: room for 14
 * literals, a 2-byte offset and a 20-byte word copy of an 18-byte match, with slack.
 */
const FAST_MARGIN = 40;

/** Copies shorter than this go byte by byte: cheaper than a call into a builtin. */
const SHORT_COPY = 32;

/** Largest block `lz4CompressBlockInto` can write for `rawSize` input bytes (LZ4_compressBound). */
export function lz4CompressBound(rawSize: number): number {
  return rawSize + Math.floor(rawSize / 255) + 16;
}

/** Writes the 255-continued remainder of a length whose nibble was 15; returns the new position. */
function writeLengthTail(dst: Uint8Array, op: number, rest: number): number {
  while (rest >= 255) {
    dst[op++] = 255;
    rest -= 255;
  }
  dst[op++] = rest;
  return op;
}

/** Token high nibble plus literal bytes src[from, to); returns the new output position. */
function writeLiterals(src: Uint8Array, from: number, to: number, dst: Uint8Array, op: number, tokenAt: number): number {
  const count = to - from;
  if (count >= 15) {
    dst[tokenAt] = 15 << 4;
    op = writeLengthTail(dst, op, count - 15);
  } else {
    dst[tokenAt] = count << 4;
  }
  if (count < SHORT_COPY) {
    for (let i = from; i < to; i++) dst[op++] = src[i];
  } else {
    dst.set(src.subarray(from, to), op);
    op += count;
  }
  return op;
}

/**
 * Compresses `src` as one LZ4 block into `dst`, which must hold `lz4CompressBound(src.length)`
 * bytes; returns the block's length. Greedy single-probe hash matcher, like the reference's
 * fast mode.
 */
export function lz4CompressBlockInto(src: Uint8Array, dst: Uint8Array): number {
  const srcLength = src.length;
  if (dst.length < lz4CompressBound(srcLength)) {
    throw new CodecError(`LZ4 output buffer of ${dst.length} bytes is smaller than the bound ${lz4CompressBound(srcLength)}`);
  }
  let op = 0;
  let anchor = 0; // first input byte not yet written
  if (srcLength > MATCH_FIND_LIMIT) {
    const table = positions;
    table.fill(0);
    const srcView = new DataView(src.buffer, src.byteOffset, src.byteLength);
    const matchStartLimit = srcLength - MATCH_FIND_LIMIT;
    const matchEndLimit = srcLength - LAST_LITERALS;
    let ip = 1;
    table[hash32(srcView.getInt32(0, true))] = 0;

    search: for (;;) {
      // Find a 4-byte match: probe, remember this position, step faster the longer we fail.
      let match = 0;
      let probes = 1 << SKIP_TRIGGER;
      for (;;) {
        if (ip > matchStartLimit) break search;
        const sequence = srcView.getInt32(ip, true);
        const slot = hash32(sequence);
        match = table[slot];
        table[slot] = ip;
        if (ip - match <= MAX_OFFSET && srcView.getInt32(match, true) === sequence) break;
        ip += probes++ >> SKIP_TRIGGER;
      }
      // Extend backwards over equal bytes the literals would otherwise carry.
      while (ip > anchor && match > 0 && src[ip - 1] === src[match - 1]) {
        ip--;
        match--;
      }
      let tokenAt = op++;
      op = writeLiterals(src, anchor, ip, dst, op, tokenAt);

      // Emit the match, then try the very next position before searching again.
      for (;;) {
        const offset = ip - match;
        dst[op++] = offset & 0xff;
        dst[op++] = offset >>> 8;
        const end = ip + matchLength(srcView, match, ip, MIN_MATCH, matchEndLimit - ip);
        const extra = end - ip - MIN_MATCH;
        if (extra >= 15) {
          dst[tokenAt] |= 15;
          op = writeLengthTail(dst, op, extra - 15);
        } else {
          dst[tokenAt] |= extra;
        }
        ip = end;
        anchor = ip;
        if (ip > matchStartLimit) break search;

        table[hash32(srcView.getInt32(ip - 2, true))] = ip - 2;
        const sequence = srcView.getInt32(ip, true);
        const slot = hash32(sequence);
        match = table[slot];
        table[slot] = ip;
        if (ip - match <= MAX_OFFSET && srcView.getInt32(match, true) === sequence) {
          tokenAt = op++;
          dst[tokenAt] = 0; // no literals before this match
          continue;
        }
        ip++;
        break;
      }
    }
  }
  // Last sequence: the remaining bytes as literals.
  const tokenAt = op++;
  return writeLiterals(src, anchor, srcLength, dst, op, tokenAt);
}

/** Compresses `src` as one LZ4 block (the bytes `LZ4_compress_default` would accept back). */
export function lz4CompressBlock(src: Uint8Array): Uint8Array {
  const dst = scratchFor(lz4CompressBound(src.length));
  const length = lz4CompressBlockInto(src, dst);
  const out = allocOutput(length);
  out.set(dst.subarray(0, length));
  return out;
}

/**
 * Decodes one LZ4 block into `dst`; returns the number of bytes written (≤ dst.length).
 * Bytes of `dst` past the returned count may have been overwritten (copies go a word at a
 * time). Throws CodecError on any malformed input, including output that would not fit in
 * `dst`; `dst` then holds partial output.
 */
export function lz4DecompressBlockInto(src: Uint8Array, dst: Uint8Array): number {
  const srcEnd = src.length;
  const dstEnd = dst.length;
  if (srcEnd === 0) throw new CodecError("LZ4 block is empty", 0);
  const srcView = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const dstView = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  let ip = 0;
  let op = 0;
  for (;;) {
    const token = src[ip++];

    if ((token & 0xf0) !== 0xf0 && (token & 15) !== 15 && srcEnd - ip >= FAST_MARGIN && dstEnd - op >= FAST_MARGIN) {
      // Fast path, the common sequence: ≤ 14 literals and a match of ≤ 18 bytes, far enough
      // from both ends that fixed-size word copies stay inside the buffers and the block
      // cannot end here. Only the offset needs checking.
      const literals = token >>> 4;
      dstView.setInt32(op, srcView.getInt32(ip, true), true);
      dstView.setInt32(op + 4, srcView.getInt32(ip + 4, true), true);
      if (literals > 8) {
        dstView.setInt32(op + 8, srcView.getInt32(ip + 8, true), true);
        dstView.setInt32(op + 12, srcView.getInt32(ip + 12, true), true);
      }
      ip += literals;
      op += literals;
      const offset = srcView.getUint16(ip, true);
      ip += 2;
      if (offset === 0 || offset > op) throw badOffset(offset, op, ip - 2);
      const length = (token & 15) + MIN_MATCH;
      let from = op - offset;
      if (offset >= 4) {
        // In order, 4 bytes at a time: with offset ≥ 4 each word's source is already written.
        dstView.setInt32(op, dstView.getInt32(from, true), true);
        dstView.setInt32(op + 4, dstView.getInt32(from + 4, true), true);
        if (length > 8) {
          dstView.setInt32(op + 8, dstView.getInt32(from + 8, true), true);
          dstView.setInt32(op + 12, dstView.getInt32(from + 12, true), true);
          if (length > 16) dstView.setInt32(op + 16, dstView.getInt32(from + 16, true), true);
        }
        op += length;
      } else {
        const matchEnd = op + length;
        while (op < matchEnd) dst[op++] = dst[from++];
      }
      continue;
    }

    let literals = token >>> 4;
    if (literals === 15) {
      let more: number;
      do {
        if (ip >= srcEnd) throw new CodecError("LZ4 literal length runs past the end of the block", ip);
        more = src[ip++];
        literals += more;
      } while (more === 255);
    }
    if (literals > srcEnd - ip) {
      throw new CodecError(`LZ4 literal run of ${literals} bytes runs past the end of the block`, ip);
    }
    if (literals > dstEnd - op) {
      throw new CodecError(`LZ4 literal run of ${literals} bytes overflows the ${dstEnd}-byte output`, ip);
    }
    if (literals <= 16 && srcEnd - ip >= 16 && dstEnd - op >= 16) {
      // Short run with room to spare: copy a fixed 8 or 16 bytes as unaligned words
      // (predictable branches); the bytes past the run are rewritten by what follows.
      dstView.setInt32(op, srcView.getInt32(ip, true), true);
      dstView.setInt32(op + 4, srcView.getInt32(ip + 4, true), true);
      if (literals > 8) {
        dstView.setInt32(op + 8, srcView.getInt32(ip + 8, true), true);
        dstView.setInt32(op + 12, srcView.getInt32(ip + 12, true), true);
      }
      ip += literals;
      op += literals;
    } else if (literals < SHORT_COPY) {
      const literalsEnd = ip + literals;
      while (ip < literalsEnd) dst[op++] = src[ip++];
    } else {
      dst.set(src.subarray(ip, ip + literals), op);
      ip += literals;
      op += literals;
    }
    if (ip === srcEnd) return op; // the last sequence carries literals only

    if (srcEnd - ip < 2) throw new CodecError("LZ4 match offset cut off by the end of the block", ip);
    const offsetAt = ip;
    const offset = srcView.getUint16(ip, true);
    ip += 2;
    if (offset === 0 || offset > op) throw badOffset(offset, op, offsetAt);

    let length = (token & 15) + MIN_MATCH;
    if (length === 15 + MIN_MATCH) {
      let more: number;
      do {
        if (ip >= srcEnd) throw new CodecError("LZ4 match length runs past the end of the block", ip);
        more = src[ip++];
        length += more;
      } while (more === 255);
    }
    if (length > dstEnd - op) {
      throw new CodecError(`LZ4 match of ${length} bytes overflows the ${dstEnd}-byte output`, offsetAt);
    }

    let from = op - offset;
    if (length <= 16 && offset >= 4 && dstEnd - op >= 16) {
      // Short match with room to spare: a fixed 8 or 16 bytes in 4-byte words, in order; with
      // offset ≥ 4 each word's source was written before it is read, even when overlapping.
      dstView.setInt32(op, dstView.getInt32(from, true), true);
      dstView.setInt32(op + 4, dstView.getInt32(from + 4, true), true);
      if (length > 8) {
        dstView.setInt32(op + 8, dstView.getInt32(from + 8, true), true);
        dstView.setInt32(op + 12, dstView.getInt32(from + 12, true), true);
      }
      op += length;
    } else if (length < SHORT_COPY) {
      // Forward byte copy: also right when the match overlaps its own output (offset < length).
      const matchEnd = op + length;
      while (op < matchEnd) dst[op++] = dst[from++];
    } else if (offset >= length) {
      dst.copyWithin(op, from, from + length);
      op += length;
    } else if (offset === 1) {
      dst.fill(dst[from], op, op + length);
      op += length;
    } else {
      // Overlapping: the output repeats with period `offset`. Copy the period, then keep
      // doubling the copied span — each copy's source ends where its destination starts.
      let done = 0;
      while (done < length) {
        const span = Math.min(length - done, offset + done);
        dst.copyWithin(op + done, from, from + span);
        done += span;
      }
      op += length;
    }
    if (ip >= srcEnd) throw new CodecError("LZ4 block ends with a match instead of literals", ip);
  }
}

function badOffset(offset: number, written: number, offsetAt: number): CodecError {
  if (offset === 0) return new CodecError("LZ4 match offset 0", offsetAt);
  return new CodecError(`LZ4 match offset ${offset} points before the output start (${written} bytes written)`, offsetAt);
}

/**
 * Decodes one LZ4 block that must expand to exactly `rawSize` bytes. Allocates exactly
 * `rawSize` bytes; anything else — short, long or malformed — is a CodecError.
 */
export function lz4DecompressBlock(src: Uint8Array, rawSize: number): Uint8Array {
  checkRawSize(rawSize);
  const dst = allocOutput(rawSize);
  const written = lz4DecompressBlockInto(src, dst);
  if (written !== rawSize) throw new CodecError(`LZ4 block decodes to ${written} bytes, expected ${rawSize}`, src.length);
  return dst;
}

function checkRawSize(rawSize: number): void {
  if (!Number.isSafeInteger(rawSize) || rawSize < 0) throw new CodecError(`raw size ${rawSize} is not a byte count`);
}
