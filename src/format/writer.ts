/**
 * Streaming image writer: records go out as they are added, memory stays constant (only the
 * 40-byte index entries are kept), and the image appears atomically — written to a temp file
 * (mode 0600) in the target directory, fsynced, then renamed. abort() leaves nothing behind.
 */
import { encodeSysvMsg, encodeSysvSem, encodeSysvShm, type SysvMsgRecord, type SysvSemRecord, type SysvShmRecord } from "./records-sysv.js";
import { encodeFdState, type FdStateRecord } from "./records-fd.js";
import { open, rename, unlink, type FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { tempPathBeside } from "./atomic.js";
import { crc32, crc32Combine } from "./checksum.js";
import { compressChunk, CODEC, type CodecId } from "./codecs.js";
import {
  HDR, HEADER_SIZE, IDX, IMAGE_MAGIC, INDEX_ENTRY_SIZE, INDEX_ENTRY_SIZE_TREE, INDEX_FIXED_SIZE, MAX_CHUNK_RAW, PAGES,
  REC, RECORD_HEADER_SIZE, RECORD_MAGIC, RecordType, SPAN_GRID_PAGES, TRAILER_MAGIC, TRAILER_SIZE, TRL,
  EM_X86_64, FIXED_SIZE, VERSION_MAJOR, VERSION_MINOR, RECORD_FLAG_MUST_UNDERSTAND,
} from "./raw.js";
import {
  encodeArea, encodeAuxv, encodeFd, encodeMappedFile, encodeProcess, encodeRlimits,
  encodeSigactions, encodeStringList, encodeThread,
  type AreaRecord, type AuxvEntry, type FdRecord, type MappedFileRecord, type ProcessRecord,
  type RlimitEntry, type SigactionsRecord, type ThreadRecord,
} from "./records.js";
import {
  encodeProcessState, encodeSeccomp, encodeSigqueue, encodeThreadState, encodeTimers,
  type PendingSignal, type ProcessStateRecord, type SeccompFilter, type ThreadStateRecord, type TimersRecord,
} from "./records-state.js";
import { encodeFdFile, encodeFileContent, encodeFileData, encodeTty, type FdFileRecord, type FileContentRecord, type TtyRecord } from "./records-files.js";
import { MAX_FILE_RUN } from "./raw-files.js";
import { encodeSharedPages, encodeTree, type SharedPagesRecord, type TreeRecord } from "./records-tree.js";
import { encodeUnreadablePages, type UnreadablePagesRecord } from "./records-unreadable.js";

export interface ImageWriterOptions {
  pageSize?: number;
  /** ns since the epoch; default now */
  createdNs?: bigint;
  /** 16 bytes; default random */
  imageId?: Uint8Array;
  /** default codec for page chunks (default LZ4) */
  codec?: CodecId;
  /** fsync before rename (default true) */
  durable?: boolean;
  /** header version_minor (default: this library's, 1); an image holding only 1.0 records may say 0 */
  versionMinor?: number;
}

export interface RecordKeys {
  flags?: number;
  /** CRC-32 of the payload when the caller already has it (saves a pass over big payloads) */
  payloadCrc?: number;
  key32?: number;
  key64?: bigint;
  auxA?: number;
  auxB?: number;
}

/** Returns `length` bytes of an area's memory starting `offset` bytes into the area. */
export type AreaMemorySource = (offset: number, length: number) => Uint8Array | Promise<Uint8Array>;

interface IndexEntry {
  type: number; flags: number; key32: number; offset: number; payloadLength: number; key64: bigint; auxA: number; auxB: number;
  ownerPid: number;
}

export interface WriteSummary {
  path: string;
  bytes: number;
  records: number;
  rawPageBytes: number;
  storedPageBytes: number;
}

const FLUSH_BYTES = 4 << 20;

export class ImageWriter {
  private offset = 0;
  private readonly entries: IndexEntry[] = [];
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private done = false;
  private rawPageBytes = 0;
  private storedPageBytes = 0;
  /** format 1.2: the process the next records belong to (0: a single-process image) */
  private owner = 0;
  private isTree = false;

  private constructor(
    private readonly handle: FileHandle,
    private readonly tempPath: string,
    readonly path: string,
    readonly pageSize: number,
    private readonly codec: CodecId,
    private readonly durable: boolean,
  ) {}

  static async create(path: string, opts: ImageWriterOptions = {}): Promise<ImageWriter> {
    const pageSize = opts.pageSize ?? 4096;
    if (!Number.isInteger(Math.log2(pageSize)) || pageSize < 4096 || pageSize > 65536) {
      throw new RangeError(`page size ${pageSize} is not a power of two in [4096, 65536]`);
    }
    const temp = tempPathBeside(path);
    const handle = await open(temp, "wx", 0o600);
    const w = new ImageWriter(handle, temp, path, pageSize, opts.codec ?? CODEC.LZ4, opts.durable ?? true);
    w.push(encodeHeader(pageSize, opts.createdNs ?? BigInt(Date.now()) * 1_000_000n, opts.imageId ?? randomBytes(16), opts.versionMinor));
    return w;
  }

  /** Append one record; returns its file offset. */
  async writeRecord(type: number, payload: Uint8Array, keys: RecordKeys = {}): Promise<number> {
    if (this.done) throw new Error("image writer already finished");
    const at = this.offset;
    const flags = keys.flags ?? 0;
    const ownerPid = type === RecordType.TREE ? 0 : this.owner;
    this.push(encodeRecordHeader(type, flags, payload, this.entries.length, keys.payloadCrc, ownerPid));
    this.push(payload);
    this.entries.push({
      type, flags, key32: keys.key32 ?? 0, offset: at, payloadLength: payload.length,
      key64: keys.key64 ?? 0n, auxA: keys.auxA ?? 0, auxB: keys.auxB ?? 0, ownerPid,
    });
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush();
    return at;
  }

  /**
   * Format 1.2 process tree: the TREE record (MUST_UNDERSTAND, so readers that do not know
   * trees refuse the image). Then, for each live process, `beginProcess(pid)` and its records.
   */
  addTree(t: TreeRecord) {
    this.isTree = true;
    return this.writeRecord(RecordType.TREE, encodeTree(t), { flags: RECORD_FLAG_MUST_UNDERSTAND });
  }
  /** Pages of the current process that are its parent's (copy-on-write since fork). */
  addSharedPages(s: SharedPagesRecord) { return this.writeRecord(RecordType.SHARED_PAGES, encodeSharedPages(s)); }
  /** A TREE record is written through writeRecord (a verbatim copy): owners are set from now on. */
  markTree(): void {
    this.isTree = true;
  }
  /** Records written from now on belong to process `pid` of the tree. */
  beginProcess(pid: number): void {
    if (!this.isTree) throw new Error("beginProcess before addTree");
    this.owner = pid;
  }

  addProcess(p: ProcessRecord) { return this.writeRecord(RecordType.PROCESS, encodeProcess(p)); }
  addArgv(argv: readonly (string | Uint8Array)[]) { return this.writeRecord(RecordType.ARGV, encodeStringList(argv)); }
  addEnviron(env: readonly (string | Uint8Array)[]) { return this.writeRecord(RecordType.ENVIRON, encodeStringList(env)); }
  addAuxv(auxv: readonly AuxvEntry[]) { return this.writeRecord(RecordType.AUXV, encodeAuxv(auxv)); }
  addRlimits(r: readonly RlimitEntry[]) { return this.writeRecord(RecordType.RLIMITS, encodeRlimits(r)); }
  addSigactions(s: SigactionsRecord) { return this.writeRecord(RecordType.SIGACTIONS, encodeSigactions(s)); }
  addThread(t: ThreadRecord) { return this.writeRecord(RecordType.THREAD, encodeThread(t), { key32: t.tid }); }
  addArea(a: AreaRecord) { return this.writeRecord(RecordType.AREA, encodeArea(a), { key32: a.id, key64: a.start }); }
  addMappedFile(f: MappedFileRecord) { return this.writeRecord(RecordType.MAPPED_FILE, encodeMappedFile(f), { key32: f.id }); }
  addFd(f: FdRecord) { return this.writeRecord(RecordType.FD, encodeFd(f), { key32: f.fd }); }
  addTimers(t: TimersRecord) { return this.writeRecord(RecordType.TIMERS, encodeTimers(t)); }
  addProcessState(p: ProcessStateRecord) { return this.writeRecord(RecordType.PROCESS_STATE, encodeProcessState(p)); }
  addSeccomp(f: readonly SeccompFilter[]) { return this.writeRecord(RecordType.SECCOMP, encodeSeccomp(f)); }
  /** format 1.2: pending signals with their siginfo, in queue order (process-wide queue first) */
  addSigqueue(list: readonly Pick<PendingSignal, "tid" | "siginfo">[]) { return this.writeRecord(RecordType.SIGQUEUE, encodeSigqueue(list)); }
  addThreadState(t: ThreadStateRecord) { return this.writeRecord(RecordType.THREAD_STATE, encodeThreadState(t), { key32: t.tid }); }
  addFileContent(c: FileContentRecord) { return this.writeRecord(RecordType.FILE_CONTENT, encodeFileContent(c), { key32: c.id, key64: c.inode }); }
  addFdFile(f: FdFileRecord) { return this.writeRecord(RecordType.FD_FILE, encodeFdFile(f), { key32: f.fd }); }
  addTty(t: TtyRecord) { return this.writeRecord(RecordType.TTY, encodeTty(t), { key32: t.fd }); }
  /** Format 1.2: the pages of an UNREADABLE area that could not be read (one record per area). */
  addUnreadablePages(u: UnreadablePagesRecord) { return this.writeRecord(RecordType.UNREADABLE_PAGES, encodeUnreadablePages(u), { key32: u.areaId }); }

  /** One FILE_DATA run of a FILE_CONTENT: `raw` (1 byte to 16 MiB) at file `offset`, compressed with `codec`. */
  addFileData(contentId: number, offset: bigint, raw: Uint8Array, codec: CodecId = this.codec): Promise<number> {
    if (raw.length < 1 || raw.length > MAX_FILE_RUN) throw new RangeError(`file run of ${raw.length} bytes is not 1..${MAX_FILE_RUN}`);
    const packed = compressChunk(codec, raw);
    const payload = encodeFileData({ contentId, offset, length: raw.length, codec: packed.codec, storedSize: packed.data.length, rawCrc: crc32(raw) }, packed.data);
    return this.writeRecord(RecordType.FILE_DATA, payload, { key32: contentId, key64: offset, auxA: raw.length });
  }

  /** Format 1.2 SysV IPC objects (in a tree: written as the root's records). */
  addSysvShm(x: SysvShmRecord) { return this.writeRecord(RecordType.SYSV_SHM, encodeSysvShm(x), { key32: x.id }); }
  addSysvSem(x: SysvSemRecord) { return this.writeRecord(RecordType.SYSV_SEM, encodeSysvSem(x), { key32: x.id }); }
  addSysvMsg(x: SysvMsgRecord) { return this.writeRecord(RecordType.SYSV_MSG, encodeSysvMsg(x), { key32: x.id }); }

  /** A format 1.1 fd kind state record (pipe, socket, …). */
  addFdState(s: FdStateRecord) {
    const e = encodeFdState(s);
    return this.writeRecord(e.type, e.payload, { key32: e.key32, key64: e.key64 });
  }

  /**
   * One PAGES chunk: `raw` holds the stored pages (bits set in `bitmap`) back to back.
   * Compresses with `codec` (falling back to NONE when that does not shrink the data);
   * NONE data is placed page-aligned in the file so a restorer can mmap it.
   */
  async addPagesChunk(areaId: number, firstPage: bigint, spanPages: number, bitmap: Uint8Array, raw: Uint8Array, codec: CodecId = this.codec): Promise<number> {
    const storedPages = raw.length / this.pageSize;
    if (!Number.isInteger(storedPages) || storedPages < 1 || raw.length > MAX_CHUNK_RAW) {
      throw new RangeError(`chunk of ${raw.length} bytes is not 1..${MAX_CHUNK_RAW / this.pageSize} whole pages`);
    }
    const packed = compressChunk(codec, raw);
    const bitmapLen = Math.ceil(spanPages / 8);
    let dataOffset = FIXED_SIZE.PAGES + bitmapLen;
    if (packed.codec === CODEC.NONE) {
      const fileData = this.offset + RECORD_HEADER_SIZE + dataOffset;
      dataOffset += (this.pageSize - (fileData % this.pageSize)) % this.pageSize;
    }
    const payload = new Uint8Array(dataOffset + packed.data.length);
    const v = new DataView(payload.buffer);
    v.setUint32(0, FIXED_SIZE.PAGES, true);
    v.setUint32(PAGES.areaId, areaId, true);
    v.setBigUint64(PAGES.firstPage, firstPage, true);
    v.setUint32(PAGES.spanPages, spanPages, true);
    v.setUint32(PAGES.storedPages, storedPages, true);
    payload[PAGES.codec] = packed.codec;
    v.setUint32(PAGES.storedSize, packed.data.length, true);
    const rawCrc = crc32(raw);
    v.setUint32(PAGES.rawCrc, rawCrc, true);
    v.setUint32(PAGES.dataOffset, dataOffset, true);
    payload.set(bitmap.subarray(0, bitmapLen), FIXED_SIZE.PAGES);
    payload.set(packed.data, dataOffset);
    this.rawPageBytes += raw.length;
    this.storedPageBytes += payload.length;
    // Uncompressed DATA is the raw pages: derive the payload CRC instead of a second pass.
    const payloadCrc = packed.codec === CODEC.NONE ? crc32Combine(crc32(payload.subarray(0, dataOffset)), rawCrc, raw.length) : undefined;
    return this.writeRecord(RecordType.PAGES, payload, { key32: areaId, key64: firstPage, auxA: spanPages, auxB: storedPages, payloadCrc });
  }

  /**
   * Store an area's memory in chunks on the 256-page grid, omitting pages for which
   * `omit(pageIndex, bytes)` is true (default: all-zero pages). `memory` is either the whole
   * area or a function that returns `length` bytes at `offset` into the area, called once per
   * grid span, so an area of any size streams through in 1 MiB steps.
   */
  async addAreaMemory(
    area: Pick<AreaRecord, "id" | "start" | "end">,
    memory: Uint8Array | AreaMemorySource,
    omit?: (page: number, bytes: Uint8Array) => boolean,
    codec?: CodecId,
  ): Promise<void> {
    const ps = this.pageSize;
    const pages = Number((area.end - area.start) / BigInt(ps));
    if (memory instanceof Uint8Array && memory.length !== pages * ps) {
      throw new RangeError(`area ${area.id}: memory is ${memory.length} bytes, area is ${pages * ps}`);
    }
    const read = memory instanceof Uint8Array ? (o: number, n: number) => memory.subarray(o, o + n) : memory;
    const skip = omit ?? ((_p: number, bytes: Uint8Array) => isZeroPage(bytes));
    const gridBytes = BigInt(SPAN_GRID_PAGES * ps);
    let page = 0;
    while (page < pages) {
      const addr = area.start + BigInt(page) * BigInt(ps);
      const gridEnd = Number(((addr / gridBytes + 1n) * gridBytes - area.start) / BigInt(ps));
      const spanEnd = Math.min(pages, gridEnd);
      const span = await read(page * ps, (spanEnd - page) * ps);
      const keep: number[] = [];
      for (let p = page; p < spanEnd; p++) {
        if (!skip(p, span.subarray((p - page) * ps, (p - page + 1) * ps))) keep.push(p);
      }
      if (keep.length) {
        // Trim the span to the stored pages so the bitmap describes only what is there.
        const first = keep[0];
        const bitmap = new Uint8Array(Math.ceil((keep[keep.length - 1] - first + 1) / 8));
        const raw = new Uint8Array(keep.length * ps);
        keep.forEach((p, i) => {
          bitmap[(p - first) >> 3] |= 1 << ((p - first) & 7);
          raw.set(span.subarray((p - page) * ps, (p - page + 1) * ps), i * ps);
        });
        await this.addPagesChunk(area.id, area.start + BigInt(first * ps), keep[keep.length - 1] - first + 1, bitmap, raw, codec);
      }
      page = spanEnd;
    }
  }

  /** Write INDEX and TRAILER, make it durable, rename into place. */
  async finish(): Promise<WriteSummary> {
    if (this.done) throw new Error("image writer already finished");
    const indexAt = this.offset;
    const entrySize = this.isTree ? INDEX_ENTRY_SIZE_TREE : INDEX_ENTRY_SIZE;
    const payload = new Uint8Array(INDEX_FIXED_SIZE + this.entries.length * entrySize);
    const v = new DataView(payload.buffer);
    v.setUint32(0, INDEX_FIXED_SIZE, true);
    v.setUint32(4, entrySize, true);
    v.setBigUint64(8, BigInt(this.entries.length), true);
    this.entries.forEach((e, i) => {
      const o = INDEX_FIXED_SIZE + i * entrySize;
      if (this.isTree) v.setUint32(o + IDX.ownerPid, e.ownerPid, true);
      v.setUint16(o + IDX.type, e.type, true);
      v.setUint16(o + IDX.flags, e.flags, true);
      v.setUint32(o + IDX.key32, e.key32, true);
      v.setBigUint64(o + IDX.offset, BigInt(e.offset), true);
      v.setBigUint64(o + IDX.payloadLength, BigInt(e.payloadLength), true);
      v.setBigUint64(o + IDX.key64, e.key64, true);
      v.setUint32(o + IDX.auxA, e.auxA, true);
      v.setUint32(o + IDX.auxB, e.auxB, true);
    });
    this.push(encodeRecordHeader(RecordType.INDEX, 0, payload, this.entries.length));
    this.push(payload);
    this.push(encodeTrailer(indexAt, this.entries.length));
    this.done = true;
    try {
      await this.flush();
      if (this.durable) await this.handle.sync();
      await this.handle.close();
      await rename(this.tempPath, this.path);
    } catch (err) {
      await this.abort();
      throw err;
    }
    return { path: this.path, bytes: this.offset, records: this.entries.length + 1, rawPageBytes: this.rawPageBytes, storedPageBytes: this.storedPageBytes };
  }

  /** Drop the half-written image: nothing is left at `path` or beside it. */
  async abort(): Promise<void> {
    this.done = true;
    this.pending = [];
    await this.handle.close().catch(() => {});
    await unlink(this.tempPath).catch(() => {});
  }

  private push(bytes: Uint8Array): void {
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    this.offset += bytes.length;
  }

  private async flush(): Promise<void> {
    const chunks = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    // writev may write partially for huge batches: loop until every byte is out.
    let views = chunks;
    while (views.length) {
      const { bytesWritten } = await this.handle.writev(views);
      let left = bytesWritten;
      let i = 0;
      while (i < views.length && left >= views[i].length) left -= views[i++].length;
      views = views.slice(i);
      if (left && views.length) views[0] = views[0].subarray(left);
    }
  }
}

/** True when the page is all zero bytes (word-at-a-time scan). */
export function isZeroPage(page: Uint8Array): boolean {
  if ((page.byteOffset & 7) === 0 && (page.length & 7) === 0) {
    const words = new BigUint64Array(page.buffer, page.byteOffset, page.length >> 3);
    for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
    return true;
  }
  for (let i = 0; i < page.length; i++) if (page[i] !== 0) return false;
  return true;
}

function encodeHeader(pageSize: number, createdNs: bigint, imageId: Uint8Array, versionMinor = VERSION_MINOR): Uint8Array {
  const h = new Uint8Array(HEADER_SIZE);
  const v = new DataView(h.buffer);
  h.set(IMAGE_MAGIC, HDR.magic);
  v.setUint16(HDR.versionMajor, VERSION_MAJOR, true);
  v.setUint16(HDR.versionMinor, versionMinor, true);
  v.setUint32(HDR.headerSize, HEADER_SIZE, true);
  v.setUint32(HDR.pageSize, pageSize, true);
  v.setUint16(HDR.machine, EM_X86_64, true);
  v.setBigUint64(HDR.createdNs, createdNs, true);
  h.set(imageId.subarray(0, 16), HDR.imageId);
  v.setUint32(HDR.crc, crc32(h.subarray(0, HDR.crc)), true);
  return h;
}

export function encodeRecordHeader(type: number, flags: number, payload: Uint8Array, sequence: number, payloadCrc = crc32(payload), ownerPid = 0): Uint8Array {
  const h = new Uint8Array(RECORD_HEADER_SIZE);
  const v = new DataView(h.buffer);
  h.set(RECORD_MAGIC, REC.magic);
  v.setUint16(REC.type, type, true);
  v.setUint16(REC.flags, flags, true);
  v.setBigUint64(REC.payloadLength, BigInt(payload.length), true);
  v.setUint32(REC.payloadCrc, payloadCrc, true);
  v.setUint32(REC.sequence, sequence, true);
  v.setUint32(REC.ownerPid, ownerPid, true);
  v.setUint32(REC.crc, crc32(h.subarray(0, REC.crc)), true);
  return h;
}

function encodeTrailer(indexOffset: number, recordCount: number): Uint8Array {
  const t = new Uint8Array(TRAILER_SIZE);
  const v = new DataView(t.buffer);
  t.set(TRAILER_MAGIC, TRL.magic);
  v.setBigUint64(TRL.indexOffset, BigInt(indexOffset), true);
  v.setBigUint64(TRL.recordCount, BigInt(recordCount), true);
  v.setUint32(TRL.crc, crc32(t.subarray(0, TRL.crc)), true);
  return t;
}
