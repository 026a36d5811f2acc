#!/usr/bin/env node
/**
 * Codec benchmark: our LZ4, our LZF against lzfjs, deflate through node:zlib against fflate,
 * on two kinds of data cut in 1 MiB chunks (the writer's 256-page grid, docs/FORMAT.md §4.8):
 *
 *   elf   the first N MiB of a large ELF (the node binary): code, tables, strings
 *   heap  synthetic process memory: zero pages, pages of code copied from the ELF, pages of
 *         small linked structs, pages of random bytes
 *
 * Each codec runs ≥ 5 rounds per direction; the table shows medians in MB/s of raw data
 * (1 MB = 10^6 bytes) and the compression ratio (raw / compressed). It reports; it never fails.
 *
 *   npx tsc -p tsconfig.json && node bench/codecs.mjs [--mib 64] [--rounds 5]
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const CHUNK = 1 << 20;
const PAGE = 4096;

/** xorshift32: the same "random" pages on every run. */
function prng(seed) {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

/** Heap-like memory: ~30% zero pages, 25% code pages, 30% struct pages, 15% random pages. */
export function heapLike(size, elf, seed = 12345) {
  const rand = prng(seed);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  const elfPages = Math.floor(elf.length / PAGE) - 1;
  for (let page = 0; page < size; page += PAGE) {
    const kind = rand() % 100;
    if (kind < 30) continue;
    if (kind < 55) {
      const from = (rand() % elfPages) * PAGE;
      out.set(elf.subarray(from, from + PAGE), page);
    } else if (kind < 85) {
      // 40-byte records: next/prev pointers, an id, flags, a refcount, an 8-byte name.
      const base = 0x55550000 + (rand() & 0xffff) * 64;
      let id = rand() & 0xffff;
      for (let at = page; at + 40 <= page + PAGE; at += 40) {
        view.setUint32(at, base + (at - page) + 40, true);
        view.setUint32(at + 4, 0x5555, true);
        view.setUint32(at + 8, base + (at - page) - 40, true);
        view.setUint32(at + 12, 0x5555, true);
        view.setUint32(at + 16, id++, true);
        view.setUint32(at + 20, rand() & 3, true);
        view.setUint32(at + 24, 1 + (rand() & 1), true);
        const name = `obj_${id % 1000}`;
        for (let i = 0; i < name.length; i++) out[at + 32 + i] = name.charCodeAt(i);
      }
    } else {
      for (let at = page; at < page + PAGE; at += 4) view.setUint32(at, rand(), true);
    }
  }
  return out;
}

function chunksOf(data) {
  const chunks = [];
  for (let at = 0; at < data.length; at += CHUNK) chunks.push(data.subarray(at, Math.min(at + CHUNK, data.length)));
  return chunks;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Runs every codec over every chunk, both ways, `rounds` times. Codecs take turns within each
 * round so that a busy machine slows them alike and the ratios between them stay fair.
 * Returns, per codec, median MB/s both ways and the compression ratio.
 */
function measure(chunks, rounds, codecs) {
  const rawBytes = chunks.reduce((n, c) => n + c.length, 0);
  const runs = codecs.map(([label, compress, decompress]) => {
    const packed = chunks.map(compress); // warm-up, and a check that the round trip holds
    for (let i = 0; i < chunks.length; i++) {
      if (Buffer.compare(decompress(packed[i], chunks[i].length), chunks[i]) !== 0) throw new Error(`${label}: round trip mismatch in chunk ${i}`);
    }
    const compressedBytes = packed.reduce((n, p) => n + p.length, 0);
    return { label, compress, decompress, packed, ratio: rawBytes / compressedBytes, compressMs: [], decompressMs: [] };
  });
  for (let round = 0; round < rounds; round++) {
    for (const run of runs) {
      let start = clock();
      run.packed = chunks.map(run.compress);
      run.compressMs.push(clock(start));
      start = clock();
      for (let i = 0; i < chunks.length; i++) run.decompress(run.packed[i], chunks[i].length);
      run.decompressMs.push(clock(start));
    }
  }
  const mbps = (ms) => rawBytes / 1e6 / (ms / 1000);
  return new Map(runs.map((r) => [r.label, { compress: mbps(median(r.compressMs)), decompress: mbps(median(r.decompressMs)), ratio: r.ratio }]));
}

/**
 * The time to divide by: CPU time of this process (user + system), not wall-clock time, so that
 * other work on a shared machine does not count against a codec. On an idle machine the two
 * agree (every codec here runs on the calling thread). Wall-clock time is kept for the report.
 */
const wallTotal = { cpu: 0, wall: 0 };
function clock(since) {
  const cpu = process.cpuUsage();
  const now = { cpu: (cpu.user + cpu.system) / 1000, wall: performance.now() };
  if (since === undefined) return now;
  wallTotal.cpu += now.cpu - since.cpu;
  wallTotal.wall += now.wall - since.wall;
  return now.cpu - since.cpu;
}

/** The reference liblz4 through `lz4 -b1` (its in-memory benchmark), when the CLI is here. */
function referenceLz4(data) {
  const cli = ["/usr/bin/lz4", "/usr/local/bin/lz4"].find((p) => existsSync(p));
  if (!cli) return undefined;
  const dir = mkdtempSync(join(tmpdir(), "ckimg-bench-"));
  try {
    const file = join(dir, "data");
    writeFileSync(file, data);
    // It reports on stderr, rewriting one line with carriage returns.
    const r = spawnSync(cli, ["-b1", "-i1", `-B${CHUNK}`, file], { encoding: "utf8" });
    return parseLz4Bench(`${r.stdout ?? ""}${r.stderr ?? ""}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseLz4Bench(text) {
  // "... 33554432 ->  19186730 (1.749), 266.2 MB/s ,1234.2 MB/s" — the last complete line wins.
  const matches = [...text.matchAll(/\((\d+\.\d+)\),\s*([\d.]+) MB\/s\s*,\s*([\d.]+) MB\/s/g)];
  const last = matches.at(-1);
  return last ? { ratio: Number(last[1]), compress: Number(last[2]), decompress: Number(last[3]) } : undefined;
}

async function loadCodecs() {
  const dist = join(here, "..", "dist", "format");
  const need = ["codec-lz4.js", "codec-lzf.js", "codec-deflate.js"];
  if (!need.every((f) => existsSync(join(dist, f)))) return undefined;
  const load = (f) => import(pathToFileURL(join(dist, f)).href);
  const [lz4, lzf, deflate] = await Promise.all(need.map(load));
  return { lz4, lzf, deflate };
}

export async function main(argv = process.argv.slice(2)) {
  const { values } = parseArgs({ args: argv, options: { mib: { type: "string", default: "64" }, rounds: { type: "string", default: "5" } } });
  const mib = Math.max(1, Number(values.mib) || 64);
  const rounds = Math.max(5, Number(values.rounds) || 5);
  const codecs = await loadCodecs();
  if (!codecs) {
    console.log("bench/codecs: dist/format is missing — run `npx tsc -p tsconfig.json` first");
    return;
  }
  const require = createRequire(import.meta.url);
  process.noDeprecation = true; // lzfjs builds its result with `new Buffer(array)`
  const lzfjs = require("lzfjs");
  const fflate = require("fflate");
  const { lz4, lzf, deflate } = codecs;

  const elfPath = existsSync("/usr/bin/node") ? "/usr/bin/node" : process.execPath;
  const elfAll = new Uint8Array(readFileSync(elfPath));
  const elf = elfAll.subarray(0, Math.min(elfAll.length, mib << 20));
  const datasets = [
    [`elf (${elfPath}, ${(elf.length / 1048576).toFixed(0)} MiB)`, elf],
    [`heap-like (${mib} MiB)`, heapLike(mib << 20, elfAll)],
  ];

  const lzfAlways = (raw) => {
    const dst = new Uint8Array(raw.length + Math.ceil(raw.length / 32) + 1);
    return dst.subarray(0, lzf.lzfCompressInto(raw, dst));
  };
  const codecRows = [
    ["lz4 (ours)", (c) => lz4.lz4CompressBlock(c), (p, n) => lz4.lz4DecompressBlock(p, n)],
    ["lzf (ours)", lzfAlways, (p, n) => lzf.lzfDecompress(p, n)],
    ["lzf (lzfjs)", (c) => lzfjs.compress(c), (p) => lzfjs.decompress(p)],
    ["deflate-1 (node:zlib)", (c) => deflate.deflateRawSync(c, 1), (p, n) => deflate.inflateRawSync(p, n)],
    ["deflate-1 (fflate)", (c) => fflate.deflateSync(c, { level: 1 }), (p, n) => fflate.inflateSync(p, { out: new Uint8Array(n) })],
  ];

  console.log(`ckimg codec benchmark — node ${process.version}, ${CHUNK >> 20} MiB chunks, median of ${rounds} rounds`);
  console.log(`MB/s = raw megabytes (10^6 bytes) per CPU-second of this process; liblz4's own line is wall-clock`);
  console.log(`load average at start: ${loadavg().map((l) => l.toFixed(1)).join(" ")} on ${availableParallelism()} CPUs`);
  const goals = [];
  for (const [name, data] of datasets) {
    const chunks = chunksOf(data);
    console.log(`\n${name}`);
    console.log(`  ${"codec".padEnd(24)}${"compress".padStart(10)}${"decompress".padStart(12)}${"ratio".padStart(8)}`);
    const row = (label, r) =>
      console.log(`  ${label.padEnd(24)}${r.compress.toFixed(0).padStart(10)}${r.decompress.toFixed(0).padStart(12)}${r.ratio.toFixed(3).padStart(8)}`);
    const results = measure(chunks, rounds, codecRows);
    for (const [label, r] of results) row(label, r);
    // The reader may reuse one output buffer per chunk size: decoding without allocating.
    const blocks = chunks.map((c) => lz4.lz4CompressBlock(c));
    const reused = new Uint8Array(CHUNK);
    const intoMs = [];
    for (let round = 0; round < rounds; round++) {
      const start = clock();
      for (const block of blocks) lz4.lz4DecompressBlockInto(block, reused);
      intoMs.push(clock(start));
    }
    const into = data.length / 1e6 / (median(intoMs) / 1000);
    console.log(`  ${"lz4 (ours), into reuse".padEnd(24)}${"".padStart(10)}${into.toFixed(0).padStart(12)}`);

    const reference = referenceLz4(data);
    if (reference) row("lz4 -b1 (liblz4, C)", reference);
    else console.log("  lz4 -b1 (liblz4, C)      (lz4 CLI not available)");

    const ours = results.get("lzf (ours)");
    const theirs = results.get("lzf (lzfjs)");
    const zlibRow = results.get("deflate-1 (node:zlib)");
    const fflateRow = results.get("deflate-1 (fflate)");
    const lz4Row = results.get("lz4 (ours)");
    const x = (a, b) => `${(a / b).toFixed(1)}x`;
    console.log(`  our LZF vs lzfjs: compress ${x(ours.compress, theirs.compress)}, decompress ${x(ours.decompress, theirs.decompress)} (goal ≥ 10x)`);
    console.log(`  node:zlib vs fflate: deflate ${x(zlibRow.compress, fflateRow.compress)}, inflate ${x(zlibRow.decompress, fflateRow.decompress)}`);
    if (reference) console.log(`  our LZ4 vs liblz4: compress ${x(lz4Row.compress, reference.compress)}, decompress ${x(lz4Row.decompress, reference.decompress)}`);
    goals.push(`${name.split(" ")[0]}: LZ4 decode ${lz4Row.decompress.toFixed(0)} MB/s, ${into.toFixed(0)} into a reused buffer (goal ≥ 1000: ${lz4Row.decompress >= 1000 ? "met" : into >= 1000 ? "met without allocation" : "not met"}); ` +
      `LZF ${x(ours.compress, theirs.compress)} / ${x(ours.decompress, theirs.decompress)} lzfjs (goal ≥ 10x both: ${ours.compress >= 10 * theirs.compress && ours.decompress >= 10 * theirs.decompress ? "met" : "not met"})`);
  }
  console.log(`\ngoals\n  ${goals.join("\n  ")}`);
  const busy = wallTotal.wall / wallTotal.cpu;
  if (busy > 1.15) console.log(`\nnote: the machine was busy — wall-clock time was ${busy.toFixed(1)}x CPU time; liblz4's wall-clock figures are low by up to that much`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error) => {
    console.log(`bench/codecs: ${error?.stack ?? error}`);
  });
}
