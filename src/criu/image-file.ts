/**
 * One CRIU image file: `[IMG_COMMON_MAGIC | IMG_SERVICE_MAGIC] MAGIC (u32 size, protobuf)*`,
 * little-endian (CRIU's criu/protobuf.c, do_pb_read_one). Some files carry raw bytes after an
 * entry (pipes-data, sk-queues); the caller names how many with `trailing`.
 *
 * Every size is checked against what is left of the file before anything is allocated, and a
 * protobuf decoding failure becomes an ImageError naming the file, the entry and its offset.
 */
import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { ImageError } from "../format/errors.js";
import { IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, MAGIC_NAMES, MAX_ENTRY_SIZE } from "./raw.js";

export interface ImageEntry<T> {
  message: T;
  /** file offset of the entry's u32 size */
  offset: number;
  /** file offset just past the entry (and its trailing bytes) */
  end: number;
  /** the raw bytes that followed the entry (see `trailing`), a view into the file */
  extra: Uint8Array | undefined;
}

export interface DecodeOptions<T> {
  /** How many raw bytes follow this entry (e.g. pipe_data_entry.bytes). */
  trailing?: (message: T) => number;
  /** Stop after this many entries (pagemap head, inventory). */
  limit?: number;
  /** Start at this file offset instead of after the magic (the entries after a head entry). */
  from?: number;
}

/** The magic the file declares (after the common/service prefix) and where its entries start. */
export function readImageMagic(bytes: Uint8Array, file: string): { magic: number; dataOffset: number } {
  if (bytes.length < 4) throw new ImageError("TRUNCATED", "CRIU image is shorter than its magic", { file, offset: bytes.length });
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const first = v.getUint32(0, true);
  if (first !== IMG_COMMON_MAGIC && first !== IMG_SERVICE_MAGIC) return { magic: first, dataOffset: 4 };
  if (bytes.length < 8) throw new ImageError("TRUNCATED", "CRIU image is shorter than its magic", { file, offset: bytes.length });
  return { magic: v.getUint32(4, true), dataOffset: 8 };
}

/** Decode every entry of an image file whose magic must be `expected`. */
export function decodeImageFile<D extends DescMessage>(
  bytes: Uint8Array, file: string, expected: number, schema: D, opts: DecodeOptions<MessageShape<D>> = {},
): ImageEntry<MessageShape<D>>[] {
  const { magic, dataOffset } = readImageMagic(bytes, file);
  if (magic !== expected) {
    const what = MAGIC_NAMES.get(magic);
    throw new ImageError("NOT_AN_IMAGE", `magic 0x${magic.toString(16)}${what ? ` (${what})` : ""} where a ${schema.typeName} image (0x${expected.toString(16)}) was expected`, { file, offset: 0 });
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: ImageEntry<MessageShape<D>>[] = [];
  let pos = opts.from ?? dataOffset;
  if (pos < dataOffset || pos > bytes.length) throw new ImageError("BAD_FIELD", `entries cannot start at ${pos}`, { file });
  while (pos < bytes.length && (opts.limit === undefined || out.length < opts.limit)) {
    const where = { file, offset: pos, recordType: schema.typeName, sequence: out.length };
    if (bytes.length - pos < 4) throw new ImageError("TRUNCATED", "entry size is cut off", where);
    const size = v.getUint32(pos, true);
    if (size > MAX_ENTRY_SIZE) throw new ImageError("RECORD_TOO_LARGE", `entry of ${size} bytes exceeds the ${MAX_ENTRY_SIZE >> 20} MiB limit`, where);
    if (size > bytes.length - pos - 4) throw new ImageError("TRUNCATED", `entry of ${size} bytes runs past the end of the ${bytes.length}-byte file`, where);
    const message = decodeMessage(schema, bytes.subarray(pos + 4, pos + 4 + size), where);
    pos += 4 + size;
    let extra: Uint8Array | undefined;
    if (opts.trailing) {
      const n = opts.trailing(message);
      if (!Number.isSafeInteger(n) || n < 0 || n > bytes.length - pos) {
        throw new ImageError("TRUNCATED", `entry announces ${n} bytes of data but ${bytes.length - pos} are left`, where);
      }
      extra = bytes.subarray(pos, pos + n);
      pos += n;
    }
    out.push({ message, offset: where.offset, end: pos, extra });
  }
  return out;
}

/** Exactly one entry (core, mm, ids, fs …). */
export function decodeSingleEntry<D extends DescMessage>(bytes: Uint8Array, file: string, expected: number, schema: D): MessageShape<D> {
  const entries = decodeImageFile(bytes, file, expected, schema, { limit: 1 });
  if (!entries.length) throw new ImageError("MISSING_RECORD", `no ${schema.typeName} entry in the file`, { file });
  return entries[0].message;
}

/**
 * protobuf-es rejects malformed wire data (bad varints, lengths past the end, wrong wire types)
 * with a plain Error; proto2 `required` fields that are absent decode to their zero values.
 */
export function decodeMessage<D extends DescMessage>(schema: D, data: Uint8Array, where: { file: string; offset: number; recordType: string; sequence: number }): MessageShape<D> {
  try {
    return fromBinary(schema, data, { readUnknownFields: false });
  } catch (err) {
    throw new ImageError("BAD_RECORD", `damaged protobuf entry: ${(err as Error).message}`, where);
  }
}
