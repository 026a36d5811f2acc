/**
 * `ckimg flatten B.img -o C.img`: a standalone image from an incremental one — every page the
 * chain gives B, stored in C; no PARENT. C keeps B's image_id (the same snapshot), so images
 * whose PARENT names B accept C in its place.
 */
import { CODEC, type CodecId } from "../format/codecs.js";
import { flattenImage, type FlattenReport } from "../format/flatten.js";
import { EXIT_OK, UsageError, parseVerbArgs, toJson, type Verb } from "./common.js";

const CODECS: Record<string, CodecId> = { none: CODEC.NONE, lz4: CODEC.LZ4, lzf: CODEC.LZF, deflate: CODEC.DEFLATE };

export function flattenText(r: FlattenReport): string {
  const from = r.chain.length > 1 ? `a chain of ${r.chain.length} images` : "a standalone image";
  return `${r.input} → ${r.output}: ${r.pages} pages (${r.inheritedPages} from the parents), ${r.bytes} bytes; flattened ${from}\n`;
}

export const FLATTEN_VERB: Verb = {
  summary: "write a standalone image from an incremental one (its chain resolved)",
  usage: "[--json] [--compress none|lz4|lzf|deflate] IMG -o OUT",
  async run(args, ctx) {
    const { values, positionals } = parseVerbArgs(args, {
      json: { type: "boolean" }, out: { type: "string", short: "o" }, compress: { type: "string" },
    });
    if (positionals.length !== 1 || typeof values.out !== "string") throw new UsageError("flatten takes one image and -o OUTPUT");
    const codec = values.compress === undefined ? undefined : CODECS[values.compress as string];
    if (values.compress !== undefined && codec === undefined) throw new UsageError(`--compress is none, lz4, lzf or deflate, not '${values.compress}'`);
    const report = await flattenImage(positionals[0], values.out, { codec });
    ctx.stdout(values.json ? toJson(report) : flattenText(report));
    return EXIT_OK;
  },
};
