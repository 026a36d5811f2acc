#!/usr/bin/env node
// Incremental capture (--parent) vs a full capture of the same process, 256 MiB varied heap
// (test/native/cow-programs/heap.c; --mb N for another size), 1% of its pages touched between
// captures; 5 alternated rounds (--rounds N, at least 5), medians; extra RSS is what the
// capture reports (cow_written_bytes: pages the target wrote while its twin held them). Prints freeze, wall time, image size and their ratios. CRIU is not
// installed on the development machine (Debian's 3.17 fails on this kernel), so no CRIU
// pre-dump column: its pre-dump also needs soft-dirty, which this kernel lacks.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { median, table } from "./_util.mjs";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(repo, "build/ckimg-capture");
const dir = mkdtempSync(join(tmpdir(), "ckimg-bench-incr-"));
const exe = join(dir, "heap");
const cc = spawnSync("gcc", ["-O1", "-pthread", "-o", exe, join(repo, "test/native/cow-programs/heap.c")]);
if (cc.status !== 0) throw new Error(String(cc.stderr));
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.indexOf(`--${name}`) >= 0 ? Number(argv[argv.indexOf(`--${name}`) + 1]) : dflt);
const MIB = opt("mb", 256);
const ROUNDS = Math.max(5, opt("rounds", 5));
const child = spawn(exe, [String(MIB)], { stdio: ["pipe", "pipe", "inherit"] });
let buf = "";
const waiters = [];
child.stdout.on("data", (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    waiters.shift()?.(line);
  }
});
const next = () => new Promise((r) => waiters.push(r));
const ask = (cmd) => { const p = next(); child.stdin.write(cmd + "\n"); return p; };
try {
  await next(); // ready
  const pages = MIB * 256;
  const capture = (out, parent) => {
    const args = [String(child.pid), "-o", out, ...(parent ? ["--parent", parent] : [])];
    const t = process.hrtime.bigint();
    const r = spawnSync(bin, args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(r.stderr);
    const s = JSON.parse(r.stdout.trim().split("\n").pop());
    return { freeze: s.freeze_ms, wall: Number(process.hrtime.bigint() - t) / 1e6, size: statSync(out).size, extra: s.cow_written_bytes ?? 0 };
  };
  const full = [], incr = [];
  for (let round = 0; round < ROUNDS; round++) {
    const a = join(dir, "a.img"), b = join(dir, "b.img");
    full.push(capture(a));
    await ask(`touch ${Math.ceil(pages / 100)} ${round + 1}`);
    incr.push(capture(b, a));
    rmSync(a);
    rmSync(b);
  }
  const m = (xs, k) => median(xs.map((x) => x[k]));
  const rows = [
    ["full capture", m(full, "freeze").toFixed(1), m(full, "wall").toFixed(1), (m(full, "size") / 1e6).toFixed(1), (m(full, "extra") / 1e6).toFixed(2)],
    ["incremental, 1% changed", m(incr, "freeze").toFixed(1), m(incr, "wall").toFixed(1), (m(incr, "size") / 1e6).toFixed(2), (m(incr, "extra") / 1e6).toFixed(2)],
    ["ratio incremental/full", (m(incr, "freeze") / m(full, "freeze")).toFixed(3), (m(incr, "wall") / m(full, "wall")).toFixed(3), (m(incr, "size") / m(full, "size")).toFixed(4), ""],
  ];
  table([`${MIB} MiB heap (median of ${ROUNDS})`, "freeze ms", "wall ms", "image MB", "extra RSS MB"], rows);
  console.log(`load ${spawnSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).stdout.split(" ").slice(0, 3).join(" ")}`);
  console.log("CRIU: no pre-dump column: it needs soft-dirty tracking, which this kernel lacks (see bench/capture.mjs for CRIU dump).");
} finally {
  child.kill("SIGKILL");
  await new Promise((r) => child.once("exit", r));
  rmSync(dir, { recursive: true, force: true });
}
