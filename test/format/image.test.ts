/** Whole images: write → open → same content; codecs; unknown records; atomic, private files. */
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  CODEC, ImageError, ImageWriter, RecordType, fillHeapLike, openImage, verifyImage, writeSyntheticImage,
  RECORD_FLAG_MUST_UNDERSTAND, type AreaRecord, type CodecId,
} from "../../src/format/index.js";
import { tempDir } from "../support/tmp.js";
import { arbFd, arbProcess, arbThread } from "../support/arbitraries.js";

const dir = tempDir();
const PAGE = 4096;

describe("synthetic image", () => {
  for (const [name, codec] of Object.entries(CODEC) as [string, CodecId][]) {
    test(`round trip with codec ${name}`, async () => {
      const path = join(dir, `synthetic-${name}.img`);
      const summary = await writeSyntheticImage(path, { codec, heapBytes: 1 << 20, seed: 5 });
      expect(statSync(path).size).toBe(summary.bytes);
      const img = await openImage(path);
      try {
        expect(img.process.pid).toBe(4005);
        expect(img.process.comm).toBe("synthetic-app");
        expect(img.argv).toEqual(["/usr/bin/synthetic-app", "--seed", "5", "arg with spaces"]);
        expect(img.threads.map((t) => t.tid)).toEqual([4005, 4006]);
        expect(img.areas.map((a) => a.path)).toContain("[heap]");
        expect(img.fds.map((f) => f.fd)).toEqual([0, 1, 2, 3, 4, 5]);
        const heap = img.areas.find((a) => a.kind === "heap")!;
        const expected = new Uint8Array(Number(heap.end - heap.start));
        for (let off = 0; off < expected.length; off += 256 * PAGE) {
          fillHeapLike(expected.subarray(off, Math.min(expected.length, off + 256 * PAGE)), 5 * 7919 + off / PAGE);
        }
        expect(Buffer.from(await img.readMemory(heap.start, expected.length)).equals(Buffer.from(expected))).toBe(true);
        // Zero pages of the heap are not stored.
        const zeroPages = countZeroPages(expected);
        expect(zeroPages).toBeGreaterThan(0);
        expect(img.storedPages(heap.id)).toBe(expected.length / PAGE - zeroPages);
        // The sparse area: 64 MiB mapped, a handful of pages stored.
        const sparse = img.areas.find((a) => a.kind === "anon")!;
        expect(img.storedPages(sparse.id)).toBe(17);
        expect((await img.readMemory(sparse.start + 7n * 4096n, 4))[0]).toBe(7 | 1);
        expect((await img.readMemory(sparse.start + 8n * 4096n, 4))[0]).toBe(0);
      } finally {
        await img.close();
      }
      const report = await verifyImage(path);
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
    });
  }

  test("is deterministic: same options, same bytes", async () => {
    const a = join(dir, "det-a.img"), b = join(dir, "det-b.img");
    await writeSyntheticImage(a, { seed: 9, heapBytes: 256 << 10 });
    await writeSyntheticImage(b, { seed: 9, heapBytes: 256 << 10 });
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
  });

  test("uncompressed chunk data is page-aligned in the file (mmap-able)", async () => {
    const path = join(dir, "aligned.img");
    await writeSyntheticImage(path, { codec: CODEC.NONE, heapBytes: 512 << 10 });
    const img = await openImage(path);
    try {
      for (const ref of img.chunks) {
        const { header } = await img.readChunk(ref);
        expect(header.codec).toBe(CODEC.NONE);
        expect((ref.offset + 32 + header.dataOffset) % PAGE).toBe(0);
      }
    } finally {
      await img.close();
    }
  });
});

function countZeroPages(buf: Uint8Array): number {
  let n = 0;
  for (let p = 0; p < buf.length; p += PAGE) if (buf.subarray(p, p + PAGE).every((b) => b === 0)) n++;
  return n;
}

describe("arbitrary images", () => {
  const arbImage = fc.record({
    process: arbProcess,
    threads: fc.uniqueArray(arbThread, { selector: (t) => t.tid, minLength: 1, maxLength: 4 }),
    fds: fc.uniqueArray(arbFd, { selector: (f) => f.fd, maxLength: 5 }),
    // Areas as (gap, pages, page seeds): laid out without overlap below.
    areas: fc.array(fc.record({ gap: fc.integer({ min: 0, max: 600 }), pages: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 300 }) }), { maxLength: 4 }),
    codec: fc.constantFrom<CodecId>(0, 1, 2, 3),
  });

  test("write → open → read back equals what went in", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(arbImage, async (spec) => {
        const path = join(dir, `arb-${run++}.img`);
        const w = await ImageWriter.create(path, { codec: spec.codec, durable: false });
        // A writer MUST say how many THREAD records follow (rule C4).
        spec.process.threadCount = spec.threads.length;
        await w.addProcess(spec.process);
        for (const t of spec.threads) await w.addThread(t);
        for (const f of spec.fds) await w.addFd(f);
        let at = 0x10000n;
        const memories: { area: AreaRecord; mem: Uint8Array }[] = [];
        for (const [i, a] of spec.areas.entries()) {
          at += BigInt(a.gap * PAGE);
          const area: AreaRecord = {
            id: i, start: at, end: at + BigInt(a.pages.length * PAGE), fileOffset: 0n, devMajor: 0, devMinor: 0,
            inode: 0n, prot: 3, flags: 0, kind: "anon", fileId: undefined, path: "", vmflags: "",
          };
          at = area.end;
          const mem = new Uint8Array(a.pages.length * PAGE);
          a.pages.forEach((kind, p) => {
            if (kind === 1) mem.fill(p & 0xff, p * PAGE, (p + 1) * PAGE);
            if (kind === 2) fillHeapLike(mem.subarray(p * PAGE, (p + 1) * PAGE), p + 1);
            if (kind === 3) mem[p * PAGE + 17] = 1;
          });
          await w.addArea(area);
          await w.addAreaMemory(area, mem);
          memories.push({ area, mem });
        }
        await w.finish();
        const img = await openImage(path);
        try {
          expect(img.process).toEqual(spec.process);
          expect(img.threads).toEqual(spec.threads);
          expect(img.fds).toEqual(spec.fds);
          for (const { area, mem } of memories) {
            const got = await img.readMemory(area.start, mem.length);
            expect(Buffer.from(got).equals(Buffer.from(mem))).toBe(true);
          }
        } finally {
          await img.close();
        }
      }),
      { numRuns: 40 },
    );
  });
});

describe("forward compatibility", () => {
  async function imageWithExtraRecord(path: string, flags: number) {
    const w = await ImageWriter.create(path, { durable: false });
    await w.addProcess(await (async () => {
      const [p] = fc.sample(arbProcess, { seed: 1, numRuns: 1 });
      return { ...p, threadCount: 1 };
    })());
    await w.addThread(fc.sample(arbThread, { seed: 1, numRuns: 1 })[0]);
    await w.writeRecord(0x8123, Uint8Array.of(4, 0, 0, 0, 1, 2, 3), { flags });
    await w.addArgv(["after", "unknown"]);
    await w.finish();
  }

  test("unknown record types are skipped", async () => {
    const path = join(dir, "unknown.img");
    await imageWithExtraRecord(path, 0);
    const img = await openImage(path);
    expect(img.unknownRecords.map((r) => r.type)).toEqual([0x8123]);
    expect(img.argv).toEqual(["after", "unknown"]);
    await img.close();
    expect((await verifyImage(path)).ok).toBe(true);
  });

  test("an unknown MUST_UNDERSTAND record is refused", async () => {
    const path = join(dir, "must.img");
    await imageWithExtraRecord(path, RECORD_FLAG_MUST_UNDERSTAND);
    await expect(openImage(path)).rejects.toMatchObject({ code: "UNSUPPORTED_RECORD", file: path });
  });
});

describe("writing", () => {
  test("images are mode 0600 and appear only when finished", async () => {
    const sub = join(dir, "atomic");
    (await import("node:fs")).mkdirSync(sub);
    const path = join(sub, "x.img");
    const w = await ImageWriter.create(path, { durable: true });
    const [p] = fc.sample(arbProcess, { seed: 2, numRuns: 1 });
    await w.addProcess(p);
    expect(readdirSync(sub).includes("x.img")).toBe(false);
    await w.finish();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(sub)).toEqual(["x.img"]);
  });

  test("abort leaves nothing behind", async () => {
    const sub = join(dir, "aborted");
    (await import("node:fs")).mkdirSync(sub);
    const w = await ImageWriter.create(join(sub, "y.img"));
    await w.writeRecord(RecordType.ARGV, new Uint8Array(8));
    await w.abort();
    expect(readdirSync(sub)).toEqual([]);
  });

  test("an image without PROCESS is refused with MISSING_RECORD", async () => {
    const path = join(dir, "noproc.img");
    const w = await ImageWriter.create(path, { durable: false });
    await w.addArgv(["x"]);
    await w.finish();
    const err = await openImage(path).catch((e) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect(err.code).toBe("MISSING_RECORD");
  });
});
