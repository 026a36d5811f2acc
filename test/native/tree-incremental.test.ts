/**
 * Incremental captures of process trees (`capture --parent` without --no-children, with and
 * without --track): a parent and two workers, each with a heap of its own, that write a few
 * pages between captures, plus a worker forked in between. Each process of the incremental
 * image stores only what it wrote (the new worker: everything); the chain verifies; flattened it
 * equals a full capture taken at the same moment, page for page; restored from the chain every
 * process continues and computes the checksum it had; a parent image of another tree is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, existsSync, readFileSync, readdirSync, renameSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { openImage, verifyImage, type CheckpointImage } from "../../src/format/index.js";
import { flattenImage } from "../../src/format/flatten.js";
import { runCapture, type CaptureSummary } from "../../src/cli/capture.js";
import { REPO, ask, assertUntraced, captureUntilTwin, dead, makeTempDir, removeTempDirs, requireBuild, runCli, sleep, startProcess, uffdAreas, type Started } from "./helpers.js";
import { cleanup, prog } from "./tree-helpers.js";

const CLI = join(REPO, "bin/ckimg");
const [major, minor] = release().split(".").map(Number);
const trackOk = major > 6 || (major === 6 && minor >= 7);
const MIB = 16;                 // each process's heap
const PAGES = MIB * 256;
let exe = "";
let reaper = "";
let tmp = "";

beforeAll(() => {
  requireBuild();
  exe = prog(join(REPO, "test/native/tree-programs"), "workers");
  reaper = prog(join(REPO, "test/native/restore-programs"), "subreaper");
  tmp = makeTempDir("ckimg-treeincr-");
});
afterAll(() => removeTempDirs());

async function startTree(): Promise<{ s: Started; pids: number[] }> {
  const s = startProcess([reaper, exe, String(MIB)]);
  await s.waitForLine(/^ready /, { timeoutMs: 60_000 });
  const pids = (await ask(s, "pids", /^pids /)).split(" ").slice(1).map(Number);
  return { s, pids };
}

/** Pages the file itself stores for each process (not its parents'). */
function ownPages(img: CheckpointImage): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of img.processes) out.set(p.process.pid, p.areas.reduce((n, a) => n + p.ownStoredPages(a.id), 0));
  return out;
}

/**
 * Every process's memory in a and b is the same, page for page, in every area either stores
 * pages of — but for the rseq areas, which the kernel rewrites (the CPU a thread last ran on).
 */
async function sameMemory(a: CheckpointImage, b: CheckpointImage): Promise<number> {
  let pages = 0;
  expect(b.processes.map((p) => p.process.pid).sort()).toEqual(a.processes.map((p) => p.process.pid).sort());
  for (const pa of a.processes) {
    const pb = b.processImage(pa.process.pid);
    expect(pb.areas.map((x) => `${x.start}-${x.end}`)).toEqual(pa.areas.map((x) => `${x.start}-${x.end}`));
    const rseq = [...pa.threadStates, ...pb.threadStates].map((t) => t.rseq).filter((r) => r.addr !== 0n);
    for (const area of pa.areas) {
      if (!pa.storedPages(area.id) && !pb.storedPages(area.id)) continue;
      const len = Number(area.end - area.start);
      const x = await pa.readMemory(area.start, len);
      const y = await pb.readMemory(area.start, len);
      for (const r of rseq) {
        if (r.addr >= area.start && r.addr < area.end) {
          const o = Number(r.addr - area.start);
          x.fill(0, o, o + Math.max(r.len, 32));
          y.fill(0, o, o + Math.max(r.len, 32));
        }
      }
      expect(Buffer.compare(Buffer.from(x), Buffer.from(y)), `process ${pa.process.pid} area ${area.path || area.kind} 0x${area.start.toString(16)}`).toBe(0);
      pages += len / 4096;
    }
  }
  return pages;
}

async function scenario(track: boolean): Promise<void> {
  const name = track ? "track" : "compare";
  const [a, b, full, flat] = ["a", "b", "full", "flat"].map((n) => join(tmp, `${name}-${n}.img`));
  const t = await startTree();
  let pids = t.pids;
  let liveSum = "";
  let keepers: number[] = [];
  let inc: CaptureSummary;
  try {
    const first = await runCapture({ pid: pids[0], output: a, track });
    expect(first.processes).toBe(3);
    expect(first.heldPages).toBeGreaterThanOrEqual(3 * PAGES);    // every image can be a parent
    if (track) {
      expect(first.tracking).toBe("started");
      expect(first.keeperPids).toHaveLength(3);
    }
    // each process writes a few pages of its heap; a worker is forked and writes too
    await ask(t.s, "write 0 1 2 3", /^wrote 0 3/);
    await ask(t.s, "write 1 10 11 12 13 500", /^wrote 1 5/);
    await ask(t.s, "write 2 7", /^wrote 2 1/);
    const newPid = Number((await ask(t.s, "fork", /^forked /)).split(" ")[2]);
    pids = [...pids, newPid];
    await ask(t.s, "write 3 4 5", /^wrote 3 2/);
    inc = await runCapture({ pid: pids[0], output: b, parent: a, track });
    expect(inc.processes).toBe(4);
    expect(inc.parent).toBe(a);
    if (track) {
      expect(inc.tracking).toBe("tracked");
      expect(inc.trackedProcesses).toBe(4);
      expect(inc.keeperPids).toHaveLength(4);
      expect(inc.keeperPids.slice(0, 3)).toEqual(first.keeperPids);
      keepers = inc.keeperPids;
    }
    // the same moment, taken whole (nothing runs in between: every process waits for a command)
    await runCapture({ pid: pids[0], output: full });
    liveSum = (await ask(t.s, "sum", /^sum /)).slice(4);
    for (const p of pids) assertUntraced(p);
  } finally {
    await cleanup(t.s, pids);
  }
  if (track) for (const k of keepers) {
    for (let i = 0; i < 250 && !dead(k); i++) await sleep(20);
    expect(dead(k), `keeper ${k} outlived its target`).toBe(true);
  }

  const img = await openImage(b);
  try {
    expect(img.processes).toHaveLength(4);
    const own = ownPages(img);
    // the root and the old workers: what they wrote (+ their stacks, stdio buffers)
    for (const p of pids.slice(0, 3)) expect(own.get(p)!, `process ${p} stored`).toBeLessThan(60);
    expect(own.get(pids[0])!).toBeGreaterThanOrEqual(3);
    expect(own.get(pids[1])!).toBeGreaterThanOrEqual(5);
    // the new worker: all its heap (the root's heap it still shares is the root's, not stored)
    const nw = img.processImage(forked(pids));
    expect(own.get(forked(pids))!).toBeGreaterThanOrEqual(PAGES);
    expect(own.get(forked(pids))!).toBeLessThan(PAGES + 200);
    expect(nw.parent).toBeUndefined();
    expect(nw.sharedPages!.runs.reduce((n, r) => n + r.pages, 0)).toBeGreaterThanOrEqual(PAGES);
    for (const p of pids.slice(0, 3)) expect(img.processImage(p).parent?.path).toBe(a);
  } finally {
    await img.close();
  }
  const v = await verifyImage(b, { threads: 1 });
  expect(v.problems).toEqual([]);
  expect(v.chain).toEqual([b, a]);
  const ins = runCli(["inspect", b, "--json"]);
  expect(ins.status, ins.stderr).toBe(0);

  // flattened, it is the full capture of the same moment, page for page
  const fr = await flattenImage(b, flat);
  expect(fr.inheritedPages).toBeGreaterThan(3 * PAGES - 300);
  const [fi, wi] = [await openImage(flat), await openImage(full)];
  try {
    expect(fi.parent).toBeUndefined();
    expect(await sameMemory(fi, wi)).toBeGreaterThanOrEqual(4 * PAGES);
  } finally {
    await fi.close();
    await wi.close();
  }

  // restored from the chain: every process continues, each computes the checksum it had
  const s = startProcess([reaper, process.execPath, CLI, "restore", b]);
  try {
    await sleep(300);
    const got = (await ask(s, "sum", /^sum /)).slice(4);
    expect(got).toBe(liveSum);
    expect(got.split(" ")).toHaveLength(4);
  } finally {
    await cleanup(s, pids);
  }
}

/** Keepers (ckimg-capture --keeper PID ...) of any of pids still alive. */
function keepersOf(pids: number[]): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
      if (argv[1] === "--keeper" && pids.includes(Number(argv[2])) && !dead(Number(d))) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Start a capture of the tree; SIGKILL it once the tree is released and it reads the twins. */
async function killMidCopy(pids: number[], args: string[]): Promise<void> {
  const cap = await captureUntilTwin(pids, args);
  process.kill(cap, "SIGKILL");
  for (let i = 0; i < 250 && !dead(cap); i++) await sleep(20);
}

/** The pid of the worker forked between the captures (the last one). */
const forked = (pids: number[]) => pids[pids.length - 1];

describe("incremental capture of a process tree", () => {
  it("compare-based: each process stores what it wrote, a new worker all; flatten = full capture; the chain restores", async () => {
    await scenario(false);
  }, 240_000);

  it.skipIf(!trackOk)("tracked (--track: one keeper per process): the same, only the written pages read", async () => {
    await scenario(true);
  }, 240_000);

  it.skipIf(!trackOk)("a tracked tree capture killed mid-copy leaves every process untraced, unregistered, and no keeper", async () => {
    const t = await startTree();
    const pids = t.pids;
    try {
      const before = (await ask(t.s, "sum", /^sum /)).slice(4);
      // a first --track capture killed while it reads the twins: no keeper was started yet
      await killMidCopy(pids, ["-o", join(tmp, "kill-a.img"), "--track"]);
      for (let i = 0; i < 100 && pids.some((p) => uffdAreas(p) > 0); i++) await sleep(20);
      for (const p of pids) {
        assertUntraced(p);
        expect(uffdAreas(p), `process ${p} still registered`).toBe(0);
      }
      expect(keepersOf(pids)).toEqual([]);
      expect(existsSync(join(tmp, "kill-a.img"))).toBe(false);
      // a kept baseline, then a capture on another parent (compared, scanned) killed mid-copy:
      // the pages it re-protected are in no image, so every keeper gives up
      const a = join(tmp, "kill-b.img");
      const first = await runCapture({ pid: pids[0], output: a, track: true });
      expect(first.keeperPids).toHaveLength(3);
      await runCapture({ pid: pids[0], output: join(tmp, "kill-c.img"), parent: a, track: true });
      await killMidCopy(pids, ["-o", join(tmp, "kill-d.img"), "--parent", a, "--track"]);
      for (const k of first.keeperPids) {
        for (let i = 0; i < 250 && !dead(k); i++) await sleep(20);
        expect(dead(k), `keeper ${k} left behind`).toBe(true);
      }
      for (let i = 0; i < 100 && pids.some((p) => uffdAreas(p) > 0); i++) await sleep(20);
      for (const p of pids) {
        assertUntraced(p);
        expect(uffdAreas(p)).toBe(0);
      }
      expect((await ask(t.s, "sum", /^sum /)).slice(4)).toBe(before);    // memory unchanged
    } finally {
      await cleanup(t.s, pids);
    }
  }, 240_000);

  it("refuses a parent image of another tree (capture, reader, restore), leaving the tree untouched", async () => {
    const [a, other, b] = ["a", "other", "b"].map((n) => join(tmp, `foreign-${n}.img`));
    const t1 = await startTree();
    const t2 = await startTree();
    try {
      await runCapture({ pid: t1.pids[0], output: a });
      await runCapture({ pid: t2.pids[0], output: other });
      await expect(runCapture({ pid: t2.pids[0], output: join(tmp, "never.img"), parent: a }))
        .rejects.toThrow(/parent .*foreign-a\.img is a capture of another process tree/);
      for (const p of t2.pids) assertUntraced(p);
      expect((await ask(t2.s, "sum", /^sum /)).split(" ")).toHaveLength(4);    // all three answer
      // a valid chain whose parent file is replaced by the other tree's image
      await ask(t1.s, "write 1 3", /^wrote 1 1/);
      await runCapture({ pid: t1.pids[0], output: b, parent: a });
      renameSync(a, `${a}.orig`);
      copyFileSync(other, a);
      await expect(openImage(b)).rejects.toMatchObject({ code: "BAD_PARENT" });
      const v = await verifyImage(b, { threads: 1 });
      expect(v.problems.map((p) => p.code)).toContain("BAD_PARENT");
      const r = runCli(["restore", "--check", b]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/BAD_PARENT/);
    } finally {
      await cleanup(t1.s, t1.pids);
      await cleanup(t2.s, t2.pids);
    }
  }, 240_000);
});
