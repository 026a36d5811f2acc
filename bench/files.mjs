#!/usr/bin/env node
// Files the image must carry: a process holds an unlinked file of N MiB of varied data
// (default 256; compresses ~4x with LZ4), an unlinked 1 GiB sparse file with 1 MiB of data,
// and a 64 MiB memfd mapped shared. Captured by ckimg (lz4, none) and dumped by CRIU
// (--leave-running, --ghost-limit above the file sizes: CRIU's "ghost files"), alternating,
// then restored (`ckimg-restore --detach` / `criu restore -d`) under a child subreaper.
// Medians of ≥ 3 rounds after a warm-up round. CRIU from $CRIU or /work/tools/criu/criu/criu.
// Options: --mb N, --rounds N, --only ckimg.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CAPTURE, RESTORE, buildSubreaper, cliOption, compileC, findCriu, finishUnderReaper, fmt, median, startUnderReaper, table, timeRestores } from "./_util.mjs";

const MB = Number(cliOption("mb", "256"));
const ROUNDS = Math.max(3, Number(cliOption("rounds", "3")));
const ONLY = cliOption("only", "");

const PROGRAM = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
static void fill(int fd, size_t bytes, off_t at) {
	uint64_t x = 88172645463325252ull, buf[8192];
	for (size_t done = 0; done < bytes; done += sizeof(buf)) {
		for (size_t i = 0; i < 8192; i++) {
			if ((i & 511) == 0) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; }
			buf[i] = x + (i & 0xff);
		}
		if (pwrite(fd, buf, sizeof(buf), at + (off_t)done) != sizeof(buf)) _exit(2);
	}
}
int main(int argc, char **argv) {
	size_t mb = strtoul(argv[2], 0, 10);
	char p[4096];
	snprintf(p, sizeof p, "%s/big.dat", argv[1]);
	int a = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	fill(a, mb << 20, 0);
	unlink(p);
	snprintf(p, sizeof p, "%s/sparse.dat", argv[1]);
	int b = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ftruncate(b, 1l << 30);
	fill(b, 1 << 20, 512l << 20);
	unlink(p);
	int m = memfd_create("bench", 0);
	ftruncate(m, 64 << 20);
	char *map = mmap(0, 64 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
	for (size_t i = 0; i < (64u << 20); i += 4096) map[i] = (char)i;
	printf("ready\\n");
	fflush(stdout);
	for (;;) pause();
}
`;

function wall(argv) {
  const t = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
  return { seconds: Number(process.hrtime.bigint() - t) / 1e9, out: r.stdout };
}

async function main() {
  for (const b of [RESTORE, CAPTURE]) if (!existsSync(b)) throw new Error(`${b} missing: npm run build`);
  const criu = ONLY === "ckimg" ? null : findCriu();
  const dir = mkdtempSync(join(tmpdir(), "ckimg-bench-files-"));
  try {
    const prog = compileC(PROGRAM, join(dir, "files"));
    const outFile = join(dir, "files.out");
    const reaper = buildSubreaper(dir);
    const program = await startUnderReaper(reaper, prog, [dir, MB], outFile);
    const { pid } = program;
    console.log(`process ${pid}: unlinked ${MB} MiB file, unlinked 1 GiB sparse file (1 MiB data), 64 MiB memfd mapped shared; ${ROUNDS} rounds, medians`);

    const caps = { "ckimg capture lz4": [], "ckimg capture none": [], "criu dump --leave-running": [] };
    const freeze = { "ckimg capture lz4": [], "ckimg capture none": [] };
    const img = (c) => join(dir, `files-${c}.img`);
    let criuDir = null;
    for (let round = -1; round < ROUNDS; round++) {
      for (const codec of ["lz4", "none"]) {
        const r = wall([CAPTURE, String(pid), "-o", img(codec), "--compress", codec]);
        if (round >= 0) {
          caps[`ckimg capture ${codec}`].push(r.seconds);
          freeze[`ckimg capture ${codec}`].push(JSON.parse(r.out.trim().split("\n").pop()).freeze_ms / 1e3);
        }
      }
      if (criu) {
        criuDir = join(dir, "criu");
        rmSync(criuDir, { recursive: true, force: true });
        mkdirSync(criuDir);
        const t = process.hrtime.bigint();
        const r = spawnSync(criu, ["dump", "-t", String(pid), "-D", criuDir, "-o", "dump.log", "--leave-running", "--ghost-limit", "2G"], { encoding: "utf8" });
        const s = Number(process.hrtime.bigint() - t) / 1e9;
        if (r.status !== 0) {
          console.log(`CRIU dump failed (${r.status}); see ${criuDir}/dump.log — CRIU left out`);
          criuDir = null;
        } else {
          spawnSync("sync");
          if (round >= 0) caps["criu dump --leave-running"].push(s);
        }
      }
    }
    await finishUnderReaper(program, pid);
    const capRef = criuDir ? median(caps["criu dump --leave-running"]) : null;
    table(["capture", "median", "freeze", "image", "vs criu dump"], Object.entries(caps).filter(([, v]) => v.length).map(([name, v]) => {
      const m = median(v);
      const codec = name.split(" ").pop();
      return [name, fmt.ms(m), freeze[name] ? fmt.ms(median(freeze[name])) : "-",
        name.startsWith("ckimg") ? `${(statSync(img(codec)).size / 2 ** 20).toFixed(0)} MiB` : "-", capRef ? fmt.x(m / capRef) : "-"];
    }));

    const modes = [
      ["ckimg restore, lz4", [RESTORE, img("lz4"), "--detach"]],
      ["ckimg restore, none", [RESTORE, img("none"), "--detach"]],
    ];
    if (criuDir) modes.push(["criu restore -d", [criu, "restore", "-d", "-D", criuDir, "-o", "restore.log"]]);
    const times = await timeRestores(reaper, modes, pid, ROUNDS);
    const ref = criuDir ? median(times["criu restore -d"]) : null;
    table(["restore", "median", "vs criu -d"], modes.map(([name]) => [name, fmt.ms(median(times[name])), ref ? fmt.x(median(times[name]) / ref) : "-"]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exitCode = 1;
});
