/**
 * Pruning a run directory that holds chains of incremental checkpoints (src/job/run-dir.ts):
 * the newest images whose chains fit in --keep are kept whole, nothing rewritten; a newest
 * image whose own chain is longer (left by a run with a larger --keep) is flattened, verified
 * and put in place before its parents go; when it cannot be flattened, nothing is removed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeSync, existsSync, openSync, readFileSync, readdirSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { openImage, verifyImage } from "../../src/format/index.js";
import { runCapture } from "../../src/cli/capture.js";
import { RunDir, checkpointFileName } from "../../src/job/run-dir.js";
import { REPO, compileC, makeTempDir, removeTempDirs, startProcess, type Started } from "../native/helpers.js";

let exe = "";
beforeAll(() => {
  exe = compileC(readFileSync(join(REPO, "test/native/cow-programs/heap.c"), "utf8"), "heap");
});
afterAll(() => removeTempDirs());

async function ask(p: Started, cmd: string, answer: RegExp): Promise<void> {
  const from = p.lines.length;
  p.write(cmd + "\n");
  await p.waitForLine(answer, { from, timeoutMs: 60_000 });
}

/** A run directory with a chain of `n` checkpoints of a live program (1 full, n-1 incremental). */
async function chainDir(n: number): Promise<{ dir: RunDir; path: string; files: string[] }> {
  const path = makeTempDir("ckimg-rundir-");
  const dir = await RunDir.open(path, ["heap", "8"], path);
  const p = startProcess([exe, "8"]);
  const files: string[] = [];
  try {
    await p.waitForLine(/^ready /, { timeoutMs: 60_000 });
    for (let seq = 1; seq <= n; seq++) {
      const file = checkpointFileName(seq);
      const parent = files[files.length - 1] ?? null;
      const s = await runCapture({ pid: p.pid, output: dir.imagePath(file), parent: parent ? dir.imagePath(parent) : undefined });
      await dir.commit({ seq, file, time: new Date().toISOString(), bytes: s.imageBytes, parent, reason: "test", captureMs: 0, frozenMs: s.freezeMs });
      files.push(file);
      await ask(p, `touch 20 ${seq}`, /^touched/);
    }
  } finally {
    await p.kill();
  }
  return { dir, path, files };
}

describe("RunDir.prune with incremental checkpoints", () => {
  it("keeps the newest chains that fit in --keep whole, newest first, and rewrites nothing", async () => {
    const path = makeTempDir("ckimg-rundir-");
    const dir = await RunDir.open(path, ["job"], path);
    // full 1, 2 on 1, full 3, 4 on 3, 5 on 4 (ckimg run starts a full image when a chain is --keep long)
    const parents = [null, 1, null, 3, 4];
    for (const [i, parent] of parents.entries()) {
      const file = checkpointFileName(i + 1);
      writeFileSync(dir.imagePath(file), "", { mode: 0o600 });
      await dir.commit({ seq: i + 1, file, time: new Date().toISOString(), bytes: 0, parent: parent ? checkpointFileName(parent) : null, reason: "test", captureMs: 0, frozenMs: 0 });
    }
    expect([1, 2, 3, 4, 5].map((n) => dir.chainLength(checkpointFileName(n)))).toEqual([1, 2, 1, 2, 3]);
    const flattenCalled = () => { throw new Error("nothing should be flattened"); };
    // --keep 3: 5 with its chain (3, 4, 5); 1 and 2 go
    let r = await dir.prune(3, () => {}, flattenCalled);
    expect(r.removed.sort()).toEqual([checkpointFileName(1), checkpointFileName(2)]);
    expect(r.flattened).toBeUndefined();
    // --keep 4: nothing more fits (2 would need 1): the same three stay
    r = await dir.prune(4, () => {}, flattenCalled);
    expect(r.removed).toEqual([]);
    expect(readdirSync(path).filter((f) => f.endsWith(".img")).sort()).toEqual([3, 4, 5].map(checkpointFileName));
  });

  it("flattens the newest image when its own chain is longer than --keep, then removes its parents; it reads as before", async () => {
    const { dir, path, files } = await chainDir(4);
    const before = await openImage(dir.imagePath(files[3]));
    const sums: string[] = [];
    try {
      for (const a of before.areas) sums.push(Buffer.from(await before.readMemory(a.start, Number(a.end - a.start), { unavailable: "zero" })).toString("base64"));
    } finally {
      await before.close();
    }
    const problems: string[] = [];
    const r = await dir.prune(2, (t) => problems.push(t));
    expect(problems).toEqual([]);
    expect(r.flattened?.file).toBe(files[3]);
    expect(r.removed.sort()).toEqual([files[0], files[1], files[2]]);
    expect(readdirSync(path).filter((f) => f.endsWith(".img")).sort()).toEqual([files[3]]);
    expect(dir.manifest.checkpoints.map((c) => [c.file, c.parent])).toEqual([[files[3], null]]);
    expect(statSync(dir.imagePath(files[3])).mode & 0o777).toBe(0o600);
    const after = await openImage(dir.imagePath(files[3]));
    try {
      expect(after.chain.map((i) => i.path)).toEqual([dir.imagePath(files[3])]);
      const got: string[] = [];
      for (const a of after.areas) got.push(Buffer.from(await after.readMemory(a.start, Number(a.end - a.start), { unavailable: "zero" })).toString("base64"));
      expect(got).toEqual(sums);
    } finally {
      await after.close();
    }
    expect((await verifyImage(dir.imagePath(files[3]), { threads: 1 })).ok).toBe(true);
  });

  it("keeps the whole chain when the newest image cannot be flattened (a parent is damaged)", async () => {
    const { dir, path, files } = await chainDir(3);
    // damage the page data of the full image at the chain's root (every PAGES payload)
    const root = dir.imagePath(files[0]);
    const img = await openImage(root);
    const chunks = img.ownChunks;
    await img.close();
    expect(chunks.length).toBeGreaterThan(0);
    const fd = openSync(root, "r+");
    for (const c of chunks) writeSync(fd, Buffer.alloc(16, 0x5a), 0, 16, c.offset + 32 + Math.floor(c.payloadLength / 2));
    closeSync(fd);
    const problems: string[] = [];
    const r = await dir.prune(2, (t) => problems.push(t));
    expect(r.removed).toEqual([]);
    expect(r.flattened).toBeUndefined();
    expect(problems.join("\n")).toMatch(new RegExp(`could not flatten ${files[2].replace(".", "\\.")}`));
    expect(readdirSync(path).filter((f) => /\.img(\.flat)?$/.test(f) || f.endsWith(".tmp")).sort()).toEqual(files);
    expect(dir.manifest.checkpoints.map((c) => c.parent)).toEqual([null, files[0], files[1]]);
    expect(existsSync(dir.imagePath(`${files[1]}.flat`))).toBe(false);
    // verify of the newest: the whole chain finds the damage; parentsVerified (what ckimg run
    // uses for a new checkpoint whose parents were verified) checks only the new file
    const newest = dir.imagePath(files[2]);
    expect((await verifyImage(newest, { threads: 1 })).ok).toBe(false);
    const quick = await verifyImage(newest, { threads: 1, parentsVerified: true });
    expect(quick.problems).toEqual([]);
    expect(quick.chain).toEqual(files.slice().reverse().map((f) => dir.imagePath(f)));
  });
});
