/**
 * Search a process's stored memory for a byte string or a regular expression (what
 * `checkpointctl memparse --search/--search-regex` does for CRIU dumps, here for every image
 * ckimg reads). Walks page chunks in address order, searches each run of contiguous stored
 * pages as one buffer and carries an overlap across chunk edges, so a match that straddles
 * two chunks is found once.
 */
import type { AreaRecord, CheckpointImage } from "../format/index.js";

export interface MemorySearchOptions {
  /** bytes to find (exactly one of needle / regex) */
  needle?: Uint8Array;
  /** a pattern over the bytes read as latin1 (one char per byte) */
  regex?: RegExp;
  /** bytes of context before and after each match (default 16) */
  context?: number;
  /** stop after this many matches (default 10000) */
  maxMatches?: number;
  /** the longest regex match that is guaranteed across a chunk edge (default 4096) */
  regexWindow?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface MemoryMatch {
  address: bigint;
  length: number;
  areaId: number;
  areaPath: string;
  /** the match with `context` bytes either side (cut at stored-run edges) */
  context: Uint8Array;
  /** where the match starts inside `context` */
  contextOffset: number;
}

export interface MemorySearchResult {
  matches: MemoryMatch[];
  truncated: boolean;
  bytesSearched: number;
}

export async function searchMemory(img: CheckpointImage, opts: MemorySearchOptions): Promise<MemorySearchResult> {
  if ((opts.needle === undefined) === (opts.regex === undefined)) throw new TypeError("searchMemory needs exactly one of needle or regex");
  if (opts.needle && opts.needle.length === 0) throw new TypeError("empty search string");
  const context = opts.context ?? 16;
  const max = opts.maxMatches ?? 10000;
  const overlap = opts.needle ? opts.needle.length - 1 : opts.regexWindow ?? 4096;
  const needle = opts.needle ? Buffer.from(opts.needle) : undefined;
  const regex = opts.regex ? new RegExp(opts.regex.source, opts.regex.flags.includes("g") ? opts.regex.flags : opts.regex.flags + "g") : undefined;
  const ps = img.pageSize;
  const result: MemorySearchResult = { matches: [], truncated: false, bytesSearched: 0 };
  const total = img.areas.reduce((n, a) => n + img.storedPages(a.id) * ps, 0);
  for (const area of img.areas) {
    // `carry`: the last `overlap` bytes of the previous run when the next run continues at its
    // end address; a match across the seam is looked for in carry + the head of the next run.
    let carry: { address: bigint; bytes: Uint8Array } | undefined;
    const refs = img.chunksByArea.get(area.id) ?? [];
    // Read one chunk ahead: the next chunk's I/O overlaps this one's scan.
    const ahead = (r: number) => {
      if (r >= refs.length) return undefined;
      const p = img.readChunk(refs[r]);
      p.catch(() => {}); // awaited below; a search that stops early must not leave it unhandled
      return p;
    };
    let next = ahead(0);
    for (let r = 0; r < refs.length; r++) {
      const { header, raw } = await next!;
      next = ahead(r + 1);
      let k = 0;
      for (let i = 0; i < header.spanPages;) {
        if (!(header.bitmap[i >> 3] & (1 << (i & 7)))) {
          i++;
          carry = undefined;
          continue;
        }
        let j = i;
        while (j < header.spanPages && header.bitmap[j >> 3] & (1 << (j & 7))) j++;
        const address = header.firstPage + BigInt(i * ps);
        const run = raw.subarray(k * ps, (k + j - i) * ps);
        if (carry && carry.address + BigInt(carry.bytes.length) === address && overlap > 0) {
          // The seam: matches that start in the carry and end in this run.
          const head = run.subarray(0, Math.min(overlap, run.length));
          const seam = new Uint8Array(carry.bytes.length + head.length);
          seam.set(carry.bytes);
          seam.set(head, carry.bytes.length);
          if (searchRun(seam, carry.address, area, needle, regex, context, max, result, carry.bytes.length)) return result;
        }
        if (searchRun(run, address, area, needle, regex, context, max, result)) return result;
        result.bytesSearched += (j - i) * ps;
        opts.onProgress?.(result.bytesSearched, total);
        const keep = Math.min(overlap, run.length);
        carry = keep > 0 ? { address: address + BigInt(run.length - keep), bytes: run.slice(run.length - keep) } : undefined;
        k += j - i;
        i = j;
      }
    }
  }
  return result;
}

/**
 * Matches in one buffer. For a seam buffer (`seamAt` = where the new run starts in it), only
 * matches that start before and end after that point count: the others are found in the runs.
 * Returns true when `max` is reached.
 */
function searchRun(
  run: Uint8Array, runAddress: bigint, area: AreaRecord, needle: Uint8Array | undefined, regex: RegExp | undefined,
  context: number, max: number, result: MemorySearchResult, seamAt?: number,
): boolean {
  const add = (at: number, length: number): boolean => {
    if (seamAt !== undefined && (at >= seamAt || at + length <= seamAt)) return false;
    if (result.matches.length >= max) {
      result.truncated = true;
      return true;
    }
    const from = Math.max(0, at - context);
    result.matches.push({
      address: runAddress + BigInt(at), length, areaId: area.id, areaPath: area.path || `[${area.kind}]`,
      context: run.slice(from, Math.min(run.length, at + length + context)), contextOffset: at - from,
    });
    return false;
  };
  if (needle) {
    const buf = Buffer.from(run.buffer, run.byteOffset, run.byteLength);
    // needle is a Buffer (made once in searchMemory): indexOf takes its fast path.
    for (let at = buf.indexOf(needle); at >= 0; at = buf.indexOf(needle, at + 1)) if (add(at, needle.length)) return true;
    return false;
  }
  const text = Buffer.from(run.buffer, run.byteOffset, run.byteLength).toString("latin1");
  regex!.lastIndex = 0;
  for (let m = regex!.exec(text); m; m = regex!.exec(text)) {
    if (m[0].length === 0) {
      regex!.lastIndex++;
      continue;
    }
    if (add(m.index, m[0].length)) return true;
  }
  return false;
}
