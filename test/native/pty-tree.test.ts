/**
 * A pseudo-terminal whose master one process of a tree holds and whose slave another (a
 * terminal server and the shell on its terminal: tmux, screen, script, sshd) comes back as one
 * pty again: captured with `ckimg capture --kill` (the whole tree), restored with
 * `ckimg restore --detach`, and used through the master.
 *   - tree-programs/ptypair.c: the parent pings through the master, the job in the child's
 *     session answers through the slave, and reports its session's controlling terminal
 *     (TIOCGSID), its foreground group, the window size and echo: all as before the capture.
 *   - a tmux server on a private socket: `tmux ls` answers the restored server, and the shell in
 *     its pane keeps its variables and its controlling terminal.
 * Everything runs under a child subreaper (test/native/restore-programs/subreaper.c): PID 1
 * does not reap orphans here.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, compileC, makeTempDir, removeTempDirs, requireBuild, runCli, sleep, startProcess, until, type Started } from "./helpers.js";
import { captureTree, cleanup, gone, prog, stat } from "./tree-helpers.js";

const CLI = join(REPO, "bin/ckimg");
const haveTmux = spawnSync("tmux", ["-V"]).status === 0;

let tmp = "";
let reaper = "";
beforeAll(() => {
  requireBuild();
  tmp = makeTempDir("ckimg-ptytree-");
  reaper = prog(join(REPO, "test/native/restore-programs"), "subreaper");
});
afterAll(() => removeTempDirs());

const children = (pid: number): number[] => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
};


const PONG = /^got pong (\d+) pid=(\d+) sid=(\d+) ttysid=(-?\d+) pgrp=(\d+) fg=(-?\d+) rows=(\d+) cols=(\d+) echo=(\d)$/;

describe("a pty pair between processes of a tree", () => {
  it("comes back as one pty: the session's controlling terminal, foreground group, termios and size kept", async () => {
    const exe = prog(join(REPO, "test/native/tree-programs"), "ptypair");
    const img = join(tmp, "ptypair.img");
    const orig = startProcess([reaper, exe]);
    let pids: number[] = [];
    let last = 0;
    let before: RegExpExecArray;
    try {
      const m = /^ready (\d+) (\d+)$/.exec(await orig.waitForLine(/^ready /))!;
      const [root, leader] = [Number(m[1]), Number(m[2])];
      before = PONG.exec(await orig.waitForLine(PONG))!;
      const job = Number(before[2]);
      pids = [root, leader, job];
      // as the program set it up: the job in the leader's session, its group in the foreground
      expect(before.slice(3, 10).map(Number)).toEqual([leader, leader, job, job, 33, 77, 0]);
      expect(stat(leader).tpgid).toBe(job);
      expect(captureTree(root, img)).toMatchObject({ processes: 3, killed: true });
      await Promise.race([orig.exited, sleep(10_000)]);
      last = Math.max(...orig.lines.map((l) => PONG.exec(l)).filter((x) => x).map((x) => Number(x![1])));
      await gone(pids);
    } finally {
      await cleanup(orig, pids);
    }

    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img]);
    try {
      await s.waitForLine(new RegExp(`^${pids[0]}$`), { timeoutMs: 60_000 });
      // the parent's pings reach the job through the new pair, and its answers come back
      const after = await until("an answer after the restore", () =>
        s.lines.map((l) => PONG.exec(l)).find((x) => x && Number(x[1]) > last + 2), 60_000);
      expect(after.slice(2, 10)).toEqual(before.slice(2, 10));   // same pid, session, ctty, group, foreground, size, echo
      expect(s.stderr()).not.toMatch(/cannot be reconnected|no controlling terminal|foreground group/);
      const [root, leader, job] = pids;
      expect(stat(leader)).toMatchObject({ ppid: root, sid: leader, pgid: leader, tpgid: job });
      expect(stat(job)).toMatchObject({ ppid: leader, sid: leader, pgid: job, tpgid: job });
      expect(stat(leader).ttyNr).not.toBe(0);
      expect(stat(root).ttyNr === stat(leader).ttyNr).toBe(false);     // the parent holds the master only
    } finally {
      await cleanup(s, pids);
    }
  }, 180_000);
});

describe("a pty master whose slave no process of the tree holds", () => {
  it("is refused with one line naming the process and record; --force gives it a new pty", async () => {
    const img = join(tmp, "lone.img");
    const code = "import os, sys, time\nm, s = os.openpty()\nos.close(s)\npid = os.fork()\n" +
      "if pid == 0:\n    os.close(m)\n    time.sleep(600)\n    os._exit(0)\nprint('ready', os.getpid(), pid, m, flush=True)\ntime.sleep(600)\n";
    const orig = startProcess([reaper, "python3", "-c", code]);
    let pids: number[] = [];
    let fd = 0;
    try {
      const m = /^ready (\d+) (\d+) (\d+)$/.exec(await orig.waitForLine(/^ready /))!;
      pids = [Number(m[1]), Number(m[2])];
      fd = Number(m[3]);
      expect(captureTree(pids[0], img)).toMatchObject({ processes: 2, killed: true });
      await gone(pids);
    } finally {
      await cleanup(orig, pids);
    }
    const r = runCli(["restore", "--detach", img]);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`process ${pids[0]}: TTY record #\\d+: fd ${fd} is a pty master \\(pty \\d+\\) whose slave no process of the tree held; it cannot be reconnected`));
    expect(pids.some((p) => existsSync(`/proc/${p}`))).toBe(false);
    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", "--force", img]);
    try {
      await s.waitForLine(new RegExp(`^${pids[0]}$`), { timeoutMs: 60_000 });
      expect(s.stderr()).toMatch(/a pty master whose slave no process of the tree held, gets a new pty/);
      expect(readFileSync(`/proc/${pids[0]}/cmdline`, "utf8")).toContain("python3");
    } finally {
      await cleanup(s, pids);
    }
  }, 120_000);
});

describe.skipIf(!haveTmux)("a tmux server and the shell in its pane", () => {
  it("comes back: tmux ls answers, the shell keeps its variables and its terminal", async () => {
    const sock = join(tmp, "tmux.sock");
    const img = join(tmp, "tmux.img");
    const tmux = (...args: string[]) => spawnSync("tmux", ["-S", sock, ...args], { encoding: "utf8" });
    const env = { ...process.env, TERM: "xterm" };
    const start = startProcess([reaper, "tmux", "-S", sock, "-f", "/dev/null", "new-session", "-d", "-s", "work", "-x", "90", "-y", "20",
      "env", "-i", `PATH=${process.env.PATH}`, "TERM=tmux-256color", `HOME=${tmp}`, "PS1=$ ", "bash", "--norc", "--noprofile", "-i"], { env });
    let s: Started | undefined;
    let pids: number[] = [];
    try {
      await until("the tmux server", () => existsSync(sock) && tmux("has-session", "-t", "work").status === 0);
      const server = Number(tmux("display", "-p", "#{pid}").stdout.trim());
      const shell = Number(tmux("display", "-p", "-t", "work", "#{pane_pid}").stdout.trim());
      pids = [server, shell];
      expect(children(server)).toEqual([shell]);
      tmux("send-keys", "-t", "work", "Y=restored-ok; echo hi", "Enter");
      await until("the shell's echo", () => /^hi$/m.test(tmux("capture-pane", "-p", "-t", "work").stdout));
      const shellBefore = stat(shell);
      expect(shellBefore).toMatchObject({ sid: shell, tpgid: shell });
      expect(captureTree(server, img)).toMatchObject({ processes: 2, killed: true });
      await gone(pids);
      expect(tmux("ls").status).not.toBe(0);

      s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img], { env });
      await s.waitForLine(new RegExp(`^${server}$`), { timeoutMs: 60_000 });
      expect(s.stderr()).not.toMatch(/cannot be reconnected|no controlling terminal|foreground group/);
      const ls = await until("tmux ls", () => { const r = tmux("ls"); return r.status === 0 && r.stdout; });
      expect(ls).toMatch(/^work: 1 windows/);
      tmux("send-keys", "-t", "work", "echo Y=$Y tty=$(tty)", "Enter");
      const screen = await until("the shell's answer", () => { const t = tmux("capture-pane", "-p", "-t", "work").stdout; return /^Y=restored-ok tty=\/dev\/pts\/\d+$/m.test(t) && t; });
      expect(screen).toMatch(/^Y=restored-ok tty=/m);
      expect(stat(shell)).toMatchObject({ ppid: server, sid: shell, pgid: shell, tpgid: shell });
      expect(stat(shell).ttyNr).not.toBe(0);
    } finally {
      tmux("kill-server");
      await cleanup(s, pids);
      await Promise.race([start.exited, sleep(10_000)]);
      await start.kill();
    }
  }, 180_000);
});
