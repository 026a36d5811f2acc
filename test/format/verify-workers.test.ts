/**
 * verify shares chunks among worker threads when it runs from the built library: the result
 * (problems, their order, counts) must equal the single-thread check's.
 */
import { describe, expect, test } from "vitest";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../support/tmp.js";

const dist = new URL("../../dist/format/index.js", import.meta.url).pathname;

describe.skipIf(!existsSync(dist))("verify with worker threads (needs npm run build)", () => {
  test("two damaged chunks are found and named in file order, as with one thread", async () => {
    const lib = await import(dist);
    const dir = tempDir();
    const path = join(dir, "big.img");
    await lib.writeSyntheticImage(path, { heapBytes: 80 << 20, seed: 11 });
    const img = await lib.openImage(path);
    const chunks = img.chunks.filter((c: { payloadLength: number }) => c.payloadLength > 4096);
    await img.close();
    expect(chunks.length).toBeGreaterThanOrEqual(64);
    const bytes = readFileSync(path);
    for (const c of [chunks[3], chunks[chunks.length - 5]]) bytes[c.offset + 32 + c.payloadLength - 100] ^= 0x10;
    writeFileSync(path, bytes);

    const one = await lib.verifyImage(path, { threads: 1 });
    const two = await lib.verifyImage(path, { threads: 2 });
    expect(one.threads).toBe(1);
    expect(two.threads).toBe(2);
    for (const r of [one, two]) {
      expect(r.ok).toBe(false);
      expect(r.damagedChunks).toBe(2);
      expect(r.problems.map((p: { offset: number }) => p.offset)).toEqual([chunks[3].offset + 32, chunks[chunks.length - 5].offset + 32]);
    }
    expect({ ...two, seconds: 0, threads: 0 }).toEqual({ ...one, seconds: 0, threads: 0 });
  });
});
