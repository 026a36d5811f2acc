#!/usr/bin/env node
/**
 * CRIU reader benchmark: a process with N MiB (default 1024) of touched heap is dumped by CRIU
 * (`criu dump --leave-running`), and the dump is packed into a Podman-layout `.tar`
 * (checkpoint/ + config.dump + spec.dump, entry names as Podman writes them). Then whole-process
 * wall and CPU (user + sys) time, medians of >= 5 alternated rounds after a warm-up round:
 *   ckimg inspect DIR / ckimg inspect ARCHIVE.tar   (process, threads, map, files, tree, sockets)
 *   crit x DIR ps + crit x DIR mems + crit x DIR fds (CRIU's own tool: the nearest equivalent of
 *                                                     inspect; three processes, summed)
 *   crit show pagemap-PID.img                        (one file decoded, for scale)
 *   checkpointctl inspect --ps-tree --files --sockets ARCHIVE.tar   (archives only)
 *   ckimg mem --search NEEDLE DIR / .tar             vs checkpointctl memparse --pid PID --search
 *   grep -c NEEDLE pages-*.img                       (a floor: a plain byte scan of the file)
 * and the ratios of ckimg to each peer and to the faster peer (the goal: <= 0.5x of it, CPU).
 * Before timing, every search must find the needle once (a peer that finds nothing is reported
 * and left out of the ratios: it did not do the work).
 * crit runs from CRIU's source tree with its protobuf modules generated into a temp dir (needs
 * protoc and python3-protobuf). checkpointctl is $CHECKPOINTCTL or
 * /work/tools/checkpointctl/checkpointctl (a Go program, built outside this repository; without
 * it its rows are left out). Here: v1.3.0, the newest tag Debian 12's Go 1.19 builds offline
 * (`go build -mod=vendor` after dropping go.mod's `toolchain` line; v1.4.0+ vendor code that
 * needs Go 1.21's slices/maps), with one function patched: its go-criu v7 reads a pagemap
 * entry's page count from field 2 (compat_nr_pages, 0 in CRIU >= 4.0 images), so unpatched
 * `memparse --search` searches 0 bytes of a CRIU 4.2 dump and finds nothing; the patch falls
 * back to field 5 (nr_pages) as go-criu v8 does.
 * CRIU is $CRIU or /work/tools/criu/criu/criu; without it (or root) the bench says so and exits 0.
 * Options: --mb N, --rounds N (>= 5), --repeat N (runs of each short job per round, default 3).
 */
import { spawn, spawnSync } from "node:child_process";
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fmt, median, table, timeCommand as timeWall } from "./_util.mjs";

/**
 * Wall time plus CPU time (user + sys, from GNU time) of one run: on a shared 2-core VM the
 * wall time mostly measures the other jobs; CPU time is what the tool itself spent.
 */
function timeCommand(cmd, argv, opts = {}) {
  if (!existsSync("/usr/bin/time")) return { ...timeWall(cmd, argv, opts), cpu: NaN };
  const t0 = process.hrtime.bigint();
  const r = spawnSync("/usr/bin/time", ["-f", "__T__%U %S %M", cmd, ...argv], { encoding: "buffer", maxBuffer: 1 << 30, ...opts });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const stderr = r.stderr?.toString() ?? "";
  const m = /__T__([\d.]+) ([\d.]+) (\d+)/.exec(stderr);
  return { seconds, status: r.status, stdout: r.stdout, stderr: stderr.replace(/__T__.*\n?/, ""), cpu: m ? Number(m[1]) + Number(m[2]) : NaN, maxRssKiB: m ? Number(m[3]) : undefined };
}

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const MB = Number(opt("mb", process.env.CKIMG_BENCH_MB ?? "1024"));
const ROUNDS = Math.max(5, Number(opt("rounds", "5")));
const REPEAT = Math.max(1, Number(opt("repeat", "3")));
const CRIU = [process.env.CRIU, "/work/tools/criu/criu/criu"].find((p) => p && existsSync(p));
const CRIU_SRC = process.env.CRIU_SRC ?? (CRIU ? resolve(dirname(CRIU), "..") : undefined);
const CHECKPOINTCTL = [process.env.CHECKPOINTCTL, "/work/tools/checkpointctl/checkpointctl"].find((p) => p && existsSync(p));
const CKIMG = join(REPO, "bin/ckimg");
const NEEDLE = "CKIMG-BENCH-NEEDLE-7f3a";

if (!CRIU || process.getuid?.() !== 0) {
  console.log(`criu bench skipped: ${!CRIU ? "no CRIU (set CRIU=path)" : "CRIU needs root"}`);
  process.exit(0);
}

const TARGET_C = String.raw`
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  size_t mb = strtoul(argv[1], 0, 10), n = mb << 20;
  unsigned char *p = malloc(n);
  uint64_t x = 88172645463325252ull;
  for (size_t o = 0; o < n; o += 4096) {
    /* per page: 1 KiB of xorshift noise, 3 KiB of log-like text (compressible, as real heaps are) */
    for (int i = 0; i < 1024; i += 8) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; memcpy(p + o + i, &x, 8); }
    snprintf((char *)p + o + 1024, 3072, "page %zu: request id=%llu status=ok path=/api/v1/items/%zu user=bench", o / 4096, (unsigned long long)x, o % 9973);
  }
  memcpy(p + n - 4096 + 100, "${NEEDLE}", sizeof("${NEEDLE}"));
  printf("ready %d\n", getpid());
  fflush(stdout);
  for (;;) pause();
}
`;

const tmp = mkdtempSync(join(tmpdir(), "ckimg-bench-criu-"));
let target;
try {
  writeFileSync(join(tmp, "t.c"), TARGET_C);
  if (spawnSync("gcc", ["-O2", "-o", join(tmp, "t"), join(tmp, "t.c")]).status !== 0) throw new Error("gcc failed");
  // Its own session, stdio to a file: CRIU dumps it without --shell-job.
  const outFd = openSync(join(tmp, "t.out"), "w");
  target = spawn(join(tmp, "t"), [String(MB)], { detached: true, stdio: ["ignore", outFd, outFd] });
  closeSync(outFd);
  for (let i = 0; !/ready/.test(readFileSync(join(tmp, "t.out"), "utf8")); i++) {
    if (i > 600 || target.exitCode !== null) throw new Error("target did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  const dir = join(tmp, "dump");
  mkdirSync(dir);
  const dump = timeCommand(CRIU, ["dump", "-t", String(target.pid), "-D", dir, "-o", "dump.log", "--leave-running"]);
  if (dump.status !== 0) throw new Error(`criu dump failed: ${readFileSync(join(dir, "dump.log"), "utf8").split("\n").filter((l) => /Error/.test(l)).join("\n")}`);
  // Podman layout, uncompressed (podman checkpoint --compress none).
  const arc = join(tmp, "arc");
  mkdirSync(join(arc, "checkpoint"), { recursive: true });
  for (const f of readdirSync(dir)) if (f !== "dump.log") cpSync(join(dir, f), join(arc, "checkpoint", f));
  writeFileSync(join(arc, "config.dump"), JSON.stringify({ id: "bench", name: "bench", rootfsImageName: "bench:latest", runtime: "crun", createdTime: new Date().toISOString() }));
  writeFileSync(join(arc, "spec.dump"), JSON.stringify({ annotations: { "io.container.manager": "libpod" } }));
  const tar = join(tmp, "bench.tar");
  // Entry names `checkpoint/…`, `config.dump` (no `./`), as Podman's export writes them.
  if (spawnSync("tar", ["-C", arc, "-cf", tar, "checkpoint", "config.dump", "spec.dump"]).status !== 0) throw new Error("tar failed");
  rmSync(arc, { recursive: true });
  const pagesFile = readdirSync(dir).find((f) => f.startsWith("pages-"));
  const pagemap = readdirSync(dir).find((f) => f.startsWith("pagemap-"));

  // crit from CRIU's source tree, protobuf modules generated into tmp.
  let critEnv;
  if (CRIU_SRC && existsSync(join(CRIU_SRC, "crit/crit")) && spawnSync("protoc", ["--version"]).status === 0) {
    const py = join(tmp, "py");
    cpSync(join(CRIU_SRC, "lib/pycriu"), join(py, "pycriu"), { recursive: true });
    cpSync(join(CRIU_SRC, "crit/crit"), join(py, "crit"), { recursive: true });
    const protos = readdirSync(join(CRIU_SRC, "images")).filter((f) => f.endsWith(".proto") && f !== "rpc.proto");
    const ok = spawnSync("protoc", ["-I", join(CRIU_SRC, "images"), "-I", "/usr/include", `--python_out=${join(py, "pycriu/images")}`, ...protos.map((f) => join(CRIU_SRC, "images", f))]).status === 0
      && spawnSync("protoc", ["-I", join(CRIU_SRC, "images"), `--python_out=${join(py, "pycriu")}`, join(CRIU_SRC, "images/rpc.proto")]).status === 0
      && spawnSync("/usr/bin/python3", [join(CRIU_SRC, "scripts/magic-gen.py"), join(CRIU_SRC, "criu/include/magic.h"), join(py, "pycriu/images/magic.py")]).status === 0;
    writeFileSync(join(py, "pycriu/images/pb.py"), protos.filter((f) => f !== "opts.proto").map((f) => `from .${f.replace(/\.proto$/, "_pb2").replace(/-/g, "_")} import *`).join("\n") + "\n");
    writeFileSync(join(py, "pycriu/version.py"), '__version__ = "src"\n');
    writeFileSync(join(py, "crit/version.py"), '__version__ = "src"\n');
    const env = { ...process.env, PYTHONPATH: py };
    if (ok && spawnSync("/usr/bin/python3", ["-m", "crit", "x", dir, "ps"], { env }).status === 0) critEnv = env;
  }

  // Every search must find the needle once before it is timed.
  const found = (out) => (out?.toString().match(new RegExp(NEEDLE, "g")) ?? []).length;
  const searches = {
    "ckimg mem --search DIR": [CKIMG, ["mem", "--search", NEEDLE, dir]],
    "ckimg mem --search .tar": [CKIMG, ["mem", "--search", NEEDLE, tar]],
  };
  let ctlVersion, ctlSearchOk = false;
  if (CHECKPOINTCTL) {
    // v1.3.0 has no version command: the file name says which build it is
    ctlVersion = basename(realpathSync(CHECKPOINTCTL));
    searches["checkpointctl memparse --search .tar"] = [CHECKPOINTCTL, ["memparse", "--pid", String(target.pid), "--search", NEEDLE, tar]];
  }
  const missed = [];
  for (const [name, [cmd, argv]] of Object.entries(searches)) {
    const r = spawnSync(cmd, argv, { maxBuffer: 1 << 26 });
    const n = found(r.stdout);
    if (n < 1) missed.push(`${name}: exit ${r.status}, needle not found (${(r.stdout?.toString() + r.stderr?.toString()).trim().split("\n").pop()})`);
    else if (name.startsWith("checkpointctl")) ctlSearchOk = true;
  }
  if (missed.some((m) => m.startsWith("ckimg"))) throw new Error(missed.join("\n"));

  const jobs = {
    "ckimg inspect DIR": () => timeCommand(CKIMG, ["inspect", dir]),
    "ckimg inspect .tar": () => timeCommand(CKIMG, ["inspect", tar]),
    "ckimg mem --search DIR": () => timeCommand(...searches["ckimg mem --search DIR"]),
    "ckimg mem --search .tar": () => timeCommand(...searches["ckimg mem --search .tar"]),
    "grep -c (byte scan floor)": () => timeCommand("grep", ["-c", "-a", NEEDLE, join(dir, pagesFile)]),
  };
  if (CHECKPOINTCTL) {
    jobs["checkpointctl inspect .tar"] = () => timeCommand(CHECKPOINTCTL, ["inspect", "--ps-tree", "--files", "--sockets", tar]);
    if (ctlSearchOk) jobs["checkpointctl memparse --search .tar"] = () => timeCommand(...searches["checkpointctl memparse --search .tar"]);
  }
  if (critEnv) {
    jobs["crit x ps+mems+fds"] = () => {
      const a = timeCommand("/usr/bin/python3", ["-m", "crit", "x", dir, "ps"], { env: critEnv });
      const b = timeCommand("/usr/bin/python3", ["-m", "crit", "x", dir, "mems"], { env: critEnv });
      const c = timeCommand("/usr/bin/python3", ["-m", "crit", "x", dir, "fds"], { env: critEnv });
      return { seconds: a.seconds + b.seconds + c.seconds, cpu: a.cpu + b.cpu + c.cpu, status: a.status || b.status || c.status, maxRssKiB: Math.max(a.maxRssKiB ?? 0, b.maxRssKiB ?? 0, c.maxRssKiB ?? 0) };
    };
    jobs["crit show pagemap"] = () => timeCommand("/usr/bin/python3", ["-m", "crit", "show", join(dir, pagemap)], { env: critEnv });
  }
  const times = Object.fromEntries(Object.keys(jobs).map((k) => [k, []]));
  const cpus = Object.fromEntries(Object.keys(jobs).map((k) => [k, []]));
  const rss = {};
  // The short jobs (inspect and its peers, ~0.3-1 s of CPU) run REPEAT times per round, in turn:
  // on a loaded 2-core VM five samples of a 0.4 s job vary by 30 %.
  const short = (name) => /inspect|crit/.test(name);
  for (let round = 0; round <= ROUNDS; round++) {
    for (let rep = 0; rep < REPEAT; rep++) {
      for (const [name, job] of Object.entries(jobs)) {
        if (rep > 0 && !short(name)) continue;
        const r = job();
        if (r.status !== 0) throw new Error(`${name} failed (${r.status}): ${r.stderr ?? ""}`);
        if (round > 0) {
          times[name].push(r.seconds);
          cpus[name].push(r.cpu);
        }
        rss[name] = r.maxRssKiB;
      }
    }
  }
  const med = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
  const cpu = Object.fromEntries(Object.entries(cpus).map(([k, v]) => [k, median(v)]));
  console.log(`CRIU dump of ${MB} MiB (${readdirSync(dir).length} files, criu dump took ${fmt.s(dump.seconds)}); ${ROUNDS} alternated rounds after a warm-up (inspect and crit ${REPEAT}x per round), medians`);
  // Peers of each ckimg job: what does the same job, first those that read the same input (crit
  // reads directories only, checkpointctl archives only), then the other. The goal is checked
  // both against the faster peer of all (strict: whatever the input it needs) and against the
  // faster one that reads this input.
  const crit = critEnv ? "crit x ps+mems+fds" : undefined;
  const ctlInspect = jobs["checkpointctl inspect .tar"] ? "checkpointctl inspect .tar" : undefined;
  const ctlSearch = jobs["checkpointctl memparse --search .tar"] ? "checkpointctl memparse --search .tar" : undefined;
  const peers = {
    "ckimg inspect DIR": { same: [crit], other: [ctlInspect] },
    "ckimg inspect .tar": { same: [ctlInspect], other: [crit] },
    "ckimg mem --search DIR": { same: [], other: [ctlSearch] },
    "ckimg mem --search .tar": { same: [ctlSearch], other: [] },
  };
  table(["job", "wall (median)", "cpu user+sys", "peak RSS"], Object.keys(jobs).map((k) => [k, fmt.s(med[k]), fmt.s(cpu[k]), fmt.mib(rss[k])]));
  console.log("");
  const rows = [];
  const goal = (k, ps, what) => {
    if (!ps.length) return;
    const fastest = ps.reduce((a, b) => (cpu[a] <= cpu[b] ? a : b));
    const r = cpu[k] / cpu[fastest];
    rows.push([k, `${what}: ${fastest}`, fmt.x(med[k] / med[fastest]), `${fmt.x(r)} (goal <= 0.5x ${r <= 0.5 ? "met" : "NOT met"})`]);
  };
  for (const [k, { same, other }] of Object.entries(peers)) {
    const s2 = same.filter(Boolean), o2 = other.filter(Boolean);
    for (const p of [...s2, ...o2]) rows.push([k, `${p}${o2.includes(p) ? " (other input)" : ""}`, fmt.x(med[k] / med[p]), fmt.x(cpu[k] / cpu[p])]);
    goal(k, [...s2, ...o2], "faster peer");
    if (s2.length && o2.length) goal(k, s2, "faster peer on this input");
  }
  table(["ckimg job", "vs", "wall ratio", "cpu ratio"], rows);
  console.log(`mem --search over ${MB} MiB: ${(MB / med["ckimg mem --search DIR"]).toFixed(0)} MiB/s wall, ${(MB / cpu["ckimg mem --search DIR"]).toFixed(0)} MiB/s of CPU (dir); ${(MB / med["ckimg mem --search .tar"]).toFixed(0)} / ${(MB / cpu["ckimg mem --search .tar"]).toFixed(0)} (.tar); grep floor ${(MB / med["grep -c (byte scan floor)"]).toFixed(0)} / ${(MB / cpu["grep -c (byte scan floor)"]).toFixed(0)}`);
  console.log(`load average during the run: ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")} (2 cores)`);
  if (!critEnv) console.log("crit: not runnable here (needs CRIU's source tree, protoc and python3-protobuf)");
  if (!CHECKPOINTCTL) console.log("checkpointctl: not found (set CHECKPOINTCTL=path); its rows are left out");
  else console.log(`checkpointctl: ${CHECKPOINTCTL} (${ctlVersion})`);
  for (const m of missed) console.log(`left out of the ratios: ${m}`);
} finally {
  if (target?.pid) {
    try {
      process.kill(target.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}
