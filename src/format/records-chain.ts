/**
 * Format 1.2 incremental images (docs/FORMAT.md "Incremental images"): the PARENT record
 * (0x000E, MUST_UNDERSTAND) naming the image this one is a delta of, and PAGE_DIGESTS (0x0023),
 * the pages an image holds with a digest each. Layouts, decoders, encoders and the digest.
 */
import { crc32 } from "./checksum.js";
import { ByteReader, ByteWriter } from "./bytes.js";
import type { ImageErrorWhere } from "./errors.js";
import { popcount8 } from "./records.js";

export const CHAIN_RECORD_TYPES = { PARENT: 0x000e, PAGE_DIGESTS: 0x0023 } as const;
export const CHAIN_FIXED_SIZE = { PARENT: 48, PAGE_DIGESTS: 32 } as const;
/** PARENT FIXED offsets. */
export const PARENT = { depth: 4, imageId: 8, pid: 24, startTime: 32, createdNs: 40 } as const;
/** PAGE_DIGESTS FIXED offsets. */
export const PAGE_DIGESTS = { areaId: 4, firstPage: 8, spanPages: 16, heldPages: 20, digestKind: 24 } as const;
/** digest_kind 1: u32 CRC-32 then u32 Adler-32 of the page. */
export const DIGEST_CRC_ADLER = 1;
/** Longest chain a reader follows (a writer refuses to make a longer one). */
export const MAX_CHAIN_DEPTH = 1024;

export interface ParentRecord {
  /** images below this one: 1 when the parent is standalone */
  depth: number;
  parentImageId: Uint8Array;
  parentPid: number;
  parentStartTime: bigint;
  parentCreatedNs: bigint;
  /** where the writer found the parent: a name in this image's directory, or an absolute path */
  pathHint: string;
}

export interface PageDigestsRecord {
  sequence: number;
  areaId: number;
  firstPage: bigint;
  spanPages: number;
  heldPages: number;
  /** bit i: the page at firstPage + i·pageSize is held (same bit order as PAGES) */
  bitmap: Uint8Array;
  /** 2 × heldPages words: CRC-32, Adler-32 of each held page in address order */
  digests: Uint32Array;
}

export function decodeParent(payload: Uint8Array, base: number, where: ImageErrorWhere): ParentRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(CHAIN_FIXED_SIZE.PARENT, "PARENT");
  const depth = r.u32At(PARENT.depth);
  if (depth < 1 || depth > MAX_CHAIN_DEPTH) r.fail("BAD_FIELD", `PARENT depth ${depth} outside [1, ${MAX_CHAIN_DEPTH}]`, PARENT.depth);
  const out = {
    depth,
    parentImageId: payload.slice(PARENT.imageId, PARENT.imageId + 16),
    parentPid: r.u32At(PARENT.pid),
    parentStartTime: r.u64At(PARENT.startTime),
    parentCreatedNs: r.u64At(PARENT.createdNs),
    pathHint: "",
  };
  r.pos = fixed;
  out.pathHint = r.str("path_hint");
  if (!out.pathHint) r.fail("BAD_FIELD", "PARENT path_hint is empty", fixed);
  return out;
}

export function decodePageDigests(payload: Uint8Array, base: number, where: ImageErrorWhere, sequence: number): PageDigestsRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(CHAIN_FIXED_SIZE.PAGE_DIGESTS, "PAGE_DIGESTS");
  const spanPages = r.u32At(PAGE_DIGESTS.spanPages);
  const heldPages = r.u32At(PAGE_DIGESTS.heldPages);
  const kind = r.u32At(PAGE_DIGESTS.digestKind);
  if (spanPages < 1 || spanPages > 1 << 20) r.fail("BAD_FIELD", `PAGE_DIGESTS span_pages ${spanPages} outside [1, 1048576]`, PAGE_DIGESTS.spanPages);
  if (kind !== DIGEST_CRC_ADLER) r.fail("BAD_FIELD", `PAGE_DIGESTS digest_kind ${kind} is unknown`, PAGE_DIGESTS.digestKind);
  const firstPage = r.u64At(PAGE_DIGESTS.firstPage);
  const bitmapLen = Math.ceil(spanPages / 8);
  const padded = Math.ceil(bitmapLen / 8) * 8;
  if (fixed + padded + heldPages * 8 !== payload.length) {
    r.fail("BAD_FIELD", `PAGE_DIGESTS of ${heldPages} pages over ${spanPages} does not fill its payload of ${payload.length} bytes`, PAGE_DIGESTS.heldPages);
  }
  r.pos = fixed;
  const bitmap = r.bytesView(bitmapLen, "bitmap");
  let set = 0;
  for (let i = 0; i < bitmap.length; i++) set += popcount8(bitmap[i]);
  const tail = spanPages & 7;
  if (tail && bitmap[bitmapLen - 1] >> tail) r.fail("BAD_FIELD", "PAGE_DIGESTS bitmap has bits past span_pages", fixed + bitmapLen - 1);
  if (set !== heldPages) r.fail("BAD_FIELD", `PAGE_DIGESTS held_pages ${heldPages} but bitmap has ${set} pages`, PAGE_DIGESTS.heldPages);
  const at = fixed + padded;
  const digests = new Uint32Array(heldPages * 2);
  const v = new DataView(payload.buffer, payload.byteOffset + at, heldPages * 8);
  for (let i = 0; i < heldPages * 2; i++) digests[i] = v.getUint32(i * 4, true);
  return { sequence, areaId: r.u32At(PAGE_DIGESTS.areaId), firstPage, spanPages, heldPages, bitmap, digests };
}

export function encodeParent(p: ParentRecord): Uint8Array {
  const w = new ByteWriter();
  w.u32(CHAIN_FIXED_SIZE.PARENT);
  w.u32(p.depth);
  w.bytes(p.parentImageId);
  w.u32(p.parentPid);
  w.u32(0);
  w.u64(p.parentStartTime);
  w.u64(p.parentCreatedNs);
  w.str(p.pathHint);
  return w.finish();
}

export function encodePageDigests(d: Omit<PageDigestsRecord, "sequence" | "heldPages">): Uint8Array {
  const w = new ByteWriter();
  const held = d.digests.length / 2;
  w.u32(CHAIN_FIXED_SIZE.PAGE_DIGESTS);
  w.u32(d.areaId);
  w.u64(d.firstPage);
  w.u32(d.spanPages);
  w.u32(held);
  w.u32(DIGEST_CRC_ADLER);
  w.u32(0);
  const padded = new Uint8Array(Math.ceil(Math.ceil(d.spanPages / 8) / 8) * 8);
  padded.set(d.bitmap.subarray(0, Math.ceil(d.spanPages / 8)));
  w.bytes(padded);
  for (const x of d.digests) w.u32(x);
  return w.finish();
}

/** Adler-32 (RFC 1950), initial value 1. */
export function adler32(data: Uint8Array): number {
  let a = 1, b = 0;
  const n = data.length;
  // 5552: the most bytes before b can overflow 2^32 (zlib's NMAX).
  for (let i = 0; i < n;) {
    const end = Math.min(n, i + 5552);
    for (; i < end; i++) {
      a += data[i];
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** The digest of one page: [CRC-32, Adler-32]. */
export function pageDigest(page: Uint8Array): [number, number] {
  return [crc32(page), adler32(page)];
}

/** Index of held page `bit` among the digests (set bits before it), or undefined if not held. */
export function heldIndex(d: PageDigestsRecord, bit: number): number | undefined {
  if (bit < 0 || bit >= d.spanPages || !(d.bitmap[bit >> 3] & (1 << (bit & 7)))) return undefined;
  let n = 0;
  for (let i = 0; i < bit >> 3; i++) n += popcount8(d.bitmap[i]);
  return n + popcount8(d.bitmap[bit >> 3] & ((1 << (bit & 7)) - 1));
}
