#!/usr/bin/env node
// `npm run demo`: the main job end to end on a real process.
//   1. compile and start a small counter program (prints a number every 0.2 s),
//   2. ckimg capture it (it keeps running), ckimg inspect and verify the image,
//   3. kill it, ckimg restore the image, and watch the count carry on from where it was.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ckimg = fileURLToPath(new URL("../bin/ckimg", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "ckimg-demo-"));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const counts = (file) => readFileSync(file, "utf8").trim().split("\n").map(Number);
const lastCount = (file) => counts(file).at(-1);
const step = (text) => console.log(`\n\x1b[1m== ${text}\x1b[0m`);
const run = (args) => {
  console.log(`$ ckimg ${args.join(" ")}`);
  const r = spawnSync(ckimg, args, { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`ckimg ${args[0]} exited with ${r.status}`);
};

const source = `
#include <stdio.h>
#include <unistd.h>
static unsigned long counter_total;
int main(void) {
  for (;;) {
    printf("%lu\\n", ++counter_total);
    fflush(stdout);
    usleep(200000);
  }
}
`;

let original, restored;
try {
  step("compile and start a counter");
  writeFileSync(join(dir, "counter.c"), source);
  execFileSync("gcc", ["-O1", "-g", "-o", join(dir, "counter"), join(dir, "counter.c")]);
  const out = join(dir, "counter.out");
  original = spawn(join(dir, "counter"), [], { stdio: ["ignore", openSync(out, "a"), "inherit"] });
  await sleep(1000);
  console.log(`counter pid ${original.pid} has counted to ${lastCount(out)}`);

  step("capture it (it keeps running)");
  const img = join(dir, "counter.img");
  run(["capture", String(original.pid), "-o", img]);
  await sleep(600);
  const atCapture = lastCount(out);
  console.log(`still running: now at ${atCapture}`);

  step("inspect and verify the image");
  run(["inspect", img]);
  run(["verify", img]);

  step("kill the original, restore from the image");
  original.kill("SIGKILL");
  await new Promise((r) => original.on("exit", r));
  for (let i = 0; i < 50 && existsSync(`/proc/${original.pid}`); i++) await sleep(100);
  const before = lastCount(out);
  const linesBefore = counts(out).length;
  console.log(`original killed at ${before}; restoring…`);
  console.log(`$ ckimg restore ${img}`);
  // Without --detach, ckimg restore waits for the restored process and exits with its status.
  restored = spawn(ckimg, ["restore", img], { stdio: "inherit" });
  await sleep(1500);
  // The output file is O_APPEND: the restored process's lines follow the original's.
  const resumed = counts(out).slice(linesBefore);
  console.log(`restored pid ${original.pid} printed: ${resumed.join(" ")}`);
  const ok = resumed.length > 1 && resumed[0] > 1 && resumed[0] <= atCapture + 1 && resumed.every((v, i) => i === 0 || v === resumed[i - 1] + 1);
  if (!ok) throw new Error("the restored counter did not carry on from its captured state");
  console.log(`it carried on from ${resumed[0] - 1}, the count at capture time (not from 0)`);
} finally {
  // The restored process has the original's PID: stop it, and ckimg restore returns.
  if (original?.pid) {
    try {
      process.kill(original.pid, "SIGKILL");
    } catch {}
  }
  if (restored && restored.exitCode === null) await new Promise((r) => restored.on("exit", r));
  rmSync(dir, { recursive: true, force: true });
}
