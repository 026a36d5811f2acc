// ckimg run overhead: the hashing job (test/job/programs/hashjob.c) alone vs under `ckimg run
// --every 10s`, checkpoint volume per hour, and restart-to-running time. DMTCP is not installed
// here (not packaged in Debian 12; building it from source is not done by the bench): no column.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const repo = new URL("..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "ckimg-bench-job-"));
const exe = join(dir, "hashjob");
execFileSync("gcc", ["-O2", "-o", exe, join(repo, "test/job/programs/hashjob.c")]);
const steps = process.env.STEPS ?? "1500000";   // 15 s of 10 ms pauses (checkpoints at 10 s)
const t = (f) => { const s = performance.now(); const r = f(); return [(performance.now() - s) / 1000, r]; };
const [bare] = t(() => spawnSync(exe, [steps, "10000"]));
const [run, r] = t(() => spawnSync(process.execPath, [join(repo, "bin/ckimg"), "run", "--dir", join(dir, "ck"), "--every", "10s", "--keep-on-success", "--", exe, steps, "10000"], { encoding: "utf8" }));
const sizes = [...r.stderr.matchAll(/checkpoint \d+ \(periodic\): \S+, ([\d.]+) KiB/g)].map((m) => Number(m[1]));
const perHourMiB = sizes.length ? (sizes.reduce((a, b) => a + b, 0) / sizes.length) * 360 / 1024 : 0;
// restart: checkpoint on SIGTERM, then time to "restored … in N ms"
const ck = join(dir, "ck2");
const p = spawnSync("sh", ["-c", `${process.execPath} ${join(repo, "bin/ckimg")} run --dir ${ck} -- ${exe} ${steps} 10000 & sleep 2; kill -TERM $!; wait`]);
const again = spawnSync(process.execPath, [join(repo, "bin/ckimg"), "run", "--dir", ck, "--", exe, steps, "10000"], { encoding: "utf8" });
const restoreMs = /restored pid \d+ .* in (\d+) ms/.exec(again.stderr)?.[1];
console.log(`job: bare ${bare.toFixed(2)} s, under ckimg run --every 10s ${run.toFixed(2)} s: overhead ${((run / bare - 1) * 100).toFixed(1)}% (${sizes.length} checkpoints, full images: --parent not in this capturer)`);
console.log(`checkpoint volume: ${sizes.length ? (sizes[0]).toFixed(1) : "?"} KiB each, ${perHourMiB.toFixed(1)} MiB/hour at one per 10 s`);
console.log(`restart to running: ${restoreMs ?? "?"} ms (restorer start, verify, rebuild, guard adopts)${p.status === null ? "" : ""}`);
console.log("DMTCP: not installed (not packaged in Debian 12): no comparison");
rmSync(dir, { recursive: true, force: true });
