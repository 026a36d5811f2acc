/**
 * `ckimg flatten`: a chain of incremental captures of a live program becomes one standalone
 * image that holds, page for page, what the chain holds and what a full capture at the same
 * instant holds; it verifies, restores and carries on, and flattened over itself it stands in
 * for its original as the parent of the next image in the chain.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { openImage, verifyImage, type CheckpointImage } from "../../src/format/index.js";
import { runCapture } from "../../src/cli/capture.js";
import { REPO, compileC, makeTempDir, removeTempDirs, requireBuild, runCli, sleep, startProcess, type Started } from "./helpers.js";

const CLI = join(REPO, "bin/ckimg");
let exe = "";
let tmp = "";

beforeAll(() => {
  requireBuild();
  exe = compileC(readFileSync(join(REPO, "test/native/cow-programs/heap.c"), "utf8"), "heap");
  tmp = makeTempDir("ckimg-flatten-");
});
afterAll(() => removeTempDirs());

async function ask(p: Started, cmd: string, answer: RegExp): Promise<string> {
  const from = p.lines.length;
  p.write(cmd + "\n");
  return p.waitForLine(answer, { from, timeoutMs: 60_000 });
}

async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 500 && existsSync(`/proc/${pid}`); i++) await sleep(20);
  if (existsSync(`/proc/${pid}`)) throw new Error(`process ${pid} did not go away`);
}

/**
 * The first address where two images' memory differs, in the areas of `a` (or those of them
 * that hold one of `only`), or undefined.
 */
async function firstDifference(a: CheckpointImage, b: CheckpointImage, only?: bigint[]): Promise<string | undefined> {
  expect(b.areas.map((x) => [x.start, x.end, x.prot])).toEqual(a.areas.map((x) => [x.start, x.end, x.prot]));
  const step = 256 * 4096;
  for (const area of a.areas) {
    if (only && !only.some((addr) => area.start <= addr && addr < area.end)) continue;
    for (let at = area.start; at < area.end; at += BigInt(step)) {
      const n = Number(area.end - at < BigInt(step) ? area.end - at : BigInt(step));
      const x = await a.readMemory(at, n, { unavailable: "zero" });
      const y = await b.readMemory(at, n, { unavailable: "zero" });
      if (Buffer.compare(Buffer.from(x), Buffer.from(y)) !== 0) return `0x${at.toString(16)} (${area.path || "anon"})`;
    }
  }
  return undefined;
}

describe("ckimg flatten", () => {
  it("a chain of 4 captures of a live program flattens to a standalone image equal page for page to the chain and to a full capture; it verifies and restores", async () => {
    const p = startProcess([exe, "24"]);
    const [full0, inc1, inc2, inc3, fullNow, flat] = ["a", "b", "c", "d", "full", "flat"].map((n) => join(tmp, `${n}.img`));
    let liveSum = "";
    let program: bigint[] = [];
    try {
      const ready = await p.waitForLine(/^ready /, { timeoutMs: 60_000 });
      const [, heap, , arr] = ready.split(" ");
      program = [BigInt(heap), BigInt(arr)];
      await runCapture({ pid: p.pid, output: full0 });
      await ask(p, "touch 60 3", /^touched/);
      await runCapture({ pid: p.pid, output: inc1, parent: full0 });
      await ask(p, "zero 200 40", /^zeroed/);          // pages that became zero are stored as zero
      await ask(p, "touch 30 4", /^touched/);
      await runCapture({ pid: p.pid, output: inc2, parent: inc1 });
      await ask(p, "touch 500 5", /^touched/);
      const last = await runCapture({ pid: p.pid, output: inc3, parent: inc2 });
      expect(last.inheritedPages).toBeGreaterThan(0);
      // the program waits on stdin: nothing changes between these two captures
      await runCapture({ pid: p.pid, output: fullNow });
      liveSum = (await ask(p, "sum", /^sum /)).split(" ")[1];
    } finally {
      await p.kill();
    }

    const r = runCli(["flatten", inc3, "-o", flat, "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.chain).toEqual([inc3, inc2, inc1, full0]);
    expect(report.inheritedPages).toBeGreaterThan(0);
    expect(report.pages).toBeGreaterThan(report.inheritedPages);
    expect(statSync(flat).mode & 0o777).toBe(0o600);
    expect(statSync(flat).size).toBeGreaterThan(statSync(inc3).size);

    const chain = await openImage(inc3);
    const flatImg = await openImage(flat);
    const fullImg = await openImage(fullNow);
    try {
      expect(flatImg.parentRecord).toBeUndefined();
      expect(flatImg.chain).toHaveLength(1);
      expect(Buffer.from(flatImg.header.imageId)).toEqual(Buffer.from(chain.header.imageId));
      expect(await firstDifference(chain, flatImg)).toBeUndefined();
      // against a full capture a moment later: the program's own memory (elsewhere the kernel
      // may have moved on, e.g. rseq's cpu_id in the TLS after the process changed CPU)
      expect(await firstDifference(fullImg, flatImg, program)).toBeUndefined();
      expect(flatImg.threads.map((t) => t.tid)).toEqual(chain.threads.map((t) => t.tid));
      expect(flatImg.fds.map((f) => f.fd)).toEqual(chain.fds.map((f) => f.fd));
    } finally {
      await chain.close();
      await flatImg.close();
      await fullImg.close();
    }
    const v = runCli(["verify", flat]);
    expect(v.status, v.stderr + v.stdout).toBe(0);
    expect((await verifyImage(flat, { threads: 1 })).problems).toEqual([]);

    // in place, as ckimg run prunes a chain: c flattened over itself, a and b deleted; d (whose
    // PARENT names c's image_id) still reads every page through the flattened c
    const dir2 = makeTempDir("ckimg-flatten-prune-");
    for (const f of [full0, inc1, inc2, inc3]) copyFileSync(f, join(dir2, basename(f)));
    const c2 = join(dir2, "c.img"), d2 = join(dir2, "d.img");
    expect(runCli(["flatten", c2, "-o", c2]).status).toBe(0);
    rmSync(join(dir2, "a.img"));
    rmSync(join(dir2, "b.img"));
    expect(readdirSync(dir2).sort()).toEqual(["c.img", "d.img"]);
    const pruned = await openImage(d2);
    const original = await openImage(inc3);
    try {
      expect(pruned.chain.map((i) => i.path)).toEqual([d2, c2]);
      expect(await firstDifference(original, pruned)).toBeUndefined();
    } finally {
      await pruned.close();
      await original.close();
    }
    expect((await verifyImage(d2, { threads: 1 })).problems).toEqual([]);

    // standalone: it verifies and restores with its parents gone
    const alone = join(makeTempDir("ckimg-flatten-alone-"), "only.img");
    expect(runCli(["flatten", inc3, "-o", alone]).status).toBe(0);
    await gone(p.pid);
    const restored = startProcess([process.execPath, CLI, "restore", alone]);
    try {
      await sleep(200);
      expect((await ask(restored, "sum", /^sum /)).split(" ")[1]).toBe(liveSum);
      // and it carries on: the restored program still works on its heap
      await ask(restored, "touch 10 9", /^touched/);
      expect((await ask(restored, "sum", /^sum /)).split(" ")[1]).not.toBe(liveSum);
    } finally {
      await restored.kill();
    }
  });

  it("refuses a missing input and bad usage with exit 2 and one ckimg: line; leaves no output behind", () => {
    const out = join(tmp, "never.img");
    for (const [args, msg] of [
      [["flatten", join(tmp, "nothing.img"), "-o", out], /nothing\.img: cannot open: no such file/],
      [["flatten", join(tmp, "x.img")], /flatten takes one image and -o OUTPUT/],
      [["flatten", join(tmp, "x.img"), "-o", out, "--compress", "zip"], /--compress is none, lz4, lzf or deflate/],
    ] as const) {
      const r = runCli([...args]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.split("\n")[0]).toMatch(msg);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(existsSync(out)).toBe(false);
  });
});
