/**
 * Shared helpers for tests that run real processes (capture now, restore later):
 * compile a C program with gcc into a temp dir, start it with its stdout read line by line,
 * wait for lines, and always kill + reap what was started (PID 1 here does not reap orphans).
 *
 * Typical use:
 *   const exe = await compileProgram("counter");             // test/native/programs/counter.c
 *   await withProcess([exe], async (p) => {
 *     const line = await p.waitForLine(/^ready/);
 *     ...
 *   });                                                       // killed and reaped here
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { captureBinary } from "../../src/cli/capture.js";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const PROGRAMS = join(REPO, "test/native/programs");

const tempDirs: string[] = [];

/** A fresh temp dir, removed by removeTempDirs() (call it in afterAll). */
/** Throw, naming the first one missing, unless `npm run build` has made these (default: capturer, restorer, CLI). */
export function requireBuild(paths: string[] = ["build/ckimg-restore", "build/ckimg-capture", "dist/cli/main.js"]): void {
  for (const p of paths)
    if (!existsSync(join(REPO, p))) throw new Error(`${p} missing: run npm run build first`);
}

export function makeTempDir(prefix = "ckimg-test-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

export function removeTempDirs(): void {
  while (tempDirs.length) rmSync(tempDirs.pop()!, { recursive: true, force: true });
}

/** Compile C source text with gcc (-O1 -g -pthread); returns the executable path. */
export function compileC(source: string, name = "prog", extraFlags: string[] = []): string {
  const dir = makeTempDir("ckimg-cc-");
  const src = join(dir, `${name}.c`);
  const exe = join(dir, name);
  writeFileSync(src, source);
  const r = spawnSync("gcc", ["-O1", "-g", "-pthread", "-Wall", "-o", exe, src, ...extraFlags], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gcc failed for ${name}:\n${r.stderr}`);
  return exe;
}

/** Compile test/native/programs/NAME.c. */
export function compileProgram(name: string, extraFlags: string[] = []): string {
  return compileC(readFileSync(join(PROGRAMS, `${name}.c`), "utf8"), name, extraFlags);
}

export interface Started {
  pid: number;
  child: ChildProcess;
  /** every complete stdout line so far */
  lines: string[];
  stderr: () => string;
  /** Resolve with the first line (at index >= from) matching `re`; reject on exit or timeout. */
  waitForLine(re: RegExp, opts?: { from?: number; timeoutMs?: number }): Promise<string>;
  /** Resolve once `n` lines have been printed in total. */
  waitForLines(n: number, timeoutMs?: number): Promise<void>;
  write(text: string): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL (after SIGCONT, in case it is stopped) and wait until reaped. */
  kill(): Promise<void>;
}

/** Start argv[0] with args; stdin is a pipe (write()), stdout read as lines. */
export function startProcess(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Started {
  const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], cwd: opts.cwd, env: opts.env ?? process.env });
  if (child.pid === undefined) throw new Error(`cannot start ${argv[0]}`);
  const lines: string[] = [];
  let partial = "";
  let err = "";
  const waiters = new Set<() => void>();
  let done = false;
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (t: string) => {
    partial += t;
    let nl: number;
    while ((nl = partial.indexOf("\n")) >= 0) {
      lines.push(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
    wake();
  });
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (t: string) => {
    err += t;
  });
  child.stdin!.on("error", () => {});
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    child.on("exit", (code, signal) => {
      done = true;
      wake();
      res({ code, signal });
    });
  });

  function waitFor<T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    return new Promise((res, rej) => {
      const tryIt = () => {
        const v = check();
        if (v !== undefined) {
          cleanup();
          res(v);
        } else if (done) {
          cleanup();
          rej(new Error(`process ${child.pid} exited while waiting for ${what}; stderr: ${err}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        rej(new Error(`timed out waiting for ${what}; last lines: ${lines.slice(-3).join(" | ")}; stderr: ${err}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(tryIt);
      };
      waiters.add(tryIt);
      tryIt();
    });
  }

  return {
    pid: child.pid,
    child,
    lines,
    stderr: () => err,
    waitForLine(re, o = {}) {
      const from = o.from ?? 0;
      return waitFor(() => lines.slice(from).find((l) => re.test(l)), `a line matching ${re}`, o.timeoutMs ?? 30_000);
    },
    waitForLines(n, timeoutMs = 30_000) {
      return waitFor(() => (lines.length >= n ? true : undefined), `${n} lines`, timeoutMs).then(() => undefined);
    },
    write(text) {
      child.stdin!.write(text);
    },
    exited,
    async kill() {
      if (!done) {
        try {
          process.kill(child.pid!, "SIGCONT");
          process.kill(child.pid!, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
      await exited;
    },
  };
}

/** Run fn with a started process; it is killed and reaped afterwards whatever happens. */
export async function withProcess<T>(argv: string[], fn: (p: Started) => Promise<T>, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<T> {
  const p = startProcess(argv, opts);
  try {
    return await fn(p);
  } finally {
    await p.kill();
  }
}

/** Fields of /proc/PID/status as a map ("State" → "S (sleeping)"). */
export function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** Not traced and not in a ptrace stop: what a capture must leave behind. */
export function assertUntraced(pid: number): void {
  const st = procStatus(pid);
  if (st.TracerPid !== "0") throw new Error(`process ${pid} is still traced by ${st.TracerPid}`);
  for (const tid of procThreads(pid)) {
    const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    const state = s.slice(s.lastIndexOf(")") + 2)[0];
    if (state === "t") throw new Error(`thread ${tid} of ${pid} is left in a tracing stop`);
  }
}

export interface MapsLine {
  start: bigint;
  end: bigint;
  perms: string;
  offset: bigint;
  inode: bigint;
  path: string;
}

export function procMaps(pid: number): MapsLine[] {
  return readFileSync(`/proc/${pid}/maps`, "utf8").split("\n").filter(Boolean).map((l) => {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ (\d+)\s*(.*)$/.exec(l);
    if (!m) throw new Error(`bad maps line: ${l}`);
    return { start: BigInt("0x" + m[1]), end: BigInt("0x" + m[2]), perms: m[3], offset: BigInt("0x" + m[4]), inode: BigInt(m[5]), path: m[6] };
  });
}

export function procThreads(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
}

export function procFds(pid: number): { fd: number; path: string }[] {
  return readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b).map((fd) => {
    let path = "";
    try {
      path = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      /* closed meanwhile */
    }
    return { fd, path };
  });
}

export function procCmdline(pid: number, file: "cmdline" | "environ" = "cmdline"): string[] {
  const t = readFileSync(`/proc/${pid}/${file}`, "latin1");
  const parts = t.split("\0");
  if (parts[parts.length - 1] === "") parts.pop();
  return parts;
}

export function sha256File(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Run ./bin/ckimg (the built CLI) synchronously. */
export function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO, "bin/ckimg"), ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** build/ckimg-capture exists (npm run build made it). */
export function haveCaptureBinary(): boolean {
  return existsSync(join(REPO, "build/ckimg-capture"));
}

/** Wait ms milliseconds (for pacing only, never for an assertion). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll f every 50 ms until it gives a truthy value (returned); after ms, throw naming `what`. */
export async function until<T>(what: string, f: () => T | undefined | false, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Send one command line to p and wait (60 s at most) for its answer after it. */
export async function ask(p: Started, cmd: string, answer: RegExp): Promise<string> {
  const from = p.lines.length;
  p.write(cmd + "\n");
  return p.waitForLine(answer, { from, timeoutMs: 60_000 });
}

/** A process is gone (or a zombie nobody reaps: PID 1 here does not). */
export function dead(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

/** Areas of pid registered for userfaultfd write-protection (smaps VmFlags "uw"). */
export function uffdAreas(pid: number): number {
  return readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n").filter((l) => l.startsWith("VmFlags:") && / uw\b/.test(l)).length;
}

/** Live processes traced by pid (TracerPid in their status). */
export function tracees(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (new RegExp(`^TracerPid:\\s+${pid}$`, "m").test(readFileSync(`/proc/${d}/status`, "utf8"))) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * Start the capturer on targets[0] (deflate through a 1 MiB ring, one worker: the copy takes a
 * while); resolve with its pid once every target is released and it traces only copy-on-write
 * twins, i.e. after the freeze that scanned or registered the targets' areas.
 */
export async function captureUntilTwin(targets: number[], args: string[]): Promise<number> {
  const c = spawn(captureBinary(), [String(targets[0]), ...args, "--compress", "deflate", "--buffer-mb", "1"], {
    stdio: ["ignore", "ignore", "ignore"], env: { ...process.env, CKIMG_WORKERS: "1" },
  });
  let exited = false;
  c.on("exit", () => { exited = true; });
  for (let t = 0; t < 20_000 && !exited; t += 5) {
    const tr = tracees(c.pid!);
    if (tr.length && tr.every((p) => !targets.includes(p)) && targets.every((p) => /^TracerPid:\s+0$/m.test(readFileSync(`/proc/${p}/status`, "utf8"))))
      return c.pid!;
    await sleep(5);
  }
  throw new Error("the capturer ended (or never released its targets) before it could be killed mid-copy");
}
