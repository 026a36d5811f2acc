/**
 * `ckimg capture` on real processes: small C programs compiled here, and real interpreters.
 * Every image is read back with the TypeScript reader (src/format) and compared with /proc
 * of the live target; `ckimg verify` and `ckimg inspect --json` must read it cleanly; and
 * the target must be running, untraced and unchanged afterwards (its output goes on).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openImage, verifyImage, type CheckpointImage } from "../../src/format/index.js";
import { runCapture, CaptureError, type CaptureCodec } from "../../src/cli/capture.js";
import {
  assertUntraced, compileC, compileProgram, makeTempDir, procCmdline, procFds, procMaps, procStatus, procThreads,
  removeTempDirs, runCli, sha256File, startProcess, withProcess, type Started, REPO,
} from "./helpers.js";

const PROT_R = 1, PROT_W = 2, PROT_X = 4;
const SIGHUP = 1, SIGUSR1 = 10, SIGUSR2 = 12, SIGTERM = 15;
const SA_SIGINFO = 0x4n, SA_ONSTACK = 0x08000000n, SA_RESTART = 0x10000000n;
const bit = (sig: number) => 1n << BigInt(sig - 1);

let dir: string;
const exe: Record<string, string> = {};

beforeAll(() => {
  if (!existsSync(join(REPO, "build/ckimg-capture"))) {
    const r = spawnSync("make", ["-C", join(REPO, "src/native")], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`native build failed: ${r.stderr}`);
  }
  dir = makeTempDir("ckimg-capture-");
  for (const name of ["counter", "threads", "sparse", "signals", "piperead"]) exe[name] = compileProgram(name);
});

afterAll(() => removeTempDirs());

let n = 0;
function imagePath(tag: string): string {
  return join(dir, `${tag}-${++n}.ckimg`);
}

function addr(line: string, key: string): bigint {
  const m = new RegExp(`${key}=(0x[0-9a-f]+)`).exec(line);
  if (!m) throw new Error(`no ${key}= in '${line}'`);
  return BigInt(m[1]);
}

/** The target keeps printing "tick N" with N going up by one after the capture. */
async function expectTicksGoOn(p: Started): Promise<void> {
  const from = p.lines.length;
  await p.waitForLines(from + 3);
  const ticks = p.lines.slice(from - 1).filter((l) => l.startsWith("tick ")).map((l) => Number(l.slice(5)));
  for (let i = 1; i < ticks.length; i++) expect(ticks[i]).toBe(ticks[i - 1] + 1);
}

/** Capture, then the checks every image gets: verify, inspect, reader vs /proc. */
async function captureAndCheck(p: Started, codec: CaptureCodec = "lz4", bufferMb?: number | "all"): Promise<{ img: CheckpointImage; path: string }> {
  const path = imagePath(codec);
  const summary = await runCapture({ pid: p.pid, output: path, compress: codec, bufferMb });
  assertUntraced(p.pid);
  expect(summary.pid).toBe(p.pid);
  expect(summary.imageBytes).toBe(statSync(path).size);
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(summary.freezeMs).toBeLessThanOrEqual(summary.totalMs);
  // the steps' times, in order, add up to the total (a full capture: no parent, no keeper)
  const steps = Object.keys(summary.phasesMs);
  expect(steps[0]).toBe("parent");
  expect(steps.at(-1)).toBe("finish");
  for (const s of ["freeze", "areas", "release", "fsync"]) expect(steps, s).toContain(s);
  expect(steps.indexOf("freeze")).toBeLessThan(steps.indexOf("release"));
  expect(steps.indexOf("release")).toBeLessThan(steps.indexOf("fsync"));
  const sum = Object.values(summary.phasesMs).reduce((x, y) => x + y, 0);
  expect(Math.abs(sum - summary.totalMs)).toBeLessThan(0.002 * steps.length + 0.01);
  expect(summary.cpuMs).toBeGreaterThan(0);

  const report = await verifyImage(path);
  expect(report.problems).toEqual([]);
  expect(report.ok).toBe(true);
  const v = runCli(["verify", path]);
  expect(v.stderr).toBe("");
  expect(v.status).toBe(0);
  const ins = runCli(["inspect", path, "--json"]);
  expect(ins.status).toBe(0);
  expect(JSON.parse(ins.stdout).process.pid).toBe(p.pid);

  const img = await openImage(path);
  checkAgainstProc(img, p.pid);
  return { img, path };
}

/** What the image says agrees with /proc of the (still running) target. */
function checkAgainstProc(img: CheckpointImage, pid: number): void {
  const pr = img.process;
  const st = procStatus(pid);
  expect(pr.pid).toBe(pid);
  expect(pr.ppid).toBe(process.pid);
  expect(pr.uid).toEqual(st.Uid.split(/\s+/).map(Number));
  expect(pr.gid).toEqual(st.Gid.split(/\s+/).map(Number));
  expect(pr.exe).toBe(readlinkSync(`/proc/${pid}/exe`));
  expect(pr.cwd).toBe(readlinkSync(`/proc/${pid}/cwd`));
  expect(pr.root).toBe("/");
  expect(pr.threadCount).toBe(img.threads.length);
  expect(img.argv).toEqual(procCmdline(pid));
  expect(img.environ).toEqual(procCmdline(pid, "environ"));
  expect(img.auxv.length).toBeGreaterThan(10);
  expect(img.rlimits.length).toBe(16);
  expect(pr.mm.brk).toBeGreaterThanOrEqual(pr.mm.startBrk);

  // Threads: the same set as /proc/PID/task, main first-class, registers plausible.
  expect(img.threads.map((t) => t.tid).sort((a, b) => a - b)).toEqual(procThreads(pid));
  const main = img.threads.find((t) => t.tid === pid)!;
  expect(main.flags & 1).toBe(1);
  for (const t of img.threads) {
    expect(t.regs).toBeDefined();
    expect(t.xstate.length).toBeGreaterThanOrEqual(512);
    expect(t.regs!.fs_base).not.toBe(0n);
    const a = img.areaAt(t.regs!.rip);
    expect(a, `rip of ${t.tid} is mapped`).toBeDefined();
    expect(a!.prot & PROT_X).toBe(PROT_X);
    expect(img.areaAt(t.regs!.rsp), `rsp of ${t.tid} is mapped`).toBeDefined();
  }

  // Areas: exactly the lines of /proc/PID/maps (the scratch page of the remote calls is gone).
  const maps = procMaps(pid);
  expect(img.areas.map((a) => [a.start, a.end, a.path])).toEqual(
    maps.map((m) => [m.start, m.end, m.path.replace(/ \(deleted\)$/, "")]),
  );
  for (const [i, a] of img.areas.entries()) {
    const perms = maps[i].perms;
    expect(a.prot).toBe((perms[0] === "r" ? PROT_R : 0) | (perms[1] === "w" ? PROT_W : 0) | (perms[2] === "x" ? PROT_X : 0));
    expect(a.vmflags).toMatch(a.kind === "vsyscall" ? /\bex\b/ : /\bmr\b/);
    if (a.kind === "file") expect(img.mappedFile(a.fileId)?.inode).toBe(a.inode);
  }
  const kinds = new Set(img.areas.map((a) => a.kind));
  for (const k of ["file", "stack", "vdso"]) expect(kinds).toContain(k);

  // File descriptors: the same numbers and link targets as /proc/PID/fd.
  expect(img.fds.map((f) => [f.fd, f.path])).toEqual(procFds(pid).map((f) => [f.fd, f.path]));
  // Mapped files: the executable's identity.
  const exeFile = img.files.find((f) => f.path === pr.exe);
  expect(exeFile).toBeDefined();
  expect(Buffer.from(exeFile!.sha256!).toString("hex")).toBe(sha256File(pr.exe));
}

async function memEquals(img: CheckpointImage, at: bigint, expected: Uint8Array): Promise<void> {
  const got = await img.readMemory(at, expected.length);
  expect(Buffer.from(got).equals(Buffer.from(expected))).toBe(true);
}

describe("capture: counter", () => {
  // codec × page buffer: the default 16 MiB ring, a 1 MiB ring that wraps around many times,
  // a buffer holding everything (target released when read)
  const cases: [CaptureCodec, number | "all" | undefined][] = [
    ["none", undefined], ["lz4", undefined], ["lzf", undefined], ["gzip", undefined],
    ["none", 1], ["lz4", 1], ["none", "all"], ["lzf", "all"],
  ];
  for (const [codec, bufferMb] of cases) {
    it(`captures a counter with ${codec}, buffer ${bufferMb ?? "default"}; the target counts on`, async () => {
      await withProcess([exe.counter], async (p) => {
        const ready = await p.waitForLine(/^ready/);
        await p.waitForLine(/^tick 3$/);
        const before = Math.max(...p.lines.filter((l) => l.startsWith("tick ")).map((l) => Number(l.slice(5))));
        const { img, path } = await captureAndCheck(p, codec, bufferMb);
        const after = await p.waitForLine(/^tick /, { from: p.lines.length });
        // the counter in the image is one the program really had around the capture
        const c = await img.readMemory(addr(ready, "counter"), 8);
        const value = Number(Buffer.from(c).readBigUInt64LE());
        expect(value).toBeGreaterThanOrEqual(before);
        expect(value).toBeLessThanOrEqual(Number(after.slice(5)));
        // .bss pattern and heap contents
        const pat = Buffer.alloc(3 * 4096);
        for (let i = 0; i < pat.length; i++) pat[i] = "ckimg-pattern-".charCodeAt(i % 14);
        await memEquals(img, addr(ready, "pattern"), pat);
        const heap = Buffer.alloc(1 << 20);
        for (let i = 0; i < heap.length; i++) heap[i] = (i * 7 + 1) & 0xff;
        await memEquals(img, addr(ready, "heap"), heap);
        // PAGES FIXED: codec at payload byte 24, data_offset at 36 (FORMAT.md 4.8)
        const file = readFileSync(path);
        const chunkInfo = img.chunks.map((ch) => ({
          codec: file[ch.offset + 32 + 24],
          dataAt: ch.offset + 32 + file.readUInt32LE(ch.offset + 32 + 36),
        }));
        if (codec === "none") {
          // codec NONE data lies on page boundaries of the file (mmap-able)
          for (const c of chunkInfo) {
            expect(c.codec).toBe(0);
            expect(c.dataAt % 4096).toBe(0);
          }
        } else {
          expect(chunkInfo.some((c) => c.codec === { lz4: 1, lzf: 2, gzip: 3 }[codec])).toBe(true);
        }
        await img.close();
        await expectTicksGoOn(p);
      });
    });
  }
});

describe("capture: without O_DIRECT", () => {
  it("writes the same kind of image through the page cache (filesystems without O_DIRECT)", async () => {
    process.env.CKIMG_NO_DIRECT = "1";
    try {
      await withProcess([exe.counter], async (p) => {
        const ready = await p.waitForLine(/^ready/);
        const { img } = await captureAndCheck(p, "none");
        const heap = Buffer.alloc(1 << 20);
        for (let i = 0; i < heap.length; i++) heap[i] = (i * 7 + 1) & 0xff;
        await memEquals(img, addr(ready, "heap"), heap);
        await img.close();
        await expectTicksGoOn(p);
      });
    } finally {
      delete process.env.CKIMG_NO_DIRECT;
    }
  });
});

describe("capture: threads", () => {
  it("captures main + 10 threads with their own TLS", async () => {
    await withProcess([exe.threads], async (p) => {
      await p.waitForLine(/^ready/);
      const { img } = await captureAndCheck(p);
      expect(img.threads.length).toBe(11);
      expect(img.threads.filter((t) => (t.flags & 1) !== 0).map((t) => t.tid)).toEqual([p.pid]);
      const tids = p.lines.filter((l) => l.startsWith("thread ")).map((l) => Number(/tid (\d+)/.exec(l)![1]));
      for (const tid of tids) expect(img.threads.some((t) => t.tid === tid)).toBe(true);
      expect(new Set(img.threads.map((t) => t.regs!.fs_base)).size).toBe(11);
      // each thread's TLS id is in the image at the address it printed
      for (const l of p.lines.filter((x) => x.startsWith("thread "))) {
        const id = BigInt(/^thread (\d+)/.exec(l)![1]);
        const v = await img.readMemory(addr(l, "tls"), 8);
        expect(Buffer.from(v).readBigInt64LE()).toBe(id);
      }
      // sleeping threads are inside an interrupted syscall that restart will resume
      expect(img.threads.some((t) => (t.flags & 2) !== 0)).toBe(true);
      await img.close();
      await expectTicksGoOn(p);
    });
  });
});

describe("capture: sparse memory", () => {
  it("stores only touched, non-zero pages of a 1 GiB MAP_NORESERVE area", async () => {
    await withProcess([exe.sparse], async (p) => {
      const ready = await p.waitForLine(/^ready/);
      const base = addr(ready, "base");
      const { img, path } = await captureAndCheck(p, "none");
      const area = img.areaAt(base)!;
      expect(area.start).toBe(base);
      expect(area.end - area.start).toBe(1n << 30n);
      expect(area.vmflags).toMatch(/\bnr\b/);
      expect(img.storedPages(area.id)).toBe(4);
      expect(statSync(path).size).toBeLessThan(8 << 20);
      const offs = [0n, (1n << 20n) + 4096n, 512n << 20n, (1n << 30n) - 4096n];
      for (const [i, o] of offs.entries()) await memEquals(img, base + o, new Uint8Array(4096).fill(0x41 + i));
      await memEquals(img, base + (8n << 20n), new Uint8Array(64 * 4096));
      await memEquals(img, base + 4096n, new Uint8Array(4096));
      await img.close();
      await expectTicksGoOn(p);
    });
  });
});

describe("capture: signals", () => {
  it("records handlers, flags, masks and the alternate stack; the handler still runs", async () => {
    await withProcess([exe.signals], async (p) => {
      const ready = await p.waitForLine(/^ready/);
      const { img } = await captureAndCheck(p);
      const usr1 = img.sigactions.actions.find((a) => a.signo === SIGUSR1)!;
      expect(usr1.handler).toBe(addr(ready, "handler"));
      expect(usr1.flags & (SA_SIGINFO | SA_ONSTACK | SA_RESTART)).toBe(SA_SIGINFO | SA_ONSTACK | SA_RESTART);
      expect(usr1.mask & bit(SIGUSR2)).toBe(bit(SIGUSR2));
      expect(img.sigactions.actions.find((a) => a.signo === SIGTERM)!.handler).toBe(1n);
      expect(img.sigactions.actions.some((a) => a.signo === 9 || a.signo === 19)).toBe(false);
      const main = img.threads.find((t) => t.tid === p.pid)!;
      expect(main.sigmask & (bit(SIGUSR2) | bit(SIGHUP))).toBe(bit(SIGUSR2) | bit(SIGHUP));
      expect(main.sigmask & bit(SIGUSR1)).toBe(0n);
      expect(main.altstack.sp).toBe(addr(ready, "altstack"));
      expect(main.altstack.size).toBe(65536n);
      expect(main.altstack.flags).toBe(0);
      await img.close();
      const from = p.lines.length;
      process.kill(p.pid, "SIGUSR1");
      await p.waitForLine(/^got 10$/, { from });
      await expectTicksGoOn(p);
    });
  });
});

describe("capture: blocked in read()", () => {
  it("marks the interrupted read and leaves it to restart: the target still reads its pipe", async () => {
    await withProcess([exe.piperead], async (p) => {
      await p.waitForLine(/^ready/);
      const mapsBefore = readFileSyncSafe(`/proc/${p.pid}/maps`);
      const { img } = await captureAndCheck(p);
      const main = img.threads[0];
      expect(main.tid).toBe(p.pid);
      expect(main.flags & 2).toBe(2);            // IN_SYSCALL
      expect(main.regs!.orig_rax).toBe(0n);      // __NR_read
      // nothing of the remote calls is left in the target
      expect(readFileSyncSafe(`/proc/${p.pid}/maps`)).toBe(mapsBefore);
      // memory as stored equals memory as read from the (idle) live process, area by area
      await compareWithLiveMemory(img, p.pid);
      await img.close();
      p.write("hello\n");
      await p.waitForLine(/^read 6: hello$/);
      p.write("again\n");
      await p.waitForLine(/^read 6: again$/);
    });
  });
});

function readFileSyncSafe(path: string): string {
  return spawnSync("cat", [path], { encoding: "utf8" }).stdout;
}

/**
 * Every readable page of every non-kernel area: image (or its mapped file) == /proc/PID/mem.
 * Except the kernel's own writes after the capture: each thread's registered rseq area gets
 * cpu_id_start, cpu_id, node_id and mm_cid rewritten whenever the thread moves to another CPU.
 */
async function compareWithLiveMemory(img: CheckpointImage, pid: number): Promise<void> {
  const { openSync, readSync, closeSync } = await import("node:fs");
  const fd = openSync(`/proc/${pid}/mem`, "r");
  try {
    for (const a of img.areas) {
      if (!(a.prot & PROT_R) || ["vdso", "vvar", "vsyscall", "special"].includes(a.kind)) continue;
      const len = Number(a.end - a.start);
      if (len > 64 << 20) continue;
      const live = Buffer.alloc(len);
      const got = readSync(fd, live, 0, len, a.start);
      expect(got).toBe(len);
      const mine = Buffer.from(await img.readMemory(a.start, len));
      for (const t of img.threadStates) {
        const at = t.rseq.addr - a.start, n = BigInt(t.rseq.len);
        if (n && at >= 0n && at + n <= BigInt(len)) {
          mine.fill(0, Number(at), Number(at + n));
          live.fill(0, Number(at), Number(at + n));
        }
      }
      expect(mine.equals(live), `area ${a.start.toString(16)} ${a.path}`).toBe(true);
    }
  } finally {
    closeSync(fd);
  }
}

describe("capture: states and failures", () => {
  it("captures a job-control-stopped process and leaves it stopped", async () => {
    await withProcess([exe.counter], async (p) => {
      await p.waitForLine(/^tick 2$/);
      process.kill(p.pid, "SIGSTOP");
      while (!procStatus(p.pid).State.startsWith("T")) await new Promise((r) => setTimeout(r, 10));
      const { img } = await captureAndCheck(p);
      expect(img.process.flags & 1).toBe(1);      // STOPPED
      await img.close();
      expect(procStatus(p.pid).State).toMatch(/^T \(stopped\)/);
      process.kill(p.pid, "SIGCONT");
      await expectTicksGoOn(p);
    });
  });

  it("--kill: the image is complete and the target is gone", async () => {
    const p = startProcess([exe.counter]);
    try {
      await p.waitForLine(/^tick 1$/);
      const path = imagePath("kill");
      const r = runCli(["capture", String(p.pid), "-o", path, "--kill", "--json"]);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.killed).toBe(true);
      expect(j.image).toBe(path);
      expect(await p.exited).toEqual({ code: null, signal: "SIGKILL" });
      expect((await verifyImage(path)).ok).toBe(true);
    } finally {
      await p.kill();
    }
  });

  it("fails with one line and exit 2, leaving the target and the directory untouched", async () => {
    await withProcess([exe.counter], async (p) => {
      await p.waitForLine(/^tick 1$/);
      const sub = join(dir, "fail");
      mkdirSync(sub);
      const target = join(sub, "is-a-dir");
      mkdirSync(target);           // rename onto a directory fails at the very end
      writeFileSync(join(target, "keep"), "x");
      const r = runCli(["capture", String(p.pid), "-o", target]);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(/^ckimg: /);
      expect(readdirSync(sub)).toEqual(["is-a-dir"]);
      assertUntraced(p.pid);
      await expectTicksGoOn(p);

      const gone = runCli(["capture", "999999999", "-o", join(sub, "x.img")]);
      expect(gone.status).toBe(2);
      expect(gone.stderr).toMatch(/^ckimg: .*999999999/);
      const noDir = runCli(["capture", String(p.pid), "-o", join(sub, "missing", "x.img")]);
      expect(noDir.status).toBe(2);
      expect(noDir.stderr.trim().split("\n")).toHaveLength(1);
      expect(readdirSync(sub)).toEqual(["is-a-dir"]);
      const usage = runCli(["capture", String(p.pid), "-o", join(sub, "x.img"), "--compress", "zstd"]);
      expect(usage.status).toBe(2);
      expect(usage.stderr).toMatch(/unknown codec/);
      assertUntraced(p.pid);
      await expectTicksGoOn(p);
    });
  });

  it("refuses a process another tracer holds, and leaves it to that tracer", async () => {
    const tracer = compileC(`
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (ptrace(PTRACE_SEIZE, atoi(argv[1]), 0, 0) < 0) { perror("seize"); return 1; }
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("seized\\n");
  pause();
  return 0;
}`, "tracer");
    await withProcess([exe.counter], async (p) => {
      await p.waitForLine(/^tick 1$/);
      await withProcess([tracer, String(p.pid)], async (t) => {
        await t.waitForLine(/^seized$/);
        const r = runCli(["capture", String(p.pid), "-o", join(dir, "traced.img")]);
        expect(r.status).toBe(2);
        expect(r.stderr).toBe(`ckimg: cannot freeze process ${p.pid}: it is already traced by process ${t.pid}\n`);
        expect(procStatus(p.pid).TracerPid).toBe(String(t.pid));
        expect(existsSync(join(dir, "traced.img"))).toBe(false);
      });
      assertUntraced(p.pid);
      await expectTicksGoOn(p);
    });
  });

  it("a kernel thread is refused in one line that says so", () => {
    const isKthread = (d: string) => {
      try {
        return /^Kthread:\s*1$/m.test(readFileSync(`/proc/${d}/status`, "utf8"));
      } catch {
        return false;       // gone meanwhile
      }
    };
    const kthread = readdirSync("/proc").find((d) => /^\d+$/.test(d) && isKthread(d));
    expect(kthread, "no kernel thread in /proc").toBeDefined();
    const r = runCli(["capture", kthread!, "-o", join(dir, "kthread.img")]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`ckimg: cannot freeze process ${kthread}: it is a kernel thread (no user memory to capture)\n`);
    expect(existsSync(join(dir, "kthread.img"))).toBe(false);
  });

  it("a process whose main thread exited while another runs (zdtm pthread02) is refused with one line, its thread untouched", async () => {
    const zl = compileC(`
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *run(void *a) { for (int i = 1;; i++) { printf("tick %d\\n", i); fflush(stdout); usleep(50000); } return a; }
int main(void) { pthread_t t; pthread_create(&t, NULL, run, NULL); pthread_exit(NULL); }`, "zombie-leader", ["-pthread"]);
    await withProcess([zl], async (p) => {
      await p.waitForLine(/^tick 2$/);
      const r = runCli(["capture", String(p.pid), "-o", join(dir, "zl.img")]);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`process ${p.pid}: its main thread has exited while 1 other thread\\(s\\) still run`));
      expect(existsSync(join(dir, "zl.img"))).toBe(false);
      assertUntraced(p.pid);
      const n = p.lines.length;
      await p.waitForLine(/^tick \d+$/, { from: n });
    });
  });

  it("a process in vfork() cannot stop: the freeze gives up after its timeout and says why; the process is left untraced", async () => {
    const vf = compileC(`
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int main(void) {
  char line[64];
  pid_t c = vfork();
  if (c == 0) {            /* the child shares the parent's memory: raw syscalls only */
    struct timespec ts = { 60, 0 };
    int n = snprintf(line, sizeof line, "child %d\\n", (int)syscall(SYS_getpid));
    syscall(SYS_write, 1, line, n);
    syscall(SYS_nanosleep, &ts, 0);
    _exit(0);
  }
  waitpid(c, NULL, 0);
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("reaped\\n");
  for (;;) pause();
}`, "vforker");
    await withProcess([vf], async (p) => {
      const child = Number((await p.waitForLine(/^child \d+$/)).split(" ")[1]);
      const out = join(dir, "vfork.img");
      const r = spawnSync(process.execPath, [join(REPO, "bin/ckimg"), "capture", String(p.pid), "-o", out],
        { encoding: "utf8", env: { ...process.env, CKIMG_FREEZE_TIMEOUT_MS: "500" } });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^ckimg: cannot freeze process ${p.pid}: thread ${p.pid} did not stop within \\d+ ms: it is in vfork\\(\\) until its child ${child}, which shares its memory, execs or exits\n$`));
      expect(existsSync(out)).toBe(false);
      assertUntraced(p.pid);
      process.kill(child, "SIGKILL");          /* the parent goes on: it reaps the child */
      await p.waitForLine(/^reaped$/);
    });
  });

  it("SIGTERM to the capturer at any moment: target released, no partial image", async () => {
    await withProcess([exe.sparse], async (p) => {
      await p.waitForLine(/^ready/);
      const sub = join(dir, "term");
      mkdirSync(sub);
      const path = join(sub, "x.img");
      for (let round = 0; round < 5; round++) {
        const err = await new Promise<unknown>((resolve) => {
          const run = runCapture({ pid: p.pid, output: path, compress: "gzip" }).then(() => undefined, (e) => e);
          setTimeout(() => {
            for (const pid of findCapturers(p.pid)) process.kill(pid, "SIGTERM");
          }, round * 3);
          run.then(resolve);
        });
        assertUntraced(p.pid);
        const left = readdirSync(sub);
        if (err) {
          expect(err).toBeInstanceOf(CaptureError);
          expect(left).toEqual([]);
        } else {
          expect(left).toEqual(["x.img"]);
          expect((await verifyImage(path)).ok).toBe(true);
        }
        for (const f of left) spawnSync("rm", ["-f", join(sub, f)]);
        await expectTicksGoOn(p);
      }
    });
  });
});

function findCapturers(target: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = procCmdline(Number(e));
      if (cmd[0]?.endsWith("ckimg-capture") && cmd[1] === String(target)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

describe("capture: interpreters", () => {
  const cases: [string, string[]][] = [
    ["python3", ["python3", "-u", "-c", "import time\ni=0\nwhile True:\n    print(f'tick {i}', flush=True)\n    i+=1\n    time.sleep(0.02)\n"]],
    ["perl", ["perl", "-e", "$|=1; for (my $i=0;;$i++) { print \"tick $i\\n\"; select(undef,undef,undef,0.02); }"]],
    ["bash", ["bash", "-c", "i=0; while :; do echo \"tick $i\"; i=$((i+1)); sleep 0.02; done"]],
  ];
  for (const [name, argv] of cases) {
    it(`captures ${name} running a loop`, async () => {
      await withProcess(argv, async (p) => {
        await p.waitForLine(/^tick 3$/);
        const { img } = await captureAndCheck(p);
        expect(img.process.comm).toBe(readFileSyncSafe(`/proc/${p.pid}/comm`).trim());
        // every ELF the interpreter maps has its identity; libc has a build-id
        const libc = img.files.find((f) => /\/libc\.so\.6$/.test(f.path));
        expect(libc).toBeDefined();
        expect(libc!.buildId?.length).toBe(20);
        expect(Buffer.from(libc!.sha256!).toString("hex")).toBe(sha256File(libc!.path));
        await img.close();
        await expectTicksGoOn(p);
      });
    });
  }
});
