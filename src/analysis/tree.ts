/**
 * Process trees (format 1.2) for the analysis verbs: the tree as a report and as `pstree -p`
 * text, and the processes of two images paired by PID (for diff).
 */
import { formatTree, type CheckpointImage, type TreeProcess, type TreeShared } from "../format/index.js";

export interface TreeReportProcess {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** the process name (empty for a zombie: it has no records) */
  comm: string;
  zombie: boolean;
  /** zombies: the status wait(2) will report */
  exitStatus: number | null;
  threads: number;
  /** what it shares with its parent: fd table (CLONE_FILES), cwd/root/umask (CLONE_FS), signal handlers */
  shares: TreeShared[];
}

export interface TreeReport {
  rootPid: number;
  /** the process the rest of the report shows */
  shownPid: number;
  processes: TreeReportProcess[];
}

/** The tree of a tree image, or null for a single-process image. */
export function treeReport(img: CheckpointImage): TreeReport | null {
  const tree = img.root.tree;
  if (!tree) return null;
  const comm = (p: TreeProcess) => (p.zombie ? "" : img.root.processImage(p.pid).process.comm);
  return {
    rootPid: tree.rootPid,
    shownPid: img.process.pid,
    processes: tree.processes.map((p) => ({
      pid: p.pid, ppid: p.ppid, pgid: p.pgid, sid: p.sid, comm: comm(p), zombie: p.zombie,
      exitStatus: p.zombie ? p.exitStatus : null, threads: p.threadCount, shares: p.shares ?? [],
    })),
  };
}

/** `tree` section of inspect: a line of counts, then the tree drawn like `pstree -p`. */
export function treeText(r: TreeReport): string {
  const zombies = r.processes.filter((p) => p.zombie).length;
  const byPid = new Map(r.processes.map((p) => [p.pid, p]));
  const tree = {
    rootPid: r.rootPid,
    processes: r.processes.map((p) => ({ ...p, exitStatus: p.exitStatus ?? 0, threadCount: p.threads })),
  };
  const lines = formatTree(tree, (p) => byPid.get(p.pid)?.comm || "?").map((l) => `  ${l}`);
  return [
    `tree     ${r.processes.length - zombies} processes${zombies ? ` and ${zombies} zombie${zombies > 1 ? "s" : ""}` : ""}, root ${r.rootPid}; showing ${r.shownPid} (--pid PID shows another)`,
    ...lines,
  ].join("\n") + "\n";
}

export interface ProcessPairs {
  /** processes in both images, by PID, in the first image's tree order */
  both: { pid: number; a: CheckpointImage; b: CheckpointImage }[];
  onlyInA: number[];
  onlyInB: number[];
}

/** The live processes of two images paired by PID (zombies are not processes with state). */
export function pairProcesses(a: CheckpointImage, b: CheckpointImage): ProcessPairs {
  const pa = a.root.processes, pb = b.root.processes;
  const inB = new Map(pb.map((p) => [p.process.pid, p]));
  const inA = new Set(pa.map((p) => p.process.pid));
  return {
    both: pa.filter((p) => inB.has(p.process.pid)).map((p) => ({ pid: p.process.pid, a: p, b: inB.get(p.process.pid)! })),
    onlyInA: pa.filter((p) => !inB.has(p.process.pid)).map((p) => p.process.pid),
    onlyInB: pb.filter((p) => !inA.has(p.process.pid)).map((p) => p.process.pid),
  };
}
