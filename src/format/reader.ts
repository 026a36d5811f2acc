/**
 * Random-access image reader over a file handle. Opening reads HEADER, TRAILER, INDEX and the
 * metadata records only; page data is read chunk by chunk on demand, so opening a 100 GiB
 * image costs what its metadata costs. Every length and offset is checked against the file
 * before it is trusted (images are hostile input).
 *
 * Two modes: strict (default) throws the first ImageError; tolerant (`{ tolerant: true }`, used
 * by verify and by forensics on damaged images) records problems, skips the bad records, and
 * falls back to scanning records when the trailer or index is damaged.
 */
import { FD_STATE_CODECS, type FdStateRecord } from "./records-fd.js";
import { open, stat, type FileHandle } from "node:fs/promises";
import { crc32, crc32Combine } from "./checksum.js";
import { CodecError } from "./codec-error.js";
import { CODEC, decompressChunk } from "./codecs.js";
import { ImageError, type ImageErrorCode } from "./errors.js";
import {
  HDR, HEADER_SIZE, IDX, IMAGE_MAGIC, INDEX_ENTRY_SIZE, INDEX_FIXED_SIZE, MAX_CHUNK_RAW,
  MAX_METADATA_PAYLOAD, PAGES, REC, RECORD_FLAG_MUST_UNDERSTAND, RECORD_HEADER_SIZE, RECORD_MAGIC,
  RECORD_TYPE_NAMES, RecordType, TRAILER_MAGIC, TRAILER_SIZE, TRL, VERSION_MAJOR, FIXED_SIZE,
} from "./raw.js";
import {
  decodeArea, decodeAuxv, decodeFd, decodeMappedFile, decodePagesHeader, decodeProcess,
  decodeRlimits, decodeSigactions, decodeStringList, decodeThread, popcount8,
  type AreaRecord, type AuxvEntry, type FdRecord, type MappedFileRecord, type PagesChunkHeader,
  type ProcessRecord, type RlimitEntry, type SigactionsRecord, type ThreadRecord,
} from "./records.js";
import {
  decodeProcessState, decodeSeccomp, decodeThreadState, decodeTimers,
  type ProcessStateRecord, type SeccompFilter, type ThreadStateRecord, type TimersRecord,
} from "./records-state.js";
import { FILE_DATA, FILES_FIXED_SIZE } from "./raw-files.js";
import { attachChain, digestIn, type ChainContext } from "./chain.js";
import { decodePageDigests, decodeParent, type PageDigestsRecord, type ParentRecord } from "./records-chain.js";
import {
  decodeFdFile, decodeFileContent, decodeFileDataHeader, decodeTty,
  type FdFileRecord, type FileContentRecord, type FileDataHeader, type TtyRecord,
} from "./records-files.js";

export interface ImageHeader {
  versionMajor: number;
  versionMinor: number;
  headerSize: number;
  flags: number;
  pageSize: number;
  machine: number;
  createdNs: bigint;
  imageId: Uint8Array;
}

/** One entry of the image's index: where a record is, without reading it. */
export interface IndexEntry {
  /** position in file order (= the record's sequence number) */
  sequence: number;
  type: number;
  flags: number;
  key32: number;
  /** file offset of the record header (exact: images are < 2^53 bytes) */
  offset: number;
  payloadLength: number;
  key64: bigint;
  auxA: number;
  auxB: number;
}

/** A chunk of page data, as the index describes it. */
export interface ChunkRef {
  sequence: number;
  areaId: number;
  firstPage: bigint;
  spanPages: number;
  storedPages: number;
  /** file offset of the PAGES record header */
  offset: number;
  payloadLength: number;
  /**
   * Format 1.2 chains: a chunk of what the image holds, composed from its own PAGES and its
   * parent's (offset is then negative and unique; no record of its own to read).
   */
  resolved?: { rawCrc: number; bitmap: Uint8Array; read(): Promise<DecodedChunk> };
}

/** Where one FILE_DATA run lies (from the index); its bytes are read with readFileData(). */
export interface FileDataRef {
  sequence: number;
  contentId: number;
  /** file offset of the run's first byte */
  fileOffset: bigint;
  length: number;
  /** image offset of the record header */
  offset: number;
  payloadLength: number;
}

export interface DecodedChunk {
  header: PagesChunkHeader;
  /** the stored pages, back to back (storedPages × pageSize bytes) */
  raw: Uint8Array;
}

/** A problem found in tolerant mode (or by verify). */
export interface ImageProblem {
  code: ImageErrorCode;
  detail: string;
  offset: number | undefined;
  recordType: string | undefined;
  sequence: number | undefined;
}

export interface UnknownRecord {
  type: number;
  flags: number;
  offset: number;
  payloadLength: number;
}

export interface OpenOptions {
  /** collect problems instead of throwing on the first (default false) */
  tolerant?: boolean;
  /** prefix for mapped-file paths when reading file-backed pages from disk (a sysroot) */
  fileRoot?: string;
}

export interface ReadMemoryOptions {
  /**
   * What to do with a page whose content the image does not hold and that cannot be derived
   * (vdso/vvar, a mapped file missing or changed on disk): "throw" (default) or "zero".
   */
  unavailable?: "throw" | "zero";
}

/** Where one page of memory comes from. */
export type PageSource = "image" | "zero" | "file" | "unavailable";

const CHUNK_CACHE_SIZE = 8;
/** Coalesce metadata reads whose gap is below this, up to MAX_COALESCED per read. */
const COALESCE_GAP = 64 * 1024;
const MAX_COALESCED = 8 * 1024 * 1024;
/** A PAGES payload holds at most the raw size plus header, bitmap, alignment padding and LZ4's worst-case growth. */
const MAX_PAGES_PAYLOAD = MAX_CHUNK_RAW + MAX_CHUNK_RAW / 255 + 16 + FIXED_SIZE.PAGES + (1 << 17) + 65536;

const MAX_FILE_RUN_BYTES = 16 * 1024 * 1024;

const SINGLETONS = new Set<number>([
  RecordType.PROCESS, RecordType.ARGV, RecordType.ENVIRON, RecordType.AUXV, RecordType.RLIMITS, RecordType.SIGACTIONS,
  RecordType.TIMERS, RecordType.PROCESS_STATE, RecordType.SECCOMP, RecordType.PARENT,
]);

export function recordTypeName(type: number): string {
  return RECORD_TYPE_NAMES[type] ?? FD_STATE_CODECS.get(type)?.name ?? `0x${type.toString(16).padStart(4, "0")}`;
}

/** Open an image for reading. Close it with `close()` (or `await using`). */
export async function openImage(path: string, opts: OpenOptions = {}, chain: ChainContext = { seen: [] }): Promise<CheckpointImage> {
  let handle: FileHandle;
  try {
    // Check the kind first: opening a FIFO for reading would block forever.
    const st = await stat(path);
    if (st.isDirectory()) throw new ImageError("IO", "is a directory, not an image", { file: path });
    if (!st.isFile()) throw new ImageError("IO", "not a regular file", { file: path });
    handle = await open(path, "r");
  } catch (err) {
    if (err instanceof ImageError) throw err;
    const e = err as NodeJS.ErrnoException;
    const why = e.code === "ENOENT" ? "no such file" : e.code === "EACCES" ? "permission denied" : e.code === "ENOTDIR" ? "a path component is not a directory" : e.message;
    throw new ImageError("IO", `cannot open: ${why}`, { file: path });
  }
  const image = new CheckpointImage(path, handle, opts);
  try {
    await image.load();
    await attachChain(image, opts, chain, openImage);
  } catch (err) {
    await image.parent?.close().catch(() => {});
    await handle.close().catch(() => {});
    if (err instanceof ImageError && err.file === undefined) err.file = path;
    throw err;
  }
  return image;
}

export class CheckpointImage {
  readonly problems: ImageProblem[] = [];
  /** true when the index was damaged and records were found by scanning */
  recovered = false;
  size = 0;
  header!: ImageHeader;
  entries: IndexEntry[] = [];

  process!: ProcessRecord;
  argv: string[] = [];
  environ: string[] = [];
  auxv: AuxvEntry[] = [];
  rlimits: RlimitEntry[] = [];
  sigactions: SigactionsRecord = { sharedPending: 0n, actions: [] };
  threads: ThreadRecord[] = [];
  /** memory areas sorted by start address */
  areas: AreaRecord[] = [];
  files: MappedFileRecord[] = [];
  fds: FdRecord[] = [];
  /** format 1.1 state (undefined / empty in 1.0 images) */
  timers: TimersRecord | undefined;
  processState: ProcessStateRecord | undefined;
  seccompFilters: SeccompFilter[] = [];
  threadStates: ThreadStateRecord[] = [];
  /** format 1.1: files whose content the image holds (deleted files, memfds) */
  fileContents: FileContentRecord[] = [];
  /** format 1.1: identity of the regular file behind an fd, by fd */
  fdFiles = new Map<number, FdFileRecord>();
  /** format 1.1: terminal state, by fd */
  ttys = new Map<number, TtyRecord>();
  /** FILE_DATA runs per content id, sorted by file offset */
  readonly fileRunsByContent = new Map<number, FileDataRef[]>();
  /** format 1.1 kind state of fds (pipes, sockets, …), in file order; see records-fd.ts */
  fdState: FdStateRecord[] = [];
  unknownRecords: UnknownRecord[] = [];
  /** page chunks per area id, sorted by first page (for a chain: what the image holds) */
  readonly chunksByArea = new Map<number, ChunkRef[]>();
  /** format 1.2: the PAGES records of this file itself (= chunksByArea unless a chain) */
  ownChunksByArea = this.chunksByArea;
  /** format 1.2: the image this one is a delta of (PARENT), and what it holds (PAGE_DIGESTS) */
  parentRecord: ParentRecord | undefined;
  pageDigests: PageDigestsRecord[] = [];
  /** the opened parent image, when the chain was resolved */
  parent: CheckpointImage | undefined;

  private readonly tolerant: boolean;
  private readonly chunkCache = new Map<number, DecodedChunk>();
  private readonly fileCache = new Map<number, { handle: FileHandle; size: number } | null>();
  /** protected: foreign readers (src/criu) fill the model through these too */
  protected readonly areaById = new Map<number, AreaRecord>();
  protected readonly fileById = new Map<number, MappedFileRecord>();

  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly opts: OpenOptions,
  ) {
    this.tolerant = opts.tolerant ?? false;
  }

  get pageSize(): number {
    return this.header.pageSize;
  }

  /** "1.0" for a ckimg image; a foreign reader names its format (e.g. "criu 2"). */
  get formatVersion(): string {
    return `${this.header.versionMajor}.${this.header.versionMinor}`;
  }

  /** Chunks carry raw_crc in a PAGES header (diff compares them by it without decoding). */
  get chunksHaveCrc(): boolean {
    return true;
  }

  /** This file's own PAGES records in file order (for a chain, without the parent's). */
  get ownChunks(): ChunkRef[] {
    const all: ChunkRef[] = [];
    for (const list of this.ownChunksByArea.values()) all.push(...list);
    return all.sort((a, b) => a.offset - b.offset);
  }

  /** @internal chain.ts: the parent is checked; chunks now describe what the image holds. */
  attachParent(parent: CheckpointImage, resolved: Map<number, ChunkRef[]>): void {
    this.parent = parent;
    this.ownChunksByArea = new Map(this.chunksByArea);
    this.chunksByArea.clear();
    for (const [k, v] of resolved) this.chunksByArea.set(k, v);
  }

  /** The images of the chain, this one first (one entry for a standalone image). */
  get chain(): CheckpointImage[] {
    const out: CheckpointImage[] = [];
    for (let i: CheckpointImage | undefined = this; i; i = i.parent) out.push(i);
    return out;
  }

  /** The digest [CRC-32, Adler-32] of a page the image holds (PAGE_DIGESTS), if any. */
  digestOf(pageAddr: bigint): [number, number] | undefined {
    return digestIn(this.pageDigests, pageAddr, this.pageSize);
  }

  /** The bytes of a page the image (or its chain) holds, undefined when it holds none there. */
  async heldPage(pageAddr: bigint): Promise<Uint8Array | undefined> {
    const area = this.areaAt(pageAddr);
    return area ? this.storedPage(area, pageAddr) : undefined;
  }

  /** Which file of the chain stores the page at `pageAddr` (undefined: none; see pageSource). */
  async pageOrigin(pageAddr: bigint): Promise<string | undefined> {
    const ps = BigInt(this.pageSize);
    const page = pageAddr - (pageAddr % ps);
    const area = this.areaAt(page);
    if (!area) return undefined;
    for (const c of this.ownChunksByArea.get(area.id) ?? []) {
      if (page >= c.firstPage && page < c.firstPage + BigInt(c.spanPages) * ps) {
        const { header } = await this.readChunk(c);
        if (bitmapIndex(header.bitmap, Number((page - c.firstPage) / ps)) !== undefined) return this.path;
      }
    }
    return this.parent && this.digestOf(page) ? this.parent.pageOrigin(page) : undefined;
  }

  /** All page chunks in file order. */
  get chunks(): ChunkRef[] {
    const all: ChunkRef[] = [];
    for (const list of this.chunksByArea.values()) all.push(...list);
    return all.sort((a, b) => a.offset - b.offset);
  }

  area(id: number): AreaRecord | undefined {
    return this.areaById.get(id);
  }

  mappedFile(id: number | undefined): MappedFileRecord | undefined {
    return id === undefined ? undefined : this.fileById.get(id);
  }

  /** The area containing `addr`, by binary search. */
  areaAt(addr: bigint): AreaRecord | undefined {
    const areas = this.areas;
    let lo = 0, hi = areas.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const a = areas[mid];
      if (addr < a.start) hi = mid - 1;
      else if (addr >= a.end) lo = mid + 1;
      else return a;
    }
    return undefined;
  }

  /** Pages stored for an area, from the index (no page data read). */
  storedPages(areaId: number): number {
    let n = 0;
    for (const c of this.chunksByArea.get(areaId) ?? []) n += c.storedPages;
    return n;
  }

  /** Bytes the area's chunks take in the file (payloads, as stored; a chain: this file's). */
  storedBytes(areaId: number): number {
    let n = 0;
    for (const c of this.ownChunksByArea.get(areaId) ?? []) n += c.payloadLength;
    return n;
  }

  /** Pages of the area this file itself stores (= storedPages unless a chain). */
  ownStoredPages(areaId: number): number {
    let n = 0;
    for (const c of this.ownChunksByArea.get(areaId) ?? []) n += c.storedPages;
    return n;
  }

  async close(): Promise<void> {
    await this.parent?.close();
    this.chunkCache.clear();
    for (const f of this.fileCache.values()) await f?.handle.close().catch(() => {});
    this.fileCache.clear();
    await this.handle.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // -------------------------------------------------------------------------------------
  // Opening

  /** @internal called by openImage */
  async load(): Promise<void> {
    this.size = (await this.handle.stat()).size;
    this.header = await this.readHeader();
    let entries: IndexEntry[] | undefined;
    try {
      entries = await this.readIndex();
    } catch (err) {
      if (!this.tolerant || !(err instanceof ImageError)) throw err;
      this.note(err);
    }
    if (!entries) {
      this.recovered = true;
      entries = await this.scanRecords();
    }
    this.entries = entries;
    await this.loadRecords(entries);
    this.crossCheck();
  }

  private async readHeader(): Promise<ImageHeader> {
    if (this.size === 0) throw new ImageError("NOT_AN_IMAGE", "empty file, not a ckimg image", { offset: 0 });
    const h = await this.readAt(0, Math.min(HEADER_SIZE, this.size));
    for (let i = 0; i < Math.min(IMAGE_MAGIC.length, h.length); i++) {
      if (h[i] !== IMAGE_MAGIC[i]) throw new ImageError("NOT_AN_IMAGE", "not a ckimg image (bad magic)", { offset: 0 });
    }
    if (h.length < HEADER_SIZE) throw new ImageError("TRUNCATED", "image header is truncated", { offset: h.length });
    const v = view(h);
    const major = v.getUint16(HDR.versionMajor, true);
    const minor = v.getUint16(HDR.versionMinor, true);
    if (major !== VERSION_MAJOR) {
      throw new ImageError("UNSUPPORTED_VERSION", `image format version ${major}.${minor} (this reader knows ${VERSION_MAJOR}.x)`, { offset: HDR.versionMajor });
    }
    if (crc32(h.subarray(0, HDR.crc)) !== v.getUint32(HDR.crc, true)) {
      this.fail("BAD_HEADER", "header checksum mismatch", { offset: HDR.crc });
    }
    let headerSize = v.getUint32(HDR.headerSize, true);
    if (headerSize < HEADER_SIZE || headerSize > this.size) {
      this.fail("BAD_HEADER", `header_size ${headerSize} is out of range`, { offset: HDR.headerSize });
      headerSize = HEADER_SIZE;
    }
    let pageSize = v.getUint32(HDR.pageSize, true);
    if (pageSize < 4096 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
      this.fail("BAD_HEADER", `page_size ${pageSize} is not a power of two in [4096, 65536]`, { offset: HDR.pageSize });
      pageSize = 4096;
    }
    return {
      versionMajor: major, versionMinor: minor, headerSize, flags: v.getUint32(HDR.flags, true), pageSize,
      machine: v.getUint16(HDR.machine, true), createdNs: v.getBigUint64(HDR.createdNs, true),
      imageId: h.slice(HDR.imageId, HDR.imageId + 16),
    };
  }

  /** TRAILER → INDEX record → entries, each checked against the file (section 3). */
  private async readIndex(): Promise<IndexEntry[]> {
    const minSize = this.header.headerSize + RECORD_HEADER_SIZE + INDEX_FIXED_SIZE + TRAILER_SIZE;
    if (this.size < minSize) throw new ImageError("TRUNCATED", `file of ${this.size} bytes is too short to hold an index and trailer`, { offset: this.size });
    const trailerAt = this.size - TRAILER_SIZE;
    const t = await this.readAt(trailerAt, TRAILER_SIZE);
    const tv = view(t);
    if (!startsWith(t, TRAILER_MAGIC)) throw new ImageError("BAD_TRAILER", "no trailer (file truncated or not finished)", { offset: trailerAt });
    if (crc32(t.subarray(0, TRL.crc)) !== tv.getUint32(TRL.crc, true)) throw new ImageError("BAD_TRAILER", "trailer checksum mismatch", { offset: trailerAt + TRL.crc });
    const indexAt = safeNumber(tv.getBigUint64(TRL.indexOffset, true), "index_offset", trailerAt + TRL.indexOffset, "BAD_TRAILER");
    const recordCount = tv.getBigUint64(TRL.recordCount, true);
    if (indexAt < this.header.headerSize || indexAt + RECORD_HEADER_SIZE + INDEX_FIXED_SIZE > trailerAt) {
      throw new ImageError("BAD_TRAILER", `index_offset ${indexAt} is outside the file`, { offset: trailerAt + TRL.indexOffset });
    }
    const where = { recordType: "INDEX" };
    const rh = this.parseRecordHeader(await this.readAt(indexAt, RECORD_HEADER_SIZE), indexAt);
    if (rh.type !== RecordType.INDEX) throw new ImageError("BAD_INDEX", `record at index_offset has type ${recordTypeName(rh.type)}, not INDEX`, { offset: indexAt + REC.type });
    const expectedLength = trailerAt - indexAt - RECORD_HEADER_SIZE;
    if (rh.payloadLength !== expectedLength) {
      throw new ImageError("BAD_INDEX", `INDEX payload_length ${rh.payloadLength} does not reach the trailer (expected ${expectedLength})`, { ...where, offset: indexAt + REC.payloadLength });
    }
    const payloadAt = indexAt + RECORD_HEADER_SIZE;
    const payload = await this.readAt(payloadAt, expectedLength);
    if (crc32(payload) !== rh.payloadCrc) throw new ImageError("BAD_CHECKSUM", "INDEX payload checksum mismatch", { ...where, offset: payloadAt });
    const pv = view(payload);
    const fixedSize = pv.getUint32(0, true);
    const entrySize = pv.getUint32(4, true);
    const count = pv.getBigUint64(8, true);
    if (fixedSize < INDEX_FIXED_SIZE || entrySize < INDEX_ENTRY_SIZE || fixedSize > payload.length) {
      throw new ImageError("BAD_INDEX", `INDEX fixed_size ${fixedSize} / entry_size ${entrySize} out of range`, { ...where, offset: payloadAt });
    }
    if (BigInt(fixedSize) + count * BigInt(entrySize) !== BigInt(payload.length) || count !== recordCount) {
      throw new ImageError("BAD_INDEX", `INDEX entry_count ${count} does not match its size or the trailer's record_count ${recordCount}`, { ...where, offset: payloadAt + 8 });
    }
    const entries: IndexEntry[] = [];
    let previousEnd = this.header.headerSize;
    for (let i = 0; i < Number(count); i++) {
      const o = fixedSize + i * entrySize;
      const entryAt = payloadAt + o;
      const offset = safeNumber(pv.getBigUint64(o + IDX.offset, true), "entry offset", entryAt + IDX.offset, "BAD_INDEX");
      const payloadLength = safeNumber(pv.getBigUint64(o + IDX.payloadLength, true), "entry payload_length", entryAt + IDX.payloadLength, "BAD_INDEX");
      if (offset < previousEnd || offset + RECORD_HEADER_SIZE + payloadLength > indexAt) {
        throw new ImageError("BAD_INDEX", `index entry ${i} (offset ${offset}, length ${payloadLength}) overlaps another record or leaves the file`, { ...where, offset: entryAt });
      }
      previousEnd = offset + RECORD_HEADER_SIZE + payloadLength;
      entries.push({
        sequence: i, type: pv.getUint16(o + IDX.type, true), flags: pv.getUint16(o + IDX.flags, true),
        key32: pv.getUint32(o + IDX.key32, true), offset, payloadLength, key64: pv.getBigUint64(o + IDX.key64, true),
        auxA: pv.getUint32(o + IDX.auxA, true), auxB: pv.getUint32(o + IDX.auxB, true),
      });
    }
    return entries;
  }

  /**
   * Recovery: walk records from the header on, trusting each record header only after its
   * magic and CRC check out, until the INDEX, the end, or the first damaged header.
   */
  private async scanRecords(): Promise<IndexEntry[]> {
    const entries: IndexEntry[] = [];
    let at = this.header.headerSize;
    while (at + RECORD_HEADER_SIZE <= this.size) {
      let rh;
      try {
        rh = this.parseRecordHeader(await this.readAt(at, RECORD_HEADER_SIZE), at);
      } catch (err) {
        if (err instanceof ImageError) this.note(err);
        else throw err;
        break;
      }
      if (rh.type === RecordType.INDEX) break;
      if (at + RECORD_HEADER_SIZE + rh.payloadLength > this.size) {
        this.note(new ImageError("TRUNCATED", `record payload of ${rh.payloadLength} bytes runs past the end of the file`, { offset: at, recordType: recordTypeName(rh.type), sequence: rh.sequence }));
        break;
      }
      const entry: IndexEntry = {
        sequence: entries.length, type: rh.type, flags: rh.flags, key32: 0, offset: at,
        payloadLength: rh.payloadLength, key64: 0n, auxA: 0, auxB: 0,
      };
      if (rh.type === RecordType.PAGES && rh.payloadLength >= FIXED_SIZE.PAGES) {
        // The index keys of a chunk live in its fixed header: read just that.
        const fixed = view(await this.readAt(at + RECORD_HEADER_SIZE, FIXED_SIZE.PAGES));
        entry.key32 = fixed.getUint32(PAGES.areaId, true);
        entry.key64 = fixed.getBigUint64(PAGES.firstPage, true);
        entry.auxA = fixed.getUint32(PAGES.spanPages, true);
        entry.auxB = fixed.getUint32(PAGES.storedPages, true);
      }
      if (rh.type === RecordType.FILE_DATA && rh.payloadLength >= FILES_FIXED_SIZE.FILE_DATA) {
        const fixed = view(await this.readAt(at + RECORD_HEADER_SIZE, FILES_FIXED_SIZE.FILE_DATA));
        entry.key32 = fixed.getUint32(FILE_DATA.contentId, true);
        entry.key64 = fixed.getBigUint64(FILE_DATA.offset, true);
        entry.auxA = fixed.getUint32(FILE_DATA.length, true);
      }
      entries.push(entry);
      at += RECORD_HEADER_SIZE + rh.payloadLength;
    }
    return entries;
  }

  private async loadRecords(entries: IndexEntry[]): Promise<void> {
    const seen = new Set<number>();
    const metadata: IndexEntry[] = [];
    for (const e of entries) {
      if (e.type === RecordType.PAGES) this.addChunkRef(e);
      else if (e.type === RecordType.FILE_DATA) this.addFileDataRef(e);
      else if (e.type === RecordType.INDEX) this.fail("BAD_INDEX", "INDEX listed as a record", { offset: e.offset, sequence: e.sequence });
      else if (!RECORD_TYPE_NAMES[e.type] && !FD_STATE_CODECS.has(e.type)) {
        if (e.flags & RECORD_FLAG_MUST_UNDERSTAND) {
          this.fail("UNSUPPORTED_RECORD", `record type ${recordTypeName(e.type)} must be understood but is unknown to this reader`, { offset: e.offset, sequence: e.sequence });
        }
        this.unknownRecords.push({ type: e.type, flags: e.flags, offset: e.offset, payloadLength: e.payloadLength });
      } else if (e.payloadLength > MAX_METADATA_PAYLOAD) {
        this.fail("RECORD_TOO_LARGE", `${recordTypeName(e.type)} payload of ${e.payloadLength} bytes exceeds the 64 MiB limit`, { offset: e.offset, recordType: recordTypeName(e.type), sequence: e.sequence });
      } else metadata.push(e);
    }
    for (const group of coalesce(metadata)) {
      const first = group[0];
      const last = group[group.length - 1];
      const span = await this.readAt(first.offset, last.offset + RECORD_HEADER_SIZE + last.payloadLength - first.offset);
      for (const e of group) {
        const rel = e.offset - first.offset;
        try {
          const payload = this.checkRecord(e, span.subarray(rel, rel + RECORD_HEADER_SIZE + e.payloadLength));
          this.decodeRecord(e, payload, seen);
        } catch (err) {
          if (!this.tolerant || !(err instanceof ImageError)) throw err;
          this.note(err);
        }
      }
    }
    if (!this.process) this.fail("MISSING_RECORD", "image has no PROCESS record", { offset: this.header.headerSize });
    this.pageDigests.sort((a, b) => (a.firstPage < b.firstPage ? -1 : a.firstPage > b.firstPage ? 1 : 0));
    this.areas.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (const list of this.chunksByArea.values()) list.sort((a, b) => (a.firstPage < b.firstPage ? -1 : a.firstPage > b.firstPage ? 1 : 0));
  }

  private addFileDataRef(e: IndexEntry): void {
    const ref: FileDataRef = {
      sequence: e.sequence, contentId: e.key32, fileOffset: e.key64, length: e.auxA, offset: e.offset, payloadLength: e.payloadLength,
    };
    let list = this.fileRunsByContent.get(ref.contentId);
    if (!list) this.fileRunsByContent.set(ref.contentId, (list = []));
    list.push(ref);
  }

  private addChunkRef(e: IndexEntry): void {
    const ref: ChunkRef = {
      sequence: e.sequence, areaId: e.key32, firstPage: e.key64, spanPages: e.auxA, storedPages: e.auxB,
      offset: e.offset, payloadLength: e.payloadLength,
    };
    let list = this.chunksByArea.get(ref.areaId);
    if (!list) this.chunksByArea.set(ref.areaId, (list = []));
    list.push(ref);
  }

  /** Validate a whole record (header + payload bytes) against its index entry; returns the payload. */
  private checkRecord(e: IndexEntry, bytes: Uint8Array): Uint8Array {
    const payload = this.checkRecordHeader(e, bytes);
    if (crc32(payload) !== this.payloadCrcOf(bytes)) throw this.payloadCrcError(e);
    return payload;
  }

  /** Header checks (magic, CRC, agreement with the index entry); returns the payload view. */
  private checkRecordHeader(e: IndexEntry, bytes: Uint8Array): Uint8Array {
    const rh = this.parseRecordHeader(bytes.subarray(0, RECORD_HEADER_SIZE), e.offset);
    const where = { file: this.path, offset: e.offset, recordType: recordTypeName(e.type), sequence: e.sequence };
    if (rh.type !== e.type || rh.flags !== e.flags || rh.payloadLength !== e.payloadLength) {
      throw new ImageError("BAD_INDEX", `record header (type ${recordTypeName(rh.type)}, length ${rh.payloadLength}) disagrees with its index entry`, where);
    }
    if (rh.sequence !== e.sequence) {
      throw new ImageError("BAD_RECORD", `record sequence ${rh.sequence} where ${e.sequence} was expected (records reordered or duplicated)`, where);
    }
    return bytes.subarray(RECORD_HEADER_SIZE);
  }

  private payloadCrcOf(recordBytes: Uint8Array): number {
    return view(recordBytes).getUint32(REC.payloadCrc, true);
  }

  private payloadCrcError(e: IndexEntry): ImageError {
    return new ImageError("BAD_CHECKSUM", "payload checksum mismatch", { file: this.path, offset: e.offset + RECORD_HEADER_SIZE, recordType: recordTypeName(e.type), sequence: e.sequence });
  }

  private decodeRecord(e: IndexEntry, payload: Uint8Array, seen: Set<number>): void {
    const base = e.offset + RECORD_HEADER_SIZE;
    const typeName = recordTypeName(e.type);
    const where = { recordType: typeName, sequence: e.sequence };
    if (SINGLETONS.has(e.type)) {
      if (seen.has(e.type)) throw new ImageError("DUPLICATE_RECORD", `second ${typeName} record`, { ...where, offset: e.offset });
      seen.add(e.type);
    }
    const unique = <T>(map: Map<number, T> | Set<number>, key: number, what: string) => {
      if (map.has(key)) throw new ImageError("DUPLICATE_RECORD", `${what} ${key} appears twice`, { ...where, offset: e.offset });
    };
    switch (e.type) {
      case RecordType.PROCESS: this.process = decodeProcess(payload, base, where); break;
      case RecordType.ARGV: this.argv = decodeStringList(payload, base, where, "ARGV"); break;
      case RecordType.ENVIRON: this.environ = decodeStringList(payload, base, where, "ENVIRON"); break;
      case RecordType.AUXV: this.auxv = decodeAuxv(payload, base, where); break;
      case RecordType.RLIMITS: this.rlimits = decodeRlimits(payload, base, where); break;
      case RecordType.SIGACTIONS: this.sigactions = decodeSigactions(payload, base, where); break;
      case RecordType.THREAD: {
        const t = decodeThread(payload, base, where);
        unique(new Set(this.threads.map((x) => x.tid)), t.tid, "thread");
        this.threads.push(t);
        break;
      }
      case RecordType.AREA: {
        const a = decodeArea(payload, base, where);
        unique(this.areaById, a.id, "area id");
        this.areaById.set(a.id, a);
        this.areas.push(a);
        break;
      }
      case RecordType.MAPPED_FILE: {
        const f = decodeMappedFile(payload, base, where);
        unique(this.fileById, f.id, "mapped file id");
        this.fileById.set(f.id, f);
        this.files.push(f);
        break;
      }
      case RecordType.TIMERS: this.timers = decodeTimers(payload, base, where); break;
      case RecordType.PROCESS_STATE: this.processState = decodeProcessState(payload, base, where); break;
      case RecordType.SECCOMP: this.seccompFilters = decodeSeccomp(payload, base, where); break;
      case RecordType.THREAD_STATE: {
        const t = decodeThreadState(payload, base, where);
        unique(new Set(this.threadStates.map((x) => x.tid)), t.tid, "thread state of tid");
        this.threadStates.push(t);
        break;
      }
      case RecordType.FD: {
        const f = decodeFd(payload, base, where);
        unique(new Set(this.fds.map((x) => x.fd)), f.fd, "fd");
        this.fds.push(f);
        break;
      }
      case RecordType.FILE_CONTENT: {
        const c = decodeFileContent(payload, base, where);
        unique(new Set(this.fileContents.map((x) => x.id)), c.id, "file content id");
        this.fileContents.push(c);
        break;
      }
      case RecordType.FD_FILE: {
        const f = decodeFdFile(payload, base, where);
        unique(this.fdFiles, f.fd, "FD_FILE for fd");
        this.fdFiles.set(f.fd, f);
        break;
      }
      case RecordType.PARENT: this.parentRecord = decodeParent(payload, base, where); break;
      case RecordType.PAGE_DIGESTS: this.pageDigests.push(decodePageDigests(payload, base, where, e.sequence)); break;
      case RecordType.TTY: {
        const t = decodeTty(payload, base, where);
        unique(this.ttys, t.fd, "TTY for fd");
        this.ttys.set(t.fd, t);
        break;
      }
      default: {
        const codec = FD_STATE_CODECS.get(e.type);
        if (codec) this.fdState.push(codec.decode(payload, base, { ...where, recordType: codec.name }, e.key32, e.key64));
      }
    }
  }

  /** Chunks must belong to a known area, lie inside it and not overlap; areas must not overlap. */
  private crossCheck(): void {
    this.crossCheckFileRuns();
    for (let i = 1; i < this.areas.length; i++) {
      const prev = this.areas[i - 1], a = this.areas[i];
      if (a.start < prev.end) this.fail("BAD_FIELD", `area ${a.id} overlaps area ${prev.id}`, { recordType: "AREA" });
    }
    const ps = BigInt(this.pageSize);
    for (const [areaId, list] of this.chunksByArea) {
      const area = this.areaById.get(areaId);
      const bad: ChunkRef[] = [];
      let prevEnd = 0n;
      for (const c of list) {
        const where = { offset: c.offset, recordType: "PAGES", sequence: c.sequence };
        const end = c.firstPage + BigInt(c.spanPages) * ps;
        let problem: string | undefined;
        if (!area) problem = `chunk refers to unknown area ${areaId}`;
        else if (c.spanPages < 1 || c.spanPages > 1 << 20 || c.storedPages < 1 || c.storedPages > c.spanPages) problem = `span of ${c.spanPages} pages with ${c.storedPages} stored is invalid`;
        else if (c.storedPages * this.pageSize > MAX_CHUNK_RAW) problem = `chunk of ${c.storedPages} pages exceeds the 64 MiB limit`;
        else if (c.firstPage % ps !== 0n || c.firstPage < area.start || end > area.end) problem = `span 0x${c.firstPage.toString(16)}+${c.spanPages} pages lies outside area ${areaId}`;
        else if (c.firstPage < prevEnd) problem = `span 0x${c.firstPage.toString(16)} overlaps the previous chunk of area ${areaId}`;
        else if (c.payloadLength > MAX_PAGES_PAYLOAD) problem = `PAGES payload of ${c.payloadLength} bytes is larger than any valid chunk`;
        if (problem) {
          this.fail(problem.includes("64 MiB") ? "CHUNK_TOO_LARGE" : "BAD_FIELD", problem, where);
          bad.push(c);
        } else prevEnd = end;
      }
      if (bad.length) this.chunksByArea.set(areaId, list.filter((c) => !bad.includes(c)));
      if (!area) this.chunksByArea.delete(areaId);
    }
  }

  /** FILE_DATA runs must belong to a FILE_CONTENT, lie inside its size and not overlap. */
  private crossCheckFileRuns(): void {
    const contents = new Map(this.fileContents.map((c) => [c.id, c]));
    for (const [id, list] of this.fileRunsByContent) {
      list.sort((a, b) => (a.fileOffset < b.fileOffset ? -1 : a.fileOffset > b.fileOffset ? 1 : 0));
      const content = contents.get(id);
      const bad: FileDataRef[] = [];
      let prevEnd = 0n;
      for (const r of list) {
        const where = { offset: r.offset, recordType: "FILE_DATA", sequence: r.sequence };
        const end = r.fileOffset + BigInt(r.length);
        let problem: string | undefined;
        if (!content) problem = `run refers to unknown file content ${id}`;
        else if (r.length < 1 || r.length > MAX_FILE_RUN_BYTES) problem = `run of ${r.length} bytes is not 1..${MAX_FILE_RUN_BYTES}`;
        else if (end > content.size) problem = `run ${r.fileOffset}+${r.length} lies past the file's size ${content.size}`;
        else if (r.fileOffset < prevEnd) problem = `run at ${r.fileOffset} overlaps the previous run of file content ${id}`;
        else if (r.payloadLength > FILES_FIXED_SIZE.FILE_DATA + MAX_FILE_RUN_BYTES + (MAX_FILE_RUN_BYTES >> 4) + 1024) problem = `FILE_DATA payload of ${r.payloadLength} bytes is larger than any valid run`;
        if (problem) {
          this.fail("BAD_FIELD", problem, where);
          bad.push(r);
        } else prevEnd = end;
      }
      if (!content) this.fileRunsByContent.delete(id);
      else if (bad.length) this.fileRunsByContent.set(id, list.filter((r) => !bad.includes(r)));
    }
  }

  /** The content whose (dev, inode) a mapped file or fd names, if the image holds it. */
  fileContentFor(devMajor: number, devMinor: number, inode: bigint): FileContentRecord | undefined {
    return this.fileContents.find((c) => c.devMajor === devMajor && c.devMinor === devMinor && c.inode === inode);
  }

  /** Read, check (header vs index, payload CRC, raw CRC) and decompress one FILE_DATA run. */
  async readFileData(ref: FileDataRef): Promise<{ header: FileDataHeader; data: Uint8Array }> {
    const where = { file: this.path, offset: ref.offset, recordType: "FILE_DATA", sequence: ref.sequence };
    if (ref.payloadLength > MAX_METADATA_PAYLOAD) throw new ImageError("RECORD_TOO_LARGE", `FILE_DATA payload of ${ref.payloadLength} bytes`, where);
    const entry: IndexEntry = {
      sequence: ref.sequence, type: RecordType.FILE_DATA, flags: 0, key32: ref.contentId, offset: ref.offset,
      payloadLength: ref.payloadLength, key64: ref.fileOffset, auxA: ref.length, auxB: 0,
    };
    const bytes = await this.readAt(ref.offset, RECORD_HEADER_SIZE + ref.payloadLength);
    entry.flags = view(bytes).getUint16(REC.flags, true);
    const payload = this.checkRecord(entry, bytes);
    const header = decodeFileDataHeader(payload, ref.offset + RECORD_HEADER_SIZE, where);
    if (header.contentId !== ref.contentId || header.offset !== ref.fileOffset || header.length !== ref.length) {
      throw new ImageError("BAD_INDEX", "FILE_DATA header disagrees with its index entry", where);
    }
    let data: Uint8Array;
    try {
      data = decompressChunk(header.codec, payload.subarray(header.dataOffset), header.length);
    } catch (err) {
      if (err instanceof CodecError) throw new ImageError("BAD_CODEC", err.detail, { ...where, offset: ref.offset + RECORD_HEADER_SIZE + header.dataOffset + (err.inputOffset ?? 0) });
      throw err;
    }
    if (crc32(data) !== header.rawCrc) throw new ImageError("BAD_CHECKSUM", "file data does not match raw_crc", where);
    return { header, data };
  }

  /**
   * `length` bytes of a stored file's content from `offset` (holes and bytes past the runs read
   * as zero; past the file's size the result is shorter).
   */
  async readFileContent(contentId: number, offset = 0n, length?: number): Promise<Uint8Array> {
    const content = this.fileContents.find((c) => c.id === contentId);
    if (!content) throw new ImageError("UNAVAILABLE", `the image holds no file content ${contentId}`, { file: this.path });
    const end0 = length === undefined ? content.size : offset + BigInt(length);
    const end = end0 > content.size ? content.size : end0;
    const n = end > offset ? Number(end - offset) : 0;
    if (n > MAX_METADATA_PAYLOAD * 16) throw new ImageError("RECORD_TOO_LARGE", `reading ${n} bytes of file content ${contentId} at once`, { file: this.path });
    const out = new Uint8Array(n);
    for (const ref of this.fileRunsByContent.get(contentId) ?? []) {
      const rs = ref.fileOffset, re = rs + BigInt(ref.length);
      if (re <= offset || rs >= end) continue;
      const { data } = await this.readFileData(ref);
      const from = rs > offset ? rs : offset, to = re < end ? re : end;
      out.set(data.subarray(Number(from - rs), Number(to - rs)), Number(from - offset));
    }
    return out;
  }

  // -------------------------------------------------------------------------------------
  // Page data

  /** Read, check (payload CRC, header vs index, raw CRC) and decompress one chunk. */
  async readChunk(ref: ChunkRef): Promise<DecodedChunk> {
    const cached = this.chunkCache.get(ref.offset);
    if (cached) return cached;
    const decoded = ref.resolved ? await ref.resolved.read() : this.decodeChunk(ref, await this.readChunkBytes(ref));
    if (this.chunkCache.size >= CHUNK_CACHE_SIZE) this.chunkCache.delete(this.chunkCache.keys().next().value as number);
    this.chunkCache.set(ref.offset, decoded);
    return decoded;
  }

  /** The raw bytes of a PAGES record (header + payload), bounds-checked. */
  async readChunkBytes(ref: ChunkRef): Promise<Uint8Array> {
    if (ref.payloadLength > MAX_PAGES_PAYLOAD) {
      throw new ImageError("CHUNK_TOO_LARGE", `PAGES payload of ${ref.payloadLength} bytes`, { file: this.path, offset: ref.offset, recordType: "PAGES", sequence: ref.sequence });
    }
    return this.readAt(ref.offset, RECORD_HEADER_SIZE + ref.payloadLength);
  }

  /** Check and decompress a chunk read by readChunkBytes (no caching; verify streams through this). */
  decodeChunk(ref: ChunkRef, bytes: Uint8Array): DecodedChunk {
    const where = { file: this.path, offset: ref.offset, recordType: "PAGES", sequence: ref.sequence };
    const entry: IndexEntry = {
      sequence: ref.sequence, type: RecordType.PAGES, flags: view(bytes).getUint16(REC.flags, true), key32: ref.areaId,
      offset: ref.offset, payloadLength: ref.payloadLength, key64: ref.firstPage, auxA: ref.spanPages, auxB: ref.storedPages,
    };
    const payload = this.checkRecordHeader(entry, bytes);
    // One pass over DATA: the payload CRC is combined from the CRC of the bytes before DATA and
    // the CRC of DATA, which for uncompressed chunks is also the raw_crc to check. The split
    // point is read before it is trusted, which is fine: the combination is exact for any split.
    const split = payload.length >= PAGES.dataOffset + 4 ? Math.min(view(payload).getUint32(PAGES.dataOffset, true), payload.length) : payload.length;
    const dataCrc = crc32(payload.subarray(split));
    if (crc32Combine(crc32(payload.subarray(0, split)), dataCrc, payload.length - split) !== this.payloadCrcOf(bytes)) {
      throw this.payloadCrcError(entry);
    }
    const header = decodePagesHeader(payload, ref.offset + RECORD_HEADER_SIZE, where);
    if (header.areaId !== ref.areaId || header.firstPage !== ref.firstPage || header.spanPages !== ref.spanPages || header.storedPages !== ref.storedPages) {
      throw new ImageError("BAD_INDEX", "chunk header disagrees with its index entry", where);
    }
    const rawSize = header.storedPages * this.pageSize;
    if (rawSize > MAX_CHUNK_RAW) throw new ImageError("CHUNK_TOO_LARGE", `chunk raw size ${rawSize} exceeds 64 MiB`, where);
    let raw: Uint8Array;
    try {
      raw = decompressChunk(header.codec, payload.subarray(header.dataOffset, header.dataOffset + header.storedSize), rawSize);
    } catch (err) {
      if (err instanceof CodecError) {
        throw new ImageError("BAD_CODEC", err.detail, { ...where, offset: ref.offset + RECORD_HEADER_SIZE + header.dataOffset + (err.inputOffset ?? 0) });
      }
      throw err;
    }
    const rawCrc = header.codec === CODEC.NONE ? dataCrc : crc32(raw);
    if (rawCrc !== header.rawCrc) throw new ImageError("BAD_CHECKSUM", "decompressed pages do not match raw_crc", where);
    return { header, raw };
  }

  /** The stored pages of an area in address order: `{ address, data }` (data is a view; copy to keep). */
  async *pages(area: AreaRecord): AsyncGenerator<{ address: bigint; data: Uint8Array }> {
    const ps = this.pageSize;
    for (const ref of this.chunksByArea.get(area.id) ?? []) {
      const { header, raw } = await this.readChunk(ref);
      let k = 0;
      for (let i = 0; i < header.spanPages; i++) {
        if (header.bitmap[i >> 3] & (1 << (i & 7))) {
          yield { address: header.firstPage + BigInt(i * ps), data: raw.subarray(k * ps, (k + 1) * ps) };
          k++;
        }
      }
    }
  }

  /** Where the content of the page at `pageAddr` comes from (undefined: not mapped). */
  async pageSource(pageAddr: bigint): Promise<PageSource | undefined> {
    const area = this.areaAt(pageAddr);
    if (!area) return undefined;
    return (await this.storedPage(area, pageAddr)) ? "image" : this.unstoredSource(area);
  }

  /**
   * Read `length` bytes of the process's memory at `addr`: stored pages from the image, the
   * rest as the format defines them (zero for anonymous memory, the mapped file's bytes for
   * file-backed areas when the file on disk still has the recorded identity).
   */
  async readMemory(addr: bigint, length: number, opts: ReadMemoryOptions = {}): Promise<Uint8Array> {
    if (!Number.isSafeInteger(length) || length < 0 || length > 1 << 30) {
      throw new ImageError("BAD_FIELD", `read length ${length} out of range`, { file: this.path });
    }
    const out = new Uint8Array(length);
    const ps = BigInt(this.pageSize);
    let done = 0;
    while (done < length) {
      const at = addr + BigInt(done);
      const area = this.areaAt(at);
      if (!area) throw new ImageError("NOT_MAPPED", `address 0x${at.toString(16)} is not mapped in the image`, { file: this.path });
      const page = at - (at % ps);
      const inPage = Number(at - page);
      const n = Math.min(length - done, this.pageSize - inPage);
      const stored = await this.storedPage(area, page);
      if (stored) {
        out.set(stored.subarray(inPage, inPage + n), done);
      } else {
        const source = this.unstoredSource(area);
        if (source === "file") {
          const ok = await this.readFromMappedFile(area, at, out.subarray(done, done + n));
          if (!ok && opts.unavailable !== "zero") {
            throw new ImageError("UNAVAILABLE", `page 0x${page.toString(16)} is not stored and ${area.path} is missing or changed on disk`, { file: this.path });
          }
        } else if (source === "unavailable" && opts.unavailable !== "zero") {
          throw new ImageError("UNAVAILABLE", `page 0x${page.toString(16)} of ${area.path || area.kind} is not stored in the image`, { file: this.path });
        }
        // "zero": out is already zero-filled.
      }
      done += n;
    }
    return out;
  }

  private unstoredSource(area: AreaRecord): PageSource {
    switch (area.kind) {
      case "file": return "file";
      case "vdso": case "vvar": case "vsyscall": case "special": case "unknown": return "unavailable";
      default: return "zero";
    }
  }

  /** The stored bytes of one page (a view into the decoded chunk), or undefined if not stored. */
  private async storedPage(area: AreaRecord, pageAddr: bigint): Promise<Uint8Array | undefined> {
    const list = this.chunksByArea.get(area.id);
    if (!list) return undefined;
    const ps = BigInt(this.pageSize);
    let lo = 0, hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = list[mid];
      if (pageAddr < c.firstPage) hi = mid - 1;
      else if (pageAddr >= c.firstPage + BigInt(c.spanPages) * ps) lo = mid + 1;
      else {
        const { header, raw } = await this.readChunk(c);
        const index = bitmapIndex(header.bitmap, Number((pageAddr - c.firstPage) / ps));
        return index === undefined ? undefined : raw.subarray(index * this.pageSize, (index + 1) * this.pageSize);
      }
    }
    return undefined;
  }

  /** Copy bytes of a file-backed area from the mapped file on disk, if its identity still matches. */
  /** protected: a foreign reader may supply mapped files from elsewhere (a container's root fs diff). */
  protected async readFromMappedFile(area: AreaRecord, at: bigint, dst: Uint8Array): Promise<boolean> {
    const file = this.mappedFile(area.fileId);
    if (!file) return false;
    let cached = this.fileCache.get(file.id);
    if (cached === undefined) {
      cached = null;
      try {
        const path = (this.opts.fileRoot ?? "") + file.path;
        const st = await stat(path, { bigint: true });
        if (st.size === file.size && st.ino === file.inode && st.mtimeNs === file.mtimeNs) {
          cached = { handle: await open(path, "r"), size: Number(st.size) };
        }
      } catch {
        cached = null;
      }
      this.fileCache.set(file.id, cached);
    }
    if (!cached) return false;
    const fileOffset = Number(area.fileOffset + (at - area.start));
    if (fileOffset < cached.size) await cached.handle.read(dst, 0, Math.min(dst.length, cached.size - fileOffset), fileOffset);
    return true;
  }

  // -------------------------------------------------------------------------------------
  // Low-level helpers

  /** Read exactly `length` bytes at `offset`, which must lie inside the file. */
  async readAt(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new ImageError("TRUNCATED", `read of ${length} bytes runs past the end of the ${this.size}-byte file`, { file: this.path, offset });
    }
    const buf = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.handle.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) throw new ImageError("TRUNCATED", "file shrank while reading", { file: this.path, offset: offset + got });
      got += bytesRead;
    }
    return buf;
  }

  private parseRecordHeader(h: Uint8Array, at: number) {
    const v = view(h);
    if (!startsWith(h, RECORD_MAGIC)) throw new ImageError("BAD_RECORD", "no record header here (bad record magic)", { offset: at });
    const type = v.getUint16(REC.type, true);
    const sequence = v.getUint32(REC.sequence, true);
    if (crc32(h.subarray(0, REC.crc)) !== v.getUint32(REC.crc, true)) {
      throw new ImageError("BAD_RECORD", "record header checksum mismatch", { offset: at, recordType: recordTypeName(type) });
    }
    const payloadLength = safeNumber(v.getBigUint64(REC.payloadLength, true), "payload_length", at + REC.payloadLength, "BAD_RECORD");
    return { type, flags: v.getUint16(REC.flags, true), payloadLength, payloadCrc: v.getUint32(REC.payloadCrc, true), sequence };
  }

  /** Strict: throw. Tolerant: remember and carry on. */
  private fail(code: ImageErrorCode, detail: string, where: { offset?: number; recordType?: string; sequence?: number }): void {
    const err = new ImageError(code, detail, { file: this.path, ...where });
    if (!this.tolerant) throw err;
    this.note(err);
  }

  private note(err: ImageError): void {
    this.problems.push({ code: err.code, detail: err.detail, offset: err.offset, recordType: err.recordType, sequence: err.sequence });
  }
}

/** Index of stored page `bit` among the set bits before it, or undefined if not stored. */
export function bitmapIndex(bitmap: Uint8Array, bit: number): number | undefined {
  if (!(bitmap[bit >> 3] & (1 << (bit & 7)))) return undefined;
  let n = 0;
  for (let i = 0; i < bit >> 3; i++) n += popcount8(bitmap[i]);
  return n + popcount8(bitmap[bit >> 3] & ((1 << (bit & 7)) - 1));
}

function coalesce(entries: IndexEntry[]): IndexEntry[][] {
  const groups: IndexEntry[][] = [];
  let group: IndexEntry[] = [];
  let groupStart = 0, groupEnd = 0;
  for (const e of entries) {
    const end = e.offset + RECORD_HEADER_SIZE + e.payloadLength;
    if (group.length && (e.offset - groupEnd > COALESCE_GAP || end - groupStart > MAX_COALESCED)) {
      groups.push(group);
      group = [];
    }
    if (!group.length) groupStart = e.offset;
    group.push(e);
    groupEnd = end;
  }
  if (group.length) groups.push(group);
  return groups;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function startsWith(b: Uint8Array, magic: Uint8Array): boolean {
  for (let i = 0; i < magic.length; i++) if (b[i] !== magic[i]) return false;
  return true;
}

function safeNumber(v: bigint, what: string, offset: number, code: ImageErrorCode): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ImageError(code, `${what} ${v} is beyond any file size`, { offset });
  return Number(v);
}
