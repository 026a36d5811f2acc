/**
 * `ckimg to-core IMG -o CORE`: an ELF core file of the captured process, for gdb and friends
 * (`gdb EXE CORE`). The writer is src/analysis/core.ts; this verb parses options and reports.
 */
import { openImage } from "../open.js";
import { writeCore, type CoreSummary } from "../analysis/core.js";
import { EXIT_OK, UsageError, parseVerbArgs, toJson, type Verb } from "./common.js";
import { progressPrinter } from "./progress.js";

export function coreText(s: CoreSummary, exe: string): string {
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  const lines = [
    `wrote ${s.path}: ${mib(s.bytes)} (${s.threads} thread(s), ${s.loadSegments} PT_LOAD, ${s.notes.length} notes); ` +
      `memory ${mib(s.fromImage)} from the image, ${mib(s.fromFiles)} from mapped files, ${mib(s.zero)} zero (holes)`,
  ];
  if (s.unavailablePages) lines.push(`warning: ${s.unavailablePages} page(s) of mapped files missing or changed on disk were written as zero`);
  if (!s.vdso) lines.push("note: the vDSO is not in the image (captured on another kernel): gdb may warn about it");
  lines.push(`open it with: gdb ${exe || "EXE"} ${s.path}`);
  return lines.join("\n") + "\n";
}

export const TO_CORE_VERB: Verb = {
  summary: "write an ELF core file of the captured process (for gdb EXE CORE)",
  usage: "[--json] [--no-file-text] IMG -o CORE",
  async run(args, ctx) {
    const { values, positionals } = parseVerbArgs(args, {
      json: { type: "boolean" },
      output: { type: "string", short: "o" },
      "no-file-text": { type: "boolean" },
    });
    if (positionals.length !== 1) throw new UsageError("to-core takes one image");
    if (typeof values.output !== "string") throw new UsageError("to-core needs -o CORE");
    const img = await openImage(positionals[0]);
    try {
      const progress = progressPrinter(ctx, "to-core");
      const summary = await writeCore(img, values.output, { fileText: !values["no-file-text"], onProgress: progress.update });
      progress.done();
      ctx.stdout(values.json ? toJson(summary) : coreText(summary, img.process.exe));
    } finally {
      await img.close();
    }
    return EXIT_OK;
  },
};
