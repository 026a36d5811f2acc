/**
 * The checkpointed-job engine behind `ckimg run`: a small state machine.
 *
 *   start ──(DIR has a good checkpoint)──▶ restore ─┐
 *         └───────────────────────────────▶ launch ─┴─▶ running ◀──▶ checkpointing
 *                                                         │               │
 *                      job exits by itself ◀──────────────┘      kill / stop / requeue ──▶ done
 *
 * The job runs under ckimg-guard (./guard.ts), which stays its tracer and holds back the
 * signals ckimg run acts on: a scheduler that signals every process of the job cannot kill
 * the program before its checkpoint is written. A held signal that ckimg run did not receive
 * itself (someone signalled only the program) is delivered after a short grace period.
 *
 * Checkpoints are taken one at a time: the guard lets go of the job, the capturer writes the
 * image (incremental on the previous one when the capturer can) — the guard traces the job
 * again as soon as the capturer has let it go, while the image is still being written — the
 * image is verified, then committed to the run directory (./run-dir.ts). The engine reports through `onEvent` and
 * never prints or exits; `runJob` resolves with the status ckimg run should exit with.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { unlink } from "node:fs/promises";
import { constants, setPriority } from "node:os";
import { resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import { captureBinary, runCapture, type CaptureCodec, type CaptureSummary } from "../cli/capture.js";
import { restoreBinary } from "../cli/restore.js";
import type { verifyImage as VerifyImage } from "../format/verify.js";
import { JobGuard, guardBinary, type JobEnd } from "./guard.js";
import { COME_BACK_STATUS, DEFAULT_ACTIONS, signalNumber, type SignalAction } from "./options.js";
import { RunDir, checkpointFileName, type CheckpointEntry, type PruneResult } from "./run-dir.js";

export interface JobOptions {
  /** The run directory (created when missing). */
  dir: string;
  /** PROGRAM ARGS… */
  command: string[];
  /** Periodic checkpoint interval in ms (none when undefined). */
  everyMs?: number;
  /** Checkpoints kept (default 2: the newest and one to fall back on). */
  keep?: number;
  /** Signal actions on top of DEFAULT_ACTIONS. */
  actions?: ReadonlyMap<NodeJS.Signals, SignalAction>;
  /** Exit with this status right after every checkpoint (the job is killed; HTCondor's checkpoint_exit_code). */
  checkpointExitCode?: number;
  /** Keep DIR when the job completes successfully (default: remove it). */
  keepOnSuccess?: boolean;
  compress?: CaptureCodec;
  /**
   * Nice value of the capturer once it has let the job go (the copy phase of a copy-on-write
   * capture: reading, hashing, compressing, writing), and of pruning's flatten: the job gets
   * the CPU first (default DEFAULT_CAPTURE_NICE = 0: no change).
   */
  captureNice?: number;
  /** Full images only, never incremental (`--full`; benchmarks compare the two). */
  fullImages?: boolean;
  /** Where signals come from (default: this process). */
  signals?: SignalSource;
  onEvent?: (event: JobEvent) => void;
}

/** What the engine reports while it runs (the CLI prints one line each). */
export type JobEvent =
  | { kind: "launched"; pid: number }
  | { kind: "restored"; pid: number; checkpoint: string; ms: number; restarts: number }
  | { kind: "damaged"; checkpoint: string; problem: string }
  | { kind: "restore-failed"; checkpoint: string; problem: string }
  | { kind: "signal"; signal: NodeJS.Signals; action: SignalAction }
  | { kind: "checkpoint"; entry: CheckpointEntry; path: string; removed: string[]; flattened?: PruneResult["flattened"] }
  | { kind: "checkpoint-failed"; reason: string; problem: string }
  | { kind: "stopped" }
  | { kind: "continued" }
  | { kind: "requeue"; jobId: string; ok: boolean; detail: string }
  | { kind: "warning"; text: string };

export interface JobOutcome {
  /** The status ckimg run exits with. */
  exitCode: number;
  /** completed / failed: the job ended by itself; checkpointed / requeued: it will come back. */
  state: "completed" | "failed" | "checkpointed" | "requeued";
  /** The job's own end (exit code or signal), when it ended by itself. */
  jobEnd?: JobEnd;
}

export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): void;
  off(signal: NodeJS.Signals, listener: () => void): void;
}

/**
 * `captureNice` unless told: 0, unchanged. Measured (bench/job.mjs, load 13-16 on 2 cores),
 * nice 10 made the captures 4x longer and the job slower, not faster (see README).
 */
export const DEFAULT_CAPTURE_NICE = 0;

/** A job killed by a held signal this soon after ckimg run got the same one: see killedByBroadcast. */
const BROADCAST_WINDOW_MS = 10_000;

function signalName(n: number): NodeJS.Signals | undefined {
  return (Object.entries(constants.signals) as [NodeJS.Signals, number][]).find(([, v]) => v === n)?.[0];
}

/** A held signal that ckimg run did not receive itself within this time is delivered. */
const HELD_GRACE_MS = 1000;

/** What this build's capturer can do (probed once from its usage text). */
export interface CaptureFeatures {
  /** `--parent IMG`: incremental images (issue 12). */
  parent: boolean;
  /** `--parent IMG` of a process tree (each process against its own in the parent image);
   * without it the capturer takes the process alone with --parent. */
  treeParent: boolean;
  /** process trees (issue 11): the capturer follows children unless `--no-children`. */
  tree: boolean;
  /** `--track`: dirty-page tracking kept between captures (issue 12, Linux >= 6.7). */
  track: boolean;
}

let features: CaptureFeatures | undefined;

function featuresOf(text: string): CaptureFeatures {
  // Incremental captures (--parent) of trees: "--parent IMAGE (trees too)"; an older capturer
  // takes one process with --parent, and the engine uses it only while the job is one.
  return {
    parent: text.includes("--parent"), treeParent: text.includes("--parent IMAGE (trees too)"),
    tree: text.includes("--no-children"), track: text.includes("--track"),
  };
}

export function captureFeatures(): CaptureFeatures {
  if (features) return features;
  let text = "";
  try {
    text = execFileSync(captureBinary(), ["--help"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    text = `${e.stdout ?? ""}${e.stderr ?? ""}`;
  }
  features = featuresOf(text);
  return features;
}

/** captureFeatures() without blocking: runJob asks once the job runs (not on its start-up path). */
function probeCaptureFeatures(): Promise<CaptureFeatures> {
  if (features) return Promise.resolve(features);
  return new Promise((resolve) => {
    execFile(captureBinary(), ["--help"], { encoding: "utf8" }, (_err, stdout, stderr) => {
      features ??= featuresOf(`${stdout ?? ""}${stderr ?? ""}`);
      resolve(features);
    });
  });
}

/**
 * The image reader and verifier, loaded on first use: most of the code ckimg run would load
 * before starting the job (a fresh launch needs none of it until its first checkpoint).
 */
let verifier: Promise<typeof VerifyImage> | undefined;
function loadVerifier(): Promise<typeof VerifyImage> {
  verifier ??= import("../format/verify.js").then((m) => m.verifyImage);
  return verifier;
}

/** The signal numbers the guard holds back for a set of actions. */
export function heldSignals(actions: ReadonlyMap<NodeJS.Signals, SignalAction>): number[] {
  const never = new Set<NodeJS.Signals>(["SIGCONT", "SIGWINCH", "SIGCHLD", "SIGURG"]);
  return [...actions.entries()].filter(([s, a]) => a !== "ignore" && !never.has(s)).map(([s]) => signalNumber(s)).sort((a, b) => a - b);
}

function describeEnd(end: JobEnd): number {
  return end.signal !== undefined ? 128 + end.signal : end.code;
}

type CheckpointMode = "continue" | "stop" | "kill";

export async function runJob(o: JobOptions): Promise<JobOutcome> {
  const emit = o.onEvent ?? (() => {});
  const keep = Math.max(1, o.keep ?? 2);
  const actions = new Map([...DEFAULT_ACTIONS, ...(o.actions ?? [])]);
  const signals: SignalSource = o.signals ?? process;
  const comeBack = o.checkpointExitCode ?? COME_BACK_STATUS;
  const dir = await RunDir.open(o.dir, o.command, process.cwd());
  const hold = heldSignals(actions);

  // Signals: ckimg run's own (recentOwn), and those the guard held back from the job.
  const recentOwn = new Map<number, number>();
  const pendingHeld = new Set<{ signal: number; pid: number; timer: NodeJS.Timeout }>();
  let guard: JobGuard | undefined;
  // Set as soon as ckimg run decides to checkpoint and end the job (before that checkpoint
  // starts: a periodic one may be under way): a held signal is never delivered after that.
  let leaving = false;
  // When the guard last held the program's copy of each signal, and who waits for one (jobsCopy).
  const heldSeen = new Map<number, number>();
  const heldWaiters = new Set<{ signal: number; resolve: () => void }>();
  const onHeld = (signal: number, pid: number) => {
    const heldAt = Date.now();
    heldSeen.set(signal, heldAt);
    for (const w of [...heldWaiters]) if (w.signal === signal) w.resolve();
    const ownAround = () => {
      const own = recentOwn.get(signal);
      return own !== undefined && Math.abs(own - heldAt) < HELD_GRACE_MS;
    };
    if (ownAround() || leaving) return;   // the broadcast ckimg run acts on
    // Ours may come later than the program's (a scheduler signals the deepest processes first;
    // under load the guard's line and our own signal are read in any order): decide after the
    // grace, and only if ckimg run did not get the same signal around the same time.
    const entry = {
      signal, pid, timer: setTimeout(() => {
        pendingHeld.delete(entry);
        if (!ownAround() && !leaving) guard?.deliver(signal, pid);
      }, HELD_GRACE_MS),
    };
    pendingHeld.add(entry);
  };

  // Signals that arrive while the job is being started are kept and acted on once it runs.
  const early: NodeJS.Signals[] = [];
  const earlyListeners = new Map<NodeJS.Signals, () => void>();
  for (const signal of actions.keys()) {
    const l = () => { recentOwn.set(signalNumber(signal), Date.now()); early.push(signal); };
    earlyListeners.set(signal, l);
    signals.on(signal, l);
  }
  const dropEarly = () => { for (const [signal, l] of earlyListeners) signals.off(signal, l); };

  // Start: the newest checkpoint that verifies and restores, else a fresh launch.
  let restoredFrom: CheckpointEntry | undefined;
  const t0 = performance.now();
  for (const c of await dir.candidates()) {
    const path = dir.imagePath(c.file);
    const verifyImage = await loadVerifier();
    const report = await verifyImage(path, { threads: 1 }).catch((err: Error) => ({ ok: false, problems: [{ detail: err.message, offset: undefined }] }));
    if (!report.ok) {
      const p = report.problems[0];
      emit({ kind: "damaged", checkpoint: path, problem: p ? `${p.detail}${p.offset !== undefined ? ` at offset ${p.offset}` : ""}` : "damaged" });
      await dir.quarantine(c);
      continue;
    }
    // The job's own PID first (what it was); if another process has it now, a new one.
    for (const pidArgs of [[], ["--new-pid"]]) {
      const g = JobGuard.restore(restoreBinary(), resolvePath(path), ["--inherit-stdio", ...pidArgs], hold, { onHeld });
      try {
        await g.running;
        guard = g;
        restoredFrom = c;
        break;
      } catch (err) {
        emit({ kind: "restore-failed", checkpoint: path, problem: (err as Error).message + (pidArgs.length ? " (with a new PID)" : "") });
      }
    }
    if (guard) break;
  }
  if (!guard && dir.manifest.checkpoints.length > 0 && (await dir.candidates()).length > 0) {
    dropEarly();
    throw new Error(`${o.dir}: no checkpoint could be restored (see above); not starting the job afresh over them`);
  }
  let pid: number;
  let g: JobGuard;
  try {
    if (!guard) guard = JobGuard.launch(o.command, hold, { onHeld });
    g = guard;
    pid = await g.running;
  } catch (err) {
    dropEarly();
    throw err;
  }
  if (restoredFrom) {
    dir.manifest.restarts++;
    emit({ kind: "restored", pid, checkpoint: dir.imagePath(restoredFrom.file), ms: performance.now() - t0, restarts: dir.manifest.restarts });
  } else {
    emit({ kind: "launched", pid });
  }
  dir.manifest.state = "running";
  dir.manifest.jobPid = pid;
  dir.manifest.exitCode = null;
  await dir.save();
  // What the checkpoints need, asked for now that the job runs rather than before it starts
  const featsReady = probeCaptureFeatures();
  void loadVerifier();

  const nice = o.captureNice ?? DEFAULT_CAPTURE_NICE;
  // Pruning's flatten runs in a child (at `nice`); once the job has ended it is stopped, and no
  // new one starts: a completed job's directory goes, a failed one keeps its whole chain.
  let flattening: ChildProcess | undefined;
  // The capturer at work (0: none): when the job ends by itself, its image would be of a
  // process that is gone — it is stopped rather than waited for.
  let capturing = 0;
  // The job completed and its directory goes (no --keep-on-success): nothing more to write.
  let discard = false;
  const flattener = (input: string, output: string) => flattenInChild(input, output, nice, (c) => { flattening = c; });
  let ownEnd: JobEnd | undefined;
  let treeWarned = false;
  let killing = false;
  let ended = false;
  let finish!: (o: JobOutcome) => void;
  const outcome = new Promise<JobOutcome>((res) => { finish = res; });
  let chain: Promise<unknown> = Promise.resolve();
  // The image the next checkpoint may be incremental on: one taken of this very process. A
  // restored job is a new process (its start time differs; the capturer refuses a parent of
  // another process), so its first checkpoint is a full image.
  let parentFile: string | null = null;

  /** One checkpoint; true when an image joined the run. */
  const checkpointOnce = async (reason: string, mode: CheckpointMode): Promise<boolean> => {
    if (ended) return false;
    const feats = await featsReady;
    if (ended) return false;
    if (!feats.tree && !treeWarned && hasChildren(pid)) {
      treeWarned = true;
      emit({ kind: "warning", text: `the job has child processes; this capturer takes one process (process trees not built): checkpoints hold pid ${pid} only` });
    }
    const seq = dir.nextSeq();
    const file = checkpointFileName(seq);
    const path = dir.imagePath(file);
    // Incremental on the previous image — a tree too when the capturer does trees (each
    // process against its own in the previous image, workers forked since stored whole; an
    // older capturer takes the process alone with --parent, so only while the job is one) —
    // and while the chain stays within --keep: then a full image starts a new chain and the
    // old one goes whole once it verifies — nothing is ever rewritten to make a link standalone.
    const oneProcessOnly = !feats.treeParent;
    let parent = feats.parent && parentFile && !(o.fullImages ?? false) && !(oneProcessOnly && hasChildren(pid)) &&
      dir.chainLength(parentFile) < keep ? parentFile : null;
    if (mode === "kill") killing = true;
    let summary: CaptureSummary;
    const started = performance.now();
    try {
      // (released before each attempt: the guard may have taken the job back after a failed one)
      const capture = async (p: string | null) => (await g.release(), runCapture({
        pid, output: path, compress: o.compress ?? "lz4", kill: mode === "kill", ownSignals: true,
        // a scheduler signals every process of the job, the capturer too: it must not abort
        launcher: [guardBinary(), "shield", "--"],
        parent: p ? dir.imagePath(p) : undefined,
        // the next incremental checkpoint then reads only the pages written since this one
        track: feats.track && mode !== "kill",
        // a copy-on-write capture lets the job go after its freeze: guarded again from then on
        onSpawn: (capturer) => {
          capturing = capturer;
          if (mode !== "kill") g.watch(capturer, o.captureNice ?? DEFAULT_CAPTURE_NICE);
        },
      }).finally(() => { capturing = 0; }));
      try {
        summary = await capture(parent);
      } catch (err) {
        if (!parent) throw err;
        // an incremental capture that fails (e.g. the parent no longer matches): a full one
        emit({ kind: "warning", text: `incremental checkpoint on ${parent} failed (${(err as Error).message}); taking a full one` });
        parent = null;
        summary = await capture(null);
      }
      if (parent && oneProcessOnly && mode !== "kill" && hasChildren(pid)) {
        // it forked between the check and the freeze: the image may lack a worker; a full one
        await unlink(path).catch(() => {});
        parent = null;
        summary = await capture(null);
      }
      // its parents verified when they joined the run: only this file and its digests
      const report = await (await loadVerifier())(path, { threads: 1, parentsVerified: true });
      if (!report.ok) {
        await unlink(path).catch(() => {});
        throw new Error(`the new image did not verify: ${report.problems[0]?.detail ?? "damaged"}`);
      }
    } catch (err) {
      // (a capture the job's own end made pointless was stopped: not worth a line)
      if (!discard) emit({ kind: "checkpoint-failed", reason, problem: (err as Error).message });
      if (mode === "kill") killing = false;
      if (!ended) await g.attach();
      return false;
    }
    const entry: CheckpointEntry = {
      seq, file, time: new Date().toISOString(), bytes: summary.imageBytes, parent, reason,
      captureMs: Math.round(performance.now() - started), frozenMs: summary.freezeMs,
    };
    await dir.commit(entry);
    parentFile = file;
    // the job is guarded again before the older images are flattened and removed
    if (mode !== "kill" && !ended) await g.attach();
    const pruned = await dir.prune(keep, (text) => { if (!discard) emit({ kind: "warning", text }); }, discard ? null : flattener);
    emit({ kind: "checkpoint", entry, path, removed: pruned.removed, flattened: pruned.flattened });
    return true;
  };

  const checkpoint = (reason: string, mode: CheckpointMode): Promise<boolean> => {
    const next = chain.then(() => checkpointOnce(reason, mode));
    chain = next.catch(() => false);
    return next;
  };

  /** After a checkpoint that ends the job for now: make sure it is gone, record, finish. */
  const leave = async (state: "checkpointed" | "requeued", saved: boolean) => {
    if (!saved) {
      killing = true;
      g.kill();
    }
    const end = await g.ended;
    if (!saved && end.signal === undefined) {
      // it exited by itself before its checkpoint could be taken: that is its end
      const code = describeEnd(end);
      dir.manifest.state = code === 0 ? "completed" : "failed";
      dir.manifest.exitCode = code;
      finish({ exitCode: code, state: dir.manifest.state, jobEnd: end });
      return;
    }
    const anyGood = dir.manifest.checkpoints.length > 0;
    dir.manifest.state = anyGood ? state : "failed";
    dir.manifest.exitCode = anyGood ? comeBack : 128 + constants.signals.SIGKILL;
    finish({ exitCode: dir.manifest.exitCode, state: anyGood ? state : "checkpointed" });
  };

  /**
   * A scheduler signals every process of the job — ckimg run and the program in any order, not
   * at once (seen on Slurm at requeue: the program's SIGTERM came ~100 ms after ours). Before the
   * guard lets the job go for a checkpoint on such a signal, wait (at most HELD_GRACE_MS) for it
   * to hold the program's copy: one that came after the release, before the capturer has seized
   * the job, would kill the program unheld. A signal sent to ckimg run alone waits the grace.
   */
  const jobsCopy = (signal: number): Promise<void> => {
    const seen = heldSeen.get(signal);
    if (!hold.includes(signal) || (seen !== undefined && Date.now() - seen < HELD_GRACE_MS)) return Promise.resolve();
    return new Promise((resolve) => {
      const w = { signal, resolve: () => { clearTimeout(timer); heldWaiters.delete(w); resolve(); } };
      const timer = setTimeout(w.resolve, HELD_GRACE_MS);
      heldWaiters.add(w);
    });
  };

  const act = async (signal: NodeJS.Signals, action: SignalAction) => {
    if (ended || killing || leaving) return;
    emit({ kind: "signal", signal, action });
    const exitAfter = o.checkpointExitCode !== undefined;
    if (action === "checkpoint-exit" || action === "checkpoint-requeue" || (exitAfter && action !== "forward" && action !== "ignore")) leaving = true;
    if (action !== "forward" && action !== "ignore") await jobsCopy(signalNumber(signal));
    switch (action) {
      case "forward":
        g.deliver(signalNumber(signal), pid);
        return;
      case "ignore":
        return;
      case "checkpoint":
        if (exitAfter) return leave("checkpointed", await checkpoint(signal, "kill"));
        await checkpoint(signal, "continue");
        return;
      case "checkpoint-stop": {
        if (exitAfter) return leave("checkpointed", await checkpoint(signal, "kill"));
        await checkpoint(signal, "stop");
        if (ended) return;
        dir.manifest.state = "stopped";
        await dir.save();
        emit({ kind: "stopped" });
        process.kill(pid, "SIGSTOP");
        process.kill(process.pid, "SIGSTOP");   // job control: SIGCONT (fg) continues both
        return;
      }
      case "checkpoint-exit":
        return leave("checkpointed", await checkpoint(signal, "kill"));
      case "checkpoint-requeue": {
        const saved = await checkpoint(signal, "kill");
        if (!saved && ownEnd !== undefined && ownEnd.signal === undefined) return leave("checkpointed", false);  // it finished first
        const jobId = process.env.SLURM_JOB_ID;
        if (!jobId) {
          emit({ kind: "warning", text: "checkpoint-requeue outside Slurm (no SLURM_JOB_ID): exiting without requeue" });
          return leave("checkpointed", saved);
        }
        const r = await requeue(jobId);
        emit({ kind: "requeue", jobId, ...r });
        return leave(r.ok ? "requeued" : "checkpointed", saved);
      }
    }
  };

  const listeners = new Map<NodeJS.Signals, () => void>();
  for (const [signal, action] of actions) {
    const listener = () => {
      const n = signalNumber(signal);
      recentOwn.set(n, Date.now());
      for (const h of [...pendingHeld]) {
        if (h.signal !== n) continue;
        clearTimeout(h.timer);
        pendingHeld.delete(h);
      }
      if (signal === "SIGCONT" && dir.manifest.state === "stopped") {
        dir.manifest.state = "running";
        void dir.save();
        emit({ kind: "continued" });
      }
      void act(signal, action);
    };
    listeners.set(signal, listener);
    signals.on(signal, listener);
  }
  dropEarly();
  for (const signal of early) listeners.get(signal)?.();

  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (o.everyMs === undefined || ended || killing) return;
    timer = setTimeout(async () => {
      if (o.checkpointExitCode !== undefined) return leave("checkpointed", await checkpoint("periodic", "kill"));
      await checkpoint("periodic", "continue");
      schedule();
    }, o.everyMs);
  };
  schedule();

  /**
   * The job was killed by a signal that ckimg run received too and acts on — a scheduler's
   * broadcast that reached the program where the guard could not hold it (none known since
   * ckimg-restore --hand-over lets a restored job go stopped, every signal still blocked, for
   * the guard to seize; kept as the fallback). Its last good checkpoint is intact: the run
   * comes back from there (nothing is lost but the moments since the restart).
   */
  const killedByBroadcast = (end: JobEnd): SignalAction | undefined => {
    if (end.signal === undefined || !hold.includes(end.signal)) return undefined;
    const own = recentOwn.get(end.signal);
    if (own === undefined || Date.now() - own > BROADCAST_WINDOW_MS) return undefined;
    const name = signalName(end.signal);
    const action = name ? actions.get(name) : undefined;
    return action === "forward" || action === "ignore" ? undefined : action;   // forwarded: meant to end it
  };

  void g.ended.then(async (end) => {
    ended = true;
    ownEnd = end;
    if (timer) clearTimeout(timer);
    discard = !killing && end.signal === undefined && end.code === 0 && !(o.keepOnSuccess ?? false);
    if (discard) {
      flattening?.kill("SIGKILL");
      if (capturing) {
        try { process.kill(capturing, "SIGKILL"); } catch { /* it has ended */ }
      }
    }
    if (killing) return;    // ours: leave() finishes
    const broadcast = killedByBroadcast(end);
    if (leaving || broadcast) {
      emit({ kind: "warning", text: `the job was killed by signal ${end.signal ?? "?"} before ckimg run could hold it for a checkpoint; it comes back from the last good one` });
      if (leaving) return;  // act() goes on: no checkpoint, then leave()
      leaving = true;
      await chain;
      const jobId = process.env.SLURM_JOB_ID;
      if (broadcast === "checkpoint-requeue" && jobId) {
        const r = await requeue(jobId);
        emit({ kind: "requeue", jobId, ...r });
        return leave(r.ok ? "requeued" : "checkpointed", false);
      }
      return leave("checkpointed", false);
    }
    await chain;
    const code = describeEnd(end);
    const state = code === 0 ? "completed" : "failed";
    dir.manifest.state = state;
    dir.manifest.exitCode = code;
    finish({ exitCode: code, state, jobEnd: end });
  });

  try {
    const result = await outcome;
    await chain;
    dir.manifest.runner = null;
    if (result.state === "completed" && !o.keepOnSuccess) await dir.remove();
    else await dir.save();
    return result;
  } finally {
    if (timer) clearTimeout(timer);
    for (const h of pendingHeld) clearTimeout(h.timer);
    for (const [signal, l] of listeners) signals.off(signal, l);
  }
}

function hasChildren(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim() !== "";
  } catch {
    return false;
  }
}

const FLATTEN_CHILD = new URL("./flatten-child.js", import.meta.url);

/** Pruning's flatten in a child process at nice `nice` (./flatten-child.ts). */
function flattenInChild(input: string, output: string, nice: number, started: (c: ChildProcess) => void): Promise<{ bytes: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(FLATTEN_CHILD), input, output, String(nice)], { stdio: ["ignore", "pipe", "pipe"] });
    started(child);
    if (child.pid !== undefined && nice > 0) {
      try { setPriority(child.pid, nice); } catch { /* it lowers its own priority */ }
    }
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (t: string) => { out += t; });
    child.stderr.setEncoding("utf8").on("data", (t: string) => { err += t; });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) {
        try {
          resolve(JSON.parse(out) as { bytes: number });
          return;
        } catch { /* below */ }
      }
      reject(new Error(err.trim().split("\n").pop() || `the flattening process exited with ${code}`));
    });
  });
}

function requeue(jobId: string): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    execFile("scontrol", ["requeue", jobId], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ ok: !err, detail: (err ? `${stderr || err.message}` : stdout).trim() });
    });
  });
}
