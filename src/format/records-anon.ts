/**
 * Format 1.1 anon-inode fd records (docs/FORMAT.md 4.21–4.25, types 0x0050–0x0054): eventfd,
 * timerfd, signalfd, epoll and inotify. Keyed like every fd kind record by the first fd of the open
 * file description (INDEX key32). Members of the FdStateRecord union (records-fd.ts).
 */
import { ByteReader, ByteWriter } from "./bytes.js";
import type { ImageErrorWhere } from "./errors.js";
import { formatNs } from "./records-state.js";

export const AnonFdRecordType = { EVENTFD: 0x0050, TIMERFD: 0x0051, SIGNALFD: 0x0052, EPOLL: 0x0053, INOTIFY: 0x0054 } as const;
export const ANON_FIXED_SIZE = { EVENTFD: 24, TIMERFD: 40, SIGNALFD: 16, EPOLL: 16, INOTIFY: 16 } as const;
/** 1.1 entries are 24 bytes; 1.2 writes 32 (with via_fd) */
export const EPOLL_ENTRY_SIZE_1_1 = 24;
export const EPOLL_ENTRY_SIZE = 32;
export const INOTIFY_ENTRY_SIZE = 32;
/** Highest watch descriptor a reader accepts (the kernel's are small, cyclic). */
export const INOTIFY_MAX_WD = 1 << 20;
const MAX_NS = 1n << 62n;
const PATH_TEXT = new TextDecoder();

export interface EventfdState { type: "eventfd"; fd: number; count: bigint; semaphore: boolean; id: bigint }
export interface TimerfdState {
  type: "timerfd"; fd: number; clockId: number; settimeFlags: number;
  /** expirations not yet read */
  ticks: bigint;
  /** time to the next expiry (0: disarmed, or expired and periodic awaiting read) */
  valueNs: bigint;
  intervalNs: bigint;
}
export interface SignalfdState { type: "signalfd"; fd: number; sigmask: bigint }
export interface EpollWatch {
  /** the number the watch was added under */
  tfd: number; events: number; data: bigint; inode: bigint;
  /** an fd on which the watched file is open (= tfd when tfd still names it; 1.1 entries: tfd) */
  viaFd: number;
}
export interface EpollState { type: "epoll"; fd: number; watches: EpollWatch[] }
/** One inotify watch: the inode it watches, by the path it had at capture. */
export interface InotifyWatch { wd: number; mask: number; ignoredMask: number; dev: number; inode: bigint; path: string }
export interface InotifyState { type: "inotify"; fd: number; watches: InotifyWatch[] }
export type AnonFdState = EventfdState | TimerfdState | SignalfdState | EpollState | InotifyState;

export function decodeEventfd(payload: Uint8Array, base: number, where: ImageErrorWhere, fd: number): EventfdState {
  const r = new ByteReader(payload, base, where);
  r.fixedSize(ANON_FIXED_SIZE.EVENTFD, "EVENTFD");
  const count = r.u64At(8);
  if (count === 0xffffffffffffffffn) r.fail("BAD_FIELD", "eventfd count 0xffffffffffffffff exceeds the maximum", 8);
  return { type: "eventfd", fd, count, semaphore: (r.u32At(4) & 1) !== 0, id: r.u64At(16) };
}

export function decodeTimerfd(payload: Uint8Array, base: number, where: ImageErrorWhere, fd: number): TimerfdState {
  const r = new ByteReader(payload, base, where);
  r.fixedSize(ANON_FIXED_SIZE.TIMERFD, "TIMERFD");
  const clockId = r.u32At(4) | 0;
  if (![0, 1, 7, 8, 9].includes(clockId)) r.fail("BAD_FIELD", `timerfd clock ${clockId}`, 4);
  const valueNs = r.u64At(24), intervalNs = r.u64At(32);
  if (valueNs > MAX_NS || intervalNs > MAX_NS) r.fail("BAD_FIELD", "timerfd value/interval out of range", 24);
  return { type: "timerfd", fd, clockId, settimeFlags: r.u32At(8), ticks: r.u64At(16), valueNs, intervalNs };
}

export function decodeSignalfd(payload: Uint8Array, base: number, where: ImageErrorWhere, fd: number): SignalfdState {
  const r = new ByteReader(payload, base, where);
  r.fixedSize(ANON_FIXED_SIZE.SIGNALFD, "SIGNALFD");
  return { type: "signalfd", fd, sigmask: r.u64At(8) };
}

export function decodeEpoll(payload: Uint8Array, base: number, where: ImageErrorWhere, fd: number): EpollState {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(ANON_FIXED_SIZE.EPOLL, "EPOLL");
  const count = r.u32At(4), entrySize = r.u32At(8);
  if (entrySize < EPOLL_ENTRY_SIZE_1_1 || entrySize > 4096) r.fail("BAD_FIELD", `EPOLL entry_size ${entrySize}`, 8);
  if (count * entrySize > payload.length - fixed) r.fail("BAD_FIELD", `EPOLL count ${count} exceeds the payload`, 4);
  const watches: EpollWatch[] = [];
  for (let i = 0; i < count; i++) {
    const o = fixed + i * entrySize;
    const tfd = r.u32At(o);
    watches.push({ tfd, events: r.u32At(o + 4), data: r.u64At(o + 8), inode: r.u64At(o + 16), viaFd: entrySize >= EPOLL_ENTRY_SIZE ? r.u32At(o + 24) : tfd });
  }
  return { type: "epoll", fd, watches };
}

export function decodeInotify(payload: Uint8Array, base: number, where: ImageErrorWhere, fd: number): InotifyState {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(ANON_FIXED_SIZE.INOTIFY, "INOTIFY");
  const count = r.u32At(4), entrySize = r.u32At(8);
  if (entrySize < INOTIFY_ENTRY_SIZE || entrySize > 4096) r.fail("BAD_FIELD", `INOTIFY entry_size ${entrySize}`, 8);
  // every watch takes entry_size bytes and a path of at least one byte
  if (count * (entrySize + 1) > payload.length - fixed) r.fail("BAD_FIELD", `INOTIFY count ${count} exceeds the payload`, 4);
  const watches: InotifyWatch[] = [];
  let o = fixed;
  for (let i = 0; i < count; i++) {
    if (o + entrySize > payload.length) r.fail("TRUNCATED", `INOTIFY watch ${i} runs past the payload`, o);
    const wd = r.u32At(o), pathLen = r.u32At(o + 24);
    if (wd === 0 || wd > INOTIFY_MAX_WD || (i > 0 && wd <= watches[i - 1].wd)) r.fail("BAD_FIELD", `INOTIFY watch ${i}: wd ${wd} (increasing, 1..${INOTIFY_MAX_WD})`, o);
    if (pathLen === 0 || pathLen > 4095 || o + entrySize + pathLen > payload.length) r.fail("BAD_FIELD", `INOTIFY watch ${i}: path_len ${pathLen}`, o + 24);
    r.pos = o + entrySize;
    const path = PATH_TEXT.decode(r.bytesView(pathLen, "INOTIFY path"));
    watches.push({ wd, mask: r.u32At(o + 4), ignoredMask: r.u32At(o + 8), dev: r.u32At(o + 12), inode: r.u64At(o + 16), path });
    o += entrySize + pathLen;
  }
  return { type: "inotify", fd, watches };
}

export function encodeAnonFd(s: AnonFdState): { type: number; payload: Uint8Array; key32: number; key64: bigint } {
  const w = new ByteWriter();
  switch (s.type) {
    case "eventfd":
      w.u32(ANON_FIXED_SIZE.EVENTFD).u32(s.semaphore ? 1 : 0).u64(s.count).u64(s.id);
      return { type: AnonFdRecordType.EVENTFD, payload: w.finish(), key32: s.fd, key64: 0n };
    case "timerfd":
      w.u32(ANON_FIXED_SIZE.TIMERFD).u32(s.clockId).u32(s.settimeFlags).u32(0).u64(s.ticks).u64(s.valueNs).u64(s.intervalNs);
      return { type: AnonFdRecordType.TIMERFD, payload: w.finish(), key32: s.fd, key64: 0n };
    case "signalfd":
      w.u32(ANON_FIXED_SIZE.SIGNALFD).u32(0).u64(s.sigmask);
      return { type: AnonFdRecordType.SIGNALFD, payload: w.finish(), key32: s.fd, key64: 0n };
    case "epoll":
      w.u32(ANON_FIXED_SIZE.EPOLL).u32(s.watches.length).u32(EPOLL_ENTRY_SIZE).u32(0);
      for (const e of s.watches) w.u32(e.tfd).u32(e.events).u64(e.data).u64(e.inode).u32(e.viaFd).u32(0);
      return { type: AnonFdRecordType.EPOLL, payload: w.finish(), key32: s.fd, key64: 0n };
    case "inotify": {
      w.u32(ANON_FIXED_SIZE.INOTIFY).u32(s.watches.length).u32(INOTIFY_ENTRY_SIZE).u32(0);
      for (const e of s.watches) {
        const path = new TextEncoder().encode(e.path);
        w.u32(e.wd).u32(e.mask).u32(e.ignoredMask).u32(e.dev).u64(e.inode).u32(path.length).u32(0).bytes(path);
      }
      return { type: AnonFdRecordType.INOTIFY, payload: w.finish(), key32: s.fd, key64: 0n };
    }
  }
}

const EPOLL_BITS: [number, string][] = [
  [0x1, "in"], [0x2, "pri"], [0x4, "out"], [0x8, "err"], [0x10, "hup"], [0x2000, "rdhup"],
  [0x10000000, "exclusive"], [0x20000000, "wakeup"], [0x40000000, "oneshot"], [0x80000000, "et"],
];

const INOTIFY_BITS: [number, string][] = [
  [0x1, "access"], [0x2, "modify"], [0x4, "attrib"], [0x8, "close_write"], [0x10, "close_nowrite"], [0x20, "open"],
  [0x40, "moved_from"], [0x80, "moved_to"], [0x100, "create"], [0x200, "delete"], [0x400, "delete_self"],
  [0x800, "move_self"], [0x04000000, "excl_unlink"], [0x80000000, "oneshot"],
];

export function inotifyMaskNames(mask: number): string {
  return INOTIFY_BITS.filter(([b]) => (mask & b) >>> 0 !== 0).map(([, n]) => n).join("|") || "0";
}

export function epollEventNames(events: number): string {
  const names = EPOLL_BITS.filter(([b]) => (events & b) >>> 0 !== 0).map(([, n]) => n);
  return names.join("|") || "0";
}

const ns = formatNs;

export function describeAnonFd(s: AnonFdState): string {
  switch (s.type) {
    case "eventfd": return `eventfd count ${s.count}${s.semaphore ? " (semaphore)" : ""}`;
    case "timerfd": return `timerfd clock ${s.clockId}: ${s.valueNs ? `next in ${ns(s.valueNs)}` : s.intervalNs && s.ticks ? "expired" : "disarmed"}${s.intervalNs ? ` every ${ns(s.intervalNs)}` : ""}${s.ticks ? `, ${s.ticks} unread` : ""}`;
    case "signalfd": return `signalfd mask 0x${s.sigmask.toString(16)}`;
    case "epoll": return `epoll: ${s.watches.map((w) => `fd ${w.tfd}${w.viaFd !== w.tfd ? ` (its file now on fd ${w.viaFd})` : ""} ${epollEventNames(w.events)} data 0x${w.data.toString(16)}`).join(", ") || "no watches"}`;
    case "inotify": return `inotify: ${s.watches.map((w) => `wd ${w.wd} ${w.path} ${inotifyMaskNames(w.mask)}`).join(", ") || "no watches"}`;
  }
}

export function anonFdFields(s: AnonFdState): Record<string, string | number | boolean> {
  switch (s.type) {
    case "eventfd": return { type: "eventfd", count: s.count.toString(), semaphore: s.semaphore };
    case "timerfd": return { type: "timerfd", clock: s.clockId, armed: s.valueNs !== 0n || (s.intervalNs !== 0n && s.ticks !== 0n), intervalNs: s.intervalNs.toString(), ticks: s.ticks.toString() };
    case "signalfd": return { type: "signalfd", sigmask: `0x${s.sigmask.toString(16)}` };
    case "epoll": return { type: "epoll", watches: s.watches.map((w) => `${w.tfd}${w.viaFd !== w.tfd ? `(fd ${w.viaFd})` : ""}:${epollEventNames(w.events)}:0x${w.data.toString(16)}`).join(",") };
    case "inotify": return { type: "inotify", watches: s.watches.map((w) => `${w.wd}:${inotifyMaskNames(w.mask)}:${w.path}`).join(",") };
  }
}
