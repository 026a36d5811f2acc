/**
 * The page-chunk codecs of docs/FORMAT.md §4.8, by id, and the two calls the image writer and
 * reader use: `compressChunk` and `decompressChunk`.
 *
 * LZ4 is the default: in C it compresses ~1.9 GB/s and decodes ~7 GB/s at the same ratio as
 * LZF and zlib level 1 on heap-like memory. LZF stays for the CryoPID/lzfjs lineage, DEFLATE
 * for portability (any zlib reads it).
 */
import { CodecError } from "./codec-error.js";
import { deflateRawSync, inflateRawSync } from "./codec-deflate.js";
import { lz4CompressBlock, lz4DecompressBlock } from "./codec-lz4.js";
import { lzfCompress, lzfDecompress } from "./codec-lzf.js";

/** Codec ids as stored in the PAGES record's `codec` byte. */
export const CODEC = { NONE: 0, LZ4: 1, LZF: 2, DEFLATE: 3 } as const;
export type CodecId = 0 | 1 | 2 | 3;

/** Names by id, as the CLI prints and accepts them. */
export const CODEC_NAMES: readonly ["none", "lz4", "lzf", "deflate"] = ["none", "lz4", "lzf", "deflate"];

/** The zlib level DEFLATE chunks are written with: the fast end, as the format favours speed. */
export const DEFLATE_LEVEL = 1;

export function isCodecId(value: number): value is CodecId {
  return value === 0 || value === 1 || value === 2 || value === 3;
}

/**
 * The codec id for a name ("none", "lz4", "lzf", "deflate"; "gzip" and "zlib" are accepted
 * for deflate), case-insensitive; undefined for anything else.
 */
export function codecIdFromName(name: string): CodecId | undefined {
  const key = name.trim().toLowerCase();
  if (key === "gzip" || key === "zlib") return CODEC.DEFLATE;
  const id = CODEC_NAMES.indexOf(key as (typeof CODEC_NAMES)[number]);
  return id < 0 ? undefined : (id as CodecId);
}

export interface CompressedChunk {
  /** The codec actually used: NONE when `codec` did not make the data smaller. */
  codec: CodecId;
  data: Uint8Array;
}

/**
 * Compresses one chunk of raw pages with `codec`. Falls back to NONE (returning `raw` itself,
 * not a copy) when compression does not shrink the data, as §4.8 allows.
 */
export function compressChunk(codec: CodecId, raw: Uint8Array): CompressedChunk {
  let data: Uint8Array | undefined;
  switch (codec) {
    case CODEC.NONE:
      return { codec: CODEC.NONE, data: raw };
    case CODEC.LZ4:
      data = lz4CompressBlock(raw);
      break;
    case CODEC.LZF:
      data = lzfCompress(raw);
      break;
    case CODEC.DEFLATE:
      data = deflateRawSync(raw, DEFLATE_LEVEL);
      break;
    default:
      throw new CodecError(`unknown codec ${String(codec)}`);
  }
  if (data === undefined || data.length >= raw.length) return { codec: CODEC.NONE, data: raw };
  return { codec, data };
}

/**
 * Decompresses one stored chunk that must expand to exactly `rawSize` bytes. `codec` is the
 * byte as read from the image, so any number is accepted and unknown ones are a CodecError.
 * For NONE the result is `data` itself.
 */
export function decompressChunk(codec: number, data: Uint8Array, rawSize: number): Uint8Array {
  switch (codec) {
    case CODEC.NONE:
      if (data.length !== rawSize) throw new CodecError(`uncompressed chunk holds ${data.length} bytes, expected ${rawSize}`);
      return data;
    case CODEC.LZ4:
      return lz4DecompressBlock(data, rawSize);
    case CODEC.LZF:
      return lzfDecompress(data, rawSize);
    case CODEC.DEFLATE:
      return inflateRawSync(data, rawSize);
    default:
      throw new CodecError(`unknown codec ${codec}`);
  }
}
