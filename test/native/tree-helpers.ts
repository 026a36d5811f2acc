/**
 * What the process-tree tests (tree, relations, pty-tree) share: their C programs, reading
 * relations from /proc, a --kill capture of a tree, and putting away what a test started.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { compileC, runCli, sleep, type Started } from "./helpers.js";

/** Compile dir/name.c. */
export const prog = (dir: string, name: string): string => compileC(readFileSync(join(dir, `${name}.c`), "utf8"), name);

export interface ProcStat {
  state: string;
  ppid: number;
  pgid: number;
  sid: number;
  ttyNr: number;
  tpgid: number;
}

/** /proc/PID/stat: state, ppid, pgrp, session, tty_nr, tpgid. */
export function stat(pid: number): ProcStat {
  const s = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return { state: f[0], ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]), ttyNr: Number(f[4]), tpgid: Number(f[5]) };
}

/** The children of pid (throws when pid is gone). */
export function childrenOf(pid: number): number[] {
  const t = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
  return t ? t.split(" ").map(Number) : [];
}

/** Wait until none of pids is in /proc (reaped), at most 10 s. */
export async function gone(pids: number[]): Promise<void> {
  for (let i = 0; i < 500 && pids.some((p) => existsSync(`/proc/${p}`)); i++) await sleep(20);
  const left = pids.filter((p) => existsSync(`/proc/${p}`));
  if (left.length) throw new Error(`processes ${left.join(", ")} did not go away`);
}

/** Kill what is left of a tree and its reaper s (if any), reap all. */
export async function cleanup(s: Started | undefined, pids: number[]): Promise<void> {
  for (const p of pids) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  if (s) {
    await Promise.race([s.exited, sleep(10_000)]);
    await s.kill();
  }
  await gone(pids);
}

/** `ckimg capture PID -o IMG --kill --json`: the summary. */
export function captureTree(pid: number, img: string): { processes: number; zombies: number; killed: boolean } {
  const r = runCli(["capture", String(pid), "-o", img, "--kill", "--json"]);
  if (r.status !== 0) throw new Error(`capture failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}
