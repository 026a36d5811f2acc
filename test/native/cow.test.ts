/**
 * Copy-on-write capture (the default) on real processes: the target cannot tell it was
 * captured (no SIGCHLD, nothing to wait for, no fd, no child), every image holds the memory of
 * one instant (the heap sum the program logged for the iteration it was in), a restore goes on
 * from that instant, and a capturer killed mid-copy leaves the target running, untraced, with
 * no twin and no temp file behind.
 *
 * The targets run under cow-programs/reaper.c, a child subreaper: a twin is re-parented to the
 * nearest subreaper above its target once the helper that forked it is gone, and PID 1 on the
 * test machine reaps nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { openImage } from "../../src/format/index.js";
import { areaFlagNames } from "../../src/format/records.js";
import { runCapture } from "../../src/cli/capture.js";
import { REPO, assertUntraced, compileC, makeTempDir, procStatus, removeTempDirs, requireBuild, sleep, startProcess, tracees, type Started } from "./helpers.js";

const CLI = join(REPO, "bin/ckimg");
const CAPTURE = join(REPO, "build/ckimg-capture");
let watch = "";
let reaper = "";
let tmp = "";

beforeAll(() => {
  requireBuild();
  const src = (n: string) => readFileSync(join(REPO, "test/native/cow-programs", `${n}.c`), "utf8");
  watch = compileC(src("watch"), "watch");
  reaper = compileC(src("reaper"), "reaper");
  tmp = makeTempDir("ckimg-cow-");
});
afterAll(() => removeTempDirs());

interface Watch {
  p: Started;                       // the reaper; the program's lines come through it
  pid: number;                      // the program
  heap: bigint;
  pages: number;
  state: bigint;
}

async function startWatch(mib: number): Promise<Watch> {
  const p = startProcess([reaper, watch, String(mib)]);
  const [, pid, heap, pages, state] = (await p.waitForLine(/^ready /, { timeoutMs: 60_000 })).split(" ");
  await p.waitForLine(/^iter /);
  return { p, pid: Number(pid), heap: BigInt(heap), pages: Number(pages), state: BigInt(state) };
}

/** Kill the program (the reaper then exits with it), the reaper itself if it lingers. */
async function stopWatch(w: Watch): Promise<void> {
  try {
    process.kill(w.pid, "SIGKILL");
  } catch {
    /* gone */
  }
  await Promise.race([w.p.exited, sleep(5000)]);
  await w.p.kill();
}

interface Iter {
  seq: number;
  sum: string;
  sigchld: number;
  waits: number;
  fds: number;
  children: number;
}

function iters(lines: string[]): Iter[] {
  return lines
    .filter((l) => l.startsWith("iter "))
    .map((l) => {
      const f = l.split(" ");
      return { seq: Number(f[1]), sum: f[2], sigchld: Number(f[3]), waits: Number(f[4]), fds: Number(f[5]), children: Number(f[6]) };
    });
}

/** watch.c's heap_sum (32-bit FNV-1a over u32 words) of the heap as an image holds it. */
function heapSum(bytes: Uint8Array): string {
  const w = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  let h = 0;
  for (let i = 0; i < w.length; i++) h = Math.imul((h ^ w[i]) >>> 0, 16777619) >>> 0;
  return h.toString(16).padStart(8, "0");
}

function isAlive(pid: number): boolean {
  try {
    return !/^Z/.test(procStatus(pid).State ?? "");
  } catch {
    return false;
  }
}

async function gone(pid: number, ms = 5000): Promise<boolean> {
  for (let t = 0; t < ms && existsSync(`/proc/${pid}`); t += 20) await sleep(20);
  return !existsSync(`/proc/${pid}`);
}

/** The subreaper printed "reaped PID" (just after its wait returned: the line may trail the
 * reaping a little). */
async function saidReaped(p: Started, pid: number, ms = 5000): Promise<boolean> {
  for (let t = 0; t < ms && !p.stderr().includes(`reaped ${pid}\n`); t += 10) await sleep(10);
  return p.stderr().includes(`reaped ${pid}\n`);
}

/** Each 4 KiB page pg of bytes is all the byte want(pg); a failure names the page (and what). */
function expectPagesFilled(bytes: Uint8Array, want: (pg: number) => number, what: Record<string, number> = {}): void {
  for (let pg = 0; pg * 4096 < bytes.length; pg++) {
    const page = bytes.subarray(pg * 4096, (pg + 1) * 4096);
    expect({ ...what, page: pg, ok: page.every((b) => b === want(pg)) }).toEqual({ ...what, page: pg, ok: true });
  }
}

describe("copy-on-write capture", () => {
  it("goes unnoticed through 40 captures, each image holds one instant, a restore goes on from it", async () => {
    const w = await startWatch(8);
    const images: { path: string; seq: number; phase: number; sum: string }[] = [];
    const twins: number[] = [];
    const written: number[] = [];
    const N = 40;
    try {
      const base = iters(w.p.lines)[0];
      for (let i = 0; i < N; i++) {
        const path = join(tmp, `w${i}.img`);
        const s = await runCapture({ pid: w.pid, output: path, compress: i % 2 ? "lz4" : "none" });
        expect(s.cow).toBe(true);
        expect(s.twinPid).toBeGreaterThan(0);
        twins.push(s.twinPid);
        written.push(s.cowWrittenBytes);
        // the image itself: where the loop was, and the heap as it was then
        const img = await openImage(path);
        try {
          const st = await img.readMemory(w.state, 16);
          const v = new DataView(st.buffer, st.byteOffset, 16);
          const heap = await img.readMemory(w.heap, w.pages * 4096);
          images.push({ path, seq: Number(v.getBigUint64(0, true)), phase: Number(v.getBigUint64(8, true)), sum: heapSum(heap) });
        } finally {
          await img.close();
        }
        if (i === N - 1) {
          // the live process runs on between captures (not stopped for the copy)
          const last = iters(w.p.lines).at(-1)!.seq;
          await w.p.waitForLine(new RegExp(`^iter ${last + 3} `));
        }
      }
      const lastSeq = Math.max(...images.map((m) => m.seq));
      await w.p.waitForLine(new RegExp(`^iter ${lastSeq + 1} `));
      assertUntraced(w.pid);
      const log = iters(w.p.lines);
      // nothing seen: no SIGCHLD, nothing to wait for (not even with __WALL), no fd, no child
      for (const it of log) {
        expect(it.sigchld).toBe(0);
        expect(it.waits).toBe(0);
        expect(it.fds).toBe(base.fds);
        expect(it.children).toBe(0);
      }
      // every image whose loop was not mid-rewrite holds the heap the program summed for seq
      const bySeq = new Map(log.map((it) => [it.seq, it.sum]));
      const settled = images.filter((m) => m.phase !== 1);
      expect(settled.length).toBeGreaterThan(N / 2);
      for (const m of settled) expect({ seq: m.seq, sum: m.sum }).toEqual({ seq: m.seq, sum: bySeq.get(m.seq) });
      // the program rewrites every heap page each iteration: while a capture read the twin,
      // the pages it wrote were copied for it (the memory the snapshot cost)
      expect(Math.max(...written)).toBeGreaterThanOrEqual((w.pages * 4096) / 2);
      // the twins are gone, reaped by the subreaper above the target, never by the target
      for (const t of twins) expect(await gone(t)).toBe(true);
      for (const t of twins) expect(await saidReaped(w.p, t)).toBe(true);
    } finally {
      await stopWatch(w);
    }

    // restore the last image: the program goes on from that instant and logs, for the
    // iteration it was in, the sum the original logged for it
    const m = images.at(-1)!;
    const log = iters(w.p.lines);
    expect(await gone(w.pid)).toBe(true);
    const r = startProcess([process.execPath, CLI, "restore", m.path]);
    try {
      const first = await r.waitForLine(/^iter /, { timeoutMs: 30_000 });
      const [, seq, sum] = first.split(" ");
      expect(Number(seq)).toBeGreaterThanOrEqual(m.seq);
      expect(Number(seq)).toBeLessThanOrEqual(m.seq + 1);
      expect(sum).toBe(log.find((it) => it.seq === Number(seq))!.sum);
    } finally {
      try {
        process.kill(w.pid, "SIGKILL");
      } catch {
        /* gone */
      }
      await r.kill();
      await gone(w.pid);
    }
  }, 300_000);

  it("kill -9 of the capturer mid-copy: target running and untraced, no twin, no temp file", async () => {
    const w = await startWatch(96);
    const dir = makeTempDir("ckimg-cow-kill-");
    try {
      // deflate through a 1 MiB ring with one worker: the copy takes a while
      const cap = spawn(CAPTURE, [String(w.pid), "-o", join(dir, "k.img"), "--compress", "deflate", "--buffer-mb", "1"], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, CKIMG_WORKERS: "1" },
      });
      const exited = new Promise((res) => cap.on("exit", res));
      let twin = 0;
      for (let t = 0; t < 20_000 && !twin; t += 5) {
        const tr = tracees(cap.pid!);
        if (tr.length === 1 && tr[0] !== w.pid && Number(procStatus(w.pid).TracerPid) === 0) twin = tr[0];
        else await sleep(5);
      }
      expect(twin).toBeGreaterThan(0);                       // released, copying from the twin
      const seqAtKill = iters(w.p.lines).at(-1)!.seq;
      cap.kill("SIGKILL");
      await exited;
      expect(await gone(twin)).toBe(true);
      expect(await saidReaped(w.p, twin)).toBe(true);
      assertUntraced(w.pid);
      expect(isAlive(w.pid)).toBe(true);
      await w.p.waitForLine(new RegExp(`^iter ${seqAtKill + 3} `));
      expect(readdirSync(dir)).toEqual([]);
      const last = iters(w.p.lines).at(-1)!;
      expect([last.sigchld, last.waits, last.children]).toEqual([0, 0, 0]);
    } finally {
      await stopWatch(w);
    }
  }, 120_000);

  it.each([
    ["VmFlags from the twin after the release", []],
    ["locked memory: VmFlags from the target while frozen", ["lock"]],
  ])("areas a fork cannot hold (MADV_DONTFORK, MADV_WIPEONFORK, shared) are taken as they were at the freeze (%s)", async (_what, args) => {
    const exe = compileC(readFileSync(join(REPO, "test/native/cow-programs/odd-areas.c"), "utf8"), "odd-areas");
    const p = startProcess([exe, ...args]);
    try {
      const areas = (await p.waitForLine(/^ready /)).split(" ").slice(1).map((x) => BigInt(x));
      const path = join(tmp, "odd.img");
      const s = await runCapture({ pid: p.pid, output: path });
      expect(s.cow).toBe(true);
      p.write("poke\n");                           // the shared area changes after the capture
      await p.waitForLine(/^poked/);
      const img = await openImage(path);
      try {
        for (let k = 0; k < 3; k++)
          expectPagesFilled(await img.readMemory(areas[k], 16 * 4096), (pg) => 65 + k + pg, { area: k });
        // the areas' VmFlags are read after the release (from the twin; MADV_DONTFORK ones,
        // which the twin lacks, from the target): they are the target's, all of them
        const area = (a: bigint) => img.areas.find((x) => x.start === a)!;
        expect(areaFlagNames(area(areas[0]).flags)).toContain("dontfork");
        expect(area(areas[0]).vmflags.split(" ")).toContain("dc");
        expect(areaFlagNames(area(areas[1]).flags)).toContain("wipeonfork");
        expect(area(areas[1]).vmflags.split(" ")).toContain("wf");
        expect(areaFlagNames(area(areas[3]).flags)).toContain("wipeonfork");   // (no page: zero)
        expect(area(areas[3]).vmflags.split(" ")).toContain("wf");
        const lo = await img.readMemory(areas[3], 4096);
        expect(lo.every((b) => b === 0)).toBe(true);
        if (args.length) expect(areaFlagNames(area(areas[1]).flags)).toContain("locked");
        for (const a of img.areas)
          expect({ start: a.start.toString(16), vmflags: a.vmflags.length > 0 }).toEqual({ start: a.start.toString(16), vmflags: true });
      } finally {
        await img.close();
      }
      assertUntraced(p.pid);
    } finally {
      await p.kill();
    }
  }, 60_000);

  // The pages a process wrote in a private file mapping are anonymous copies the twin shares:
  // they are read after the release, as they were at the freeze, not as the file has them.
  it("the written pages of a private file mapping are taken from the twin, as they were at the freeze", async () => {
    const exe = compileC(readFileSync(join(REPO, "test/native/cow-programs/private-file.c"), "utf8"), "private-file");
    const p = startProcess([exe, join(tmp, "private-file.data")]);
    try {
      const addr = BigInt((await p.waitForLine(/^ready /)).split(" ")[1]);
      const path = join(tmp, "private-file.img");
      const s = await runCapture({ pid: p.pid, output: path });
      expect(s.cow).toBe(true);
      p.write("poke\n");                        // rewritten after the release
      await p.waitForLine(/^poked/);
      const img = await openImage(path);
      try {
        const area = img.areas.find((a) => a.start === addr)!;
        expect(area.path).toBe(join(tmp, "private-file.data"));
        // 'F' + p written, 'f' the file's
        expectPagesFilled(await img.readMemory(addr, 16 * 4096), (pg) => (pg < 8 ? 70 + pg : 102));
      } finally {
        await img.close();
      }
      assertUntraced(p.pid);
    } finally {
      await p.kill();
    }
  }, 60_000);

  it("a target killed the instant it is let go still gives a whole image (nothing after the release needs it alive)", async () => {
    const exe = compileC(readFileSync(join(REPO, "test/native/cow-programs/exit-on-release.c"), "utf8"), "exit-on-release");
    const tracer = (pid: number) => {
      try {
        return Number(/^TracerPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
      } catch {
        return -1;
      }
    };
    let killedEarly = 0;
    for (let round = 0; round < 3; round++) {
      const p = startProcess([exe]);
      try {
        const area = BigInt((await p.waitForLine(/^ready /)).split(" ")[1]);
        const path = join(tmp, `exit-${round}.img`);
        const done = runCapture({ pid: p.pid, output: path });
        // (a busy loop, the capture runs as another process meanwhile) frozen, then let go: kill
        let seen = false;
        for (const end = Date.now() + 20_000; Date.now() < end;) {
          const t = tracer(p.pid);
          if (t > 0) seen = true;
          else if (seen || t < 0) break;
        }
        if (seen) {
          process.kill(p.pid, "SIGKILL");
          killedEarly++;
        }
        const s = await done;
        expect(s.cow).toBe(true);
        const img = await openImage(path);
        try {
          const bytes = await img.readMemory(area, 16 * 4096);
          for (let pg = 0; pg < 16; pg++) expect(bytes.subarray(pg * 4096, (pg + 1) * 4096).every((b) => b === 68 + pg)).toBe(true);
          expect(areaFlagNames(img.areas.find((x) => x.start === area)!.flags)).toContain("dontfork");
        } finally {
          await img.close();
        }
      } finally {
        await p.kill();
      }
    }
    expect(killedEarly).toBeGreaterThan(0);
  }, 60_000);

  it("a target that is itself a child subreaper is captured stop-and-copy, handlers and all", async () => {
    const exe = compileC(
      String.raw`#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
static void on_usr1(int s) { (void)s; }
int main(void) {
  struct sigaction sa = { 0 };
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  printf("ready\n");
  fflush(stdout);
  for (;;) pause();
}
`,
      "subreaper-target",
    );
    const p = startProcess([exe]);
    try {
      await p.waitForLine(/^ready/);
      const path = join(tmp, "subreaper.img");
      const s = await runCapture({ pid: p.pid, output: path });
      expect(s.cow).toBe(false);                    // its twin would be re-parented to it
      expect(s.twinPid).toBe(0);
      const img = await openImage(path);
      try {
        const usr1 = img.sigactions.actions.find((a) => a.signo === 10);
        expect(usr1?.handler).toBeGreaterThan(1n);
      } finally {
        await img.close();
      }
      expect(readdirSync(`/proc/${p.pid}/task`).flatMap((t) => readFileSync(`/proc/${p.pid}/task/${t}/children`, "utf8").trim().split(" ").filter(Boolean))).toEqual([]);
      assertUntraced(p.pid);
    } finally {
      await p.kill();
    }
  }, 60_000);

  it("--no-cow keeps stop-and-copy (no twin)", async () => {
    const w = await startWatch(4);
    try {
      const s = await runCapture({ pid: w.pid, output: join(tmp, "nocow.img"), noCow: true });
      expect(s.cow).toBe(false);
      expect(s.twinPid).toBe(0);
      assertUntraced(w.pid);
    } finally {
      await stopWatch(w);
    }
  }, 60_000);
});
