#!/usr/bin/env node
/**
 * CRIU reader benchmark: a process with N MiB (default 1024) of touched heap is dumped by CRIU
 * (`criu dump --leave-running`), and the dump is packed into a Podman-layout `.tar`
 * (checkpoint/ + config.dump + spec.dump). Then, whole-process wall time, median of >= 5
 * alternating rounds after a warm-up:
 *   ckimg inspect DIR / ckimg inspect ARCHIVE.tar   (process, threads, map, files, tree, sockets)
 *   crit x DIR ps + crit x DIR mems + crit x DIR fds (CRIU's own tool, the nearest equivalent),
 *   crit show pagemap-PID.img
 *   ckimg mem --search NEEDLE DIR / .tar             (checkpointctl memparse --search)
 *   grep -c NEEDLE pages-*.img                       (a floor: a plain byte scan of the file)
 * crit runs from CRIU's source tree with its protobuf modules generated into a temp dir (needs
 * protoc and python3-protobuf); checkpointctl is not built here (Go module, no Go toolchain).
 * CRIU is $CRIU or /work/tools/criu/criu/criu; without it (or root) the bench says so and exits 0.
 * Options: --mb N, --rounds N.
 */
import { spawn, spawnSync } from "node:child_process";
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fmt, median, table, timeCommand as timeWall } from "./_util.mjs";

/**
 * Wall time plus CPU time (user + sys, from GNU time): on a shared 2-core VM the wall time
 * mostly measures the other jobs; CPU time is what the tool itself spent.
 */
function timeCommand(cmd, argv, opts = {}) {
  const r = spawnSync("/usr/bin/time", ["-f", "__T__%U %S %M", cmd, ...argv], { encoding: "buffer", maxBuffer: 1 << 30, ...opts });
  const m = /__T__([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr?.toString() ?? "");
  if (!m) return { ...timeWall(cmd, argv, opts), cpu: NaN };
  const wall = timeWall(cmd, argv, opts);
  return { ...wall, cpu: Number(m[1]) + Number(m[2]), maxRssKiB: Number(m[3]) };
}

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const MB = Number(opt("mb", process.env.CKIMG_BENCH_MB ?? "1024"));
const ROUNDS = Math.max(5, Number(opt("rounds", "5")));
const CRIU = [process.env.CRIU, "/work/tools/criu/criu/criu"].find((p) => p && existsSync(p));
const CRIU_SRC = process.env.CRIU_SRC ?? (CRIU ? resolve(dirname(CRIU), "..") : undefined);
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
  if (spawnSync("tar", ["-C", arc, "-cf", tar, "."]).status !== 0) throw new Error("tar failed");
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

  const jobs = {
    "ckimg inspect DIR": () => timeCommand(CKIMG, ["inspect", dir]),
    "ckimg inspect .tar": () => timeCommand(CKIMG, ["inspect", tar]),
    "ckimg mem --search DIR": () => timeCommand(CKIMG, ["mem", "--search", NEEDLE, dir]),
    "ckimg mem --search .tar": () => timeCommand(CKIMG, ["mem", "--search", NEEDLE, tar]),
    "grep -c (byte scan floor)": () => timeCommand("grep", ["-c", "-a", NEEDLE, join(dir, pagesFile)]),
  };
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
  for (let round = 0; round <= ROUNDS; round++) {
    for (const [name, job] of Object.entries(jobs)) {
      const r = job();
      if (r.status !== 0) throw new Error(`${name} failed (${r.status}): ${r.stderr ?? ""}`);
      if (round > 0) {
        times[name].push(r.seconds);
        cpus[name].push(r.cpu);
      }
      rss[name] = r.maxRssKiB;
    }
  }
  const med = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
  const cpu = Object.fromEntries(Object.entries(cpus).map(([k, v]) => [k, median(v)]));
  console.log(`CRIU dump of ${MB} MiB (${readdirSync(dir).length} files, criu dump took ${fmt.s(dump.seconds)}); ${ROUNDS} rounds, medians`);
  const ref = critEnv ? med["crit x ps+mems+fds"] : undefined;
  const refCpu = critEnv ? cpu["crit x ps+mems+fds"] : undefined;
  table(["job", "wall (median)", "cpu user+sys", "peak RSS", "wall vs crit", "cpu vs crit"], Object.keys(jobs).map((k) => [
    k, fmt.s(med[k]), fmt.s(cpu[k]), fmt.mib(rss[k]),
    ref && k.startsWith("ckimg inspect") ? fmt.x(med[k] / ref) : "-", refCpu && k.startsWith("ckimg inspect") ? fmt.x(cpu[k] / refCpu) : "-",
  ]));
  console.log(`mem --search over ${MB} MiB: ${(MB / med["ckimg mem --search DIR"]).toFixed(0)} MiB/s wall, ${(MB / cpu["ckimg mem --search DIR"]).toFixed(0)} MiB/s of CPU (dir); ${(MB / med["ckimg mem --search .tar"]).toFixed(0)} / ${(MB / cpu["ckimg mem --search .tar"]).toFixed(0)} (.tar); grep floor ${(MB / med["grep -c (byte scan floor)"]).toFixed(0)} / ${(MB / cpu["grep -c (byte scan floor)"]).toFixed(0)}`);
  console.log(`load average during the run: ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")} (2 cores)`);
  if (!critEnv) console.log("crit: not runnable here (needs CRIU's source tree, protoc and python3-protobuf)");
  console.log("checkpointctl: not measured — a Go module; this machine has no Go toolchain (Debian 12's golang-go is 1.19)");
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
