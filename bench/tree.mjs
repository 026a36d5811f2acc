#!/usr/bin/env node
// Process-tree benchmark: a parent with a touched 1 GiB buffer (default) and 8 forked workers
// that only read it (test/native/tree-programs/cow.c), against the same parent alone. Each
// round (≥ 5, the shapes alternating) starts the program under a child subreaper, captures
// the tree with `ckimg-capture --kill`, restores it with `ckimg-restore --detach` and measures:
// image size, memory of the original and of the restored tree (sum of Pss over its processes:
// pages shared between processes count once), capture wall time, freeze time, restore wall
// time. Medians; ratios tree / single process.
//
// CRIU ($CRIU or /work/tools/criu/criu/criu, when present and root) runs the same tree in the
// same alternation: `criu dump -t ROOT --shell-job` (its freeze time is stats-dump's
// frozen_time) and `criu restore -d --shell-job` under the same subreaper; the program's
// stdout goes to a file of its own (CRIU refuses a file whose size changed). Ratios
// ckimg / CRIU on the tree.
// Options: --mb N, --workers N, --rounds N.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { median, table, fmt } from "./_util.mjs";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const MB = Number(opt("mb", "1024"));
const WORKERS = Number(opt("workers", "8"));
const ROUNDS = Math.max(5, Number(opt("rounds", "5")));
const CAPTURE = join(REPO, "build/ckimg-capture");
const RESTORE = join(REPO, "build/ckimg-restore");
const dir = mkdtempSync(join(tmpdir(), "ckimg-bench-tree-"));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cc(src, name) {
  const out = join(dir, name);
  const r = spawnSync("gcc", ["-O2", "-o", out, src], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr);
  return out;
}
const cow = cc(join(REPO, "test/native/tree-programs/cow.c"), "cow");
const reaper = cc(join(REPO, "test/native/restore-programs/subreaper.c"), "subreaper");

function pssKiB(pids) {
  let n = 0;
  for (const p of pids) {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, "utf8"));
    n += m ? Number(m[1]) : 0;
  }
  return n;
}

async function gone(pids) {
  for (let i = 0; i < 1000 && pids.some((p) => existsSync(`/proc/${p}`)); i++) await sleep(10);
}

/** Start argv under the subreaper; resolve with the first stdout line matching re. */
function start(argv, re) {
  const child = spawn(reaper, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let buf = "";
  const line = new Promise((res, rej) => {
    child.stdout.on("data", (d) => {
      buf += d;
      const m = buf.split("\n").find((l) => re.test(l));
      if (m) res(m);
    });
    child.on("exit", () => rej(new Error(`exited before ${re}: ${buf}`)));
  });
  line.catch(() => {});
  return { child, line, exited: new Promise((r) => child.on("exit", r)) };
}

async function round(workers) {
  const img = join(dir, `w${workers}.img`);
  const o = start([cow, String(MB), String(workers)], /^ready /);
  const pids = (await o.line).split(" ").slice(1).map(Number);
  await sleep(200);
  const origPss = pssKiB(pids);
  const t0 = process.hrtime.bigint();
  const c = spawnSync(CAPTURE, [String(pids[0]), "-o", img, "--kill", "--compress", "lz4"], { encoding: "utf8" });
  const captureS = Number(process.hrtime.bigint() - t0) / 1e9;
  if (c.status !== 0) throw new Error(c.stderr);
  const summary = JSON.parse(c.stdout.trim().split("\n").pop());
  await o.exited;
  await gone(pids);
  const t1 = process.hrtime.bigint();
  const r = start([RESTORE, img, "--detach"], new RegExp(`^${pids[0]}$`));
  await r.line;
  const restoreS = Number(process.hrtime.bigint() - t1) / 1e9;
  const restoredPss = pssKiB(pids);
  for (const p of pids) try { process.kill(p, "SIGKILL"); } catch { /* gone */ }
  await r.exited;
  await gone(pids);
  const imageBytes = statSync(img).size;
  rmSync(img);
  return { imageMiB: imageBytes / 2 ** 20, origPss, restoredPss, captureS, freezeS: summary.freeze_ms / 1000, restoreS };
}

const criu = [process.env.CRIU, "/work/tools/criu/criu/criu"].find((p) => p && existsSync(p)) && process.getuid?.() === 0
  ? [process.env.CRIU, "/work/tools/criu/criu/criu"].find((p) => p && existsSync(p)) : undefined;

/** The same tree dumped and restored by CRIU. */
async function criuRound(workers) {
  const d = join(dir, `criu-w${workers}`);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d);
  const outPath = join(dir, "cow-criu.out");
  const out = openSync(outPath, "w");
  const child = spawn(reaper, [cow, String(MB), String(workers)], { stdio: ["ignore", out, "ignore"] });
  closeSync(out);
  const exited = new Promise((r) => child.on("exit", r));
  let line;
  for (let i = 0; i < 6000 && !line; i++) {
    await sleep(10);
    line = readFileSync(outPath, "utf8").split("\n").find((l) => l.startsWith("ready "));
  }
  if (!line) throw new Error("cow did not start");
  const pids = line.split(" ").slice(1).map(Number);
  await sleep(200);
  const origPss = pssKiB(pids);
  const t0 = process.hrtime.bigint();
  const c = spawnSync(criu, ["dump", "-t", String(pids[0]), "-D", d, "-o", "dump.log", "--shell-job"], { encoding: "utf8" });
  const captureS = Number(process.hrtime.bigint() - t0) / 1e9;
  if (c.status !== 0) throw new Error(`criu dump failed: ${readFileSync(join(d, "dump.log"), "utf8").split("\n").filter((l) => l.includes("Error")).join("\n")}`);
  await exited;
  await gone(pids);
  const imageBytes = readdirSync(d).filter((f) => !f.endsWith(".log")).reduce((n, f) => n + statSync(join(d, f)).size, 0);
  const ins = spawnSync(process.execPath, [join(REPO, "bin/ckimg"), "inspect", "--json", d], { encoding: "utf8", maxBuffer: 1 << 28 });
  const frozenUs = JSON.parse(ins.stdout).criu?.stats?.frozenUs ?? NaN;
  // criu restore -d returns once the tree runs; the subreaper (which then adopts the tree) says
  // "child-exit STATUS" on stderr at that moment and stays until the tree is gone
  const t1 = process.hrtime.bigint();
  const r = spawn(reaper, [criu, "restore", "-D", d, "-d", "--shell-job", "-o", "restore.log"], { stdio: ["ignore", "ignore", "pipe"] });
  const rExited = new Promise((res) => r.on("exit", res));
  const status = await new Promise((res) => {
    let buf = "";
    r.stderr.on("data", (x) => {
      buf += x;
      const m = /child-exit (\d+)/.exec(buf);
      if (m) res(Number(m[1]));
    });
    r.on("exit", () => res(-1));
  });
  const restoreS = Number(process.hrtime.bigint() - t1) / 1e9;
  if (status !== 0 || !pids.every((p) => existsSync(`/proc/${p}`))) {
    for (const p of pids) try { process.kill(p, "SIGKILL"); } catch { /* gone */ }
    throw new Error(`criu restore failed (${status}): ${readFileSync(join(d, "restore.log"), "utf8").split("\n").filter((l) => l.includes("Error")).join("\n")}`);
  }
  const restoredPss = pssKiB(pids);
  for (const p of pids) try { process.kill(p, "SIGKILL"); } catch { /* gone */ }
  await rExited;
  await gone(pids);
  rmSync(d, { recursive: true, force: true });
  return { imageMiB: imageBytes / 2 ** 20, origPss, restoredPss, captureS, freezeS: frozenUs / 1e6, restoreS };
}

console.log(`tree bench: parent with ${MB} MiB touched, ${WORKERS} forked readers, vs the parent alone; ${ROUNDS} alternated rounds, medians`);
const results = { single: [], tree: [] };
const criuResults = [];
for (let i = 0; i < ROUNDS; i++) {
  results.single.push(await round(0));
  results.tree.push(await round(WORKERS));
  if (criu) criuResults.push(await criuRound(WORKERS));
}
const med = (list, k) => median(list.map((x) => x[k]));
const rows = [];
for (const [name, list] of Object.entries(results)) {
  rows.push([name === "single" ? "parent alone" : `parent + ${WORKERS}`, `${med(list, "imageMiB").toFixed(0)} MiB`, fmt.mib(med(list, "origPss")),
    fmt.mib(med(list, "restoredPss")), fmt.s(med(list, "captureS")), fmt.ms(med(list, "freezeS")), fmt.s(med(list, "restoreS"))]);
}
const ratio = (k) => fmt.x(med(results.tree, k) / med(results.single, k));
rows.push(["tree / alone", ratio("imageMiB"), ratio("origPss"), ratio("restoredPss"), ratio("captureS"), ratio("freezeS"), ratio("restoreS")]);
if (criu) {
  const cm = (k) => median(criuResults.map((x) => x[k]));
  rows.push([`CRIU, parent + ${WORKERS}`, `${cm("imageMiB").toFixed(0)} MiB`, fmt.mib(cm("origPss")), fmt.mib(cm("restoredPss")),
    fmt.s(cm("captureS")), fmt.ms(cm("freezeS")), fmt.s(cm("restoreS"))]);
  const vs = (k) => fmt.x(med(results.tree, k) / cm(k));
  rows.push(["ckimg / CRIU (tree)", vs("imageMiB"), vs("origPss"), vs("restoredPss"), vs("captureS"), vs("freezeS"), vs("restoreS")]);
}
table(["", "IMAGE", "PSS ORIGINAL", "PSS RESTORED", "CAPTURE", "FREEZE", "RESTORE"], rows);
if (!criu) console.log("CRIU: not found ($CRIU, /work/tools/criu/criu/criu) or not root; no CRIU rows");
rmSync(dir, { recursive: true, force: true });
