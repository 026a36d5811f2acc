/**
 * searchMemory: matches inside chunks, across chunk edges (found once), none across a gap of
 * unstored pages, regex the same, and the --max stop.
 */
import { describe, expect, test } from "vitest";
import { join } from "node:path";
import { ImageWriter, openImage, type AreaRecord } from "../../src/format/index.js";
import { searchMemory } from "../../src/analysis/search.js";
import { tempDir } from "../support/tmp.js";

const PAGE = 4096;

async function imageWith(memory: Uint8Array, path: string): Promise<void> {
  const w = await ImageWriter.create(path, { durable: false });
  const start = 0x7f0000000000n;
  const area: AreaRecord = {
    id: 0, start, end: start + BigInt(memory.length), fileOffset: 0n, devMajor: 0, devMinor: 0, inode: 0n, prot: 3, flags: 0,
    kind: "anon", fileId: undefined, path: "", vmflags: "",
  };
  await w.addProcess({
    pid: 1, ppid: 0, pgid: 1, sid: 1, uid: [0, 0, 0, 0], gid: [0, 0, 0, 0], personality: 0, umask: 0o22, threadCount: 0,
    captureNs: 0n, startTime: 0n, flags: 0, comm: "t", exe: "/t", cwd: "/", root: "/", kernel: "",
    mm: { startCode: 0n, endCode: 0n, startData: 0n, endData: 0n, startBrk: 0n, brk: 0n, startStack: 0n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n },
  });
  await w.addArea(area);
  await w.addAreaMemory(area, memory);
  await w.finish();
}

describe("searchMemory", () => {
  const dir = tempDir("ckimg-search-");

  test("finds a needle inside a chunk and across the 1 MiB chunk edge, once each", async () => {
    const mem = new Uint8Array(3 << 20).fill(0x41);
    const needle = Buffer.from("NEEDLE-ACROSS-EDGE");
    mem.set(needle, (1 << 20) - 7); // straddles the first chunk's end
    mem.set(needle, 100);
    mem.set(needle, (2 << 20) + 5000);
    const path = join(dir, "edge.img");
    await imageWith(mem, path);
    const img = await openImage(path);
    try {
      const r = await searchMemory(img, { needle });
      expect(r.matches.map((m) => Number(m.address - 0x7f0000000000n))).toEqual([100, (1 << 20) - 7, (2 << 20) + 5000]);
      expect(r.bytesSearched).toBe(3 << 20);
      const re = await searchMemory(img, { regex: /NEEDLE-[A-Z-]+EDGE/ });
      expect(re.matches.map((m) => Number(m.address - 0x7f0000000000n))).toEqual([100, (1 << 20) - 7, (2 << 20) + 5000]);
      const one = await searchMemory(img, { needle, maxMatches: 1 });
      expect(one).toMatchObject({ truncated: true });
      expect(one.matches).toHaveLength(1);
    } finally {
      await img.close();
    }
  });

  test("no match across unstored (zero) pages", async () => {
    const mem = new Uint8Array(4 * PAGE);
    mem.set(Buffer.from("HALF-"), PAGE - 5); // page 0 ends with "HALF-"
    mem.set(Buffer.from("MATCH"), 3 * PAGE); // page 3 starts with "MATCH"; pages 1-2 are zero (not stored)
    const path = join(dir, "gap.img");
    await imageWith(mem, path);
    const img = await openImage(path);
    try {
      expect((await searchMemory(img, { needle: Buffer.from("HALF-MATCH") })).matches).toEqual([]);
      expect((await searchMemory(img, { needle: Buffer.from("MATCH") })).matches).toHaveLength(1);
    } finally {
      await img.close();
    }
  });
});
