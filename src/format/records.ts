/**
 * Typed model of every record of image format v1.0 and the pure functions that turn a
 * payload into a record and back. Layouts: docs/FORMAT.md section 4 (offsets in raw.ts).
 * 64-bit values are bigint; 32-bit values are numbers.
 */
import { ByteReader, ByteWriter } from "./bytes.js";
import type { ImageErrorWhere } from "./errors.js";
import {
  AREA, AREA_FLAG_NAMES, AREA_KINDS, AUXV_ENTRY_SIZE, MAX_CHUNK_RAW, FDR, FD_FIXED_SIZE_1_1, FD_KINDS, FD_STATE_PEER_OUTSIDE, FD_STATE_UNRESTORABLE, FIXED_SIZE, MFILE,
  MFILE_BUILD_ID, MFILE_SHA256, NO_FILE, PAGES, PROC, PROT_EXEC, PROT_READ, PROT_WRITE,
  RLIMIT_ENTRY_SIZE, SIGACTION_ENTRY_SIZE, THR, X86_64_REG_NAMES, X86_64_REGS_SIZE,
  type AreaFlagName, type AreaKind, type FdKind,
} from "./raw.js";

// ---------------------------------------------------------------------------------------
// Types

export interface MmLayout {
  startCode: bigint; endCode: bigint; startData: bigint; endData: bigint; startBrk: bigint;
  brk: bigint; startStack: bigint; argStart: bigint; argEnd: bigint; envStart: bigint; envEnd: bigint;
}
const MM_FIELDS = [
  "startCode", "endCode", "startData", "endData", "startBrk", "brk", "startStack", "argStart",
  "argEnd", "envStart", "envEnd",
] as const satisfies readonly (keyof MmLayout)[];

export interface ProcessRecord {
  pid: number; ppid: number; pgid: number; sid: number;
  /** real, effective, saved, filesystem */
  uid: [number, number, number, number];
  gid: [number, number, number, number];
  personality: number;
  /** undefined when the capturer could not read it */
  umask: number | undefined;
  threadCount: number;
  captureNs: bigint;
  startTime: bigint;
  mm: MmLayout;
  flags: number;
  comm: string; exe: string; cwd: string; root: string; kernel: string;
}

export interface AuxvEntry { type: bigint; value: bigint }
export interface RlimitEntry { resource: number; cur: bigint; max: bigint }
export interface SigactionEntry { signo: number; handler: bigint; flags: bigint; restorer: bigint; mask: bigint }
export interface SigactionsRecord { sharedPending: bigint; actions: SigactionEntry[] }

export type X86RegName = (typeof X86_64_REG_NAMES)[number];
export type X86Regs = Record<X86RegName, bigint>;

export interface ThreadRecord {
  tid: number;
  flags: number;
  /** the state letter of /proc/PID/task/TID/stat, e.g. "S" */
  state: string;
  sigmask: bigint;
  pending: bigint;
  clearChildTid: bigint;
  robustList: bigint;
  robustListLen: bigint;
  altstack: { sp: bigint; size: bigint; flags: number };
  /** decoded general registers (x86-64 order); undefined if regs_size is not 216 */
  regs: X86Regs | undefined;
  regsRaw: Uint8Array;
  /** XSAVE area (or 512-byte FXSAVE when FPREGS_ONLY) */
  xstate: Uint8Array;
}

export interface AreaRecord {
  id: number;
  start: bigint;
  end: bigint;
  fileOffset: bigint;
  devMajor: number; devMinor: number;
  inode: bigint;
  /** PROT_* bits */
  prot: number;
  /** AREA flag bits (see areaFlagNames) */
  flags: number;
  kind: AreaKind | "unknown";
  /** MAPPED_FILE id, undefined when the area maps no file */
  fileId: number | undefined;
  path: string;
  vmflags: string;
}

export interface PagesChunkHeader {
  areaId: number;
  firstPage: bigint;
  spanPages: number;
  storedPages: number;
  codec: number;
  storedSize: number;
  rawCrc: number;
  dataOffset: number;
  bitmap: Uint8Array;
}

export interface MappedFileRecord {
  id: number;
  devMajor: number; devMinor: number;
  inode: bigint;
  size: bigint;
  mtimeNs: bigint;
  mode: number;
  flags: number;
  /** undefined when the capturer could not hash the file */
  sha256: Uint8Array | undefined;
  path: string;
  buildId: Uint8Array | undefined;
}

export interface FdRecord {
  fd: number;
  kind: FdKind;
  openFlags: number;
  fdFlags: number;
  mode: number;
  pos: bigint;
  devMajor: number; devMinor: number;
  inode: bigint;
  rdevMajor: number; rdevMinor: number;
  path: string;
  /** format 1.1: open file description; fds with one id share offset, status flags and locks */
  fileId?: number;
  /** format 1.1: F_SETOWN_EX owner (type 0 thread, 1 process, 2 process group) */
  owner?: { type: number; id: number };
  /** format 1.1: F_SETSIG signal */
  ownerSignal?: number;
  /** format 1.1: why capture says this fd cannot be brought back (absent: it can) */
  unrestorable?: string;
  /** format 1.1: its other end is in a process outside the image; how it comes back */
  peerOutside?: string;
}

// ---------------------------------------------------------------------------------------
// Helpers for the model

/** "rwxp" / "r--s" as in /proc/PID/maps. */
export function areaPerms(area: Pick<AreaRecord, "prot" | "flags">): string {
  return (
    (area.prot & PROT_READ ? "r" : "-") +
    (area.prot & PROT_WRITE ? "w" : "-") +
    (area.prot & PROT_EXEC ? "x" : "-") +
    (area.flags & 1 ? "s" : "p")
  );
}

export function areaFlagNames(flags: number): AreaFlagName[] {
  return AREA_FLAG_NAMES.filter((_, bit) => flags & (1 << bit));
}

export function popcount8(b: number): number {
  b = b - ((b >> 1) & 0x55);
  b = (b & 0x33) + ((b >> 2) & 0x33);
  return (b + (b >> 4)) & 0x0f;
}

/** A page span: `spanPages` pages from `firstPage` (PAGES chunks, PAGE_DIGESTS spans). */
export interface PageSpan {
  firstPage: bigint;
  spanPages: number;
}

/**
 * The span of `sorted` (by first page, not overlapping) that covers `addr`, by binary search,
 * with the page's bit number in it; undefined when no span covers it.
 */
export function spanAt<T extends PageSpan>(sorted: readonly T[], addr: bigint, pageSize: number): { span: T; bit: number } | undefined {
  const ps = BigInt(pageSize);
  let lo = 0, hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = sorted[mid];
    if (addr < s.firstPage) hi = mid - 1;
    else if (addr >= s.firstPage + BigInt(s.spanPages) * ps) lo = mid + 1;
    else return { span: s, bit: Number((addr - s.firstPage) / ps) };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Decoders: payload bytes → record. `base` is the payload's file offset (for errors).

export function decodeProcess(payload: Uint8Array, base: number, where: ImageErrorWhere): ProcessRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(FIXED_SIZE.PROCESS, "PROCESS");
  const u32 = (o: number) => r.u32At(o);
  const mm = {} as MmLayout;
  MM_FIELDS.forEach((name, i) => (mm[name] = r.u64At(PROC.mm + 8 * i)));
  const umask = u32(PROC.umask);
  r.pos = fixed;
  return {
    pid: u32(PROC.pid), ppid: u32(PROC.ppid), pgid: u32(PROC.pgid), sid: u32(PROC.sid),
    uid: [u32(PROC.uid), u32(PROC.uid + 4), u32(PROC.uid + 8), u32(PROC.uid + 12)],
    gid: [u32(PROC.gid), u32(PROC.gid + 4), u32(PROC.gid + 8), u32(PROC.gid + 12)],
    personality: u32(PROC.personality),
    umask: umask === 0xffffffff ? undefined : umask,
    threadCount: u32(PROC.threadCount),
    captureNs: r.u64At(PROC.captureNs),
    startTime: r.u64At(PROC.startTime),
    mm,
    flags: u32(PROC.flags),
    comm: r.str("comm"), exe: r.str("exe"), cwd: r.str("cwd"), root: r.str("root"), kernel: r.str("kernel"),
  };
}

/**
 * The shape shared by ARGV, ENVIRON, AUXV, RLIMITS and SIGACTIONS: FIXED starts with
 * `u32 fixed_size, u32 count`, VARIABLE holds `count` entries of at least `minEntrySize`
 * bytes each. The count is bounded by the payload before any entry is read.
 */
function decodeCountedList<T>(
  payload: Uint8Array, base: number, where: ImageErrorWhere, typeName: string,
  fixedMin: number, minEntrySize: number, readEntry: (r: ByteReader, i: number) => T,
): { reader: ByteReader; entries: T[] } {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(fixedMin, typeName);
  const count = r.u32At(4);
  if (count * minEntrySize > payload.length - fixed) r.fail("BAD_FIELD", `${typeName} count ${count} exceeds the payload`, 4);
  r.pos = fixed;
  const entries: T[] = [];
  for (let i = 0; i < count; i++) entries.push(readEntry(r, i));
  return { reader: r, entries };
}

/** ARGV / ENVIRON: the strings, decoded as UTF-8 (each STR needs at least its 4-byte length). */
export function decodeStringList(payload: Uint8Array, base: number, where: ImageErrorWhere, typeName: string): string[] {
  return decodeCountedList(payload, base, where, typeName, FIXED_SIZE.LIST, 4, (r, i) => r.str(`${typeName} string ${i}`)).entries;
}

export function decodeAuxv(payload: Uint8Array, base: number, where: ImageErrorWhere): AuxvEntry[] {
  return decodeCountedList(payload, base, where, "AUXV", FIXED_SIZE.LIST, AUXV_ENTRY_SIZE, (r) => ({ type: r.u64(), value: r.u64() })).entries;
}

export function decodeRlimits(payload: Uint8Array, base: number, where: ImageErrorWhere): RlimitEntry[] {
  return decodeCountedList(payload, base, where, "RLIMITS", FIXED_SIZE.LIST, RLIMIT_ENTRY_SIZE, (r) => {
    const resource = r.u32();
    r.u32(); // reserved
    return { resource, cur: r.u64(), max: r.u64() };
  }).entries;
}

export function decodeSigactions(payload: Uint8Array, base: number, where: ImageErrorWhere): SigactionsRecord {
  const { reader, entries } = decodeCountedList(payload, base, where, "SIGACTIONS", FIXED_SIZE.SIGACTIONS, SIGACTION_ENTRY_SIZE, (r) => {
    const signo = r.u32();
    r.u32(); // reserved
    return { signo, handler: r.u64(), flags: r.u64(), restorer: r.u64(), mask: r.u64() };
  });
  return { sharedPending: reader.u64At(8), actions: entries };
}

/** The x86-64 registers: the first 216 bytes (a larger regs_size appends fields a 1.x reader skips). */
export function decodeRegs(raw: Uint8Array): X86Regs | undefined {
  if (raw.length < X86_64_REGS_SIZE) return undefined;
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const regs = {} as X86Regs;
  X86_64_REG_NAMES.forEach((name, i) => (regs[name] = v.getBigUint64(8 * i, true)));
  return regs;
}

export function decodeThread(payload: Uint8Array, base: number, where: ImageErrorWhere): ThreadRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(FIXED_SIZE.THREAD, "THREAD");
  const regsSize = r.u32At(THR.regsSize);
  const xstateSize = r.u32At(THR.xstateSize);
  const state = r.u32At(THR.state);
  if (regsSize < X86_64_REGS_SIZE) r.fail("BAD_FIELD", `THREAD regs_size ${regsSize} is below ${X86_64_REGS_SIZE}`, THR.regsSize, "C6");
  r.pos = fixed;
  const regsRaw = r.bytesView(regsSize, "regs");
  const xstate = r.bytesView(xstateSize, "xstate");
  return {
    tid: r.u32At(THR.tid),
    flags: r.u32At(THR.flags),
    state: state > 0x20 && state < 0x7f ? String.fromCharCode(state) : "?",
    sigmask: r.u64At(THR.sigmask),
    pending: r.u64At(THR.pending),
    clearChildTid: r.u64At(THR.clearChildTid),
    robustList: r.u64At(THR.robustList),
    robustListLen: r.u64At(THR.robustListLen),
    altstack: { sp: r.u64At(THR.altstackSp), size: r.u64At(THR.altstackSize), flags: r.u32At(THR.altstackFlags) },
    regs: decodeRegs(regsRaw),
    regsRaw,
    xstate,
  };
}

export function decodeArea(payload: Uint8Array, base: number, where: ImageErrorWhere): AreaRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(FIXED_SIZE.AREA, "AREA");
  const start = r.u64At(AREA.start);
  const end = r.u64At(AREA.end);
  if (end <= start) r.fail("BAD_FIELD", `AREA end 0x${end.toString(16)} is not above start 0x${start.toString(16)}`, AREA.end, "A1");
  const kind = r.u32At(AREA.kind);
  const fileId = r.u32At(AREA.fileId);
  r.pos = fixed;
  return {
    id: r.u32At(AREA.areaId),
    start,
    end,
    fileOffset: r.u64At(AREA.fileOffset),
    devMajor: r.u32At(AREA.devMajor),
    devMinor: r.u32At(AREA.devMinor),
    inode: r.u64At(AREA.inode),
    prot: r.u32At(AREA.prot),
    flags: r.u32At(AREA.flags),
    kind: AREA_KINDS[kind] ?? "unknown",
    fileId: fileId === NO_FILE ? undefined : fileId,
    path: r.str("path"),
    vmflags: r.str("vmflags"),
  };
}

/**
 * The FIXED part and bitmap of a PAGES payload, with every rule that needs no other record
 * (G1-G4, G6; G5 when `pageSize` is given). DATA is not looked at.
 */
export function decodePagesHeader(payload: Uint8Array, base: number, where: ImageErrorWhere, pageSize?: number): PagesChunkHeader {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(FIXED_SIZE.PAGES, "PAGES");
  const spanPages = r.u32At(PAGES.spanPages);
  const storedPages = r.u32At(PAGES.storedPages);
  const storedSize = r.u32At(PAGES.storedSize);
  const dataOffset = r.u32At(PAGES.dataOffset);
  const codec = payload[PAGES.codec];
  if (spanPages < 1 || spanPages > 1 << 20) r.fail("BAD_FIELD", `PAGES span_pages ${spanPages} outside [1, 1048576]`, PAGES.spanPages, "G1");
  const bitmapLen = Math.ceil(spanPages / 8);
  if (dataOffset < fixed + bitmapLen) {
    r.fail("BAD_FIELD", `PAGES data_offset ${dataOffset} lies inside FIXED + bitmap (${fixed + bitmapLen} bytes)`, PAGES.dataOffset, "G3");
  }
  if (dataOffset + storedSize !== payload.length) {
    r.fail("BAD_FIELD", `PAGES data_offset ${dataOffset} + stored_size ${storedSize} is not the payload length ${payload.length}`, PAGES.dataOffset, "G4");
  }
  r.pos = fixed;
  const bitmap = r.bytesView(bitmapLen, "bitmap");
  let set = 0;
  for (let i = 0; i < bitmap.length; i++) set += popcount8(bitmap[i]);
  const tailBits = spanPages & 7;
  if (tailBits && bitmap[bitmapLen - 1] >> tailBits) r.fail("BAD_FIELD", "PAGES bitmap has bits past span_pages", fixed + bitmapLen - 1, "G2");
  if (set !== storedPages || storedPages === 0) r.fail("BAD_FIELD", `PAGES stored_pages ${storedPages} but bitmap has ${set} pages`, PAGES.storedPages, "G2");
  if (pageSize !== undefined) {
    if (dataOffset - fixed - bitmapLen >= pageSize) {
      r.fail("BAD_FIELD", `PAGES padding of ${dataOffset - fixed - bitmapLen} bytes before DATA is not shorter than a page`, PAGES.dataOffset, "G3");
    }
    const rawSize = storedPages * pageSize;
    if (rawSize > MAX_CHUNK_RAW) r.fail("CHUNK_TOO_LARGE", `PAGES raw size ${rawSize} exceeds 64 MiB`, PAGES.storedPages, "G5");
    if (codec === 0 ? storedSize !== rawSize : storedSize > rawSize) {
      r.fail("BAD_FIELD", `PAGES stored_size ${storedSize} ${codec === 0 ? "is not" : "exceeds"} the raw size ${rawSize}`, PAGES.storedSize, "G6");
    }
  }
  for (let i = fixed + bitmapLen; i < dataOffset; i++) {
    if (payload[i] !== 0) r.fail("BAD_FIELD", "PAGES padding before DATA is not zero", i, "G3");
  }
  return {
    areaId: r.u32At(PAGES.areaId),
    firstPage: r.u64At(PAGES.firstPage),
    spanPages,
    storedPages,
    codec,
    storedSize,
    rawCrc: r.u32At(PAGES.rawCrc),
    dataOffset,
    bitmap,
  };
}

export function decodeMappedFile(payload: Uint8Array, base: number, where: ImageErrorWhere): MappedFileRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(FIXED_SIZE.MAPPED_FILE, "MAPPED_FILE");
  const flags = r.u32At(MFILE.flags);
  const sha = payload.slice(MFILE.sha256, MFILE.sha256 + 32);
  r.pos = fixed;
  const path = r.str("path");
  const buildId = r.strBytes("build_id");
  return {
    id: r.u32At(MFILE.fileId),
    devMajor: r.u32At(MFILE.devMajor),
    devMinor: r.u32At(MFILE.devMinor),
    inode: r.u64At(MFILE.inode),
    size: r.u64At(MFILE.size),
    mtimeNs: r.u64At(MFILE.mtimeNs),
    mode: r.u32At(MFILE.mode),
    flags,
    sha256: flags & MFILE_SHA256 ? sha : undefined,
    path,
    buildId: flags & MFILE_BUILD_ID || buildId.length ? buildId.slice() : undefined,
  };
}

export function decodeFd(payload: Uint8Array, base: number, where: ImageErrorWhere): FdRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(FIXED_SIZE.FD, "FD");
  const kind = r.u32At(FDR.kind);
  r.pos = fixed;
  const rec: FdRecord = {
    fd: r.u32At(FDR.fd),
    kind: FD_KINDS[kind] ?? "unknown",
    openFlags: r.u32At(FDR.openFlags),
    fdFlags: r.u32At(FDR.fdFlags),
    mode: r.u32At(FDR.mode),
    pos: r.u64At(FDR.pos),
    devMajor: r.u32At(FDR.devMajor),
    devMinor: r.u32At(FDR.devMinor),
    inode: r.u64At(FDR.inode),
    rdevMajor: r.u32At(FDR.rdevMajor),
    rdevMinor: r.u32At(FDR.rdevMinor),
    path: r.str("path"),
  };
  if (fixed >= FD_FIXED_SIZE_1_1) {
    const fileId = r.u32At(FDR.fileId), ownerId = r.u32At(FDR.ownerId), sig = r.u32At(FDR.ownerSignal);
    if (fileId) rec.fileId = fileId;
    if (ownerId) rec.owner = { type: r.u32At(FDR.ownerType), id: ownerId };
    if (sig) rec.ownerSignal = sig;
    const note = r.str("note");
    const state = r.u32At(FDR.state);
    if (state & FD_STATE_UNRESTORABLE) rec.unrestorable = note;
    else if (state & FD_STATE_PEER_OUTSIDE) rec.peerOutside = note;
  }
  return rec;
}

// ---------------------------------------------------------------------------------------
// Encoders: record → payload bytes (what the TypeScript writer emits; the C writer matches).

export function encodeProcess(p: ProcessRecord): Uint8Array {
  const w = new ByteWriter();
  w.u32(FIXED_SIZE.PROCESS).u32(p.pid).u32(p.ppid).u32(p.pgid).u32(p.sid);
  p.uid.forEach((v) => w.u32(v));
  p.gid.forEach((v) => w.u32(v));
  w.u32(p.personality).u32(p.umask ?? 0xffffffff).u32(p.threadCount).u64(p.captureNs).u64(p.startTime);
  for (const name of MM_FIELDS) w.u64(p.mm[name]);
  w.u32(p.flags).u32(0);
  return w.str(p.comm).str(p.exe).str(p.cwd).str(p.root).str(p.kernel).finish();
}

export function encodeStringList(items: readonly (string | Uint8Array)[]): Uint8Array {
  const w = new ByteWriter().u32(FIXED_SIZE.LIST).u32(items.length);
  for (const s of items) w.str(s);
  return w.finish();
}

export function encodeAuxv(entries: readonly AuxvEntry[]): Uint8Array {
  const w = new ByteWriter().u32(FIXED_SIZE.LIST).u32(entries.length);
  for (const e of entries) w.u64(e.type).u64(e.value);
  return w.finish();
}

export function encodeRlimits(entries: readonly RlimitEntry[]): Uint8Array {
  const w = new ByteWriter().u32(FIXED_SIZE.LIST).u32(entries.length);
  for (const e of entries) w.u32(e.resource).u32(0).u64(e.cur).u64(e.max);
  return w.finish();
}

export function encodeSigactions(rec: SigactionsRecord): Uint8Array {
  const w = new ByteWriter().u32(FIXED_SIZE.SIGACTIONS).u32(rec.actions.length).u64(rec.sharedPending);
  for (const a of rec.actions) w.u32(a.signo).u32(0).u64(a.handler).u64(a.flags).u64(a.restorer).u64(a.mask);
  return w.finish();
}

export function encodeRegs(regs: X86Regs): Uint8Array {
  const w = new ByteWriter();
  for (const name of X86_64_REG_NAMES) w.u64(regs[name]);
  return w.finish();
}

export function encodeThread(t: ThreadRecord): Uint8Array {
  const w = new ByteWriter();
  w.u32(FIXED_SIZE.THREAD).u32(t.tid).u32(t.flags).u32(t.state.charCodeAt(0) || 0x3f);
  w.u64(t.sigmask).u64(t.pending).u64(t.clearChildTid).u64(t.robustList).u64(t.robustListLen);
  w.u64(t.altstack.sp).u64(t.altstack.size).u32(t.altstack.flags);
  w.u32(t.regsRaw.length).u32(t.xstate.length).u32(0);
  return w.bytes(t.regsRaw).bytes(t.xstate).finish();
}

export function encodeArea(a: AreaRecord): Uint8Array {
  const kind = AREA_KINDS.indexOf(a.kind as AreaKind);
  const w = new ByteWriter();
  w.u32(FIXED_SIZE.AREA).u32(a.id).u64(a.start).u64(a.end).u64(a.fileOffset);
  w.u32(a.devMajor).u32(a.devMinor).u64(a.inode).u32(a.prot).u32(a.flags);
  w.u32(kind < 0 ? 0xffffffff : kind).u32(a.fileId ?? NO_FILE);
  return w.str(a.path).str(a.vmflags).finish();
}

export function encodeMappedFile(f: MappedFileRecord): Uint8Array {
  const w = new ByteWriter();
  let flags = f.flags & ~(MFILE_SHA256 | MFILE_BUILD_ID);
  if (f.sha256) flags |= MFILE_SHA256;
  if (f.buildId && f.buildId.length) flags |= MFILE_BUILD_ID;
  w.u32(FIXED_SIZE.MAPPED_FILE).u32(f.id).u32(f.devMajor).u32(f.devMinor).u64(f.inode).u64(f.size);
  w.u64(f.mtimeNs).u32(f.mode).u32(flags);
  if (f.sha256) w.bytes(f.sha256.subarray(0, 32)).zeros(32 - Math.min(32, f.sha256.length));
  else w.zeros(32);
  return w.str(f.path).str(f.buildId ?? new Uint8Array(0)).finish();
}

export function encodeFd(f: FdRecord): Uint8Array {
  const kind = FD_KINDS.indexOf(f.kind);
  const w = new ByteWriter();
  w.u32(FD_FIXED_SIZE_1_1).u32(f.fd).u32(kind < 0 ? 0 : kind).u32(f.openFlags).u32(f.fdFlags).u32(f.mode);
  w.u64(f.pos).u32(f.devMajor).u32(f.devMinor).u64(f.inode).u32(f.rdevMajor).u32(f.rdevMinor);
  w.u32(f.fileId ?? 0).u32(f.owner?.type ?? 0).u32(f.owner?.id ?? 0).u32(f.ownerSignal ?? 0);
  w.u32(f.unrestorable !== undefined ? FD_STATE_UNRESTORABLE : f.peerOutside !== undefined ? FD_STATE_PEER_OUTSIDE : 0).u32(0);
  return w.str(f.path).str(f.unrestorable ?? f.peerOutside ?? "").finish();
}
