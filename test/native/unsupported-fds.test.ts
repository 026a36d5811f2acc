/**
 * Fds no kind of ckimg can bring back (an io_uring instance, a netlink socket): capture names
 * each one with the reason, restore refuses in one line naming the FD record, and --force
 * restores the rest with a warning, keeping each number on /dev/null. Never a silent /dev/null.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO, compileC, makeTempDir, removeTempDirs, requireBuild, runCli, sleep, startProcess } from "./helpers.js";

const CLI = join(REPO, "bin/ckimg");
let tmp = "";
beforeAll(() => {
  requireBuild();
  tmp = makeTempDir("ckimg-unsupported-");
});
afterAll(() => removeTempDirs());

const PROGRAM = `
#define _GNU_SOURCE
#include <linux/io_uring.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
static void show(int fd) {
	char path[64], link[256];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof link - 1);
	link[n > 0 ? n : 0] = 0;
	printf("fd %d %s\\n", fd, n > 0 ? link : "closed");
}
int main(void) {
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int ring = (int)syscall(__NR_io_uring_setup, 8, &p);
	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	printf("ready %d %d\\n", ring, nl);
	fflush(stdout);
	char c;
	while (read(0, &c, 1) == 1 && c != '\\n') {}
	show(ring);
	show(nl);
	printf("done\\n");
	return 0;
}`;

describe("fds that cannot come back", () => {
  it("are named at capture, refused at restore in one line, and kept as placeholders with --force", async () => {
    const exe = compileC(PROGRAM, "unsupported");
    const img = join(tmp, "unsupported.img");
    const p = startProcess([exe], { cwd: tmp });
    let ring = 0, nl = 0;
    try {
      const ready = await p.waitForLine(/^ready/);
      [ring, nl] = ready.split(" ").slice(1).map(Number);
      expect(ring).toBeGreaterThan(2);
      const cap = runCli(["capture", String(p.pid), "-o", img, "--kill"]);
      expect(cap.status).toBe(0);
      expect(cap.stderr).toMatch(new RegExp(`warning: fd ${ring} \\(anon_inode:\\[io_uring\\]\\): \\[io_uring\\] file descriptors are not brought back`));
      expect(cap.stderr).toMatch(new RegExp(`warning: fd ${nl} \\(socket:\\[\\d+\\]\\): netlink sockets are not brought back`));
    } finally {
      await p.kill();
    }
    for (let i = 0; i < 500 && existsSync(`/proc/${p.pid}`); i++) await sleep(20);

    const refused = runCli(["restore", img]);
    expect(refused.status).toBe(2);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(refused.stderr).toMatch(new RegExp(`FD record #\\d+ \\(fd ${ring}, anon_inode:\\[io_uring\\]\\) cannot be restored: .*--force`));
    expect(existsSync(`/proc/${p.pid}`)).toBe(false);

    const r = startProcess([process.execPath, CLI, "restore", "--force", img], { cwd: tmp });
    try {
      await sleep(300);
      r.write("\n");
      await r.waitForLine(/^done$/, { timeoutMs: 20_000 });
      expect(r.lines).toContain(`fd ${ring} /dev/null`);
      expect(r.lines).toContain(`fd ${nl} /dev/null`);
      expect((await r.exited).code).toBe(0);
      // "exit" may come before the last of stderr is read
      for (let i = 0; i < 100 && !/io_uring.*not brought back/.test(r.stderr()); i++) await sleep(50);
      expect(r.stderr()).toMatch(new RegExp(`fd ${ring} \\(anon_inode:\\[io_uring\\]\\) not brought back`));
    } finally {
      await r.kill();
    }
  });
});
