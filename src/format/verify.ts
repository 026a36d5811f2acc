/**
 * Whole-image verification: structure (header, trailer, index, every record header) and every
 * checksum (metadata payloads, chunk payloads, decompressed pages). Damage is reported record
 * by record with its offset, and one damaged chunk does not hide the rest.
 *
 * Checking chunks is CPU-bound (CRC + decompression), so on a machine with several cores the
 * chunks are shared among worker threads (./verify-worker.ts), each opening the image itself
 * and taking every n-th chunk; results are merged in file order.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { ImageError } from "./errors.js";
import { openImage, type ChunkRef, type CheckpointImage, type ImageProblem } from "./reader.js";
import { checkInheritedDigests } from "./chain.js";

export interface VerifyReport {
  path: string;
  ok: boolean;
  /** the index was damaged and records were found by scanning */
  recovered: boolean;
  records: number;
  chunks: number;
  damagedChunks: number;
  /** bytes of chunk records read and checked */
  bytesChecked: number;
  /** decompressed page bytes checked */
  rawBytesChecked: number;
  seconds: number;
  /** threads that checked chunks (1 = the calling thread) */
  threads: number;
  problems: ImageProblem[];
  /** format 1.2: the files of the image's chain, this one first (each verified) */
  chain?: string[];
}

export interface VerifyOptions {
  /** called with bytes done and total, for progress display */
  onProgress?: (done: number, total: number) => void;
  /** worker threads for the chunks (default: the cores available, at most 8, for images of
   * ≥ 128 MiB of stored pages; 1 = none) */
  threads?: number;
  /**
   * A chain whose parents the caller verified already (`ckimg run`: each checkpoint verified
   * as it joined the run): check this file and its inherited pages' digests against the
   * parent's, without reading the parents' pages again.
   */
  parentsVerified?: boolean;
}

/** What checking a share of the chunks found (also what a worker posts back). */
export interface ChunkShareResult {
  damaged: number;
  raw: number;
  problems: (ImageProblem & { at: number })[];
}

/**
 * Below this many chunks or stored bytes, starting workers costs more than it saves: each one
 * loads the library and opens and indexes the image again (a tree image has thousands of
 * records). Measured on a 14 MiB-of-pages tree image (181 chunks, 2086 records): 1 thread
 * 0.5 s CPU, 2 workers 1.0 s and slower in wall time too; on an 80 MiB one (4150 chunks)
 * still 1.4 vs 2.1 s CPU.
 */
const MIN_CHUNKS_FOR_WORKERS = 64;
const MIN_BYTES_FOR_WORKERS = 128 * 2 ** 20;
const WORKER_URL = new URL("./verify-worker.js", import.meta.url);

export async function verifyImage(path: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const started = performance.now();
  const image = await openImage(path, { tolerant: true });
  try {
    const problems = [...image.problems];
    const chunks = image.allChunks;
    const total = chunks.reduce((n, c) => n + c.payloadLength + 32, 0);
    const wanted = Math.max(1, Math.min(opts.threads ?? availableParallelism(), 8));
    // Workers run compiled JavaScript; from TypeScript sources (tests) the check stays in-thread.
    // (a caller who names a thread count gets it whatever the size)
    const big = chunks.length >= MIN_CHUNKS_FOR_WORKERS && (opts.threads !== undefined || total >= MIN_BYTES_FOR_WORKERS);
    const threads = wanted > 1 && big && existsSync(fileURLToPath(WORKER_URL)) ? wanted : 1;
    const result = threads > 1
      ? await checkInWorkers(path, threads, total, opts.onProgress)
      : await checkChunkShare(image, 0, 1, (done) => opts.onProgress?.(done, total));
    problems.push(...result.problems.sort((a, b) => a.at - b.at).map(({ at: _at, ...p }) => p));
    // A chain: every inherited page's digest against the parent's, then the parent as a whole.
    const chain = [path];
    if (image.parent) {
      // (a tree: each process against its own in the parent image)
      for (const view of image.processes) {
        for (const p of await checkInheritedDigests(view)) {
          problems.push({ code: "BAD_PARENT", detail: image.processes.length > 1 ? `process ${view.process.pid}: ${p.detail}` : p.detail, offset: undefined, recordType: "PAGE_DIGESTS", sequence: p.sequence });
        }
      }
      if (opts.parentsVerified) {
        chain.push(...image.parent.chain.map((i) => i.path));
      } else {
        const sub = await verifyImage(image.parent.path, { threads: opts.threads });
        chain.push(...(sub.chain ?? [sub.path]));
        for (const p of sub.problems) problems.push({ ...p, detail: `parent ${sub.path}: ${p.detail}` });
      }
    }
    return {
      path, ok: problems.length === 0, recovered: image.recovered, records: image.entries.length,
      chunks: chunks.length, damagedChunks: result.damaged, bytesChecked: total, rawBytesChecked: result.raw,
      seconds: (performance.now() - started) / 1000, threads, problems, chain,
    };
  } finally {
    await image.close();
  }
}

/**
 * Check chunks number `share`, `share + of`, `share + 2·of`, … in file order, reading the next
 * while checking this one so I/O and CRC/decompression overlap. `onProgress` gets bytes done.
 */
export async function checkChunkShare(image: CheckpointImage, share: number, of: number, onProgress?: (done: number) => void): Promise<ChunkShareResult> {
  const mine = image.allChunks.filter((_, i) => i % of === share);
  const out: ChunkShareResult = { damaged: 0, raw: 0, problems: [] };
  const read = (c: ChunkRef | undefined) => (c ? image.readChunkBytes(c).catch((e: unknown) => e) : undefined);
  let next = read(mine[0]);
  let done = 0;
  for (let i = 0; i < mine.length; i++) {
    const bytes = await next;
    next = read(mine[i + 1]);
    try {
      if (!(bytes instanceof Uint8Array)) throw bytes;
      // a tree's chunk is checked against its own process (area ids and unreadable ranges are per process)
      const owner = mine[i].ownerPid && image.processes.length > 1 ? image.processImage(mine[i].ownerPid!) : image;
      out.raw += owner.decodeChunk(mine[i], bytes).raw.length;
    } catch (err) {
      if (!(err instanceof ImageError)) throw err;
      out.damaged++;
      out.problems.push({
        code: err.code, detail: err.detail, offset: err.offset, recordType: err.recordType ?? "PAGES",
        sequence: err.sequence ?? mine[i].sequence, rule: err.rule ?? (err.code === "BAD_FIELD" ? "P3" : undefined), at: mine[i].offset,
      });
    }
    done += mine[i].payloadLength + 32;
    onProgress?.(done);
  }
  return out;
}

async function checkInWorkers(path: string, threads: number, total: number, onProgress?: (done: number, total: number) => void): Promise<ChunkShareResult> {
  // loaded here, not at module level: the CLI's start-up snapshot (src/cli/snapshot.ts) holds
  // this module, and worker_threads set up in a snapshot gives workers a broken process state
  const { Worker } = createRequire(import.meta.url)("node:worker_threads") as typeof import("node:worker_threads");
  const doneByWorker = new Array<number>(threads).fill(0);
  const results = await Promise.all(
    Array.from({ length: threads }, (_, share) => new Promise<ChunkShareResult>((resolve, reject) => {
      const worker = new Worker(WORKER_URL, { workerData: { path, share, of: threads } });
      worker.on("message", (m: { done?: number; result?: ChunkShareResult }) => {
        if (m.done !== undefined) {
          doneByWorker[share] = m.done;
          onProgress?.(doneByWorker.reduce((a, b) => a + b, 0), total);
        }
        if (m.result) resolve(m.result);
      });
      worker.on("error", reject);
      worker.on("exit", (code) => code !== 0 && reject(new ImageError("IO", `verify worker exited with code ${code}`, { file: path })));
    })),
  );
  return {
    damaged: results.reduce((n, r) => n + r.damaged, 0),
    raw: results.reduce((n, r) => n + r.raw, 0),
    problems: results.flatMap((r) => r.problems),
  };
}
