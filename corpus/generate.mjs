#!/usr/bin/env node
// Regenerates the synthetic images in corpus/images/ (deterministic: same bytes every run).
// Run after `npm run build`: node corpus/generate.mjs [outdir]
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CODEC, writeSyntheticImage } from "../dist/format/index.js";

const out = process.argv[2] ?? new URL("./images/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });

for (const [name, codec] of [["none", CODEC.NONE], ["lz4", CODEC.LZ4], ["lzf", CODEC.LZF], ["deflate", CODEC.DEFLATE]]) {
  await writeSyntheticImage(join(out, `synthetic-${name}.img`), { codec, seed: 1, heapBytes: 192 << 10 });
}

// Damaged variants of the LZ4 image, for verify and recovery.
const good = readFileSync(join(out, "synthetic-lz4.img"));
const damaged = Buffer.from(good);
damaged[damaged.length - 4096] ^= 0x01; // inside the last page chunk's data
writeFileSync(join(out, "damaged-chunk.img"), damaged, { mode: 0o600 });
writeFileSync(join(out, "truncated.img"), good.subarray(0, Math.floor(good.length * 0.6)), { mode: 0o600 });
console.log(`corpus images written to ${out}`);
