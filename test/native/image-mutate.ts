/**
 * Structure-aware mutations of ckimg images for fuzzing the readers (test/native/restore-fuzz.test.ts).
 * An image is split into its records through the INDEX (docs/FORMAT.md sections 1-3); a mutation
 * damages one record's payload, header or index entry, or the file as a whole, and then fixes up
 * every CRC, offset and length it did not mean to damage, so the damage reaches the decoders
 * instead of stopping at the first checksum. Deterministic: all randomness comes from `Rng`.
 */
import { crc32 } from "../../src/format/index.js";

/** xorshift128+ folded to 32 bits: small, seedable, the same on every run. */
export class Rng {
  private a: bigint;
  private b: bigint;
  constructor(seed: number) {
    this.a = BigInt(seed >>> 0) * 0x9e3779b97f4a7c15n + 1n;
    this.b = (this.a ^ 0xdeadbeefcafebaben) & 0xffffffffffffffffn;
    for (let i = 0; i < 8; i++) this.u32();
  }
  u32(): number {
    const M = 0xffffffffffffffffn;
    let s1 = this.a;
    const s0 = this.b;
    this.a = s0;
    s1 = (s1 ^ (s1 << 23n)) & M;
    this.b = s1 ^ s0 ^ (s1 >> 17n) ^ (s0 >> 26n);
    return Number(((this.b + s0) & M) >> 32n);
  }
  /** integer in [0, n) */
  below(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)];
  }
}

export interface ImageRecord {
  type: number;
  flags: number;
  ownerPid: number;
  payload: Buffer;
  /** the INDEX entry's key fields (bytes 4..7 and 24..39), kept across a rebuild */
  key32: number;
  key64: bigint;
  auxA: number;
  auxB: number;
}

export interface ParsedImage {
  /** HEADER bytes, header_size of them */
  header: Buffer;
  records: ImageRecord[];
  indexFlags: number;
}

export const RECORD = {
  PROCESS: 0x0001, TREE: 0x000a, MAPPED_FILE: 0x0030, THREAD: 0x0010, AREA: 0x0020, PAGES: 0x0021, FD: 0x0040,
  PIPE: 0x0041, UNIX_SOCKET: 0x0042, INET_SOCKET: 0x0043, TCP_STREAM: 0x0044, FILE_LOCK: 0x0045,
  UNIX_FILES: 0x0046, EVENTFD: 0x0050, TIMERFD: 0x0051, SIGNALFD: 0x0052, EPOLL: 0x0053,
  INOTIFY: 0x0054, FILE_CONTENT: 0x0031, FILE_DATA: 0x0032, FD_FILE: 0x0033, TTY: 0x0058, INDEX: 0x7ffe,
} as const;

/** Record types that describe an fd or another kernel resource the restorer rebuilds. */
export const FD_RESOURCE_TYPES: ReadonlySet<number> = new Set([
  RECORD.FD, RECORD.PIPE, RECORD.UNIX_SOCKET, RECORD.INET_SOCKET, RECORD.TCP_STREAM, RECORD.FILE_LOCK,
  RECORD.UNIX_FILES, RECORD.EVENTFD, RECORD.TIMERFD, RECORD.SIGNALFD, RECORD.EPOLL, RECORD.INOTIFY,
  RECORD.FD_FILE, RECORD.TTY, 0x0060, 0x0061, 0x0062,
]);

/** Split a well-formed image into records through its trailer and INDEX. */
export function parseImage(buf: Buffer): ParsedImage {
  const headerSize = buf.readUInt32LE(12);
  const trailer = buf.length - 32;
  const indexOffset = Number(buf.readBigUInt64LE(trailer + 8));
  const indexLength = Number(buf.readBigUInt64LE(indexOffset + 8));
  const index = buf.subarray(indexOffset + 32, indexOffset + 32 + indexLength);
  const fixed = index.readUInt32LE(0);
  const entrySize = index.readUInt32LE(4);
  const count = Number(index.readBigUInt64LE(8));
  const records: ImageRecord[] = [];
  for (let i = 0; i < count; i++) {
    const e = fixed + i * entrySize;
    const off = Number(index.readBigUInt64LE(e + 8));
    const len = Number(index.readBigUInt64LE(e + 16));
    records.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      ownerPid: buf.readUInt32LE(off + 24),
      payload: Buffer.from(buf.subarray(off + 32, off + 32 + len)),
      key32: index.readUInt32LE(e + 4),
      key64: index.readBigUInt64LE(e + 24),
      auxA: index.readUInt32LE(e + 32),
      auxB: index.readUInt32LE(e + 36),
    });
  }
  return { header: Buffer.from(buf.subarray(0, headerSize)), records, indexFlags: buf.readUInt16LE(indexOffset + 6) };
}

function recordHeader(type: number, flags: number, payload: Buffer, seq: number, ownerPid: number, payloadLength = payload.length): Buffer {
  const h = Buffer.alloc(32);
  h.write("CKR1", 0, "latin1");
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeBigUInt64LE(BigInt(payloadLength), 8);
  h.writeUInt32LE(crc32(payload), 16);
  h.writeUInt32LE(seq, 20);
  h.writeUInt32LE(ownerPid, 24);
  h.writeUInt32LE(crc32(h.subarray(0, 28)), 28);
  return h;
}

/** Write records back to back with fresh sequence numbers, CRCs, INDEX and TRAILER. */
export function buildImage(img: ParsedImage): Buffer {
  const parts: Buffer[] = [img.header];
  let off = img.header.length;
  const index = Buffer.alloc(16 + 40 * img.records.length);
  index.writeUInt32LE(16, 0);
  index.writeUInt32LE(40, 4);
  index.writeBigUInt64LE(BigInt(img.records.length), 8);
  img.records.forEach((r, i) => {
    const e = 16 + 40 * i;
    index.writeUInt16LE(r.type, e);
    index.writeUInt16LE(r.flags, e + 2);
    index.writeUInt32LE(r.key32, e + 4);
    index.writeBigUInt64LE(BigInt(off), e + 8);
    index.writeBigUInt64LE(BigInt(r.payload.length), e + 16);
    index.writeBigUInt64LE(r.key64, e + 24);
    index.writeUInt32LE(r.auxA, e + 32);
    index.writeUInt32LE(r.auxB, e + 36);
    parts.push(recordHeader(r.type, r.flags, r.payload, i, r.ownerPid), r.payload);
    off += 32 + r.payload.length;
  });
  const indexOffset = off;
  parts.push(recordHeader(RECORD.INDEX, img.indexFlags, index, img.records.length, 0), index);
  const trailer = Buffer.alloc(32);
  trailer.write("CKIMGEND", 0, "latin1");
  trailer.writeBigUInt64LE(BigInt(indexOffset), 8);
  trailer.writeBigUInt64LE(BigInt(img.records.length), 16);
  trailer.writeUInt32LE(crc32(trailer.subarray(0, 28)), 28);
  parts.push(trailer);
  return Buffer.concat(parts);
}

/** Values that break length, count and offset arithmetic. */
const EDGE32 = [0, 1, 2, 3, 4, 7, 8, 15, 16, 64, 255, 4095, 4096, 4097, 65535, 65536, 0x100000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const EDGE64 = [0n, 1n, 0x7fffffffffffffffn, 0x8000000000000000n, 0xffffffffffffffffn, 0xfffffffffffff000n, 0x100000000n, 0x7ffffffff000n];

export interface Mutation {
  /** what was done, for a failure message */
  what: string;
  image: Buffer;
}

type Mutator = (img: ParsedImage, r: ImageRecord, rng: Rng) => string;

/** Payload offset to damage: mostly the FIXED part and the first variable fields, where lengths live. */
function payloadOffset(p: Buffer, rng: Rng, width: number): number {
  if (p.length < width) return -1;
  const fixed = p.length >= 4 ? Math.min(p.readUInt32LE(0), p.length) : p.length;
  const span = rng.below(4) === 0 ? p.length : Math.min(p.length, Math.max(fixed + 64, 16));
  const o = rng.below(span - width + 1);
  return rng.below(3) ? o & ~(width - 1) : o;
}

const MUTATORS: Record<string, Mutator> = {
  bitflip(_img, r, rng) {
    const n = 1 + rng.below(4);
    const at: number[] = [];
    for (let i = 0; i < n && r.payload.length; i++) {
      const o = payloadOffset(r.payload, rng, 1);
      r.payload[o] ^= 1 << rng.below(8);
      at.push(o);
    }
    return `bits flipped at payload offsets ${at.join(",")}`;
  },
  u32(_img, r, rng) {
    const o = payloadOffset(r.payload, rng, 4);
    if (o < 0) return "payload too short for a u32";
    const v = rng.below(4) === 0 ? (r.payload.length + rng.below(9) - 4) >>> 0 : rng.pick(EDGE32);
    r.payload.writeUInt32LE(v, o);
    return `u32 at payload offset ${o} set to ${v}`;
  },
  u64(_img, r, rng) {
    const o = payloadOffset(r.payload, rng, 8);
    if (o < 0) return "payload too short for a u64";
    const v = rng.pick(EDGE64);
    r.payload.writeBigUInt64LE(v, o);
    return `u64 at payload offset ${o} set to ${v}`;
  },
  truncate(_img, r, rng) {
    const n = rng.below(r.payload.length + 1);
    r.payload = r.payload.subarray(0, n);
    return `payload truncated to ${n} bytes`;
  },
  extend(_img, r, rng) {
    const n = 1 + rng.below(64);
    const extra = Buffer.alloc(n);
    for (let i = 0; i < n; i++) extra[i] = rng.below(4) ? 0xff : rng.below(256);
    r.payload = Buffer.concat([r.payload, extra]);
    return `payload extended by ${n} bytes`;
  },
  fixedSize(_img, r, rng) {
    if (r.payload.length < 4) return "payload too short";
    const v = rng.pick([0, 4, r.payload.readUInt32LE(0) - 4, r.payload.readUInt32LE(0) + 4, r.payload.length, r.payload.length + 1, 0xffffffff]) >>> 0;
    r.payload.writeUInt32LE(v, 0);
    return `fixed_size set to ${v}`;
  },
  duplicate(img, r) {
    img.records.splice(img.records.indexOf(r) + 1, 0, { ...r, payload: Buffer.from(r.payload) });
    return "record duplicated";
  },
  drop(img, r) {
    img.records.splice(img.records.indexOf(r), 1);
    return "record dropped";
  },
  indexKey(_img, r, rng) {
    const f = rng.below(4);
    if (f === 0) r.key32 = rng.pick(EDGE32);
    else if (f === 1) r.key64 = rng.pick(EDGE64);
    else if (f === 2) r.auxA = rng.pick(EDGE32);
    else r.auxB = rng.pick(EDGE32);
    return `index entry key field ${["key32", "key64", "aux_a", "aux_b"][f]} changed`;
  },
  retype(_img, r, rng) {
    const types = Object.values(RECORD).filter((t) => t !== RECORD.INDEX);
    const t = rng.pick(types);
    r.type = t;
    return `record retyped to 0x${t.toString(16)}`;
  },
  owner(_img, r, rng) {
    r.ownerPid = rng.pick([0, 1, r.ownerPid + 1, 0xffffffff]) >>> 0;
    return `owner_pid set to ${r.ownerPid}`;
  },
};

export const MUTATOR_NAMES = Object.keys(MUTATORS);

export interface MutateOptions {
  /** only damage records of these types (default: any, weighted away from PAGES) */
  types?: ReadonlySet<number>;
  /** mutators to draw from (default: all, plus whole-file truncation) */
  mutators?: readonly string[];
}

/** One mutation of `original` (a well-formed image) chosen by `rng`. */
export function mutate(original: Buffer, parsed: ParsedImage, rng: Rng, o: MutateOptions = {}): Mutation {
  const names = o.mutators ?? [...MUTATOR_NAMES, "cut"];
  const name = rng.pick(names);
  if (name === "cut") {
    // whole-file truncation: no fix-up, the trailer or index goes missing
    const n = rng.below(original.length);
    return { what: `file cut to ${n} bytes`, image: original.subarray(0, n) };
  }
  const img: ParsedImage = { header: parsed.header, indexFlags: parsed.indexFlags, records: parsed.records.map((r) => ({ ...r, payload: Buffer.from(r.payload) })) };
  let pool = img.records.filter((r) => (o.types ? o.types.has(r.type) : true));
  if (!o.types && rng.below(4)) pool = pool.filter((r) => r.type !== RECORD.PAGES);   // page data is most of an image
  if (!pool.length) pool = img.records;
  const r = rng.pick(pool);
  const seq = img.records.indexOf(r);
  const what = MUTATORS[name](img, r, rng);
  // several damages to one image now and then, so checks that catch the first do not hide the next
  let more = "";
  if (rng.below(8) === 0 && r.payload.length) more = "; " + MUTATORS[rng.pick(["bitflip", "u32", "u64"])](img, r, rng);
  return { what: `${name}: record #${seq} type 0x${r.type.toString(16)}: ${what}${more}`, image: buildImage(img) };
}
