#!/usr/bin/env node
// Fd restore benchmark: a process holding 1,000 open fds of mixed kinds — 200 pipes with bytes
// in them (400 fds), 150 unix socket pairs with a queued message each (300), 100 regular files
// each dup'ed once (200), 100 /dev/null opens — is captured once by ckimg and dumped once by
// CRIU (same process state), then restored over and over, tools alternating, ≥ 5 rounds,
// medians. Measured: wall time of the restore command in detached mode, until the process runs
// again and the command returns (`ckimg-restore IMG --detach` / `criu restore -d`), under a
// small child subreaper that reaps what the detached restore leaves behind.
//
// CRIU is taken from $CRIU, /work/tools/criu/criu/criu or PATH (never built here).
// Options: --rounds N, --only ckimg (skip CRIU).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CAPTURE, RESTORE, buildSubreaper, cliOption, compileC, findCriu, finishUnderReaper, fmt, median, startUnderReaper, table, timeRestores } from "./_util.mjs";

const ROUNDS = Math.max(5, Number(cliOption("rounds", "5")));
const ONLY = cliOption("only", "");

const PROGRAM = `
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
/* 1,000 fds of mixed kinds with state in them, then idles. argv[1]: a scratch dir. */
int main(int argc, char **argv) {
	struct rlimit rl = { 4096, 4096 };
	setrlimit(RLIMIT_NOFILE, &rl);
	char path[4096];
	for (int i = 0; i < 200; i++) {
		int p[2];
		if (pipe(p) || write(p[1], "bytes waiting in a pipe", 23) != 23) return 1;
	}
	for (int i = 0; i < 150; i++) {
		int s[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) || write(s[0], "queued", 6) != 6) return 2;
	}
	for (int i = 0; i < 100; i++) {
		snprintf(path, sizeof(path), "%s/f%d", argv[1], i);
		int fd = open(path, O_RDWR | O_CREAT, 0600);
		if (fd < 0 || write(fd, "x", 1) != 1 || dup(fd) < 0) return 3;
	}
	for (int i = 0; i < 100; i++)
		if (open("/dev/null", O_RDONLY) < 0) return 4;
	printf("ready\\n");
	fflush(stdout);
	for (;;) pause();
}
`;

async function main() {
  for (const b of [RESTORE, CAPTURE]) if (!existsSync(b)) throw new Error(`${b} missing: npm run build`);
  const criu = ONLY === "ckimg" ? null : findCriu();
  const dir = mkdtempSync(join(tmpdir(), "ckimg-bench-fds-"));
  try {
    const prog = compileC(PROGRAM, join(dir, "fds"));
    const files = join(dir, "files");
    mkdirSync(files);
    const outFile = join(dir, "fds.out");
    const reaper = buildSubreaper(dir);
    const program = await startUnderReaper(reaper, prog, [files], outFile);
    const { pid } = program;
    const nfds = spawnSync("sh", ["-c", `ls /proc/${pid}/fd | wc -l`], { encoding: "utf8" }).stdout.trim();
    console.log(`process ${pid}: ${nfds} open fds (pipes with bytes, unix pairs with a queue, files + dups, /dev/null); ${ROUNDS} rounds, medians`);

    const img = join(dir, "fds.img");
    const t0 = process.hrtime.bigint();
    const c = spawnSync(CAPTURE, [String(pid), "-o", img], { encoding: "utf8" });
    const captureS = Number(process.hrtime.bigint() - t0) / 1e9;
    if (c.status !== 0) throw new Error(`capture: ${c.stderr}`);
    let criuDir = null, dumpS = 0;
    if (criu) {
      criuDir = join(dir, "criu");
      mkdirSync(criuDir);
      const t1 = process.hrtime.bigint();
      const r = spawnSync(criu, ["dump", "-t", String(pid), "-D", criuDir, "-o", "dump.log"], { encoding: "utf8" });
      dumpS = Number(process.hrtime.bigint() - t1) / 1e9;
      if (r.status !== 0) {
        console.log(`CRIU dump failed (${r.status}); see ${criuDir}/dump.log — CRIU left out`);
        criuDir = null;
      }
    }
    await finishUnderReaper(program, pid);
    if (!criu) console.log("CRIU not available: set CRIU=/path/to/criu (v4.2) to compare");

    const modes = [["ckimg-restore --detach", [RESTORE, img, "--detach"]]];
    if (criuDir) modes.push(["criu restore -d", [criu, "restore", "-d", "-D", criuDir, "-o", "restore.log"]]);
    const times = await timeRestores(reaper, modes, pid, ROUNDS);
    const ref = criuDir ? median(times["criu restore -d"]) : null;
    table(["restore (1,000 fds)", "median", "vs criu -d"], modes.map(([name]) => {
      const m = median(times[name]);
      return [name, fmt.ms(m), ref ? fmt.x(m / ref) : "-"];
    }));
    console.log(`capture once: ckimg ${fmt.ms(captureS)}${criuDir ? `, criu dump ${fmt.ms(dumpS)}` : ""}`);
    if (ref) console.log(`goal: ≤ 1.00x CRIU (${fmt.ms(ref)})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exitCode = 1;
});
