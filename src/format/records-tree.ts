/**
 * Format 1.2 process trees (docs/FORMAT.md "Process trees"): the TREE record lists every
 * process of the image, parents before children, with its relations and, for a zombie, its
 * exit status. Each live process's own records carry its pid as `owner_pid` in their record
 * header and index entry. Decoder checks the whole shape (hostile input), encoder writes it.
 */
import { ByteReader, ByteWriter } from "./bytes.js";
import type { ImageErrorWhere } from "./errors.js";

export const TREE_FIXED_SIZE = 16;
export const TREE_ENTRY_SIZE = 32;
/** A tree holds at most this many processes (the kernel's PID_MAX_LIMIT). */
export const TREE_MAX_PROCESSES = 4 * 1024 * 1024;

/** TREE entry flags */
export const TREE_ZOMBIE = 1 << 0;
export const TREE_SHARES_FILES = 1 << 1;
export const TREE_SHARES_FS = 1 << 2;
export const TREE_SHARES_SIGHAND = 1 << 3;

/** What a process shares with its parent (clone flags CLONE_FILES, CLONE_FS, CLONE_SIGHAND). */
export type TreeShared = "files" | "fs" | "sighand";
const SHARED_BITS: [TreeShared, number][] = [["files", TREE_SHARES_FILES], ["fs", TREE_SHARES_FS], ["sighand", TREE_SHARES_SIGHAND]];

export interface TreeProcess {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** a zombie: exited, not yet waited for; it has no records of its own */
  zombie: boolean;
  /** zombie only: the status wait(2) reports (exit code << 8, or the signal number) */
  exitStatus: number;
  /** THREAD records of the process (0 for a zombie) */
  threadCount: number;
  /** what it shares with its parent (fd table, cwd/root/umask, signal handlers); absent: nothing */
  shares?: TreeShared[];
}

export interface TreeRecord {
  rootPid: number;
  /** parents before children; processes[0] is the root */
  processes: TreeProcess[];
}

export function decodeTree(payload: Uint8Array, base: number, where: ImageErrorWhere): TreeRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(TREE_FIXED_SIZE, "TREE");
  const rootPid = r.u32At(4);
  const count = r.u32At(8);
  const entrySize = r.u32At(12);
  if (entrySize < TREE_ENTRY_SIZE || entrySize > 4096) r.fail("BAD_FIELD", `TREE entry_size ${entrySize} outside [${TREE_ENTRY_SIZE}, 4096]`, 12);
  if (count < 1 || count > TREE_MAX_PROCESSES || count * entrySize > payload.length - fixed) {
    r.fail("BAD_FIELD", `TREE count ${count} is 0 or exceeds the payload`, 8);
  }
  const processes: TreeProcess[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < count; i++) {
    const at = fixed + i * entrySize;
    r.pos = at;
    const pid = r.u32(), ppid = r.u32(), pgid = r.u32(), sid = r.u32(), flags = r.u32();
    const exitStatus = r.u32() | 0, threadCount = r.u32();
    if (pid === 0 || pid > 0x3fffffff) r.fail("BAD_FIELD", `TREE entry ${i}: pid ${pid} out of range`, at);
    if (seen.has(pid)) r.fail("BAD_FIELD", `TREE entry ${i}: pid ${pid} listed twice`, at);
    if (i === 0 && pid !== rootPid) r.fail("BAD_FIELD", `TREE entry 0 is pid ${pid}, not the root ${rootPid}`, at);
    if (i > 0 && !seen.has(ppid)) r.fail("BAD_FIELD", `TREE entry ${i}: pid ${pid}'s parent ${ppid} is not listed before it`, at + 4);
    const zombie = (flags & TREE_ZOMBIE) !== 0;
    if (zombie && threadCount !== 0) r.fail("BAD_FIELD", `TREE entry ${i}: zombie ${pid} with ${threadCount} threads`, at + 24);
    if (!zombie && threadCount === 0) r.fail("BAD_FIELD", `TREE entry ${i}: live process ${pid} with no threads`, at + 24);
    if (i === 0 && zombie) r.fail("BAD_FIELD", "TREE root is a zombie", at + 16);
    seen.add(pid);
    const shares = i > 0 && !zombie ? SHARED_BITS.filter(([, bit]) => flags & bit).map(([name]) => name) : [];
    processes.push({ pid, ppid, pgid, sid, zombie, exitStatus: zombie ? exitStatus : 0, threadCount, ...(shares.length ? { shares } : {}) });
  }
  return { rootPid, processes };
}

export function encodeTree(t: TreeRecord): Uint8Array {
  const w = new ByteWriter();
  w.u32(TREE_FIXED_SIZE).u32(t.rootPid).u32(t.processes.length).u32(TREE_ENTRY_SIZE);
  for (const p of t.processes) {
    const shared = p.zombie ? 0 : SHARED_BITS.reduce((f, [name, bit]) => (p.shares?.includes(name) ? f | bit : f), 0);
    w.u32(p.pid).u32(p.ppid).u32(p.pgid).u32(p.sid).u32(p.zombie ? TREE_ZOMBIE : shared)
      .u32(p.zombie ? p.exitStatus : 0).u32(p.zombie ? 0 : p.threadCount).u32(0);
  }
  return w.finish();
}

/** Children of `pid` in tree order. */
export function treeChildren(t: TreeRecord, pid: number): TreeProcess[] {
  return t.processes.filter((p) => p.ppid === pid && p.pid !== t.rootPid);
}

/**
 * The tree drawn like `pstree -p`: `name(pid)` per process, children indented under their
 * parent with ├─ └─ │ guides. `name(pid)` gives the label (zombies get " <defunct>", a process
 * sharing fd table, fs or signal handlers with its parent " [shares files,fs,sighand]").
 */
export function formatTree(t: TreeRecord, name: (p: TreeProcess) => string): string[] {
  const lines: string[] = [];
  const walk = (p: TreeProcess, prefix: string, last: boolean, top: boolean) => {
    const label = `${name(p)}(${p.pid})${p.zombie ? " <defunct>" : ""}${p.shares?.length ? ` [shares ${p.shares.join(",")}]` : ""}`;
    lines.push(top ? label : `${prefix}${last ? "└─" : "├─"}${label}`);
    const kids = treeChildren(t, p.pid);
    const next = top ? "" : prefix + (last ? "  " : "│ ");
    kids.forEach((k, i) => walk(k, next, i === kids.length - 1, false));
  };
  walk(t.processes[0], "", true, true);
  return lines;
}

/** SHARED_PAGES: pages of a process still shared copy-on-write with its parent (stored there). */
export const SHARED_PAGES_FIXED_SIZE = 16;
export const SHARED_RUN_SIZE = 16;

export interface SharedRun {
  start: bigint;
  pages: number;
  areaId: number;
}

export interface SharedPagesRecord {
  parentPid: number;
  /** sorted by start, not overlapping */
  runs: SharedRun[];
}

export function decodeSharedPages(payload: Uint8Array, base: number, where: ImageErrorWhere, pageSize = 4096): SharedPagesRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(SHARED_PAGES_FIXED_SIZE, "SHARED_PAGES");
  const count = r.u32At(4);
  const parentPid = r.u32At(8);
  if (count * SHARED_RUN_SIZE > payload.length - fixed) r.fail("BAD_FIELD", `SHARED_PAGES count ${count} exceeds the payload`, 4);
  r.pos = fixed;
  const runs: SharedRun[] = [];
  let prevEnd = 0n;
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const start = r.u64(), pages = r.u32(), areaId = r.u32();
    if (pages < 1 || start % BigInt(pageSize) !== 0n || start < prevEnd) r.fail("BAD_FIELD", `SHARED_PAGES run ${i} (0x${start.toString(16)}, ${pages} pages) is empty, unaligned or out of order`, at);
    prevEnd = start + BigInt(pages) * BigInt(pageSize);
    runs.push({ start, pages, areaId });
  }
  return { parentPid, runs };
}

export function encodeSharedPages(s: SharedPagesRecord): Uint8Array {
  const w = new ByteWriter();
  w.u32(SHARED_PAGES_FIXED_SIZE).u32(s.runs.length).u32(s.parentPid).u32(0);
  for (const run of s.runs) w.u64(run.start).u32(run.pages).u32(run.areaId);
  return w.finish();
}

/** The run holding `addr`, by binary search. */
export function sharedRunAt(s: SharedPagesRecord, addr: bigint, pageSize = 4096): SharedRun | undefined {
  let lo = 0, hi = s.runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1, r = s.runs[mid];
    if (addr < r.start) hi = mid - 1;
    else if (addr >= r.start + BigInt(r.pages) * BigInt(pageSize)) lo = mid + 1;
    else return r;
  }
  return undefined;
}
