/**
 * Helpers for `ckimg run` tests: the hashing job (compiled once), `ckimg run` started in its own
 * process group with stdout/stderr collected, waits on its stderr lines, and a cleanup that
 * kills every process below it (the guard adopts the restored job; PID 1 here does not reap).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { REPO, compileC } from "../native/helpers.js";

export const CKIMG = join(REPO, "bin/ckimg");

let hashjob: string | undefined;
export function hashJob(): string {
  hashjob ??= compileC(readFileSync(join(REPO, "test/job/programs/hashjob.c"), "utf8"), "hashjob");
  return hashjob;
}

/** What the uninterrupted job prints. */
export function referenceOutput(steps: number, forks = 0): string {
  const r = spawnSync(hashJob(), [String(steps), "0", String(forks)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`hashjob failed: ${r.stderr}`);
  return r.stdout;
}

export interface RunningCkimg {
  pid: number;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** The first stderr line (from index `from` on) matching re. */
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started: number[] = [];

export function startCkimg(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): RunningCkimg {
  const child = spawn(process.execPath, [CKIMG, ...args], { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  if (child.pid === undefined) throw new Error("cannot start ckimg");
  started.push(child.pid);
  let out = "";
  let err = "";
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding("utf8").on("data", (t: string) => { out += t; });
  child.stderr!.setEncoding("utf8").on("data", (t: string) => { err += t; for (const w of [...waiters]) w(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.on("close", (code, signal) => { for (const w of [...waiters]) w(); res({ code, signal }); });
  });
  let done = false;
  void exited.then(() => { done = true; });
  return {
    pid: child.pid, child, stdout: () => out, stderr: () => err, exited,
    waitForStderr(re, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = err.split("\n").find((l) => re.test(l));
          if (line !== undefined) { cleanup(); resolve(line); return; }
          if (done) { cleanup(); reject(new Error(`ckimg run ended before ${re}; stderr:\n${err}`)); }
        };
        const timer = setTimeout(() => { cleanup(); reject(new Error(`timed out waiting for ${re}; stderr:\n${err}`)); }, timeoutMs);
        const cleanup = () => { clearTimeout(timer); waiters.delete(check); };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Every live process below pid (children first listed last). */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parent) if (pp === p) { out.push(c); walk(c); }
  };
  walk(pid);
  return out;
}

/** Process state letter from /proc (R, S, T, t, Z…), or undefined when gone. */
export function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return undefined;
  }
}

/** Kill every ckimg run started here and everything below it (call in afterEach). */
export async function killStarted(extra: number[] = []): Promise<void> {
  for (const pid of started.splice(0)) {
    for (const p of [...descendants(pid).reverse(), pid]) {
      try { process.kill(p, "SIGKILL"); } catch { /* gone */ }
    }
  }
  for (const p of extra) {
    try { process.kill(p, "SIGKILL"); } catch { /* gone */ }
  }
}

export function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try { process.kill(pid, signal); } catch { /* gone */ }
}
