#!/usr/bin/env node
// `npm run bench`: builds nothing, runs every bench/*.mjs (but this one) in turn, each
// printing its own table of measurements and ratios against reference tools measured in
// the same run. Pass names to run a subset: `npm run bench -- format codecs`.
import { readdirSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const benches = readdirSync(here)
  .filter((f) => f.endsWith(".mjs") && f !== "run.mjs" && !f.startsWith("_"))
  .filter((f) => !wanted.length || wanted.includes(f.replace(/\.mjs$/, "")))
  .sort();
let failed = 0;
for (const file of benches) {
  console.log(`\n=== bench/${file} ===`);
  const r = spawnSync(process.execPath, [join(here, file)], { stdio: "inherit" });
  if (r.status !== 0) {
    failed++;
    console.log(`bench/${file} exited with ${r.status ?? r.signal}`);
  }
}
process.exitCode = failed ? 1 : 0;
