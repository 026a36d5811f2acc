/**
 * Incremental images (format 1.2) on a real process: `capture --parent` stores only what
 * changed, the chain reads (TS) and restores (C) to the memory the process had, verify and
 * inspect follow the chain, and broken chains are refused with a typed error naming the parent.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, existsSync, readFileSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import { openImage, verifyImage, type CheckpointImage } from "../../src/format/index.js";
import { runCapture } from "../../src/cli/capture.js";
import { REPO, assertUntraced, compileC, makeTempDir, removeTempDirs, requireBuild, runCli, sleep, startProcess, type Started } from "./helpers.js";

const CLI = join(REPO, "bin/ckimg");
let exe = "";
let tmp = "";

beforeAll(() => {
  requireBuild();
  exe = compileC(readFileSync(join(REPO, "test/native/cow-programs/heap.c"), "utf8"), "heap");
  tmp = makeTempDir("ckimg-incr-");
});
afterAll(() => removeTempDirs());

interface Heap {
  p: Started;
  addr: bigint;
  pages: number;
}

async function startHeap(mib: number): Promise<Heap> {
  const p = startProcess([exe, String(mib)]);
  const ready = await p.waitForLine(/^ready /, { timeoutMs: 60_000 });
  const [, addr, pages] = ready.split(" ");
  return { p, addr: BigInt(addr), pages: Number(pages) };
}

/** Send one command and wait for its answer line. */
async function ask(p: Started, cmd: string, answer: RegExp): Promise<string> {
  const from = p.lines.length;
  p.write(cmd + "\n");
  return p.waitForLine(answer, { from, timeoutMs: 60_000 });
}

/** The program's own FNV-1a over the heap, computed from an image. */
async function imageSum(img: CheckpointImage, addr: bigint, pages: number): Promise<string> {
  let h = 1469598103934665603n;
  const mask = (1n << 64n) - 1n;
  for (let p = 0; p < pages; p += 256) {
    const n = Math.min(256, pages - p);
    const bytes = await img.readMemory(addr + BigInt(p * 4096), n * 4096);
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < bytes.length; i += 8) {
      h ^= v.getBigUint64(i, true);
      h = (h * 1099511628211n) & mask;
    }
  }
  return h.toString(16).padStart(16, "0");
}

async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 500 && existsSync(`/proc/${pid}`); i++) await sleep(20);
  if (existsSync(`/proc/${pid}`)) throw new Error(`process ${pid} did not go away`);
}

describe("incremental capture (--parent)", () => {
  it("stores only the changed pages, a chain of 3 reads and restores to the live memory", async () => {
    const h = await startHeap(32);
    const [a, b, c] = ["a", "b", "c"].map((n) => join(tmp, `chain-${n}.img`));
    let liveSum = "";
    try {
      const full = await runCapture({ pid: h.p.pid, output: a });
      expect(full.parent).toBeNull();
      expect(full.heldPages).toBeGreaterThanOrEqual(h.pages);
      await ask(h.p, "touch 80 11", /^touched/);
      const inc = await runCapture({ pid: h.p.pid, output: b, parent: a });
      expect(inc.parent).toBe(a);
      expect(inc.storedPages).toBeGreaterThan(0);
      expect(inc.storedPages).toBeLessThan(200);               // 80 heap pages + stack, libc data
      expect(inc.inheritedPages).toBeGreaterThan(h.pages - 200);
      expect(statSync(b).size).toBeLessThan(statSync(a).size / 10);
      // pages that became zero (MADV_DONTNEED) must be stored as zero, not inherited
      await ask(h.p, "zero 100 50", /^zeroed/);
      await ask(h.p, "touch 40 12", /^touched/);
      const inc2 = await runCapture({ pid: h.p.pid, output: c, parent: b });
      expect(inc2.storedPages).toBeGreaterThanOrEqual(50);
      liveSum = (await ask(h.p, "sum", /^sum /)).split(" ")[1];
      assertUntraced(h.p.pid);
    } finally {
      await h.p.kill();
    }

    // the TS reader resolves the chain: every page as the process had it
    const img = await openImage(c);
    try {
      expect(img.chain.map((i) => i.path)).toEqual([c, b, a]);
      expect(await imageSum(img, h.addr, h.pages)).toBe(liveSum);
      expect(await img.pageOrigin(h.addr)).toBe(a);            // never touched since A
      expect(await img.pageOrigin(h.addr + 100n * 4096n)).toBe(c);
    } finally {
      await img.close();
    }
    const v = await verifyImage(c, { threads: 1 });
    expect(v.problems).toEqual([]);
    expect(v.chain).toEqual([c, b, a]);
    const ins = runCli(["inspect", c, "--json"]);
    expect(ins.status).toBe(0);
    const parent = JSON.parse(ins.stdout).image.parent;
    expect(parent.path).toBe(b);
    expect(parent.depth).toBe(2);
    expect(parent.pagesInherited).toBeGreaterThan(h.pages - 300);

    // the C restorer resolves it too: the restored process computes the same sum
    await gone(h.p.pid);
    const r = startProcess([process.execPath, CLI, "restore", c]);
    try {
      await sleep(200);
      const got = await ask(r, "sum", /^sum /);
      expect(got.split(" ")[1]).toBe(liveSum);
    } finally {
      try {
        process.kill(h.p.pid, "SIGKILL");
      } catch {
        /* gone */
      }
      await r.kill();
      await gone(h.p.pid);
    }
  });

  it("refuses a parent of another process, leaving the target untouched", async () => {
    const x = await startHeap(4);
    const y = await startHeap(4);
    const px = join(tmp, "other-x.img");
    try {
      await runCapture({ pid: x.p.pid, output: px });
      await expect(runCapture({ pid: y.p.pid, output: join(tmp, "other-y.img"), parent: px })).rejects.toThrow(/capture of another process/);
      expect(existsSync(join(tmp, "other-y.img"))).toBe(false);
      assertUntraced(y.p.pid);
      expect(await ask(y.p, "sum", /^sum /)).toMatch(/^sum [0-9a-f]{16}$/);
    } finally {
      await x.p.kill();
      await y.p.kill();
    }
  });

  it("names a missing or replaced parent (reader, verify, restore)", async () => {
    const h = await startHeap(4);
    const a = join(tmp, "m-a.img"), b = join(tmp, "m-b.img"), a2 = join(tmp, "m-a2.img");
    try {
      await runCapture({ pid: h.p.pid, output: a });
      await runCapture({ pid: h.p.pid, output: b, parent: a });
      await runCapture({ pid: h.p.pid, output: a2 });          // same process, another image_id
    } finally {
      await h.p.kill();
    }
    renameSync(a, a + ".away");
    await expect(openImage(b)).rejects.toMatchObject({ code: "MISSING_PARENT" });
    const v = runCli(["verify", b]);
    expect(v.status).not.toBe(0);
    expect(v.stdout + v.stderr).toMatch(/MISSING_PARENT|not found/);
    const rs = runCli(["restore", b]);
    expect(rs.status).toBe(2);
    expect(rs.stderr).toMatch(/MISSING_PARENT: parent image [0-9a-f]{32} not found/);

    copyFileSync(a2, a);                                        // a parent of the same name, but not it
    await expect(openImage(b)).rejects.toMatchObject({ code: "BAD_PARENT" });
    const rs2 = runCli(["restore", b]);
    expect(rs2.status).toBe(2);
    expect(rs2.stderr).toMatch(/BAD_PARENT: wrong parent: .*m-a\.img has image_id/);
    renameSync(a + ".away", a);
    const ok = await openImage(b);
    await ok.close();
  });
});
