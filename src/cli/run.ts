/**
 * `ckimg run [--dir DIR] [--every DURATION] [--keep N] [--on SIGNAL=ACTION]…
 *            [--checkpoint-exit-code N] [--keep-on-success] [--full] [--compress C] -- PROGRAM ARGS…`
 * `ckimg run --status DIR [--json]`
 * Parses options, runs the job engine (src/job) and prints one stderr line per event.
 */
import { EXIT_OK, UsageError, parseVerbArgs, toJson, type CliContext, type Verb } from "./common.js";
import type { CaptureCodec } from "./capture.js";
import { DEFAULT_CAPTURE_NICE, runJob, type JobEvent } from "../job/engine.js";
import { JobUsageError, parseDuration, parseSignalAction, type SignalAction } from "../job/options.js";
import { runStatus, type RunStatus } from "../job/status.js";

const CODECS = ["none", "lz4", "lzf", "gzip"];

function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

/** One stderr line per engine event (pure). */
export function eventLine(e: JobEvent): string {
  const p = "ckimg run: ";
  switch (e.kind) {
    case "launched": return `${p}started pid ${e.pid}`;
    case "restored": return `${p}restored pid ${e.pid} from ${e.checkpoint} in ${e.ms.toFixed(0)} ms (restart ${e.restarts})`;
    case "damaged": return `${p}${e.checkpoint}: damaged (${e.problem}); using the previous checkpoint`;
    case "restore-failed": return `${p}${e.checkpoint}: restore failed (${e.problem})`;
    case "signal": return `${p}${e.signal}: ${e.action}`;
    case "checkpoint": {
      const c = e.entry;
      return `${p}checkpoint ${c.seq} (${c.reason}): ${e.path}, ${size(c.bytes)}${c.parent ? ` on ${c.parent}` : ""}, ` +
        `${c.captureMs} ms (frozen ${c.frozenMs.toFixed(0)} ms)` +
        (e.flattened ? `; flattened ${e.flattened.file} (${size(e.flattened.bytes)}, ${e.flattened.ms} ms)` : "") +
        (e.removed.length ? `; removed ${e.removed.join(", ")}` : "");
    }
    case "checkpoint-failed": return `${p}checkpoint (${e.reason}) failed: ${e.problem}`;
    case "stopped": return `${p}job stopped (SIGCONT continues it)`;
    case "continued": return `${p}job continued`;
    case "requeue": return `${p}scontrol requeue ${e.jobId}: ${e.ok ? "ok" : `failed: ${e.detail}`}`;
    case "warning": return `${p}warning: ${e.text}`;
  }
}

/** The text form of --status (pure). */
export function statusText(s: RunStatus): string {
  const lines = [
    `${s.dir}: ${s.state}${s.exitCode !== null ? ` (exit ${s.exitCode})` : ""}, ${s.restarts} restart(s), job pid ${s.jobPid ?? "-"}` +
      (s.runner ? `, ckimg run pid ${s.runner.pid} on ${s.runner.host}` : ""),
    `command: ${s.command.join(" ")}`,
    `checkpoints: ${s.checkpoints.length}, ${size(s.totalBytes)}; latest ${s.latest ?? "-"}`,
  ];
  for (const c of s.checkpoints) {
    lines.push(`  ${c.latest ? "*" : " "} ${String(c.seq).padStart(4)}  ${c.time}  ${size(c.bytes).padStart(10)}  ${c.file}` +
      `  parent ${c.parent ?? "-"}${c.flattenedMs !== undefined ? " (flattened)" : ""}  ${c.reason}${c.present ? "" : "  (file missing)"}`);
  }
  return lines.join("\n") + "\n";
}

export const RUN_VERB: Verb = {
  summary: "run a program as a checkpointed job (periodic, on signals, restarted from DIR)",
  usage: "[--dir DIR] [--every DURATION] [--keep N] [--on SIGNAL=ACTION]… [--checkpoint-exit-code N] " +
    "[--keep-on-success] [--full] [--compress none|lz4|lzf|gzip] [--capture-nice N] -- PROGRAM ARGS… | --status DIR [--json]",
  async run(args: string[], ctx: CliContext): Promise<number> {
    // bin/launch.sh set NODE_EXTRA_CA_CERTS aside for Node's start-up: the job gets it back
    const caCerts = process.env.CKIMG_RUN_NODE_EXTRA_CA_CERTS;
    if (caCerts !== undefined) {
      process.env.NODE_EXTRA_CA_CERTS = caCerts;
      delete process.env.CKIMG_RUN_NODE_EXTRA_CA_CERTS;
    }
    const dash = args.indexOf("--");
    const opts = dash >= 0 ? args.slice(0, dash) : args;
    const command = dash >= 0 ? args.slice(dash + 1) : [];
    const { values, positionals } = parseVerbArgs(opts, {
      dir: { type: "string" },
      every: { type: "string" },
      keep: { type: "string" },
      on: { type: "string", multiple: true },
      "checkpoint-exit-code": { type: "string" },
      "keep-on-success": { type: "boolean" },
      full: { type: "boolean" },
      compress: { type: "string" },
      "capture-nice": { type: "string" },
      status: { type: "string" },
      json: { type: "boolean" },
    });
    try {
      if (typeof values.status === "string") {
        if (positionals.length || command.length) throw new UsageError("--status takes only DIR");
        const s = await runStatus(values.status);
        ctx.stdout(values.json ? toJson(s) : statusText(s));
        return EXIT_OK;
      }
      if (positionals.length) throw new UsageError(`put the program after '--' (got '${positionals[0]}')`);
      if (command.length === 0) throw new UsageError("missing -- PROGRAM ARGS…");
      const keepText = (values.keep as string | undefined) ?? "2";
      if (!/^[1-9][0-9]{0,5}$/.test(keepText)) throw new UsageError(`--keep wants a count ≥ 1, not '${keepText}'`);
      const exitText = values["checkpoint-exit-code"] as string | undefined;
      if (exitText !== undefined && !/^([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])$/.test(exitText)) {
        throw new UsageError(`--checkpoint-exit-code wants 0-255, not '${exitText}'`);
      }
      const compress = (values.compress as string | undefined) ?? "lz4";
      if (!CODECS.includes(compress)) throw new UsageError(`unknown codec '${compress}' (none, lz4, lzf, gzip)`);
      const niceText = (values["capture-nice"] as string | undefined) ?? String(DEFAULT_CAPTURE_NICE);
      if (!/^([0-9]|1[0-9])$/.test(niceText)) throw new UsageError(`--capture-nice wants 0-19, not '${niceText}'`);
      const actions = new Map<NodeJS.Signals, SignalAction>(((values.on as string[] | undefined) ?? []).map(parseSignalAction));
      const result = await runJob({
        dir: (values.dir as string | undefined) ?? "ckpt",
        command,
        everyMs: typeof values.every === "string" ? parseDuration(values.every) : undefined,
        keep: Number(keepText),
        actions,
        checkpointExitCode: exitText === undefined ? undefined : Number(exitText),
        keepOnSuccess: values["keep-on-success"] === true,
        fullImages: values.full === true,
        compress: compress as CaptureCodec,
        captureNice: Number(niceText),
        onEvent: (e) => ctx.stderr((process.env.CKIMG_DEBUG ? new Date().toISOString().slice(11, 23) + " " : "") + eventLine(e) + "\n"),
      });
      return result.exitCode;
    } catch (err) {
      if (err instanceof JobUsageError) throw new UsageError(err.message);
      throw err;
    }
  },
};
