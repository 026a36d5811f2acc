/**
 * `ckimg run --status DIR`: what a run directory holds — the job's state and each checkpoint
 * with its time, size and parent, and whether its file is there and `latest` points at it.
 */
import { stat } from "node:fs/promises";
import { RunDir, type CheckpointEntry, type JobState } from "./run-dir.js";

export interface CheckpointStatus extends CheckpointEntry {
  path: string;
  /** The file is present (with this size on disk). */
  present: boolean;
  latest: boolean;
}

export interface RunStatus {
  dir: string;
  command: string[];
  state: JobState;
  /** The `ckimg run` holding the directory, if one is recorded. */
  runner: { pid: number; host: string } | null;
  jobPid: number | null;
  restarts: number;
  exitCode: number | null;
  updated: string;
  latest: string | null;
  checkpoints: CheckpointStatus[];
  totalBytes: number;
}

export async function runStatus(path: string): Promise<RunStatus> {
  const dir = await RunDir.read(path);
  const m = dir.manifest;
  const latest = await dir.latest();
  const checkpoints = await Promise.all(
    [...m.checkpoints].sort((a, b) => a.seq - b.seq).map(async (c) => {
      const st = await stat(dir.imagePath(c.file)).catch(() => undefined);
      return { ...c, path: dir.imagePath(c.file), present: st !== undefined, latest: c.file === latest };
    }),
  );
  return {
    dir: path, command: m.command, state: m.state, runner: m.runner, jobPid: m.jobPid, restarts: m.restarts,
    exitCode: m.exitCode, updated: m.updated, latest, checkpoints,
    totalBytes: checkpoints.reduce((n, c) => n + (c.present ? c.bytes : 0), 0),
  };
}
