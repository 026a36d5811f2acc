/**
 * Relations between the processes of a tree beyond parent and child. Sessions and process
 * groups whose leader has exited (FORMAT.md "Process trees"): a daemon
 * made the classic way (fork, setsid, fork: its session and group are the PID of a process that
 * is gone), alone (a single-process image) and with a worker (a tree); and a tree whose root
 * has children in a group whose leader was reaped, in a group whose leader is a zombie, and in
 * a session (with a group of its own) whose leaders exited. Each is captured with --kill and
 * restored with --detach: every process has its PID, parent, group and session again, the
 * placeholder leaders that rebuilt them are gone, the zombie is still reaped with its status;
 * with --new-pid the tree keeps the same shape with fresh ids.
 * Then fd tables and cwd/umask shared with the parent (clone CLONE_FILES, CLONE_FS): recorded
 * (TREE flags) and shared again after restore — a dup or chdir in one shows in the other.
 * Originals and restored trees run under a child subreaper (test/native/restore-programs/
 * subreaper.c): PID 1 does not reap orphans here.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { openImage } from "../../src/format/index.js";
import { REPO, compileC, makeTempDir, removeTempDirs, requireBuild, runCli, sleep, startProcess, type Started } from "./helpers.js";
import { captureTree, childrenOf, cleanup, gone, prog, stat, type ProcStat } from "./tree-helpers.js";

const CLI = join(REPO, "bin/ckimg");
const TP = join(REPO, "test/native/tree-programs");

let tmp = "";
let reaper = "";
beforeAll(() => {
  requireBuild();
  tmp = makeTempDir("ckimg-sessions-");
  reaper = prog(join(REPO, "test/native/restore-programs"), "subreaper");
});
afterAll(() => removeTempDirs());

/** Restore under a subreaper, detached; the restorer's process (the reaper) once the root runs. */
async function restore(img: string, root: number): Promise<Started> {
  const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img]);
  await s.waitForLine(new RegExp(`^${root}$`), { timeoutMs: 60_000 });
  return s;
}

describe("sessions and groups whose leader has exited", () => {
  for (const workers of [0, 1]) {
    it(`a double-forked daemon${workers ? " with a worker (a tree)" : " alone (a single-process image)"} keeps its session and group`, async () => {
      const exe = prog(TP, "daemon");
      const img = join(tmp, `daemon${workers}.img`);
      const orig = startProcess([reaper, exe, String(workers)]);
      let pids: number[] = [];
      let sid = 0;
      try {
        const m = /^ready (\d+) worker=(\d+) session=(\d+)$/.exec(await orig.waitForLine(/^ready /))!;
        pids = workers ? [+m[1], +m[2]] : [+m[1]];
        sid = +m[3];
        await gone([sid]);  // the session leader is gone
        for (const p of pids) expect(stat(p)).toMatchObject({ sid, pgid: sid });
        expect(captureTree(pids[0], img)).toMatchObject({ processes: workers + 1 });
        await gone(pids);
      } finally {
        await cleanup(orig, pids);
      }
      const image = await openImage(img);
      try {
        expect(image.processImage(pids[0]).process).toMatchObject({ sid, pgid: sid });
      } finally {
        await image.close();
      }

      const s = await restore(img, pids[0]);
      try {
        const from = s.lines.length;
        await s.waitForLine(/^tick \d+$/, { from, timeoutMs: 30_000 });   // it runs on
        expect(stat(pids[0])).toMatchObject({ sid, pgid: sid, ppid: s.pid });
        if (workers) expect(stat(pids[1])).toMatchObject({ sid, pgid: sid, ppid: pids[0] });
        // the placeholder leader is gone: nothing else is in the session, and it was reaped
        expect(existsSync(`/proc/${sid}`)).toBe(false);
        expect(childrenOf(s.pid)).toContain(pids[0]);
      } finally {
        await cleanup(s, pids);
      }
    }, 120_000);
  }

  it("groups whose leader was reaped or is a zombie, and a session whose leaders exited, come back inside a tree", async () => {
    const exe = prog(TP, "orphans");
    const img = join(tmp, "orphans.img");
    const orig = startProcess([reaper, exe]);
    let ids: Record<string, number> = {};
    let before: Record<string, ProcStat> = {};
    const live = () => ["root", "m", "w", "s2", "g2"].map((k) => ids[k]);
    try {
      const line = await orig.waitForLine(/^ready /);
      const m = /^ready (\d+) m=(\d+) l=(\d+) z=(\d+) w=(\d+) s1=(\d+) s2=(\d+) g1=(\d+) g2=(\d+)$/.exec(line)!;
      ids = { root: +m[1], m: +m[2], l: +m[3], z: +m[4], w: +m[5], s1: +m[6], s2: +m[7], g1: +m[8], g2: +m[9] };
      before = Object.fromEntries(["root", "m", "z", "w", "s2", "g2"].map((k) => [k, stat(ids[k])]));
      // what the program set up
      expect(before.m).toMatchObject({ ppid: ids.root, pgid: ids.l, sid: ids.root });
      expect(before.z).toMatchObject({ state: "Z", pgid: ids.z });
      expect(before.w).toMatchObject({ ppid: ids.root, pgid: ids.z, sid: ids.root });
      expect(before.s2).toMatchObject({ ppid: ids.root, pgid: ids.s1, sid: ids.s1 });
      expect(before.g2).toMatchObject({ ppid: ids.root, pgid: ids.g1, sid: ids.s1 });
      for (const k of ["l", "s1", "g1"]) expect(existsSync(`/proc/${ids[k]}`)).toBe(false);
      expect(captureTree(ids.root, img)).toMatchObject({ processes: 5, zombies: 1 });
      await gone(live());
    } finally {
      await cleanup(orig, live());
    }

    const s = await restore(img, ids.root);
    try {
      const from = s.lines.length;
      await s.waitForLine(/^alive \d+$/, { from, timeoutMs: 30_000 });
      for (const [k, b] of Object.entries(before)) {
        const { ppid, pgid, sid } = stat(ids[k]);
        expect({ k, ppid, pgid, sid }).toEqual({ k, ppid: k === "root" ? s.pid : b.ppid, pgid: b.pgid, sid: b.sid });
      }
      expect(stat(ids.z).state).toBe("Z");
      // the placeholders (l, s1, g1) were reaped; the root's children are its own again
      for (const k of ["l", "s1", "g1"]) expect(existsSync(`/proc/${ids[k]}`)).toBe(false);
      expect(childrenOf(ids.root).sort()).toEqual([ids.m, ids.z, ids.w, ids.s2, ids.g2].sort());
      expect(childrenOf(s.pid)).toContain(ids.root);
      // a signal to a rebuilt group reaches its member only (the group is the kernel's again)
      process.kill(-ids.g1, "SIGSTOP");
      for (let i = 0; i < 250 && stat(ids.g2).state !== "T"; i++) await sleep(20);
      expect(stat(ids.g2).state).toBe("T");
      expect(stat(ids.s2).state).toBe("S");
      process.kill(-ids.g1, "SIGCONT");
      // the zombie is reaped with its status
      process.kill(ids.root, "SIGUSR1");
      await s.waitForLine(new RegExp(`^reaped ${ids.z} status 5$`), { timeoutMs: 30_000 });
    } finally {
      await cleanup(s, live());
    }

    // --new-pid: the root joins our session and group (as a single process does); the rest keeps
    // its shape with fresh ids: placeholders with fresh PIDs lead the groups and the session
    const n = startProcess([reaper, process.execPath, CLI, "restore", "--detach", "--new-pid", img]);
    let fresh: number[] = [];
    try {
      const root = Number(await n.waitForLine(/^\d+$/, { timeoutMs: 60_000 }));
      fresh = [root, ...childrenOf(root)];
      const kids = childrenOf(root).map((pid) => ({ pid, ...stat(pid) }));
      expect(kids).toHaveLength(5);
      const r = stat(root);
      expect(r.sid).toBe(stat(n.pid).sid);
      const z = kids.find((k) => k.state === "Z")!;
      const w = kids.find((k) => k.pgid === z.pid && k.pid !== z.pid)!;
      const s2 = kids.find((k) => k.sid === k.pgid && k.sid !== r.sid)!;
      const g2 = kids.find((k) => k.sid === s2.sid && k.pid !== s2.pid)!;
      const m = kids.find((k) => ![z, w, s2, g2].includes(k))!;
      for (const k of [z, w, s2, g2, m]) expect(k).toBeDefined();
      expect(z.pgid).toBe(z.pid);
      expect(m.sid).toBe(r.sid);
      expect(m.pgid).not.toBe(r.pgid);
      expect(g2.pgid).not.toBe(g2.sid);
      for (const lead of [m.pgid, s2.sid, g2.pgid]) expect(existsSync(`/proc/${lead}`)).toBe(false);  // placeholders gone
    } finally {
      await cleanup(n, fresh);
    }
  }, 120_000);
});

describe("what a process shares with its parent", () => {
  it("an fd table (CLONE_FILES) and cwd/umask (CLONE_FS) shared with the parent are shared again after restore", async () => {
    const exe = prog(TP, "share");
    const img = join(tmp, "share.img");
    const dir = join(tmp, "share-cwd");
    mkdirSync(join(dir, "sub"), { recursive: true });
    const orig = startProcess([reaper, exe], { cwd: dir });
    let ids: Record<string, number> = {};
    const all = () => Object.values(ids);
    try {
      const m = /^ready (\d+) fs=(\d+) files=(\d+) plain=(\d+)$/.exec(await orig.waitForLine(/^ready /))!;
      ids = { root: +m[1], fs: +m[2], files: +m[3], plain: +m[4] };
      expect(captureTree(ids.root, img)).toMatchObject({ processes: 4 });
      await gone(all());
    } finally {
      await cleanup(orig, all());
    }
    const image = await openImage(img);
    try {
      expect(image.tree?.processes.map((p) => [p.pid, p.shares ?? []])).toEqual([
        [ids.root, []], [ids.fs, ["fs"]], [ids.files, ["files", "fs"]], [ids.plain, []],
      ]);
    } finally {
      await image.close();
    }
    expect(runCli(["inspect", img]).stdout).toContain(`share(${ids.files}) [shares files,fs]`);

    const s = await restore(img, ids.root);
    try {
      const cwd = (p: number) => readlinkSync(`/proc/${p}/cwd`);
      const umask = (p: number) => /Umask:\s*(\d+)/.exec(readFileSync(`/proc/${p}/status`, "utf8"))![1];
      const fds = (p: number) => existsSync(`/proc/${p}/fd/42`);
      const plainUmask = umask(ids.plain);
      expect(fds(ids.root)).toBe(false);
      // the files child: dup2(0, 42), chdir sub, umask 077 — seen by the parent and the fs child
      process.kill(ids.files, "SIGUSR1");
      for (let i = 0; i < 250 && !fds(ids.root); i++) await sleep(20);
      expect(fds(ids.root)).toBe(true);
      expect(existsSync(`/proc/${ids.fs}/fd/42`)).toBe(false);
      for (const k of ["root", "fs", "files"]) {
        expect(cwd(ids[k])).toBe(join(dir, "sub"));
        expect(umask(ids[k])).toBe("0077");
      }
      expect(cwd(ids.plain)).toBe(dir);
      expect(umask(ids.plain)).toBe(plainUmask);
      // the fs child and the plain child have tables of their own: their dups stay theirs
      process.kill(ids.fs, "SIGUSR1");
      process.kill(ids.plain, "SIGUSR1");
      for (let i = 0; i < 250 && !(existsSync(`/proc/${ids.fs}/fd/41`) && existsSync(`/proc/${ids.plain}/fd/43`)); i++) await sleep(20);
      expect(cwd(ids.plain)).toBe(join(dir, "sub"));
      const from = s.lines.length;
      process.kill(ids.root, "SIGUSR2");
      expect(await s.waitForLine(/^fds /, { from, timeoutMs: 30_000 })).toBe("fds 0 1 0");
    } finally {
      await cleanup(s, all());
    }
  }, 120_000);
});

describe("SEM_UNDO adjustments", () => {
  const SRC = `#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	int undo = argc > 1 && atoi(argv[1]);
	int id = semget(IPC_PRIVATE, 1, 0600);
	struct sembuf op = { 0, 1, undo ? SEM_UNDO : 0 };
	if (id < 0 || semop(id, &op, 1) < 0)
		return 1;
	printf("ready %d %d\\n", getpid(), id);
	fflush(stdout);
	for (;;)
		pause();
}
`;
  it("cannot be read: a process that did semop with SEM_UNDO gets a capture warning, one without does not", async () => {
    const exe = compileC(SRC, "semundo");
    for (const undo of [0, 1]) {
      const p = startProcess([exe, String(undo)]);
      let semid = -1;
      try {
        const [, pid, id] = (await p.waitForLine(/^ready /)).split(" ").map(Number);
        semid = id;
        const { warnings } = captureTree(pid, join(tmp, `semundo${undo}.img`)) as unknown as { warnings: string[] };
        const said = warnings.filter((w) => /SEM_UNDO/.test(w));
        expect(said).toHaveLength(undo);
        if (undo) expect(said[0]).toContain(`process ${pid} may hold SEM_UNDO adjustments`);
      } finally {
        await p.kill();
        if (semid >= 0) spawnSync("ipcrm", ["-s", String(semid)]);
      }
    }
  }, 60_000);

  // Every pthread_create (CLONE_SYSVSEM) gives a process an undo list without any semop, so the
  // list alone said nothing: node, redis and every threaded program got the warning.
  it("a threaded program that never touched a semaphore gets no warning", async (ctx) => {
    const exe = compileC(
      `#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *idle(void *arg) { (void)arg; for (;;) pause(); return NULL; }
int main(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, idle, NULL))
		return 1;
	printf("ready %d\\n", getpid());
	fflush(stdout);
	for (;;)
		pause();
}
`,
      "threaded-nosem",
      ["-pthread"],
    );
    const noSets = () => readFileSync("/proc/sysvipc/sem", "utf8").trim().split("\n").length <= 1;
    const p = startProcess([exe]);
    try {
      const pid = Number((await p.waitForLine(/^ready /)).split(" ")[1]);
      // Other test files may hold a set for a moment; the rule applies only when none exists.
      let said: string[] | undefined;
      for (let round = 0; round < 10; round++) {
        if (!noSets()) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        const { warnings } = captureTree(pid, join(tmp, "threaded-nosem.img")) as unknown as { warnings: string[] };
        if (!noSets()) continue;
        said = warnings.filter((w) => /SEM_UNDO/.test(w));
        break;
      }
      // A set that outlives 2 s was left by something else on this machine: the rule cannot be seen.
      if (said === undefined) ctx.skip();
      expect(said).toEqual([]);
    } finally {
      await p.kill();
    }
  }, 60_000);
});

describe("PID namespaces", () => {
  // ckimg makes no namespaces: a process that sees another pid of its own comes back seeing ours.
  it("a process in another PID namespace is captured with a warning that names its pid there", async () => {
    const exe = compileC(
      `#include <stdio.h>
#include <unistd.h>
int main(void)
{
	printf("ready %d\\n", getpid());
	fflush(stdout);
	for (;;)
		pause();
}
`,
      "in-pidns",
    );
    const s = startProcess(["unshare", "--pid", "--fork", exe]);
    let pid = 0;
    try {
      expect(await s.waitForLine(/^ready /)).toBe("ready 1");
      [pid] = childrenOf(s.pid);
      const r = runCli(["capture", String(pid), "-o", join(tmp, "pidns.img"), "--json"]);
      expect(r.status, r.stderr).toBe(0);
      const { warnings } = JSON.parse(r.stdout) as { warnings: string[] };
      expect(warnings.filter((w) => /PID namespace/.test(w))).toEqual([
        `process ${pid} lives in another PID namespace (its pid there is 1): restore brings it back in restore's own namespace, where its pid is ${pid}`,
      ]);
    } finally {
      await cleanup(s, pid ? [pid] : []);
    }
  }, 60_000);
});
