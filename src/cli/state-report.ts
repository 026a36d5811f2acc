/**
 * The format 1.1 state part of `ckimg inspect` (timers, process and thread state, seccomp):
 * a JSON-ready report (stateReport) and its text (stateText), both pure. A 1.0 image, which
 * has none of these records, reports null and prints nothing.
 */
import {
  PS_GROUPS, PS_MEMBARRIER, PS_OOM, PS_PRCTL, SECCOMP_MODE_NAMES, membarrierNames, SIGEV_NAMES, TS_CAPS, TS_NO_NEW_PRIVS, TS_PRCTL, TS_RSEQ, TS_SCHED,
  TS_SECCOMP, capNames, clockName, formatNs, schedPolicyName,
  type CheckpointImage, type IntervalTimer,
} from "../format/index.js";
import { hex } from "./common.js";

function signalName(signo: number): string {
  const names = ["", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1",
    "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN",
    "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS"];
  if (signo > 0 && signo < names.length) return names[signo];
  if (signo >= 34 && signo <= 64) return signo === 34 ? "SIGRTMIN" : `SIGRTMIN+${signo - 34}`;
  return signo ? `SIG${signo}` : "-";
}

/** A periodic timer reading 0 left has fired while the process was stopped (ITIMER_REAL re-arms
 * when SIGALRM is dequeued): still armed, restore arms it for one interval. */
const itimer = (t: IntervalTimer) => ({ value: formatNs(t.valueNs), interval: formatNs(t.intervalNs), armed: t.valueNs !== 0n || t.intervalNs !== 0n });

/** What of valid's bits was not captured, as words (for "unknown" markers). */
function missing(valid: number, bits: [number, string][]): string[] {
  return bits.filter(([b]) => !(valid & b)).map(([, w]) => w);
}

export function stateReport(img: CheckpointImage) {
  if (!img.timers && !img.processState && !img.threadStates.length && !img.seccompFilters.length) return null;
  const ps = img.processState;
  return {
    timers: img.timers ? {
      real: itimer(img.timers.real), virtual: itimer(img.timers.virtual), prof: itimer(img.timers.prof),
      posix: img.timers.posix.map((t) => ({
        id: t.id, clock: clockName(t.clockId), notify: SIGEV_NAMES[t.notify] ?? String(t.notify),
        signal: t.notify === 1 ? null : signalName(t.signo), targetTid: t.notify === 4 ? t.notifyTid : null,
        value: formatNs(t.valueNs), interval: formatNs(t.intervalNs), armed: t.valueNs !== 0n, overrun: t.overrun,
        sival: hex(t.sival),
      })),
    } : null,
    process: ps ? {
      oomScoreAdj: ps.valid & PS_OOM ? ps.oomScoreAdj : null,
      groups: ps.valid & PS_GROUPS ? ps.groups : null,
      dumpable: ps.valid & PS_PRCTL ? ps.dumpable : null,
      childSubreaper: ps.valid & PS_PRCTL ? ps.childSubreaper : null,
      thpDisable: ps.valid & PS_PRCTL ? ps.thpDisable : null,
      membarrier: ps.valid & PS_MEMBARRIER ? membarrierNames(ps.membarrier) : null,
    } : null,
    threads: img.threadStates.map((t) => ({
      tid: t.tid,
      notCaptured: missing(t.valid, [[TS_RSEQ, "rseq"], [TS_SCHED, "sched"], [TS_CAPS, "caps"], [TS_SECCOMP, "seccomp"], [TS_PRCTL, "prctl"]]),
      rseq: t.valid & TS_RSEQ ? (t.rseq.addr ? { addr: hex(t.rseq.addr), len: t.rseq.len, sig: hex(t.rseq.sig) } : null) : null,
      sched: t.valid & TS_SCHED ? { policy: schedPolicyName(t.sched.policy), priority: t.sched.priority, nice: t.sched.nice } : null,
      timerSlackNs: t.valid & TS_PRCTL ? Number(t.timerSlackNs) : null,
      pdeathsig: t.valid & TS_PRCTL ? (t.pdeathsig ? signalName(t.pdeathsig) : null) : null,
      securebits: t.valid & TS_PRCTL ? hex(t.securebits) : null,
      noNewPrivs: (t.flags & TS_NO_NEW_PRIVS) !== 0,
      seccomp: t.valid & TS_SECCOMP ? { mode: SECCOMP_MODE_NAMES[t.seccompMode], newestFilter: t.seccompFilter ?? null } : null,
      caps: t.valid & TS_CAPS ? {
        effective: hex(t.caps.effective), permitted: hex(t.caps.permitted), inheritable: hex(t.caps.inheritable),
        bounding: hex(t.caps.bounding), ambient: hex(t.caps.ambient),
        ambientNames: capNames(t.caps.ambient), inheritableNames: capNames(t.caps.inheritable),
      } : null,
    })),
    seccompFilters: img.seccompFilters.map((f, i) => ({ index: i, parent: f.parent ?? null, flags: f.flags, instructions: f.insns.length / 8 })),
  };
}

export type StateReport = NonNullable<ReturnType<typeof stateReport>>;

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => "  " + cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ");
  return [line(head), ...rows.map(line)].join("\n");
}

export function stateText(s: StateReport | null): string {
  if (!s) return "";
  const out: string[] = [""];
  if (s.timers) {
    const it = (name: string, t: { value: string; interval: string; armed: boolean }) =>
      t.armed ? `${name} in ${t.value}${t.interval !== "0" ? ` every ${t.interval}` : ""}` : "";
    const its = [it("ITIMER_REAL", s.timers.real), it("ITIMER_VIRTUAL", s.timers.virtual), it("ITIMER_PROF", s.timers.prof)].filter(Boolean);
    out.push(`timers   ${its.length ? its.join(", ") : "no interval timer armed"}; ${s.timers.posix.length} POSIX timer${s.timers.posix.length === 1 ? "" : "s"}`);
    if (s.timers.posix.length) {
      out.push(table(["ID", "CLOCK", "NOTIFY", "SIGNAL", "NEXT", "INTERVAL", "OVERRUN"], s.timers.posix.map((t) => [
        String(t.id), t.clock, t.notify + (t.targetTid !== null ? ` tid ${t.targetTid}` : ""), t.signal ?? "-",
        t.armed ? t.value : "disarmed", t.interval, String(t.overrun),
      ])));
    }
  }
  if (s.process) {
    const p = s.process;
    const bits = [
      p.oomScoreAdj !== null ? `oom_score_adj ${p.oomScoreAdj}` : "oom_score_adj ?",
      p.dumpable !== null ? `dumpable ${p.dumpable}` : "dumpable ?",
      p.childSubreaper ? "child-subreaper" : "", p.thpDisable ? "thp-disabled" : "",
      p.membarrier?.length ? `membarrier ${p.membarrier.join(",")}` : "",
      p.groups ? `groups ${p.groups.length ? p.groups.join(",") : "none"}` : "groups ?",
    ].filter(Boolean);
    out.push(`state    ${bits.join("  ")}`);
  }
  if (s.threads.length) {
    out.push(table(["TID", "RSEQ", "SCHED", "NICE", "SLACK", "SECCOMP", "PDEATH", "CAPS", "NOTE"], s.threads.map((t) => [
      String(t.tid), t.rseq ? `${t.rseq.addr}/${t.rseq.len}` : "-",
      t.sched ? `${t.sched.policy}${t.sched.priority ? `:${t.sched.priority}` : ""}` : "?", t.sched ? String(t.sched.nice) : "?",
      t.timerSlackNs !== null ? formatNs(BigInt(t.timerSlackNs)) : "?",
      t.seccomp ? t.seccomp.mode + (t.seccomp.newestFilter !== null ? `#${t.seccomp.newestFilter}` : "") : "?",
      t.pdeathsig ?? "-", t.caps ? `eff ${t.caps.effective}` : "?",
      [t.noNewPrivs ? "no_new_privs" : "", t.caps?.ambientNames.length ? `ambient ${t.caps.ambientNames.join(",")}` : "",
        t.notCaptured.length ? `not captured: ${t.notCaptured.join(",")}` : ""].filter(Boolean).join(" "),
    ])));
  }
  if (s.seccompFilters.length) {
    out.push(`seccomp  ${s.seccompFilters.length} filter${s.seccompFilters.length === 1 ? "" : "s"}: ` +
      s.seccompFilters.map((f) => `#${f.index} ${f.instructions} insns${f.parent !== null ? ` on #${f.parent}` : ""}`).join(", "));
  }
  return out.join("\n") + "\n";
}
