/**
 * Per-process and per-thread state (format 1.1 records 0x0007–0x000F, 0x0011–0x0017) on real
 * processes, zdtm style: each program in test/native/state-programs sets up its state, prints
 * "ready", is captured with --kill and restored, then — on a line from us — checks by itself
 * that the state is what it was and prints PASS or FAIL. The restored process reads and writes
 * the restorer's stdio (its own fds 0-2 were pipes to this test).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { crc32 } from "node:zlib";
import { join } from "node:path";
import { REPO, compileC, makeTempDir, removeTempDirs, requireBuild, runCli, sleep, startProcess, type Started } from "./helpers.js";

const SP = join(REPO, "test/native/state-programs");
const CLI = join(REPO, "bin/ckimg");
const harness = readFileSync(join(SP, "zdtm.h"), "utf8");
const prog = (name: string, flags: string[] = []) =>
  compileC(readFileSync(join(SP, `${name}.c`), "utf8").replace('#include "zdtm.h"', harness), name, ["-D_GNU_SOURCE", ...flags]);

let tmp = "";
beforeAll(() => {
  requireBuild();
  tmp = makeTempDir("ckimg-state-");
});
afterAll(() => removeTempDirs());

async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 500 && existsSync(`/proc/${pid}`); i++) await sleep(20);
  if (existsSync(`/proc/${pid}`)) throw new Error(`process ${pid} did not go away`);
}

export interface StateRun {
  img: string;
  capture: { status: number | null; stdout: string; stderr: string };
  restored: Started;
  pid: number;
}

/**
 * Start the program, wait for "ready", capture --kill, restore (not detached), send "check",
 * and return its verdict line. The restored process and the restorer are always reaped.
 */
export async function zdtmRoundTrip(
  argv: string[],
  opts: { codec?: string; restoreArgs?: string[]; beforeCheckMs?: number; onRestored?: (r: StateRun) => Promise<void> } = {},
): Promise<{ verdict: string; run: StateRun }> {
  const img = join(tmp, `st-${Math.random().toString(36).slice(2)}.img`);
  const p = startProcess(argv, { cwd: tmp });
  let cap;
  try {
    await p.waitForLine(/^ready$/);
    cap = runCli(["capture", String(p.pid), "-o", img, "--compress", opts.codec ?? "lz4", "--kill"]);
    if (cap.status !== 0) throw new Error(`capture failed (${cap.status}): ${cap.stderr}`);
  } finally {
    await p.kill();
    await gone(p.pid);
  }
  const r = startProcess([process.execPath, CLI, "restore", img, ...(opts.restoreArgs ?? [])], { cwd: tmp });
  const run: StateRun = { img, capture: cap, restored: r, pid: p.pid };
  try {
    if (opts.beforeCheckMs) await sleep(opts.beforeCheckMs);
    if (opts.onRestored) await opts.onRestored(run);
    r.write("check\n");
    const verdict = await r.waitForLine(/^(PASS|FAIL)/, { timeoutMs: 20_000 });
    return { verdict: [verdict, ...r.lines.filter((l) => l.startsWith("FAIL") && l !== verdict)].join(" | "), run };
  } finally {
    try { process.kill(p.pid, "SIGKILL"); } catch { /* gone */ }
    await Promise.race([r.exited, sleep(10_000)]);
    await r.kill();
    await gone(p.pid);
  }
}

describe("signals: capture leaves them as they were", () => {
  it("pending signals come back with their siginfo, per queue and in order (zdtm sigpending)", async () => {
    const { verdict, run } = await zdtmRoundTrip([prog("sigqueue", ["-pthread"])]);
    expect(verdict).toBe("PASS");
    const info = JSON.parse(runCli(["inspect", run.img, "--json"]).stdout);
    expect(info.pendingSignals.map((s: { signo: number }) => s.signo).sort((a: number, b: number) => a - b)).toEqual(
      [10, 17, 34, 34, 34, 35, 35]);
  });
  it("a SIGTRAP handler survives (zdtm sigtrap01)", async () => {
    const { verdict } = await zdtmRoundTrip([prog("sigtrap")]);
    expect(verdict).toBe("PASS");
  });
});

describe("timers", () => {
  it("itimers and POSIX timers come back with their ids, clocks, values and target thread", async () => {
    const { verdict, run } = await zdtmRoundTrip([prog("timers", ["-lrt"])]);
    expect(verdict).toBe("PASS");
    expect(run.capture.stderr).not.toMatch(/timer|rseq|seccomp/i);   // nothing of its state is lost
  });
});

describe("memory areas", () => {
  for (const restoreArgs of [[], ["--lazy"]]) {
    it(`madvise and mapping flags of every area come back (zdtm maps02)${restoreArgs.length ? " with --lazy" : ""}`, async () => {
      const { verdict } = await zdtmRoundTrip([prog("madvise")], { codec: restoreArgs.length ? "none" : "lz4", restoreArgs });
      expect(verdict).toBe("PASS");
    });
  }
});

describe("credentials and prctl state", () => {
  for (const mode of ["root", "nonroot"]) {
    it(`groups, capabilities, securebits, scheduler, timer slack, no_new_privs, pdeathsig, subreaper, THP-disable, dumpable, oom_score_adj (${mode})`, async () => {
      const { verdict } = await zdtmRoundTrip([prog("creds"), mode]);
      expect(verdict).toBe("PASS");
    });
  }
});

describe("per-thread state in many threads", () => {
  it("each of 12 threads gets its own alternate stack, timer slack, pdeathsig and clear_child_tid back (asked of all threads at once)", async () => {
    const { verdict } = await zdtmRoundTrip([prog("thread-own")]);
    expect(verdict).toBe("PASS");
  });
});

describe("membarrier", () => {
  it("registrations come back; an unregistered barrier still fails (zdtm membarrier)", async (ctx) => {
    const exe = prog("membarrier");
    if (spawnSync(exe, { input: "" }).stdout.toString().startsWith("SKIP")) ctx.skip();   // Linux < 6.3: nothing to read
    const { verdict, run } = await zdtmRoundTrip([exe]);
    expect(verdict).toBe("PASS");
    const info = JSON.parse(runCli(["inspect", run.img, "--json"]).stdout);
    expect(info.state.process.membarrier).toEqual(expect.arrayContaining(["global-expedited", "private-expedited"]));
    expect(info.state.process.membarrier).not.toContain("private-expedited-sync-core");
  });
});

describe("a removed cwd", () => {
  it("comes back removed, at the same path, and relative creates still fail (zdtm cwd01)", async () => {
    const dir = join(tmp, `gone-${process.pid}`);
    const { verdict, run } = await zdtmRoundTrip([prog("cwd_deleted"), dir]);
    expect(verdict).toBe("PASS");
    expect(run.restored.stderr()).toMatch(/cwd .*gone-\d+ had been removed/);
  });
});

describe("rseq and seccomp", () => {
  it("every thread's rseq registration comes back and the kernel keeps cpu_id current (zdtm rseq00)", async () => {
    const { verdict } = await zdtmRoundTrip([prog("rseq")]);
    expect(verdict).toBe("PASS");
  });

  it("seccomp filters per thread (stacked and inherited), strict mode and no_new_privs come back", async () => {
    const { verdict } = await zdtmRoundTrip([prog("seccomp")]);
    expect(verdict).toBe("PASS");
  });
});

describe("what cannot come back is said, and refused unless --force", () => {
  it("capture names a timer's overrun count; restore --detach refuses a parent-death signal in one line, --force restores with a warning", async () => {
    const exe = prog("lost", ["-lrt"]);
    const img = join(tmp, "lost.img");
    const p = startProcess([exe], { cwd: tmp });
    let cap;
    try {
      await p.waitForLine(/^ready$/);
      cap = runCli(["capture", String(p.pid), "-o", img, "--kill"]);
    } finally {
      await p.kill();
      await gone(p.pid);
    }
    expect(cap.status).toBe(0);
    expect(cap.stderr).toMatch(/^ckimg: .*lost\.img: warning: POSIX timer 0: overrun count \d+ cannot be restored/m);
    const json = JSON.parse(runCli(["inspect", "--json", img]).stdout);
    expect(json.state.timers.posix[0].overrun).toBeGreaterThanOrEqual(20);
    expect(json.state.threads[0].pdeathsig).toBe("SIGUSR1");

    const r = runCli(["restore", "--detach", img]);
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split("\n").filter((l) => !/: warning: /.test(l));
    expect(r.stderr).toMatch(/warning: TIMERS record #\d+: timer 0 had an overrun count of \d+/);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/THREAD_STATE record #\d+: a parent-death signal cannot be kept with --detach .*use --force/);
    expect(existsSync(`/proc/${p.pid}`)).toBe(false);

    const reaper = compileC(readFileSync(join(REPO, "test/native/restore-programs/subreaper.c"), "utf8"), "subreaper");
    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", "--force", img]);
    try {
      await s.waitForLine(new RegExp(`^${p.pid}$`));
      // the warning and the PID travel on different pipes: either may come first
      for (let i = 0; i < 100 && !/--force: restoring without it/.test(s.stderr()); i++) await sleep(50);
      expect(s.stderr()).toMatch(/parent-death signal .*--force: restoring without it/);
      const st = readFileSync(`/proc/${p.pid}/status`, "utf8");
      expect(st).toMatch(/State:\s+[SR]/);
    } finally {
      try { process.kill(p.pid, "SIGKILL"); } catch { /* gone */ }
      await Promise.race([s.exited, sleep(10_000)]);
      await s.kill();
      await gone(p.pid);
    }
  });

  it("the restorer refuses a damaged state record in one line and leaves no process", async () => {
    const exe = prog("timers", ["-lrt"]);
    const img = join(tmp, "damaged-state.img");
    const p = startProcess([exe], { cwd: tmp });
    try {
      await p.waitForLine(/^ready$/);
      expect(runCli(["capture", String(p.pid), "-o", img, "--kill"]).status).toBe(0);
    } finally {
      await p.kill();
      await gone(p.pid);
    }
    const { openImage, RecordType } = await import("../../src/format/index.js");
    const image = await openImage(img);
    const e = image.entries.find((x) => x.type === RecordType.TIMERS)!;
    await image.close();
    const buf = readFileSync(img);
    const payload = e.offset + 32;
    buf.writeUInt32LE(9, payload + 64 + 8);            // first POSIX timer: notify 9 (no such type)
    buf.writeUInt32LE(crc32(buf.subarray(payload, payload + e.payloadLength)), e.offset + 16);
    buf.writeUInt32LE(crc32(buf.subarray(e.offset, e.offset + 28)), e.offset + 28);
    writeFileSync(img, buf);
    const r = runCli(["restore", img]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^ckimg: ${img}: BAD_FIELD: TIMERS record #${e.sequence} at offset ${e.offset}: timer \\d+: notify 9`));
    expect(existsSync(`/proc/${p.pid}`)).toBe(false);
    // the TS reader names it too
    await expect(openImage(img)).rejects.toThrow(/notify 9/);
  });
});

describe("damaged anon-inode fd state", () => {
  it("an EPOLL record with a bad entry size is refused before any process exists", async () => {
    const exe = prog("anonfds");
    const img = join(tmp, "damaged-epoll.img");
    const p = startProcess([exe], { cwd: tmp });
    try {
      await p.waitForLine(/^ready$/);
      expect(runCli(["capture", String(p.pid), "-o", img, "--kill"]).status).toBe(0);
    } finally {
      await p.kill();
      await gone(p.pid);
    }
    const { openImage } = await import("../../src/format/index.js");
    const image = await openImage(img);
    const e = image.entries.find((x) => x.type === 0x0053)!;
    await image.close();
    const buf = readFileSync(img);
    const payload = e.offset + 32;
    buf.writeUInt32LE(3, payload + 8);                 // entry_size 3
    buf.writeUInt32LE(crc32(buf.subarray(payload, payload + e.payloadLength)), e.offset + 16);
    buf.writeUInt32LE(crc32(buf.subarray(e.offset, e.offset + 28)), e.offset + 28);
    writeFileSync(img, buf);
    const r = runCli(["restore", img]);
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split("\n").filter((l) => !/: warning: /.test(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/BAD_FIELD: EPOLL #\d+ at offset \d+ \(fd 7\): entry_size 3/);
    expect(existsSync(`/proc/${p.pid}`)).toBe(false);
    await expect(openImage(img)).rejects.toThrow(/EPOLL entry_size 3/);
  });
});

describe("inspect and diff show the state of real captures", () => {
  it("inspect lists timers and thread state; diff of two captures names what changed", async () => {
    const exe = prog("creds");
    const a = join(tmp, "creds-a.img"), b = join(tmp, "creds-b.img");
    const p = startProcess([exe, "root"], { cwd: tmp });
    try {
      await p.waitForLine(/^ready$/);
      expect(runCli(["capture", String(p.pid), "-o", a]).status).toBe(0);
      writeFileSync(`/proc/${p.pid}/oom_score_adj`, "500\n");
      expect(runCli(["capture", String(p.pid), "-o", b]).status).toBe(0);
    } finally {
      await p.kill();
      await gone(p.pid);
    }
    const text = runCli(["inspect", a]).stdout;
    expect(text).toMatch(/^state {4}oom_score_adj 321 {2}dumpable 0 {2}child-subreaper {2}thp-disabled {2}groups 42,1234,5678$/m);
    expect(text).toMatch(/ rr:3 /);          // the worker's SCHED_RR priority 3
    expect(text).toMatch(/ambient net_admin/);
    expect(text).toMatch(/no_new_privs/);
    const d = runCli(["diff", a, b]);
    expect(d.status).toBe(1);
    expect(d.stdout).toMatch(/^state\n {2}oom_score_adj: 321 → 500$/m);
    const dj = JSON.parse(runCli(["diff", "--json", a, b]).stdout);
    expect(dj.state).toEqual([{ field: "oom_score_adj", a: 321, b: 500 }]);
  });
});

describe("anon-inode fds", () => {
  it("epoll watches outlive their number: closed, re-used by another file, or kept (zdtm epoll, epoll01)", async () => {
    const { verdict, run } = await zdtmRoundTrip([prog("epoll-reused")]);
    expect(verdict).toBe("PASS");
    expect(run.capture.stderr).not.toMatch(/eventpoll/);
    const text = runCli(["inspect", run.img]).stdout;
    expect(text).toMatch(/fd 500 \(its file now on fd \d+\) in\|err\|hup data 0xa\b/);
    expect(text).toMatch(/fd 501 \(its file now on fd \d+\) in\|err\|hup\|et data 0xb\b/);
    expect(text).toMatch(/fd 502 in\|err\|hup data 0xc\b/);
  });
  for (const [codec, restoreArgs] of [["lz4", []], ["none", ["--lazy"]]] as const) {
    it(`eventfd, timerfd, signalfd and an epoll set over them come back (${codec}${restoreArgs.length ? ", --lazy" : ""})`, async () => {
      const { verdict, run } = await zdtmRoundTrip([prog("anonfds")], { codec, restoreArgs: [...restoreArgs] });
      expect(verdict).toBe("PASS");
      expect(run.capture.stderr).not.toMatch(/eventfd|timerfd|signalfd|eventpoll/);
      // inspect shows each fd's state, --json carries it
      const text = runCli(["inspect", run.img]).stdout;
      expect(text).toMatch(/eventfd count 5\b/);
      expect(text).toMatch(/eventfd count 3 \(semaphore\)/);
      expect(text).toMatch(/timerfd clock 7: next in (7[01]\d\d\.\d+s|7200s)/);
      expect(text).toMatch(/timerfd clock 1: (next in [\d.]+m?s|expired) every 300ms/);
      expect(text).toMatch(/signalfd mask 0x200/);
      expect(text).toMatch(/epoll: .*fd 3 in\|err\|hup data 0x1111\b/);
      expect(text).toMatch(/epoll: .*fd \d+ in\|err\|hup\|et data 0x4444\b/);
      const j = JSON.parse(runCli(["inspect", "--json", run.img]).stdout);
      const ev = j.files.find((f: { fd: number }) => f.fd === 3);
      expect(ev.state[0]).toMatchObject({ type: "eventfd", count: "5", semaphore: false });
    });
  }
});

describe("inotify", () => {
  it("watches come back under their own wds and masks; no stray events; new events arrive (zdtm inotify00)", async () => {
    const { verdict, run } = await zdtmRoundTrip([prog("inotify")]);
    expect(verdict).toBe("PASS");
    expect(run.capture.stderr).not.toMatch(/inotify/);
    const text = runCli(["inspect", run.img]).stdout;
    expect(text).toMatch(/inotify: wd 2 \/\S+\/inotify-\w+ create\|delete, wd 3 \/\S+\/data modify\|oneshot/);
    const j = JSON.parse(runCli(["inspect", "--json", run.img]).stdout);
    const fds = j.files.filter((f: { state?: { type: string }[] }) => f.state?.[0]?.type === "inotify");
    expect(fds.map((f: { state: { watches: string }[] }) => f.state[0].watches.split(",").length).sort()).toEqual([1, 2]);
  });

  it("a watch on a deleted file the process still holds goes to the file restore makes again (zdtm inotify00)", async () => {
    const { verdict, run } = await zdtmRoundTrip([prog("inotify-deleted")]);
    expect(verdict).toBe("PASS");
    expect(run.capture.stderr).not.toMatch(/inotify/);
    expect(runCli(["inspect", run.img]).stdout).toMatch(/inotify: wd 1 \/\S+\/inotify-del-\w+ .*, wd 2 \/\S+\/inotify-del-\w+\/removed /);
  });
});

describe("pseudo-terminals", () => {
  it("a pty slave's owner and mode set with fchown/fchmod come back on the new pty (zdtm pty01)", async () => {
    const { verdict, run } = await zdtmRoundTrip([prog("pty-owner")]);
    expect(verdict).toBe("PASS");
    expect(runCli(["inspect", run.img]).stdout).toMatch(/owner 13333:44444 mode 0604/);
  });
});

describe("pseudo-terminals: queued bytes, controlling terminal", () => {
  it("a pty pair's queued bytes (both ways) and the pty as controlling terminal, /dev/tty open, come back (zdtm pty00)", async () => {
    const { verdict, run } = await zdtmRoundTrip([prog("pty-queue")]);
    expect(verdict).toBe("PASS");
    expect(run.restored.stderr()).not.toMatch(/queued/);
  });

  it("capture without --kill gives the queued bytes back: the process reads what it would have read", async () => {
    const img = join(tmp, "pty-queue-live.img");
    const p = startProcess([prog("pty-queue")], { cwd: tmp });
    try {
      await p.waitForLine(/^ready$/);
      const cap = runCli(["capture", String(p.pid), "-o", img]);
      expect(cap.status, cap.stderr).toBe(0);
      // the slave's three lines (14 bytes) and the master's echo + line (33 bytes), each once
      const t = JSON.parse(runCli(["inspect", "--json", img]).stdout);
      const kept = t.files.filter((f: { tty?: { keptBytes: number } }) => f.tty?.keptBytes).map((f: { fd: number; tty: { keptBytes: number } }) => [f.fd, f.tty.keptBytes]);
      expect(kept).toEqual([[40, 14], [41, 33]]);
      p.write("check\n");
      expect(await p.waitForLine(/^(PASS|FAIL)/, { timeoutMs: 20_000 })).toBe("PASS");
    } finally {
      await p.kill();
      await gone(p.pid);
    }
  });
});

describe("a real event loop", () => {
  it("asyncio (epoll, timers, a timerfd, an eventfd self-pipe woken from a thread) carries on after restore", async () => {
    const img = join(tmp, "asyncio.img");
    const p = startProcess(["/usr/bin/python3", join(SP, "asyncio_loop.py")], { cwd: tmp });
    let last: number[] = [];
    const nums = (l: string) => l.split(" ").filter((w) => /^\d+$/.test(w)).map(Number);
    try {
      await p.waitForLines(8);
      const cap = runCli(["capture", String(p.pid), "-o", img, "--kill"]);
      expect(cap.status, cap.stderr).toBe(0);
      expect(cap.stderr).not.toMatch(/eventfd|timerfd|eventpoll/);
    } finally {
      await p.kill();
      await gone(p.pid);
    }
    last = nums(p.lines[p.lines.length - 1]);
    const r = startProcess([process.execPath, CLI, "restore", img], { cwd: tmp });
    try {
      await r.waitForLines(10);
      const got = r.lines.slice(0, 10).map(nums);
      // ticks go on from where they were, one by one
      expect(got[0][0]).toBeGreaterThanOrEqual(last[0]);
      expect(got[0][0]).toBeLessThanOrEqual(last[0] + 2);
      got.forEach((g, k) => expect(g[0]).toBe(got[0][0] + k));
      // the timerfd and the thread's wakeups through the eventfd keep counting past their values
      expect(got[9][1]).toBeGreaterThan(last[1] + 3);
      expect(got[9][2]).toBeGreaterThan(last[2] + 5);
    } finally {
      try { process.kill(p.pid, "SIGKILL"); } catch { /* gone */ }
      await Promise.race([r.exited, sleep(10_000)]);
      await r.kill();
      await gone(p.pid);
    }
  });
});
