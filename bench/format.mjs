#!/usr/bin/env node
// Image format benchmarks (issue 3): `ckimg inspect --json` must read only metadata — wall time
// and peak RSS independent of image size (goal < 150 ms, < 100 MiB on a 1 GiB image) — and
// `ckimg verify` should run at checksum/decompression speed (MB/s reported per codec).
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CODEC, writeSyntheticImage } from "../dist/format/index.js";
import { fmt, median, table, timeCommand } from "./_util.mjs";

const ckimg = fileURLToPath(new URL("../bin/ckimg", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "ckimg-bench-format-"));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const GIB = 1 << 30;

try {
  const images = [];
  for (const [label, heapBytes, codec] of [["64 MiB lz4", 64 << 20, CODEC.LZ4], ["1 GiB lz4", GIB, CODEC.LZ4], ["1 GiB none", GIB, CODEC.NONE]]) {
    const path = join(dir, `${label.replace(/ /g, "-")}.img`);
    const t0 = performance.now();
    await writeSyntheticImage(path, { heapBytes, codec, seed: 7 });
    images.push({ label, path, heapBytes, writeSeconds: (performance.now() - t0) / 1000 });
  }

  console.log(`inspect --json (median of ${ROUNDS}; goal < 150 ms and < 100 MiB RSS whatever the size)`);
  const node = timeCommand(process.execPath, ["-e", "0"]);
  const rows = [];
  for (const img of images) {
    const runs = [];
    for (let i = 0; i < ROUNDS; i++) runs.push(timeCommand(ckimg, ["inspect", "--json", img.path]));
    if (runs.some((r) => r.status !== 0)) throw new Error(`inspect failed on ${img.path}: ${runs[0].stderr}`);
    rows.push([img.label, `${(statSync(img.path).size / 2 ** 20).toFixed(0)} MiB`, fmt.ms(median(runs.map((r) => r.seconds))), fmt.mib(Math.max(...runs.map((r) => r.maxRssKiB ?? 0)))]);
  }
  table(["image", "file size", "wall", "peak RSS"], rows);
  console.log(`  (bare node start-up here: ${fmt.ms(node.seconds)}, ${fmt.mib(node.maxRssKiB)})`);

  console.log(`\nverify (median of ${Math.min(ROUNDS, 3)}; bound by CRC + decompression)`);
  const vrows = [];
  for (const img of images) {
    const runs = [];
    for (let i = 0; i < Math.min(ROUNDS, 3); i++) runs.push(timeCommand(ckimg, ["verify", img.path]));
    const s = median(runs.map((r) => r.seconds));
    vrows.push([img.label, fmt.s(s), `${(statSync(img.path).size / s / 1e6).toFixed(0)} MB/s of image`, `${(img.heapBytes / s / 1e6).toFixed(0)} MB/s of pages`, fmt.mib(Math.max(...runs.map((r) => r.maxRssKiB ?? 0)))]);
  }
  table(["image", "wall", "image rate", "page rate", "peak RSS"], vrows);
  console.log(`\nwriting the synthetic images (TypeScript writer, includes generating the data):`);
  table(["image", "wall"], images.map((i) => [i.label, fmt.s(i.writeSeconds)]));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
