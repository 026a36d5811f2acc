/**
 * What `ckimg run` is told: durations, signal names and the action taken on each signal
 * (pure parsing, typed errors; the CLI turns JobUsageError into its usage line).
 */
import { constants } from "node:os";

/** What `ckimg run` does when it receives a signal. */
export type SignalAction =
  | "checkpoint"          // checkpoint, the job runs on
  | "checkpoint-stop"     // checkpoint, then stop the job and ckimg run (SIGCONT goes on)
  | "checkpoint-exit"     // checkpoint, kill the job, exit with the come-back status
  | "checkpoint-requeue"  // as checkpoint-exit, after `scontrol requeue $SLURM_JOB_ID`
  | "forward"             // pass the signal on to the job
  | "ignore";

export const SIGNAL_ACTIONS: readonly SignalAction[] = ["checkpoint", "checkpoint-stop", "checkpoint-exit", "checkpoint-requeue", "forward", "ignore"];

/** HTCondor's standard universe defaults, plus SIGUSR1/SIGTERM for schedulers' warnings. */
export const DEFAULT_ACTIONS: ReadonlyMap<NodeJS.Signals, SignalAction> = new Map<NodeJS.Signals, SignalAction>([
  ["SIGUSR2", "checkpoint"],
  ["SIGTSTP", "checkpoint-stop"],
  ["SIGUSR1", "checkpoint-exit"],
  ["SIGTERM", "checkpoint-exit"],
  ["SIGINT", "forward"],
  ["SIGHUP", "forward"],
  ["SIGQUIT", "forward"],
  ["SIGALRM", "forward"],
  ["SIGWINCH", "forward"],
  ["SIGCONT", "forward"],
  ["SIGXCPU", "forward"],
]);

/** Exit status after a checkpoint that ends the job for now (EX_TEMPFAIL: "try again"). */
export const COME_BACK_STATUS = 75;

/** Signals that can never be caught, held or given an action. */
const UNCATCHABLE = new Set(["SIGKILL", "SIGSTOP"]);

export class JobUsageError extends Error {
  override name = "JobUsageError";
}

/** "USR1", "SIGUSR1", "usr1" or "10" → "SIGUSR1". */
export function parseSignalName(text: string): NodeJS.Signals {
  const sigs = constants.signals as Record<string, number>;
  let name: string | undefined;
  if (/^[0-9]+$/.test(text)) name = Object.keys(sigs).find((k) => sigs[k] === Number(text));
  else name = text.toUpperCase().startsWith("SIG") ? text.toUpperCase() : `SIG${text.toUpperCase()}`;
  if (!name || !(name in sigs)) throw new JobUsageError(`unknown signal '${text}'`);
  if (UNCATCHABLE.has(name)) throw new JobUsageError(`${name} cannot be caught`);
  return name as NodeJS.Signals;
}

export function signalNumber(sig: NodeJS.Signals): number {
  return (constants.signals as Record<string, number>)[sig];
}

/** "USR1=checkpoint-requeue" → ["SIGUSR1", "checkpoint-requeue"]. */
export function parseSignalAction(text: string): [NodeJS.Signals, SignalAction] {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new JobUsageError(`--on wants SIGNAL=ACTION, not '${text}'`);
  const sig = parseSignalName(text.slice(0, eq));
  const action = text.slice(eq + 1) as SignalAction;
  if (!SIGNAL_ACTIONS.includes(action)) throw new JobUsageError(`unknown action '${action}' (${SIGNAL_ACTIONS.join(", ")})`);
  return [sig, action];
}

/** "90", "90s", "1500ms", "5m", "2h", "1h30m" → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$/.exec(text);
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(text)) ms = Number(text) * 1000;
  else if (m && text !== "") ms = Number(m[1] ?? 0) * 3600_000 + Number(m[2] ?? 0) * 60_000 + Number(m[3] ?? 0) * 1000 + Number(m[4] ?? 0);
  else throw new JobUsageError(`not a duration: '${text}' (e.g. 90s, 10m, 1h, 500ms)`);
  if (!(ms >= 100) || ms > 2 ** 31 - 1) throw new JobUsageError(`--every ${text}: between 100ms and 24 days`);
  return Math.round(ms);
}
