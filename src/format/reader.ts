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
  HDR, HEADER_SIZE, IDX, IMAGE_MAGIC, INDEX_ENTRY_SIZE, INDEX_ENTRY_SIZE_TREE, INDEX_FIXED_SIZE, MAX_CHUNK_RAW,
  MAX_METADATA_PAYLOAD, PAGES, REC, RECORD_FLAG_MUST_UNDERSTAND, RECORD_HEADER_SIZE, RECORD_MAGIC,
  RECORD_TYPE_NAMES, RecordType, TRAILER_MAGIC, TRAILER_SIZE, TRL, VERSION_MAJOR, FIXED_SIZE,
  AREA_DELETED, AREA_SHARED, AREA_UNREADABLE, EM_X86_64, MAX_HEADER_SIZE, MFILE_DELETED,
} from "./raw.js";
import { decodeUnreadablePages, type AddressRange } from "./records-unreadable.js";
import { openVerifiedFile, type IdentityEvidence } from "./file-identity.js";
import {
  decodeArea, decodeAuxv, decodeFd, decodeMappedFile, decodePagesHeader, decodeProcess,
  decodeRlimits, decodeSigactions, decodeStringList, decodeThread, popcount8, spanAt,
  type AreaRecord, type AuxvEntry, type FdRecord, type MappedFileRecord, type PagesChunkHeader,
  type ProcessRecord, type RlimitEntry, type SigactionsRecord, type ThreadRecord,
} from "./records.js";
import {
  decodeProcessState, decodeSeccomp, decodeSigqueue, decodeThreadState, decodeTimers,
  type PendingSignal, type ProcessStateRecord, type SeccompFilter, type ThreadStateRecord, type TimersRecord,
} from "./records-state.js";
import { FILE_DATA, FILES_FIXED_SIZE } from "./raw-files.js";
import { attachChain, digestIn, type ChainContext } from "./chain.js";
import { decodePageDigests, decodeParent, type PageDigestsRecord, type ParentRecord } from "./records-chain.js";
import { decodeSysvMsg, decodeSysvSem, decodeSysvShm, type SysvObjects } from "./records-sysv.js";
import { decodeSharedPages, decodeTree, sharedRunAt, type SharedPagesRecord, type TreeProcess, type TreeRecord } from "./records-tree.js";
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
  /** format 1.2: pid of the process the record belongs to in a tree image, else 0 */
  ownerPid: number;
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
  /** format 1.2: the owning process in a tree image (0 or absent otherwise) */
  ownerPid?: number;
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
  ownerPid?: number;
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
  /** the reader rule broken (docs/FORMAT.md "Reader obligations"), when one applies */
  rule?: string;
}

/** Where file-backed bytes came from, or why they could not be had. */
export type MappedFileBytes = { path: string; evidence: IdentityEvidence | "archive" } | { why: string };

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

/**
 * Where one page of memory comes from (docs/FORMAT.md 4.7): stored in the image, zero by
 * definition, the mapped file on disk, a file whose content the image holds (FILE_CONTENT), or
 * unknown ("unavailable": the image does not have it and nothing may stand in for it).
 */
export type PageSource = "image" | "zero" | "file" | "file-content" | "unavailable";

/** A run of addresses with one source (`path` and `evidence` for bytes that came from disk). */
export interface MemorySpan {
  start: bigint;
  end: bigint;
  source: PageSource;
  /** "file": the path read; "unavailable": why the content is unknown */
  path?: string;
  why?: string;
  evidence?: IdentityEvidence;
}

/** Bytes of memory with where each run of them came from; unknown runs hold `fill`. */
export interface MemoryRead {
  bytes: Uint8Array;
  spans: MemorySpan[];
  /** the runs whose content is unknown (also in `spans`) */
  unknown: MemorySpan[];
}

const CHUNK_CACHE_SIZE = 8;
/** Coalesce metadata reads whose gap is below this, up to MAX_COALESCED per read. */
const COALESCE_GAP = 64 * 1024;
const MAX_COALESCED = 8 * 1024 * 1024;
/** A PAGES payload holds at most the raw size plus header, bitmap, alignment padding and LZ4's worst-case growth. */
const MAX_PAGES_PAYLOAD = MAX_CHUNK_RAW + MAX_CHUNK_RAW / 255 + 16 + FIXED_SIZE.PAGES + (1 << 17) + 65536;

const MAX_FILE_RUN_BYTES = 16 * 1024 * 1024;

/** Types whose index keys are all 0 (R8). */
const INDEX_UNKEYED = new Set<number>([
  RecordType.PROCESS, RecordType.ARGV, RecordType.ENVIRON, RecordType.AUXV, RecordType.RLIMITS, RecordType.SIGACTIONS,
  RecordType.TIMERS, RecordType.PROCESS_STATE, RecordType.SECCOMP, RecordType.PARENT, RecordType.SIGQUEUE,
]);

const SINGLETONS = new Set<number>([
  RecordType.PROCESS, RecordType.ARGV, RecordType.ENVIRON, RecordType.AUXV, RecordType.RLIMITS, RecordType.SIGACTIONS,
  RecordType.TIMERS, RecordType.PROCESS_STATE, RecordType.SECCOMP, RecordType.SHARED_PAGES, RecordType.SIGQUEUE,
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
  /** format 1.2: pending signals with their siginfo, process-wide queue first (SIGQUEUE) */
  pendingSignals: PendingSignal[] = [];
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
  /** format 1.2: the TREE record of a process-tree image (undefined: a single process) */
  tree: TreeRecord | undefined;
  /**
   * Every live process of the image, root first, parents before children: each a view with its
   * own process, threads, areas, fds … (a single-process image: just this one). Zombies are in
   * `tree.processes` only (they have no records).
   */
  processes: CheckpointImage[] = [this];
  /** the image this process view belongs to (itself for the root) */
  root: CheckpointImage = this;
  /** format 1.2: SysV IPC objects the processes use (in a tree: the root's records) */
  sysv: SysvObjects = { shm: [], sem: [], msg: [] };
  /** format 1.2: pages still shared copy-on-write with the parent, stored in the parent */
  sharedPages: SharedPagesRecord | undefined;
  /** format 1.2: per area id, the page ranges the writer could not read (UNREADABLE_PAGES) */
  readonly unreadablePages = new Map<number, AddressRange[]>();
  /** the index entry of each AREA, by area id (for error locations) */
  private readonly areaEntry = new Map<number, IndexEntry>();
  private readonly unreadableEntry = new Map<number, IndexEntry>();

  private readonly tolerant: boolean;
  private readonly chunkCache = new Map<number, DecodedChunk>();
  private readonly fileCache = new Map<number, { handle: FileHandle; size: number; path: string; evidence: IdentityEvidence } | { why: string }>();
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

  /** This file's page chunks of every process (a tree's descendants too; not a parent image's), in file order. */
  get allChunks(): ChunkRef[] {
    if (this.root.processes.length <= 1) return this.ownChunks;
    return this.root.processes.flatMap((p) => p.ownChunks).sort((a, b) => a.offset - b.offset);
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
    if (this.root !== this) return this.root.close();   // a process view closes its image
    await this.parent?.close();
    for (const p of this.processes) if (p !== this) await p.closeCaches();
    await this.closeCaches();
    if (this.root === this) await this.handle.close();
  }

  private async closeCaches(): Promise<void> {
    this.chunkCache.clear();
    for (const f of this.fileCache.values()) if ("handle" in f) await f.handle.close().catch(() => {});
    this.fileCache.clear();
  }

  /** The view of process `pid` (a tree image's root or one of its descendants). */
  processImage(pid: number): CheckpointImage {
    const p = this.root.processes.find((x) => x.process?.pid === pid);
    if (p) return p;
    const zombie = this.root.tree?.processes.find((x) => x.pid === pid && x.zombie);
    throw new ImageError("NO_SUCH_PROCESS", zombie ? `process ${pid} is a zombie: it has no memory, threads or fds` :
      `the image holds no process ${pid} (it holds ${this.root.processes.map((x) => x.process?.pid).join(", ")})`, { file: this.path });
  }

  /** The TREE entry of this process (a synthetic one for a single-process image). */
  get treeEntry(): TreeProcess {
    const p = this.process;
    return this.root.tree?.processes.find((x) => x.pid === p.pid) ??
      { pid: p.pid, ppid: p.ppid, pgid: p.pgid, sid: p.sid, zombie: false, exitStatus: 0, threadCount: this.threads.length };
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
    const treeEntries = entries.filter((e) => e.type === RecordType.TREE);
    if (!treeEntries.length) {
      const owned = entries.find((e) => e.ownerPid !== 0);
      if (owned) this.fail("BAD_FIELD", `record owned by process ${owned.ownerPid} in an image without a TREE record`, { offset: owned.offset, recordType: recordTypeName(owned.type), sequence: owned.sequence });
      await this.loadRecords(entries);
      this.crossCheck();
      return;
    }
    await this.loadTree(entries, treeEntries);
  }

  /**
   * A process-tree image (format 1.2): the TREE record, then each live process's records as
   * its own view (this one is the root). Every record but TREE belongs to a listed live process.
   */
  private async loadTree(entries: IndexEntry[], treeEntries: IndexEntry[]): Promise<void> {
    const te = treeEntries[0];
    const where = { offset: te.offset, recordType: "TREE", sequence: te.sequence };
    if (treeEntries.length > 1) throw new ImageError("DUPLICATE_RECORD", "second TREE record", { ...where, offset: treeEntries[1].offset, sequence: treeEntries[1].sequence });
    if (te.ownerPid !== 0) throw new ImageError("BAD_FIELD", `TREE record owned by process ${te.ownerPid}`, where);
    if (te.payloadLength > MAX_METADATA_PAYLOAD) throw new ImageError("RECORD_TOO_LARGE", `TREE payload of ${te.payloadLength} bytes`, where);
    let tree: TreeRecord;
    try {
      const payload = this.checkRecord(te, await this.readAt(te.offset, RECORD_HEADER_SIZE + te.payloadLength));
      tree = decodeTree(payload, te.offset + RECORD_HEADER_SIZE, where);
    } catch (err) {
      if (!this.tolerant || !(err instanceof ImageError)) throw err;
      // Forensics on a damaged tree: show the process of the first owned record.
      this.note(err);
      const owner = entries.find((e) => e.ownerPid !== 0)?.ownerPid ?? 0;
      await this.loadRecords(entries.filter((e) => e !== te && e.ownerPid === owner));
      this.crossCheck();
      return;
    }
    const live = new Map<number, IndexEntry[]>();
    for (const p of tree.processes) if (!p.zombie) live.set(p.pid, []);
    for (const e of entries) {
      if (e === te) continue;
      const list = live.get(e.ownerPid);
      if (!list) {
        this.fail("BAD_FIELD", e.ownerPid === 0 ? "record of no process in a tree image" :
          `record owned by process ${e.ownerPid}, which the TREE does not list as a live process`,
          { offset: e.offset, recordType: recordTypeName(e.type), sequence: e.sequence });
        continue;
      }
      list.push(e);
    }
    this.tree = tree;
    this.processes = [];
    for (const p of tree.processes) {
      if (p.zombie) continue;
      const view = p.pid === tree.rootPid ? this : new CheckpointImage(this.path, this.handle, this.opts);
      if (view !== this) {
        view.size = this.size;
        view.header = this.header;
        view.entries = live.get(p.pid)!;
        view.recovered = this.recovered;
        view.tree = tree;
        view.root = this;
      }
      await view.loadRecords(live.get(p.pid)!);
      view.crossCheck();
      if (view !== this) this.problems.push(...view.problems);
      if (view.process && view.process.pid !== p.pid) {
        this.fail("BAD_FIELD", `PROCESS record of pid ${view.process.pid} among the records of process ${p.pid}`, { recordType: "PROCESS" });
      }
      if (view.sharedPages && (view.sharedPages.parentPid !== p.ppid || p.pid === tree.rootPid)) {
        this.fail("BAD_FIELD", `SHARED_PAGES of process ${p.pid} names parent ${view.sharedPages.parentPid}, the TREE ${p.ppid}`, { recordType: "SHARED_PAGES" });
      }
      if (view.process && view.threads.length !== p.threadCount) {
        this.fail("BAD_FIELD", `TREE says process ${p.pid} has ${p.threadCount} threads, the image holds ${view.threads.length}`, where);
      }
      if (view.process) this.processes.push(view);
    }
  }

  /** HEADER, rules H1-H7 in that order (the version before the CRC: a later major may move it). */
  private async readHeader(): Promise<ImageHeader> {
    const h = await this.readAt(0, Math.min(HEADER_SIZE, this.size));
    if (h.length < IMAGE_MAGIC.length || !startsWith(h, IMAGE_MAGIC)) {
      throw new ImageError("NOT_AN_IMAGE", h.length ? "not a ckimg image (bad magic)" : "empty file, not a ckimg image", { offset: 0, rule: "H1" });
    }
    if (h.length < HEADER_SIZE) throw new ImageError("TRUNCATED", "image header is truncated", { offset: h.length, rule: "H2" });
    const v = view(h);
    const major = v.getUint16(HDR.versionMajor, true);
    const minor = v.getUint16(HDR.versionMinor, true);
    if (major !== VERSION_MAJOR) {
      throw new ImageError("UNSUPPORTED_VERSION", `image format version ${major}.${minor} (this reader knows ${VERSION_MAJOR}.x)`, { offset: HDR.versionMajor, rule: "H3" });
    }
    if (crc32(h.subarray(0, HDR.crc)) !== v.getUint32(HDR.crc, true)) {
      this.fail("BAD_HEADER", "header checksum mismatch", { offset: HDR.crc, rule: "H4" });
    }
    let headerSize = v.getUint32(HDR.headerSize, true);
    // Whether the file has room after it for an INDEX and the trailer is T1's question.
    if (headerSize < HEADER_SIZE || headerSize > MAX_HEADER_SIZE) {
      this.fail("BAD_HEADER", `header_size ${headerSize} is outside [64, 65536]`, { offset: HDR.headerSize, rule: "H5" });
      headerSize = HEADER_SIZE;
    }
    let pageSize = v.getUint32(HDR.pageSize, true);
    if (pageSize < 4096 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
      this.fail("BAD_HEADER", `page_size ${pageSize} is not a power of two in [4096, 65536]`, { offset: HDR.pageSize, rule: "H6" });
      pageSize = 4096;
    }
    const machine = v.getUint16(HDR.machine, true);
    if (machine !== EM_X86_64) {
      this.fail("UNSUPPORTED_MACHINE", `machine ${machine} is not x86-64 (62)`, { offset: HDR.machine, rule: "H7" });
    }
    return {
      versionMajor: major, versionMinor: minor, headerSize, flags: v.getUint32(HDR.flags, true), pageSize,
      machine, createdNs: v.getBigUint64(HDR.createdNs, true),
      imageId: h.slice(HDR.imageId, HDR.imageId + 16),
    };
  }

  /** TRAILER → INDEX record → entries, each checked against the file (section 3). */
  private async readIndex(): Promise<IndexEntry[]> {
    const minSize = this.header.headerSize + RECORD_HEADER_SIZE + INDEX_FIXED_SIZE + TRAILER_SIZE;
    if (this.size < minSize) throw new ImageError("TRUNCATED", `file of ${this.size} bytes is too short to hold an index and trailer`, { offset: this.size, rule: "T1" });
    const trailerAt = this.size - TRAILER_SIZE;
    const t = await this.readAt(trailerAt, TRAILER_SIZE);
    const tv = view(t);
    if (!startsWith(t, TRAILER_MAGIC)) throw new ImageError("BAD_TRAILER", "no trailer (file truncated or not finished)", { offset: trailerAt, rule: "T2" });
    if (crc32(t.subarray(0, TRL.crc)) !== tv.getUint32(TRL.crc, true)) throw new ImageError("BAD_TRAILER", "trailer checksum mismatch", { offset: trailerAt + TRL.crc, rule: "T2" });
    const indexAt = safeNumber(tv.getBigUint64(TRL.indexOffset, true), "index_offset", trailerAt + TRL.indexOffset, "BAD_TRAILER", "T3");
    const recordCount = tv.getBigUint64(TRL.recordCount, true);
    if (indexAt < this.header.headerSize || indexAt + RECORD_HEADER_SIZE + INDEX_FIXED_SIZE > trailerAt) {
      throw new ImageError("BAD_TRAILER", `index_offset ${indexAt} is outside the file`, { offset: trailerAt + TRL.indexOffset, rule: "T3" });
    }
    const where = { recordType: "INDEX" };
    let rh;
    try {
      rh = this.parseRecordHeader(await this.readAt(indexAt, RECORD_HEADER_SIZE), indexAt);
    } catch (err) {
      if (err instanceof ImageError && err.code === "BAD_RECORD") throw new ImageError("BAD_INDEX", `INDEX ${err.detail}`, { offset: indexAt, recordType: "INDEX", rule: "I1" });
      throw err;
    }
    if (rh.type !== RecordType.INDEX) throw new ImageError("BAD_INDEX", `record at index_offset has type ${recordTypeName(rh.type)}, not INDEX`, { offset: indexAt + REC.type, rule: "I1" });
    const expectedLength = trailerAt - indexAt - RECORD_HEADER_SIZE;
    if (rh.payloadLength !== expectedLength) {
      throw new ImageError("BAD_INDEX", `INDEX payload_length ${rh.payloadLength} does not reach the trailer (expected ${expectedLength})`, { ...where, offset: indexAt + REC.payloadLength, rule: "I2" });
    }
    const payloadAt = indexAt + RECORD_HEADER_SIZE;
    const payload = await this.readAt(payloadAt, expectedLength);
    if (crc32(payload) !== rh.payloadCrc) throw new ImageError("BAD_CHECKSUM", "INDEX payload checksum mismatch", { ...where, offset: payloadAt, rule: "I3" });
    const pv = view(payload);
    const fixedSize = pv.getUint32(0, true);
    const entrySize = pv.getUint32(4, true);
    const count = pv.getBigUint64(8, true);
    if (fixedSize < INDEX_FIXED_SIZE || entrySize < INDEX_ENTRY_SIZE || fixedSize > payload.length) {
      throw new ImageError("BAD_INDEX", `INDEX fixed_size ${fixedSize} / entry_size ${entrySize} out of range`, { ...where, offset: payloadAt, rule: "I4" });
    }
    if (BigInt(fixedSize) + count * BigInt(entrySize) !== BigInt(payload.length)) {
      throw new ImageError("BAD_INDEX", `INDEX entry_count ${count} × entry_size ${entrySize} does not fill its payload`, { ...where, offset: payloadAt + 8, rule: "I4" });
    }
    if (count !== recordCount || BigInt(rh.sequence) !== count) {
      throw new ImageError("BAD_INDEX", `INDEX entry_count ${count}, trailer record_count ${recordCount} and INDEX sequence ${rh.sequence} disagree`, { ...where, offset: payloadAt + 8, rule: "I5" });
    }
    const entries: IndexEntry[] = [];
    let previousEnd = this.header.headerSize;
    for (let i = 0; i < Number(count); i++) {
      const o = fixedSize + i * entrySize;
      const entryAt = payloadAt + o;
      const offset = safeNumber(pv.getBigUint64(o + IDX.offset, true), "entry offset", entryAt + IDX.offset, "BAD_INDEX", "I6");
      const payloadLength = safeNumber(pv.getBigUint64(o + IDX.payloadLength, true), "entry payload_length", entryAt + IDX.payloadLength, "BAD_INDEX", "I6");
      if (offset < previousEnd || offset + RECORD_HEADER_SIZE + payloadLength > indexAt) {
        throw new ImageError("BAD_INDEX", `index entry ${i} (offset ${offset}, length ${payloadLength}) overlaps another record or leaves the file`, { ...where, offset: entryAt, rule: "I6" });
      }
      previousEnd = offset + RECORD_HEADER_SIZE + payloadLength;
      entries.push({
        sequence: i, type: pv.getUint16(o + IDX.type, true), flags: pv.getUint16(o + IDX.flags, true),
        key32: pv.getUint32(o + IDX.key32, true), offset, payloadLength, key64: pv.getBigUint64(o + IDX.key64, true),
        auxA: pv.getUint32(o + IDX.auxA, true), auxB: pv.getUint32(o + IDX.auxB, true),
        ownerPid: entrySize >= INDEX_ENTRY_SIZE_TREE ? pv.getUint32(o + IDX.ownerPid, true) : 0,
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
        this.note(new ImageError("TRUNCATED", `record payload of ${rh.payloadLength} bytes runs past the end of the file; recovery stops here`, { offset: at, recordType: recordTypeName(rh.type), sequence: rh.sequence }));
        break;
      }
      const entry: IndexEntry = {
        sequence: entries.length, type: rh.type, flags: rh.flags, key32: 0, offset: at,
        payloadLength: rh.payloadLength, key64: 0n, auxA: 0, auxB: 0, ownerPid: rh.ownerPid,
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
      else if (e.type === RecordType.INDEX) this.fail("BAD_INDEX", "INDEX listed as a record", { offset: e.offset, recordType: "INDEX", sequence: e.sequence, rule: "I7" });
      else if (e.type === 0 || e.type === 0xffff) this.fail("BAD_RECORD", `record type ${recordTypeName(e.type)} is not a record type`, { offset: e.offset, recordType: recordTypeName(e.type), sequence: e.sequence, rule: "R5" });
      else if (!RECORD_TYPE_NAMES[e.type] && !FD_STATE_CODECS.has(e.type)) {
        // A known type with MUST_UNDERSTAND is understood; an unknown one is skipped unread (no size limit applies).
        if (e.flags & RECORD_FLAG_MUST_UNDERSTAND) {
          this.fail("UNSUPPORTED_RECORD", `record type ${recordTypeName(e.type)} must be understood but is unknown to this reader`, { offset: e.offset, recordType: recordTypeName(e.type), sequence: e.sequence, rule: "R6" });
        }
        this.unknownRecords.push({ type: e.type, flags: e.flags, offset: e.offset, payloadLength: e.payloadLength });
      } else if (e.payloadLength > MAX_METADATA_PAYLOAD) {
        this.fail("RECORD_TOO_LARGE", `${recordTypeName(e.type)} payload of ${e.payloadLength} bytes exceeds the 64 MiB limit`, { offset: e.offset, recordType: recordTypeName(e.type), sequence: e.sequence, rule: "R7" });
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
    if (!this.process) this.fail("MISSING_RECORD", "image has no PROCESS record", { offset: this.header.headerSize, rule: "C1" });
    this.pageDigests.sort((a, b) => (a.firstPage < b.firstPage ? -1 : a.firstPage > b.firstPage ? 1 : 0));
    this.areas.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (const list of this.chunksByArea.values()) list.sort((a, b) => (a.firstPage < b.firstPage ? -1 : a.firstPage > b.firstPage ? 1 : 0));
  }

  private addFileDataRef(e: IndexEntry): void {
    const ref: FileDataRef = {
      sequence: e.sequence, contentId: e.key32, fileOffset: e.key64, length: e.auxA, offset: e.offset, payloadLength: e.payloadLength,
      ownerPid: e.ownerPid,
    };
    let list = this.fileRunsByContent.get(ref.contentId);
    if (!list) this.fileRunsByContent.set(ref.contentId, (list = []));
    list.push(ref);
  }

  private addChunkRef(e: IndexEntry): void {
    const ref: ChunkRef = {
      sequence: e.sequence, areaId: e.key32, firstPage: e.key64, spanPages: e.auxA, storedPages: e.auxB,
      offset: e.offset, payloadLength: e.payloadLength, ownerPid: e.ownerPid,
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
    const where = { file: this.path, offset: e.offset, recordType: recordTypeName(e.type), sequence: e.sequence };
    let rh;
    try {
      rh = this.parseRecordHeader(bytes.subarray(0, RECORD_HEADER_SIZE), e.offset);
    } catch (err) {
      // name the record by its index entry: the header itself is not to be trusted
      if (err instanceof ImageError) throw new ImageError(err.code, err.detail.replace(/ in \S+ record$/, ""), { ...where, offset: err.offset, rule: err.rule });
      throw err;
    }
    if (rh.type !== e.type || rh.flags !== e.flags || rh.payloadLength !== e.payloadLength || rh.ownerPid !== e.ownerPid) {
      throw new ImageError("BAD_INDEX", `record header (type ${recordTypeName(rh.type)}, flags ${rh.flags}, length ${rh.payloadLength}, owner ${rh.ownerPid}) disagrees with its index entry`, { ...where, rule: "R2" });
    }
    if (rh.sequence !== e.sequence) {
      throw new ImageError("BAD_RECORD", `record sequence ${rh.sequence} where ${e.sequence} was expected (records reordered or duplicated)`, { ...where, rule: "R3" });
    }
    return bytes.subarray(RECORD_HEADER_SIZE);
  }

  private payloadCrcOf(recordBytes: Uint8Array): number {
    return view(recordBytes).getUint32(REC.payloadCrc, true);
  }

  private payloadCrcError(e: IndexEntry): ImageError {
    return new ImageError("BAD_CHECKSUM", "payload checksum mismatch", { file: this.path, offset: e.offset + RECORD_HEADER_SIZE, recordType: recordTypeName(e.type), sequence: e.sequence, rule: "R4" });
  }

  private decodeRecord(e: IndexEntry, payload: Uint8Array, seen: Set<number>): void {
    const base = e.offset + RECORD_HEADER_SIZE;
    const typeName = recordTypeName(e.type);
    const where = { recordType: typeName, sequence: e.sequence };
    if (SINGLETONS.has(e.type)) {
      if (seen.has(e.type)) throw new ImageError("DUPLICATE_RECORD", `second ${typeName} record`, { ...where, offset: e.offset, rule: "C2" });
      seen.add(e.type);
    }
    const unique = <T>(map: Map<number, T> | Set<number>, key: number, what: string) => {
      if (map.has(key)) throw new ImageError("DUPLICATE_RECORD", `${what} ${key} appears twice`, { ...where, offset: e.offset, rule: "C5" });
    };
    /** R8: the index keys of a keyed type are fields of its payload. */
    const keys = (key32: number, key64 = 0n) => {
      if (e.key32 !== key32 || e.key64 !== key64 || e.auxA !== 0 || e.auxB !== 0) {
        throw new ImageError("BAD_INDEX", `index keys (${e.key32}, 0x${e.key64.toString(16)}, ${e.auxA}, ${e.auxB}) disagree with the record (${key32}, 0x${key64.toString(16)}, 0, 0)`, { ...where, offset: e.offset, rule: "R8" });
      }
    };
    if (INDEX_UNKEYED.has(e.type)) keys(0);
    switch (e.type) {
      case RecordType.PROCESS: this.process = decodeProcess(payload, base, where); break;
      case RecordType.ARGV: this.argv = decodeStringList(payload, base, where, "ARGV"); break;
      case RecordType.ENVIRON: this.environ = decodeStringList(payload, base, where, "ENVIRON"); break;
      case RecordType.AUXV: this.auxv = decodeAuxv(payload, base, where); break;
      case RecordType.RLIMITS: this.rlimits = decodeRlimits(payload, base, where); break;
      case RecordType.SIGACTIONS: this.sigactions = decodeSigactions(payload, base, where); break;
      case RecordType.THREAD: {
        const t = decodeThread(payload, base, where);
        keys(t.tid);
        unique(new Set(this.threads.map((x) => x.tid)), t.tid, "thread");
        this.threads.push(t);
        break;
      }
      case RecordType.AREA: {
        const a = decodeArea(payload, base, where);
        keys(a.id, a.start);
        unique(this.areaById, a.id, "area id");
        this.areaById.set(a.id, a);
        this.areaEntry.set(a.id, e);
        this.areas.push(a);
        break;
      }
      case RecordType.MAPPED_FILE: {
        const f = decodeMappedFile(payload, base, where);
        keys(f.id);
        unique(this.fileById, f.id, "mapped file id");
        this.fileById.set(f.id, f);
        this.files.push(f);
        break;
      }
      case RecordType.TIMERS: this.timers = decodeTimers(payload, base, where); break;
      case RecordType.SHARED_PAGES: this.sharedPages = decodeSharedPages(payload, base, where, this.pageSize); break;
      case RecordType.PROCESS_STATE: this.processState = decodeProcessState(payload, base, where); break;
      case RecordType.SECCOMP: this.seccompFilters = decodeSeccomp(payload, base, where); break;
      case RecordType.SIGQUEUE: this.pendingSignals = decodeSigqueue(payload, base, where); break;
      case RecordType.THREAD_STATE: {
        const t = decodeThreadState(payload, base, where);
        keys(t.tid);
        unique(new Set(this.threadStates.map((x) => x.tid)), t.tid, "thread state of tid");
        this.threadStates.push(t);
        break;
      }
      case RecordType.FD: {
        const f = decodeFd(payload, base, where);
        keys(f.fd);
        unique(new Set(this.fds.map((x) => x.fd)), f.fd, "fd");
        this.fds.push(f);
        break;
      }
      case RecordType.FILE_CONTENT: {
        const c = decodeFileContent(payload, base, where);
        keys(c.id, c.inode);
        unique(new Set(this.fileContents.map((x) => x.id)), c.id, "file content id");
        this.fileContents.push(c);
        break;
      }
      case RecordType.FD_FILE: {
        const f = decodeFdFile(payload, base, where);
        keys(f.fd);
        unique(this.fdFiles, f.fd, "FD_FILE for fd");
        this.fdFiles.set(f.fd, f);
        break;
      }
      case RecordType.PARENT: this.parentRecord = decodeParent(payload, base, where); break;
      case RecordType.PAGE_DIGESTS: this.pageDigests.push(decodePageDigests(payload, base, where, e.sequence)); break;
      case RecordType.TTY: {
        const t = decodeTty(payload, base, where);
        keys(t.fd);
        unique(this.ttys, t.fd, "TTY for fd");
        this.ttys.set(t.fd, t);
        break;
      }
      case RecordType.SYSV_SHM: {
        const x = decodeSysvShm(payload, base, where);
        keys(x.id);
        unique(new Set(this.sysv.shm.map((y) => y.id)), x.id, "SysV shm id");
        this.sysv.shm.push(x);
        break;
      }
      case RecordType.SYSV_SEM: {
        const x = decodeSysvSem(payload, base, where);
        keys(x.id);
        unique(new Set(this.sysv.sem.map((y) => y.id)), x.id, "SysV semaphore set id");
        this.sysv.sem.push(x);
        break;
      }
      case RecordType.SYSV_MSG: {
        const x = decodeSysvMsg(payload, base, where);
        keys(x.id);
        unique(new Set(this.sysv.msg.map((y) => y.id)), x.id, "SysV message queue id");
        this.sysv.msg.push(x);
        break;
      }
      case RecordType.UNREADABLE_PAGES: {
        const u = decodeUnreadablePages(payload, base, where);
        keys(u.areaId);
        if (this.unreadablePages.has(u.areaId)) throw new ImageError("BAD_FIELD", `second UNREADABLE_PAGES record for area ${u.areaId}`, { ...where, offset: e.offset, rule: "U1" });
        this.unreadablePages.set(u.areaId, u.ranges);
        this.unreadableEntry.set(u.areaId, e);
        break;
      }
      default: {
        const codec = FD_STATE_CODECS.get(e.type);
        if (codec) this.fdState.push(codec.decode(payload, base, { ...where, recordType: codec.name }, e.key32, e.key64));
      }
    }
  }

  /**
   * Cross-record rules: thread count (C3, C4), areas (A1-A3), chunks in their areas (G9, G10),
   * unreadable ranges (U1, U2). Strict mode throws the first; tolerant mode drops what breaks them.
   */
  private crossCheck(): void {
    this.crossCheckFileRuns();
    if (this.process) {
      // C3, C4 are "report" rules: an image breaking them can still be inspected; verify reports
      // them and a restorer refuses (FORMAT.md "Reader obligations").
      if (this.threads.length === 0) this.note(new ImageError("MISSING_RECORD", "image has no THREAD record", { file: this.path, offset: this.header.headerSize, rule: "C3" }));
      else if (this.threads.length !== this.process.threadCount) {
        const pe = this.entries.find((x) => x.type === RecordType.PROCESS);
        this.report("BAD_FIELD", `PROCESS says ${this.process.threadCount} threads, image holds ${this.threads.length}`, { offset: pe?.offset, recordType: "PROCESS", sequence: pe?.sequence, rule: "C4" });
      }
    }
    const lost = this.pendingSignals.find((s) => s.tid !== 0 && !this.threads.some((t) => t.tid === s.tid));
    if (lost) {
      const se = this.entries.find((x) => x.type === RecordType.SIGQUEUE);
      this.fail("BAD_FIELD", `SIGQUEUE entry for tid ${lost.tid}, which names no THREAD`, { offset: se?.offset, recordType: "SIGQUEUE", sequence: se?.sequence, rule: "P3" });
      this.pendingSignals = this.pendingSignals.filter((s) => s !== lost);
    }
    const ps = BigInt(this.pageSize);
    const areaWhere = (a: AreaRecord) => ({ offset: this.areaEntry.get(a.id)?.offset, recordType: "AREA", sequence: this.areaEntry.get(a.id)?.sequence });
    const badAreas = new Set<AreaRecord>();
    for (const a of this.areas) {
      if (a.start % ps !== 0n || a.end % ps !== 0n) {
        this.fail("BAD_FIELD", `area ${a.id} 0x${a.start.toString(16)}-0x${a.end.toString(16)} is not page-aligned`, { ...areaWhere(a), rule: "A1" });
        badAreas.add(a);
      } else if (a.fileId !== undefined && !this.fileById.has(a.fileId)) {
        this.fail("BAD_FIELD", `area ${a.id} names MAPPED_FILE ${a.fileId}, which the image does not hold`, { ...areaWhere(a), rule: "A3" });
        a.fileId = undefined;
      }
    }
    for (let i = 1; i < this.areas.length; i++) {
      const prev = this.areas[i - 1], a = this.areas[i];
      if (a.start < prev.end) {
        this.fail("BAD_FIELD", `area ${a.id} overlaps area ${prev.id}`, { ...areaWhere(a), rule: "A2" });
        badAreas.add(a);
      }
    }
    if (badAreas.size) {
      this.areas = this.areas.filter((a) => !badAreas.has(a));
      for (const a of badAreas) this.areaById.delete(a.id);
    }
    for (const [areaId, list] of this.chunksByArea) {
      const area = this.areaById.get(areaId);
      const bad: ChunkRef[] = [];
      let prevEnd = 0n;
      for (const c of list) {
        const where = { offset: c.offset, recordType: "PAGES", sequence: c.sequence };
        const end = c.firstPage + BigInt(c.spanPages) * ps;
        let problem: [string, string] | undefined;
        if (!area) problem = [`chunk refers to unknown area ${areaId}`, "G9"];
        else if (c.spanPages < 1 || c.spanPages > 1 << 20) problem = [`span of ${c.spanPages} pages is invalid`, "G1"];
        else if (c.storedPages < 1 || c.storedPages > c.spanPages) problem = [`span of ${c.spanPages} pages with ${c.storedPages} stored is invalid`, "G2"];
        else if (c.storedPages * this.pageSize > MAX_CHUNK_RAW) problem = [`chunk of ${c.storedPages} pages exceeds the 64 MiB limit`, "G5"];
        else if (c.firstPage % ps !== 0n || c.firstPage < area.start || end > area.end) problem = [`span 0x${c.firstPage.toString(16)}+${c.spanPages} pages lies outside area ${areaId}`, "G10"];
        else if (c.firstPage < prevEnd) problem = [`span 0x${c.firstPage.toString(16)} overlaps the previous chunk of area ${areaId}`, "G10"];
        else if (c.payloadLength > MAX_PAGES_PAYLOAD) problem = [`PAGES payload of ${c.payloadLength} bytes is larger than any valid chunk`, "G5"];
        if (problem) {
          this.fail(problem[1] === "G5" ? "CHUNK_TOO_LARGE" : "BAD_FIELD", problem[0], { ...where, rule: problem[1] });
          bad.push(c);
        } else prevEnd = end;
      }
      if (bad.length) this.chunksByArea.set(areaId, list.filter((c) => !bad.includes(c)));
      if (!area) this.chunksByArea.delete(areaId);
    }
    this.crossCheckUnreadable();
  }

  /** U1, U2: unreadable ranges name an UNREADABLE area, lie inside it in order, and hold no stored page. */
  private crossCheckUnreadable(): void {
    const ps = BigInt(this.pageSize);
    for (const [areaId, ranges] of this.unreadablePages) {
      const e = this.unreadableEntry.get(areaId);
      const where = { offset: e?.offset, recordType: "UNREADABLE_PAGES", sequence: e?.sequence };
      const area = this.areaById.get(areaId);
      let problem: [string, string] | undefined;
      if (!area) problem = [`UNREADABLE_PAGES names area ${areaId}, which the image does not hold`, "U1"];
      else if (!(area.flags & AREA_UNREADABLE)) problem = [`UNREADABLE_PAGES names area ${areaId}, which is not flagged UNREADABLE`, "U1"];
      else {
        let prevEnd = area.start;
        for (const r of ranges) {
          if (r.start % ps !== 0n || r.end % ps !== 0n || r.end <= r.start || r.start < prevEnd || r.end > area.end) {
            problem = [`unreadable range 0x${r.start.toString(16)}-0x${r.end.toString(16)} is not page-aligned, sorted and inside area ${areaId}`, "U2"];
            break;
          }
          prevEnd = r.end;
        }
      }
      if (problem) {
        this.fail("BAD_FIELD", problem[0], { ...where, rule: problem[1] });
        this.unreadablePages.delete(areaId);
      }
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
      payloadLength: ref.payloadLength, key64: ref.fileOffset, auxA: ref.length, auxB: 0, ownerPid: ref.ownerPid ?? 0,
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
      throw new ImageError("CHUNK_TOO_LARGE", `PAGES payload of ${ref.payloadLength} bytes`, { file: this.path, offset: ref.offset, recordType: "PAGES", sequence: ref.sequence, rule: "G5" });
    }
    return this.readAt(ref.offset, RECORD_HEADER_SIZE + ref.payloadLength);
  }

  /** Check and decompress a chunk read by readChunkBytes (no caching; verify streams through this). */
  decodeChunk(ref: ChunkRef, bytes: Uint8Array): DecodedChunk {
    const where = { file: this.path, offset: ref.offset, recordType: "PAGES", sequence: ref.sequence };
    const entry: IndexEntry = {
      sequence: ref.sequence, type: RecordType.PAGES, flags: view(bytes).getUint16(REC.flags, true), key32: ref.areaId,
      offset: ref.offset, payloadLength: ref.payloadLength, key64: ref.firstPage, auxA: ref.spanPages, auxB: ref.storedPages,
      ownerPid: ref.ownerPid ?? 0,
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
    const header = decodePagesHeader(payload, ref.offset + RECORD_HEADER_SIZE, where, this.pageSize);
    if (header.areaId !== ref.areaId || header.firstPage !== ref.firstPage || header.spanPages !== ref.spanPages || header.storedPages !== ref.storedPages) {
      throw new ImageError("BAD_INDEX", "chunk header disagrees with its index entry", { ...where, rule: "R8" });
    }
    const rawSize = header.storedPages * this.pageSize;
    let raw: Uint8Array;
    try {
      raw = decompressChunk(header.codec, payload.subarray(header.dataOffset, header.dataOffset + header.storedSize), rawSize);
    } catch (err) {
      if (err instanceof CodecError) {
        const at = header.codec > CODEC.DEFLATE ? ref.offset + RECORD_HEADER_SIZE + PAGES.codec : ref.offset + RECORD_HEADER_SIZE + header.dataOffset + (err.inputOffset ?? 0);
        throw new ImageError("BAD_CODEC", err.detail, { ...where, offset: at, rule: "G7" });
      }
      throw err;
    }
    const rawCrc = header.codec === CODEC.NONE ? dataCrc : crc32(raw);
    if (rawCrc !== header.rawCrc) throw new ImageError("BAD_CHECKSUM", "decompressed pages do not match raw_crc", { ...where, rule: "G8" });
    const unreadable = this.unreadablePages.get(ref.areaId);
    if (unreadable) {
      const ps = BigInt(this.pageSize);
      for (let i = 0; i < header.spanPages; i++) {
        if (!(header.bitmap[i >> 3] & (1 << (i & 7)))) continue;
        const page = header.firstPage + BigInt(i) * ps;
        if (unreadable.some((r) => page >= r.start && page < r.end)) {
          throw new ImageError("BAD_FIELD", `page 0x${page.toString(16)} is both stored and listed as unreadable`, { ...where, rule: "U2" });
        }
      }
    }
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
    if ((await this.storedPage(area, pageAddr)) ?? (await this.sharedMemoryPage(area, pageAddr))) return "image";
    if (this.sharedPages && sharedRunAt(this.sharedPages, pageAddr, this.pageSize)) return this.root.processImage(this.sharedPages.parentPid).pageSource(pageAddr);
    return this.unstoredSource(area, pageAddr).source;
  }

  /**
   * Read `length` bytes of the process's memory at `addr`: stored pages from the image, the
   * rest as the format defines them (zero for anonymous memory, the mapped file's bytes for
   * file-backed areas when the file on disk is verifiably the one recorded). Content the image
   * does not have throws UNAVAILABLE, unless `unavailable: "zero"` asks for zeros in its place;
   * readMemoryMap() says which bytes are unknown instead.
   */
  async readMemory(addr: bigint, length: number, opts?: ReadMemoryOptions): Promise<Uint8Array>;
  /** The same in process `pid` of a tree image (the root's pid reads the root). */
  async readMemory(pid: number, addr: bigint, length: number, opts?: ReadMemoryOptions): Promise<Uint8Array>;
  async readMemory(a: bigint | number, b: bigint | number, c?: number | ReadMemoryOptions, d?: ReadMemoryOptions): Promise<Uint8Array> {
    if (typeof a === "number") return this.processImage(a).readMemory(b as bigint, c as number, d);
    const addr = a, length = b as number, opts = (c as ReadMemoryOptions | undefined) ?? {};
    const read = await this.readMemoryMap(addr, length);
    if (read.unknown.length && opts.unavailable !== "zero") {
      const u = read.unknown[0];
      throw new ImageError("UNAVAILABLE", `0x${u.start.toString(16)}-0x${u.end.toString(16)}: ${u.why ?? "not stored in the image"}`, { file: this.path });
    }
    return read.bytes;
  }

  /**
   * Read `length` bytes at `addr` with where each run of them came from (`spans`, merged) and
   * the runs whose content is unknown (`unknown`), which hold `fill` (default 0) — never
   * presented as data. An unmapped address throws NOT_MAPPED.
   */
  async readMemoryMap(addr: bigint, length: number, opts: { fill?: number } = {}): Promise<MemoryRead> {
    if (!Number.isSafeInteger(length) || length < 0 || length > 1 << 30) {
      throw new ImageError("BAD_FIELD", `read length ${length} out of range`, { file: this.path });
    }
    const out = new Uint8Array(length);
    const spans: MemorySpan[] = [];
    const add = (span: MemorySpan) => {
      const last = spans[spans.length - 1];
      if (last && last.end === span.start && last.source === span.source && last.path === span.path && last.why === span.why) last.end = span.end;
      else spans.push(span);
    };
    const ps = BigInt(this.pageSize);
    let done = 0;
    while (done < length) {
      const at = addr + BigInt(done);
      const area = this.areaAt(at);
      if (!area) throw new ImageError("NOT_MAPPED", `address 0x${at.toString(16)} is not mapped in the image`, { file: this.path });
      const page = at - (at % ps);
      const inPage = Number(at - page);
      const n = Math.min(length - done, this.pageSize - inPage);
      const end = at + BigInt(n);
      const dst = out.subarray(done, done + n);
      const stored = (await this.storedPage(area, page)) ?? (await this.sharedMemoryPage(area, page));
      const shared = !stored && this.sharedPages ? sharedRunAt(this.sharedPages, page, this.pageSize) : undefined;
      if (stored) {
        dst.set(stored.subarray(inPage, inPage + n));
        add({ start: at, end, source: "image" });
      } else if (shared) {
        // the same page as the parent's (copy-on-write since fork): stored there
        const inParent = await this.root.processImage(this.sharedPages!.parentPid).readMemoryMap(at, n, opts);
        dst.set(inParent.bytes);
        for (const span of inParent.spans) add(span);
      } else {
        const def = this.unstoredSource(area, page);
        if (def.source === "file") {
          const got = await this.readFromMappedFile(area, at, dst);
          if ("why" in got) add({ start: at, end, source: "unavailable", why: got.why });
          else add({ start: at, end, source: "file", path: got.path, evidence: got.evidence === "archive" ? undefined : got.evidence });
        } else if (def.source === "file-content") {
          const content = this.fileContentFor(area.devMajor, area.devMinor, area.inode)!;
          dst.set(await this.readFileContent(content.id, area.fileOffset + (at - area.start), n));
          add({ start: at, end, source: "file-content", path: content.path });
        } else add({ start: at, end, source: def.source, why: def.why });
      }
      done += n;
    }
    const unknown = spans.filter((x) => x.source === "unavailable");
    if (opts.fill) for (const u of unknown) out.fill(opts.fill, Number(u.start - addr), Number(u.end - addr));
    return { bytes: out, spans, unknown };
  }

  /**
   * The content of a page no chunk stores (docs/FORMAT.md 4.7, "Pages not stored"): zero,
   * the mapped file, a FILE_CONTENT of the image, or unknown — with why it is unknown.
   */
  unstoredSource(area: AreaRecord, pageAddr: bigint): { source: PageSource; why?: string } {
    if (area.flags & AREA_UNREADABLE) {
      const ranges = this.unreadablePages.get(area.id);
      if (!ranges) return { source: "unavailable", why: `${area.path || area.kind} could not be read when the image was taken` };
      const r = ranges.find((x) => pageAddr >= x.start && pageAddr < x.end);
      if (r) return { source: "unavailable", why: `pages 0x${r.start.toString(16)}-0x${r.end.toString(16)} could not be read when the image was taken` };
    }
    switch (area.kind) {
      case "anon": case "heap": case "stack": case "shmem":
        return { source: "zero" };
      case "file": {
        if (this.fileContentFor(area.devMajor, area.devMinor, area.inode)) return { source: "file-content" };
        const file = this.mappedFile(area.fileId);
        if (area.flags & AREA_DELETED || (file && file.flags & MFILE_DELETED)) {
          return { source: "unavailable", why: `${area.path} was deleted when the image was taken and the image does not hold its content` };
        }
        if (!file) return { source: "unavailable", why: `${area.path} has no MAPPED_FILE record` };
        return { source: "file" };
      }
      default:
        return { source: "unavailable", why: `${area.path || area.kind} (${area.kind}) is kernel-provided memory the image does not hold` };
    }
  }

  /**
   * A page of shared memory (AREA kind SHMEM with SHARED) that another area of a tree image
   * stores: one object, identified by (dev, inode), whose pages the writer stored once, in the
   * first area mapping each (docs/FORMAT.md "Process trees", shared memory).
   */
  private async sharedMemoryPage(area: AreaRecord, pageAddr: bigint): Promise<Uint8Array | undefined> {
    if (!this.root.tree || area.kind !== "shmem" || !(area.flags & AREA_SHARED) || area.inode === 0n) return undefined;
    const offset = area.fileOffset + (pageAddr - area.start);
    for (const p of this.root.processes) {
      for (const other of p.areas) {
        if (other === area || other.kind !== "shmem" || !(other.flags & AREA_SHARED) || other.inode !== area.inode ||
          other.devMajor !== area.devMajor || other.devMinor !== area.devMinor) continue;
        if (offset < other.fileOffset || offset >= other.fileOffset + (other.end - other.start)) continue;
        const page = await p.storedPage(other, other.start + (offset - other.fileOffset));
        if (page) return page;
      }
    }
    return undefined;
  }

  /** The stored bytes of one page (a view into the decoded chunk), or undefined if not stored. */
  private async storedPage(area: AreaRecord, pageAddr: bigint): Promise<Uint8Array | undefined> {
    const at = spanAt(this.chunksByArea.get(area.id) ?? [], pageAddr, this.pageSize);
    if (!at) return undefined;
    const { header, raw } = await this.readChunk(at.span);
    const index = bitmapIndex(header.bitmap, at.bit);
    return index === undefined ? undefined : raw.subarray(index * this.pageSize, (index + 1) * this.pageSize);
  }

  /**
   * Copy bytes of a file-backed area from the mapped file on disk if it verifiably is the file
   * recorded (docs/FORMAT.md 4.9 "File identity"); else say why not.
   * protected: a foreign reader may supply mapped files from elsewhere (a container's root fs diff).
   */
  protected async readFromMappedFile(area: AreaRecord, at: bigint, dst: Uint8Array): Promise<MappedFileBytes> {
    const file = this.mappedFile(area.fileId);
    if (!file) return { why: `${area.path} has no MAPPED_FILE record` };
    let cached = this.fileCache.get(file.id);
    if (cached === undefined) {
      cached = await openVerifiedFile(file, this.opts.fileRoot);
      this.fileCache.set(file.id, cached);
    }
    if ("why" in cached) return cached;
    const fileOffset = Number(area.fileOffset + (at - area.start));
    dst.fill(0);
    if (fileOffset < cached.size) await cached.handle.read(dst, 0, Math.min(dst.length, cached.size - fileOffset), fileOffset);
    return { path: cached.path, evidence: cached.evidence };
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
    if (!startsWith(h, RECORD_MAGIC)) throw new ImageError("BAD_RECORD", "no record header here (bad record magic)", { offset: at, rule: "R1" });
    const type = v.getUint16(REC.type, true);
    const sequence = v.getUint32(REC.sequence, true);
    if (crc32(h.subarray(0, REC.crc)) !== v.getUint32(REC.crc, true)) {
      throw new ImageError("BAD_RECORD", "record header checksum mismatch", { offset: at, recordType: recordTypeName(type), rule: "R1" });
    }
    const payloadLength = safeNumber(v.getBigUint64(REC.payloadLength, true), "payload_length", at + REC.payloadLength, "BAD_RECORD", "R1");
    return { type, flags: v.getUint16(REC.flags, true), payloadLength, payloadCrc: v.getUint32(REC.payloadCrc, true), sequence, ownerPid: v.getUint32(REC.ownerPid, true) };
  }

  /** A "report" rule: remembered in both modes (verify fails on it), never thrown. */
  private report(code: ImageErrorCode, detail: string, where: { offset?: number; recordType?: string; sequence?: number; rule?: string }): void {
    this.note(new ImageError(code, detail, { file: this.path, ...where }));
  }

  /** Strict: throw. Tolerant: remember and carry on. */
  private fail(code: ImageErrorCode, detail: string, where: { offset?: number; recordType?: string; sequence?: number; rule?: string }): void {
    const err = new ImageError(code, detail, { file: this.path, ...where });
    if (!this.tolerant) throw err;
    this.note(err);
  }

  private note(err: ImageError): void {
    this.problems.push({ code: err.code, detail: err.detail, offset: err.offset, recordType: err.recordType, sequence: err.sequence, rule: err.rule ?? ruleFor(err.code) });
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

function safeNumber(v: bigint, what: string, offset: number, code: ImageErrorCode, rule: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ImageError(code, `${what} ${v} is beyond any file size`, { offset, rule });
  return Number(v);
}

/** The rule of an error raised by a record decoder that did not name one (a field out of range). */
function ruleFor(code: ImageErrorCode): string | undefined {
  return code === "BAD_FIELD" ? "P3" : undefined;
}
