/**
 * Pruning a run directory that holds a chain of incremental checkpoints (src/job/run-dir.ts):
 * the oldest kept link is flattened, verified and put in place before its parents go; when it
 * cannot be flattened, nothing is removed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeSync, existsSync, openSync, readFileSync, readdirSync, statSync, writeSync } from "node:fs";
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
  it("flattens the oldest kept link, then removes its parents; the kept chain reads as before", async () => {
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
    expect(r.flattened?.file).toBe(files[2]);
    expect(r.removed.sort()).toEqual([files[0], files[1]]);
    expect(readdirSync(path).filter((f) => f.endsWith(".img")).sort()).toEqual([files[2], files[3]]);
    expect(dir.manifest.checkpoints.map((c) => [c.file, c.parent])).toEqual([[files[2], null], [files[3], files[2]]]);
    expect(statSync(dir.imagePath(files[2])).mode & 0o777).toBe(0o600);
    const after = await openImage(dir.imagePath(files[3]));
    try {
      expect(after.chain.map((i) => i.path)).toEqual([dir.imagePath(files[3]), dir.imagePath(files[2])]);
      const got: string[] = [];
      for (const a of after.areas) got.push(Buffer.from(await after.readMemory(a.start, Number(a.end - a.start), { unavailable: "zero" })).toString("base64"));
      expect(got).toEqual(sums);
    } finally {
      await after.close();
    }
    expect((await verifyImage(dir.imagePath(files[3]), { threads: 1 })).ok).toBe(true);
  });

  it("keeps the whole chain when the oldest kept link cannot be flattened (a parent is damaged)", async () => {
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
    expect(problems.join("\n")).toMatch(new RegExp(`could not flatten ${files[1].replace(".", "\\.")}`));
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
