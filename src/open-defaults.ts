/**
 * The process of a CRIU tree that openImage shows when the caller names none: set once per
 * command by the CLI's global `--pid`. A module of its own so the CLI's start-up does not load
 * the readers to set it.
 */
let defaultPid: number | undefined;

export function setDefaultProcess(pid: number | undefined): void {
  defaultPid = pid;
}

export function defaultProcess(): number | undefined {
  return defaultPid;
}
