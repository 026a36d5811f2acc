/**
 * Dirty-page tracking between captures (`capture --track`, track.c): userfaultfd async
 * write-protection held by a keeper, PAGEMAP_SCAN of the written pages. Real processes:
 * a tracked incremental capture stores exactly the pages the program wrote (and those it lost),
 * the chain restores to the live memory, the target cannot tell (no fd, child, SIGCHLD or
 * tracer left), the keeper goes with the target or with a capture killed after its scan, and
 * a capture without the keeper falls back to comparing, saying so.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { openImage } from "../../src/format/index.js";
import { areaFlagNames } from "../../src/format/records.js";
import { captureBinary, runCapture, type CaptureSummary } from "../../src/cli/capture.js";
import { REPO, ask, assertUntraced, captureUntilTwin, compileC, dead, makeTempDir, removeTempDirs, sleep, startProcess, uffdAreas, type Started } from "./helpers.js";

const CLI = join(REPO, "bin/ckimg");
const [major, minor] = release().split(".").map(Number);
const kernelOk = major > 6 || (major === 6 && minor >= 7);
if (!kernelOk) console.warn(`track.test: kernel ${release()} has no PAGEMAP_SCAN / UFFD WP_ASYNC (needs 6.7): skipped`);

let exe = "";
let tmp = "";

beforeAll(() => {
  for (const b of ["build/ckimg-restore", "build/ckimg-capture", "dist/cli/main.js"])
    if (!existsSync(join(REPO, b))) throw new Error(`${b} missing: run npm run build first`);
  exe = compileC(readFileSync(join(REPO, "test/native/track-programs/writer.c"), "utf8"), "writer");
  tmp = makeTempDir("ckimg-track-");
});
afterAll(() => removeTempDirs());

interface Writer {
  p: Started;
  addr: bigint;
  pages: number;
}

async function startWriter(mib: number): Promise<Writer> {
  const p = startProcess([exe, String(mib)]);
  const [, addr, pages] = (await p.waitForLine(/^ready /, { timeoutMs: 60_000 })).split(" ");
  return { p, addr: BigInt(addr), pages: Number(pages) };
}

async function waitDead(pid: number): Promise<void> {
  for (let i = 0; i < 500 && !dead(pid); i++) await sleep(20);
  expect(dead(pid), `process ${pid} still alive`).toBe(true);
}

describe.skipIf(!kernelOk)("dirty-page tracking (--track)", () => {
  // Write-protecting a tracked area puts a uffd-wp marker on each of its holes; pagemap shows a
  // marker as a swapped page, and a fork drops it. Taken for pages, they made an untouched area
  // look MADV_WIPEONFORK (restore then set it), and every later capture read its holes.
  it("an untouched area of a tracked process is neither flagged MADV_WIPEONFORK nor read", async () => {
    const untouched = compileC(`#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void)
{
	char *u = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *h = malloc(1 << 20);
	if (u == MAP_FAILED || !h)
		return 1;
	memset(h, 7, 1 << 20);
	printf("ready %p\\n", (void *)u);
	fflush(stdout);
	for (;;)
		pause();
}
`, "untouched");
    const p = startProcess([untouched]);
    let keeper = 0;
    try {
      const addr = BigInt((await p.waitForLine(/^ready /)).split(" ")[1]);
      const first = await runCapture({ pid: p.pid, output: join(tmp, "untouched-1.img"), track: true });
      expect(first.tracking).toBe("started");
      keeper = first.keeperPid;
      const again = await runCapture({ pid: p.pid, output: join(tmp, "untouched-2.img"), noCow: true });
      for (const [s, img] of [[first, "untouched-1.img"], [again, "untouched-2.img"]] as const) {
        expect(s.memoryBytes, img).toBeLessThan(16 << 20);      // not the 64 MiB of holes
        const im = await openImage(join(tmp, img));
        try {
          const area = im.areas.find((a) => a.start <= addr && addr < a.end)!;    // (it may have merged with the malloc chunk next to it)
          expect(areaFlagNames(area.flags), img).not.toContain("wipeonfork");
        } finally {
          await im.close();
        }
      }
    } finally {
      await p.kill();
      if (keeper) await waitDead(keeper);
    }
  }, 60_000);

  it("an incremental capture on the tracked baseline stores exactly the written pages; the chain restores", async () => {
    const w = await startWriter(64);
    const [a, b, c] = ["a", "b", "c"].map((n) => join(tmp, `t-${n}.img`));
    const written = [3, 100, 4000, 4001, w.pages - 1];
    let liveSum = "";
    let keeper = 0;
    try {
      const before = await ask(w.p, "world", /^world /);
      const full = await runCapture({ pid: w.p.pid, output: a, track: true });
      expect(full.tracking).toBe("started");
      keeper = full.keeperPid;
      expect(keeper).toBeGreaterThan(0);
      expect(dead(keeper)).toBe(false);
      expect(uffdAreas(w.p.pid)).toBeGreaterThan(0);

      await ask(w.p, `write ${written.join(" ")}`, /^wrote 5/);
      const inc: CaptureSummary = await runCapture({ pid: w.p.pid, output: b, parent: a, track: true });
      expect(inc.tracking).toBe("tracked");
      expect(inc.cow).toBe(false);                              // no twin: a few pages, read frozen
      expect(inc.keeperPid).toBe(keeper);
      // the heap's 5 pages, plus what the program's own run touched (stack, libc/stdio data)
      expect(inc.writtenPages).toBeGreaterThanOrEqual(5);
      expect(inc.storedPages).toBeLessThan(5 + 40);
      expect(inc.heldPages).toBeGreaterThanOrEqual(w.pages);    // the untouched ones: carried over
      // where the time went: the steps in order, adding up to the total
      const steps = Object.keys(inc.phasesMs);
      for (const s of ["parent", "keeper", "freeze", "track", "preread", "release", "pages", "digests", "fsync", "finish"])
        expect(steps, s).toContain(s);
      expect(steps.indexOf("parent")).toBeLessThan(steps.indexOf("freeze"));
      expect(steps.indexOf("preread")).toBeLessThan(steps.indexOf("release"));
      expect(steps.indexOf("pages")).toBeLessThan(steps.indexOf("fsync"));
      for (const ms of Object.values(inc.phasesMs)) expect(ms).toBeGreaterThanOrEqual(0);
      const sum = Object.values(inc.phasesMs).reduce((x, y) => x + y, 0);
      expect(Math.abs(sum - inc.totalMs)).toBeLessThan(0.002 * steps.length + 0.01);
      expect(inc.freezeMs).toBeLessThanOrEqual(inc.totalMs);
      expect(inc.cpuMs).toBeGreaterThan(0);

      // a kernel write (read() into the heap) and a lost page (MADV_DONTNEED: zero now)
      await ask(w.p, "readin 7", /^readin/);
      await ask(w.p, "zero 9", /^zeroed/);
      const inc2 = await runCapture({ pid: w.p.pid, output: c, parent: b, track: true });
      expect(inc2.tracking).toBe("tracked");
      liveSum = (await ask(w.p, "sum", /^sum /)).split(" ")[1];
      assertUntraced(w.p.pid);
      // the target cannot tell: no SIGCHLD, nothing to wait for, the same fds as before
      expect(await ask(w.p, "world", /^world /)).toBe(before);

      const img = await openImage(b);
      try {
        const page = (i: number) => w.addr + BigInt(i) * 4096n;
        for (const i of written) expect(await img.pageOrigin(page(i))).toBe(b);
        for (const i of [0, 2, 4, 99, 101, 3999, 4002, w.pages - 2]) expect(await img.pageOrigin(page(i))).toBe(a);
        let heapStored = 0;
        for (let i = 0; i < w.pages; i++) if ((await img.pageOrigin(page(i))) === b) heapStored++;
        expect(heapStored).toBe(written.length);                // exactly: no page more, none less
      } finally {
        await img.close();
      }
      const img2 = await openImage(c);
      try {
        expect(await img2.pageOrigin(w.addr + 7n * 4096n)).toBe(c);
        const zero = await img2.readMemory(w.addr + 9n * 4096n, 4096);
        expect(zero.every((x) => x === 0)).toBe(true);
      } finally {
        await img2.close();
      }
    } finally {
      await w.p.kill();
    }
    // the keeper goes with the target
    if (keeper) await waitDead(keeper);

    const r = startProcess([process.execPath, CLI, "restore", c]);
    try {
      await sleep(200);
      expect((await ask(r, "sum", /^sum /)).split(" ")[1]).toBe(liveSum);
    } finally {
      await r.kill();
    }
  });

  it("a target writing all the time gives a consistent image at each tracked capture", async () => {
    const heapExe = compileC(readFileSync(join(REPO, "test/native/cow-programs/heap.c"), "utf8"), "heap", ["-pthread"]);
    const p = startProcess([heapExe, "4"]);
    try {
      const [, , , arrText, slotsText] = (await p.waitForLine(/^ready /, { timeoutMs: 60_000 })).split(" ");
      const [arr, slots] = [BigInt(arrText), Number(slotsText)];
      await ask(p, "spin", /^spinning/);
      const a = join(tmp, "s-a.img");
      await runCapture({ pid: p.pid, output: a, track: true });
      for (const [n, parent] of [["s-b", a], ["s-c", join(tmp, "s-b.img")]] as const) {
        const out = join(tmp, `${n}.img`);
        const s = await runCapture({ pid: p.pid, output: out, parent, track: true });
        expect(s.tracking).toBe("tracked");
        const img = await openImage(out);
        try {
          const bytes = await img.readMemory(arr, slots * 8);
          const v = new BigUint64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
          // one instant: a sweep writes generation g in order, so g...g then g-1...g-1
          const first = v[0], last = v[slots - 1];
          expect(first - last <= 1n).toBe(true);
          for (let i = 1; i < slots; i++) if (v[i] > v[i - 1]) throw new Error(`slot ${i}: ${v[i]} after ${v[i - 1]}: torn image`);
        } finally {
          await img.close();
        }
      }
    } finally {
      await p.kill();
    }
  });

  it("a page copied before the freeze and written again before it is read again (not the early copy)", async () => {
    // Pages 10-13 share a 256-page cell whose new page 13 was not copied early: that cell is
    // read into a buffer of its own. Pages 600-602 (another cell, all copied early) are read
    // in place, into the early copy, 601 again from the target.
    const w = await startWriter(16);
    const hook = makeTempDir("ckimg-track-hook-");
    try {
      const a = join(tmp, "p-a.img"), b = join(tmp, "p-b.img");
      await runCapture({ pid: w.p.pid, output: a, track: true });
      await ask(w.p, "write 10 11 12 600 601 602", /^wrote 6/);
      const cap = spawn(captureBinary(), [String(w.p.pid), "-o", b, "--parent", a, "--track"], {
        stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CKIMG_TEST_AFTER_PRECOPY: hook },
      });
      let out = "";
      cap.stdout.on("data", (d: Buffer) => { out += d.toString(); });
      const exited = new Promise<number | null>((res) => cap.on("exit", res));
      for (let i = 0; i < 1500 && !existsSync(join(hook, "precopied")); i++) await sleep(20);
      expect(existsSync(join(hook, "precopied"))).toBe(true);
      await ask(w.p, "write 11 13 601", /^wrote 3/);          // 11, 601 again (copied already), 13 new
      writeFileSync(join(hook, "go"), "");
      expect(await exited).toBe(0);
      expect(JSON.parse(out.trim().split("\n").pop()!).tracking).toBe("tracked");
      const live = (await ask(w.p, "sum", /^sum /)).split(" ")[1];
      const img = await openImage(b);
      try {
        // page 11's first word was incremented twice: the image must hold the second write
        const word = (i: number) => img.readMemory(w.addr + BigInt(i) * 4096n, 8).then((x) => new DataView(x.buffer, x.byteOffset).getBigUint64(0, true));
        const base = (i: number) => BigInt(i) * 0x9e3779b97f4a7c15n & ((1n << 64n) - 1n);
        expect(await word(10)).toBe((base(10) + 1n) & ((1n << 64n) - 1n));
        expect(await word(11)).toBe((base(11) + 2n) & ((1n << 64n) - 1n));
        expect(await word(13)).toBe((base(13) + 1n) & ((1n << 64n) - 1n));
        expect(await word(14)).toBe(base(14));
        expect(await word(600)).toBe((base(600) + 1n) & ((1n << 64n) - 1n));
        expect(await word(601)).toBe((base(601) + 2n) & ((1n << 64n) - 1n));
        expect(await word(602)).toBe((base(602) + 1n) & ((1n << 64n) - 1n));
        expect(await word(603)).toBe(base(603));
      } finally {
        await img.close();
      }
      expect(live).toMatch(/^[0-9a-f]{16}$/);
    } finally {
      await w.p.kill();
    }
  });

  it("without the keeper (killed) the next capture compares all memory, says so, and tracks again", async () => {
    const w = await startWriter(16);
    const [a, b, c] = ["a", "b", "c"].map((n) => join(tmp, `f-${n}.img`));
    try {
      const full = await runCapture({ pid: w.p.pid, output: a, track: true });
      process.kill(full.keeperPid, "SIGKILL");
      await waitDead(full.keeperPid);
      // the handle went with it: the kernel unregistered the target's areas
      for (let i = 0; i < 100 && uffdAreas(w.p.pid) > 0; i++) await sleep(20);
      expect(uffdAreas(w.p.pid)).toBe(0);
      await ask(w.p, "write 1 2 3", /^wrote 3/);
      const inc = await runCapture({ pid: w.p.pid, output: b, parent: a, track: true });
      expect(inc.tracking).toBe("started");                    // compared, and a new handle
      expect(inc.trackingNote).toMatch(/no tracking keeper .*compared all memory/);
      expect(inc.storedPages).toBeGreaterThanOrEqual(3);
      await ask(w.p, "write 5", /^wrote 1/);
      const inc2 = await runCapture({ pid: w.p.pid, output: c, parent: b, track: true });
      expect(inc2.tracking).toBe("tracked");
      const img = await openImage(c);
      try {
        expect(await img.pageOrigin(w.addr + 5n * 4096n)).toBe(c);
        expect(await img.pageOrigin(w.addr + 1n * 4096n)).toBe(b);
      } finally {
        await img.close();
      }
      // without --track and without --parent nothing is asked of the keeper
      const plain = await runCapture({ pid: w.p.pid, output: join(tmp, "f-plain.img") });
      expect(plain.tracking).toBe("off");
      process.kill(inc2.keeperPid, "SIGTERM");
      await waitDead(inc2.keeperPid);
    } finally {
      await w.p.kill();
    }
  });

  it("a capture killed after it started tracking leaves no keeper and no registration", { timeout: 120_000 }, async () => {
    const w = await startWriter(256);
    try {
      const before = await ask(w.p, "world", /^world /);
      // first capture: killed while it reads the twin (after the freeze that registered)
      const cap = await captureUntilTwin([w.p.pid], ["-o", join(tmp, "k-a.img"), "--track"]);
      process.kill(cap, "SIGKILL");
      await waitDead(cap);
      for (let i = 0; i < 100 && uffdAreas(w.p.pid) > 0; i++) await sleep(20);
      expect(uffdAreas(w.p.pid)).toBe(0);
      assertUntraced(w.p.pid);
      expect(await ask(w.p, "world", /^world /)).toBe(before);

      // a kept baseline, then a capture on another parent (compared) killed after its scan:
      // the pages it re-protected are in no image, so the keeper must give up
      const a = join(tmp, "k-b.img");
      const first = await runCapture({ pid: w.p.pid, output: a, track: true });
      await runCapture({ pid: w.p.pid, output: join(tmp, "k-c.img"), parent: a, track: true });
      const cap2 = await captureUntilTwin([w.p.pid], ["-o", join(tmp, "k-d.img"), "--parent", a, "--track"]);
      process.kill(cap2, "SIGKILL");
      await waitDead(first.keeperPid);
      for (let i = 0; i < 100 && uffdAreas(w.p.pid) > 0; i++) await sleep(20);
      expect(uffdAreas(w.p.pid)).toBe(0);
      assertUntraced(w.p.pid);
      expect(existsSync(join(tmp, "k-d.img"))).toBe(false);
      const again = await runCapture({ pid: w.p.pid, output: join(tmp, "k-e.img"), parent: a, track: true });
      expect(again.tracking).toBe("started");
      process.kill(again.keeperPid, "SIGKILL");
    } finally {
      await w.p.kill();
    }
  });
});
