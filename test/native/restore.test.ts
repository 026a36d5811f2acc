/**
 * `ckimg restore` on real processes: start a program, capture it (`ckimg capture`), kill it,
 * restore it, and check that it carries on from where it was — output, files, heap contents,
 * threads, signal handlers, blocked syscalls, interpreters — for every codec. Plus the failure
 * paths: PID taken, damaged page chunk, changed mapped file (nothing may be left behind).
 *
 * The restored process inherits the restorer's stdio (the original's fds 0-2 were pipes to this
 * test, which cannot be reopened), so its output arrives on the restore command's stdout.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, openSync, readFileSync, writeSync, closeSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { openImage } from "../../src/format/index.js";
import { REPO, compileC, makeTempDir, procStatus, procThreads, removeTempDirs, requireBuild, runCli, sleep, startProcess, type Started } from "./helpers.js";

const RP = join(REPO, "test/native/restore-programs");
const CLI = join(REPO, "bin/ckimg");
const prog = (name: string) => compileC(readFileSync(join(RP, `${name}.c`), "utf8"), name);

let tmp = "";
beforeAll(() => {
  requireBuild();
  tmp = makeTempDir("ckimg-restore-");
});
afterAll(() => removeTempDirs());

function capture(pid: number, img: string, codec = "lz4"): void {
  const r = runCli(["capture", String(pid), "-o", img, "--compress", codec]);
  if (r.status !== 0) throw new Error(`capture failed (${r.status}): ${r.stderr}`);
}

/** Wait until /proc/PID is gone (a killed process's PID can stay taken a moment). */
async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 500 && existsSync(`/proc/${pid}`); i++) await sleep(20);
  if (existsSync(`/proc/${pid}`)) throw new Error(`process ${pid} did not go away`);
}

/** Kill the original and wait until its PID is free. */
async function killOriginal(p: Started): Promise<void> {
  await p.kill();
  await gone(p.pid);
}

function restore(img: string, extra: string[] = []): Started {
  return startProcess([process.execPath, CLI, "restore", img, ...extra]);
}

/** Kill the restored process (recorded PID) and the restore command, reap both. */
async function stopRestored(pid: number, r: Started): Promise<{ code: number | null }> {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* already gone */
  }
  const res = await Promise.race([r.exited, sleep(10_000).then(() => null)]);
  await r.kill();
  await gone(pid);
  return { code: res ? res.code : null };
}

/** Capture → kill → restore, run fn on the restored process, always clean up. */
async function roundTrip(
  argv: string[],
  ready: (p: Started) => Promise<void>,
  check: (r: Started, orig: Started) => Promise<void>,
  opts: { codec?: string; restoreArgs?: string[] } = {},
): Promise<void> {
  const img = join(tmp, `rt-${Math.random().toString(36).slice(2)}.img`);
  const p = startProcess(argv, { cwd: tmp });
  try {
    await ready(p);
    capture(p.pid, img, opts.codec);
  } finally {
    await killOriginal(p);
  }
  const r = restore(img, opts.restoreArgs);
  try {
    await check(r, p);
  } finally {
    await stopRestored(p.pid, r);
  }
}

const EINTR = 4;
const nums = (line: string) => line.trim().split(/\s+/).filter((w) => /^\d+$/.test(w)).map(Number);

describe("ckimg restore: programs carry on", () => {
  it("counter: the count and its output file go on from where they were", async () => {
    const exe = prog("counter");
    const out = join(tmp, "count.txt");
    let lastOrig = 0;
    await roundTrip([exe, out], async (p) => {
      await p.waitForLines(10);
    }, async (r, p) => {
      lastOrig = Number(p.lines[p.lines.length - 1]);
      await r.waitForLines(15);
      const got = r.lines.slice(0, 15).map(Number);
      expect(got[0]).toBeGreaterThanOrEqual(9);            // not from 0: the original had printed 10
      expect(got[0]).toBeLessThanOrEqual(lastOrig + 1);    // from the captured state
      got.forEach((v, i) => expect(v).toBe(got[0] + i));
    });
    // the file was written through the restored fd at the restored offset: 0, 1, 2, … no gap
    const lines = readFileSync(out, "utf8").split("\n").filter(Boolean).map(Number);
    lines.forEach((v, i) => expect(v).toBe(i));
    expect(lines.length).toBeGreaterThan(lastOrig + 1 > 24 ? 24 : lastOrig + 1);
  });

  it("restores the same image twice in a row, both from the same point", async () => {
    const exe = prog("counter");
    const img = join(tmp, "twice.img");
    const p = startProcess([exe, join(tmp, "twice.txt")]);
    try {
      await p.waitForLines(5);
      capture(p.pid, img);
    } finally {
      await killOriginal(p);
    }
    const firsts: number[] = [];
    for (let round = 0; round < 2; round++) {
      const r = restore(img);
      try {
        await r.waitForLines(5);
        firsts.push(Number(r.lines[0]));
        expect(Number(r.lines[4])).toBe(Number(r.lines[0]) + 4);
      } finally {
        await stopRestored(p.pid, r);
      }
    }
    expect(firsts[0]).toBeGreaterThanOrEqual(4);
    expect(firsts[1]).toBe(firsts[0]);
  });

  it("a program blocked in nanosleep wakes up and goes on ticking", async () => {
    const exe = prog("sleeper");
    await roundTrip([exe], async (p) => {
      await p.waitForLine(/^tick 2$/);
      await sleep(150); // well inside the next 700 ms nanosleep
    }, async (r, p) => {
      const lastOrig = nums(p.lines[p.lines.length - 1])[0];
      await r.waitForLines(3);
      const ticks = r.lines.slice(0, 3).map((l) => nums(l)[0]);
      expect(ticks[0]).toBeGreaterThanOrEqual(3);
      expect(ticks[0]).toBeLessThanOrEqual(lastOrig + 1);
      expect(ticks).toEqual([ticks[0], ticks[0] + 1, ticks[0] + 2]);
    });
  });

  it("a program blocked in read() on a pipe reads on after restore, its state intact", async () => {
    const exe = prog("reader");
    await roundTrip([exe, "-"], async (p) => {
      await p.waitForLine(/^ready/);
      p.write("one\n");
      await p.waitForLine(/^got 1 one$/);
      await sleep(50);
    }, async (r) => {
      r.write("two\n");
      await r.waitForLine(/^got 2 two$/);
      // EOF on the new stdin: the program exits 3, and `ckimg restore` exits with its status
      r.child.stdin!.end();
      await r.waitForLine(/^eof 0$/);
      expect((await r.exited).code).toBe(3);
    });
  });

  it("a program blocked in read() on a FIFO file reads on after restore", async () => {
    const exe = prog("reader");
    const fifo = join(tmp, "fifo");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    const send = (text: string) => {
      const fd = openSync(fifo, "w");
      writeSync(fd, text);
      closeSync(fd);
    };
    await roundTrip([exe, fifo], async (p) => {
      await p.waitForLine(/^ready/);
      send("hello\n");
      await p.waitForLine(/^got 1 hello$/);
      await sleep(50);
    }, async (r) => {
      await sleep(100);
      send("again\n");
      await r.waitForLine(/^got 2 again$/);
    });
  });

  it("signal handlers still fire after restore (alarm, SIGUSR1), the blocked mask is kept", async () => {
    const exe = prog("alarm");
    await roundTrip([exe], async (p) => {
      await p.waitForLine(/^alarm 2$/);
    }, async (r, p) => {
      const seen = Math.max(...p.lines.filter((l) => l.startsWith("alarm")).map((l) => nums(l)[0]));
      await r.waitForLine(new RegExp(`^alarm ${seen + 1}$`), { timeoutMs: 15_000 });
      process.kill(p.pid, "SIGUSR1");
      await r.waitForLine(/^usr1 1$/);
      const st = procStatus(p.pid);
      expect(BigInt("0x" + st.SigBlk) & 0x800n).toBe(0x800n);      // SIGUSR2 blocked
      expect(BigInt("0x" + st.SigCgt) & 0x2200n).toBe(0x2200n);     // SIGALRM, SIGUSR1 caught
    });
  });

  it("a signal sent while the restore rebuilds a program asleep in pause() ends the pause (EINTR), as it would have the original's", async () => {
    const exe = prog("pause");
    await roundTrip([exe, "128"], async (p) => {
      await p.waitForLine(/^ready$/);
    }, async (r, p) => {
      // while ckimg-restore still holds it (its tracer): the signal waits, pending, for the release
      let held = false;
      for (let i = 0; i < 3000 && !held; i++) {
        try {
          held = procStatus(p.pid).TracerPid !== "0";
        } catch { /* not there yet */ }
        if (!held) await sleep(2);
      }
      process.kill(p.pid, "SIGUSR1");
      expect(await r.waitForLine(/^pause returned/, { timeoutMs: 20_000 })).toBe(`pause returned -1 errno ${EINTR} got 1`);
    }, { codec: "none" });
  });

  it("10 threads keep counting, with their TIDs", async () => {
    const exe = prog("threads");
    let tids: number[] = [];
    await roundTrip([exe], async (p) => {
      await p.waitForLines(5);
      tids = procThreads(p.pid);
    }, async (r, p) => {
      const before = nums(p.lines[4]);
      expect(before.length).toBe(10);
      await r.waitForLines(1);
      const first = nums(r.lines[0]);
      first.forEach((c, i) => expect(c).toBeGreaterThanOrEqual(before[i])); // not restarted
      // every thread runs: each count passes its value at restore
      await r.waitForLine({
        test: (l: string) => { const c = nums(l); return c.length === 10 && c.every((v, i) => v > first[i]); },
      } as RegExp);
      expect(procThreads(p.pid)).toEqual(tids);
      expect(tids.length).toBe(11);
    });
  });

  for (const codec of ["none", "lz4", "lzf", "gzip"]) {
    it(`a 32 MiB checksummed heap verifies after restore (${codec} image)`, async () => {
      const exe = prog("heap");
      await roundTrip([exe, "32"], async (p) => {
        await p.waitForLines(3);
      }, async (r, p) => {
        const sum = p.lines[0].split(" ")[2];
        const nodes = Number(p.lines[p.lines.length - 1].split(" ")[3]);
        await r.waitForLines(3);
        for (const l of r.lines.slice(0, 3)) {
          expect(l).toMatch(/^ok /);
          expect(l.split(" ")[2]).toBe(sum);
        }
        // the brk heap grew on after restore (malloc through brk works)
        expect(Number(r.lines[2].split(" ")[3])).toBeGreaterThan(Math.min(nodes, 16 * 3));
      }, { codec });
    });
  }

  it("--lazy maps uncompressed chunks from the image and the heap still verifies", async () => {
    const exe = prog("heap");
    await roundTrip([exe, "32"], async (p) => {
      await p.waitForLines(3);
    }, async (r, p) => {
      const sum = p.lines[0].split(" ")[2];
      await r.waitForLines(3);
      for (const l of r.lines.slice(0, 3)) expect(l).toBe(`ok ${l.split(" ")[1]} ${sum} ${l.split(" ")[3]}`);
    }, { codec: "none", restoreArgs: ["--lazy"] });
  });

  for (const [name, argv] of [
    ["python3", ["/usr/bin/python3", "-c",
      "import time\nst={'i':0,'acc':[]}\nwhile True:\n st['i']+=1\n st['acc'].append(st['i']*2)\n print(st['i'], sum(st['acc']), flush=True)\n time.sleep(0.03)"]],
    ["perl", ["/usr/bin/perl", "-e",
      "$|=1; my %h; my $i=0; while (1) { $i++; $h{$i}=$i*2; my $s=0; $s+=$_ for values %h; print \"$i $s\\n\"; select(undef,undef,undef,0.03); }"]],
  ] as const) {
    it(`${name}: a loop carries on with its state`, async () => {
      await roundTrip([...argv], async (p) => {
        await p.waitForLines(10);
      }, async (r, p) => {
        const lastOrig = nums(p.lines[p.lines.length - 1])[0];
        await r.waitForLines(5);
        const got = r.lines.slice(0, 5).map(nums);
        expect(got[0][0]).toBeGreaterThanOrEqual(10);
        expect(got[0][0]).toBeLessThanOrEqual(lastOrig + 1);
        got.forEach(([i, s], k) => {
          expect(i).toBe(got[0][0] + k);
          expect(s).toBe(i * (i + 1)); // the interpreter's data survived
        });
      });
    });
  }
});

describe("ckimg restore: refusals leave nothing behind", () => {
  it("refuses while the recorded PID is taken (exit 2, one line)", async () => {
    const exe = prog("counter");
    const img = join(tmp, "taken.img");
    const p = startProcess([exe, join(tmp, "taken.txt")]);
    try {
      await p.waitForLines(2);
      capture(p.pid, img);
      const r = runCli(["restore", img]);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`^ckimg: ${img}: PROCESS record: PID ${p.pid} is taken: process ${p.pid} \\(counter\\) runs; `));
    } finally {
      await killOriginal(p);
    }
  });

  it("a damaged page chunk is named and no process is left", async () => {
    const exe = prog("heap");
    const img = join(tmp, "damaged.img");
    const p = startProcess([exe, "8"]);
    try {
      await p.waitForLines(1);
      capture(p.pid, img, "none");
    } finally {
      await killOriginal(p);
    }
    const image = await openImage(img);
    const pages = image.entries.filter((e) => e.type === 0x21);
    const victim = pages[Math.floor(pages.length / 2)];
    await image.close?.();
    const at = victim.offset + 32 + victim.payloadLength - 100;
    const fd = openSync(img, "r+");
    const b = Buffer.alloc(1);
    b[0] = readFileSync(img)[at] ^ 0x40;
    writeSync(fd, b, 0, 1, at);
    closeSync(fd);
    const r = runCli(["restore", img]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^ckimg: ${img}: BAD_CHECKSUM: PAGES record #${victim.sequence} `));
    expect(existsSync(`/proc/${p.pid}`)).toBe(false);
  });

  it("a mapped file changed since the capture is refused, naming it (also with --force)", async () => {
    const exe = join(makeTempDir("ckimg-exe-"), "counter");
    copyFileSync(prog("counter"), exe);
    chmodSync(exe, 0o755);
    const img = join(tmp, "changed.img");
    const p = startProcess([exe, join(tmp, "changed.txt")]);
    try {
      await p.waitForLines(2);
      capture(p.pid, img);
    } finally {
      await killOriginal(p);
    }
    appendFileSync(exe, "x");
    for (const extra of [[], ["--force"]]) {
      const r = runCli(["restore", img, ...extra]);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`^ckimg: ${img}: MAPPED_FILE record #\\d+: ${exe} changed since the capture`));
      expect(existsSync(`/proc/${p.pid}`)).toBe(false);
    }
  });
});

describe("ckimg restore --detach", () => {
  it("prints the PID and returns while the process runs on (under a subreaper)", async () => {
    const exe = prog("counter");
    const reaper = prog("subreaper");
    const img = join(tmp, "detach.img");
    const p = startProcess([exe, join(tmp, "detach.txt")]);
    try {
      await p.waitForLines(5);
      capture(p.pid, img);
    } finally {
      await killOriginal(p);
    }
    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img]);
    try {
      await s.waitForLine(new RegExp(`^${p.pid}$`));
      // the counter goes on after the restore command has returned
      const n = s.lines.length;
      await s.waitForLines(n + 5);
      expect(procStatus(p.pid).PPid).toBe(String(s.pid));
    } finally {
      try { process.kill(p.pid, "SIGKILL"); } catch { /* gone */ }
      await Promise.race([s.exited, sleep(10_000)]);
      await s.kill();
      await gone(p.pid);
    }
  });

  it("--hand-over: the process is let go stopped with every signal blocked, its masks said; a SIGTERM then stays pending", async () => {
    const exe = prog("counter");
    const reaper = prog("subreaper");
    const img = join(tmp, "hand-over.img");
    const p = startProcess([exe, join(tmp, "hand-over.txt")]);
    try {
      await p.waitForLines(5);
      capture(p.pid, img);
    } finally {
      await killOriginal(p);
    }
    const s = startProcess([reaper, join(REPO, "build/ckimg-restore"), img, "--detach", "--hand-over"]);
    try {
      await s.waitForLine(/^end$/);
      // the PID, one mask line per thread (the counter's own: nothing blocked), end
      expect(s.lines).toEqual([String(p.pid), `mask ${p.pid} ${p.pid} 0`, "end"]);
      // detached with SIGSTOP queued: it enters the group-stop as soon as it is scheduled
      for (let i = 0; i < 250 && !procStatus(p.pid).State.startsWith("T"); i++) await sleep(20);
      const st = procStatus(p.pid);
      expect(st.State).toMatch(/^T/);
      expect(BigInt(`0x${st.SigBlk}`) & 0xfffffffe7ffbfeffn).toBe(0xfffffffe7ffbfeffn);
      process.kill(p.pid, "SIGTERM");
      await sleep(200);
      const after = procStatus(p.pid);
      expect(after.State).toMatch(/^T/);
      expect((BigInt(`0x${after.ShdPnd}`) >> 14n) & 1n).toBe(1n);   // SIGTERM (15), pending
      expect(s.lines).toHaveLength(3);                                // the counter did not go on
    } finally {
      try { process.kill(p.pid, "SIGKILL"); } catch { /* gone */ }
      await Promise.race([s.exited, sleep(10_000)]);
      await s.kill();
      await gone(p.pid);
    }
  });

  it("--hand-over without --detach is a usage error", () => {
    const r = spawnSync(join(REPO, "build/ckimg-restore"), ["x.img", "--hand-over"], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^usage: ckimg-restore/);
  });
});
