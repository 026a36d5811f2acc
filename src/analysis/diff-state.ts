/**
 * Format 1.1 state in `diff`: timers, process state (groups, oom_score_adj, prctl flags),
 * per-thread state (rseq, scheduler, capabilities, seccomp, no_new_privs, pdeathsig, timer
 * slack), seccomp filter programs and the pending signal queues (format 1.2), as a flat list of field changes ("timer 3 clock",
 * "thread 1234 sched") that the text and JSON reports print as they are.
 *
 * Timer values count down between two captures, so a timer's remaining time is compared only
 * for being armed or not; its clock, signal, target and interval are compared exactly.
 */
import {
  NO_FILTER, SECCOMP_MODE_NAMES, SIGEV_NAMES, clockName, formatNs, schedPolicyName,
  type CheckpointImage, type IntervalTimer, type PosixTimer, type ThreadStateRecord,
} from "../format/index.js";
import { bytesEqual } from "../format/bytes.js";
import type { FieldChange } from "./diff.js";

type Scalar = string | number | bigint | boolean | null;

export function diffState(a: CheckpointImage, b: CheckpointImage): FieldChange[] {
  const out: FieldChange[] = [];
  const cmp = (field: string, x: Scalar | undefined, y: Scalar | undefined) => {
    if (x !== y) out.push({ field, a: x ?? null, b: y ?? null });
  };
  const it = (name: string, x: IntervalTimer | undefined, y: IntervalTimer | undefined) => {
    cmp(`${name} armed`, x ? x.valueNs !== 0n : null, y ? y.valueNs !== 0n : null);
    cmp(`${name} interval`, x ? formatNs(x.intervalNs) : null, y ? formatNs(y.intervalNs) : null);
  };
  it("ITIMER_REAL", a.timers?.real, b.timers?.real);
  it("ITIMER_VIRTUAL", a.timers?.virtual, b.timers?.virtual);
  it("ITIMER_PROF", a.timers?.prof, b.timers?.prof);
  const pa = new Map((a.timers?.posix ?? []).map((t) => [t.id, t]));
  const pb = new Map((b.timers?.posix ?? []).map((t) => [t.id, t]));
  const describe = (t: PosixTimer | undefined) =>
    t ? `${clockName(t.clockId)} ${SIGEV_NAMES[t.notify] ?? t.notify}${t.notify === 1 ? "" : ` sig ${t.signo}`}${t.notify === 4 ? ` tid ${t.notifyTid}` : ""}` : null;
  for (const id of [...new Set([...pa.keys(), ...pb.keys()])].sort((x, y) => x - y)) {
    const x = pa.get(id), y = pb.get(id);
    cmp(`timer ${id}`, describe(x), describe(y));
    if (x && y) {
      cmp(`timer ${id} armed`, x.valueNs !== 0n, y.valueNs !== 0n);
      cmp(`timer ${id} interval`, formatNs(x.intervalNs), formatNs(y.intervalNs));
      cmp(`timer ${id} sival`, x.sival, y.sival);
    }
  }
  // pending signals: each queue as its list of "signal/code" in order (siginfo values differ run to run)
  const queues = (img: CheckpointImage) => {
    const m = new Map<number, string[]>();
    for (const p of img.pendingSignals) m.set(p.tid, [...(m.get(p.tid) ?? []), `${p.signo}/${p.code}`]);
    return m;
  };
  const qa = queues(a), qb = queues(b);
  for (const tid of [...new Set([...qa.keys(), ...qb.keys()])].sort((x, y) => x - y))
    cmp(`pending signals (${tid === 0 ? "process" : `thread ${tid}`})`, qa.get(tid)?.join(" ") ?? "none", qb.get(tid)?.join(" ") ?? "none");
  const s = a.processState, t = b.processState;
  cmp("oom_score_adj", s?.oomScoreAdj, t?.oomScoreAdj);
  cmp("groups", s ? s.groups.join(",") : null, t ? t.groups.join(",") : null);
  cmp("dumpable", s?.dumpable, t?.dumpable);
  cmp("child subreaper", s?.childSubreaper, t?.childSubreaper);
  cmp("THP disabled", s?.thpDisable, t?.thpDisable);
  cmp("membarrier registrations", s?.membarrier, t?.membarrier);

  const ta = new Map(a.threadStates.map((x) => [x.tid, x]));
  const tb = new Map(b.threadStates.map((x) => [x.tid, x]));
  for (const tid of [...new Set([...ta.keys(), ...tb.keys()])].sort((x, y) => x - y)) {
    const x = ta.get(tid), y = tb.get(tid);
    const f = (name: string, g: (v: ThreadStateRecord) => Scalar) => cmp(`thread ${tid} ${name}`, x ? g(x) : null, y ? g(y) : null);
    if (!x || !y) {
      cmp(`thread ${tid} state`, x ? "recorded" : null, y ? "recorded" : null);
      continue;
    }
    f("rseq", (v) => (v.rseq.addr ? `0x${v.rseq.addr.toString(16)}/${v.rseq.len}` : "none"));
    f("sched", (v) => `${schedPolicyName(v.sched.policy)}:${v.sched.priority} nice ${v.sched.nice}`);
    f("timer slack", (v) => formatNs(v.timerSlackNs));
    f("pdeathsig", (v) => v.pdeathsig);
    f("securebits", (v) => v.securebits);
    f("no_new_privs", (v) => (v.flags & 1) !== 0);
    f("seccomp", (v) => SECCOMP_MODE_NAMES[v.seccompMode] ?? v.seccompMode);
    for (const k of ["effective", "permitted", "inheritable", "bounding", "ambient"] as const) f(`cap ${k}`, (v) => v.caps[k]);
    // filter chains: compare programs, not indices
    const chain = (img: CheckpointImage, v: ThreadStateRecord) => {
      const progs: Uint8Array[] = [];
      for (let i = v.seccompFilter ?? NO_FILTER; i !== NO_FILTER && img.seccompFilters[i] && progs.length < 64; i = img.seccompFilters[i].parent ?? NO_FILTER) progs.push(img.seccompFilters[i].insns);
      return progs;
    };
    const ca = chain(a, x), cb = chain(b, y);
    const same = ca.length === cb.length && ca.every((p, i) => bytesEqual(p, cb[i]));
    if (!same) out.push({ field: `thread ${tid} seccomp filters`, a: `${ca.length} filter(s)`, b: `${cb.length} filter(s), programs differ` });
  }
  return out;
}
