#!/usr/bin/env node
// Runs CRIU's own zdtm static tests (the single-process ones) through ckimg, the zdtm way:
// each test is started by the command its Makefile gives (`make -n NAME.pid`: --pidfile,
// --outfile and the test's own arguments), its launcher exits once the test is ready and has
// written its pidfile, then `ckimg capture PID -o IMG --kill`, `ckimg restore --detach IMG`,
// SIGTERM, and the test's verdict is read from its outfile ("PASS").
//
// Nothing of CRIU is copied into this repository: the script copies test/zdtm/{Makefile.inc,
// lib,static} of the CRIU source tree you name into a work directory (so that building and
// running never touch that tree) and builds the tests it runs there with CRIU's Makefiles.
// Not part of `npm test` (CI has no CRIU source).
//
//   node scripts/zdtm-sweep.mjs --criu-src /path/to/criu [--work DIR] [--compress CODEC]
//                              [--json FILE] [--all] [TEST ...]
//
// --criu-src: CRIU source tree (default $CRIU_SRC); --work: build/run directory (default
// $TMPDIR/ckimg-zdtm-UID); TEST names: run those instead of the default list below; --all:
// every test of the static Makefile's TST_NOFILE/TST_FILE/TST_DIR lists (slow; many need
// namespaces, root or a process tree and are not single-process tests). Exit status 0 when
// every test run passed.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(REPO, "bin/ckimg");

// Single-process zdtm static tests (the process and its threads; a few fork a short-lived
// helper or keep a child, which ckimg captures as a tree), grouped by what they exercise.
const DEFAULT_TESTS = {
  "cpu/memory": "busyloop00 sleeping00 pid00 fpu00 fpu01 fpu02 fpu03 mmx00 sse00 sse20 mprotect00 maps00 maps01 maps02 maps04 maps05 mem-touch grow_map grow_map02 vdso00 vdso01 futex futex-rl membarrier rseq00 thp_disable",
  "process state": "caps00 sched_prio00 sched_policy00 rlimits00 xids00 groups utsname selfexe00 uptime_grow dumpable01 oom_score_adj child_subreaper env00 umask00 cmdlinenv00 cwd00 cwd01 proc-self",
  threads: "pthread00 pthread01 pthread02",
  "signals/timers": "sigpending sigaltstack sigtrap01 timers timers01 posix_timers pthread_timers",
  seccomp: "seccomp_strict seccomp_filter seccomp_filter_threads seccomp_no_new_privs",
  files: "write_read00 write_read01 write_read02 file_shared file_append file_cloexec file_fown fd_offset unlink_fstat00 unlink_fstat01 ghost_holes00 memfd00 memfd01 file_locks00 file_locks01 file_lease00",
  "pipes/fifos": "pipe00 pipe01 pipe02 fifo fifo_ro fifo_wronly unlink_fifo",
  "anon fds": "eventfs00 timerfd signalfd00 epoll epoll01 inotify00",
  "unix sockets": "sockets00 sockets01 sockets02 sockets03 sockets_spair sockets_dgram socket_queues sk-unix-unconn socket_dgram_data deleted_unix_sock sock_peercred unbound_sock",
  "inet sockets": "socket_listen socket_listen6 socket_udp socket6_udp socket_udp-corked socket_udp_shutdown socket_close_data socket_snd_addr socket-tcp socket-tcp6 socket-tcp-listen sock_opts00 sock_opts01",
  ttys: "pty00 pty01",
};

const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const bool = (name) => {
  const i = args.indexOf(`--${name}`);
  if (i >= 0) args.splice(i, 1);
  return i >= 0;
};
const criuSrc = flag("criu-src") ?? process.env.CRIU_SRC;
const work = flag("work") ?? join(tmpdir(), `ckimg-zdtm-${process.getuid?.() ?? 0}`);
const codec = flag("compress") ?? "lz4";
const jsonOut = flag("json");
const all = bool("all");
if (!criuSrc || !existsSync(join(criuSrc, "test/zdtm/static/Makefile"))) {
  console.error("usage: zdtm-sweep.mjs --criu-src CRIU_SOURCE_DIR [--work DIR] [--compress CODEC] [--json FILE] [--all] [TEST ...]");
  console.error(criuSrc ? `${criuSrc}: no test/zdtm/static/Makefile there` : "no CRIU source tree named (--criu-src or $CRIU_SRC)");
  process.exit(2);
}
for (const b of ["build/ckimg-capture", "build/ckimg-restore", "dist/cli/main.js"])
  if (!existsSync(join(REPO, b))) {
    console.error(`${b} missing: run npm run build first`);
    process.exit(2);
  }

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sh = (cmd, argv, opts = {}) => spawnSync(cmd, argv, { encoding: "utf8", maxBuffer: 1 << 26, ...opts });

// --- the work copy and the build -------------------------------------------------------------
mkdirSync(work, { recursive: true });
const zsrc = join(criuSrc, "test/zdtm");
// cp -u: files newer in the source are copied again; built objects stay.
const cp = sh("cp", ["-a", "-u", join(zsrc, "Makefile.inc"), join(zsrc, "lib"), join(zsrc, "static"), work]);
if (cp.status !== 0) throw new Error(`copying ${zsrc}: ${cp.stderr}`);
const STATIC = join(work, "static");

function makeVar(name) {
  const r = sh("make", ["-s", "-C", STATIC, "--no-print-directory", "-f", "Makefile", "-f", "-", `print-${name}`], {
    input: `print-%:\n\t@echo $($*)\n`,
  });
  return r.stdout.trim().split(/\s+/).filter(Boolean);
}

let groups;
if (args.length) groups = { selected: args.join(" ") };
else if (all) groups = { all: ["TST_NOFILE", "TST_FILE", "TST_DIR"].flatMap(makeVar).join(" ") };
else groups = DEFAULT_TESTS;
const tests = Object.entries(groups).flatMap(([g, names]) => names.split(/\s+/).filter(Boolean).map((name) => ({ name, group: g })));

const reaperSrc = join(REPO, "test/native/restore-programs/subreaper.c");
const REAPER = join(work, "ckimg-subreaper");
if (sh("cc", ["-O2", "-o", REAPER, reaperSrc]).status !== 0) throw new Error("cannot build the subreaper");

console.log(`building zdtm lib and ${tests.length} tests in ${work} …`);
const lib = sh("make", ["-s", "-C", join(work, "lib"), "-j2"]);
if (lib.status !== 0) throw new Error(`zdtm lib does not build:\n${lib.stderr}`);
sh("make", ["-s", "-k", "-j2", "-C", STATIC, ...tests.map((t) => t.name)]);

// --- one test --------------------------------------------------------------------------------
function alive(pid) {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) [ZX]/s.test(st);
  } catch {
    return false;
  }
}
async function waitGone(pid, ms) {
  for (let t = 0; t < ms && alive(pid); t += 50) await sleep(50);
  return !alive(pid);
}
/** Every descendant of pid (through /proc/PID/task/TID/children), deepest last. */
function descendants(pid) {
  const out = [];
  const walk = (p) => {
    let tids = [];
    try { tids = readdirSync(`/proc/${p}/task`); } catch { return; }
    for (const t of tids) {
      let kids = "";
      try { kids = readFileSync(`/proc/${p}/task/${t}/children`, "utf8"); } catch { continue; }
      for (const k of kids.split(/\s+/).filter(Boolean).map(Number)) {
        out.push(k);
        walk(k);
      }
    }
  };
  walk(pid);
  return out;
}
/** Kill a subreaper run and everything under it (a test that never got ready). */
function killTree(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;   // gone (and reaped): its pid may be another's now
  for (const p of [...descendants(child.pid), child.pid]) try { process.kill(p, "SIGKILL"); } catch { /* gone */ }
}
function killGroup(pid) {
  for (const target of [-pid, pid]) try { process.kill(target, "SIGKILL"); } catch { /* gone */ }
}
/** Run argv under the subreaper; resolves when it (and every descendant) is gone. */
function reaped(argv, opts) {
  const c = spawn(REAPER, argv, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  let out = "";
  c.stdout.on("data", (d) => (out += d));
  c.stderr.on("data", (d) => (out += d));
  const exited = new Promise((r) => c.on("exit", (code) => r(code)));
  return { child: c, exited, out: () => out, launched: new Promise((r) => {
    const check = () => { const m = /child-exit (\d+)/.exec(out); if (m) r(Number(m[1])); };
    c.stderr.on("data", check);
    c.on("exit", () => r(-1));
  }) };
}
// the first line that says something, without "ckimg: /path/IMG.img: "
const firstLine = (s) =>
  (s.split("\n").find((l) => l.trim() && !/^child-exit /.test(l) && !/: warning: /.test(l)) ?? "").trim().replace(/^ckimg: \S+\.img: /, "").slice(0, 140);

async function runOne(t) {
  const { name } = t;
  if (!existsSync(join(STATIC, name))) return { result: "build", detail: "does not build here" };
  // every outfile of a run before, the helper process's `NAME.out.external` too: the tests open
  // them O_EXCL (zdtm lib test_log_init), and a helper that cannot exits silently while the test
  // waits for it forever (socket-tcp*: its client never connects, accept never returns)
  for (const f of readdirSync(STATIC))
    if (f === `${name}.pid` || f === `${name}.img` || f === `${name}.out` || f.startsWith(`${name}.out.`))
      rmSync(join(STATIC, f), { force: true, recursive: true });
  for (const f of [`${name}.test`, `${name}.dir.test`]) rmSync(join(STATIC, f), { force: true, recursive: true });
  const dry = sh("make", ["-s", "-n", "-C", STATIC, "--no-print-directory", `${name}.pid`]);
  const cmd = dry.stdout.trim().split("\n").pop() ?? "";
  if (!cmd.includes("--pidfile")) return { result: "start", detail: `no start rule: ${firstLine(dry.stderr || dry.stdout)}` };
  const outFile = join(STATIC, `${name}.out`);
  const readOut = () => [outFile, `${outFile}.inprogress`].map((f) => (existsSync(f) ? readFileSync(f, "utf8") : "")).join("");

  // start: the launcher exits once the test is ready; the test stays under our subreaper
  const start = reaped(["sh", "-c", cmd], { cwd: STATIC });
  const lst = await Promise.race([start.launched, sleep(120_000).then(() => "timeout")]);
  const pidFile = join(STATIC, `${name}.pid`);
  if (lst !== 0 || !existsSync(pidFile)) {
    killTree(start.child);
    return { result: "start", detail: lst === "timeout" ? "not ready in 120 s" : firstLine(readOut() || start.out()) };
  }
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  const img = join(STATIC, `${name}.img`);
  try {
    const cap = sh(process.execPath, [CLI, "capture", String(pid), "-o", img, "--compress", codec, "--kill"], { cwd: STATIC, timeout: 120_000 });
    if (cap.status !== 0) return { result: "capture", detail: firstLine(cap.stderr || cap.stdout) };
    await Promise.race([start.exited, sleep(20_000)]);
    if (!(await waitGone(pid, 10_000))) return { result: "capture", detail: "process still alive after --kill" };

    const rst = reaped([process.execPath, CLI, "restore", "--detach", img], { cwd: STATIC });
    const rc = await Promise.race([rst.launched, sleep(120_000).then(() => "timeout")]);
    if (rc !== 0) {
      if (alive(pid)) killGroup(pid);
      killTree(rst.child);
      return { result: "restore", detail: rc === "timeout" ? "restore did not return in 120 s" : firstLine(rst.out()) };
    }
    const warn = rst.out().split("\n").filter((l) => /warning/i.test(l)).length;
    try { process.kill(pid, "SIGTERM"); } catch { return { result: "FAIL", detail: "restored process gone before SIGTERM" + tail(readOut()) }; }
    const ended = await Promise.race([rst.exited.then(() => true), sleep(60_000).then(() => false)]);
    if (!ended) {
      if (alive(pid)) killGroup(pid);
      return { result: "FAIL", detail: "did not stop within 60 s of SIGTERM" };
    }
    const out = readOut();
    if (/\bPASS\b/.test(out)) return { result: "PASS", detail: warn ? `${warn} restore warning(s)` : "" };
    return { result: "FAIL", detail: tail(out) || "no verdict in the outfile" };
  } finally {
    if (alive(pid)) killGroup(pid); // only while it is still the test: it is gone once reaped
    killTree(start.child);
    rmSync(img, { force: true });
  }
}
function tail(out) {
  const lines = out.split("\n").filter((l) => /FAIL|ERR|fail|error/.test(l));
  return (lines.pop() ?? out.trim().split("\n").pop() ?? "").replace(/^.*?\(\d+\)\s*/, "").trim().slice(0, 110);
}

// --- the sweep -------------------------------------------------------------------------------
const results = [];
for (const t of tests) {
  const t0 = Date.now();
  let r;
  try {
    r = await runOne(t);
  } catch (e) {
    r = { result: "error", detail: String(e.message ?? e).split("\n")[0] };
  }
  results.push({ ...t, ...r, seconds: (Date.now() - t0) / 1000 });
  console.log(`  ${t.name.padEnd(26)} ${r.result.padEnd(8)} ${r.detail}`);
}

console.log("");
const byGroup = new Map();
for (const r of results) {
  const g = byGroup.get(r.group) ?? { pass: 0, total: 0 };
  g.total++;
  if (r.result === "PASS") g.pass++;
  byGroup.set(r.group, g);
}
const w = Math.max(...[...byGroup.keys()].map((k) => k.length));
for (const [g, { pass, total }] of byGroup) console.log(`  ${g.padEnd(w)}  ${pass}/${total}`);
const passed = results.filter((r) => r.result === "PASS").length;
const failed = results.filter((r) => r.result !== "PASS");
console.log(`\n${passed} of ${results.length} passed` + (failed.length ? ` (not passing: ${failed.map((r) => `${r.name} [${r.result}]`).join(", ")})` : ""));
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ codec, passed, total: results.length, results }, null, 2) + "\n");
process.exit(failed.length ? 1 : 0);
