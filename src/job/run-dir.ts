/**
 * A run directory: the checkpoints of one job, its manifest (ckimg-run.json) and the `latest`
 * symlink. Images are written by the capturer (atomically); an image becomes part of the run
 * only once it verified: then `latest` is moved to it (symlink + rename, atomic), the manifest
 * is rewritten (atomically) and only after that are checkpoints beyond --keep removed — never
 * the latest one, nor an image a kept one is incremental on. `ckimg run` keeps its chains of
 * incremental images at most --keep long (a full image starts the next), so whole chains go
 * and nothing is rewritten. Only a newest image whose chain is longer (left by a run with a
 * larger --keep) is flattened (ckimg flatten: same snapshot, same image_id) into a standalone
 * image that must verify before it replaces the link and its parents go; if that fails,
 * nothing is removed.
 */
import { mkdir, readFile, readlink, rename, rm, rmdir, stat, symlink, unlink, readdir } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { writeFileAtomically } from "../format/atomic.js";

export const MANIFEST = "ckimg-run.json";
export const LATEST = "latest";

/** One checkpoint of the run, as the manifest records it. */
export interface CheckpointEntry {
  seq: number;
  /** File name inside the run directory. */
  file: string;
  /** ISO time the image was complete. */
  time: string;
  bytes: number;
  /** File name of the image this one is incremental on, or null (a full image). */
  parent: string | null;
  /** Why it was taken: "periodic", "SIGUSR2", … */
  reason: string;
  captureMs: number;
  frozenMs: number;
  /** Set when the image was incremental and has been flattened into a standalone one (ms taken). */
  flattenedMs?: number;
}

/** Writes the standalone form of an incremental image at `output` and verifies it (or throws). */
export type Flattener = (input: string, output: string) => Promise<{ bytes: number }>;

/** The Flattener of this process (`ckimg run` uses a child at low priority: ./flatten-child.ts). */
export async function flattenInProcess(input: string, output: string): Promise<{ bytes: number }> {
  // (imported here, not at the top: `ckimg run` opens its directory before it starts the job,
  // and the image code is most of what it would load first — see engine.ts)
  const [{ flattenImage }, { verifyImage }] = await Promise.all([import("../format/flatten.js"), import("../format/verify.js")]);
  const r = await flattenImage(input, output);
  const report = await verifyImage(output, { threads: 1 });
  if (!report.ok) throw new Error(`the flattened image did not verify: ${report.problems[0]?.detail ?? "damaged"}`);
  return { bytes: r.bytes };
}

/** What pruning did: files removed, and the link flattened to let them go (if one was). */
export interface PruneResult {
  removed: string[];
  flattened?: { file: string; bytes: number; ms: number };
}

export type JobState = "starting" | "running" | "stopped" | "checkpointed" | "requeued" | "completed" | "failed";

export interface RunManifest {
  version: 1;
  command: string[];
  cwd: string;
  created: string;
  updated: string;
  state: JobState;
  /** ckimg run's own PID and host while it runs (a second run on the same directory is refused). */
  runner: { pid: number; host: string } | null;
  /** The job's PID (its main process) when last seen. */
  jobPid: number | null;
  /** How often the job was brought back from a checkpoint. */
  restarts: number;
  exitCode: number | null;
  checkpoints: CheckpointEntry[];
}

/** The run directory cannot be used for this job (another job's checkpoints, in use, unreadable). */
export class RunDirError extends Error {
  override name = "RunDirError";
  constructor(readonly file: string, readonly detail: string) {
    super(`${file}: ${detail}`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function checkpointFileName(seq: number): string {
  return `ckpt-${String(seq).padStart(6, "0")}.img`;
}

export class RunDir {
  private constructor(readonly path: string, public manifest: RunManifest) {}

  get manifestPath(): string {
    return join(this.path, MANIFEST);
  }

  imagePath(file: string): string {
    return join(this.path, file);
  }

  /** Read a run directory's manifest (RunDirError when it is missing or not ours). */
  static async read(path: string): Promise<RunDir> {
    const file = join(path, MANIFEST);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new RunDirError(path, "not a ckimg run directory (no ckimg-run.json)");
      throw err;
    }
    let m: RunManifest;
    try {
      m = JSON.parse(text) as RunManifest;
    } catch (err) {
      throw new RunDirError(file, `not valid JSON (${(err as Error).message})`);
    }
    if (m?.version !== 1 || !Array.isArray(m.command) || !Array.isArray(m.checkpoints)) throw new RunDirError(file, "not a version 1 ckimg run manifest");
    return new RunDir(path, m);
  }

  /**
   * Open DIR for running `command`: create it (0700) with a fresh manifest, or take over an
   * existing one of the same command that no live `ckimg run` holds.
   */
  static async open(path: string, command: string[], cwd: string): Promise<RunDir> {
    await mkdir(path, { recursive: true, mode: 0o700 });
    let dir: RunDir;
    try {
      dir = await RunDir.read(path);
    } catch (err) {
      if (!(err instanceof RunDirError) || err.file !== path) throw err;
      const now = new Date().toISOString();
      dir = new RunDir(path, {
        version: 1, command, cwd, created: now, updated: now, state: "starting", runner: null,
        jobPid: null, restarts: 0, exitCode: null, checkpoints: [],
      });
    }
    const m = dir.manifest;
    if (JSON.stringify(m.command) !== JSON.stringify(command)) {
      throw new RunDirError(path, `holds checkpoints of another job (${m.command.join(" ")}); use another --dir`);
    }
    if (m.runner && m.runner.pid !== process.pid && m.runner.host === hostname() && isAlive(m.runner.pid)) {
      throw new RunDirError(path, `in use by ckimg run (pid ${m.runner.pid})`);
    }
    m.runner = { pid: process.pid, host: hostname() };
    await dir.save();
    return dir;
  }

  async save(): Promise<void> {
    this.manifest.updated = new Date().toISOString();
    const text = JSON.stringify(this.manifest, null, 2) + "\n";
    await writeFileAtomically(this.manifestPath, (fh) => fh.writeFile(text));
  }

  nextSeq(): number {
    return this.manifest.checkpoints.reduce((n, c) => Math.max(n, c.seq), 0) + 1;
  }

  /** The file `latest` points at, if any. */
  async latest(): Promise<string | null> {
    try {
      return await readlink(join(this.path, LATEST));
    } catch {
      return null;
    }
  }

  /** Checkpoints to restore from, best first: `latest`, then the others newest first. */
  async candidates(): Promise<CheckpointEntry[]> {
    const latest = await this.latest();
    const byAge = [...this.manifest.checkpoints].sort((a, b) => b.seq - a.seq);
    const first = byAge.filter((c) => c.file === latest);
    const exists = await Promise.all(byAge.map((c) => stat(this.imagePath(c.file)).then(() => true, () => false)));
    return [...first, ...byAge.filter((c, i) => c.file !== latest && exists[i])];
  }

  /** A verified image joins the run: latest moves to it (prune() then lets old ones go). */
  async commit(entry: CheckpointEntry): Promise<void> {
    const link = join(this.path, LATEST);
    const temp = join(this.path, `.${LATEST}.${process.pid}.tmp`);
    await unlink(temp).catch(() => {});
    await symlink(entry.file, temp);
    await rename(temp, link);
    this.manifest.checkpoints.push(entry);
    await this.save();
  }

  /** How many images a restore of `file` reads: it and its parents (1 for a full image). */
  chainLength(file: string): number {
    return this.chainOf(file, new Map(this.manifest.checkpoints.map((c) => [c.file, c]))).length;
  }

  private chainOf(file: string, byFile: Map<string, CheckpointEntry>): string[] {
    const chain: string[] = [];
    for (let f: string | null | undefined = file; f && byFile.has(f) && !chain.includes(f); f = byFile.get(f)!.parent) chain.push(f);
    return chain;
  }

  /**
   * Keep at most `keep` images: the newest ones whose chains (each with the parents it needs)
   * fit together, newest first; the rest are removed. `ckimg run` starts a full image when the
   * chain would grow past `keep` (chainLength), so the chains fit and nothing is rewritten.
   * Only when the newest image's own chain is longer than `keep` (an older run with a larger
   * --keep) is it flattened (verified, then renamed over itself) so that its parents can go;
   * should that fail, its chain stays whole and `problem` says why. With `flatten` null nothing
   * is flattened.
   */
  async prune(keep: number, onProblem: (text: string) => void = () => {}, flatten: Flattener | null = flattenInProcess): Promise<PruneResult> {
    keep = Math.max(1, keep);
    const all = [...this.manifest.checkpoints].sort((a, b) => b.seq - a.seq);
    const byFile = new Map(all.map((c) => [c.file, c]));
    const newest = all[0];
    let flattened: PruneResult["flattened"];
    if (newest?.parent && this.chainOf(newest.file, byFile).length > keep && flatten) {
      const path = this.imagePath(newest.file);
      const flat = `${path}.flat`;
      const t0 = performance.now();
      try {
        const r = await flatten(path, flat);
        await rename(flat, path);
        newest.parent = null;
        newest.bytes = r.bytes;
        newest.flattenedMs = Math.round(performance.now() - t0);
        flattened = { file: newest.file, bytes: r.bytes, ms: newest.flattenedMs };
        await this.save();
      } catch (err) {
        await unlink(flat).catch(() => {});
        onProblem(`could not flatten ${newest.file} (its parents are kept): ${(err as Error).message}`);
      }
    }
    const kept = new Set<string>();
    for (const c of all) {
      const needs = this.chainOf(c.file, byFile).filter((f) => !kept.has(f));
      if (kept.size > 0 && kept.size + needs.length > keep) break;
      for (const f of needs) kept.add(f);
    }
    const gone = all.filter((c) => !kept.has(c.file));
    if (gone.length === 0) return { removed: [], flattened };
    this.manifest.checkpoints = this.manifest.checkpoints.filter((c) => kept.has(c.file));
    await this.save();
    for (const c of gone) await unlink(this.imagePath(c.file)).catch(() => {});
    return { removed: gone.map((c) => c.file), flattened };
  }

  /** Drop a checkpoint that turned out damaged (it stays on disk for a post-mortem, renamed). */
  async quarantine(entry: CheckpointEntry): Promise<void> {
    await rename(this.imagePath(entry.file), this.imagePath(`${entry.file}.damaged`)).catch(() => {});
    this.manifest.checkpoints = this.manifest.checkpoints.filter((c) => c.seq !== entry.seq);
    await this.save();
  }

  /** The job completed: remove what the run wrote (and the directory when nothing else is in it). */
  async remove(): Promise<void> {
    const ours = new Set([MANIFEST, LATEST, ...this.manifest.checkpoints.map((c) => c.file)]);
    for (const name of await readdir(this.path)) {
      if (ours.has(name) || /^ckpt-\d+\.img(\.damaged|\.flat)?$/.test(name)) await rm(join(this.path, name), { force: true });
    }
    await rmdir(this.path).catch(() => {});
  }
}
