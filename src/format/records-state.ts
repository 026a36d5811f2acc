/**
 * Format 1.1 per-process and per-thread state records (docs/FORMAT.md 4.11–4.14): TIMERS,
 * PROCESS_STATE, SECCOMP and THREAD_STATE. Typed model, decoders (hostile input: every count
 * is checked against the payload before anything is read or allocated) and encoders.
 */
import { ByteReader, ByteWriter } from "./bytes.js";
import type { ImageErrorWhere } from "./errors.js";

// ---------------------------------------------------------------------------------------
// Layout (offsets in the FIXED parts)

export const STATE_FIXED_SIZE = { TIMERS: 64, PROCESS_STATE: 32, SECCOMP: 8, THREAD_STATE: 136, SIGQUEUE: 16 } as const;
/** SIGQUEUE (format 1.2, 4.14a): one entry per queued signal */
export const SIGQUEUE_ENTRY_SIZE = 136;
export const SIGINFO_SIZE = 128;
export const SIGQUEUE_MAX = 65536;
export const POSIX_TIMER_ENTRY_SIZE = 48;
export const SECCOMP_FILTER_HEADER_SIZE = 16;
export const SECCOMP_MAX_INSNS = 4096;
export const NO_FILTER = 0xffffffff;

/** PROCESS_STATE.valid bits */
export const PS_OOM = 1 << 0;
export const PS_GROUPS = 1 << 1;
export const PS_PRCTL = 1 << 2;
export const PS_MEMBARRIER = 1 << 3;
const MEMBARRIER_REGISTRATIONS: [number, string][] = [
  [1 << 2, "global-expedited"], [1 << 4, "private-expedited"], [1 << 6, "private-expedited-sync-core"], [1 << 8, "private-expedited-rseq"],
];
/** The names of a PROCESS_STATE membarrier mask's registrations (unknown bits as hex). */
export function membarrierNames(mask: number): string[] {
  const out = MEMBARRIER_REGISTRATIONS.filter(([b]) => mask & b).map(([, n]) => n);
  const rest = MEMBARRIER_REGISTRATIONS.reduce((m, [b]) => m & ~b, mask) >>> 0;
  if (rest) out.push(`0x${rest.toString(16)}`);
  return out;
}
/** THREAD_STATE.valid bits */
export const TS_RSEQ = 1 << 0;
export const TS_SCHED = 1 << 1;
export const TS_CAPS = 1 << 2;
export const TS_SECCOMP = 1 << 3;
export const TS_PRCTL = 1 << 4;
/** THREAD_STATE.flags */
export const TS_NO_NEW_PRIVS = 1 << 0;

export const SIGEV_NAMES: Readonly<Record<number, string>> = { 0: "signal", 1: "none", 4: "thread" };
export const SCHED_POLICY_NAMES = ["other", "fifo", "rr", "batch", "iso", "idle", "deadline"] as const;
export const SCHED_RESET_ON_FORK = 0x40000000;
export const SECCOMP_MODE_NAMES = ["off", "strict", "filter"] as const;

// ---------------------------------------------------------------------------------------
// Types

export interface IntervalTimer {
  /** nanoseconds; 0 = one-shot */
  intervalNs: bigint;
  /** time left until the next expiry, nanoseconds; 0 = disarmed */
  valueNs: bigint;
}

export interface PosixTimer {
  id: number;
  /** raw clockid_t (negative values are CPU clocks that encode a pid/tid) */
  clockId: number;
  /** sigev_notify: 0 SIGNAL, 1 NONE, 4 THREAD_ID */
  notify: number;
  signo: number;
  /** SIGEV_THREAD_ID target, else 0 */
  notifyTid: number;
  overrun: number;
  sival: bigint;
  intervalNs: bigint;
  valueNs: bigint;
}

export interface TimersRecord {
  real: IntervalTimer;
  virtual: IntervalTimer;
  prof: IntervalTimer;
  posix: PosixTimer[];
}

export interface ProcessStateRecord {
  valid: number;
  oomScoreAdj: number;
  dumpable: number;
  childSubreaper: boolean;
  thpDisable: boolean;
  groups: number[];
  /** membarrier(2) registrations (MEMBARRIER_CMD_REGISTER_* bits), valid with PS_MEMBARRIER; 0 otherwise */
  membarrier: number;
}

export interface SeccompFilter {
  /** index of the filter installed before this one, undefined for the first */
  parent: number | undefined;
  flags: number;
  /** struct sock_filter instructions, 8 bytes each */
  insns: Uint8Array;
}

export interface ThreadStateRecord {
  tid: number;
  valid: number;
  flags: number;
  rseq: { addr: bigint; len: number; sig: number };
  sched: { policy: number; priority: number; nice: number; dlRuntime: bigint; dlDeadline: bigint; dlPeriod: bigint };
  pdeathsig: number;
  timerSlackNs: bigint;
  caps: { inheritable: bigint; permitted: bigint; effective: bigint; bounding: bigint; ambient: bigint };
  securebits: number;
  seccompMode: number;
  /** newest filter of the thread's chain (index into SECCOMP), undefined when none */
  seccompFilter: number | undefined;
}

// ---------------------------------------------------------------------------------------
// Decoders

function i32(v: number): number {
  return v | 0;
}

export function decodeTimers(payload: Uint8Array, base: number, where: ImageErrorWhere): TimersRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(STATE_FIXED_SIZE.TIMERS, "TIMERS");
  const count = r.u32At(4);
  const entrySize = r.u32At(8);
  if (entrySize < POSIX_TIMER_ENTRY_SIZE || entrySize > 4096) r.fail("BAD_FIELD", `TIMERS entry_size ${entrySize}`, 8);
  if (count * entrySize > payload.length - fixed) r.fail("BAD_FIELD", `TIMERS count ${count} exceeds the payload`, 4);
  const it = (o: number): IntervalTimer => ({ intervalNs: r.u64At(o), valueNs: r.u64At(o + 8) });
  const posix: PosixTimer[] = [];
  const ids = new Set<number>();
  for (let i = 0; i < count; i++) {
    const o = fixed + i * entrySize;
    const t: PosixTimer = {
      id: r.u32At(o), clockId: i32(r.u32At(o + 4)), notify: r.u32At(o + 8), signo: r.u32At(o + 12),
      notifyTid: r.u32At(o + 16), overrun: r.u32At(o + 20), sival: r.u64At(o + 24),
      intervalNs: r.u64At(o + 32), valueNs: r.u64At(o + 40),
    };
    if (ids.has(t.id)) r.fail("BAD_FIELD", `POSIX timer id ${t.id} appears twice`, o);
    if (!(t.notify in SIGEV_NAMES)) r.fail("BAD_FIELD", `POSIX timer ${t.id}: notify ${t.notify}`, o + 8);
    if (t.notify !== 1 && (t.signo < 1 || t.signo > 64)) r.fail("BAD_FIELD", `POSIX timer ${t.id}: signal ${t.signo}`, o + 12);
    ids.add(t.id);
    posix.push(t);
  }
  return { real: it(16), virtual: it(32), prof: it(48), posix };
}

export function decodeProcessState(payload: Uint8Array, base: number, where: ImageErrorWhere): ProcessStateRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(STATE_FIXED_SIZE.PROCESS_STATE, "PROCESS_STATE");
  const ngroups = r.u32At(24);
  if (ngroups * 4 > payload.length - fixed) r.fail("BAD_FIELD", `PROCESS_STATE group count ${ngroups} exceeds the payload`, 24);
  r.pos = fixed;
  const groups: number[] = [];
  for (let i = 0; i < ngroups; i++) groups.push(r.u32());
  return {
    valid: r.u32At(4), oomScoreAdj: i32(r.u32At(8)), dumpable: r.u32At(12),
    childSubreaper: r.u32At(16) !== 0, thpDisable: r.u32At(20) !== 0, groups, membarrier: r.u32At(28),
  };
}

export function decodeSeccomp(payload: Uint8Array, base: number, where: ImageErrorWhere): SeccompFilter[] {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(STATE_FIXED_SIZE.SECCOMP, "SECCOMP");
  const count = r.u32At(4);
  if (count * SECCOMP_FILTER_HEADER_SIZE > payload.length - fixed) r.fail("BAD_FIELD", `SECCOMP count ${count} exceeds the payload`, 4);
  r.pos = fixed;
  const filters: SeccompFilter[] = [];
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const parent = r.u32();
    const flags = r.u32();
    const n = r.u32();
    r.u32();
    if (n < 1 || n > SECCOMP_MAX_INSNS) r.fail("BAD_FIELD", `seccomp filter ${i}: ${n} instructions`, at + 8);
    if (parent !== NO_FILTER && parent >= i) r.fail("BAD_FIELD", `seccomp filter ${i}: parent ${parent} is not an earlier filter`, at);
    filters.push({ parent: parent === NO_FILTER ? undefined : parent, flags, insns: r.bytesView(n * 8, `seccomp filter ${i}`).slice() });
  }
  return filters;
}

export function decodeThreadState(payload: Uint8Array, base: number, where: ImageErrorWhere): ThreadStateRecord {
  const r = new ByteReader(payload, base, where);
  r.fixedSize(STATE_FIXED_SIZE.THREAD_STATE, "THREAD_STATE");
  const u32 = (o: number) => r.u32At(o);
  const u64 = (o: number) => r.u64At(o);
  const seccompMode = u32(100);
  if (seccompMode > 2) r.fail("BAD_FIELD", `seccomp mode ${seccompMode}`, 100);
  const filter = u32(104);
  return {
    tid: u32(4), valid: u32(8), flags: u32(12),
    rseq: { addr: u64(16), len: u32(24), sig: u32(28) },
    sched: { policy: u32(32), priority: u32(36), nice: i32(u32(40)), dlRuntime: u64(112), dlDeadline: u64(120), dlPeriod: u64(128) },
    pdeathsig: u32(44), timerSlackNs: u64(48),
    caps: { inheritable: u64(56), permitted: u64(64), effective: u64(72), bounding: u64(80), ambient: u64(88) },
    securebits: u32(96), seccompMode, seccompFilter: filter === NO_FILTER ? undefined : filter,
  };
}

/**
 * One pending signal (SIGQUEUE entry): the queue it waits in and its x86-64 `siginfo_t`.
 * `siginfo` is kept whole (128 bytes); the fields below are read from it.
 */
export interface PendingSignal {
  /** 0 = the process-wide queue, else the tid of the thread whose private queue holds it */
  tid: number;
  signo: number;
  errno: number;
  code: number;
  /** si_pid / si_uid (kill, rt, sigchld layouts share them) */
  pid: number;
  uid: number;
  /** the 8 bytes at offset 24: si_value (rt) or si_status + padding (SIGCHLD) */
  value: bigint;
  siginfo: Uint8Array;
}

/** SIGQUEUE: the process-wide queue first, then each thread's, oldest first. */
export function decodeSigqueue(payload: Uint8Array, base: number, where: ImageErrorWhere): PendingSignal[] {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(STATE_FIXED_SIZE.SIGQUEUE, "SIGQUEUE");
  const count = r.u32At(4);
  if (count > SIGQUEUE_MAX || count * SIGQUEUE_ENTRY_SIZE > payload.length - fixed) r.fail("BAD_FIELD", `SIGQUEUE count ${count} exceeds the payload`, 4);
  const out: PendingSignal[] = [];
  for (let i = 0; i < count; i++) {
    const at = fixed + i * SIGQUEUE_ENTRY_SIZE;
    const signo = i32(r.u32At(at + 8));
    if (signo < 1 || signo > 64 || signo === 9 || signo === 19) r.fail("BAD_FIELD", `SIGQUEUE entry ${i}: signal ${signo}`, at + 8);
    out.push({
      tid: r.u32At(at), signo, errno: i32(r.u32At(at + 12)), code: i32(r.u32At(at + 16)),
      pid: i32(r.u32At(at + 24)), uid: r.u32At(at + 28), value: r.u64At(at + 32),
      siginfo: payload.slice(at + 8, at + 8 + SIGINFO_SIZE),
    });
  }
  return out;
}

/** A siginfo from its main fields (the rest zero), for writers and tests. */
export function makeSiginfo(signo: number, code: number, pid = 0, uid = 0, value = 0n): Uint8Array {
  const b = new Uint8Array(SIGINFO_SIZE);
  const v = new DataView(b.buffer);
  v.setInt32(0, signo, true);
  v.setInt32(8, code, true);
  v.setInt32(16, pid, true);
  v.setUint32(20, uid, true);
  v.setBigUint64(24, value, true);
  return b;
}

// ---------------------------------------------------------------------------------------
// Encoders

/** Entries are written from their `siginfo` bytes (the decoded fields are views of them). */
export function encodeSigqueue(list: readonly Pick<PendingSignal, "tid" | "siginfo">[]): Uint8Array {
  const w = new ByteWriter().u32(STATE_FIXED_SIZE.SIGQUEUE).u32(list.length).u64(0n);
  for (const e of list) {
    if (e.siginfo.length !== SIGINFO_SIZE) throw new RangeError(`siginfo of ${e.siginfo.length} bytes (expected ${SIGINFO_SIZE})`);
    w.u32(e.tid).u32(0).bytes(e.siginfo);
  }
  return w.finish();
}

export function encodeTimers(t: TimersRecord): Uint8Array {
  const w = new ByteWriter().u32(STATE_FIXED_SIZE.TIMERS).u32(t.posix.length).u32(POSIX_TIMER_ENTRY_SIZE).u32(0);
  for (const it of [t.real, t.virtual, t.prof]) w.u64(it.intervalNs).u64(it.valueNs);
  for (const p of t.posix) {
    w.u32(p.id).u32(p.clockId).u32(p.notify).u32(p.signo).u32(p.notifyTid).u32(p.overrun)
      .u64(p.sival).u64(p.intervalNs).u64(p.valueNs);
  }
  return w.finish();
}

export function encodeProcessState(p: ProcessStateRecord): Uint8Array {
  const w = new ByteWriter().u32(STATE_FIXED_SIZE.PROCESS_STATE).u32(p.valid).u32(p.oomScoreAdj).u32(p.dumpable)
    .u32(p.childSubreaper ? 1 : 0).u32(p.thpDisable ? 1 : 0).u32(p.groups.length).u32(p.membarrier ?? 0);
  for (const g of p.groups) w.u32(g);
  return w.finish();
}

export function encodeSeccomp(filters: readonly SeccompFilter[]): Uint8Array {
  const w = new ByteWriter().u32(STATE_FIXED_SIZE.SECCOMP).u32(filters.length);
  for (const f of filters) w.u32(f.parent ?? NO_FILTER).u32(f.flags).u32(f.insns.length / 8).u32(0).bytes(f.insns);
  return w.finish();
}

export function encodeThreadState(t: ThreadStateRecord): Uint8Array {
  return new ByteWriter()
    .u32(STATE_FIXED_SIZE.THREAD_STATE).u32(t.tid).u32(t.valid).u32(t.flags)
    .u64(t.rseq.addr).u32(t.rseq.len).u32(t.rseq.sig)
    .u32(t.sched.policy).u32(t.sched.priority).u32(t.sched.nice).u32(t.pdeathsig)
    .u64(t.timerSlackNs)
    .u64(t.caps.inheritable).u64(t.caps.permitted).u64(t.caps.effective).u64(t.caps.bounding).u64(t.caps.ambient)
    .u32(t.securebits).u32(t.seccompMode).u32(t.seccompFilter ?? NO_FILTER).u32(0)
    .u64(t.sched.dlRuntime).u64(t.sched.dlDeadline).u64(t.sched.dlPeriod)
    .finish();
}

// ---------------------------------------------------------------------------------------
// Presentation helpers (inspect, diff)

export function schedPolicyName(policy: number): string {
  const base = policy & ~SCHED_RESET_ON_FORK;
  const name = SCHED_POLICY_NAMES[base] ?? `policy ${base}`;
  return policy & SCHED_RESET_ON_FORK ? `${name}|reset-on-fork` : name;
}

/** clockid_t as a name; CPU clocks of another process/thread as "cpu:thread:TID" etc. */
export function clockName(id: number): string {
  const fixed: Record<number, string> = {
    0: "realtime", 1: "monotonic", 2: "process-cputime", 3: "thread-cputime", 4: "monotonic-raw",
    5: "realtime-coarse", 6: "monotonic-coarse", 7: "boottime", 8: "realtime-alarm", 9: "boottime-alarm", 11: "tai",
  };
  if (id >= 0) return fixed[id] ?? `clock ${id}`;
  // include/linux/posix-timers.h: CPUCLOCK_PID(clock) = ~(clock >> 3), bit 2 = per-thread, bits 0-1 = which
  const pid = ~(id >> 3);
  const which = ["prof", "virt", "sched"][id & 3] ?? "?";
  return `cpu-${which}:${id & 4 ? "thread" : "process"}:${pid === 0 ? "self" : pid}`;
}

export function formatNs(ns: bigint): string {
  if (ns === 0n) return "0";
  if (ns % 1_000_000_000n === 0n) return `${ns / 1_000_000_000n}s`;
  if (ns % 1_000_000n === 0n) return `${ns / 1_000_000n}ms`;
  if (ns % 1_000n === 0n && ns < 1_000_000n) return `${ns / 1_000n}us`;
  const n = Number(ns);
  if (n >= 1e9) return `${(n / 1e9).toFixed(3)}s`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(3)}ms`;
  return `${(n / 1e3).toFixed(3)}us`;
}

/** Capability bits as names (capability.h order), unknown bits as "cap_N". */
export const CAP_NAMES = [
  "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
  "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
  "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
  "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
  "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
  "checkpoint_restore",
] as const;

export function capNames(set: bigint): string[] {
  const out: string[] = [];
  for (let i = 0; i < 64; i++) if ((set >> BigInt(i)) & 1n) out.push(CAP_NAMES[i] ?? `cap_${i}`);
  return out;
}
