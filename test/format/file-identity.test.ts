/** Mapped-file identity (FORMAT.md 4.9 F1-F3): tampered, touched and removed files. */
import { describe, expect, test } from "vitest";
import { createHash } from "node:crypto";
import { rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ImageWriter, clearDigestCache, openImage } from "../../src/format/index.js";
import { tempDir } from "../support/tmp.js";
import fc from "fast-check";
import { arbProcess, arbThread } from "../support/arbitraries.js";

const dir = tempDir("ckimg-identity-");
const PAGE = 4096;
const START = 0x400000n;

async function imageMapping(img: string, file: string, content: Uint8Array) {
  const st = statSync(file, { bigint: true });
  const w = await ImageWriter.create(img, { durable: false });
  const [p] = fc.sample(arbProcess, { seed: 3, numRuns: 1 });
  await w.addProcess({ ...p, threadCount: 1 });
  await w.addThread(fc.sample(arbThread, { seed: 3, numRuns: 1 })[0]);
  await w.addMappedFile({
    id: 1, devMajor: 0, devMinor: 0, inode: st.ino, size: st.size, mtimeNs: st.mtimeNs, mode: 0o100644, flags: 0,
    sha256: createHash("sha256").update(content).digest(), path: file, buildId: undefined,
  });
  await w.addArea({
    id: 0, start: START, end: START + BigInt(PAGE), fileOffset: 0n, devMajor: 0, devMinor: 0, inode: st.ino,
    prot: 1, flags: 0, kind: "file", fileId: 1, path: file, vmflags: "rd mr",
  });
  await w.finish();
}

describe("mapped file identity", () => {
  test("same bytes: read from disk with SHA-256 evidence; touched only: still read; content changed with mtime restored: unknown; removed: unknown", async () => {
    const file = join(dir, "lib.bin");
    const img = join(dir, "id.img");
    const good = new Uint8Array(PAGE).fill(0x41);
    writeFileSync(file, good);
    await imageMapping(img, file, good);
    const read = async () => {
      clearDigestCache();
      const i = await openImage(img);
      try {
        return await i.readMemoryMap(START, 16);
      } finally {
        await i.close();
      }
    };
    let r = await read();
    expect(r.unknown).toEqual([]);
    expect(r.spans[0]).toMatchObject({ source: "file", evidence: "sha256" });
    expect(r.bytes[0]).toBe(0x41);

    const later = new Date(Date.now() + 100_000);
    utimesSync(file, later, later); // touched, not changed
    r = await read();
    expect(r.unknown).toEqual([]);
    expect(r.bytes[0]).toBe(0x41);

    const before = statSync(file);
    writeFileSync(file, new Uint8Array(PAGE).fill(0x66)); // attacker's bytes, mtime put back
    utimesSync(file, before.atime, before.mtime);
    r = await read();
    expect(r.unknown.length).toBe(1);
    expect(r.unknown[0].why).toMatch(/SHA-256/);
    expect(r.bytes[0]).toBe(0);
    const i = await openImage(img);
    await expect(i.readMemory(START, 16)).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await i.close();

    rmSync(file);
    r = await read();
    expect(r.unknown[0].why).toMatch(/no longer on disk/);
  });
});
