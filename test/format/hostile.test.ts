/**
 * Images are hostile input. Every mutation of a valid image — bit flips, truncation at every
 * record boundary, huge lengths/offsets/counts behind valid checksums, duplicated and reordered
 * records — must give a result or an ImageError from every reader entry point: never another
 * exception, a hang or a giant allocation.
 */
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  CODEC, ImageError, ImageWriter, crc32, openImage, verifyImage, writeSyntheticImage, RecordType,
  type CheckpointImage,
} from "../../src/format/index.js";
import { tempDir } from "../support/tmp.js";

const dir = tempDir();

interface RawRecord { type: number; flags: number; payload: Uint8Array; offset: number }

async function build(codec: number): Promise<{ path: string; bytes: Uint8Array; records: RawRecord[]; indexAt: number }> {
  const path = join(dir, `base-${codec}.img`);
  await writeSyntheticImage(path, { codec: codec as 0, heapBytes: 96 << 10, seed: 3 });
  const img = await openImage(path);
  const records: RawRecord[] = [];
  for (const e of img.entries) records.push({ type: e.type, flags: e.flags, payload: await img.readAt(e.offset + 32, e.payloadLength), offset: e.offset });
  await img.close();
  const bytes = new Uint8Array(readFileSync(path));
  const indexAt = Number(new DataView(bytes.buffer).getBigUint64(bytes.length - 24, true));
  return { path, bytes, records, indexAt };
}

/** Run every reader entry point; return "ok" or the ImageError code. Anything else fails the test. */
async function exercise(path: string): Promise<string> {
  const outcomes: string[] = [];
  const guard = async (f: () => Promise<unknown>) => {
    try {
      await f();
      outcomes.push("ok");
    } catch (err) {
      if (!(err instanceof ImageError)) throw new Error(`non-ImageError escaped: ${(err as Error)?.stack ?? err}`);
      expect(typeof err.detail).toBe("string");
      outcomes.push(err.code);
    }
  };
  for (const tolerant of [false, true]) {
    let img: CheckpointImage | undefined;
    await guard(async () => (img = await openImage(path, { tolerant })));
    if (!img) continue;
    for (const area of img.areas.slice(0, 12)) {
      const len = Number(area.end - area.start > 1n << 20n ? 1n << 20n : area.end - area.start);
      await guard(() => img!.readMemory(area.start, len, { unavailable: "zero" }));
      await guard(async () => {
        for await (const _ of img!.pages(area)) void _;
      });
    }
    await img.close();
  }
  await guard(async () => {
    const report = await verifyImage(path);
    if (!report.ok) throw new ImageError(report.problems[0].code, "damaged");
  });
  return outcomes.join(",");
}

function setU64(b: Uint8Array, at: number, v: bigint) { new DataView(b.buffer, b.byteOffset).setBigUint64(at, v, true); }
function setU32(b: Uint8Array, at: number, v: number) { new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, true); }

/** Recompute a record's payload CRC and header CRC after its bytes were edited in place. */
function reseal(b: Uint8Array, recordAt: number) {
  const len = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(recordAt + 8, true));
  if (recordAt + 32 + len <= b.length) setU32(b, recordAt + 16, crc32(b.subarray(recordAt + 32, recordAt + 32 + len)));
  setU32(b, recordAt + 28, crc32(b.subarray(recordAt, recordAt + 28)));
}

const HUGE = [0xffffffffffffffffn, 1n << 63n, 1n << 40n, 0xffffffffn, 0x80000000n, 0n];

describe.each([CODEC.NONE, CODEC.LZ4, CODEC.LZF, CODEC.DEFLATE])("hostile input (codec %i)", (codec) => {
  test("random bit flips", async () => {
    const base = await build(codec);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(base.bytes.length - 1), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 4 }), async (flips) => {
        const b = base.bytes.slice();
        for (const [at, bit] of flips) b[at] ^= 1 << bit;
        const path = join(dir, `flip-${codec}-${n++}.img`);
        writeFileSync(path, b);
        await exercise(path);
      }),
      { numRuns: 60 },
    );
  });

  test("truncation at every record boundary and inside records", async () => {
    const base = await build(codec);
    const cuts = new Set<number>([0, 1, 8, 63, 64]);
    for (const r of base.records) for (const d of [0, 1, 31, 32, 33]) cuts.add(r.offset + d);
    for (const d of [0, 16, 32, 48]) cuts.add(base.indexAt + d);
    for (let d = 1; d <= 32; d += 7) cuts.add(base.bytes.length - d);
    for (const cut of cuts) {
      const path = join(dir, `cut-${codec}-${cut}.img`);
      writeFileSync(path, base.bytes.subarray(0, cut));
      const outcome = await exercise(path);
      expect(outcome.split(",")[0]).not.toBe("ok"); // strict open of a truncated image must fail
      expect(outcome.split(",").at(-1)).not.toBe("ok");
    }
  });

  test("huge lengths and offsets behind valid checksums (record headers and index)", async () => {
    const base = await build(codec);
    const view = new DataView(base.bytes.buffer);
    const count = Number(view.getBigUint64(base.indexAt + 32 + 8, true));
    let n = 0;
    for (const huge of HUGE) {
      // A record header's payload_length.
      for (const r of base.records.filter((_, i) => i % 3 === 0)) {
        const b = base.bytes.slice();
        setU64(b, r.offset + 8, huge);
        reseal(b, r.offset);
        const path = join(dir, `len-${codec}-${n++}.img`);
        writeFileSync(path, b);
        // Metadata damage fails the strict open; chunk damage shows when pages are read: verify names it.
        expect((await exercise(path)).split(",").at(-1)).not.toBe("ok");
      }
      // Index entries: offset, payload_length, key64, aux fields; the trailer's index_offset.
      for (const field of [8, 16, 24, 32, 36]) {
        for (const entry of [0, Math.floor(count / 2), count - 1]) {
          const b = base.bytes.slice();
          const at = base.indexAt + 32 + 16 + entry * 40 + field;
          if (field >= 32) setU32(b, at, Number(huge & 0xffffffffn));
          else setU64(b, at, huge);
          reseal(b, base.indexAt);
          const path = join(dir, `idx-${codec}-${n++}.img`);
          writeFileSync(path, b);
          await exercise(path);
        }
      }
      const b = base.bytes.slice();
      setU64(b, b.length - 24, huge);
      setU32(b, b.length - 4, crc32(b.subarray(b.length - 32, b.length - 4)));
      const path = join(dir, `trl-${codec}-${n++}.img`);
      writeFileSync(path, b);
      expect((await exercise(path)).split(",")[0]).not.toBe("ok");
    }
  });

  test("hostile field values inside payloads behind valid checksums", async () => {
    const base = await build(codec);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.nat(base.records.length - 1), fc.nat(4095), fc.constantFrom(...HUGE), fc.boolean(),
        async (which, offset, huge, wide) => {
          const records = base.records.map((r) => ({ ...r, payload: r.payload.slice() }));
          const r = records[which];
          const at = offset % Math.max(1, r.payload.length - (wide ? 8 : 4));
          if (r.payload.length >= 8 && wide) setU64(r.payload, at, huge);
          else if (r.payload.length >= 4) setU32(r.payload, at, Number(huge & 0xffffffffn));
          const path = join(dir, `field-${codec}-${n++}.img`);
          await rewrite(path, records);
          await exercise(path);
        },
      ),
      { numRuns: 120 },
    );
  });

  test("duplicated and reordered records", async () => {
    const base = await build(codec);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(base.records.length - 1), { minLength: 1, maxLength: base.records.length * 2 }), async (order) => {
        const path = join(dir, `order-${codec}-${n++}.img`);
        await rewrite(path, order.map((i) => base.records[i]));
        await exercise(path);
      }),
      { numRuns: 40 },
    );
    // A second PROCESS record is named as a duplicate.
    const path = join(dir, `dup-process-${codec}.img`);
    const proc = base.records.find((r) => r.type === RecordType.PROCESS)!;
    await rewrite(path, [proc, ...base.records]);
    await expect(openImage(path)).rejects.toMatchObject({ code: "DUPLICATE_RECORD" });
  });
});

describe("damage is named and does not hide the rest", () => {
  test("one corrupted chunk: verify names it with its offset, the others still read", async () => {
    const base = await build(CODEC.LZ4);
    const chunks = base.records.filter((r) => r.type === RecordType.PAGES);
    expect(chunks.length).toBeGreaterThan(2);
    const victim = chunks[1];
    const b = base.bytes.slice();
    b[victim.offset + 32 + victim.payload.length - 5] ^= 0x40;
    const path = join(dir, "one-bad-chunk.img");
    writeFileSync(path, b);
    const report = await verifyImage(path);
    expect(report.ok).toBe(false);
    expect(report.damagedChunks).toBe(1);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatchObject({ code: "BAD_CHECKSUM", recordType: "PAGES" });
    expect(report.problems[0].offset).toBeGreaterThanOrEqual(victim.offset);
    const img = await openImage(path);
    let good = 0;
    for (const ref of img.chunks) if (ref.offset !== victim.offset) good += (await img.readChunk(ref)).header.storedPages;
    expect(good).toBeGreaterThan(0);
    await img.close();
  });

  test("a destroyed trailer: tolerant open recovers every record by scanning", async () => {
    const base = await build(CODEC.LZ4);
    const b = base.bytes.slice(0, base.bytes.length - 10);
    const path = join(dir, "no-trailer.img");
    writeFileSync(path, b);
    await expect(openImage(path)).rejects.toMatchObject({ code: "BAD_TRAILER" });
    const img = await openImage(path, { tolerant: true });
    expect(img.recovered).toBe(true);
    expect(img.entries.length).toBe(base.records.length);
    expect(img.process.comm).toBe("synthetic-app");
    await img.close();
    const report = await verifyImage(path);
    expect(report.ok).toBe(false);
    expect(report.recovered).toBe(true);
    expect(report.damagedChunks).toBe(0);
  });
});

async function rewrite(path: string, records: RawRecord[]) {
  const w = await ImageWriter.create(path, { durable: false, createdNs: 1n, imageId: new Uint8Array(16) });
  for (const r of records) await w.writeRecord(r.type, r.payload, { flags: r.flags, ...keysOf(r) });
  await w.finish();
}

/** Index keys the way a writer would set them, read from the (possibly hostile) payload. */
function keysOf(r: RawRecord) {
  const v = new DataView(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength);
  const u32 = (o: number) => (o + 4 <= r.payload.length ? v.getUint32(o, true) : 0);
  const u64 = (o: number) => (o + 8 <= r.payload.length ? v.getBigUint64(o, true) : 0n);
  switch (r.type) {
    case RecordType.PAGES: return { key32: u32(4), key64: u64(8), auxA: u32(16), auxB: u32(20) };
    case RecordType.AREA: return { key32: u32(4), key64: u64(8) };
    case RecordType.THREAD: case RecordType.FD: case RecordType.MAPPED_FILE: return { key32: u32(4) };
    default: return {};
  }
}
