/**
 * Format 1.1 records of issue 10 "fd" (types 0x0041–0x004F, docs/FORMAT.md 4.11–): the state
 * of pipes, FIFOs and sockets that the FD record alone does not hold. Each record is keyed by
 * the first fd of the open file description it describes (INDEX key32) and, for kernel objects
 * that several fds share (a pipe, a socket), carries the object id (INDEX key64, the inode),
 * so that the two ends of a pipe or a socket pair become one object again.
 *
 * Every kind decodes into one member of the `FdStateRecord` union (tag `type`); the reader
 * finds its codec in FD_STATE_CODECS, the writer in encodeFdState().
 */
import { createHash } from "node:crypto";
import { ByteReader, ByteWriter } from "./bytes.js";
import type { ImageErrorWhere } from "./errors.js";
import {
  AnonFdRecordType, anonFdFields, decodeEpoll, decodeEventfd, decodeSignalfd, decodeTimerfd, describeAnonFd, encodeAnonFd,
  type AnonFdState,
} from "./records-anon.js";

export const FdRecordType = {
  PIPE: 0x0041,
} as const;

/** PIPE (0x0041): one per pipe or FIFO, its identity, size and the bytes waiting in it. */
export interface PipeState {
  type: "pipe";
  /** first fd of the description that recorded it (INDEX key32) */
  fd: number;
  /** the pipe's inode: every FD record with this inode (kind fifo) is an end of it */
  pipeId: bigint;
  devMajor: number; devMinor: number;
  /** a named FIFO (reopened by path) rather than an anonymous pipe */
  fifo: boolean;
  /** a reading / writing end is among the recorded fds */
  hasReader: boolean;
  hasWriter: boolean;
  /** F_GETPIPE_SZ in bytes */
  pipeSize: number;
  /** the bytes waiting in the pipe, oldest first */
  data: Uint8Array;
}

export type FdStateRecord = PipeState | AnonFdState;

/** PIPE FIXED layout. */
export const PIPE_FIXED = { size: 32, flags: 4, pipeId: 8, pipeSize: 16, dataLength: 20, devMajor: 24, devMinor: 28 } as const;
export const PIPE_FIFO = 1 << 0;
export const PIPE_HAS_READER = 1 << 1;
export const PIPE_HAS_WRITER = 1 << 2;

export function decodePipe(payload: Uint8Array, base: number, where: ImageErrorWhere, fd: number): PipeState {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(PIPE_FIXED.size, "PIPE");
  const flags = r.u32At(PIPE_FIXED.flags);
  const pipeSize = r.u32At(PIPE_FIXED.pipeSize);
  const dataLength = r.u32At(PIPE_FIXED.dataLength);
  r.pos = fixed;
  if (pipeSize > 1 << 30) r.fail("BAD_FIELD", `pipe_size ${pipeSize} exceeds 1 GiB`, PIPE_FIXED.pipeSize);
  if (dataLength > Math.max(pipeSize, 65536)) r.fail("BAD_FIELD", `data_length ${dataLength} does not fit pipe_size ${pipeSize}`, PIPE_FIXED.dataLength);
  const data = r.bytesView(dataLength, "PIPE data").slice();
  return {
    type: "pipe", fd, pipeId: r.u64At(PIPE_FIXED.pipeId),
    devMajor: r.u32At(PIPE_FIXED.devMajor), devMinor: r.u32At(PIPE_FIXED.devMinor),
    fifo: (flags & PIPE_FIFO) !== 0, hasReader: (flags & PIPE_HAS_READER) !== 0, hasWriter: (flags & PIPE_HAS_WRITER) !== 0,
    pipeSize, data,
  };
}

export function encodePipe(p: PipeState): Uint8Array {
  const flags = (p.fifo ? PIPE_FIFO : 0) | (p.hasReader ? PIPE_HAS_READER : 0) | (p.hasWriter ? PIPE_HAS_WRITER : 0);
  const w = new ByteWriter();
  w.u32(PIPE_FIXED.size).u32(flags).u64(p.pipeId).u32(p.pipeSize).u32(p.data.length).u32(p.devMajor).u32(p.devMinor);
  return w.bytes(p.data).finish();
}

/** What the reader needs to decode one fd-state record type. */
export interface FdStateCodec {
  name: string;
  decode(payload: Uint8Array, base: number, where: ImageErrorWhere, key32: number, key64: bigint): FdStateRecord;
}

export const FD_STATE_CODECS: ReadonlyMap<number, FdStateCodec> = new Map<number, FdStateCodec>([
  [FdRecordType.PIPE, { name: "PIPE", decode: (p, b, w, k) => decodePipe(p, b, w, k) }],
  [AnonFdRecordType.EVENTFD, { name: "EVENTFD", decode: (p, b, w, k) => decodeEventfd(p, b, w, k) }],
  [AnonFdRecordType.TIMERFD, { name: "TIMERFD", decode: (p, b, w, k) => decodeTimerfd(p, b, w, k) }],
  [AnonFdRecordType.SIGNALFD, { name: "SIGNALFD", decode: (p, b, w, k) => decodeSignalfd(p, b, w, k) }],
  [AnonFdRecordType.EPOLL, { name: "EPOLL", decode: (p, b, w, k) => decodeEpoll(p, b, w, k) }],
]);

/** Record type, payload and index keys of one state record (what the writer emits). */
export function encodeFdState(s: FdStateRecord): { type: number; payload: Uint8Array; key32: number; key64: bigint } {
  switch (s.type) {
    case "pipe": return { type: FdRecordType.PIPE, payload: encodePipe(s), key32: s.fd, key64: s.pipeId };
    default: return encodeAnonFd(s);
  }
}

/** One line about a state record, as `ckimg inspect` shows it beside its fd. */
export function describeFdState(s: FdStateRecord): string {
  switch (s.type) {
    case "pipe": {
      const ends = s.hasReader && s.hasWriter ? "both ends" : s.hasReader ? "read end only" : s.hasWriter ? "write end only" : "no end";
      return `${s.fifo ? "fifo" : "pipe"} ${s.pipeId}: ${s.data.length} of ${s.pipeSize} bytes queued, ${ends}`;
    }
    default: return describeAnonFd(s);
  }
}

/** The kernel object a state record describes (pipe inode, socket inode). */
export function fdStateObjectId(s: FdStateRecord): bigint {
  switch (s.type) {
    case "pipe": return s.pipeId;
    default: return 0n;   // anon-inode fds share one inode: no object identity
  }
}

/**
 * The state records that describe fd `f`: those written for it (or for the first fd of its
 * open file description) and those of the object it is an end of (both ends of a pipe show it).
 */
export function fdStateOf(states: readonly FdStateRecord[], f: { fd: number; inode: bigint; kind: string }): FdStateRecord[] {
  return states.filter((s) => s.fd === f.fd || ((f.kind === "fifo" || f.kind === "socket") && fdStateObjectId(s) === f.inode));
}

/** Flat, JSON-friendly fields of a state record (bigints as decimal strings): what `inspect
 * --json` carries and what `diff` compares field by field. */
export function fdStateFields(s: FdStateRecord): Record<string, string | number | boolean> {
  switch (s.type) {
    case "pipe":
      return {
        type: s.fifo ? "fifo" : "pipe", object: s.pipeId.toString(), pipeSize: s.pipeSize, queuedBytes: s.data.length,
        reader: s.hasReader, writer: s.hasWriter,
        // a short look at what waits, to tell two captures apart without a hex dump
        queuedSha256: s.data.length ? sha256Hex(s.data) : "",
      };
    default: return anonFdFields(s);
  }
}

function sha256Hex(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex").slice(0, 16);
}
