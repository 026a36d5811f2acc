/**
 * Raw DEFLATE (RFC 1951, zlib `windowBits = −15`, no zlib or gzip wrapper) through node:zlib,
 * which runs the C zlib and measured faster here than fflate (see bench/codecs.mjs).
 * docs/FORMAT.md §4.8 codec 3.
 *
 * Decoding is bounded: zlib stops with an error as soon as the output would pass the raw size,
 * the result must be exactly the raw size, and the stream must use all of its input.
 */
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import { CodecError } from "./codec-error.js";

/** zlib refuses output buffers (chunkSize) smaller than this. */
const MIN_CHUNK = 64;

const deflateRawCallback = promisify(zlib.deflateRaw);

/** zlib.inflateRaw with `info: true`, which calls back with { buffer, engine } (not typed by @types/node). */
function inflateRawInfo(src: Uint8Array, options: zlib.ZlibOptions): Promise<InflateInfo> {
  return new Promise((resolve, reject) => {
    const callback = (error: Error | null, result: unknown) => (error ? reject(error) : resolve(result as InflateInfo));
    zlib.inflateRaw(src, options, callback as zlib.CompressCallback);
  });
}

interface InflateInfo {
  buffer: Buffer;
  engine: { bytesWritten: number };
}

function checkLevel(level: number): void {
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new CodecError(`deflate level ${level} is not 0…9`);
}

function checkRawSize(rawSize: number): void {
  if (!Number.isSafeInteger(rawSize) || rawSize < 0) throw new CodecError(`raw size ${rawSize} is not a byte count`);
}

function inflateOptions(rawSize: number): zlib.ZlibOptions & { info: true } {
  // One output buffer of rawSize + 1 bytes: the whole result without concatenation, and room
  // for zlib to notice the end of the stream without asking for a second buffer.
  return { info: true, maxOutputLength: Math.max(rawSize, 1), chunkSize: Math.max(rawSize + 1, MIN_CHUNK) };
}

/** Checks an inflate result against the expected size and input use; returns the bytes. */
function checkInflated(result: InflateInfo, src: Uint8Array, rawSize: number): Uint8Array {
  const { buffer, engine } = result;
  if (buffer.length !== rawSize) throw new CodecError(`deflate data decodes to ${buffer.length} bytes, expected ${rawSize}`, src.length);
  if (engine.bytesWritten !== src.length) {
    throw new CodecError(`${src.length - engine.bytesWritten} bytes follow the end of the deflate stream`, engine.bytesWritten);
  }
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}

/** Maps a zlib failure (data error, truncation, output past maxOutputLength) to CodecError. */
function inflateFailure(error: unknown, rawSize: number): CodecError {
  const e = error as { code?: string; message?: string };
  if (e.code === "ERR_BUFFER_TOO_LARGE") return new CodecError(`deflate data decodes to more than ${rawSize} bytes`);
  if (typeof e.code === "string" && e.code.startsWith("Z_")) return new CodecError(`deflate data is invalid: ${e.message}`);
  return new CodecError(`deflate failed: ${e.message ?? String(error)}`);
}

/** Compresses `src` as raw DEFLATE at `level` (0…9; default 1, the fast end). */
export function deflateRawSync(src: Uint8Array, level = 1): Uint8Array {
  checkLevel(level);
  const out = zlib.deflateRawSync(src, { level });
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Decodes raw DEFLATE that must expand to exactly `rawSize` bytes (never allocates much more). */
export function inflateRawSync(src: Uint8Array, rawSize: number): Uint8Array {
  checkRawSize(rawSize);
  let result: InflateInfo;
  try {
    result = zlib.inflateRawSync(src, inflateOptions(rawSize)) as unknown as InflateInfo;
  } catch (error) {
    throw inflateFailure(error, rawSize);
  }
  return checkInflated(result, src, rawSize);
}

/** `deflateRawSync` on zlib's thread pool. */
export async function deflateRawAsync(src: Uint8Array, level = 1): Promise<Uint8Array> {
  checkLevel(level);
  const out = await deflateRawCallback(src, { level });
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** `inflateRawSync` on zlib's thread pool. */
export async function inflateRawAsync(src: Uint8Array, rawSize: number): Promise<Uint8Array> {
  checkRawSize(rawSize);
  let result: InflateInfo;
  try {
    result = await inflateRawInfo(src, inflateOptions(rawSize));
  } catch (error) {
    throw inflateFailure(error, rawSize);
  }
  return checkInflated(result, src, rawSize);
}
