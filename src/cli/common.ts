/**
 * Shared plumbing for CLI verbs: output context, exit codes, option parsing, error lines.
 * Verbs compute their output in pure functions and write through CliContext so tests can
 * call them without spawning a process.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

type OptionsConfig = NonNullable<ParseArgsConfig["options"]>;
/** What parseVerbArgs returns: option values by name, and the positional arguments. */
export interface ParsedArgs {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
}

export const EXIT_OK = 0;
export const EXIT_FINDING = 1;
export const EXIT_TROUBLE = 2;

export interface CliContext {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Large outputs already encoded (e.g. 37 MB of symbol JSON) skip a string round trip. */
  stdoutBytes?(bytes: Uint8Array): void;
  /** Progress lines are printed only when a person is watching. */
  stderrIsTty: boolean;
}

export interface Verb {
  summary: string;
  usage: string;
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** Bad command-line usage: exit 2 with the verb's usage line. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * Parse a verb's options with node's strict parser; unknown options and missing values
 * become UsageError rather than a stack trace.
 */
export function parseVerbArgs(args: string[], options: OptionsConfig): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: values as ParsedArgs["values"], positionals };
  } catch (err) {
    // node's messages run on ("… To specify a positional argument …"): keep the first sentence.
    throw new UsageError((err as Error).message.split("\n")[0].replace(/\. To specify.*$/, ""));
  }
}

/** The one stderr line for trouble: `ckimg: <file>: <what> at offset <n>`. */
export function formatTrouble(err: unknown, opts: { rule?: boolean } = {}): string {
  if (err instanceof UsageError) return `ckimg: ${err.message}`;
  if (!err || typeof err !== "object") return `ckimg: ${String(err)}`;
  const e = err as { file?: unknown; offset?: unknown; detail?: unknown; message?: unknown; path?: unknown; syscall?: unknown; code?: unknown; rule?: unknown };
  if (typeof e.syscall === "string" && typeof e.path === "string") {
    // Node system errors ("ENOENT: no such file or directory, open 'x'"): keep the reason only.
    const reason = String(e.message ?? "").replace(/^E[A-Z]+: /, "").replace(/, \w+ '.*'$/, "");
    return `ckimg: ${e.path}: ${reason}`;
  }
  // `verify` names the reader rule an image breaks (docs/FORMAT.md "Reader obligations").
  const what = (opts.rule && typeof e.rule === "string" ? `rule ${e.rule}: ` : "") + (typeof e.detail === "string" ? e.detail : String(e.message ?? err));
  const file = typeof e.file === "string" && e.file !== "" ? `${e.file}: ` : "";
  const at = typeof e.offset === "number" || typeof e.offset === "bigint" ? ` at offset ${e.offset}` : "";
  return `ckimg: ${file}${what}${at}`;
}

/** 64-bit values print as "0x…" hex everywhere in JSON and text. */
export function hex(v: bigint | number): string {
  return "0x" + v.toString(16);
}

/** JSON with bigint support (bigints become "0x…" strings unless a replacer decided otherwise). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? hex(v) : v), 2) + "\n";
}

/** Parse "0x…" or decimal into bigint; UsageError otherwise. */
export function parseAddress(text: string): bigint {
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(text)) throw new UsageError(`not an address: '${text}'`);
  return BigInt(text);
}
