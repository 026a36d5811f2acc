/**
 * `ckimg convert`: a CRIU dump or container archive into a ckimg image, or a ckimg image into
 * a CRIU image directory (`--to criu`) that `criu restore -D DIR` runs. What the target cannot
 * express is listed (and in --json), never dropped silently.
 */
import { CODEC, type CodecId } from "../format/codecs.js";
import { isCriuImage, openImage } from "../open.js";
import { criuToCkimg, type ConversionReport } from "../criu/to-ckimg.js";
import { ckimgToCriu } from "../criu/to-criu.js";
import { EXIT_OK, UsageError, parseVerbArgs, toJson, type Verb } from "./common.js";

export function conversionText(r: ConversionReport, from: string): string {
  const out = [`${from} → ${r.output}: ${r.bytes} bytes, ${r.pages} pages`];
  if (r.notCarried.length) {
    out.push(`not carried over (${r.notCarried.length}):`);
    for (const l of r.notCarried) out.push(`  - ${l}`);
  }
  return out.join("\n") + "\n";
}

/** "gzip" stays as an alias of "deflate" (the chunks are raw DEFLATE, FORMAT.md 4.8). */
const CODECS: Record<string, CodecId> = { none: CODEC.NONE, lz4: CODEC.LZ4, lzf: CODEC.LZF, deflate: CODEC.DEFLATE, gzip: CODEC.DEFLATE };

export const CONVERT_VERB: Verb = {
  summary: "convert a CRIU dump or container archive to a ckimg image, or (--to criu) an image to a CRIU directory",
  usage: "[--json] [--pid PID] [--compress none|lz4|lzf|deflate] CRIU_DIR|ARCHIVE -o IMG  |  [--json] --to criu IMG -o DIR",
  async run(args, ctx) {
    const { values, positionals } = parseVerbArgs(args, {
      json: { type: "boolean" }, out: { type: "string", short: "o" }, to: { type: "string" }, compress: { type: "string" },
    });
    if (positionals.length !== 1 || typeof values.out !== "string") throw new UsageError("convert takes one source and -o OUTPUT");
    const to = (values.to as string | undefined) ?? "ckimg";
    if (to !== "ckimg" && to !== "criu") throw new UsageError(`--to is ckimg or criu, not '${to}'`);
    const codec = values.compress === undefined ? undefined : CODECS[values.compress as string];
    if (values.compress !== undefined && codec === undefined) throw new UsageError(`--compress is none, lz4, lzf or deflate, not '${values.compress}'`);
    const img = await openImage(positionals[0]); // --pid (any verb) picks the process of a tree
    try {
      let report: ConversionReport;
      if (to === "ckimg") {
        if (!isCriuImage(img)) throw new UsageError(`${positionals[0]} is already a ckimg image (convert --to criu makes a CRIU directory of it)`);
        report = await criuToCkimg(img, values.out, { codec });
      } else {
        report = await ckimgToCriu(img, values.out);
      }
      ctx.stdout(values.json ? toJson(report) : conversionText(report, positionals[0]));
    } finally {
      await img.close();
    }
    return EXIT_OK;
  },
};
