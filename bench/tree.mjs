#!/usr/bin/env node
// Process-tree benchmark: a parent with a touched 1 GiB buffer (default) and 8 forked workers
// that only read it (test/native/tree-programs/cow.c), against the same parent alone. Each
// round (≥ 5, the two shapes alternating) starts the program under a child subreaper, captures
// the tree with `ckimg-capture --kill`, restores it with `ckimg-restore --detach` and measures:
// image size, memory of the original and of the restored tree (sum of Pss over its processes:
// pages shared between processes count once), capture wall time, freeze time, restore wall
// time. Medians; ratios tree / single process.
//
// CRIU is taken from $CRIU or PATH; when present it is reported as not compared yet (its
// restore of this tree needs `criu dump -t` + `criu restore -d` with a shell-job setup this
// bench does not make). On the development VM CRIU is not installed (Debian's 3.17 fails on
// kernel 6.x): the bench prints ckimg's numbers and says so.
// Options: --mb N, --workers N, --rounds N.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
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

const criu = process.env.CRIU ?? spawnSync("sh", ["-c", "command -v criu"], { encoding: "utf8" }).stdout.trim();
console.log(`tree bench: parent with ${MB} MiB touched, ${WORKERS} forked readers, vs the parent alone; ${ROUNDS} alternated rounds, medians`);
const results = { single: [], tree: [] };
for (let i = 0; i < ROUNDS; i++) {
  results.single.push(await round(0));
  results.tree.push(await round(WORKERS));
}
const med = (list, k) => median(list.map((x) => x[k]));
const rows = [];
for (const [name, list] of Object.entries(results)) {
  rows.push([name === "single" ? "parent alone" : `parent + ${WORKERS}`, `${med(list, "imageMiB").toFixed(0)} MiB`, fmt.mib(med(list, "origPss")),
    fmt.mib(med(list, "restoredPss")), fmt.s(med(list, "captureS")), fmt.ms(med(list, "freezeS")), fmt.s(med(list, "restoreS"))]);
}
const ratio = (k) => fmt.x(med(results.tree, k) / med(results.single, k));
rows.push(["tree / alone", ratio("imageMiB"), ratio("origPss"), ratio("restoredPss"), ratio("captureS"), ratio("freezeS"), ratio("restoreS")]);
table(["ckimg", "IMAGE", "PSS ORIGINAL", "PSS RESTORED", "CAPTURE", "FREEZE", "RESTORE"], rows);
console.log(criu ? `CRIU found at ${criu}: not compared by this bench yet` :
  "CRIU: not installed on this machine (Debian's 3.17 fails on this kernel); no CRIU column");
rmSync(dir, { recursive: true, force: true });
