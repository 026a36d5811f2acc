/**
 * The ckimg command line: parse the verb, dispatch to its handler, map errors to exit codes.
 * Handlers live one file per verb family and are registered in ./verbs.ts.
 */
import { writeSync } from "node:fs";
import { VERBS } from "./verbs.js";
import { CliContext, EXIT_TROUBLE, UsageError, formatTrouble } from "./common.js";
import { setDefaultProcess } from "../open-defaults.js";

const USAGE = `usage: ckimg <verb> [options] ARGS

verbs:
${"{verbs}"}

Every verb that reports takes --json. Exit: 0 ok, 1 a finding, 2 trouble.
IMG may also be a CRIU image directory or a container checkpoint archive (.tar, .tar.gz,
.tar.zst); --pid PID picks a process of its tree (default: the root).
`;

export async function usageText(): Promise<string> {
  const lines = await Promise.all(Object.entries(VERBS).map(async ([name, load]) => `  ${name.padEnd(10)} ${(await load()).summary}`));
  return USAGE.replace("{verbs}", lines.join("\n"));
}

export async function main(argv: string[], ctx: CliContext = defaultContext()): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === "-h" || verb === "--help" || verb === "help") {
    ctx.stdout(await usageText());
    return verb === undefined ? EXIT_TROUBLE : 0;
  }
  if (verb === "--version") {
    ctx.stdout("ckimg 0.1.0\n");
    return 0;
  }
  const load = Object.hasOwn(VERBS, verb) ? VERBS[verb] : undefined;
  if (!load) {
    ctx.stderr(`ckimg: unknown verb '${verb}' (try ckimg --help)\n`);
    return EXIT_TROUBLE;
  }
  const handler = await load();
  const own = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;   // `run -- PROG --help` is PROG's
  if (own.includes("--help") || own.includes("-h")) {
    ctx.stdout(`usage: ckimg ${verb} ${handler.usage}\n\n${handler.summary}\n`);
    return 0;
  }
  try {
    return await handler.run(takePidOption(rest), ctx);
  } catch (err) {
    if (process.env.CKIMG_DEBUG === "1" && err instanceof Error) ctx.stderr(`${err.stack}\n`);
    ctx.stderr(formatTrouble(err) + "\n");
    if (err instanceof UsageError) ctx.stderr(`usage: ckimg ${verb} ${handler.usage}\n`);
    return EXIT_TROUBLE;
  }
}

/**
 * `--pid PID` on any verb: which process of a CRIU dump or container archive to show (default:
 * the tree's root). Taken out here so that every verb has it without parsing it itself.
 */
function takePidOption(args: string[]): string[] {
  setDefaultProcess(undefined);
  const out: string[] = [];
  let pid: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    const v = a === "--pid" ? args[++i] : a.startsWith("--pid=") ? a.slice(6) : undefined;
    if (v === undefined && a !== "--pid") {
      out.push(a);
      continue;
    }
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n <= 0) throw new UsageError(`--pid wants a process id, not '${v ?? ""}'`);
    pid = n;
  }
  setDefaultProcess(pid);
  return out;
}

function defaultContext(): CliContext {
  return {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    stdoutBytes: (b) => writeAllSync(1, b),
    stderrIsTty: Boolean(process.stderr.isTTY),
  };
}

/** Write every byte to a file descriptor, retrying on EAGAIN (stdout may be a non-blocking pipe). */
function writeAllSync(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(fd, bytes, off, bytes.length - off);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EPIPE") return; // the reader went away (`| head`): not an error
      if (code !== "EAGAIN") throw err;
    }
  }
}
