// Shared helpers for the benchmarks: where the build and CRIU are, options, compiling the C
// programs under test, timing child processes (wall time and peak RSS via GNU time, or a child
// subreaper's own clock), medians, and table printing.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
export const RESTORE = join(REPO, "build/ckimg-restore");
export const CAPTURE = join(REPO, "build/ckimg-capture");

/** `--name VALUE` from the command line, else dflt. */
export function cliOption(name, dflt) {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
}

/** CRIU from $CRIU, the source build the benches document (/work/tools/criu), or PATH; null if none. */
export function findCriu() {
  for (const c of [process.env.CRIU, "/work/tools/criu/criu/criu"]) if (c && existsSync(c)) return c;
  const r = spawnSync("sh", ["-c", "command -v criu"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait until pid has left /proc (reaped), at most 10 s. */
export async function gone(pid) {
  for (let i = 0; i < 1000 && existsSync(`/proc/${pid}`); i++) await sleep(10);
  if (existsSync(`/proc/${pid}`)) throw new Error(`pid ${pid} stays taken`);
}

/** Compile C source text to the executable out (-O2). */
export function compileC(src, out) {
  writeFileSync(out + ".c", src);
  const r = spawnSync("gcc", ["-O2", "-o", out, out + ".c"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  return out;
}

/** The tests' child subreaper (test/native/restore-programs/subreaper.c), built into dir. */
export function buildSubreaper(dir) {
  return compileC(readFileSync(join(REPO, "test/native/restore-programs/subreaper.c"), "utf8"), join(dir, "subreaper"));
}

/** The direct child of pid (the program a subreaper started), from /proc. */
export function childOf(pid) {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
  if (kids.length !== 1) throw new Error(`process ${pid} has ${kids.length} children, not one`);
  return Number(kids[0]);
}

/**
 * Run argv under the subreaper; resolve when its direct child exits, with that child's wall
 * time (s, the subreaper's clock) and status. The subreaper lives on, reaping what a detached
 * restore leaves behind, until finishUnderReaper.
 */
export function timeUnderReaper(reaper, argv) {
  return new Promise((resolve, reject) => {
    const c = spawn(reaper, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let err = "", out = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => {
      err += d;
      const m = /child-exit (\d+) (\d+)/.exec(err);
      if (m && !c.reported) {
        c.reported = true;
        resolve({ seconds: Number(m[2]) / 1e9, status: Number(m[1]), child: c, out: () => out, err: () => err });
      }
    });
    c.on("error", reject);
    c.on("exit", () => { if (!c.reported) reject(new Error(`${argv[0]} under the subreaper failed: ${err}`)); });
  });
}

/** Kill the restored pid, let the subreaper of run reap it and exit. */
export async function finishUnderReaper(run, pid) {
  try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
  await new Promise((r) => (run.child.exitCode !== null ? r() : run.child.on("exit", r)));
  await gone(pid);
}

/**
 * Start `prog args…` under the subreaper in its own session, stdio on outFile (a process CRIU
 * dumps without --shell-job), and wait until it prints "ready". setsid(1) execs in place (sh
 * is not a group leader), so the subreaper's child is the program. Returns its PID and the
 * subreaper's child handle (finishUnderReaper ends both).
 */
export async function startUnderReaper(reaper, prog, args, outFile) {
  const quoted = [prog, ...args].map((a) => `'${String(a).replace(/'/g, "'\\''")}'`).join(" ");
  const sh = spawn(reaper, ["sh", "-c", `exec setsid ${quoted} > '${outFile}' 2>&1 < /dev/null`], { stdio: "ignore" });
  for (let i = 0; i < 6000 && !(existsSync(outFile) && readFileSync(outFile, "utf8").includes("ready")); i++) await sleep(10);
  const pid = childOf(sh.pid);
  if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith(prog)) throw new Error(`${prog} did not start: ${readFileSync(outFile, "utf8")}`);
  return { pid, child: sh };
}

/**
 * Restore commands [name, argv] timed in alternation (round -1 a warm-up: page cache, first
 * touch), each under the subreaper, the restored `pid` killed after each; returns the seconds
 * of every counted round by name.
 */
export async function timeRestores(reaper, modes, pid, rounds) {
  const times = Object.fromEntries(modes.map(([n]) => [n, []]));
  for (let round = -1; round < rounds; round++) {
    for (const [name, argv] of modes) {
      const run = await timeUnderReaper(reaper, argv);
      if (run.status !== 0) throw new Error(`${name}: exit ${run.status}: ${run.err()}`);
      await finishUnderReaper(run, pid);
      if (round >= 0) times[name].push(run.seconds);
    }
  }
  return times;
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Run a command; returns { seconds, maxRssKiB, status, stdout }. Uses /usr/bin/time for RSS when present. */
export function timeCommand(cmd, args, opts = {}) {
  const haveTime = existsSync("/usr/bin/time");
  const t0 = process.hrtime.bigint();
  const r = haveTime
    ? spawnSync("/usr/bin/time", ["-f", "__RSS__%M", cmd, ...args], { encoding: "buffer", maxBuffer: 1 << 30, ...opts })
    : spawnSync(cmd, args, { encoding: "buffer", maxBuffer: 1 << 30, ...opts });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const stderr = r.stderr?.toString() ?? "";
  const m = /__RSS__(\d+)/.exec(stderr);
  return { seconds, maxRssKiB: m ? Number(m[1]) : undefined, status: r.status, stdout: r.stdout, stderr: stderr.replace(/__RSS__\d+\n?/, "") };
}

export function table(head, rows) {
  const cells = [head, ...rows].map((r) => r.map(String));
  const w = head.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  for (const r of cells) console.log("  " + r.map((c, i) => c.padEnd(w[i])).join("  "));
}

export const fmt = {
  ms: (s) => `${(s * 1000).toFixed(1)} ms`,
  s: (s) => `${s.toFixed(3)} s`,
  mib: (kib) => (kib === undefined ? "?" : `${(kib / 1024).toFixed(0)} MiB`),
  x: (r) => `${r.toFixed(2)}x`,
};
