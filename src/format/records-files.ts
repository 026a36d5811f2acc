/**
 * Format 1.1 records of files and terminals (docs/FORMAT.md "Files and terminals"):
 * FILE_CONTENT (0x0031), FILE_DATA (0x0032), FD_FILE (0x0033), TTY (0x0058). Field offsets are
 * in raw-files.ts; this file holds the typed model and the payload codecs.
 */
import { ByteReader, ByteWriter } from "./bytes.js";
import type { ImageErrorWhere } from "./errors.js";
import {
  CONTENT_KINDS, CONTENT_NO_OWNER, FDFILE, FILE_CONTENT, FILE_CONTENT_OWNER_FIXED, FILE_DATA, FILES_FIXED_SIZE, MAX_FILE_RUN, TTY, TTY_FLAG_NAMES, TTY_OWNER_FIXED,
  TTY_NCCS, TTY_NONE, type ContentKind, type TtyFlagName,
} from "./raw-files.js";

// ---------------------------------------------------------------------------------------
// Types

export interface FileContentRecord {
  id: number;
  kind: ContentKind | "unknown";
  /** MAPPED / WRITE_SHARED bits */
  flags: number;
  devMajor: number; devMinor: number;
  inode: bigint;
  size: bigint;
  mtimeNs: bigint;
  mode: number;
  /** memfd F_GET_SEALS bits (0 for deleted files) */
  seals: number;
  dataBytes: bigint;
  runCount: number;
  /** owner at capture (format 1.2 records of 80 bytes; absent: not recorded) */
  uid?: number;
  gid?: number;
  /** DELETED: the former path; MEMFD: the memfd name */
  path: string;
}

/** Header of one FILE_DATA run (its bytes are read on demand). */
export interface FileDataHeader {
  contentId: number;
  offset: bigint;
  length: number;
  codec: number;
  storedSize: number;
  rawCrc: number;
}

export interface FdFileRecord {
  fd: number;
  /** the FILE_CONTENT holding the file; undefined when it is on disk */
  contentId: number | undefined;
  flags: number;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export interface Termios {
  iflag: number; oflag: number; cflag: number; lflag: number;
  line: number;
  /** 19 control characters (kernel NCCS) */
  cc: Uint8Array;
  ispeed: number; ospeed: number;
}

export interface TtyRecord {
  fd: number;
  flags: number;
  /** pty number, undefined if none */
  index: number | undefined;
  sid: number;
  fgPgrp: number;
  termios: Termios;
  winsize: { rows: number; cols: number; xpixel: number; ypixel: number };
  inQueued: number;
  outQueued: number;
  /** PAIRED: lowest fd on the other side */
  peerFd: number | undefined;
  name: string;
  /** buffered bytes taken from a paired master (empty if none) */
  data: Uint8Array;
  /** PTY_SLAVE: owner and permission bits of /dev/pts/N (112-byte records; absent: not recorded) */
  uid?: number;
  gid?: number;
  mode?: number;
}

// ---------------------------------------------------------------------------------------
// Decoders

/** uid/gid of an 80-byte FILE_CONTENT; CONTENT_NO_OWNER (or a 72-byte record) leaves them out. */
function owner(r: ByteReader, fixed: number): { uid?: number; gid?: number } {
  if (fixed < FILE_CONTENT_OWNER_FIXED) return {};
  const uid = r.u32At(FILE_CONTENT.uid), gid = r.u32At(FILE_CONTENT.gid);
  return { ...(uid !== CONTENT_NO_OWNER ? { uid } : {}), ...(gid !== CONTENT_NO_OWNER ? { gid } : {}) };
}

export function decodeFileContent(payload: Uint8Array, base: number, where: ImageErrorWhere): FileContentRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(FILES_FIXED_SIZE.FILE_CONTENT, "FILE_CONTENT");
  const kind = r.u32At(FILE_CONTENT.kind);
  const id = r.u32At(FILE_CONTENT.contentId);
  if (id === 0) r.fail("BAD_FIELD", "FILE_CONTENT content_id 0 (ids start at 1)", FILE_CONTENT.contentId);
  r.pos = fixed;
  return {
    id,
    kind: CONTENT_KINDS[kind] ?? "unknown",
    flags: r.u32At(FILE_CONTENT.flags),
    devMajor: r.u32At(FILE_CONTENT.devMajor),
    devMinor: r.u32At(FILE_CONTENT.devMinor),
    inode: r.u64At(FILE_CONTENT.inode),
    size: r.u64At(FILE_CONTENT.size),
    mtimeNs: r.u64At(FILE_CONTENT.mtimeNs),
    mode: r.u32At(FILE_CONTENT.mode),
    seals: r.u32At(FILE_CONTENT.seals),
    dataBytes: r.u64At(FILE_CONTENT.dataBytes),
    runCount: r.u32At(FILE_CONTENT.runCount),
    ...owner(r, fixed),
    path: r.str("path"),
  };
}

/** The FIXED part of a FILE_DATA payload; checks that DATA fills the rest exactly. */
export function decodeFileDataHeader(payload: Uint8Array, base: number, where: ImageErrorWhere): FileDataHeader & { dataOffset: number } {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(FILES_FIXED_SIZE.FILE_DATA, "FILE_DATA");
  const h = {
    contentId: r.u32At(FILE_DATA.contentId),
    offset: r.u64At(FILE_DATA.offset),
    length: r.u32At(FILE_DATA.length),
    codec: payload[FILE_DATA.codec],
    storedSize: r.u32At(FILE_DATA.storedSize),
    rawCrc: r.u32At(FILE_DATA.rawCrc),
    dataOffset: fixed,
  };
  if (h.length < 1 || h.length > MAX_FILE_RUN) r.fail("BAD_FIELD", `FILE_DATA length ${h.length} outside [1, ${MAX_FILE_RUN}]`, FILE_DATA.length);
  if (fixed + h.storedSize !== payload.length) {
    r.fail("BAD_FIELD", `FILE_DATA stored_size ${h.storedSize} + fixed_size ${fixed} != payload length ${payload.length}`, FILE_DATA.storedSize);
  }
  return h;
}

export function decodeFdFile(payload: Uint8Array, base: number, where: ImageErrorWhere): FdFileRecord {
  const r = new ByteReader(payload, base, where);
  r.fixedSize(FILES_FIXED_SIZE.FD_FILE, "FD_FILE");
  const cid = r.u32At(FDFILE.contentId);
  return {
    fd: r.u32At(FDFILE.fd),
    contentId: cid === 0 ? undefined : cid,
    flags: r.u32At(FDFILE.flags),
    size: r.u64At(FDFILE.size),
    mtimeNs: r.u64At(FDFILE.mtimeNs),
    ctimeNs: r.u64At(FDFILE.ctimeNs),
  };
}

export function decodeTty(payload: Uint8Array, base: number, where: ImageErrorWhere): TtyRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(FILES_FIXED_SIZE.TTY, "TTY");
  const u16 = (off: number) => r.view.getUint16(off, true);
  const index = r.u32At(TTY.index);
  const peer = r.u32At(TTY.peerFd);
  const dataLength = r.u32At(TTY.dataLength);
  const rec: Omit<TtyRecord, "name" | "data"> = {
    fd: r.u32At(TTY.fd),
    flags: r.u32At(TTY.flags),
    index: index === TTY_NONE ? undefined : index,
    sid: r.u32At(TTY.sid),
    fgPgrp: r.u32At(TTY.fgPgrp),
    termios: {
      iflag: r.u32At(TTY.iflag), oflag: r.u32At(TTY.oflag), cflag: r.u32At(TTY.cflag), lflag: r.u32At(TTY.lflag),
      line: payload[TTY.line],
      cc: payload.slice(TTY.cc, TTY.cc + TTY_NCCS),
      ispeed: r.u32At(TTY.ispeed), ospeed: r.u32At(TTY.ospeed),
    },
    winsize: { rows: u16(TTY.wsRow), cols: u16(TTY.wsCol), xpixel: u16(TTY.wsXpixel), ypixel: u16(TTY.wsYpixel) },
    inQueued: r.u32At(TTY.inQueued),
    outQueued: r.u32At(TTY.outQueued),
    peerFd: peer === TTY_NONE ? undefined : peer,
  };
  const own: Pick<TtyRecord, "uid" | "gid" | "mode"> = {};
  if (fixed >= TTY_OWNER_FIXED) {
    const uid = r.u32At(TTY.uid), gid = r.u32At(TTY.gid), mode = r.u32At(TTY.mode);
    if (uid !== TTY_NONE) own.uid = uid;
    if (gid !== TTY_NONE) own.gid = gid;
    if (mode !== TTY_NONE) own.mode = mode;
  }
  r.pos = fixed;
  const name = r.str("name");
  const data = r.bytesView(dataLength, "buffered data").slice();
  return { ...rec, name, data, ...own };
}

// ---------------------------------------------------------------------------------------
// Encoders

export function encodeFileContent(c: FileContentRecord): Uint8Array {
  const kind = CONTENT_KINDS.indexOf(c.kind as ContentKind);
  const w = new ByteWriter();
  w.u32(FILE_CONTENT_OWNER_FIXED).u32(c.id).u32(kind < 0 ? 0 : kind).u32(c.flags);
  w.u32(c.devMajor).u32(c.devMinor).u64(c.inode).u64(c.size).u64(c.mtimeNs).u32(c.mode).u32(c.seals);
  w.u64(c.dataBytes).u32(c.runCount).u32(0).u32(c.uid ?? CONTENT_NO_OWNER).u32(c.gid ?? CONTENT_NO_OWNER);
  return w.str(c.path).finish();
}

/** A FILE_DATA payload from its header and DATA as stored (already compressed by `codec`). */
export function encodeFileData(h: FileDataHeader, stored: Uint8Array): Uint8Array {
  const w = new ByteWriter();
  w.u32(FILES_FIXED_SIZE.FILE_DATA).u32(h.contentId).u64(h.offset).u32(h.length).u8(h.codec).zeros(3);
  w.u32(stored.length).u32(h.rawCrc).u64(0n);
  return w.bytes(stored).finish();
}

export function encodeFdFile(f: FdFileRecord): Uint8Array {
  const w = new ByteWriter();
  w.u32(FILES_FIXED_SIZE.FD_FILE).u32(f.fd).u32(f.contentId ?? 0).u32(f.flags);
  return w.u64(f.size).u64(f.mtimeNs).u64(f.ctimeNs).finish();
}

export function encodeTty(t: TtyRecord): Uint8Array {
  const w = new ByteWriter();
  const tm = t.termios;
  w.u32(TTY_OWNER_FIXED).u32(t.fd).u32(t.flags).u32(t.index ?? TTY_NONE).u32(t.sid).u32(t.fgPgrp);
  w.u32(tm.iflag).u32(tm.oflag).u32(tm.cflag).u32(tm.lflag).u8(tm.line);
  w.bytes(tm.cc.subarray(0, TTY_NCCS)).zeros(TTY_NCCS - Math.min(TTY_NCCS, tm.cc.length));
  w.u32(tm.ispeed).u32(tm.ospeed);
  w.u16(t.winsize.rows).u16(t.winsize.cols).u16(t.winsize.xpixel).u16(t.winsize.ypixel);
  w.u32(t.inQueued).u32(t.outQueued).u32(t.peerFd ?? TTY_NONE).u32(t.data.length).u32(0);
  w.u32(t.uid ?? TTY_NONE).u32(t.gid ?? TTY_NONE).u32(t.mode ?? TTY_NONE).u32(0);
  return w.str(t.name).bytes(t.data).finish();
}

// ---------------------------------------------------------------------------------------
// Summaries for people (inspect, diff)

export function ttyFlagNames(flags: number): TtyFlagName[] {
  return TTY_FLAG_NAMES.filter((_, i) => flags & (1 << i));
}

// termios bits (asm-generic/termbits.h), only those a summary names
const ICANON = 0o2, ECHO = 0o10, ISIG = 0o1, OPOST = 0o1, ICRNL = 0o400;

/** "raw" when neither ICANON nor ECHO nor ISIG is set, "cooked" when ICANON and ECHO are, else the flags. */
export function termiosMode(t: Termios): string {
  const canon = (t.lflag & ICANON) !== 0, echo = (t.lflag & ECHO) !== 0, isig = (t.lflag & ISIG) !== 0;
  if (!canon && !echo && !isig) return "raw";
  if (canon && echo && isig && t.oflag & OPOST && t.iflag & ICRNL) return "cooked";
  const parts = [canon ? "icanon" : "-icanon", echo ? "echo" : "-echo", isig ? "isig" : "-isig"];
  return parts.join(" ");
}

/** One-line summary, e.g. "/dev/pts/3 raw 24x80 controlling foreground". */
export function ttySummary(t: TtyRecord): string {
  const bits = ttyFlagNames(t.flags).map((n) => n.toLowerCase().replace("_", "-"));
  return [t.name, termiosMode(t.termios), `${t.winsize.rows}x${t.winsize.cols}`, ...bits].join(" ");
}
