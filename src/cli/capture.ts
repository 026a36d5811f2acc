/**
 * `ckimg capture PID -o IMAGE`: runs the native capturer (build/ckimg-capture), forwards its
 * progress, and reports what it wrote. The native program does all the work; this verb only
 * validates options, maps its failure line to one `ckimg: <what>` line (exit 2) and formats
 * the summary. `runCapture` is the library form (tests and benchmarks call it directly).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { EXIT_OK, UsageError, parseVerbArgs, toJson, type CliContext, type Verb } from "./common.js";
import { progressPrinter } from "./progress.js";

/** "gzip" is an alias of "deflate" kept for old scripts: the chunks are raw DEFLATE (FORMAT.md 4.8), not gzip. */
export type CaptureCodec = "none" | "lz4" | "lzf" | "deflate" | "gzip";
const CODECS: readonly CaptureCodec[] = ["none", "lz4", "lzf", "deflate", "gzip"];

export interface CaptureOptions {
  pid: number;
  output: string;
  compress?: CaptureCodec;
  /** Kill the target once the image is durable (it never runs past the capture point). */
  kill?: boolean;
  /** Rehash every mapped file instead of using the SHA-256 cache. */
  noHashCache?: boolean;
  /** Capture PID alone, not its descendants (default: the whole tree, format 1.2). */
  noChildren?: boolean;
  /**
   * Page buffer: a ring of this many MiB (default 16: little fresh memory, the target stays
   * stopped until all but the last ring is written), or "all" (as large as the memory read:
   * the target is released as soon as its memory is read).
   */
  bufferMb?: number | "all";
  /**
   * Incremental capture: store only the pages that differ from this earlier image of the same
   * process (format 1.2 PARENT); the new image needs it (and its own parents) to be read.
   */
  parent?: string;
  /**
   * Stop-and-copy: keep the target stopped while its memory is copied, instead of the default
   * copy-on-write snapshot (a twin forked inside the frozen target, read after its release).
   */
  noCow?: boolean;
  /**
   * Keep dirty-page tracking between captures (Linux >= 6.7: userfaultfd write-protection held
   * by a small keeper process that exits with the target): a later `parent` capture on this
   * image then reads only the pages written since, with a freeze of a few milliseconds.
   */
  track?: boolean;
  /** Called with bytes of memory processed so far and the total to process. */
  onProgress?: (done: number, total: number) => void;
  /** More capturer options, for callers that probed for them (`ckimg run`: --parent). */
  extraArgs?: string[];
  /** The caller handles SIGINT/SIGTERM itself: do not pass them on to the capturer. */
  ownSignals?: boolean;
  /** Start the capturer through this program and its arguments (`ckimg run`: ckimg-guard shield --). */
  launcher?: string[];
  /** Called with the capturer's PID once it is started (`ckimg run`'s guard watches it). */
  onSpawn?: (pid: number) => void;
}

/** What the native capturer reports on success (its JSON line, camel-cased). */
export interface CaptureSummary {
  pid: number;
  image: string;
  codec: CaptureCodec;
  /** Size of the image file. */
  imageBytes: number;
  /** Bytes of memory read from the target (before zero-page dropping and compression). */
  memoryBytes: number;
  storedPages: number;
  /** Bytes of page data as stored (compressed). */
  storedBytes: number;
  threads: number;
  areas: number;
  files: number;
  fds: number;
  /** Live processes captured (1 without descendants) and zombies among their children. */
  processes: number;
  zombies: number;
  /** How long the target was stopped. */
  freezeMs: number;
  totalMs: number;
  killed: boolean;
  /** Pages the image holds (stored here or inherited from the parent chain). */
  heldPages: number;
  /** Pages taken from the parent chain instead of stored (0 without --parent). */
  inheritedPages: number;
  /** The parent image given with --parent, or null. */
  parent: string | null;
  /** The memory was read from a copy-on-write twin after the target's release (not --no-cow). */
  cow: boolean;
  /** The twin's PID (killed and reaped when the capture ends), 0 without one. */
  twinPid: number;
  /** Memory the snapshot cost: pages the target wrote (or dropped) while the twin held them. */
  cowWrittenBytes: number;
  /**
   * Dirty-page tracking: "off" (not used), "started" (this capture started it), "tracked"
   * (only the pages written since the parent were read), "rebased" (the parent was not the last
   * tracked capture: memory compared as without tracking; tracking goes on from this image).
   */
  tracking: "off" | "started" | "tracked" | "rebased";
  /** The tracking keeper's PID, 0 without one (a tree: the root's). */
  keeperPid: number;
  /** A tree: every process's keeper (one per tracked process), in tree order. */
  keeperPids: number[];
  /** Processes whose tracking this capture used or started (a tree: each has its own). */
  trackedProcesses: number;
  /** Pages the tracking reported written since the last tracked capture (before and in the freeze: one written in both counts twice). */
  writtenPages: number;
  /** Why tracking was not (fully) used, or "". */
  trackingNote: string;
  /** CPU time of the capturer (user + system, all its threads), in ms. */
  cpuMs: number;
  /**
   * Where the wall time went: each step of the capturer in order ("parent", "keeper",
   * "freeze", ..., "pages", "fsync", "finish"; a tree's processes summed), in ms; they add up
   * to totalMs.
   */
  phasesMs: Record<string, number>;
  /** What the image cannot bring back, and why (one line each, e.g. a timer's overrun count). */
  warnings: string[];
}

const WARNING = /^ckimg-capture: warning: (.*)$/;

/** The capturer's "warning:" lines (pure). */
export function captureWarnings(stderr: string): string[] {
  return stderr.split("\n").map((l) => WARNING.exec(l.trim())?.[1]).filter((w): w is string => w !== undefined);
}

/** Failure of the native capturer: `message` is its one-line reason. */
export class CaptureError extends Error {
  override name = "CaptureError";
}

/** build/ckimg-capture of this package (from src/cli or dist/cli), or $CKIMG_CAPTURE_BIN. */
export function captureBinary(): string {
  const env = process.env.CKIMG_CAPTURE_BIN;
  if (env) return env;
  return fileURLToPath(new URL("../../build/ckimg-capture", import.meta.url));
}

/** Run one capture; resolves with the summary, rejects with CaptureError. */
export function runCapture(opts: CaptureOptions): Promise<CaptureSummary> {
  const bin = captureBinary();
  if (!existsSync(bin)) {
    return Promise.reject(new CaptureError(`${bin} is missing: run npm run build`));
  }
  const args = [String(opts.pid), "-o", opts.output, "--compress", opts.compress === "gzip" ? "deflate" : (opts.compress ?? "lz4")];
  if (opts.kill) args.push("--kill");
  if (opts.noHashCache) args.push("--no-hash-cache");
  if (opts.noChildren) args.push("--no-children");
  if (opts.bufferMb !== undefined) args.push("--buffer-mb", String(opts.bufferMb));
  if (opts.parent !== undefined) args.push("--parent", opts.parent);
  if (opts.noCow) args.push("--no-cow");
  if (opts.track) args.push("--track");
  if (opts.onProgress) args.push("--progress");
  if (opts.extraArgs) args.push(...opts.extraArgs);

  return new Promise((resolve, reject) => {
    // stderr is piped, not inherited: the capturer's own tty progress stays off and its
    // failure line becomes ours.
    const child = opts.launcher?.length
      ? spawn(opts.launcher[0], [...opts.launcher.slice(1), bin, ...args], { stdio: ["ignore", "pipe", "pipe"] })
      : spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    let stdoutBuf = "";
    let stderrText = "";
    let summary: CaptureSummary | undefined;
    // Ctrl-C reaches the whole process group: the capturer detaches and exits by itself;
    // a SIGTERM aimed at us alone is passed on. Either way we wait for it.
    const onInt = () => {};
    const onTerm = () => child.kill("SIGTERM");
    if (!opts.ownSignals) {
      process.on("SIGINT", onInt);
      process.on("SIGTERM", onTerm);
    }
    const cleanup = () => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    };
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (text: string) => {
      stdoutBuf += text;
      let nl: number;
      while ((nl = stdoutBuf.indexOf("\n")) >= 0) {
        const line = stdoutBuf.slice(0, nl);
        stdoutBuf = stdoutBuf.slice(nl + 1);
        const m = /^progress (\d+) (\d+)$/.exec(line);
        if (m) opts.onProgress?.(Number(m[1]), Number(m[2]));
        else if (line.startsWith("{")) summary = parseSummary(line);
      }
    });
    child.stderr.on("data", (text: string) => {
      stderrText += text;
    });
    child.on("error", (err) => {
      cleanup();
      reject(new CaptureError(`cannot run ${bin}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      cleanup();
      if (code === 0 && summary) return resolve({ ...summary, warnings: captureWarnings(stderrText) });
      const line = stderrText.split("\n").map((l) => l.trim()).filter((l) => l && !WARNING.test(l)).pop();
      const why = line?.replace(/^ckimg-capture: /, "") ?? (signal ? `capturer killed by ${signal}` : `capturer exited with ${code}`);
      reject(new CaptureError(why));
    });
  });
}

function parseSummary(line: string): CaptureSummary {
  const j = JSON.parse(line) as Record<string, unknown>;
  return {
    pid: Number(j.pid), image: String(j.image), codec: j.codec as CaptureCodec,
    imageBytes: Number(j.image_bytes), memoryBytes: Number(j.memory_bytes),
    storedPages: Number(j.stored_pages), storedBytes: Number(j.stored_bytes),
    threads: Number(j.threads), areas: Number(j.areas), files: Number(j.files), fds: Number(j.fds),
    processes: Number(j.processes ?? 1), zombies: Number(j.zombies ?? 0),
    freezeMs: Number(j.freeze_ms), totalMs: Number(j.total_ms), killed: j.killed === true, warnings: [],
    heldPages: Number(j.held_pages ?? 0), inheritedPages: Number(j.inherited_pages ?? 0),
    parent: typeof j.parent === "string" ? j.parent : null,
    cow: j.cow === true, twinPid: Number(j.twin_pid ?? 0), cowWrittenBytes: Number(j.cow_written_bytes ?? 0),
    tracking: (["started", "tracked", "rebased"].includes(String(j.tracking)) ? j.tracking : "off") as CaptureSummary["tracking"],
    keeperPid: Number(j.keeper_pid ?? 0), writtenPages: Number(j.written_pages ?? 0),
    keeperPids: Array.isArray(j.keeper_pids) ? (j.keeper_pids as unknown[]).map(Number) : [],
    trackedProcesses: Number(j.tracked_processes ?? 0),
    trackingNote: typeof j.tracking_note === "string" ? j.tracking_note : "",
    cpuMs: Number(j.cpu_ms ?? 0),
    phasesMs: phases(j.phases_ms),
  };
}

function phases(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (v && typeof v === "object") for (const [k, ms] of Object.entries(v)) if (typeof ms === "number") out[k] = ms;
  return out;
}

function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

/** The text form of a capture summary. */
export function captureText(s: CaptureSummary): string {
  return (
    `captured pid ${s.pid} into ${s.image}: ${size(s.imageBytes)} ` +
    `(${s.storedPages} pages of ${size(s.memoryBytes)} read, ${s.codec}), ` +
    (s.processes > 1 ? `${s.processes} processes${s.zombies ? ` (+${s.zombies} zombies)` : ""}, ` : "") +
    `${s.threads} threads, ${s.areas} areas, ${s.fds} fds; ` +
    `frozen ${s.freezeMs.toFixed(1)} ms${s.cow ? ` (copy-on-write; ${size(s.cowWrittenBytes)} written meanwhile)` : ""}, total ${s.totalMs.toFixed(1)} ms` +
    (s.killed ? "; target killed" : "") +
    (s.parent !== null ? `; incremental on ${s.parent}: ${s.inheritedPages} of ${s.heldPages} pages inherited` : "") +
    (s.tracking === "tracked" ? `; ${s.writtenPages} pages written since (tracked)` : s.tracking === "started" ? `; dirty-page tracking started (keeper ${s.keeperPid})` : "") +
    (s.trackingNote !== "" && s.tracking !== "started" ? `; ${s.trackingNote}` : "") + "\n"
  );
}

/** Validated options from the command line (UsageError otherwise). */
export function parseCaptureArgs(args: string[]): CaptureOptions & { json: boolean } {
  const { values, positionals } = parseVerbArgs(args, {
    output: { type: "string", short: "o" },
    compress: { type: "string" },
    kill: { type: "boolean" },
    json: { type: "boolean" },
    "no-hash-cache": { type: "boolean" },
    "no-children": { type: "boolean" },
    "buffer-mb": { type: "string" },
    parent: { type: "string" },
    "no-cow": { type: "boolean" },
    track: { type: "boolean" },
  });
  if (positionals.length !== 1) throw new UsageError("capture takes exactly one PID");
  const pidText = positionals[0];
  if (!/^[1-9][0-9]*$/.test(pidText) || Number(pidText) > 0x3fffffff) throw new UsageError(`not a PID: '${pidText}'`);
  const output = values.output;
  if (typeof output !== "string" || output === "") throw new UsageError("missing -o IMAGE");
  const compress = (values.compress ?? "lz4") as string;
  if (!CODECS.includes(compress as CaptureCodec)) throw new UsageError(`unknown codec '${compress}' (none, lz4, lzf, deflate)`);
  const buf = values["buffer-mb"];
  let bufferMb: number | "all" | undefined;
  if (typeof buf === "string") {
    if (buf !== "all" && !/^[1-9][0-9]{0,6}$/.test(buf)) throw new UsageError(`--buffer-mb takes a size in MiB or 'all', not '${buf}'`);
    bufferMb = buf === "all" ? "all" : Number(buf);
  }
  return {
    pid: Number(pidText), output, compress: compress === "gzip" ? "deflate" : (compress as CaptureCodec), bufferMb,
    kill: values.kill === true, noHashCache: values["no-hash-cache"] === true, noChildren: values["no-children"] === true,
    json: values.json === true, noCow: values["no-cow"] === true, track: values.track === true,
    parent: typeof values.parent === "string" && values.parent !== "" ? values.parent : undefined,
  };
}

export const CAPTURE_VERB: Verb = {
  summary: "freeze a running process and write its checkpoint image",
  usage: "PID -o IMAGE [--parent IMAGE] [--compress none|lz4|lzf|deflate] [--kill] [--no-children] [--no-cow] [--track] [--buffer-mb N|all] [--no-hash-cache] [--json]",
  async run(args: string[], ctx: CliContext): Promise<number> {
    const opts = parseCaptureArgs(args);
    const progress = progressPrinter(ctx, "capture");
    let summary: CaptureSummary;
    try {
      summary = await runCapture({ ...opts, onProgress: ctx.stderrIsTty ? (d, t) => progress.update(d, t) : undefined });
    } finally {
      progress.done();
    }
    if (!opts.json) for (const w of summary.warnings) ctx.stderr(`ckimg: ${opts.output}: warning: ${w}\n`);
    ctx.stdout(opts.json ? toJson(summary) : captureText(summary));
    return EXIT_OK;
  },
};
