/**
 * The conformance corpus (corpus/conformance/, docs/FORMAT.md "Reader obligations"): small
 * images, each with the outcome a reader that keeps the spec must reach — accept, with what it
 * must then show (processes, threads, fds, a SHA-256 of each area's memory, the ranges whose
 * content is unknown), or refuse, with the error code and the rule broken. Valid images come
 * from the TypeScript writer; broken ones are those images with one thing changed at byte level
 * (checksums recomputed, so that the rule named is the first thing wrong).
 *
 * Expected summaries come from the model the generator wrote, not from a reader, so the
 * corpus checks our reader as it checks any other. Everything is deterministic: fixed image
 * ids and times, no randomness; `node scripts/gen-conformance.mjs` rewrites the same bytes.
 */
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateRawSync } from "node:zlib";
import { crc32 } from "./checksum.js";
import { CODEC, type CodecId } from "./codecs.js";
import type { ImageErrorCode } from "./errors.js";
import {
  AREA, AREA_UNREADABLE, FIXED_SIZE, HDR, IDX, INDEX_FIXED_SIZE, MAX_METADATA_PAYLOAD, PAGES, PROC, REC,
  RECORD_FLAG_MUST_UNDERSTAND, RECORD_HEADER_SIZE, RecordType, THR, TRAILER_MAGIC, TRAILER_SIZE, TRL, X86_64_REG_NAMES,
  type AreaKind,
} from "./raw.js";
import { encodeRegs, type AreaRecord, type FdRecord, type X86Regs } from "./records.js";
import { encodePageDigests, encodeParent, pageDigest } from "./records-chain.js";
import { encodeSigqueue, makeSiginfo } from "./records-state.js";
import { READER_RULES, type ReaderRule, type RuleId } from "./rules.js";
import { ImageWriter, encodeRecordHeader } from "./writer.js";

const PS = 4096;

/** What a reader must show for an accepted image. */
export interface ExpectedArea {
  start: string;
  end: string;
  /** SHA-256 (hex) of the area's memory as the reader returns it, unknown bytes as 0 */
  sha256: string;
  /** [start, end) ranges (hex) whose content is unknown: never presented as data */
  unknown: [string, string][];
}

export interface ExpectedProcess {
  pid: number;
  threads: number;
  fds: number;
  areas: ExpectedArea[];
}

export interface ConformanceCase {
  /** file name in corpus/conformance/ */
  file: string;
  outcome: "accept" | "refuse";
  /** refuse: the reader rule (docs/FORMAT.md "Reader obligations") the image breaks; absent for chain and tree refusals, whose sections give only the code */
  rule?: RuleId;
  /** refuse: the error code a reader reports */
  code?: ImageErrorCode;
  /**
   * refuse: when a reader finds it — "open" (header, index, records, cross-record checks),
   * "read" (decoding a PAGES chunk) or "report" (C3, C4: a reader may open the image, a
   * verifier reports it and a restorer refuses).
   */
  stage?: "open" | "read" | "report";
  what: string;
  /** accept: processes in tree order (root first) */
  processes?: ExpectedProcess[];
  /** other corpus files this one needs beside it (an incremental image's parent) */
  needs?: string[];
  /** too large to commit (> 64 MiB): the generator writes it only when asked (`--large`) */
  large?: boolean;
}

export interface CorpusManifest {
  format: string;
  note: string;
  /** the reader rules (docs/FORMAT.md "Reader obligations"): id, error code, obligation */
  rules: readonly ReaderRule[];
  cases: ConformanceCase[];
}

// ---------------------------------------------------------------------------------------
// The model: what the generator writes, and hence what a reader must read back.

interface ModelArea {
  area: AreaRecord;
  /** stored pages by page index */
  stored: Map<number, Uint8Array>;
  /** page indexes whose content is unknown */
  unknown: Set<number>;
  /** page indexes whose content is the parent's (incremental images): given by the test model */
  inherited?: Map<number, Uint8Array>;
}

interface ModelProcess {
  pid: number;
  threads: number;
  fds: number;
  areas: ModelArea[];
}

function expected(procs: ModelProcess[]): ExpectedProcess[] {
  return procs.map((p) => ({
    pid: p.pid, threads: p.threads, fds: p.fds,
    areas: [...p.areas].sort((a, b) => (a.area.start < b.area.start ? -1 : 1)).map(expectedArea),
  }));
}

function expectedArea(m: ModelArea): ExpectedArea {
  const pages = Number((m.area.end - m.area.start) / BigInt(PS));
  const hash = createHash("sha256");
  const zero = new Uint8Array(PS);
  const unknown: [string, string][] = [];
  for (let i = 0; i < pages; i++) {
    const stored = m.stored.get(i) ?? m.inherited?.get(i);
    hash.update(stored && !m.unknown.has(i) ? stored : zero);
    if (m.unknown.has(i) && !stored) {
      const s = m.area.start + BigInt(i * PS);
      const last = unknown[unknown.length - 1];
      if (last && BigInt(last[1]) === s) last[1] = hex(s + BigInt(PS));
      else unknown.push([hex(s), hex(s + BigInt(PS))]);
    }
  }
  return { start: hex(m.area.start), end: hex(m.area.end), sha256: hash.digest("hex"), unknown };
}

const hex = (v: bigint) => "0x" + v.toString(16);

/** A page of recognisable, poorly compressible-but-compressible content. */
function pageOf(seed: number): Uint8Array {
  const p = new Uint8Array(PS);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < PS; i++) {
    if (i % 16 < 8) p[i] = (seed + i / 16) & 0xff;
    else {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      p[i] = x & 0x0f;
    }
  }
  return p;
}

function zeroRegs(rip: bigint): X86Regs {
  const r = {} as X86Regs;
  for (const n of X86_64_REG_NAMES) r[n] = 0n;
  r.rip = rip;
  r.cs = 0x33n;
  r.ss = 0x2bn;
  return r;
}

function areaRec(id: number, start: bigint, pages: number, kind: AreaKind, path: string, extra: Partial<AreaRecord> = {}): AreaRecord {
  return {
    id, start, end: start + BigInt(pages * PS), fileOffset: 0n, devMajor: 0, devMinor: 0, inode: 0n,
    prot: kind === "file" ? 5 : 3, flags: 0, kind, fileId: undefined, path, vmflags: "rd wr mr mw me ac", ...extra,
  };
}

interface BaseOptions {
  codec?: CodecId;
  pid?: number;
  threads?: number;
  versionMinor?: number;
  /** image id byte 0 */
  id?: number;
}

/**
 * The base process: 2 threads, 3 fds, a heap with stored pages, a stack, a file mapping whose
 * file is absent (unknown), a vdso (unknown) and an anonymous area with one stored page.
 */
async function writeBase(w: ImageWriter, o: BaseOptions): Promise<ModelProcess> {
  const pid = o.pid ?? 4242;
  const threads = o.threads ?? 2;
  await w.addProcess({
    pid, ppid: 1, pgid: pid, sid: pid, uid: [1000, 1000, 1000, 1000], gid: [1000, 1000, 1000, 1000], personality: 0, umask: 0o22,
    threadCount: threads, captureNs: 1_700_000_000_000_000_000n, startTime: 5555n, flags: 0,
    comm: "conformance", exe: "/usr/bin/conformance", cwd: "/", root: "/", kernel: "6.1.0-conformance",
    mm: { startCode: 0x400000n, endCode: 0x401000n, startData: 0n, endData: 0n, startBrk: 0x600000n, brk: 0x604000n, startStack: 0x7ffd0000f000n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n },
  });
  await w.addArgv(["/usr/bin/conformance", "--corpus"]);
  for (let i = 0; i < threads; i++) {
    const regs = zeroRegs(0x400100n + BigInt(i));
    await w.addThread({
      tid: pid + i, flags: i === 0 ? 1 : 0, state: "S", sigmask: 0n, pending: 0n, clearChildTid: 0n, robustList: 0n, robustListLen: 0n,
      altstack: { sp: 0n, size: 0n, flags: 2 }, regs, regsRaw: encodeRegs(regs), xstate: new Uint8Array(512),
    });
  }
  await w.addMappedFile({
    id: 7, devMajor: 8, devMinor: 1, inode: 99n, size: 8192n, mtimeNs: 1_600_000_000_000_000_000n, mode: 0o100755, flags: 1,
    sha256: new Uint8Array(32).fill(0x5a), path: "/nonexistent/ckimg-conformance/libabsent.so", buildId: undefined,
  });
  const fds: FdRecord[] = [0, 1, 2].map((fd) => ({
    fd, kind: "tty", openFlags: 2, fdFlags: 0, mode: 0o20620, pos: 0n, devMajor: 0, devMinor: 25, inode: 3n,
    rdevMajor: 136, rdevMinor: 0, path: "/dev/pts/0", fileId: 1,
  }));
  for (const f of fds) await w.addFd(f);
  const heap = areaRec(1, 0x600000n, 4, "heap", "[heap]");
  const file = areaRec(2, 0x400000n, 2, "file", "/nonexistent/ckimg-conformance/libabsent.so", { fileId: 7, devMajor: 8, devMinor: 1, inode: 99n });
  const anon = areaRec(3, 0x7f0000000000n, 3, "anon", "");
  const stack = areaRec(4, 0x7ffd0000e000n, 2, "stack", "[stack]");
  const vdso = areaRec(5, 0x7ffd00100000n, 1, "vdso", "[vdso]", { prot: 5 });
  for (const a of [file, heap, anon, stack, vdso]) await w.addArea(a);
  const heapPages = new Map([[0, pageOf(1)], [1, pageOf(2)], [3, pageOf(3)]]);
  const anonPages = new Map([[1, pageOf(4)]]);
  const stackPages = new Map([[1, pageOf(5)]]);
  await storePages(w, heap, heapPages, o.codec);
  await storePages(w, anon, anonPages, o.codec);
  await storePages(w, stack, stackPages, o.codec);
  return {
    pid, threads, fds: fds.length,
    areas: [
      { area: heap, stored: heapPages, unknown: new Set() },
      { area: file, stored: new Map(), unknown: new Set([0, 1]) },
      { area: anon, stored: anonPages, unknown: new Set() },
      { area: stack, stored: stackPages, unknown: new Set() },
      { area: vdso, stored: new Map(), unknown: new Set([0]) },
    ],
  };
}

/** One PAGES chunk holding `pages` (by page index) of `area`. */
async function storePages(w: ImageWriter, area: AreaRecord, pages: Map<number, Uint8Array>, codec?: CodecId, cellFirst?: number, cellPages?: number): Promise<void> {
  const idx = [...pages.keys()].sort((a, b) => a - b);
  const first = cellFirst ?? idx[0], span = cellPages ?? idx[idx.length - 1] - first + 1;
  const bitmap = new Uint8Array(Math.ceil(span / 8));
  const raw = new Uint8Array(idx.length * PS);
  idx.forEach((p, i) => {
    bitmap[(p - first) >> 3] |= 1 << ((p - first) & 7);
    raw.set(pages.get(p)!, i * PS);
  });
  await w.addPagesChunk(area.id, area.start + BigInt(first * PS), span, bitmap, raw, codec);
}

const imageId = (n: number) => Uint8Array.from({ length: 16 }, (_, i) => (i === 0 ? n : 0xc0 + i));

async function writeImage(dir: string, name: string, o: BaseOptions, body: (w: ImageWriter) => Promise<ModelProcess[]>): Promise<{ bytes: Uint8Array; model: ModelProcess[] }> {
  const path = join(dir, name);
  const w = await ImageWriter.create(path, {
    createdNs: 1_700_000_000_000_000_000n + BigInt(o.id ?? 1), imageId: imageId(o.id ?? 1), codec: o.codec ?? CODEC.LZ4,
    durable: false, versionMinor: o.versionMinor,
  });
  const model = await body(w);
  await w.finish();
  return { bytes: new Uint8Array(await readFile(path)), model };
}

// ---------------------------------------------------------------------------------------
// Byte-level editing: parse an image into records, change them, assemble it again.

interface RawRecord {
  type: number;
  flags: number;
  ownerPid: number;
  payload: Uint8Array;
  key32: number;
  key64: bigint;
  auxA: number;
  auxB: number;
  /** overrides for breaking things on purpose */
  sequence?: number;
  payloadCrc?: number;
  entry?: { type?: number; flags?: number };
}

interface Parsed {
  header: Uint8Array;
  entrySize: number;
  records: RawRecord[];
}

interface Assembled {
  bytes: Uint8Array;
  /** file offset of each record's header, in order */
  offsets: number[];
  indexAt: number;
}

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

function parse(bytes: Uint8Array): Parsed {
  const v = dv(bytes);
  const headerSize = v.getUint32(HDR.headerSize, true);
  const indexAt = Number(v.getBigUint64(bytes.length - TRAILER_SIZE + TRL.indexOffset, true));
  const p = indexAt + RECORD_HEADER_SIZE;
  const entrySize = v.getUint32(p + 4, true);
  const count = Number(v.getBigUint64(p + 8, true));
  const records: RawRecord[] = [];
  for (let i = 0; i < count; i++) {
    const e = p + INDEX_FIXED_SIZE + i * entrySize;
    const off = Number(v.getBigUint64(e + IDX.offset, true));
    const len = Number(v.getBigUint64(e + IDX.payloadLength, true));
    records.push({
      type: v.getUint16(e + IDX.type, true), flags: v.getUint16(e + IDX.flags, true), ownerPid: v.getUint32(off + REC.ownerPid, true),
      payload: bytes.slice(off + RECORD_HEADER_SIZE, off + RECORD_HEADER_SIZE + len),
      key32: v.getUint32(e + IDX.key32, true), key64: v.getBigUint64(e + IDX.key64, true),
      auxA: v.getUint32(e + IDX.auxA, true), auxB: v.getUint32(e + IDX.auxB, true),
    });
  }
  return { header: bytes.slice(0, headerSize), entrySize, records };
}

function clone(p: Parsed): Parsed {
  return { header: p.header.slice(), entrySize: p.entrySize, records: p.records.map((r) => ({ ...r, payload: r.payload.slice() })) };
}

function assemble(p: Parsed): Assembled {
  const parts: Uint8Array[] = [p.header];
  let at = p.header.length;
  const offsets: number[] = [];
  p.records.forEach((r, i) => {
    offsets.push(at);
    const h = encodeRecordHeader(r.type, r.flags, r.payload, r.sequence ?? i, r.payloadCrc ?? crc32(r.payload), r.ownerPid);
    parts.push(h, r.payload);
    at += h.length + r.payload.length;
  });
  const indexAt = at;
  const index = new Uint8Array(INDEX_FIXED_SIZE + p.records.length * p.entrySize);
  const iv = dv(index);
  iv.setUint32(0, INDEX_FIXED_SIZE, true);
  iv.setUint32(4, p.entrySize, true);
  iv.setBigUint64(8, BigInt(p.records.length), true);
  p.records.forEach((r, i) => {
    const o = INDEX_FIXED_SIZE + i * p.entrySize;
    iv.setUint16(o + IDX.type, r.entry?.type ?? r.type, true);
    iv.setUint16(o + IDX.flags, r.entry?.flags ?? r.flags, true);
    iv.setUint32(o + IDX.key32, r.key32, true);
    iv.setBigUint64(o + IDX.offset, BigInt(offsets[i]), true);
    iv.setBigUint64(o + IDX.payloadLength, BigInt(r.payload.length), true);
    iv.setBigUint64(o + IDX.key64, r.key64, true);
    iv.setUint32(o + IDX.auxA, r.auxA, true);
    iv.setUint32(o + IDX.auxB, r.auxB, true);
    if (p.entrySize >= 48) iv.setUint32(o + IDX.ownerPid, r.ownerPid, true);
  });
  parts.push(encodeRecordHeader(RecordType.INDEX, 0, index, p.records.length), index);
  const trailer = new Uint8Array(TRAILER_SIZE);
  trailer.set(TRAILER_MAGIC, 0);
  dv(trailer).setBigUint64(TRL.indexOffset, BigInt(indexAt), true);
  dv(trailer).setBigUint64(TRL.recordCount, BigInt(p.records.length), true);
  dv(trailer).setUint32(TRL.crc, crc32(trailer.subarray(0, TRL.crc)), true);
  parts.push(trailer);
  const bytes = new Uint8Array(parts.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of parts) (bytes.set(x, o), (o += x.length));
  return { bytes, offsets, indexAt };
}

/** Recompute the checksums a byte patch invalidated. */
const fix = {
  header(b: Uint8Array) { dv(b).setUint32(HDR.crc, crc32(b.subarray(0, HDR.crc)), true); },
  recordHeader(b: Uint8Array, at: number) { dv(b).setUint32(at + REC.crc, crc32(b.subarray(at, at + REC.crc)), true); },
  trailer(b: Uint8Array) {
    const t = b.length - TRAILER_SIZE;
    dv(b).setUint32(t + TRL.crc, crc32(b.subarray(t, t + TRL.crc)), true);
  },
  index(b: Uint8Array, a: Assembled) {
    const p = a.indexAt + RECORD_HEADER_SIZE;
    dv(b).setUint32(a.indexAt + REC.payloadCrc, crc32(b.subarray(p, b.length - TRAILER_SIZE)), true);
    fix.recordHeader(b, a.indexAt);
  },
};

const nth = (p: Parsed, type: number, n = 0) => p.records.filter((r) => r.type === type)[n];
const indexOfType = (p: Parsed, type: number, n = 0) => p.records.indexOf(nth(p, type, n));
const u32 = (b: Uint8Array, at: number, v: number) => dv(b).setUint32(at, v, true);
const u64 = (b: Uint8Array, at: number, v: bigint) => dv(b).setBigUint64(at, v, true);
const u16 = (b: Uint8Array, at: number, v: number) => dv(b).setUint16(at, v, true);
/** Index entry `i`'s first byte. */
const entryAt = (a: Assembled, entrySize: number, i: number) => a.indexAt + RECORD_HEADER_SIZE + INDEX_FIXED_SIZE + i * entrySize;

/** A PAGES payload built field by field (for chunks the writer would never produce). */
function pagesPayload(f: { areaId: number; firstPage: bigint; spanPages: number; storedPages: number; codec: number; bitmap: Uint8Array; data: Uint8Array; rawCrc: number; pad?: number; fixedSize?: number }): Uint8Array {
  const fixed = f.fixedSize ?? FIXED_SIZE.PAGES;
  const dataOffset = fixed + f.bitmap.length + (f.pad ?? 0);
  const b = new Uint8Array(dataOffset + f.data.length);
  u32(b, 0, fixed);
  u32(b, PAGES.areaId, f.areaId);
  u64(b, PAGES.firstPage, f.firstPage);
  u32(b, PAGES.spanPages, f.spanPages);
  u32(b, PAGES.storedPages, f.storedPages);
  b[PAGES.codec] = f.codec;
  u32(b, PAGES.storedSize, f.data.length);
  u32(b, PAGES.rawCrc, f.rawCrc);
  u32(b, PAGES.dataOffset, dataOffset);
  b.set(f.bitmap, fixed);
  b.set(f.data, dataOffset);
  return b;
}

const pagesRecord = (payload: Uint8Array, ownerPid = 0): RawRecord => {
  const v = dv(payload);
  return {
    type: RecordType.PAGES, flags: 0, ownerPid, payload, key32: v.getUint32(PAGES.areaId, true), key64: v.getBigUint64(PAGES.firstPage, true),
    auxA: v.getUint32(PAGES.spanPages, true), auxB: v.getUint32(PAGES.storedPages, true),
  };
};

// ---------------------------------------------------------------------------------------
// The cases

interface Built {
  c: ConformanceCase;
  bytes: Uint8Array;
}

/**
 * Build every case (in memory). `large` adds the cases too big to commit (R7 needs a metadata
 * record over 64 MiB, so a file over 64 MiB).
 */
export async function buildConformanceCorpus(opts: { large?: boolean } = {}): Promise<Built[]> {
  const dir = await mkdtemp(join(tmpdir(), "ckimg-conformance-"));
  try {
    return await build(dir, opts.large ?? false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function build(dir: string, large: boolean): Promise<Built[]> {
  const out: Built[] = [];
  const accept = (file: string, what: string, bytes: Uint8Array, model: ModelProcess[], extra: Partial<ConformanceCase> = {}) =>
    out.push({ c: { file, outcome: "accept", what, ...extra, processes: expected(model) }, bytes });
  const refuse = (file: string, rule: RuleId | undefined, code: ImageErrorCode, stage: "open" | "read" | "report", what: string, bytes: Uint8Array, extra: Partial<ConformanceCase> = {}) =>
    out.push({ c: { file, outcome: "refuse", ...(rule ? { rule } : {}), code, stage, what, ...extra }, bytes });

  // --- Valid images: every codec, a 1.0 image, extensions, unknown records, unreadable pages, a chain, a tree.
  const codecs: [string, CodecId][] = [["none", CODEC.NONE], ["lz4", CODEC.LZ4], ["lzf", CODEC.LZF], ["deflate", CODEC.DEFLATE]];
  let base!: { bytes: Uint8Array; model: ModelProcess[] };
  for (const [name, codec] of codecs) {
    const img = await writeImage(dir, `${name}.img`, { codec, id: 1 }, async (w) => [await writeBase(w, { codec })]);
    accept(`accept-codec-${name}.img`, `a process of 2 threads, 3 fds and 5 areas; page chunks with codec ${name.toUpperCase()}; a file mapping whose file is absent and a vdso: both unknown`, img.bytes, img.model);
    if (codec === CODEC.LZ4) base = img;
  }
  const b0 = parse(base.bytes);
  {
    const img = await writeImage(dir, "v10.img", { codec: CODEC.LZ4, id: 2, versionMinor: 0 }, async (w) => [await writeBase(w, {})]);
    accept("accept-version-1.0.img", "the base process in a format 1.0 image (version_minor 0): readers accept every 1.0 image", img.bytes, img.model);
  }
  {
    // Minor-version extensions: a later minor, a larger header, appended FIXED fields, trailing bytes, larger index entries.
    const p = clone(b0);
    const h = new Uint8Array(128);
    h.set(p.header);
    u16(h, HDR.versionMinor, 9);
    u32(h, HDR.headerSize, 128);
    u32(h, HDR.flags, 0x80);                       // an unknown header flag: ignored
    h.fill(0xee, 64, 128);                         // bytes 64..header_size: no CRC covers them, readers skip them
    fix.header(h);
    p.header = h;
    p.entrySize = 56;                              // larger entries: extra bytes ignored (owner 0: no tree)
    const proc = nth(p, RecordType.PROCESS);
    proc.payload = extendFixed(proc.payload, 24);  // PROCESS fixed_size 176 -> 200
    for (const r of p.records.filter((x) => x.type === RecordType.AREA)) r.payload = concat(extendFixed(r.payload, 8), Uint8Array.of(1, 2, 3, 4));
    const pg = nth(p, RecordType.PAGES);
    pg.payload = extendPagesFixed(pg.payload, 16);
    const fd = nth(p, RecordType.FD);
    fd.flags |= 1 << 3;                            // reserved record flag bits: ignored
    fd.entry = { flags: fd.flags };
    accept("accept-extensions.img", "version_minor 9, header_size 128 (bytes 64..127 not zero), an unknown header flag, INDEX entry_size 56, PROCESS fixed_size 200, AREA fixed_size 72 with 4 trailing bytes, PAGES fixed_size 64, a reserved record flag: all skipped or ignored", assemble(p).bytes, base.model);
  }
  {
    const p = clone(b0);
    p.records.splice(2, 0, { type: 0x8001, flags: 0, ownerPid: 0, payload: new TextEncoder().encode("\x0c\0\0\0an experiment a reader skips"), key32: 0, key64: 0n, auxA: 0, auxB: 0 });
    p.records.push({ type: 0x7f00, flags: 0, ownerPid: 0, payload: new Uint8Array(100).fill(0xff), key32: 5, key64: 5n, auxA: 5, auxB: 5 });
    accept("accept-unknown-record.img", "unknown record types 0x8001 and 0x7F00 without MUST_UNDERSTAND (with non-zero index keys and a payload that is no valid layout): skipped unread", assemble(p).bytes, base.model);
  }
  {
    const img = await writeImage(dir, "unr.img", { id: 3 }, async (w) => {
      const m = [await writeBase(w, {})];
      const a = areaRec(6, 0x7e0000000000n, 6, "anon", "", { flags: AREA_UNREADABLE });
      const b = areaRec(8, 0x7e0000100000n, 2, "anon", "/dev/mem-like", { flags: AREA_UNREADABLE });
      await w.addArea(a);
      await w.addArea(b);
      const pages = new Map([[0, pageOf(9)], [5, pageOf(10)]]);
      await storePages(w, a, pages);
      await w.addUnreadablePages({ areaId: 6, ranges: [{ start: a.start + 0x1000n, end: a.start + 0x3000n }] });
      m[0].areas.push({ area: a, stored: pages, unknown: new Set([1, 2]) }, { area: b, stored: new Map(), unknown: new Set([0, 1]) });
      return m;
    });
    accept("accept-unreadable-pages.img", "an UNREADABLE area with an UNREADABLE_PAGES record (pages 1-2 unknown, 0 and 5 stored, 3-4 zero) and one without (all unknown)", img.bytes, img.model);
  }
  {
    const img = await writeImage(dir, "kinds.img", { id: 4 }, async (w) => {
      const m = [await writeBase(w, {})];
      const special = areaRec(9, 0x7ffd00200000n, 1, "special", "[vvar_vclock]");
      const weird = areaRec(10, 0x7ffd00300000n, 1, "anon", "");
      await w.addArea(special);
      await w.addArea(weird);
      m[0].areas.push({ area: special, stored: new Map(), unknown: new Set([0]) }, { area: weird, stored: new Map(), unknown: new Set([0]) });
      return m;
    });
    // AREA kind 42 (unknown to this version): content unknown, not refused.
    const p = parse(img.bytes);
    const w = p.records.find((r) => r.type === RecordType.AREA && r.key32 === 10)!;
    u32(w.payload, AREA.kind, 42);
    accept("accept-area-kinds.img", "a SPECIAL area ([vvar_vclock]) and an area of kind 42 (unknown to 1.2): both unknown, never refused", assemble(p).bytes, img.model);
  }
  // Incremental chain: parent then child.
  const parentId = 0x31;
  const chainArea = areaRec(1, 0x10000000n, 8, "anon", "");
  const chainMember = async (w: ImageWriter, held: Map<number, Uint8Array>, stored: Map<number, Uint8Array>, parent?: boolean, pid = 777, parentPid = 777) => {
    await w.addProcess({
      pid, ppid: pid === 777 ? 1 : 777, pgid: 777, sid: 777, uid: [0, 0, 0, 0], gid: [0, 0, 0, 0], personality: 0, umask: 0o22, threadCount: 1,
      captureNs: 1n, startTime: 9999n, flags: 0, comm: "chain", exe: "/chain", cwd: "/", root: "/", kernel: "k",
      mm: { startCode: 0n, endCode: 0n, startData: 0n, endData: 0n, startBrk: 0n, brk: 0n, startStack: 0n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n },
    });
    const regs = zeroRegs(0x1000n);
    await w.addThread({ tid: pid, flags: 1, state: "S", sigmask: 0n, pending: 0n, clearChildTid: 0n, robustList: 0n, robustListLen: 0n, altstack: { sp: 0n, size: 0n, flags: 2 }, regs, regsRaw: encodeRegs(regs), xstate: new Uint8Array(512) });
    if (parent) {
      await w.writeRecord(RecordType.PARENT, encodeParent({ depth: 1, parentImageId: imageId(parentId), parentPid, parentStartTime: 9999n, parentCreatedNs: 0n, pathHint: "accept-chain-parent.img" }), { flags: RECORD_FLAG_MUST_UNDERSTAND });
    }
    await w.addArea(chainArea);
    await storePages(w, chainArea, stored, undefined, 0, 8);   // PAGES and PAGE_DIGESTS share one grid cell
    const idx = [...held.keys()].sort((a, b) => a - b);
    const bitmap = new Uint8Array(1);
    const digests = new Uint32Array(idx.length * 2);
    idx.forEach((p, i) => {
      bitmap[0] |= 1 << p;
      [digests[2 * i], digests[2 * i + 1]] = pageDigest(held.get(p)!);
    });
    await w.writeRecord(RecordType.PAGE_DIGESTS, encodePageDigests({ areaId: 1, firstPage: chainArea.start, spanPages: 8, bitmap, digests }), { key32: 1, key64: chainArea.start, auxA: 8, auxB: idx.length });
  };
  const parentPages = new Map([[0, pageOf(20)], [1, pageOf(21)], [2, pageOf(22)], [3, pageOf(23)]]);
  const childStored = new Map([[1, pageOf(31)], [5, pageOf(35)]]);
  const childHeld = new Map([[0, parentPages.get(0)!], [1, childStored.get(1)!], [2, parentPages.get(2)!], [5, childStored.get(5)!]]);
  const chainParent = await writeImage(dir, "parent.img", { id: parentId }, async (w) => (await chainMember(w, parentPages, parentPages), []));
  accept("accept-chain-parent.img", "a standalone image with PAGE_DIGESTS: the parent of accept-chain-child.img", chainParent.bytes, [
    { pid: 777, threads: 1, fds: 0, areas: [{ area: chainArea, stored: parentPages, unknown: new Set() }] },
  ]);
  const chainChild = await writeImage(dir, "child.img", { id: 0x32 }, async (w) => (await chainMember(w, childHeld, childStored, true), []));
  accept("accept-chain-child.img", "an incremental image (PARENT, path_hint accept-chain-parent.img): pages 0 and 2 inherited from the parent, 1 and 5 its own, 3 dropped (zero although the parent holds it), the rest zero",
    chainChild.bytes, [{ pid: 777, threads: 1, fds: 0, areas: [{ area: chainArea, stored: childStored, inherited: new Map([[0, parentPages.get(0)!], [2, parentPages.get(2)!]]), unknown: new Set() }] }],
    { needs: ["accept-chain-parent.img"] });
  // An incremental tree (FORMAT.md "Incremental images", trees): root 777 a delta of the single
  // process of accept-chain-parent.img, child 778 forked since (no PARENT: standalone).
  const treeChain = async (rootParent: boolean, childParent: boolean) => (await writeImage(dir, "tree-chain.img", { id: 0x33 }, async (w) => {
    await w.addTree({
      rootPid: 777, processes: [
        { pid: 777, ppid: 1, pgid: 777, sid: 777, zombie: false, exitStatus: 0, threadCount: 1 },
        { pid: 778, ppid: 777, pgid: 777, sid: 777, zombie: false, exitStatus: 0, threadCount: 1 },
      ],
    });
    w.beginProcess(777);
    await chainMember(w, rootParent ? childHeld : childStored, childStored, rootParent);
    w.beginProcess(778);
    await chainMember(w, newcomer, newcomer, childParent, 778, 778);
    return [];
  })).bytes;
  const newcomer = new Map([[0, pageOf(40)], [6, pageOf(46)]]);
  accept("accept-tree-chain.img", "an incremental tree: root 777 has a PARENT naming accept-chain-parent.img (a single-process image of pid 777): pages 0 and 2 inherited, 1 and 5 its own; its child 778, forked since, has no PARENT and stores all its pages",
    await treeChain(true, false), [
      { pid: 777, threads: 1, fds: 0, areas: [{ area: chainArea, stored: childStored, inherited: new Map([[0, parentPages.get(0)!], [2, parentPages.get(2)!]]), unknown: new Set() }] },
      { pid: 778, threads: 1, fds: 0, areas: [{ area: chainArea, stored: newcomer, unknown: new Set() }] },
    ], { needs: ["accept-chain-parent.img"] });
  const treeChainNoRoot = await treeChain(false, true);
  {
    // A tree: root 600, child 610 (two threads; one fd table and fs with the root), zombie 620.
    const img = await writeImage(dir, "tree.img", { id: 5 }, async (w) => {
      await w.addTree({
        rootPid: 600, processes: [
          { pid: 600, ppid: 1, pgid: 600, sid: 600, zombie: false, exitStatus: 0, threadCount: 2 },
          { pid: 610, ppid: 600, pgid: 600, sid: 600, zombie: false, exitStatus: 0, threadCount: 2, shares: ["files", "fs"] },
          { pid: 620, ppid: 600, pgid: 600, sid: 600, zombie: true, exitStatus: 3 << 8, threadCount: 0 },
        ],
      });
      w.beginProcess(600);
      const root = await writeBase(w, { pid: 600 });
      w.beginProcess(610);
      const child = await writeBase(w, { pid: 610 });
      return [root, child];
    });
    accept("accept-tree.img", "a process tree (TREE, MUST_UNDERSTAND): root 600 and child 610 each a full process (610's TREE flags SHARES_FILES and SHARES_FS: it shares fd table and fs with 600), zombie 620 without records; INDEX entry_size 48 with owners", img.bytes, img.model);
  }

  // --- Header (H1-H7)
  const B = assemble(b0);
  const edit = (f: (b: Uint8Array) => void) => {
    const b = B.bytes.slice();
    f(b);
    return b;
  };
  refuse("refuse-H1-magic.img", "H1", "NOT_AN_IMAGE", "open", "byte 1 of the magic changed", edit((b) => (b[1] = 0x44)));
  refuse("refuse-H2-short-header.img", "H2", "TRUNCATED", "open", "the first 40 bytes of an image: the magic, then the file ends", B.bytes.slice(0, 40));
  refuse("refuse-H3-version.img", "H3", "UNSUPPORTED_VERSION", "open", "version_major 2 with the header CRC left as it was: the version is checked before the CRC", edit((b) => u16(b, HDR.versionMajor, 2)));
  refuse("refuse-H4-header-crc.img", "H4", "BAD_HEADER", "open", "a byte of created_ns changed, header_crc not updated", edit((b) => (b[HDR.createdNs] ^= 1)));
  refuse("refuse-H5-header-size.img", "H5", "BAD_HEADER", "open", "header_size 32", edit((b) => (u32(b, HDR.headerSize, 32), fix.header(b))));
  refuse("refuse-H6-page-size.img", "H6", "BAD_HEADER", "open", "page_size 6144 (not a power of two)", edit((b) => (u32(b, HDR.pageSize, 6144), fix.header(b))));
  refuse("refuse-H7-machine.img", "H7", "UNSUPPORTED_MACHINE", "open", "machine 183 (AArch64)", edit((b) => (u16(b, HDR.machine, 183), fix.header(b))));
  // --- Trailer and index (T1-T3, I1-I7)
  refuse("refuse-T1-short.img", "T1", "TRUNCATED", "open", "a valid header and 40 more bytes: no room for an INDEX and a trailer", B.bytes.slice(0, 104));
  refuse("refuse-T2-trailer-magic.img", "T2", "BAD_TRAILER", "open", "the trailer magic reads CKIMGENX", edit((b) => (b[b.length - TRAILER_SIZE + 7] = 0x58)));
  refuse("refuse-T2-trailer-crc.img", "T2", "BAD_TRAILER", "open", "a byte of the trailer's record_count changed, trailer_crc not updated", edit((b) => (b[b.length - TRAILER_SIZE + TRL.recordCount] ^= 0x40)));
  refuse("refuse-T3-index-offset.img", "T3", "BAD_TRAILER", "open", "index_offset 8 (inside the header)", edit((b) => (u64(b, b.length - TRAILER_SIZE + TRL.indexOffset, 8n), fix.trailer(b))));
  refuse("refuse-I1-not-index.img", "I1", "BAD_INDEX", "open", "index_offset names the first record (PROCESS)", edit((b) => (u64(b, b.length - TRAILER_SIZE + TRL.indexOffset, BigInt(B.offsets[0])), fix.trailer(b))));
  refuse("refuse-I1-index-header.img", "I1", "BAD_INDEX", "open", "the INDEX record header CRC is wrong", edit((b) => (b[B.indexAt + REC.crc] ^= 1)));
  refuse("refuse-I2-index-length.img", "I2", "BAD_INDEX", "open", "INDEX payload_length 40 short of the trailer", edit((b) => {
    const v = dv(b);
    v.setBigUint64(B.indexAt + REC.payloadLength, v.getBigUint64(B.indexAt + REC.payloadLength, true) - 40n, true);
    fix.recordHeader(b, B.indexAt);
  }));
  refuse("refuse-I3-index-crc.img", "I3", "BAD_CHECKSUM", "open", "a byte of an index entry's key64 changed, the INDEX payload CRC not updated", edit((b) => (b[entryAt(B, 40, 1) + IDX.key64] ^= 1)));
  refuse("refuse-I4-entry-size.img", "I4", "BAD_INDEX", "open", "INDEX entry_size 32", edit((b) => (u32(b, B.indexAt + RECORD_HEADER_SIZE + 4, 32), fix.index(b, B))));
  refuse("refuse-I4-entry-count.img", "I4", "BAD_INDEX", "open", "INDEX entry_count one more than the payload holds", edit((b) => {
    const at = B.indexAt + RECORD_HEADER_SIZE + 8;
    u64(b, at, dv(b).getBigUint64(at, true) + 1n);
    fix.index(b, B);
  }));
  refuse("refuse-I5-record-count.img", "I5", "BAD_INDEX", "open", "trailer record_count one less than the INDEX entry_count", edit((b) => {
    const at = b.length - TRAILER_SIZE + TRL.recordCount;
    u64(b, at, dv(b).getBigUint64(at, true) - 1n);
    fix.trailer(b);
  }));
  refuse("refuse-I5-index-sequence.img", "I5", "BAD_INDEX", "open", "the INDEX record's sequence is not the number of records before it", edit((b) => (u32(b, B.indexAt + REC.sequence, 0), fix.recordHeader(b, B.indexAt))));
  refuse("refuse-I6-order.img", "I6", "BAD_INDEX", "open", "entries 1 and 2 swapped: offsets not increasing", edit((b) => {
    const e1 = entryAt(B, 40, 1), e2 = entryAt(B, 40, 2);
    const t = b.slice(e1, e1 + 40);
    b.copyWithin(e1, e2, e2 + 40);
    b.set(t, e2);
    fix.index(b, B);
  }));
  refuse("refuse-I6-past-index.img", "I6", "BAD_INDEX", "open", "the last entry's payload_length reaches into the INDEX", edit((b) => {
    const e = entryAt(B, 40, b0.records.length - 1);
    u64(b, e + IDX.payloadLength, dv(b).getBigUint64(e + IDX.payloadLength, true) + 64n);
    fix.index(b, B);
  }));
  refuse("refuse-I7-index-entry.img", "I7", "BAD_INDEX", "open", "an entry (and its record) of type INDEX among the records", (() => {
    const p = clone(b0);
    const argv = nth(p, RecordType.ARGV);
    argv.type = RecordType.INDEX;
    return assemble(p).bytes;
  })());
  // --- Records (R1-R8)
  const recEdit = (i: number, f: (b: Uint8Array, at: number) => void) => edit((b) => f(b, B.offsets[i]));
  const areaI = indexOfType(b0, RecordType.AREA);
  refuse("refuse-R1-record-magic.img", "R1", "BAD_RECORD", "open", "an AREA record header's magic reads CKR2", recEdit(areaI, (b, at) => (b[at + 3] = 0x32, fix.recordHeader(b, at))));
  refuse("refuse-R1-record-crc.img", "R1", "BAD_RECORD", "open", "an AREA record header's CRC is wrong", recEdit(areaI, (b, at) => (b[at + REC.crc] ^= 0x80)));
  refuse("refuse-R2-type.img", "R2", "BAD_INDEX", "open", "an AREA record's index entry says THREAD", (() => {
    const p = clone(b0);
    p.records[areaI].entry = { type: RecordType.THREAD };
    return assemble(p).bytes;
  })());
  refuse("refuse-R2-flags.img", "R2", "BAD_INDEX", "open", "an FD record has flag bit 3 set, its index entry not", recEdit(indexOfType(b0, RecordType.FD), (b, at) => (u16(b, at + REC.flags, 8), fix.recordHeader(b, at))));
  refuse("refuse-R3-sequence.img", "R3", "BAD_RECORD", "open", "the second record's sequence is 5", recEdit(1, (b, at) => (u32(b, at + REC.sequence, 5), fix.recordHeader(b, at))));
  refuse("refuse-R4-payload-crc.img", "R4", "BAD_CHECKSUM", "open", "a byte of the ARGV payload changed, payload_crc not updated", recEdit(indexOfType(b0, RecordType.ARGV), (b, at) => (b[at + RECORD_HEADER_SIZE + 12] ^= 0x20)));
  refuse("refuse-R4-pages-crc.img", "R4", "BAD_CHECKSUM", "read", "a byte of a PAGES chunk's DATA changed, payload_crc not updated", recEdit(indexOfType(b0, RecordType.PAGES), (b, at) => (b[at + RECORD_HEADER_SIZE + dv(b).getUint32(at + RECORD_HEADER_SIZE + PAGES.dataOffset, true) + 5] ^= 0x20)));
  for (const [t, name] of [[0, "0000"], [0xffff, "ffff"]] as const) {
    const p = clone(b0);
    p.records.splice(3, 0, { type: t, flags: 0, ownerPid: 0, payload: Uint8Array.of(4, 0, 0, 0), key32: 0, key64: 0n, auxA: 0, auxB: 0 });
    refuse(`refuse-R5-type-${name}.img`, "R5", "BAD_RECORD", "open", `a record of type 0x${name.toUpperCase()}`, assemble(p).bytes);
  }
  {
    const p = clone(b0);
    p.records.splice(3, 0, { type: 0x8002, flags: RECORD_FLAG_MUST_UNDERSTAND, ownerPid: 0, payload: new Uint8Array(16), key32: 0, key64: 0n, auxA: 0, auxB: 0 });
    refuse("refuse-R6-must-understand.img", "R6", "UNSUPPORTED_RECORD", "open", "an unknown record type 0x8002 with MUST_UNDERSTAND", assemble(p).bytes);
  }
  if (large) {
    const p = clone(b0);
    const env = new Uint8Array(MAX_METADATA_PAYLOAD + 8);
    u32(env, 0, FIXED_SIZE.LIST);
    p.records.splice(2, 0, { type: RecordType.ENVIRON, flags: 0, ownerPid: 0, payload: env, key32: 0, key64: 0n, auxA: 0, auxB: 0 });
    refuse("refuse-R7-record-too-large.img", "R7", "RECORD_TOO_LARGE", "open", "an ENVIRON payload of 64 MiB + 8 bytes (written only with --large: the file is 64 MiB)", assemble(p).bytes, { large: true });
  }
  {
    const p = clone(b0);
    p.records[areaI].key64 += 0x1000n;
    refuse("refuse-R8-area-key.img", "R8", "BAD_INDEX", "open", "an AREA's index key64 is not its start", assemble(p).bytes);
  }
  {
    const p = clone(b0);
    nth(p, RecordType.THREAD).key32 += 1;
    refuse("refuse-R8-thread-key.img", "R8", "BAD_INDEX", "open", "a THREAD's index key32 is not its tid", assemble(p).bytes);
  }
  {
    const p = clone(b0);
    nth(p, RecordType.PAGES).auxB -= 1;
    refuse("refuse-R8-pages-key.img", "R8", "BAD_INDEX", "read", "a PAGES index entry says 2 stored pages, its chunk 3", assemble(p).bytes);
  }
  // --- Payload layout (P1-P3)
  const payloadEdit = (type: number, f: (payload: Uint8Array, rec: RawRecord, p: Parsed) => void, n = 0) => {
    const p = clone(b0);
    const r = nth(p, type, n);
    f(r.payload, r, p);
    return assemble(p).bytes;
  };
  refuse("refuse-P1-fixed-small.img", "P1", "BAD_FIELD", "open", "an AREA with fixed_size 60 (its 1.0 size is 64)", payloadEdit(RecordType.AREA, (b) => u32(b, 0, 60)));
  refuse("refuse-P1-fixed-large.img", "P1", "BAD_FIELD", "open", "a PROCESS with fixed_size beyond its payload", payloadEdit(RecordType.PROCESS, (b) => u32(b, 0, b.length + 1)));
  refuse("refuse-P2-string.img", "P2", "BAD_FIELD", "open", "an AREA path length runs past the payload", payloadEdit(RecordType.AREA, (b) => u32(b, FIXED_SIZE.AREA, 0x10000)));
  refuse("refuse-P2-missing.img", "P2", "BAD_FIELD", "open", "an AREA payload that ends after FIXED (no path, no vmflags)", payloadEdit(RecordType.AREA, (_b, r) => (r.payload = r.payload.slice(0, FIXED_SIZE.AREA))));
  {
    const p = parse(chainChild.bytes);
    u32(nth(p, RecordType.PARENT).payload, 4, 0);
    refuse("refuse-P3-parent-depth.img", "P3", "BAD_FIELD", "open", "a PARENT record with depth 0 (allowed: 1..1024)", assemble(p).bytes);
  }
  {
    const p = clone(b0);
    const tids = p.records.filter((r) => r.type === RecordType.THREAD).map((r) => dv(r.payload).getUint32(4, true));
    const payload = encodeSigqueue([{ tid: 0, siginfo: makeSiginfo(34, -1, 1, 0, 7n) }, { tid: Math.max(...tids) + 1000, siginfo: makeSiginfo(10, -6) }]);
    p.records.splice(indexOfType(p, RecordType.THREAD) + 1, 0, { type: RecordType.SIGQUEUE, flags: 0, ownerPid: 0, payload, key32: 0, key64: 0n, auxA: 0, auxB: 0 });
    refuse("refuse-P3-sigqueue-tid.img", "P3", "BAD_FIELD", "open", "a SIGQUEUE entry in the private queue of a tid that no THREAD has", assemble(p).bytes);
  }
  // --- Chains and trees: refused by the codes their sections give (no rule id)
  const childWithHint = (hint: string) => {
    const p = parse(chainChild.bytes);
    const r = nth(p, RecordType.PARENT);
    const fixed = dv(r.payload).getUint32(0, true);
    const str = new TextEncoder().encode(hint);
    r.payload = concat(r.payload.subarray(0, fixed), Uint8Array.of(str.length, 0, 0, 0), str);
    return assemble(p).bytes;
  };
  refuse("refuse-tree-chain-process.img", undefined, "BAD_PARENT", "open", "an incremental tree whose child 778 has a PARENT (naming pid 778 of accept-chain-parent.img, which holds only pid 777) and whose root has none", treeChainNoRoot, { needs: ["accept-chain-parent.img"] });
  refuse("refuse-chain-missing-parent.img", undefined, "MISSING_PARENT", "open", "an incremental image whose parent (path_hint missing-parent.img) is not there", childWithHint("missing-parent.img"));
  refuse("refuse-chain-wrong-parent.img", undefined, "BAD_PARENT", "open", "an incremental image whose path_hint names another image (accept-codec-lz4.img: another image_id and process)", childWithHint("accept-codec-lz4.img"), { needs: ["accept-codec-lz4.img"] });
  {
    const tree = parse(out.find((x) => x.c.file === "accept-tree.img")!.bytes);
    const r = tree.records.filter((x) => x.ownerPid === 610 && x.type === RecordType.FD)[0];
    r.ownerPid = 611;
    refuse("refuse-tree-owner.img", undefined, "BAD_FIELD", "open", "a tree image with an FD record (header and index entry) owned by process 611, which the TREE does not list", assemble(tree).bytes);
  }
  // --- Counts and identity (C1-C6)
  refuse("refuse-C1-no-process.img", "C1", "MISSING_RECORD", "open", "no PROCESS record", (() => {
    const p = clone(b0);
    p.records.splice(indexOfType(p, RecordType.PROCESS), 1);
    return assemble(p).bytes;
  })());
  refuse("refuse-C2-two-argv.img", "C2", "DUPLICATE_RECORD", "open", "two ARGV records", (() => {
    const p = clone(b0);
    const a = nth(p, RecordType.ARGV);
    p.records.splice(p.records.indexOf(a) + 1, 0, { ...a, payload: a.payload.slice() });
    return assemble(p).bytes;
  })());
  refuse("refuse-C3-no-thread.img", "C3", "MISSING_RECORD", "report", "no THREAD record (PROCESS thread_count 0)", (() => {
    const p = clone(b0);
    p.records = p.records.filter((r) => r.type !== RecordType.THREAD);
    u32(nth(p, RecordType.PROCESS).payload, PROC.threadCount, 0);
    return assemble(p).bytes;
  })());
  refuse("refuse-C4-thread-count.img", "C4", "BAD_FIELD", "report", "PROCESS thread_count 3, two THREAD records", payloadEdit(RecordType.PROCESS, (b) => u32(b, PROC.threadCount, 3)));
  refuse("refuse-C5-area-id.img", "C5", "DUPLICATE_RECORD", "open", "two AREAs with id 1 (different addresses)", (() => {
    const p = clone(b0);
    const r = nth(p, RecordType.AREA, 2);             // the anon area (id 3), renamed to 1
    u32(r.payload, AREA.areaId, 1);
    r.key32 = 1;
    p.records = p.records.filter((x) => !(x.type === RecordType.PAGES && x.key32 === 3));
    return assemble(p).bytes;
  })());
  refuse("refuse-C5-tid.img", "C5", "DUPLICATE_RECORD", "open", "two THREADs with one tid", payloadEdit(RecordType.THREAD, (b, r) => (u32(b, THR.tid, 4242), (r.key32 = 4242)), 1));
  refuse("refuse-C5-fd.img", "C5", "DUPLICATE_RECORD", "open", "two FD records for fd 0", payloadEdit(RecordType.FD, (b, r) => (u32(b, 4, 0), (r.key32 = 0)), 1));
  refuse("refuse-C6-regs-size.img", "C6", "BAD_FIELD", "open", "a THREAD with regs_size 208", payloadEdit(RecordType.THREAD, (b) => u32(b, THR.regsSize, 208)));
  // --- Areas (A1-A3)
  const areaEdit = (n: number, f: (b: Uint8Array, r: RawRecord) => void) => payloadEdit(RecordType.AREA, f, n);
  refuse("refuse-A1-unaligned.img", "A1", "BAD_FIELD", "open", "an AREA start 0x400800 (not page-aligned)", areaEdit(0, (b, r) => (u64(b, AREA.start, 0x400800n), (r.key64 = 0x400800n))));
  refuse("refuse-A1-empty.img", "A1", "BAD_FIELD", "open", "an AREA with end = start", areaEdit(4, (b) => u64(b, AREA.end, dv(b).getBigUint64(AREA.start, true))));
  refuse("refuse-A2-overlap.img", "A2", "BAD_FIELD", "open", "the file area's end raised into the heap", areaEdit(0, (b) => u64(b, AREA.end, 0x601000n)));
  refuse("refuse-A3-file-id.img", "A3", "BAD_FIELD", "open", "an AREA names MAPPED_FILE 8, which the image does not hold", areaEdit(0, (b) => u32(b, AREA.fileId, 8)));
  // --- PAGES (G1-G10)
  const heapChunk = (f: (q: Parameters<typeof pagesPayload>[0]) => void) => {
    const p = clone(b0);
    const i = p.records.indexOf(nth(p, RecordType.PAGES));
    const raw = concat(pageOf(1), pageOf(2));
    const q = { areaId: 1, firstPage: 0x600000n, spanPages: 2, storedPages: 2, codec: CODEC.NONE as number, bitmap: Uint8Array.of(3), data: raw, rawCrc: crc32(raw) };
    f(q);
    p.records[i] = pagesRecord(pagesPayload(q));
    return assemble(p).bytes;
  };
  refuse("refuse-G1-span-zero.img", "G1", "BAD_FIELD", "open", "a PAGES chunk with span_pages 0", heapChunk((q) => ((q.spanPages = 0), (q.storedPages = 0), (q.bitmap = new Uint8Array(0)), (q.data = new Uint8Array(0)))));
  refuse("refuse-G1-span-huge.img", "G1", "BAD_FIELD", "open", "a PAGES chunk with span_pages 1048577", heapChunk((q) => ((q.spanPages = (1 << 20) + 1), (q.bitmap = (() => { const b = new Uint8Array((1 << 17) + 1); b[0] = 3; return b; })()))));
  refuse("refuse-G2-count.img", "G2", "BAD_FIELD", "read", "stored_pages 1 with 2 bits set", heapChunk((q) => ((q.storedPages = 1), (q.data = q.data.slice(0, PS)), (q.rawCrc = crc32(q.data)))));
  refuse("refuse-G2-tail-bits.img", "G2", "BAD_FIELD", "read", "a bitmap bit set past span_pages", heapChunk((q) => (q.bitmap = Uint8Array.of(0x83))));
  refuse("refuse-G3-padding.img", "G3", "BAD_FIELD", "read", "a non-zero byte in the padding before DATA", (() => {
    const p = clone(b0);
    const i = p.records.indexOf(nth(p, RecordType.PAGES));
    const raw = concat(pageOf(1), pageOf(2));
    const payload = pagesPayload({ areaId: 1, firstPage: 0x600000n, spanPages: 2, storedPages: 2, codec: CODEC.NONE, bitmap: Uint8Array.of(3), data: raw, rawCrc: crc32(raw), pad: 7 });
    payload[FIXED_SIZE.PAGES + 1 + 3] = 1;
    p.records[i] = pagesRecord(payload);
    return assemble(p).bytes;
  })());
  refuse("refuse-G3-long-padding.img", "G3", "BAD_FIELD", "read", "a page or more of padding before DATA", heapChunk((q) => (q.pad = PS)));
  refuse("refuse-G3-overlap.img", "G3", "BAD_FIELD", "read", "data_offset inside the bitmap", (() => {
    const p = clone(b0);
    const r = nth(p, RecordType.PAGES);
    const v = dv(r.payload);
    const off = v.getUint32(PAGES.dataOffset, true);
    // move DATA one byte earlier: data_offset lands on the bitmap (stored_size one larger keeps G4)
    v.setUint32(PAGES.dataOffset, FIXED_SIZE.PAGES, true);
    v.setUint32(PAGES.storedSize, v.getUint32(PAGES.storedSize, true) + off - FIXED_SIZE.PAGES, true);
    return assemble(p).bytes;
  })());
  refuse("refuse-G4-length.img", "G4", "BAD_FIELD", "read", "data_offset + stored_size one short of payload_length", payloadEdit(RecordType.PAGES, (b) => u32(b, PAGES.storedSize, dv(b).getUint32(PAGES.storedSize, true) - 1)));
  {
    // 16385 pages of zeros, DEFLATE: a small file whose chunk would decode to 64 MiB + 4 KiB.
    const pages = (64 << 8) + 1;
    const p = clone(b0);
    const big = areaRec(11, 0x7a0000000000n, pages, "anon", "");
    const areaPayload = nth(p, RecordType.AREA).payload.slice();
    u32(areaPayload, AREA.areaId, 11);
    u64(areaPayload, AREA.start, big.start);
    u64(areaPayload, AREA.end, big.end);
    u32(areaPayload, AREA.kind, 0);
    u32(areaPayload, AREA.fileId, 0xffffffff);
    p.records.push({ type: RecordType.AREA, flags: 0, ownerPid: 0, payload: areaPayload, key32: 11, key64: big.start, auxA: 0, auxB: 0 });
    const bitmap = new Uint8Array(Math.ceil(pages / 8)).fill(0xff);
    bitmap[bitmap.length - 1] = 1;
    const raw = new Uint8Array(pages * PS);
    p.records.push(pagesRecord(pagesPayload({ areaId: 11, firstPage: big.start, spanPages: pages, storedPages: pages, codec: CODEC.DEFLATE, bitmap, data: deflateRawSync(raw, { level: 9 }), rawCrc: crc32(raw) })));
    refuse("refuse-G5-chunk-too-large.img", "G5", "CHUNK_TOO_LARGE", "open", "a DEFLATE chunk of 16385 pages (raw 64 MiB + 4 KiB; DATA is 65 KB of deflated zeros)", assemble(p).bytes);
  }
  refuse("refuse-G6-none-size.img", "G6", "BAD_FIELD", "read", "a NONE chunk whose stored_size is 4 bytes short of the raw size", heapChunk((q) => (q.data = q.data.slice(0, 2 * PS - 4))));
  refuse("refuse-G6-larger.img", "G6", "BAD_FIELD", "read", "an LZ4 chunk whose stored_size exceeds the raw size", heapChunk((q) => ((q.codec = CODEC.LZ4), (q.data = concat(q.data, new Uint8Array(16))))));
  refuse("refuse-G7-codec.img", "G7", "BAD_CODEC", "read", "a chunk with codec 9", heapChunk((q) => (q.codec = 9)));
  for (const [name, codec] of codecs.slice(1)) {
    refuse(`refuse-G7-${name}-data.img`, "G7", "BAD_CODEC", "read", `${name.toUpperCase()} DATA that does not decode to the raw size`, heapChunk((q) => {
      q.codec = codec;
      q.data = badStream(codec);
    }));
  }
  refuse("refuse-G7-trailing.img", "G7", "BAD_CODEC", "read", "a DEFLATE stream that ends before stored_size (4 bytes follow it)", heapChunk((q) => {
    q.codec = CODEC.DEFLATE;
    q.data = concat(deflateRawSync(q.data), new Uint8Array(4));
  }));
  refuse("refuse-G8-raw-crc.img", "G8", "BAD_CHECKSUM", "read", "a NONE chunk whose raw_crc is not the CRC of its pages", heapChunk((q) => (q.rawCrc ^= 1)));
  refuse("refuse-G9-area.img", "G9", "BAD_FIELD", "open", "a PAGES chunk of area 77, which the image does not hold", heapChunk((q) => (q.areaId = 77)));
  refuse("refuse-G10-outside.img", "G10", "BAD_FIELD", "open", "a PAGES span that runs past its area's end", heapChunk((q) => (q.firstPage = 0x603000n)));
  refuse("refuse-G10-unaligned.img", "G10", "BAD_FIELD", "open", "a PAGES first_page not page-aligned", heapChunk((q) => (q.firstPage = 0x600010n)));
  refuse("refuse-G10-overlap.img", "G10", "BAD_FIELD", "open", "two PAGES spans of one area overlap", (() => {
    const p = clone(b0);
    const raw = pageOf(7);
    p.records.push(pagesRecord(pagesPayload({ areaId: 1, firstPage: 0x601000n, spanPages: 1, storedPages: 1, codec: CODEC.NONE, bitmap: Uint8Array.of(1), data: raw, rawCrc: crc32(raw) })));
    return assemble(p).bytes;
  })());
  // --- Unreadable pages (U1, U2)
  const unr = parse(out.find((x) => x.c.file === "accept-unreadable-pages.img")!.bytes);
  const unrEdit = (f: (p: Parsed, u: RawRecord) => void) => {
    const p = clone(unr);
    f(p, nth(p, RecordType.UNREADABLE_PAGES));
    return assemble(p).bytes;
  };
  refuse("refuse-U1-not-flagged.img", "U1", "BAD_FIELD", "open", "UNREADABLE_PAGES names the heap, which is not flagged UNREADABLE", unrEdit((_p, u) => {
    u32(u.payload, 4, 1);
    u64(u.payload, 24, 0x601000n);
    u64(u.payload, 32, 0x602000n);
    u.key32 = 1;
  }));
  refuse("refuse-U1-twice.img", "U1", "BAD_FIELD", "open", "two UNREADABLE_PAGES records for one area", unrEdit((p, u) => p.records.push({ ...u, payload: u.payload.slice() })));
  refuse("refuse-U2-outside.img", "U2", "BAD_FIELD", "open", "an unreadable range past its area's end", unrEdit((_p, u) => u64(u.payload, 32, 0x7e0000007000n)));
  refuse("refuse-U2-unaligned.img", "U2", "BAD_FIELD", "open", "an unreadable range that is not page-aligned", unrEdit((_p, u) => u64(u.payload, 24, 0x7e0000001800n)));
  refuse("refuse-U2-stored.img", "U2", "BAD_FIELD", "read", "an unreadable range that covers a stored page", unrEdit((_p, u) => u64(u.payload, 24, 0x7e0000000000n)));
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

/** A payload whose FIXED part is `extra` bytes longer (zero-filled appended fields). */
function extendFixed(payload: Uint8Array, extra: number): Uint8Array {
  const fixed = dv(payload).getUint32(0, true);
  const out = concat(payload.subarray(0, fixed), new Uint8Array(extra), payload.subarray(fixed));
  u32(out, 0, fixed + extra);
  return out;
}

/** PAGES with a longer FIXED part: bitmap, padding and DATA move, data_offset follows. */
function extendPagesFixed(payload: Uint8Array, extra: number): Uint8Array {
  const out = extendFixed(payload, extra);
  u32(out, PAGES.dataOffset, dv(out).getUint32(PAGES.dataOffset, true) + extra);
  return out;
}

/** A stream of `codec` that does not decode to two pages (each codec's own way of being wrong). */
function badStream(codec: CodecId): Uint8Array {
  if (codec === CODEC.LZ4) return Uint8Array.of(0x1f, 0x41, 0xff, 0xff, 0x00);        // a match before any output
  if (codec === CODEC.LZF) return Uint8Array.of(0x20, 0xff, 0x41);                     // a back reference before any output
  return Uint8Array.of(0xff, 0xff, 0xff, 0xff);                                        // DEFLATE block type 3 (reserved)
}

/** Write the corpus and its manifest into `dir`. */
export async function writeConformanceCorpus(dir: string, opts: { large?: boolean } = {}): Promise<CorpusManifest> {
  const built = await buildConformanceCorpus(opts);
  for (const b of built) await writeFile(join(dir, b.c.file), b.bytes, { mode: 0o644 });
  const manifest: CorpusManifest = {
    format: "ckimg 1.2",
    note: "generated by scripts/gen-conformance.mjs (src/format/conformance.ts); see README.md",
    rules: READER_RULES,
    cases: built.map((b) => b.c),
  };
  await writeFile(join(dir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}
