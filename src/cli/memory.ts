/**
 * `ckimg mem IMG ADDR LEN` (hexdump, or raw bytes to a file) and `ckimg strings IMG`.
 * The library does the reading (src/analysis/memory.ts); output is formatted by the pure
 * functions below, which tests call.
 */
import { writeFileAtomically, type CheckpointImage } from "../format/index.js";
import { openImage } from "../open.js";
import { searchMemory, type MemorySearchResult } from "../analysis/search.js";
import { hexdump, readRegion, readStringBatches, type FoundString, type MemoryRegion, type StringEncoding } from "../analysis/memory.js";
import { EXIT_FINDING, EXIT_OK, UsageError, hex, parseAddress, parseVerbArgs, toJson, type Verb } from "./common.js";

/** JSON form of `mem --json`: the bytes as hex, the ranges that are unknown (their bytes are the fill byte) and those read from disk. */
export function memJson(region: MemoryRegion) {
  return {
    address: hex(region.address),
    length: region.bytes.length,
    hex: Buffer.from(region.bytes.buffer, region.bytes.byteOffset, region.bytes.byteLength).toString("hex"),
    unavailable: unknownJson(region.unavailable),
    ...(region.fromDisk?.length ? { fromDisk: diskJson(region.fromDisk) } : {}),
  };
}

function unknownJson(ranges: MemoryRegion["unavailable"]) {
  return ranges.map((r) => ({ start: hex(r.start), end: hex(r.end), ...(r.why ? { why: r.why } : {}) }));
}

function diskJson(ranges: NonNullable<MemoryRegion["fromDisk"]>) {
  return ranges.map((r) => ({ start: hex(r.start), end: hex(r.end), path: r.path, evidence: r.evidence ?? "archive" }));
}

/** Append `more` to `into`, joining runs that touch (pieces of one long read). */
function mergeRanges<T extends { start: bigint; end: bigint }>(into: T[], more: readonly T[], same: (a: T, b: T) => boolean): void {
  for (const r of more) {
    const last = into[into.length - 1];
    if (last && last.end === r.start && same(last, r)) last.end = r.end;
    else into.push({ ...r });
  }
}

/** The stderr lines of `mem`: which bytes are unknown (and how to get them anyway), which came from disk. */
export function memNotes(image: string, unknown: MemoryRegion["unavailable"], fromDisk: NonNullable<MemoryRegion["fromDisk"]>, fill: number | undefined): string {
  const lines: string[] = [];
  for (const d of fromDisk) {
    lines.push(`ckimg: ${image}: ${hex(d.start)}-${hex(d.end)} read from ${d.path}${d.evidence === "sha256" ? " (SHA-256 matches the image)" : d.evidence === "stat" ? " (inode, size and mtime match; the image holds no SHA-256)" : ""}`);
  }
  const shown = unknown.slice(0, 16);
  for (const u of shown) lines.push(`ckimg: ${image}: ${hex(u.start)}-${hex(u.end)} unknown${u.why ? `: ${u.why}` : ""}`);
  if (unknown.length > shown.length) lines.push(`ckimg: ${image}: … and ${unknown.length - shown.length} more unknown range(s)`);
  if (unknown.length) {
    lines.push(fill === undefined
      ? `ckimg: ${image}: ${unknown.length} range(s) the image does not hold; --fill BYTE writes them as that byte`
      : `ckimg: ${image}: ${unknown.length} range(s) the image does not hold were written as 0x${fill.toString(16).padStart(2, "0")}`);
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}

/**
 * `strings` text: one line per string, `0xADDRESS  TEXT` (with `[utf16le]` when several
 * encodings are asked for); addresses zero-padded to `width` hex digits.
 */
export function stringsText(found: readonly FoundString[], showEncoding: boolean, width = 12): string {
  return found.map((s) => `0x${s.address.toString(16).padStart(width, "0")}  ${showEncoding ? `[${s.encoding}] ` : ""}${s.text}\n`).join("");
}

/** Write `pieces` to `path` atomically (temp file 0600 beside it, fsync, rename). */
export async function writeFileAtomic(path: string, pieces: AsyncIterable<Uint8Array>): Promise<void> {
  await writeFileAtomically(path, async (fh) => {
    for await (const bytes of pieces) await fh.write(bytes);
  });
}

/** Thrown inside `mem --out` when a piece holds unknown bytes and no --fill was given. */
class UnknownContent extends Error {}

/** A long read, one piece at a time (memory stays bounded whatever LEN is). */
const PIECE = 1 << 20;

async function* regions(img: CheckpointImage, address: bigint, length: number, fill?: number): AsyncGenerator<MemoryRegion> {
  for (let done = 0; done < length; done += PIECE) {
    yield await readRegion(img, address + BigInt(done), Math.min(PIECE, length - done), { fill });
  }
}

function parseFill(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^(0x[0-9a-fA-F]{1,2}|[0-9]{1,3})$/.test(text) || Number(text) > 255) throw new UsageError(`--fill takes a byte (0..255 or 0x00..0xff), not '${text}'`);
  return Number(text);
}

function parseLength(text: string): number {
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(text)) throw new UsageError(`not a length: '${text}'`);
  const n = Number(BigInt(text));
  if (n > 1 << 30) throw new UsageError(`length ${text} is over 1 GiB`);
  return n;
}

/** `mem --search` text: one match per line, address, area, and the context with the match in [brackets]. */
export function searchText(r: MemorySearchResult): string {
  const show = (b: Uint8Array) => Buffer.from(b).toString("latin1").replace(/[^\x20-\x7e]/g, ".");
  const lines = r.matches.map((m) => {
    const c = m.context;
    return `${hex(m.address)}  ${m.areaPath}  ${show(c.subarray(0, m.contextOffset))}[${show(c.subarray(m.contextOffset, m.contextOffset + m.length))}]${show(c.subarray(m.contextOffset + m.length))}`;
  });
  lines.push(`${r.matches.length} match(es)${r.truncated ? " (stopped at --max)" : ""} in ${r.bytesSearched} bytes of stored memory`);
  return lines.join("\n") + "\n";
}

async function runSearch(img: CheckpointImage, values: Record<string, unknown>, ctx: Parameters<Verb["run"]>[1]): Promise<number> {
  const context = values.context === undefined ? 16 : Number(values.context);
  const max = values.max === undefined ? 10000 : Number(values.max);
  if (!Number.isInteger(context) || context < 0 || context > 4096) throw new UsageError(`--context wants 0..4096, not '${values.context}'`);
  if (!Number.isInteger(max) || max < 1) throw new UsageError(`--max wants a positive number, not '${values.max}'`);
  let regex: RegExp | undefined;
  if (typeof values.regex === "string") {
    try {
      regex = new RegExp(values.regex);
    } catch (err) {
      throw new UsageError(`--regex: ${(err as Error).message}`);
    }
  }
  const needle = typeof values.search === "string" ? new TextEncoder().encode(values.search) : undefined;
  if (needle && !needle.length) throw new UsageError("--search wants a non-empty string");
  const r = await searchMemory(img, { needle, regex, context, maxMatches: max });
  ctx.stdout(values.json
    ? toJson({ matches: r.matches.map((m) => ({ address: hex(m.address), length: m.length, area: m.areaPath, context: Buffer.from(m.context).toString("latin1"), contextOffset: m.contextOffset })), truncated: r.truncated, bytesSearched: r.bytesSearched })
    : searchText(r));
  return r.matches.length ? EXIT_OK : EXIT_FINDING;
}

export const MEM_VERB: Verb = {
  summary: "dump process memory from an image (hexdump, raw bytes with --out), or search it (--search STRING, --regex RE)",
  usage: "[--json] [--out FILE] [--fill BYTE] IMG ADDR LEN  |  [--json] (--search STRING | --regex RE) [--context N] [--max N] IMG",
  async run(args, ctx) {
    const { values, positionals } = parseVerbArgs(args, {
      json: { type: "boolean" }, out: { type: "string", short: "o" }, search: { type: "string", short: "s" }, regex: { type: "string" },
      context: { type: "string" }, max: { type: "string" }, fill: { type: "string" },
    });
    const fill = parseFill(values.fill as string | undefined);
    if (values.search !== undefined || values.regex !== undefined) {
      if (values.search !== undefined && values.regex !== undefined) throw new UsageError("give --search or --regex, not both");
      if (positionals.length !== 1) throw new UsageError("mem --search/--regex takes one image");
      const img = await openImage(positionals[0]);
      try {
        return await runSearch(img, values, ctx);
      } finally {
        await img.close();
      }
    }
    if (positionals.length !== 3) throw new UsageError("mem takes an image, an address and a length");
    const address = parseAddress(positionals[1]);
    const length = parseLength(positionals[2]);
    const img = await openImage(positionals[0]);
    // Unknown content is never shown as data: without --fill it is named and the exit is 1.
    const unknown: MemoryRegion["unavailable"] = [];
    const fromDisk: NonNullable<MemoryRegion["fromDisk"]> = [];
    const collect = (r: MemoryRegion) => {
      mergeRanges(unknown, r.unavailable, (a, b) => a.why === b.why);
      mergeRanges(fromDisk, r.fromDisk ?? [], (a, b) => a.path === b.path);
    };
    try {
      if (typeof values.out === "string") {
        const out = values.out;
        try {
          await writeFileAtomic(out, (async function* () {
            for await (const r of regions(img, address, length, fill)) {
              collect(r);
              if (r.unavailable.length && fill === undefined) throw new UnknownContent();
              yield r.bytes;
            }
          })());
        } catch (err) {
          if (!(err instanceof UnknownContent)) throw err;
          // No half-invented file: nothing is written unless the user picks the byte.
          ctx.stderr(memNotes(positionals[0], unknown, fromDisk, fill) + `ckimg: ${positionals[0]}: nothing written to ${out}\n`);
          return EXIT_FINDING;
        }
        if (values.json) ctx.stdout(toJson({ address: hex(address), length, out, unavailable: unknownJson(unknown), ...(fromDisk.length ? { fromDisk: diskJson(fromDisk) } : {}), ...(fill !== undefined ? { fill } : {}) }));
      } else if (values.json) {
        const region = await readRegion(img, address, length, { fill });
        collect(region);
        ctx.stdout(toJson({ ...memJson(region), ...(fill !== undefined ? { fill } : {}) }));
      } else {
        const addressWidth = Math.max(8, (address + BigInt(Math.max(0, length - 1))).toString(16).length);
        for await (const r of regions(img, address, length, fill)) {
          collect(r);
          // With --fill the chosen byte is shown; without, unknown bytes print as "--".
          ctx.stdout(hexdump(fill === undefined ? r : { ...r, unavailable: [] }, { addressWidth }));
        }
      }
    } finally {
      await img.close();
    }
    if (!values.json) ctx.stderr(memNotes(positionals[0], unknown, fromDisk, fill));
    return unknown.length && fill === undefined ? EXIT_FINDING : EXIT_OK;
  },
};

export const STRINGS_VERB: Verb = {
  summary: "printable strings in an image's stored pages, with their addresses",
  usage: "[--json] [--area ADDR|PATH|KIND]... [-n MIN] [--encoding ascii|utf16le|both] IMG",
  async run(args, ctx) {
    const { values, positionals } = parseVerbArgs(args, {
      json: { type: "boolean" },
      area: { type: "string", multiple: true },
      n: { type: "string", short: "n" },
      encoding: { type: "string", short: "e" },
    });
    if (positionals.length !== 1) throw new UsageError("strings takes one image");
    const minLength = values.n === undefined ? 4 : Number(values.n);
    if (!Number.isInteger(minLength) || minLength < 1) throw new UsageError(`-n needs a positive number, not '${values.n}'`);
    const enc = (values.encoding as string | undefined) ?? "ascii";
    const encodings: StringEncoding[] = enc === "both" ? ["ascii", "utf16le"] : enc === "ascii" || enc === "utf16le" ? [enc] : [];
    if (!encodings.length) throw new UsageError(`--encoding is ascii, utf16le or both, not '${enc}'`);
    const img = await openImage(positionals[0]);
    try {
      const batches = readStringBatches(img, { areas: values.area as string[] | undefined, minLength, encodings });
      if (values.json) {
        const found: FoundString[] = [];
        for await (const batch of batches) found.push(...batch);
        ctx.stdout(toJson(found.map((s) => ({ address: s.address, area: s.areaId, encoding: s.encoding, text: s.text }))));
      } else {
        // Text streams batch by batch: a big image's strings never sit in memory all at once.
        const width = Math.max(12, ...img.areas.map((a) => (a.end - 1n).toString(16).length));
        for await (const batch of batches) ctx.stdout(stringsText(batch, encodings.length > 1, width));
      }
    } finally {
      await img.close();
    }
    return EXIT_OK;
  },
};
