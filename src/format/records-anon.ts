/**
 * Format 1.1 anon-inode fd records (docs/FORMAT.md 4.21–4.24, types 0x0050–0x0053): eventfd,
 * timerfd, signalfd and epoll. Keyed like every fd kind record by the first fd of the open
 * file description (INDEX key32). Members of the FdStateRecord union (records-fd.ts).
 */
import { ByteReader, ByteWriter } from "./bytes.js";
import type { ImageErrorWhere } from "./errors.js";
import { formatNs } from "./records-state.js";

export const AnonFdRecordType = { EVENTFD: 0x0050, TIMERFD: 0x0051, SIGNALFD: 0x0052, EPOLL: 0x0053 } as const;
export const ANON_FIXED_SIZE = { EVENTFD: 24, TIMERFD: 40, SIGNALFD: 16, EPOLL: 16 } as const;
export const EPOLL_ENTRY_SIZE = 24;
const MAX_NS = 1n << 62n;

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
export interface EpollWatch { tfd: number; events: number; data: bigint; inode: bigint }
export interface EpollState { type: "epoll"; fd: number; watches: EpollWatch[] }
export type AnonFdState = EventfdState | TimerfdState | SignalfdState | EpollState;

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
  if (entrySize < EPOLL_ENTRY_SIZE || entrySize > 4096) r.fail("BAD_FIELD", `EPOLL entry_size ${entrySize}`, 8);
  if (count * entrySize > payload.length - fixed) r.fail("BAD_FIELD", `EPOLL count ${count} exceeds the payload`, 4);
  const watches: EpollWatch[] = [];
  for (let i = 0; i < count; i++) {
    const o = fixed + i * entrySize;
    watches.push({ tfd: r.u32At(o), events: r.u32At(o + 4), data: r.u64At(o + 8), inode: r.u64At(o + 16) });
  }
  return { type: "epoll", fd, watches };
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
      for (const e of s.watches) w.u32(e.tfd).u32(e.events).u64(e.data).u64(e.inode);
      return { type: AnonFdRecordType.EPOLL, payload: w.finish(), key32: s.fd, key64: 0n };
  }
}

const EPOLL_BITS: [number, string][] = [
  [0x1, "in"], [0x2, "pri"], [0x4, "out"], [0x8, "err"], [0x10, "hup"], [0x2000, "rdhup"],
  [0x10000000, "exclusive"], [0x20000000, "wakeup"], [0x40000000, "oneshot"], [0x80000000, "et"],
];

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
    case "epoll": return `epoll: ${s.watches.map((w) => `fd ${w.tfd} ${epollEventNames(w.events)} data 0x${w.data.toString(16)}`).join(", ") || "no watches"}`;
  }
}

export function anonFdFields(s: AnonFdState): Record<string, string | number | boolean> {
  switch (s.type) {
    case "eventfd": return { type: "eventfd", count: s.count.toString(), semaphore: s.semaphore };
    case "timerfd": return { type: "timerfd", clock: s.clockId, armed: s.valueNs !== 0n || (s.intervalNs !== 0n && s.ticks !== 0n), intervalNs: s.intervalNs.toString(), ticks: s.ticks.toString() };
    case "signalfd": return { type: "signalfd", sigmask: `0x${s.sigmask.toString(16)}` };
    case "epoll": return { type: "epoll", watches: s.watches.map((w) => `${w.tfd}:${epollEventNames(w.events)}:0x${w.data.toString(16)}`).join(",") };
  }
}
