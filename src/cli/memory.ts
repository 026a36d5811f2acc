/**
 * `ckimg mem IMG ADDR LEN` (hexdump, or raw bytes to a file) and `ckimg strings IMG`.
 * The library does the reading (src/analysis/memory.ts); output is formatted by the pure
 * functions below, which tests call.
 */
import { writeFileAtomically, type CheckpointImage } from "../format/index.js";
import { openImage } from "../open.js";
import { hexdump, readRegion, readStringBatches, type FoundString, type MemoryRegion, type StringEncoding } from "../analysis/memory.js";
import { EXIT_OK, UsageError, hex, parseAddress, parseVerbArgs, toJson, type Verb } from "./common.js";

/** JSON form of `mem --json`: the bytes as hex, with the unavailable ranges. */
export function memJson(region: MemoryRegion) {
  return {
    address: hex(region.address),
    length: region.bytes.length,
    hex: Buffer.from(region.bytes.buffer, region.bytes.byteOffset, region.bytes.byteLength).toString("hex"),
    unavailable: region.unavailable.map((r) => ({ start: hex(r.start), end: hex(r.end) })),
  };
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

/** A long read, one piece at a time (memory stays bounded whatever LEN is). */
const PIECE = 1 << 20;

async function* regions(img: CheckpointImage, address: bigint, length: number): AsyncGenerator<MemoryRegion> {
  for (let done = 0; done < length; done += PIECE) {
    yield await readRegion(img, address + BigInt(done), Math.min(PIECE, length - done));
  }
}

function parseLength(text: string): number {
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(text)) throw new UsageError(`not a length: '${text}'`);
  const n = Number(BigInt(text));
  if (n > 1 << 30) throw new UsageError(`length ${text} is over 1 GiB`);
  return n;
}

export const MEM_VERB: Verb = {
  summary: "dump process memory from an image (hexdump, or raw bytes with --out)",
  usage: "[--json] [--out FILE] IMG ADDR LEN",
  async run(args, ctx) {
    const { values, positionals } = parseVerbArgs(args, { json: { type: "boolean" }, out: { type: "string", short: "o" } });
    if (positionals.length !== 3) throw new UsageError("mem takes an image, an address and a length");
    const address = parseAddress(positionals[1]);
    const length = parseLength(positionals[2]);
    const img = await openImage(positionals[0]);
    try {
      if (typeof values.out === "string") {
        const unavailable: MemoryRegion["unavailable"] = [];
        await writeFileAtomic(values.out, (async function* () {
          for await (const r of regions(img, address, length)) {
            unavailable.push(...r.unavailable);
            yield r.bytes;
          }
        })());
        if (values.json) ctx.stdout(toJson({ address: hex(address), length, out: values.out, unavailable: unavailable.map((r) => ({ start: hex(r.start), end: hex(r.end) })) }));
        else if (unavailable.length) ctx.stderr(`ckimg: ${positionals[0]}: ${unavailable.length} range(s) not in the image written as zero bytes\n`);
      } else if (values.json) {
        ctx.stdout(toJson(memJson(await readRegion(img, address, length))));
      } else {
        const addressWidth = Math.max(8, (address + BigInt(Math.max(0, length - 1))).toString(16).length);
        for await (const r of regions(img, address, length)) ctx.stdout(hexdump(r, { addressWidth }));
      }
    } finally {
      await img.close();
    }
    return EXIT_OK;
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
