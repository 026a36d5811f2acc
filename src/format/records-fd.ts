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
  AnonFdRecordType, anonFdFields, decodeEpoll, decodeEventfd, decodeInotify, decodeSignalfd, decodeTimerfd, describeAnonFd, encodeAnonFd,
  type AnonFdState,
} from "./records-anon.js";

export const FdRecordType = {
  PIPE: 0x0041,
  UNIX_SOCKET: 0x0042,
  INET_SOCKET: 0x0043,
  TCP_STREAM: 0x0044,
  FILE_LOCK: 0x0045,
  UNIX_FILES: 0x0046,
  UDP_QUEUE: 0x0047,
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

/** UNIX_SOCKET (0x0042): one per unix socket. */
export interface UnixSocketState {
  type: "unix";
  fd: number;
  /** the socket's inode (object id) */
  inode: bigint;
  socketType: "stream" | "dgram" | "seqpacket";
  /** kernel state: 1 connected, 7 unconnected, 10 listening */
  state: number;
  /** peer socket's inode, 0n when none */
  peerInode: bigint;
  /** the peer is one of the recorded sockets (a pair inside the process) */
  peerInside: boolean;
  shutRd: boolean; shutWr: boolean; passcred: boolean;
  backlog: number;
  sndbuf: number; rcvbuf: number;
  /** listening: connections waiting for accept() (those of other processes' clients are not brought back) */
  pending: number;
  /** listening: of those, connections whose client was closed (made and closed again on restore); absent: 0 */
  pendingClosed?: number;
  /** connected to a listening socket of ours that had not accepted the connection yet (peerName: its name) */
  inBacklog?: boolean;
  /** SO_PASSSEC (absent: off) */
  passsec?: boolean;
  /** bound to a path whose socket file was removed (or replaced) before the capture: restore binds and unlinks it */
  nameGone?: boolean;
  /** bound to a path: the socket file's mode and owner (1.2 records of 80 bytes; absent: not recorded) */
  socketFile?: { mode: number; uid: number; gid: number };
  /** SO_PEERCRED: the peer's pid (a pair: the process that made it) and ids (96-byte records; absent: not recorded) */
  peerCred?: { pid: number; uid: number; gid: number };
  /** bound name (sun_path bytes; an abstract name begins with NUL), empty if unbound */
  name: Uint8Array;
  /** the peer's name when the peer is outside the image */
  peerName: Uint8Array;
  /** the receive queue, oldest message first */
  queue: Uint8Array[];
  /** (1.2, datagram sockets) each queued message's sender name, empty: unbound sender; absent: not recorded */
  senders?: Uint8Array[];
}

/** INET_SOCKET (0x0043): an IPv4/IPv6 TCP or UDP socket. */
export interface InetSocketState {
  type: "inet";
  fd: number;
  inode: bigint;
  family: "ipv4" | "ipv6";
  protocol: "tcp" | "udp";
  /** TCP state number (1 established, 7 closed, 10 listening); UDP: 1 connected, 7 not */
  state: number;
  /** addresses as text ("127.0.0.1", "::1"), ports in host order */
  localAddress: string; localPort: number;
  peerAddress: string; peerPort: number;
  reuseAddr: boolean; reusePort: boolean; keepAlive: boolean; noDelay: boolean; v6Only: boolean; broadcast: boolean;
  /** SO_LINGER seconds, undefined when off */
  linger: number | undefined;
  backlog: number; sndbuf: number; rcvbuf: number;
  keepIdle: number; keepIntvl: number; keepCnt: number;
  /** SO_PRIORITY, SO_RCVLOWAT, SO_MARK, SO_DONTROUTE, SO_NO_CHECK, SO_OOBINLINE (112-byte
   * records; absent: not recorded or the default) */
  priority?: number; rcvLowat?: number; mark?: number;
  dontRoute?: boolean; noCheck?: boolean; oobInline?: boolean;
  /** SO_BINDTODEVICE interface name (128-byte records; absent: not bound to a device) */
  boundDevice?: string;
  /** shutdown(2) for reading / writing (UDP; absent: not shut down) */
  shutRd?: boolean; shutWr?: boolean;
}

/** TCP_STREAM (0x0044): an established TCP connection's repair state. */
export interface TcpStreamState {
  type: "tcp";
  fd: number;
  inode: bigint;
  timestamps: boolean; sack: boolean; wscale: boolean;
  /** write_seq and rcv_nxt at capture (after the recorded queues) */
  sndSeq: number; rcvSeq: number;
  mss: number; sndWscale: number; rcvWscale: number; timestamp: number;
  sndWl1: number; sndWnd: number; maxWindow: number; rcvWnd: number; rcvWup: number;
  /** bytes written, not yet acknowledged by the peer (the last `unsent` of them not even sent) */
  outq: Uint8Array;
  unsent: number;
  /** bytes received, not yet read by the program */
  inq: Uint8Array;
}

/** FILE_LOCK (0x0045): a lock or lease the process holds on the file of fd `fd`. */
export interface FileLockState {
  type: "lock";
  fd: number;
  /** the locked file's inode */
  inode: bigint;
  kind: "flock" | "posix" | "ofd" | "lease";
  write: boolean;
  start: bigint;
  /** last byte (inclusive); undefined: to the end of the file */
  end: bigint | undefined;
}

/** One file passed (SCM_RIGHTS) in a queued message of a unix socket. */
export interface PassedFile {
  /** index of the message in the socket's queue (UnixSocketState.queue) */
  message: number;
  /** "fd": the same open file description as fd `fd` of the process; "file": a regular file
   * reopened by `path` at `pos`; "pipe": a new description on an end of pipe `inode` */
  kind: "fd" | "file" | "pipe";
  fd: number;
  openFlags: number;
  pos: bigint;
  inode: bigint;
  devMajor: number; devMinor: number;
  /** "file": the path reopened; else the fd link at capture, for people */
  path: string;
}

/** UNIX_FILES (0x0046): the files in flight in one unix socket's receive queue. */
export interface UnixFilesState {
  type: "scm";
  /** first fd of the socket (INDEX key32) */
  fd: number;
  /** the socket's inode */
  inode: bigint;
  /** in queue order */
  files: PassedFile[];
}

/** One datagram waiting in a UDP socket. */
export interface UdpDatagram {
  /** source address as text ("127.0.0.1", "::1"), port in host order */
  family: "ipv4" | "ipv6";
  address: string;
  port: number;
  data: Uint8Array;
}

/** UDP_QUEUE (0x0047): the datagrams waiting in a UDP socket's receive queue, oldest first. */
export interface UdpQueueState {
  type: "udpq";
  fd: number;
  /** the socket's inode (its INET_SOCKET record) */
  inode: bigint;
  datagrams: UdpDatagram[];
}

export type FdStateRecord = PipeState | UnixSocketState | InetSocketState | TcpStreamState | FileLockState | UnixFilesState | UdpQueueState | AnonFdState;

export const UDP_QUEUE_FIXED = { size: 24, count: 4, inode: 8, entrySize: 16 } as const;
export const UDP_DATAGRAM_SIZE = 28;

export function decodeUdpQueue(payload: Uint8Array, base: number, where: ImageErrorWhere, fd: number, key64: bigint): UdpQueueState {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(UDP_QUEUE_FIXED.size, "UDP_QUEUE");
  const count = r.u32At(UDP_QUEUE_FIXED.count);
  const inode = r.u64At(UDP_QUEUE_FIXED.inode);
  const entrySize = r.u32At(UDP_QUEUE_FIXED.entrySize);
  if (inode !== key64) r.fail("BAD_FIELD", `inode ${inode} differs from the index key ${key64}`, UDP_QUEUE_FIXED.inode);
  if (entrySize < UDP_DATAGRAM_SIZE || entrySize > 4096) r.fail("BAD_FIELD", `entry_size ${entrySize}`, UDP_QUEUE_FIXED.entrySize);
  r.pos = fixed;
  if (count === 0 || count * entrySize > r.remaining) r.fail("BAD_FIELD", `count ${count} does not fit the payload`, UDP_QUEUE_FIXED.count);
  const datagrams: UdpDatagram[] = [];
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    r.bytesView(entrySize, `UDP_QUEUE datagram ${i}`);
    const v = new DataView(payload.buffer, payload.byteOffset + at, entrySize);
    const fam = v.getUint32(0, true), length = v.getUint32(24, true);
    if (fam !== 2 && fam !== 10) r.fail("BAD_FIELD", `datagram ${i}: source family ${fam}`, at);
    if (length > 65535) r.fail("BAD_FIELD", `datagram ${i}: length ${length}`, at + 24);
    const family = fam === 2 ? "ipv4" : "ipv6";
    datagrams.push({
      family, address: addrText(payload.subarray(at + 4, at + 20), family), port: v.getUint16(20, true),
      data: r.bytesView(length, `UDP_QUEUE datagram ${i} data`).slice(),
    });
  }
  if (r.remaining) r.fail("BAD_FIELD", `${r.remaining} bytes after the last datagram`);
  return { type: "udpq", fd, inode, datagrams };
}

export function encodeUdpQueue(s: UdpQueueState): Uint8Array {
  const w = new ByteWriter();
  w.u32(UDP_QUEUE_FIXED.size).u32(s.datagrams.length).u64(s.inode).u32(UDP_DATAGRAM_SIZE).u32(0);
  for (const d of s.datagrams) {
    w.u32(d.family === "ipv4" ? 2 : 10).bytes(addrBytes(d.address, d.family)).u16(d.port).u16(0).u32(d.data.length).bytes(d.data);
  }
  return w.finish();
}

export const UNIX_FILES_FIXED = { size: 24, count: 4, inode: 8, entrySize: 16 } as const;
/** size of a UNIX_FILES entry FIXED part as written (readers accept larger ones) */
export const UNIX_FILE_ENTRY_SIZE = 40;
const PASSED_KINDS = ["", "fd", "file", "pipe"] as const;

export function decodeUnixFiles(payload: Uint8Array, base: number, where: ImageErrorWhere, fd: number, key64: bigint): UnixFilesState {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(UNIX_FILES_FIXED.size, "UNIX_FILES");
  const count = r.u32At(UNIX_FILES_FIXED.count);
  const inode = r.u64At(UNIX_FILES_FIXED.inode);
  const entrySize = r.u32At(UNIX_FILES_FIXED.entrySize);
  if (inode !== key64) r.fail("BAD_FIELD", `inode ${inode} differs from the index key ${key64}`, UNIX_FILES_FIXED.inode);
  if (entrySize < UNIX_FILE_ENTRY_SIZE || entrySize > 4096) r.fail("BAD_FIELD", `entry_size ${entrySize}`, UNIX_FILES_FIXED.entrySize);
  r.pos = fixed;
  if (count === 0 || count * (entrySize + 4) > r.remaining) r.fail("BAD_FIELD", `count ${count} does not fit the payload`, UNIX_FILES_FIXED.count);
  const files: PassedFile[] = [];
  let last = 0;
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    r.bytesView(entrySize, `UNIX_FILES entry ${i}`);
    const v = new DataView(payload.buffer, payload.byteOffset + at, entrySize);
    const message = v.getUint32(0, true), k = v.getUint32(4, true);
    if (k < 1 || k > 3) r.fail("BAD_FIELD", `entry ${i}: kind ${k}`, at + 4);
    if (message < last) r.fail("BAD_FIELD", `entry ${i}: message ${message} after message ${last}`, at);
    last = message;
    const path = r.str(`UNIX_FILES entry ${i} path`);
    if (k === 2 && !path.startsWith("/")) r.fail("BAD_FIELD", `entry ${i}: a passed file needs an absolute path`, at);
    files.push({
      message, kind: PASSED_KINDS[k] as PassedFile["kind"], fd: v.getUint32(8, true), openFlags: v.getUint32(12, true),
      pos: v.getBigUint64(16, true), inode: v.getBigUint64(24, true), devMajor: v.getUint32(32, true), devMinor: v.getUint32(36, true),
      path,
    });
  }
  if (r.remaining) r.fail("BAD_FIELD", `${r.remaining} bytes after the last entry`);
  return { type: "scm", fd, inode, files };
}

export function encodeUnixFiles(s: UnixFilesState): Uint8Array {
  const w = new ByteWriter();
  w.u32(UNIX_FILES_FIXED.size).u32(s.files.length).u64(s.inode).u32(UNIX_FILE_ENTRY_SIZE).u32(0);
  for (const f of s.files) {
    w.u32(f.message).u32(PASSED_KINDS.indexOf(f.kind)).u32(f.fd).u32(f.openFlags).u64(f.pos).u64(f.inode);
    w.u32(f.devMajor).u32(f.devMinor).str(f.path);
  }
  return w.finish();
}

function passedText(f: PassedFile): string {
  switch (f.kind) {
    case "fd": return `fd ${f.fd}`;
    case "file": return `${f.path} at ${f.pos}`;
    default: return `pipe ${f.inode} ${(f.openFlags & 3) === 1 ? "write" : "read"} end`;
  }
}

const LOCK_KINDS = ["", "flock", "posix", "ofd", "lease"] as const;
const LOCK_EOF = (1n << 64n) - 1n;

export function decodeFileLock(payload: Uint8Array, base: number, where: ImageErrorWhere, fd: number, inode: bigint): FileLockState {
  const r = new ByteReader(payload, base, where);
  r.fixedSize(32, "FILE_LOCK");
  const k = r.u32At(4), t = r.u32At(8);
  if (k < 1 || k > 4) r.fail("BAD_FIELD", `lock kind ${k}`, 4);
  if (t > 1) r.fail("BAD_FIELD", `lock type ${t}`, 8);
  const start = r.u64At(16), end = r.u64At(24);
  if (start > end) r.fail("BAD_FIELD", `lock range ${start}-${end}`, 16);
  return { type: "lock", fd, inode, kind: LOCK_KINDS[k] as FileLockState["kind"], write: t === 1, start, end: end === LOCK_EOF ? undefined : end };
}

export function encodeFileLock(l: FileLockState): Uint8Array {
  const w = new ByteWriter();
  w.u32(32).u32(LOCK_KINDS.indexOf(l.kind)).u32(l.write ? 1 : 0).u32(0).u64(l.start).u64(l.end ?? LOCK_EOF);
  return w.finish();
}

export const UNIX_FIXED = {
  size: 64, type: 4, state: 8, flags: 12, inode: 16, peerInode: 24, backlog: 32, sndbuf: 36, rcvbuf: 40,
  queueCount: 44, pending: 48, pendingClosed: 52, queueBytes: 56, fileMode: 64, fileUid: 68, fileGid: 72,
  peerPid: 80, peerUid: 84, peerGid: 88,
} as const;
/** UNIX_SOCKET FIXED with the socket file fields (readers accept 64) */
const UNIX_FIXED_FILE = 80;
/** UNIX_SOCKET FIXED as written since the peer credentials (readers accept 64 and 80) */
export const UNIX_FIXED_SIZE = 96;
export const UNIX_PEER_INSIDE = 1 << 0;
export const UNIX_SHUT_RD = 1 << 1;
export const UNIX_SHUT_WR = 1 << 2;
export const UNIX_PASSCRED = 1 << 3;
export const UNIX_IN_BACKLOG = 1 << 5;
export const UNIX_PASSSEC = 1 << 6;
export const UNIX_SENDERS = 1 << 7;
export const UNIX_NAME_GONE = 1 << 8;
const SOCK_TYPES: Record<number, UnixSocketState["socketType"]> = { 1: "stream", 2: "dgram", 5: "seqpacket" };
const SOCK_TYPE_CODES = { stream: 1, dgram: 2, seqpacket: 5 } as const;
/** sun_path holds 108 bytes */
const UNIX_NAME_MAX = 108;

export function decodeUnixSocket(payload: Uint8Array, base: number, where: ImageErrorWhere, fd: number): UnixSocketState {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(UNIX_FIXED.size, "UNIX_SOCKET");
  const typeCode = r.u32At(UNIX_FIXED.type);
  const socketType = SOCK_TYPES[typeCode];
  if (!socketType) r.fail("BAD_FIELD", `socket type ${typeCode}`, UNIX_FIXED.type);
  const flags = r.u32At(UNIX_FIXED.flags);
  const count = r.u32At(UNIX_FIXED.queueCount);
  const queueBytes = r.u64At(UNIX_FIXED.queueBytes);
  r.pos = fixed;
  const name = r.strBytes("name").slice();
  if (name.length > UNIX_NAME_MAX) r.fail("BAD_FIELD", `name of ${name.length} bytes exceeds sun_path`);
  const peerName = r.strBytes("peer_name").slice();
  if (peerName.length > UNIX_NAME_MAX) r.fail("BAD_FIELD", `peer_name of ${peerName.length} bytes exceeds sun_path`);
  // every message needs at least its 4-byte length: a count beyond that is refused before any loop
  if (count * 4 > r.remaining) r.fail("BAD_FIELD", `queue_count ${count} exceeds the payload`, UNIX_FIXED.queueCount);
  const queue: Uint8Array[] = [];
  let total = 0n;
  for (let i = 0; i < count; i++) {
    const m = r.strBytes(`queue message ${i}`).slice();
    total += BigInt(m.length);
    queue.push(m);
  }
  if (total !== queueBytes) r.fail("BAD_FIELD", `queue holds ${total} bytes, queue_bytes says ${queueBytes}`, UNIX_FIXED.queueBytes);
  let senders: Uint8Array[] | undefined;
  if (flags & UNIX_SENDERS) {
    if (count * 4 > r.remaining) r.fail("BAD_FIELD", `senders of ${count} messages exceed the payload`, UNIX_FIXED.queueCount);
    senders = [];
    for (let i = 0; i < count; i++) {
      const n = r.strBytes(`sender of message ${i}`).slice();
      if (n.length > UNIX_NAME_MAX) r.fail("BAD_FIELD", `sender of message ${i}: ${n.length} bytes exceed sun_path`);
      senders.push(n);
    }
  }
  const pendingClosed = r.u32At(UNIX_FIXED.pendingClosed);
  if (pendingClosed > r.u32At(UNIX_FIXED.pending)) r.fail("BAD_FIELD", `pending_closed ${pendingClosed} exceeds pending`, UNIX_FIXED.pendingClosed);
  const fileMode = fixed >= UNIX_FIXED_FILE ? r.u32At(UNIX_FIXED.fileMode) : 0;
  const peerPid = fixed >= UNIX_FIXED_SIZE ? r.u32At(UNIX_FIXED.peerPid) : 0;
  return {
    ...(pendingClosed ? { pendingClosed } : {}),
    ...(flags & UNIX_IN_BACKLOG ? { inBacklog: true } : {}),
    ...(flags & UNIX_PASSSEC ? { passsec: true } : {}),
    ...(flags & UNIX_NAME_GONE ? { nameGone: true } : {}),
    ...(senders ? { senders } : {}),
    ...(fileMode ? { socketFile: { mode: fileMode, uid: r.u32At(UNIX_FIXED.fileUid), gid: r.u32At(UNIX_FIXED.fileGid) } } : {}),
    ...(peerPid ? { peerCred: { pid: peerPid, uid: r.u32At(UNIX_FIXED.peerUid), gid: r.u32At(UNIX_FIXED.peerGid) } } : {}),
    type: "unix", fd, inode: r.u64At(UNIX_FIXED.inode), socketType, state: r.u32At(UNIX_FIXED.state),
    peerInode: r.u64At(UNIX_FIXED.peerInode), peerInside: (flags & UNIX_PEER_INSIDE) !== 0,
    shutRd: (flags & UNIX_SHUT_RD) !== 0, shutWr: (flags & UNIX_SHUT_WR) !== 0, passcred: (flags & UNIX_PASSCRED) !== 0,
    backlog: r.u32At(UNIX_FIXED.backlog), sndbuf: r.u32At(UNIX_FIXED.sndbuf), rcvbuf: r.u32At(UNIX_FIXED.rcvbuf),
    pending: r.u32At(UNIX_FIXED.pending), name, peerName, queue,
  };
}

export function encodeUnixSocket(u: UnixSocketState): Uint8Array {
  const flags = (u.peerInside ? UNIX_PEER_INSIDE : 0) | (u.shutRd ? UNIX_SHUT_RD : 0) | (u.shutWr ? UNIX_SHUT_WR : 0) |
    (u.passcred ? UNIX_PASSCRED : 0) | (u.inBacklog ? UNIX_IN_BACKLOG : 0) | (u.passsec ? UNIX_PASSSEC : 0) |
    (u.senders ? UNIX_SENDERS : 0) | (u.nameGone ? UNIX_NAME_GONE : 0);
  if (u.senders && u.senders.length !== u.queue.length) throw new RangeError(`${u.senders.length} senders for ${u.queue.length} messages`);
  const bytes = u.queue.reduce((n, m) => n + m.length, 0);
  const w = new ByteWriter();
  w.u32(UNIX_FIXED_SIZE).u32(SOCK_TYPE_CODES[u.socketType]).u32(u.state).u32(flags).u64(u.inode).u64(u.peerInode);
  w.u32(u.backlog).u32(u.sndbuf).u32(u.rcvbuf).u32(u.queue.length).u32(u.pending).u32(u.pendingClosed ?? 0).u64(bytes);
  w.u32(u.socketFile?.mode ?? 0).u32(u.socketFile?.uid ?? 0).u32(u.socketFile?.gid ?? 0).u32(0);
  w.u32(u.peerCred?.pid ?? 0).u32(u.peerCred?.uid ?? 0).u32(u.peerCred?.gid ?? 0).u32(0);
  w.str(u.name).str(u.peerName);
  for (const m of u.queue) w.str(m);
  for (const n of u.senders ?? []) w.str(n);
  return w.finish();
}

export const INET_FIXED = {
  size: 96, family: 4, type: 8, protocol: 12, state: 16, flags: 20, inode: 24, localAddr: 32, peerAddr: 48,
  localPort: 64, peerPort: 66, backlog: 68, sndbuf: 72, rcvbuf: 76, linger: 80, keepidle: 84, keepintvl: 88, keepcnt: 92,
  priority: 96, rcvlowat: 100, mark: 104, moreFlags: 108, boundDev: 112,
} as const;
/** INET_SOCKET FIXED with the option fields (from 112 on) */
const INET_FIXED_OPTIONS = 112;
/** INET_SOCKET FIXED as written since bound_dev (readers accept 96 and 112) */
export const INET_FIXED_SIZE = 128;
const IFNAMSIZ = 16;
const INET_MORE_FLAGS = ["dontRoute", "noCheck", "oobInline"] as const;
const INET_FLAGS = ["reuseAddr", "reusePort", "keepAlive", "noDelay", "v6Only", "broadcast"] as const;
const INET_LINGER = 1 << 6;
const INET_SHUT_RD = 1 << 7;
const INET_SHUT_WR = 1 << 8;

export function addrText(b: Uint8Array, family: "ipv4" | "ipv6"): string {
  if (family === "ipv4") return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  // the longest run of zero groups becomes "::" (RFC 5952)
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

function addrBytes(text: string, family: "ipv4" | "ipv6"): Uint8Array {
  const out = new Uint8Array(16);
  if (family === "ipv4") {
    text.split(".").forEach((p, i) => (out[i] = Number(p) & 255));
    return out;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const h = head ? head.split(":") : [];
  const t = tail !== undefined && tail !== "" ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  groups.forEach((g, i) => { const v = parseInt(g, 16); out[2 * i] = v >> 8; out[2 * i + 1] = v & 255; });
  return out;
}

export function decodeInetSocket(payload: Uint8Array, base: number, where: ImageErrorWhere, fd: number): InetSocketState {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(INET_FIXED.size, "INET_SOCKET");
  const fam = r.u32At(INET_FIXED.family);
  if (fam !== 2 && fam !== 10) r.fail("BAD_FIELD", `family ${fam}`, INET_FIXED.family);
  const proto = r.u32At(INET_FIXED.protocol);
  if (proto !== 6 && proto !== 17) r.fail("BAD_FIELD", `protocol ${proto}`, INET_FIXED.protocol);
  const family = fam === 2 ? "ipv4" : "ipv6";
  const flags = r.u32At(INET_FIXED.flags);
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const rec: InetSocketState = {
    type: "inet", fd, inode: r.u64At(INET_FIXED.inode), family, protocol: proto === 6 ? "tcp" : "udp",
    state: r.u32At(INET_FIXED.state),
    localAddress: addrText(payload.subarray(INET_FIXED.localAddr, INET_FIXED.localAddr + 16), family),
    localPort: v.getUint16(INET_FIXED.localPort, true),
    peerAddress: addrText(payload.subarray(INET_FIXED.peerAddr, INET_FIXED.peerAddr + 16), family),
    peerPort: v.getUint16(INET_FIXED.peerPort, true),
    reuseAddr: false, reusePort: false, keepAlive: false, noDelay: false, v6Only: false, broadcast: false,
    linger: flags & INET_LINGER ? r.u32At(INET_FIXED.linger) : undefined,
    backlog: r.u32At(INET_FIXED.backlog), sndbuf: r.u32At(INET_FIXED.sndbuf), rcvbuf: r.u32At(INET_FIXED.rcvbuf),
    keepIdle: r.u32At(INET_FIXED.keepidle), keepIntvl: r.u32At(INET_FIXED.keepintvl), keepCnt: r.u32At(INET_FIXED.keepcnt),
  };
  INET_FLAGS.forEach((k, i) => (rec[k] = (flags & (1 << i)) !== 0));
  if (flags & INET_SHUT_RD) rec.shutRd = true;
  if (flags & INET_SHUT_WR) rec.shutWr = true;
  if (fixed >= INET_FIXED_SIZE) {
    const dev = payload.subarray(INET_FIXED.boundDev, INET_FIXED.boundDev + IFNAMSIZ);
    const end = dev.indexOf(0);
    if (end < 0) r.fail("BAD_FIELD", "bound_dev is not NUL-terminated", INET_FIXED.boundDev);
    if (end > 0) rec.boundDevice = Buffer.from(dev.subarray(0, end)).toString("latin1");
  }
  if (fixed >= INET_FIXED_OPTIONS) {
    const priority = r.u32At(INET_FIXED.priority), rcvLowat = r.u32At(INET_FIXED.rcvlowat), mark = r.u32At(INET_FIXED.mark);
    const more = r.u32At(INET_FIXED.moreFlags);
    if (priority) rec.priority = priority;
    if (rcvLowat) rec.rcvLowat = rcvLowat;
    if (mark) rec.mark = mark;
    INET_MORE_FLAGS.forEach((k, i) => { if (more & (1 << i)) rec[k] = true; });
  }
  return rec;
}

export function encodeInetSocket(s: InetSocketState): Uint8Array {
  let flags = (s.linger !== undefined ? INET_LINGER : 0) | (s.shutRd ? INET_SHUT_RD : 0) | (s.shutWr ? INET_SHUT_WR : 0);
  INET_FLAGS.forEach((k, i) => { if (s[k]) flags |= 1 << i; });
  const w = new ByteWriter();
  w.u32(INET_FIXED_SIZE).u32(s.family === "ipv4" ? 2 : 10).u32(s.protocol === "tcp" ? 1 : 2).u32(s.protocol === "tcp" ? 6 : 17);
  w.u32(s.state).u32(flags).u64(s.inode).bytes(addrBytes(s.localAddress, s.family)).bytes(addrBytes(s.peerAddress, s.family));
  w.u16(s.localPort).u16(s.peerPort).u32(s.backlog).u32(s.sndbuf).u32(s.rcvbuf).u32(s.linger ?? 0);
  w.u32(s.keepIdle).u32(s.keepIntvl).u32(s.keepCnt);
  let more = 0;
  INET_MORE_FLAGS.forEach((k, i) => { if (s[k]) more |= 1 << i; });
  w.u32(s.priority ?? 0).u32(s.rcvLowat ?? 0).u32(s.mark ?? 0).u32(more);
  const dev = new Uint8Array(IFNAMSIZ);
  const name = Buffer.from(s.boundDevice ?? "", "latin1");
  if (name.length >= IFNAMSIZ || name.includes(0)) throw new RangeError(`bound device name "${s.boundDevice}" does not fit IFNAMSIZ`);
  dev.set(name);
  w.bytes(dev);
  return w.finish();
}

export const TCP_FIXED = {
  size: 64, options: 4, sndSeq: 8, rcvSeq: 12, mss: 16, sndWscale: 20, rcvWscale: 24, timestamp: 28,
  sndWl1: 32, sndWnd: 36, maxWindow: 40, rcvWnd: 44, rcvWup: 48, inqLen: 52, outqLen: 56, unsentLen: 60,
} as const;
const TCP_MAX_QUEUE = 64 * 1024 * 1024;

export function decodeTcpStream(payload: Uint8Array, base: number, where: ImageErrorWhere, fd: number, inode: bigint): TcpStreamState {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(TCP_FIXED.size, "TCP_STREAM");
  const inqLen = r.u32At(TCP_FIXED.inqLen), outqLen = r.u32At(TCP_FIXED.outqLen), unsent = r.u32At(TCP_FIXED.unsentLen);
  if (inqLen > TCP_MAX_QUEUE || outqLen > TCP_MAX_QUEUE) r.fail("BAD_FIELD", `queues of ${outqLen} + ${inqLen} bytes exceed 64 MiB`, TCP_FIXED.inqLen);
  if (unsent > outqLen) r.fail("BAD_FIELD", `unsent_len ${unsent} exceeds outq_len ${outqLen}`, TCP_FIXED.unsentLen);
  const o = r.u32At(TCP_FIXED.options);
  r.pos = fixed;
  const outq = r.bytesView(outqLen, "TCP_STREAM send queue").slice();
  const inq = r.bytesView(inqLen, "TCP_STREAM receive queue").slice();
  return {
    type: "tcp", fd, inode, timestamps: (o & 1) !== 0, sack: (o & 2) !== 0, wscale: (o & 4) !== 0,
    sndSeq: r.u32At(TCP_FIXED.sndSeq), rcvSeq: r.u32At(TCP_FIXED.rcvSeq), mss: r.u32At(TCP_FIXED.mss),
    sndWscale: r.u32At(TCP_FIXED.sndWscale), rcvWscale: r.u32At(TCP_FIXED.rcvWscale), timestamp: r.u32At(TCP_FIXED.timestamp),
    sndWl1: r.u32At(TCP_FIXED.sndWl1), sndWnd: r.u32At(TCP_FIXED.sndWnd), maxWindow: r.u32At(TCP_FIXED.maxWindow),
    rcvWnd: r.u32At(TCP_FIXED.rcvWnd), rcvWup: r.u32At(TCP_FIXED.rcvWup), outq, unsent, inq,
  };
}

export function encodeTcpStream(t: TcpStreamState): Uint8Array {
  const w = new ByteWriter();
  w.u32(TCP_FIXED.size).u32((t.timestamps ? 1 : 0) | (t.sack ? 2 : 0) | (t.wscale ? 4 : 0)).u32(t.sndSeq).u32(t.rcvSeq);
  w.u32(t.mss).u32(t.sndWscale).u32(t.rcvWscale).u32(t.timestamp).u32(t.sndWl1).u32(t.sndWnd).u32(t.maxWindow);
  w.u32(t.rcvWnd).u32(t.rcvWup).u32(t.inq.length).u32(t.outq.length).u32(t.unsent);
  return w.bytes(t.outq).bytes(t.inq).finish();
}

const TCP_STATES: Record<number, string> = {
  1: "established", 2: "syn-sent", 3: "syn-recv", 4: "fin-wait1", 5: "fin-wait2", 6: "time-wait", 7: "closed",
  8: "close-wait", 9: "last-ack", 10: "listening", 11: "closing",
};

function endpoint(addr: string, port: number, family: "ipv4" | "ipv6"): string {
  return family === "ipv6" ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** A unix socket name for people: a path, or "@name" for an abstract one. */
export function unixNameText(name: Uint8Array): string {
  if (!name.length) return "";
  const t = new TextDecoder().decode(name[0] === 0 ? name.subarray(1) : name).replace(/\0+$/, "");
  return name[0] === 0 ? `@${t}` : t;
}

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
  [FdRecordType.UNIX_SOCKET, { name: "UNIX_SOCKET", decode: (p, b, w, k) => decodeUnixSocket(p, b, w, k) }],
  [FdRecordType.INET_SOCKET, { name: "INET_SOCKET", decode: (p, b, w, k) => decodeInetSocket(p, b, w, k) }],
  [FdRecordType.TCP_STREAM, { name: "TCP_STREAM", decode: (p, b, w, k, id) => decodeTcpStream(p, b, w, k, id) }],
  [FdRecordType.FILE_LOCK, { name: "FILE_LOCK", decode: (p, b, w, k, id) => decodeFileLock(p, b, w, k, id) }],
  [FdRecordType.UNIX_FILES, { name: "UNIX_FILES", decode: (p, b, w, k, id) => decodeUnixFiles(p, b, w, k, id) }],
  [FdRecordType.UDP_QUEUE, { name: "UDP_QUEUE", decode: (p, b, w, k, id) => decodeUdpQueue(p, b, w, k, id) }],
  [AnonFdRecordType.EVENTFD, { name: "EVENTFD", decode: (p, b, w, k) => decodeEventfd(p, b, w, k) }],
  [AnonFdRecordType.TIMERFD, { name: "TIMERFD", decode: (p, b, w, k) => decodeTimerfd(p, b, w, k) }],
  [AnonFdRecordType.SIGNALFD, { name: "SIGNALFD", decode: (p, b, w, k) => decodeSignalfd(p, b, w, k) }],
  [AnonFdRecordType.EPOLL, { name: "EPOLL", decode: (p, b, w, k) => decodeEpoll(p, b, w, k) }],
  [AnonFdRecordType.INOTIFY, { name: "INOTIFY", decode: (p, b, w, k) => decodeInotify(p, b, w, k) }],
]);

/** Record type, payload and index keys of one state record (what the writer emits). */
export function encodeFdState(s: FdStateRecord): { type: number; payload: Uint8Array; key32: number; key64: bigint } {
  switch (s.type) {
    case "pipe": return { type: FdRecordType.PIPE, payload: encodePipe(s), key32: s.fd, key64: s.pipeId };
    case "unix": return { type: FdRecordType.UNIX_SOCKET, payload: encodeUnixSocket(s), key32: s.fd, key64: s.inode };
    case "inet": return { type: FdRecordType.INET_SOCKET, payload: encodeInetSocket(s), key32: s.fd, key64: s.inode };
    case "tcp": return { type: FdRecordType.TCP_STREAM, payload: encodeTcpStream(s), key32: s.fd, key64: s.inode };
    case "lock": return { type: FdRecordType.FILE_LOCK, payload: encodeFileLock(s), key32: s.fd, key64: s.inode };
    case "scm": return { type: FdRecordType.UNIX_FILES, payload: encodeUnixFiles(s), key32: s.fd, key64: s.inode };
    case "udpq": return { type: FdRecordType.UDP_QUEUE, payload: encodeUdpQueue(s), key32: s.fd, key64: s.inode };
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
    case "unix": {
      const bytes = s.queue.reduce((n, m) => n + m.length, 0);
      const name = unixNameText(s.name);
      const what = s.state === 10 ? `listening (backlog ${s.backlog}${s.pending ? `, ${s.pending} waiting${s.pendingClosed ? ` (${s.pendingClosed} closed)` : ""}` : ""})`
        : s.inBacklog ? `waiting in the backlog of ${unixNameText(s.peerName)} (ours)`
        : s.peerInode ? `peer ${s.peerInside ? `socket ${s.peerInode} (ours)` : unixNameText(s.peerName) || `socket ${s.peerInode} (another process)`}`
        : "unconnected";
      const from = s.senders?.some((n) => n.length) ? ` (from ${s.senders.map((n) => unixNameText(n) || "unnamed").join(", ")})` : "";
      return `unix ${s.socketType}${name ? ` ${name}${s.nameGone ? " (file removed)" : ""}` : ""}: ${what}, ${s.queue.length} message(s) / ${bytes} bytes queued${from}` +
        (s.shutRd || s.shutWr ? `, shut down ${[s.shutRd ? "rd" : "", s.shutWr ? "wr" : ""].filter(Boolean).join("+")}` : "");
    }
    case "inet": {
      const local = endpoint(s.localAddress, s.localPort, s.family);
      const peer = s.peerPort ? ` → ${endpoint(s.peerAddress, s.peerPort, s.family)}` : "";
      const state = s.protocol === "udp" ? (s.state === 1 ? "connected" : "bound") : TCP_STATES[s.state] ?? `state ${s.state}`;
      return `${s.protocol} ${local}${peer}: ${state}${s.protocol === "tcp" && s.state === 10 ? ` (backlog ${s.backlog})` : ""}` +
        (s.shutRd || s.shutWr ? `, shut down ${[s.shutRd ? "rd" : "", s.shutWr ? "wr" : ""].filter(Boolean).join("+")}` : "") +
        (s.boundDevice ? `, bound to device ${s.boundDevice}` : "");
    }
    case "lock":
      return `${s.kind} ${s.write ? "write" : "read"} lock${s.kind === "posix" || s.kind === "ofd" ? ` on bytes ${s.start}-${s.end ?? "EOF"}` : ""}`;
    case "udpq":
      return `${s.datagrams.length} datagram(s) / ${s.datagrams.reduce((n, d) => n + d.data.length, 0)} bytes queued (from ${[...new Set(s.datagrams.map((d) => endpoint(d.address, d.port, d.family)))].join(", ")})`;
    case "scm":
      return `${s.files.length} file(s) in flight (${s.files.map((f) => `message ${f.message}: ${passedText(f)}`).join(", ")})`;
    case "tcp":
      return `${s.inq.length} bytes unread, ${s.outq.length} unacknowledged (${s.unsent} unsent); mss ${s.mss}` +
        `${s.wscale ? `, wscale ${s.sndWscale}/${s.rcvWscale}` : ""}${s.sack ? ", sack" : ""}${s.timestamps ? ", timestamps" : ""}`;
    default: return describeAnonFd(s);
  }
}

/** The kernel object a state record describes (pipe inode, socket inode). */
export function fdStateObjectId(s: FdStateRecord): bigint {
  switch (s.type) {
    case "pipe": return s.pipeId;
    case "unix": case "inet": case "tcp": case "lock": case "scm": case "udpq": return s.inode;
    default: return 0n;   // anon-inode fds share one inode: no object identity
  }
}

/**
 * The state records that describe fd `f`: those written for it (or for the first fd of its
 * open file description) and those of the object it is an end of (both ends of a pipe show it).
 */
export function fdStateOf(states: readonly FdStateRecord[], f: { fd: number; inode: bigint; kind: string }): FdStateRecord[] {
  return states.filter((s) => s.fd === f.fd || ((f.kind === "fifo" || f.kind === "socket") && s.type !== "lock" && fdStateObjectId(s) === f.inode));
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
    case "unix": {
      const all = new Uint8Array(s.queue.reduce((n, m) => n + m.length, 0));
      let at = 0;
      for (const m of s.queue) { all.set(m, at); at += m.length; }
      return {
        type: "unix", socketType: s.socketType, object: s.inode.toString(),
        state: s.state === 10 ? "listening" : s.peerInode ? "connected" : "unconnected",
        name: unixNameText(s.name), peer: s.peerInside ? "inside" : s.peerInode ? unixNameText(s.peerName) || "outside" : "",
        backlog: s.backlog, pending: s.pending, pendingClosed: s.pendingClosed ?? 0, inBacklog: s.inBacklog ?? false,
        socketFile: s.socketFile ? `0${(s.socketFile.mode & 0o7777).toString(8)} ${s.socketFile.uid}:${s.socketFile.gid}` : "",
        peerCred: s.peerCred ? `pid ${s.peerCred.pid} ${s.peerCred.uid}:${s.peerCred.gid}` : "",
        queuedMessages: s.queue.length, queuedBytes: all.length,
        queuedSha256: all.length ? sha256Hex(all) : "", shutdown: [s.shutRd ? "rd" : "", s.shutWr ? "wr" : ""].filter(Boolean).join("+"),
        sndbuf: s.sndbuf, rcvbuf: s.rcvbuf,
      };
    }
    case "inet":
      return {
        type: s.protocol, family: s.family, object: s.inode.toString(), state: s.protocol === "udp" ? (s.state === 1 ? "connected" : "bound") : TCP_STATES[s.state] ?? String(s.state),
        local: endpoint(s.localAddress, s.localPort, s.family), peer: s.peerPort ? endpoint(s.peerAddress, s.peerPort, s.family) : "",
        backlog: s.backlog, options: [...INET_FLAGS, ...INET_MORE_FLAGS].filter((k) => s[k]).join(","), linger: s.linger ?? -1, sndbuf: s.sndbuf, rcvbuf: s.rcvbuf,
        priority: s.priority ?? 0, rcvLowat: s.rcvLowat ?? 0, mark: s.mark ?? 0, boundDevice: s.boundDevice ?? "",
      };
    case "udpq": {
      const all = Buffer.concat(s.datagrams.map((d) => d.data));
      return {
        type: "udp-queue", object: s.inode.toString(), datagrams: s.datagrams.length, queuedBytes: all.length,
        queuedSha256: all.length ? sha256Hex(all) : "", sources: s.datagrams.map((d) => endpoint(d.address, d.port, d.family)).join(", "),
      };
    }
    case "scm":
      return {
        type: "unix-files", object: s.inode.toString(), files: s.files.length,
        passed: s.files.map((f) => `${f.message}:${passedText(f)}`).join(", "),
      };
    case "lock":
      return { type: "lock", kind: s.kind, mode: s.write ? "write" : "read", range: `${s.start}-${s.end ?? "EOF"}` };
    case "tcp":
      return {
        type: "tcp-stream", object: s.inode.toString(), unreadBytes: s.inq.length, unackedBytes: s.outq.length, unsentBytes: s.unsent,
        mss: s.mss, wscale: s.wscale ? `${s.sndWscale}/${s.rcvWscale}` : "", sack: s.sack, timestamps: s.timestamps,
        unreadSha256: s.inq.length ? sha256Hex(s.inq) : "", unackedSha256: s.outq.length ? sha256Hex(s.outq) : "",
      };
    default: return anonFdFields(s);
  }
}

function sha256Hex(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex").slice(0, 16);
}
