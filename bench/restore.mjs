#!/usr/bin/env node
// Restore benchmark: a process with a touched, varied heap (default 1 GiB) is captured once
// by ckimg (none, lz4, lzf, gzip) and dumped once by CRIU (same process state), then restored
// over and over, tools alternating, ≥ 5 rounds, medians. Measured: wall time of the restore
// command in detached mode, i.e. until the process runs again and the command returns
// (`ckimg-restore IMG --detach` / `criu restore -d`). Every restore runs under a small child
// subreaper that times its direct child and reaps what the detached restore leaves behind.
//
// CRIU is taken from $CRIU or PATH (never built here). Options: --mb N (heap size),
// --rounds N, --only ckimg (skip CRIU).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CAPTURE, REPO, RESTORE, buildSubreaper, cliOption, compileC, findCriu, finishUnderReaper, fmt, median, startUnderReaper, table, timeRestores } from "./_util.mjs";

const MB = Number(cliOption("mb", "1024"));
const ROUNDS = Math.max(5, Number(cliOption("rounds", "5")));
const ONLY = cliOption("only", "");

const PROGRAM = `
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
/* N MiB heap of varied words (compresses ~4x with LZ4), then idles. */
int main(int argc, char **argv) {
	size_t n = strtoul(argv[1], 0, 10) << 17;
	uint64_t *p = malloc(n * 8), x = 88172645463325252ull;
	for (size_t i = 0; i < n; i++) {
		if ((i & 511) == 0) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; }
		p[i] = x + (i & 0xff);
	}
	printf("ready\\n");
	fflush(stdout);
	for (;;) pause();
}
`;

async function main() {
  for (const b of [RESTORE, CAPTURE]) if (!existsSync(b)) throw new Error(`${b} missing: npm run build`);
  const criu = ONLY === "ckimg" ? null : findCriu();
  const dir = mkdtempSync(join(tmpdir(), "ckimg-bench-restore-"));
  try {
    const prog = compileC(PROGRAM, join(dir, "heap"));
    const outFile = join(dir, "heap.out");
    const reaper = buildSubreaper(dir);
    // under the subreaper, which reaps what the capture leaves (a copy-on-write twin is orphaned)
    const program = await startUnderReaper(reaper, prog, [MB], outFile);
    const { pid } = program;
    console.log(`process ${pid}: ${MB} MiB touched heap; ${ROUNDS} rounds, medians; restore = until the command returns with the process running`);

    const imgs = {};
    for (const codec of ["none", "lz4", "lzf", "gzip"]) {
      const img = join(dir, `heap-${codec}.img`);
      const r = spawnSync(CAPTURE, [String(pid), "-o", img, "--compress", codec], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`capture ${codec}: ${r.stderr}`);
      imgs[codec] = img;
    }
    let criuDir = null;
    if (criu) {
      criuDir = join(dir, "criu");
      mkdirSync(criuDir);
      const r = spawnSync(criu, ["dump", "-t", String(pid), "-D", criuDir, "-o", "dump.log"], { encoding: "utf8" });
      if (r.status !== 0) {
        console.log(`CRIU dump failed (${r.status}); see ${criuDir}/dump.log — CRIU left out`);
        criuDir = null;
      }
    }
    await finishUnderReaper(program, pid);
    if (!criu) console.log("CRIU not available: set CRIU=/path/to/criu (v4.2) to compare");

    const modes = [
      ["ckimg eager, none", [RESTORE, imgs.none, "--detach"], imgs.none],
      ["ckimg eager --thp, none", [RESTORE, imgs.none, "--detach", "--thp"], imgs.none],
      ["ckimg lazy, none (CRCs checked)", [RESTORE, imgs.none, "--detach", "--lazy"], imgs.none],
      ["ckimg lazy, none, --no-verify", [RESTORE, imgs.none, "--detach", "--lazy", "--no-verify"], imgs.none],
      ["ckimg eager, lz4", [RESTORE, imgs.lz4, "--detach"], imgs.lz4],
      ["ckimg eager, lzf", [RESTORE, imgs.lzf, "--detach"], imgs.lzf],
      ["ckimg eager, gzip", [RESTORE, imgs.gzip, "--detach"], imgs.gzip],
      ["ckimg CLI, lazy none", [process.execPath, join(REPO, "bin/ckimg"), "restore", "--detach", "--lazy", imgs.none], imgs.none],
    ];
    if (criuDir) modes.push(["criu restore -d", [criu, "restore", "-d", "-D", criuDir, "-o", "restore.log"], null]);
    const times = await timeRestores(reaper, modes, pid, ROUNDS);
    const ref = criuDir ? median(times["criu restore -d"]) : null;
    const rows = modes.map(([name, , img]) => {
      const m = median(times[name]);
      return [name, fmt.ms(m), img ? `${(statSync(img).size / 2 ** 20).toFixed(0)} MiB` : "-", ref ? fmt.x(m / ref) : "-"];
    });
    table(["restore", "median", "image", "vs criu -d"], rows);
    if (ref) console.log(`goal: ≤ 0.50x CRIU (${fmt.ms(ref)})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exitCode = 1;
});
