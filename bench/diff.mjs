#!/usr/bin/env node
// `ckimg diff` of two 1 GiB images that differ in a few pages (issue 7): goal well under 1 s.
// Image A is a synthetic 1 GiB heap; B is A copied record by record (chunk payloads copied as
// stored) with a few bytes changed in a few pages, so both share the 256-page chunk grid as two
// captures of one process do. Reported: CLI wall time (node start-up included), the library
// call alone, and for context the same diff with --exact (every stored byte compared).
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CODEC, ImageWriter, RecordType, openImage, writeSyntheticImage } from "../dist/format/index.js";
import { diffImages } from "../dist/analysis/index.js";
import { fmt, median, table, timeCommand } from "./_util.mjs";

const ckimg = fileURLToPath(new URL("../bin/ckimg", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "ckimg-bench-diff-"));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const GIB = 1 << 30;
const HEAP = 0x555555600000n; // synthetic heap start (src/format/synthetic.ts)

/** Copy `src` to `dst`, XOR-ing `changes` ([address, mask]) into stored pages; untouched chunks are copied as stored. */
async function copyWithChanges(src, dst, changes) {
  const img = await openImage(src);
  const w = await ImageWriter.create(dst, { durable: false, codec: CODEC.LZ4 });
  const ps = BigInt(img.pageSize);
  try {
    for (const e of img.entries) {
      const keys = { flags: e.flags, key32: e.key32, key64: e.key64, auxA: e.auxA, auxB: e.auxB };
      const end = e.key64 + BigInt(e.auxA) * ps;
      const mine = e.type === RecordType.PAGES ? changes.filter(([a]) => a >= e.key64 && a < end) : [];
      if (!mine.length) {
        await w.writeRecord(e.type, await img.readAt(e.offset + 32, e.payloadLength), keys);
        continue;
      }
      const ref = { sequence: e.sequence, areaId: e.key32, firstPage: e.key64, spanPages: e.auxA, storedPages: e.auxB, offset: e.offset, payloadLength: e.payloadLength };
      const { header, raw } = await img.readChunk(ref);
      const copy = raw.slice();
      for (const [addr, mask] of mine) {
        const bit = Number((addr - e.key64) / ps);
        let k = 0;
        for (let i = 0; i < bit; i++) if (header.bitmap[i >> 3] & (1 << (i & 7))) k++;
        if (!(header.bitmap[bit >> 3] & (1 << (bit & 7)))) throw new Error(`page of 0x${addr.toString(16)} is not stored`);
        copy[k * img.pageSize + Number(addr % ps)] ^= mask;
      }
      await w.addPagesChunk(e.key32, e.key64, e.auxA, header.bitmap, copy);
    }
    await w.finish();
  } catch (err) {
    await w.abort();
    throw err;
  } finally {
    await img.close();
  }
}

try {
  const a = join(dir, "a.img"), b = join(dir, "b.img");
  let t0 = performance.now();
  await writeSyntheticImage(a, { heapBytes: GIB, seed: 7 });
  const writeA = (performance.now() - t0) / 1000;
  // Five bytes in four pages (two in one chunk), spread over the heap; the synthetic heap stores these pages.
  const img = await openImage(a);
  const heap = img.areas.find((x) => x.kind === "heap");
  const stored = [];
  for (const frac of [0.1, 0.1001, 0.5, 0.9]) {
    const want = heap.start + BigInt(Math.floor((Number(heap.end - heap.start) * frac) / 4096)) * 4096n;
    for (let p = want; p < heap.end; p += 4096n) {
      if ((await img.pageSource(p)) === "image") {
        stored.push(p);
        break;
      }
    }
  }
  await img.close();
  const changes = [[stored[0] + 16n, 1], [stored[0] + 17n, 2], [stored[1] + 100n, 0x80], [stored[2] + 4000n, 3], [stored[3], 0xff]];
  t0 = performance.now();
  await copyWithChanges(a, b, changes);
  const writeB = (performance.now() - t0) / 1000;
  console.log(`images: ${(statSync(a).size / 2 ** 20).toFixed(0)} MiB and ${(statSync(b).size / 2 ** 20).toFixed(0)} MiB of 1 GiB heap ` +
    `(written in ${fmt.s(writeA)} and copied with changes in ${fmt.s(writeB)}); ${changes.length} bytes changed in ${new Set(stored).size} pages`);

  // The library call alone (images opened once, best of rounds after a warm-up).
  const ia = await openImage(a), ib = await openImage(b);
  let d;
  const lib = [];
  for (let i = 0; i <= ROUNDS; i++) {
    t0 = performance.now();
    d = await diffImages(ia, ib);
    if (i) lib.push((performance.now() - t0) / 1000);
  }
  await ia.close();
  await ib.close();
  const pages = d.memory.reduce((n, m) => n + m.pagesDiffering, 0);
  const bytes = d.memory.reduce((n, m) => n + m.bytesDiffering, 0);
  if (pages !== 4 || bytes !== 5) throw new Error(`diff found ${pages} pages / ${bytes} bytes, expected 4 / 5`);

  const cli = [];
  for (let i = 0; i < ROUNDS; i++) cli.push(timeCommand(ckimg, ["diff", a, b]));
  if (cli.some((r) => r.status !== 1)) throw new Error(`ckimg diff exited ${cli[0].status}: ${cli[0].stderr}`);
  const exact = [];
  for (let i = 0; i < Math.min(ROUNDS, 3); i++) exact.push(timeCommand(ckimg, ["diff", "--exact", a, b]));
  const node = timeCommand(process.execPath, ["-e", "0"]);

  console.log(`\ndiff of two 1 GiB images, ${pages} pages differ (median of ${ROUNDS}; goal well under 1 s)`);
  table(["what", "wall", "peak RSS", "chunks A+B", "equal by CRC", "chunks read"], [
    ["ckimg diff (CLI)", fmt.ms(median(cli.map((r) => r.seconds))), fmt.mib(Math.max(...cli.map((r) => r.maxRssKiB ?? 0))), `${d.stats.chunksA}+${d.stats.chunksB}`, d.stats.chunksEqualByCrc, d.stats.chunksRead],
    ["diffImages() only", fmt.ms(median(lib)), "-", "", "", ""],
    ["ckimg diff --exact", fmt.ms(median(exact.map((r) => r.seconds))), fmt.mib(Math.max(...exact.map((r) => r.maxRssKiB ?? 0))), "", "0", "all"],
  ]);
  console.log(`  (bare node start-up here: ${fmt.ms(node.seconds)})`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
