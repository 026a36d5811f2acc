/**
 * Whole-image verification: structure (header, trailer, index, every record header) and every
 * checksum (metadata payloads, chunk payloads, decompressed pages). Damage is reported record
 * by record with its offset, and one damaged chunk does not hide the rest.
 */
import { ImageError } from "./errors.js";
import { openImage, type ChunkRef, type ImageProblem } from "./reader.js";

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
  problems: ImageProblem[];
}

export interface VerifyOptions {
  /** called after each chunk with bytes done and total, for progress display */
  onProgress?: (done: number, total: number) => void;
}

export async function verifyImage(path: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const started = performance.now();
  const image = await openImage(path, { tolerant: true });
  try {
    const problems = [...image.problems];
    const chunks = image.chunks;
    const total = chunks.reduce((n, c) => n + c.payloadLength + 32, 0);
    let done = 0, raw = 0, damaged = 0;
    if (image.process && image.threads.length !== image.process.threadCount) {
      problems.push({
        code: "BAD_FIELD", detail: `PROCESS says ${image.process.threadCount} threads, image holds ${image.threads.length}`,
        offset: undefined, recordType: "PROCESS", sequence: undefined,
      });
    }
    // Read the next chunk while checking this one: I/O and CRC/decompression overlap.
    const read = (c: ChunkRef | undefined) => (c ? image.readChunkBytes(c).catch((e: unknown) => e) : undefined);
    let next = read(chunks[0]);
    for (let i = 0; i < chunks.length; i++) {
      const bytes = await next;
      next = read(chunks[i + 1]);
      try {
        if (!(bytes instanceof Uint8Array)) throw bytes;
        raw += image.decodeChunk(chunks[i], bytes).raw.length;
      } catch (err) {
        if (!(err instanceof ImageError)) throw err;
        damaged++;
        problems.push({ code: err.code, detail: err.detail, offset: err.offset, recordType: err.recordType ?? "PAGES", sequence: err.sequence ?? chunks[i].sequence });
      }
      done += chunks[i].payloadLength + 32;
      opts.onProgress?.(done, total);
    }
    return {
      path, ok: problems.length === 0, recovered: image.recovered, records: image.entries.length,
      chunks: chunks.length, damagedChunks: damaged, bytesChecked: done, rawBytesChecked: raw,
      seconds: (performance.now() - started) / 1000, problems,
    };
  } finally {
    await image.close();
  }
}
