/**
 * `ckimg restore IMG [--detach] [--force] [--new-pid] [--lazy] [--thp] [--no-verify] [--check]
 * [--strict] [--deleted-dir DIR]`:
 * bring a captured process back to life. The work is done by the native build/ckimg-restore
 * (ptrace-driven, see src/native/restore/restore.h); this verb only runs it.
 *
 * The restored process inherits our stdin/stdout/stderr (what it had on fds 0-2 when those
 * were pipes or sockets cannot be reopened), so ckimg-restore gets them untouched and reports
 * on two extra pipes: fd 3 carries the PID once the process runs, fd 4 the error/warning lines.
 * Without --detach we wait: the exit status is the restored process's (128 + signal when
 * killed). With --detach we print the PID and return while it runs on.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { EXIT_OK, EXIT_TROUBLE, UsageError, parseVerbArgs, type CliContext, type Verb } from "./common.js";

export interface RestoreOptions {
  detach?: boolean;
  force?: boolean;
  newPid?: boolean;
  lazy?: boolean;
  thp?: boolean;
  noVerify?: boolean;
  check?: boolean;
  verbose?: boolean;
  /** refuse when a file an fd had open changed since the capture (else a warning per file) */
  strict?: boolean;
  /** re-create deleted files in this directory and keep them (else where they were, unlinked) */
  deletedDir?: string;
}

/** Path of the native restorer (override with CKIMG_RESTORE_BIN). */
export function restoreBinary(): string {
  return process.env.CKIMG_RESTORE_BIN ?? fileURLToPath(new URL("../../build/ckimg-restore", import.meta.url));
}

/** The restorer's argument vector for an image and options (pure). */
export function restoreArgv(image: string, o: RestoreOptions): string[] {
  const argv = [image];
  if (o.detach) argv.push("--detach");
  if (o.force) argv.push("--force");
  if (o.newPid) argv.push("--new-pid");
  if (o.lazy) argv.push("--lazy");
  if (o.thp) argv.push("--thp");
  if (o.noVerify) argv.push("--no-verify");
  if (o.check) argv.push("--check");
  if (o.verbose) argv.push("-v");
  if (o.strict) argv.push("--strict");
  if (o.deletedDir) argv.push("--deleted-dir", o.deletedDir);
  argv.push("--pid-fd", "3", "--msg-fd", "4");
  return argv;
}

/** Exit status of `ckimg restore` from the restorer's (pure). */
export function restoreExitCode(code: number | null, signal: NodeJS.Signals | null, pidSeen: boolean): number {
  if (code === null) return signal ? EXIT_TROUBLE : EXIT_TROUBLE;
  if (!pidSeen && code !== 0) return EXIT_TROUBLE; // failed before the process ran
  return code;
}

export async function runRestore(image: string, o: RestoreOptions, ctx: CliContext): Promise<number> {
  const bin = restoreBinary();
  if (!existsSync(bin)) throw new Error(`${bin}: not built (run npm run build)`);
  const child = spawn(bin, restoreArgv(image, o), { stdio: ["inherit", o.check ? "pipe" : "inherit", "inherit", "pipe", "pipe"] });
  let pidText = "";
  let msgText = "";
  let outText = "";
  const pidPipe = child.stdio[3] as NodeJS.ReadableStream;
  const msgPipe = child.stdio[4] as NodeJS.ReadableStream;
  pidPipe.setEncoding("utf8");
  msgPipe.setEncoding("utf8");
  pidPipe.on("data", (s: string) => { pidText += s; });
  msgPipe.on("data", (s: string) => {
    msgText += s;
    // warnings as they come; keep a partial line for later
    const nl = msgText.lastIndexOf("\n");
    if (nl >= 0) { ctx.stderr(msgText.slice(0, nl + 1)); msgText = msgText.slice(nl + 1); }
  });
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (s: string) => { outText += s; });
  const ended = Promise.all([
    new Promise<void>((r) => pidPipe.on("close", () => r())),
    new Promise<void>((r) => msgPipe.on("close", () => r())),
  ]);
  let reported = false;
  const reportPid = () => {
    if (reported || !o.detach || !/^\d+\n/.test(pidText)) return;
    reported = true;
    ctx.stdout(pidText.split("\n")[0] + "\n");
  };
  pidPipe.on("data", reportPid);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (c, s) => resolve([c, s]));
  });
  await ended;
  if (msgText) ctx.stderr(msgText.endsWith("\n") ? msgText : msgText + "\n");
  if (outText) ctx.stdout(outText);
  reportPid();
  if (code === null && signal) ctx.stderr(`ckimg: ${image}: the restorer was killed by ${signal}\n`);
  return restoreExitCode(code, signal, /^\d+\n/.test(pidText) || Boolean(o.check && code === 0));
}

export const RESTORE_VERB: Verb = {
  summary: "bring a captured process back to life from an image",
  usage: "IMG [--detach] [--force] [--new-pid] [--lazy] [--thp] [--no-verify] [--check] [--strict] [--deleted-dir DIR] [-v]",
  async run(args: string[], ctx: CliContext): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, {
      detach: { type: "boolean" },
      force: { type: "boolean" },
      "new-pid": { type: "boolean" },
      lazy: { type: "boolean" },
      thp: { type: "boolean" },
      "no-verify": { type: "boolean" },
      check: { type: "boolean" },
      verbose: { type: "boolean", short: "v" },
      strict: { type: "boolean" },
      "deleted-dir": { type: "string" },
    });
    if (positionals.length !== 1) throw new UsageError("restore takes exactly one image");
    const code = await runRestore(positionals[0], {
      detach: values.detach === true,
      force: values.force === true,
      newPid: values["new-pid"] === true,
      lazy: values.lazy === true,
      thp: values.thp === true,
      noVerify: values["no-verify"] === true,
      check: values.check === true,
      verbose: values.verbose === true,
      strict: values.strict === true,
      deletedDir: typeof values["deleted-dir"] === "string" ? values["deleted-dir"] : undefined,
    }, ctx);
    return code === EXIT_OK ? EXIT_OK : code;
  },
};
