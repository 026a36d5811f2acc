#!/usr/bin/env node
/**
 * Capture benchmark: one process with N MiB (default 1024) of touched, varied heap, captured
 * again and again by
 *   ckimg none / lz4         build/ckimg-capture (fsync included: the image is durable),
 *                            default 16 MiB page ring, copy-on-write (the default: the target
 *                            runs on while its memory is read from a forked twin)
 *   ckimg none / lz4 no-cow  the same with --no-cow: stop-and-copy
 *   ckimg none all no-cow    stop-and-copy with --buffer-mb all (target released once read)
 *   criu+sync                `criu dump --leave-running --shell-job`, then `sync -f` on the
 *                            image directory (same durability as our fsync)
 *   gcore                    gdb's core dump (not synced)
 * in alternating order over >= 5 rounds after a warm-up round; medians are compared.
 * Image size, wall time, freeze time (how long the target was stopped, measured inside the
 * target by a thread that notes the gaps between its 100 µs heartbeats: for ckimg the gap
 * overlapping the freeze window ckimg reports (freeze_window_ns), for the others the largest
 * gap of the run; "max stall" is the largest gap of the run for every tool: on a loaded machine
 * the target also stalls for tens of ms while the capture runs, frozen or not) and the extra
 * memory the capture made the target cost (copy-on-write: pages it wrote while the twin held
 * the old ones, as ckimg reports it; a stopped target writes nothing) for each.
 *
 * CRIU is taken from $CRIU, PATH or /work/tools/criu/criu/criu and never built here; without
 * it the CRIU rows are skipped with a note. `criu pre-dump` is tried once and its outcome
 * noted (it needs soft-dirty tracking). Options: --mb N, --rounds N, --json, --threads N (N more
 * threads, idle in pause(): the freeze of a program with many threads, e.g. --mb 64 --threads 64).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const MB = Number(opt("mb", process.env.CKIMG_BENCH_MB ?? "1024"));
const ROUNDS = Math.max(5, Number(opt("rounds", process.env.CKIMG_BENCH_ROUNDS ?? "5")));
const JSON_OUT = args.includes("--json");
const THREADS = Number(opt("threads", "0"));

// The target: MB MiB of heap in a mix seen in real processes (pointer-rich structs, log-like
// text, some incompressible bytes, sparsely used allocations), deterministic; a heartbeat
// thread; "g" on stdin prints and resets the largest heartbeat gap (= longest stop).
const TARGET_C = String.raw`
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static volatile uint64_t maxgap;
#define NG 65536
static uint64_t gaps[NG][2];            /* the last gaps over 1 ms: [start, end] (CLOCK_MONOTONIC) */
static volatile unsigned ngaps;
static uint64_t now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000ull + t.tv_nsec; }
static void *beat(void *a) {
  uint64_t last = now();
  for (;;) {
    struct timespec d = { 0, 100000 };
    nanosleep(&d, 0);
    uint64_t n = now();
    if (n - last > maxgap) maxgap = n - last;
    if (n - last > 1000000) { gaps[ngaps % NG][0] = last; gaps[ngaps % NG][1] = n; ngaps++; }
    last = n;
  }
  return a;
}
static void *idle(void *a) { for (;;) pause(); return a; }
int main(int argc, char **argv) {
  size_t n = (size_t)atol(argv[1]) << 20;
  uint8_t *p = malloc(n);
  uint64_t x = 88172645463325252ull;
  static const char *words[] = { "GET /api/v1/items ", "200 ", "user=", "session ", "ok ", "timeout=30 ", "INFO ", "cache hit ", "\n" };
  for (size_t pg = 0; pg < n / 4096; pg++) {
    uint8_t *q = p + pg * 4096;
    unsigned t = (unsigned)((pg * 2654435761u) >> 9) % 20;
    if (t < 3) {                       /* 15%: incompressible (hashes, compressed data) */
      for (int i = 0; i < 4096; i += 8) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; memcpy(q + i, &x, 8); }
    } else if (t < 7) {                /* 20%: log-like text */
      size_t o = 0; unsigned k = 0;
      while (o < 4096) {
        char tmp[64]; x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int l = snprintf(tmp, sizeof tmp, "%s%u ", words[x % 9], (unsigned)(pg * 64 + k++) % 100000);
        if (o + (size_t)l > 4096) l = (int)(4096 - o);
        memcpy(q + o, tmp, (size_t)l); o += (size_t)l;
      }
    } else if (t < 15) {               /* 40%: structs: pointers, small ints, flags */
      uint64_t *v = (uint64_t *)q;
      for (int i = 0; i < 512; i += 4) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        v[i] = (uint64_t)(uintptr_t)(p + ((x >> 16) % n & ~(uint64_t)15));
        v[i + 1] = pg * 128 + (unsigned)i;
        v[i + 2] = x & 0xff;
        v[i + 3] = (i & 8) ? 0 : 0x100000001ull;
      }
    } else {                           /* 25%: allocated, sparsely used */
      memset(q, 0, 4096);
      memcpy(q, &pg, 8);
      q[2048] = 1;
    }
  }
  pthread_t th;
  pthread_create(&th, 0, beat, 0);
  for (int i = argc > 4 ? atoi(argv[4]) : 0; i > 0; i--)
    pthread_create(&th, 0, idle, 0);
  /* commands and replies through FIFOs, not the stdio sockets node makes (CRIU cannot dump
   * half of a unix stream connection) */
  FILE *cmd = fopen(argv[2], "r+"), *reply = fopen(argv[3], "r+");
  if (!cmd || !reply) return 1;
  setvbuf(reply, 0, _IOLBF, 0);
  fprintf(reply, "ready\n");
  char line[64];
  while (fgets(line, sizeof line, cmd)) {   /* "g", or "w BEGIN END": also the longest gap overlapping it */
    unsigned long long b = 0, e = 0, best = 0;
    if (sscanf(line, "w %llu %llu", &b, &e) == 2)
      for (unsigned k = ngaps < NG ? 0 : ngaps - NG; k < ngaps; k++)
        if (gaps[k % NG][0] <= e && gaps[k % NG][1] >= b && gaps[k % NG][1] - gaps[k % NG][0] > best)
          best = gaps[k % NG][1] - gaps[k % NG][0];
    fprintf(reply, "gap %llu %llu\n", (unsigned long long)maxgap, best);
    maxgap = 0; ngaps = 0;
  }
  return 0;
}
`;

function which(cmd) {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function dirBytes(d) {
  let n = 0;
  for (const f of readdirSync(d)) n += statSync(join(d, f)).size;
  return n;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function startTarget(exe, work) {
  const cmdPath = join(work, "cmd.fifo"), replyPath = join(work, "reply.fifo");
  spawnSync("mkfifo", [cmdPath, replyPath]);
  const child = spawn(exe, [String(MB), cmdPath, replyPath, String(THREADS)], { stdio: "ignore" });
  // The target opens both FIFOs read-write, so these opens do not block once it runs;
  // open them only after it is up (openSync on a FIFO waits for the other end).
  let cmdFd, replyFd;
  const readLine = () => {
    let line = "";
    const b = Buffer.alloc(1);
    for (;;) {
      const n = readSync(replyFd, b, 0, 1, null);
      if (n === 0) throw new Error("target closed its reply FIFO");
      if (b[0] === 10) return line;
      line += String.fromCharCode(b[0]);
    }
  };
  return {
    child,
    ready() {
      replyFd = openSync(replyPath, "r");
      cmdFd = openSync(cmdPath, "w");
      const l = readLine();
      if (l !== "ready") throw new Error(`target said '${l}'`);
    },
    /** largest stop of the target since the last call (ms), and with window [begin, end]
     * (ns, CLOCK_MONOTONIC) the longest gap overlapping it: the stop as the target saw it,
     * not another stall of a loaded machine during the capture (0: none over 1 ms) */
    gaps(window) {
      writeSync(cmdFd, window ? `w ${window[0]} ${window[1]}\n` : "g\n");
      const f = readLine().split(" ");
      const max = Number(f[1]) / 1e6;
      return { max, overlap: window ? Number(f[2]) / 1e6 : max };
    },
  };
}

function timed(cmd, argv, env) {
  const t0 = performance.now();
  const r = spawnSync(cmd, argv, { encoding: "utf8", env: env ?? process.env, maxBuffer: 16 << 20 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(" ")} failed (${r.status}): ${(r.stderr || r.stdout || "").trim().split("\n").slice(-3).join(" | ")}`);
  return { ms, stdout: r.stdout };
}

async function main() {
  const capture = join(REPO, "build/ckimg-capture");
  if (!existsSync(capture)) {
    console.log("capture bench: build/ckimg-capture missing (npm run build)");
    return;
  }
  const work = mkdtempSync(join(tmpdir(), "ckimg-bench-"));
  const outDir = join(work, "out");
  const src = join(work, "heap.c");
  const exe = join(work, "heap");
  writeFileSync(src, TARGET_C);
  const cc = spawnSync("gcc", ["-O2", "-pthread", "-o", exe, src], { encoding: "utf8" });
  if (cc.status !== 0) throw new Error(cc.stderr);

  const criu = process.env.CRIU || which("criu") || (existsSync("/work/tools/criu/criu/criu") ? "/work/tools/criu/criu/criu" : undefined);
  const gcore = which("gcore");
  const notes = [];
  const target = startTarget(exe, work);
  const cleanDir = () => {
    rmSync(outDir, { recursive: true, force: true });
    spawnSync("mkdir", ["-p", outDir]);
  };
  try {
    target.ready();
    const pid = target.child.pid;
    const tools = [];
    // default 16 MiB ring, and "none all": a buffer for all the memory (shortest freeze)
    for (const [codec, buffer, cow] of [["none", null, true], ["lz4", null, true], ["none", null, false], ["lz4", null, false], ["none", "all", false]]) {
      tools.push({
        name: `ckimg ${codec}${buffer ? " " + buffer : ""}${cow ? "" : " no-cow"}`,
        run() {
          const img = join(outDir, "img.ckimg");
          const r = timed(capture, [String(pid), "-o", img, "--compress", codec, ...(buffer ? ["--buffer-mb", buffer] : []), ...(cow ? [] : ["--no-cow"])]);
          const j = JSON.parse(r.stdout.trim().split("\n").pop());
          if (j.cow !== cow) throw new Error(`ckimg capture: cow ${j.cow}, expected ${cow}`);
          return { ms: r.ms, bytes: statSync(img).size, selfFreezeMs: j.freeze_ms, extraBytes: j.cow_written_bytes ?? 0, window: j.freeze_window_ns };
        },
      });
    }
    if (criu) {
      tools.push({
        name: "criu+sync",
        run() {
          const d = timed(criu, ["dump", "-t", String(pid), "-D", outDir, "--leave-running", "--shell-job", "-o", "dump.log"]);
          const s = timed("sync", ["-f", outDir]);
          return { ms: d.ms + s.ms, bytes: dirBytes(outDir), dumpMs: d.ms, extraBytes: 0 };
        },
      });
      cleanDir();
      const pre = spawnSync(criu, ["pre-dump", "-t", String(pid), "-D", outDir, "--shell-job", "-o", "pre.log"], { encoding: "utf8" });
      if (pre.status === 0) notes.push("criu pre-dump: works here");
      else {
        let why = "";
        try {
          why = spawnSync("grep", ["-m1", "-i", "error", join(outDir, "pre.log")], { encoding: "utf8" }).stdout.trim();
        } catch {
          /* no log */
        }
        notes.push(`criu pre-dump fails here (exit ${pre.status}): ${why || (pre.stderr || "").trim().split("\n").pop()}`);
      }
    } else {
      notes.push("CRIU not available: set CRIU=/path/to/criu (v4.2 or later on this kernel) to compare");
    }
    if (gcore) {
      tools.push({
        name: "gcore",
        run() {
          const r = timed(gcore, ["-o", join(outDir, "core"), String(pid)]);
          return { ms: r.ms, bytes: dirBytes(outDir), extraBytes: 0 };
        },
      });
    } else {
      notes.push("gcore not available (apt-get install gdb) to compare");
    }

    const results = Object.fromEntries(tools.map((t) => [t.name, []]));
    for (let round = -1; round < ROUNDS; round++) {
      // rotate the order each round so no tool always runs after the same one
      const order = tools.map((_, i) => tools[(i + Math.max(round, 0)) % tools.length]);
      for (const t of order) {
        cleanDir();
        target.gaps(); // reset
        let r;
        try {
          r = t.run();
        } catch (err) {
          if (t.name === "criu+sync") {
            notes.push(`CRIU failed, skipped: ${err.message}`);
            tools.splice(tools.indexOf(t), 1);
            delete results[t.name];
            continue;
          }
          throw err;
        }
        const g = target.gaps(r.window);
        r.freezeMs = g.overlap;
        r.maxGapMs = g.max;
        if (round >= 0) results[t.name].push(r);
      }
    }
    cleanDir();

    const rows = Object.entries(results).map(([name, rs]) => ({
      tool: name,
      imageMiB: median(rs.map((r) => r.bytes)) / (1 << 20),
      wallMs: median(rs.map((r) => r.ms)),
      wallMinMs: Math.min(...rs.map((r) => r.ms)),
      wallMaxMs: Math.max(...rs.map((r) => r.ms)),
      freezeMs: median(rs.map((r) => r.freezeMs)),
      maxGapMs: median(rs.map((r) => r.maxGapMs)),
      extraMiB: median(rs.map((r) => r.extraBytes ?? 0)) / (1 << 20),
      ...(rs[0]?.selfFreezeMs !== undefined ? { selfReportedFreezeMs: median(rs.map((r) => r.selfFreezeMs)) } : {}),
      ...(rs[0]?.dumpMs !== undefined ? { dumpOnlyMs: median(rs.map((r) => r.dumpMs)) } : {}),
    }));
    const row = (n) => rows.find((r) => r.tool === n);
    const ratios = {};
    ratios["ckimg lz4 / ckimg lz4 no-cow (wall, goal <= 1)"] = row("ckimg lz4").wallMs / row("ckimg lz4 no-cow").wallMs;
    ratios["ckimg none / ckimg none no-cow (wall, goal <= 1)"] = row("ckimg none").wallMs / row("ckimg none no-cow").wallMs;
    ratios["ckimg lz4 / ckimg lz4 no-cow (freeze)"] = row("ckimg lz4").freezeMs / row("ckimg lz4 no-cow").freezeMs;
    if (row("criu+sync")) ratios["ckimg lz4 / criu+sync (freeze, goal <= 0.1)"] = row("ckimg lz4").freezeMs / row("criu+sync").freezeMs;
    if (row("criu+sync")) ratios["ckimg none no-cow / criu+sync (wall, goal <= 0.5)"] = row("ckimg none no-cow").wallMs / row("criu+sync").wallMs;
    if (row("criu+sync")) ratios["ckimg lz4 / criu+sync (wall)"] = row("ckimg lz4").wallMs / row("criu+sync").wallMs;
    ratios["ckimg lz4 / ckimg none (wall, goal <= 1.5)"] = row("ckimg lz4").wallMs / row("ckimg none").wallMs;
    if (row("gcore")) ratios["ckimg none / gcore (wall)"] = row("ckimg none").wallMs / row("gcore").wallMs;
    if (row("criu+sync")) ratios["ckimg none all no-cow / criu+sync (freeze)"] = row("ckimg none all no-cow").freezeMs / row("criu+sync").freezeMs;

    if (JSON_OUT) {
      console.log(JSON.stringify({ bench: "capture", heapMiB: MB, threads: THREADS + 2, rounds: ROUNDS, rows, ratios, notes }, null, 2));
      return;
    }
    console.log(`capture bench: ${MB} MiB varied heap${THREADS ? `, ${THREADS + 2} threads` : ""}, ${ROUNDS} rounds (+1 warm-up), medians; load ${spawnSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).stdout.split(" ").slice(0, 3).join(" ")}`);
    console.log("  tool                    image MiB   wall ms (min-max)        freeze ms   extra MiB   max stall ms");
    for (const r of rows) {
      const range = `${r.wallMinMs.toFixed(0)}-${r.wallMaxMs.toFixed(0)}`;
      console.log(`  ${r.tool.padEnd(22)}  ${r.imageMiB.toFixed(0).padStart(9)}   ${r.wallMs.toFixed(0).padStart(6)} (${range.padEnd(11)})   ${r.freezeMs.toFixed(0).padStart(9)}   ${r.extraMiB.toFixed(1).padStart(9)}   ${r.maxGapMs.toFixed(0).padStart(12)}` +
        (r.dumpOnlyMs !== undefined ? `   (dump ${r.dumpOnlyMs.toFixed(0)} ms + sync)` : "") +
        (r.selfReportedFreezeMs !== undefined ? `   (self-reported ${r.selfReportedFreezeMs.toFixed(0)})` : ""));
    }
    for (const [k, v] of Object.entries(ratios)) console.log(`  ratio ${k}: ${v.toFixed(2)}`);
    for (const n of notes) console.log(`  note: ${n}`);
  } finally {
    target.child.kill("SIGKILL");
    await new Promise((r) => (target.child.exitCode !== null || target.child.signalCode !== null ? r() : target.child.on("exit", r)));
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
