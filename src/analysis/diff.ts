/**
 * What changed between two images of one process (or of a process and its restored copy), from
 * coarse to fine: identity, command line and environment, threads, the memory map, the memory
 * itself page by page with the changed byte ranges attributed to symbols, and open files.
 *
 * Memory is compared cheaply first: writers put PAGES chunks on a 256-page grid
 * (docs/FORMAT.md 4.8), so two images of one process chunk alike, and a chunk pair with the same
 * span, the same bitmap and the same `raw_crc` holds the same pages. Only those chunk headers are
 * read (≈100 bytes each); the page data of a chunk is read only when its CRC differs or the
 * grids do not line up, and then compared page by page under the format's rules for pages an
 * image does not store (4.7: zero for anonymous memory, the file's bytes for file mappings).
 * `exact: true` compares every stored byte instead of trusting CRC-32.
 *
 * @example
 * ```ts
 * import { openImage } from "ckimg";
 * import { diffImages } from "ckimg/analysis";
 * const [a, b] = await Promise.all([openImage("t0.img"), openImage("t1.img")]);
 * const d = await diffImages(a, b);
 * for (const m of d.memory) console.log(m.area.path, m.pagesDiffering, m.symbols.map((s) => s.name));
 * await Promise.all([a.close(), b.close()]);
 * ```
 */
import {
  ImageError, PAGES, RECORD_HEADER_SIZE, RECORD_MAGIC, RecordType, areaPerms, bitmapIndex, crc32, spanAt,
  X86_64_REG_NAMES, fdStateFields, fdStateOf, type AreaRecord, type ChunkRef, type CheckpointImage, type FdRecord, type FdStateRecord, type MappedFileRecord,
  type ThreadRecord, type X86RegName,
} from "../format/index.js";
import { SHF_ALLOC } from "../elf/raw.js";
import { diffFdState } from "./fd-state.js";
import type { Module, ModuleMap } from "./modules.js";
import { diffState } from "./diff-state.js";

// ---------------------------------------------------------------------------------------
// Types

/** What a symbolizer knows about an address; every field optional. */
export interface AddressInfo {
  /** the mapped object, e.g. "/usr/lib/x86_64-linux-gnu/libc.so.6" */
  module?: string;
  /** the ELF section holding the address, e.g. ".data", ".bss" */
  section?: string;
  /** the nearest symbol at or before the address that contains it */
  symbol?: string;
  /** address − symbol start */
  offset?: bigint;
}

/**
 * Address → symbol, for one image. The module map (src/analysis/modules.ts) provides one;
 * diffImages works without (ranges are then reported by address only).
 */
export type Symbolizer = (address: bigint) => AddressInfo | undefined;

/**
 * A Symbolizer over a module map (src/analysis/modules.ts): module path, symbol + offset, and
 * the ELF section (from the file's section headers when read from disk; segments only otherwise).
 */
/** gABI SHF_TLS (not among src/elf/raw.ts's constants). */
const SHF_TLS = 0x400;

export function moduleSymbolizer(map: ModuleMap): Symbolizer {
  const sections = new Map<Module, { start: bigint; end: bigint; name: string }[]>();
  const sectionsOf = (m: Module) => {
    let list = sections.get(m);
    if (!list) {
      list = [];
      const elf = m.elf;
      if (elf) {
        for (let i = 1; i < elf.numSections; i++) {
          const sec = elf.section(i);
          // TLS sections hold per-thread templates, not these addresses.
          if ((sec.flags & BigInt(SHF_ALLOC)) && !(sec.flags & BigInt(SHF_TLS)) && sec.size > 0n && sec.name) list.push({ start: sec.addr + m.bias, end: sec.addr + sec.size + m.bias, name: sec.name });
        }
      }
      sections.set(m, list);
    }
    return list;
  };
  return (address) => {
    const s = map.symbolize(address);
    if (!s.module) return undefined;
    const info: AddressInfo = { module: s.module.path };
    const sec = sectionsOf(s.module).find((x) => address >= x.start && address < x.end);
    if (sec) info.section = sec.name;
    if (s.symbol) {
      info.symbol = s.symbol.name;
      info.offset = s.symbol.offset;
    }
    return info;
  };
}

export interface DiffOptions {
  /** symbolizer of image A (changed memory is attributed with it: the areas are A's) */
  symbolizeA?: Symbolizer;
  /** symbolizer of image B (B's thread rips); defaults to symbolizeA */
  symbolizeB?: Symbolizer;
  /** compare stored bytes even where chunk CRCs agree (default false) */
  exact?: boolean;
  /** byte ranges kept per area (default 64); counts are always complete */
  maxRanges?: number;
  /** runs of changed bytes closer than this are one range (default 8) */
  mergeGap?: number;
}

export interface FieldChange {
  field: string;
  a: string | number | bigint | boolean | null;
  b: string | number | bigint | boolean | null;
}

export interface ImageSide {
  path: string;
  pid: number;
  comm: string;
}

export interface AreaRef {
  id: number;
  start: bigint;
  end: bigint;
  perms: string;
  kind: string;
  path: string;
}

export interface AreaChange {
  a: AreaRef;
  b: AreaRef;
  /** "resized", "moved-start", "perms", "flags", "path", "offset", "file" (the mapped file's identity) */
  changes: string[];
}

export interface RegisterChange {
  name: X86RegName;
  a: bigint;
  b: bigint;
}

export interface ThreadRef {
  tid: number;
  rip: bigint | null;
  symbol: string | null;
}

export interface ThreadChange {
  tidA: number;
  tidB: number;
  rip: { a: bigint | null; b: bigint | null; symbolA: string | null; symbolB: string | null };
  registers: RegisterChange[];
  /** state letter, flags, signal masks, altstack… */
  fields: FieldChange[];
  xstateChanged: boolean;
}

export interface ChangedRange {
  start: bigint;
  /** one past the last changed byte */
  end: bigint;
  /** "counter_total+0x8", or undefined when nothing names the address */
  symbol?: string;
}

export interface SymbolTouch {
  /** symbol name, or "<module section>" when only that is known */
  name: string;
  module?: string;
  section?: string;
  /** bytes of changed ranges inside it (sampled for ranges over 512 bytes) */
  bytes: number;
  /** lowest changed offset inside it */
  firstOffset: bigint;
}

export interface AreaMemoryDiff {
  area: AreaRef;
  /** B's area when it differs from A's (resized, moved) */
  areaB?: AreaRef;
  /** "libfoo.so .data" when a symbolizer knows; else the area's path or kind */
  label: string;
  pagesDiffering: number;
  /** pages whose content one image cannot supply (a mapped file changed on disk, vdso) */
  pagesUnknown: number;
  bytesDiffering: number;
  ranges: ChangedRange[];
  rangesTruncated: boolean;
  /** symbols with changed bytes, most changed bytes first */
  symbols: SymbolTouch[];
}

export interface FdRef {
  fd: number;
  kind: string;
  path: string;
  pos: bigint;
}

export interface FdChange {
  fd: number;
  path: string;
  changes: FieldChange[];
}

export interface DiffStats {
  chunksA: number;
  chunksB: number;
  /** chunk pairs found equal by raw_crc without reading their pages */
  chunksEqualByCrc: number;
  /** pages found equal by their PAGE_DIGESTS (format 1.2) inside chunk pairs that differ */
  pagesEqualByDigest: number;
  /** chunks whose pages were read */
  chunksRead: number;
  pagesCompared: number;
  seconds: number;
}

export interface ImageDiff {
  a: ImageSide;
  b: ImageSide;
  /** true when nothing below differs */
  same: boolean;
  /** identity, credentials, exe/cwd/root, memory layout fields */
  process: FieldChange[];
  argv: { a: string[]; b: string[] } | null;
  environ: { added: string[]; removed: string[]; changed: { name: string; a: string; b: string }[] };
  signals: FieldChange[];
  threads: { matchedBy: "tid" | "order"; added: ThreadRef[]; removed: ThreadRef[]; changed: ThreadChange[] };
  areas: { added: AreaRef[]; removed: AreaRef[]; changed: AreaChange[] };
  memory: AreaMemoryDiff[];
  files: { opened: FdRef[]; closed: FdRef[]; changed: FdChange[] };
  /** format 1.1 timers, process and thread state, seccomp (diff-state.ts) */
  state: FieldChange[];
  stats: DiffStats;
}

// ---------------------------------------------------------------------------------------
// Entry point

export async function diffImages(a: CheckpointImage, b: CheckpointImage, opts: DiffOptions = {}): Promise<ImageDiff> {
  const started = performance.now();
  if (a.pageSize !== b.pageSize) {
    throw new ImageError("BAD_FIELD", `page sizes differ (${a.pageSize} and ${b.pageSize}): not images of one process`, { file: b.path });
  }
  const symA = opts.symbolizeA;
  const symB = opts.symbolizeB ?? symA;
  const stats: DiffStats = { chunksA: 0, chunksB: 0, chunksEqualByCrc: 0, pagesEqualByDigest: 0, chunksRead: 0, pagesCompared: 0, seconds: 0 };
  for (const l of a.chunksByArea.values()) stats.chunksA += l.length;
  for (const l of b.chunksByArea.values()) stats.chunksB += l.length;

  const areaMatch = matchAreas(a, b);
  const memory: AreaMemoryDiff[] = [];
  // Memory is compared wherever an area of A overlaps an area of B, matched or not: an area
  // split by mprotect or merged back still has its bytes compared.
  for (const [x, y] of overlappingAreas(a.areas, b.areas)) {
    const d = await diffAreaMemory(a, b, x, y, opts, stats);
    if (d.pagesDiffering || d.pagesUnknown) {
      memory.push(attribute(d, symA, opts.maxRanges ?? 64));
    }
  }
  const result: ImageDiff = {
    a: side(a),
    b: side(b),
    same: false,
    process: diffProcess(a, b),
    argv: sameList(a.argv, b.argv) ? null : { a: a.argv, b: b.argv },
    environ: diffEnviron(a.environ, b.environ),
    signals: diffSignals(a, b),
    threads: diffThreads(a, b, symA, symB),
    areas: { added: areaMatch.added.map(areaRef), removed: areaMatch.removed.map(areaRef), changed: areaMatch.changed },
    memory,
    files: diffFds(a, b),
    state: diffState(a, b),
    stats,
  };
  result.same =
    !result.process.length && !result.argv && !result.environ.added.length && !result.environ.removed.length &&
    !result.environ.changed.length && !result.signals.length && !result.threads.added.length &&
    !result.threads.removed.length && !result.threads.changed.length && !result.areas.added.length &&
    !result.areas.removed.length && !result.areas.changed.length && !memory.length && !result.files.opened.length &&
    !result.files.closed.length && !result.files.changed.length && !result.state.length;
  stats.seconds = (performance.now() - started) / 1000;
  return result;
}

function side(img: CheckpointImage): ImageSide {
  return { path: img.path, pid: img.process.pid, comm: img.process.comm };
}

export function areaRef(a: AreaRecord): AreaRef {
  return { id: a.id, start: a.start, end: a.end, perms: areaPerms(a), kind: a.kind, path: a.path };
}

/** "name+0x8" / "name" / undefined. */
export function symbolText(info: AddressInfo | undefined): string | undefined {
  if (!info?.symbol) return undefined;
  return info.offset ? `${info.symbol}+0x${info.offset.toString(16)}` : info.symbol;
}

// ---------------------------------------------------------------------------------------
// Metadata

function diffProcess(a: CheckpointImage, b: CheckpointImage): FieldChange[] {
  const p = a.process, q = b.process;
  const out: FieldChange[] = [];
  const cmp = (field: string, x: string | number | bigint | undefined, y: string | number | bigint | undefined) => {
    if (x !== y) out.push({ field, a: x ?? null, b: y ?? null });
  };
  cmp("pid", p.pid, q.pid);
  cmp("ppid", p.ppid, q.ppid);
  cmp("pgid", p.pgid, q.pgid);
  cmp("sid", p.sid, q.sid);
  cmp("comm", p.comm, q.comm);
  cmp("exe", p.exe, q.exe);
  cmp("cwd", p.cwd, q.cwd);
  cmp("root", p.root, q.root);
  const ids = ["real", "effective", "saved", "fs"];
  ids.forEach((n, i) => cmp(`uid.${n}`, p.uid[i], q.uid[i]));
  ids.forEach((n, i) => cmp(`gid.${n}`, p.gid[i], q.gid[i]));
  cmp("personality", p.personality, q.personality);
  cmp("umask", p.umask, q.umask);
  cmp("startTime", p.startTime, q.startTime);
  cmp("stopped", p.flags & 1, q.flags & 1);
  for (const k of Object.keys(p.mm) as (keyof typeof p.mm)[]) cmp(`mm.${k}`, p.mm[k], q.mm[k]);
  return out;
}

function sameList(x: readonly string[], y: readonly string[]): boolean {
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function diffEnviron(x: readonly string[], y: readonly string[]): ImageDiff["environ"] {
  const parse = (list: readonly string[]) => {
    const m = new Map<string, string>();
    for (const e of list) {
      const eq = e.indexOf("=");
      m.set(eq < 0 ? e : e.slice(0, eq), eq < 0 ? "" : e.slice(eq + 1));
    }
    return m;
  };
  const mx = parse(x), my = parse(y);
  const out: ImageDiff["environ"] = { added: [], removed: [], changed: [] };
  for (const [k, v] of mx) {
    if (!my.has(k)) out.removed.push(`${k}=${v}`);
    else if (my.get(k) !== v) out.changed.push({ name: k, a: v, b: my.get(k)! });
  }
  for (const [k, v] of my) if (!mx.has(k)) out.added.push(`${k}=${v}`);
  return out;
}

function diffSignals(a: CheckpointImage, b: CheckpointImage): FieldChange[] {
  const out: FieldChange[] = [];
  const fmt = (s: { handler: bigint; flags: bigint; mask: bigint } | undefined) =>
    s ? `handler 0x${s.handler.toString(16)} flags 0x${s.flags.toString(16)} mask 0x${s.mask.toString(16)}` : "SIG_DFL";
  const ma = new Map(a.sigactions.actions.map((s) => [s.signo, s]));
  const mb = new Map(b.sigactions.actions.map((s) => [s.signo, s]));
  const signos = [...new Set([...ma.keys(), ...mb.keys()])].sort((x, y) => x - y);
  for (const n of signos) {
    const x = fmt(ma.get(n)), y = fmt(mb.get(n));
    if (x !== y) out.push({ field: `signal ${n}`, a: x, b: y });
  }
  if (a.sigactions.sharedPending !== b.sigactions.sharedPending) {
    out.push({ field: "sharedPending", a: a.sigactions.sharedPending, b: b.sigactions.sharedPending });
  }
  return out;
}

function threadRef(t: ThreadRecord, sym: Symbolizer | undefined): ThreadRef {
  const rip = t.regs?.rip ?? null;
  return { tid: t.tid, rip, symbol: rip !== null ? symbolText(sym?.(rip)) ?? null : null };
}

function diffThreads(a: CheckpointImage, b: CheckpointImage, symA?: Symbolizer, symB?: Symbolizer): ImageDiff["threads"] {
  const byTid = new Map(b.threads.map((t) => [t.tid, t]));
  const common = a.threads.filter((t) => byTid.has(t.tid));
  let pairs: [ThreadRecord, ThreadRecord][];
  let added: ThreadRecord[], removed: ThreadRecord[];
  let matchedBy: "tid" | "order" = "tid";
  if (common.length === 0 && a.threads.length && b.threads.length) {
    // A restored process gets new tids: pair threads in order, main thread first.
    matchedBy = "order";
    const order = (ts: ThreadRecord[]) => [...ts].sort((x, y) => (y.flags & 1) - (x.flags & 1) || x.tid - y.tid);
    const xa = order(a.threads), xb = order(b.threads);
    const n = Math.min(xa.length, xb.length);
    pairs = xa.slice(0, n).map((t, i) => [t, xb[i]]);
    removed = xa.slice(n);
    added = xb.slice(n);
  } else {
    pairs = common.map((t) => [t, byTid.get(t.tid)!]);
    const tidsA = new Set(a.threads.map((t) => t.tid));
    removed = a.threads.filter((t) => !byTid.has(t.tid));
    added = b.threads.filter((t) => !tidsA.has(t.tid));
  }
  const changed: ThreadChange[] = [];
  for (const [x, y] of pairs) {
    const registers: RegisterChange[] = [];
    if (x.regs && y.regs) {
      for (const name of X86_64_REG_NAMES) if (x.regs[name] !== y.regs[name]) registers.push({ name, a: x.regs[name], b: y.regs[name] });
    }
    const fields: FieldChange[] = [];
    const cmp = (field: string, p: string | number | bigint | boolean, q: string | number | bigint | boolean) => {
      if (p !== q) fields.push({ field, a: p, b: q });
    };
    cmp("state", x.state, y.state);
    cmp("flags", x.flags, y.flags);
    cmp("sigmask", x.sigmask, y.sigmask);
    cmp("pending", x.pending, y.pending);
    cmp("altstack.sp", x.altstack.sp, y.altstack.sp);
    cmp("altstack.size", x.altstack.size, y.altstack.size);
    cmp("altstack.flags", x.altstack.flags, y.altstack.flags);
    cmp("robustList", x.robustList, y.robustList);
    cmp("clearChildTid", x.clearChildTid, y.clearChildTid);
    if (!x.regs !== !y.regs) fields.push({ field: "regs", a: x.regs ? "present" : "absent", b: y.regs ? "present" : "absent" });
    const xstateChanged = !bytesEqual(x.xstate, y.xstate);
    if (registers.length || fields.length || xstateChanged) {
      const ra = x.regs?.rip ?? null, rb = y.regs?.rip ?? null;
      changed.push({
        tidA: x.tid, tidB: y.tid, registers, fields, xstateChanged,
        rip: {
          a: ra, b: rb,
          symbolA: ra !== null ? symbolText(symA?.(ra)) ?? null : null,
          symbolB: rb !== null ? symbolText(symB?.(rb)) ?? null : null,
        },
      });
    }
  }
  return { matchedBy, added: added.map((t) => threadRef(t, symB)), removed: removed.map((t) => threadRef(t, symA)), changed };
}

function diffFds(a: CheckpointImage, b: CheckpointImage): ImageDiff["files"] {
  const x = a.fds, y = b.fds, sx = a.fdState, sy = b.fdState;
  const my = new Map(y.map((f) => [f.fd, f]));
  const mx = new Map(x.map((f) => [f.fd, f]));
  const ref = (f: FdRecord): FdRef => ({ fd: f.fd, kind: f.kind, path: f.path, pos: f.pos });
  const out: ImageDiff["files"] = { opened: [], closed: [], changed: [] };
  for (const f of x) {
    const g = my.get(f.fd);
    if (!g) {
      out.closed.push(ref(f));
      continue;
    }
    const changes: FieldChange[] = [];
    const cmp = (field: string, p: string | number | bigint | boolean, q: string | number | bigint | boolean) => {
      if (p !== q) changes.push({ field, a: p, b: q });
    };
    cmp("path", f.path, g.path);
    cmp("kind", f.kind, g.kind);
    cmp("pos", f.pos, g.pos);
    cmp("openFlags", f.openFlags, g.openFlags);
    cmp("cloexec", f.fdFlags & 1, g.fdFlags & 1);
    cmp("inode", f.inode, g.inode);
    cmp("restorable", f.unrestorable === undefined ? "yes" : `no (${f.unrestorable})`, g.unrestorable === undefined ? "yes" : `no (${g.unrestorable})`);
    cmp("peer", f.peerOutside === undefined ? "inside" : "outside", g.peerOutside === undefined ? "inside" : "outside");
    // kind state (format 1.1): queue sizes, addresses, peers, field by field
    const fx = fdStateOf(sx, f).map(fdStateFields), fy = fdStateOf(sy, g).map(fdStateFields);
    for (let i = 0; i < Math.max(fx.length, fy.length); i++) {
      const p = fx[i] ?? {}, q = fy[i] ?? {};
      for (const k of new Set([...Object.keys(p), ...Object.keys(q)])) {
        // object ids (inodes) differ between any two captures; they only pair ends up
        if (k !== "object") cmp(`state.${k}`, p[k] ?? "-", q[k] ?? "-");
      }
    }
    changes.push(...diffFdState(a, b, f.fd)); // terminal state, file content and identity (1.1)
    if (changes.length) out.changed.push({ fd: f.fd, path: f.path, changes });
  }
  for (const g of y) if (!mx.has(g.fd)) out.opened.push(ref(g));
  return out;
}

// ---------------------------------------------------------------------------------------
// Memory map

interface AreaMatch {
  pairs: [AreaRecord, AreaRecord][];
  added: AreaRecord[];
  removed: AreaRecord[];
  changed: AreaChange[];
}

/**
 * Pair areas by start address, then the rest by end address (a stack that grew down keeps its
 * end), requiring the same kind and path; what is left was added or removed.
 */
function matchAreas(a: CheckpointImage, b: CheckpointImage): AreaMatch {
  const pairs: [AreaRecord, AreaRecord][] = [];
  const usedB = new Set<AreaRecord>();
  const byStart = new Map(b.areas.map((y) => [y.start, y]));
  const leftA: AreaRecord[] = [];
  for (const x of a.areas) {
    const y = byStart.get(x.start);
    if (y) {
      pairs.push([x, y]);
      usedB.add(y);
    } else leftA.push(x);
  }
  const byEnd = new Map(b.areas.filter((y) => !usedB.has(y)).map((y) => [y.end, y]));
  const removed: AreaRecord[] = [];
  for (const x of leftA) {
    const y = byEnd.get(x.end);
    if (y && y.kind === x.kind && y.path === x.path && !usedB.has(y)) {
      pairs.push([x, y]);
      usedB.add(y);
    } else removed.push(x);
  }
  pairs.sort((p, q) => (p[0].start < q[0].start ? -1 : 1));
  const added = b.areas.filter((y) => !usedB.has(y));
  const changed: AreaChange[] = [];
  for (const [x, y] of pairs) {
    const changes: string[] = [];
    if (x.start !== y.start) changes.push("moved-start");
    if (x.end - x.start !== y.end - y.start) changes.push("resized");
    if (x.prot !== y.prot) changes.push("perms");
    if (x.flags !== y.flags) changes.push("flags");
    if (x.path !== y.path || x.kind !== y.kind) changes.push("path");
    if (x.fileOffset !== y.fileOffset) changes.push("offset");
    if (!sameFile(a.mappedFile(x.fileId), b.mappedFile(y.fileId))) changes.push("file");
    if (changes.length) changes.sort(), changed.push({ a: areaRef(x), b: areaRef(y), changes });
  }
  return { pairs, added, removed, changed };
}

/** Every (x, y) with x of `xs` and y of `ys` overlapping, by a sweep over both sorted lists. */
function overlappingAreas(xs: readonly AreaRecord[], ys: readonly AreaRecord[]): [AreaRecord, AreaRecord][] {
  const out: [AreaRecord, AreaRecord][] = [];
  let j = 0;
  for (const x of xs) {
    while (j < ys.length && ys[j].end <= x.start) j++;
    for (let k = j; k < ys.length && ys[k].start < x.end; k++) out.push([x, ys[k]]);
  }
  return out;
}

function sameFile(f: MappedFileRecord | undefined, g: MappedFileRecord | undefined): boolean {
  if (!f || !g) return !f && !g;
  if (f.sha256 && g.sha256) return bytesEqual(f.sha256, g.sha256);
  return f.inode === g.inode && f.size === g.size && f.mtimeNs === g.mtimeNs && f.devMajor === g.devMajor && f.devMinor === g.devMinor;
}

// ---------------------------------------------------------------------------------------
// Memory

/** Per-area state of the comparison before attribution. */
interface RawAreaDiff {
  x: AreaRecord;
  y: AreaRecord;
  pagesDiffering: number;
  pagesUnknown: number;
  bytesDiffering: number;
  /** every run of changed bytes (merged by mergeGap), capped at a large bound */
  runs: ChangedRange[];
  runsTruncated: boolean;
}

const MAX_RUNS_KEPT = 100_000;

/** The raw_crc and bitmap of a chunk, from its header (no page data read). */
interface ChunkSummary {
  rawCrc: number;
  bitmap: Uint8Array;
}

/**
 * Read a PAGES record's header, fixed part and bitmap only. The record header's own CRC is
 * checked; the payload CRC is not (that would need the whole payload): `ckimg verify` is the
 * integrity check, diff trusts raw_crc as the writer's statement of the chunk's content.
 */
async function chunkSummary(img: CheckpointImage, ref: ChunkRef): Promise<ChunkSummary> {
  // a chunk of a chain, composed from the image and its parent: its summary comes from the digests
  if (ref.resolved) return { rawCrc: ref.resolved.rawCrc, bitmap: ref.resolved.bitmap };
  const bitmapLen = Math.ceil(ref.spanPages / 8);
  const want = Math.min(RECORD_HEADER_SIZE + ref.payloadLength, RECORD_HEADER_SIZE + 48 + bitmapLen);
  let bytes = await img.readAt(ref.offset, want);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const where = { file: img.path, offset: ref.offset, recordType: "PAGES", sequence: ref.sequence };
  for (let i = 0; i < RECORD_MAGIC.length; i++) {
    if (bytes[i] !== RECORD_MAGIC[i]) throw new ImageError("BAD_RECORD", "no record header here (bad record magic)", where);
  }
  if (v.getUint16(4, true) !== RecordType.PAGES || crc32(bytes.subarray(0, 28)) !== v.getUint32(28, true)) {
    throw new ImageError("BAD_RECORD", "PAGES record header is damaged", where);
  }
  const fixed = v.getUint32(RECORD_HEADER_SIZE, true);
  if (fixed < 48 || fixed + bitmapLen > ref.payloadLength) throw new ImageError("BAD_FIELD", `PAGES fixed_size ${fixed} out of range`, where);
  if (fixed !== 48) bytes = await img.readAt(ref.offset, RECORD_HEADER_SIZE + fixed + bitmapLen);
  const p = RECORD_HEADER_SIZE;
  return {
    rawCrc: new DataView(bytes.buffer, bytes.byteOffset).getUint32(p + PAGES.rawCrc, true),
    bitmap: bytes.subarray(p + fixed, p + fixed + bitmapLen),
  };
}

/** Stored pages of one area, looked up by address; decodes each chunk once while walking forward. */
class StoredPages {
  private readonly chunks: ChunkRef[];
  /**
   * An incremental image's own PAGES (the pages that changed since its parent): a page found
   * there is read from this file alone, without composing its span from the parent chain.
   */
  private readonly own: ChunkRef[];
  private current: DecodedSpan | undefined;
  private currentOwn: DecodedSpan | undefined;

  constructor(
    private readonly img: CheckpointImage,
    area: AreaRecord,
    private readonly stats: DiffStats,
  ) {
    this.chunks = img.chunksByArea.get(area.id) ?? [];
    this.own = img.parent ? img.ownChunksByArea.get(area.id) ?? [] : [];
  }

  /** Chunks overlapping [lo, hi). */
  overlapping(lo: bigint, hi: bigint): ChunkRef[] {
    const ps = BigInt(this.img.pageSize);
    return this.chunks.filter((c) => c.firstPage < hi && c.firstPage + BigInt(c.spanPages) * ps > lo);
  }

  async page(addr: bigint): Promise<Uint8Array | undefined> {
    if (this.own.length) {
      this.currentOwn = await this.decodedAt(this.own, this.currentOwn, addr);
      const page = this.currentOwn && this.pageIn(this.currentOwn, addr);
      if (page) return page;
    }
    this.current = await this.decodedAt(this.chunks, this.current, addr);
    return this.current && this.pageIn(this.current, addr);
  }

  private pageIn(span: DecodedSpan, addr: bigint): Uint8Array | undefined {
    const k = span.index[Number((addr - span.ref.firstPage) / BigInt(this.img.pageSize))];
    const n = this.img.pageSize;
    return k < 0 ? undefined : span.raw.subarray(k * n, (k + 1) * n);
  }

  /** The decoded chunk of `list` holding addr: `cur` when it does, else read (undefined: none). */
  private async decodedAt(list: ChunkRef[], cur: DecodedSpan | undefined, addr: bigint): Promise<DecodedSpan | undefined> {
    const ps = BigInt(this.img.pageSize);
    if (cur && addr >= cur.ref.firstPage && addr < cur.ref.firstPage + BigInt(cur.ref.spanPages) * ps) return cur;
    const ref = spanAt(list, addr, this.img.pageSize)?.span;
    if (!ref) return undefined;
    const { header, raw } = await this.img.readChunk(ref);
    this.stats.chunksRead++;
    const index = new Int32Array(header.spanPages).fill(-1);
    for (let i = 0, k = 0; i < header.spanPages; i++) if (header.bitmap[i >> 3] & (1 << (i & 7))) index[i] = k++;
    return { ref, raw, index };
  }
}

interface DecodedSpan {
  ref: ChunkRef;
  raw: Uint8Array;
  /** page i of the span → its place in raw, -1 where not stored */
  index: Int32Array;
}

/** Run `fn` over `items` with at most `limit` in flight (bounded parallel small reads). */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

async function diffAreaMemory(a: CheckpointImage, b: CheckpointImage, x: AreaRecord, y: AreaRecord, opts: DiffOptions, stats: DiffStats): Promise<RawAreaDiff> {
  const ps = BigInt(a.pageSize);
  const lo = x.start > y.start ? x.start : y.start;
  const hi = x.end < y.end ? x.end : y.end;
  const d: RawAreaDiff = { x, y, pagesDiffering: 0, pagesUnknown: 0, bytesDiffering: 0, runs: [], runsTruncated: false };
  if (hi <= lo) return d;
  const sa = new StoredPages(a, x, stats);
  const sb = new StoredPages(b, y, stats);
  const ca = sa.overlapping(lo, hi);
  const cb = sb.overlapping(lo, hi);

  // 1. Chunk pairs on the same span: equal raw_crc and bitmap means equal pages.
  const equal: [bigint, bigint][] = [];
  if (!opts.exact && a.chunksHaveCrc && b.chunksHaveCrc) {
    const bByFirst = new Map(cb.map((c) => [c.firstPage, c]));
    const pairs: [ChunkRef, ChunkRef][] = [];
    for (const c of ca) {
      const e = bByFirst.get(c.firstPage);
      const end = c.firstPage + BigInt(c.spanPages) * ps;
      if (e && e.spanPages === c.spanPages && e.storedPages === c.storedPages && c.firstPage >= lo && end <= hi) pairs.push([c, e]);
    }
    const sums = await mapLimit(pairs, 32, async ([c, e]) => Promise.all([chunkSummary(a, c), chunkSummary(b, e)]));
    pairs.forEach(([c], i) => {
      const [p, q] = sums[i];
      if (p.rawCrc === q.rawCrc && bytesEqual(p.bitmap, q.bitmap)) {
        equal.push([c.firstPage, c.firstPage + BigInt(c.spanPages) * ps]);
        stats.chunksEqualByCrc++;
      } else if (a.pageDigests.length && b.pageDigests.length) {
        // 1b. Format 1.2 images carry a 64-bit digest per page (PAGE_DIGESTS): inside a span
        //     that changed, the pages whose digests agree are equal without being read. For a
        //     parent and its incremental child this leaves only the pages the child stores.
        for (let addr = c.firstPage, end = addr + BigInt(c.spanPages) * ps; addr < end; addr += ps) {
          const da = a.digestOf(addr), db = b.digestOf(addr);
          if (da && db && da[0] === db[0] && da[1] === db[1]) {
            equal.push([addr, addr + ps]);
            stats.pagesEqualByDigest++;
          }
        }
      }
    });
  }

  // 2. Ranges left to compare page by page: every chunk span of either side, minus the equal ones.
  //    Pages outside every chunk are unstored on both sides: equal by the format's definition,
  //    unless the mapped file itself changed.
  const spans: [bigint, bigint][] = [];
  for (const c of [...ca, ...cb]) {
    const s = c.firstPage < lo ? lo : c.firstPage;
    const e0 = c.firstPage + BigInt(c.spanPages) * ps;
    spans.push([s, e0 > hi ? hi : e0]);
  }
  const todo = subtract(union(spans), equal);
  const fileChanged = x.kind === "file" && (!sameFile(a.mappedFile(x.fileId), b.mappedFile(y.fileId)) || x.fileOffset - x.start !== y.fileOffset - y.start);
  const ctx: PageCompare = { a, b, x, y, sa, sb, d, mergeGap: BigInt(opts.mergeGap ?? 8), stats };
  if (fileChanged) {
    // The unstored pages come from different files: compare the whole overlap.
    todo.length = 0;
    todo.push([lo, hi]);
  }
  for (const [s, e] of todo) {
    for (let p = s; p < e; p += ps) await comparePage(ctx, p);
  }
  return d;
}

interface PageCompare {
  a: CheckpointImage;
  b: CheckpointImage;
  x: AreaRecord;
  y: AreaRecord;
  sa: StoredPages;
  sb: StoredPages;
  d: RawAreaDiff;
  mergeGap: bigint;
  stats: DiffStats;
}

let zeroPage = new Uint8Array(4096);

/** A page as the format defines it when not stored (4.7); undefined when the image cannot supply it. */
async function unstoredPage(img: CheckpointImage, area: AreaRecord, addr: bigint): Promise<Uint8Array | undefined> {
  const source = img.unstoredSource(area, addr).source;
  if (source === "zero") {
    if (zeroPage.length !== img.pageSize) zeroPage = new Uint8Array(img.pageSize);
    return zeroPage;
  }
  if (source === "unavailable") return undefined;
  try {
    return await img.readMemory(addr, img.pageSize);
  } catch (err) {
    if (err instanceof ImageError && err.code === "UNAVAILABLE") return undefined;
    throw err;
  }
}

async function comparePage(c: PageCompare, addr: bigint): Promise<void> {
  c.stats.pagesCompared++;
  let pa = await c.sa.page(addr);
  let pb = await c.sb.page(addr);
  // Both unstored and zero by definition: equal without reading. Unknown content is never compared.
  if (!pa && !pb && c.a.unstoredSource(c.x, addr).source === "zero" && c.b.unstoredSource(c.y, addr).source === "zero") return;
  pa ??= await unstoredPage(c.a, c.x, addr);
  pb ??= await unstoredPage(c.b, c.y, addr);
  if (!pa || !pb) {
    if (pa !== pb) c.d.pagesUnknown++;
    return;
  }
  if (bytesEqual(pa, pb)) return;
  c.d.pagesDiffering++;
  const runs = c.d.runs;
  const n = pa.length;
  for (let i = 0; i < n; i++) {
    if (pa[i] === pb[i]) continue;
    let j = i + 1;
    while (j < n && pa[j] !== pb[j]) j++;
    c.d.bytesDiffering += j - i;
    const start = addr + BigInt(i), end = addr + BigInt(j);
    const last = runs[runs.length - 1];
    if (last && start - last.end <= c.mergeGap) last.end = end;
    else if (runs.length < MAX_RUNS_KEPT) runs.push({ start, end });
    else c.d.runsTruncated = true;
    i = j;
  }
}

function union(spans: [bigint, bigint][]): [bigint, bigint][] {
  spans.sort((p, q) => (p[0] < q[0] ? -1 : p[0] > q[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const [s, e] of spans) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) {
      if (e > last[1]) last[1] = e;
    } else out.push([s, e]);
  }
  return out;
}

/** `ranges` minus `holes` (both sorted, holes disjoint). */
function subtract(ranges: [bigint, bigint][], holes: [bigint, bigint][]): [bigint, bigint][] {
  holes.sort((p, q) => (p[0] < q[0] ? -1 : p[0] > q[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const [s0, e] of ranges) {
    let s = s0;
    for (const [hs, he] of holes) {
      if (he <= s || hs >= e) continue;
      if (hs > s) out.push([s, hs]);
      s = he > s ? he : s;
      if (s >= e) break;
    }
    if (s < e) out.push([s, e]);
  }
  return out;
}

function bytesEqual(x: Uint8Array, y: Uint8Array): boolean {
  return x.length === y.length && Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
}

// ---------------------------------------------------------------------------------------
// Attribution

/** Probes per changed range at most: ranges up to this many bytes are attributed byte by byte. */
const PROBES_PER_RANGE = 512;

function attribute(d: RawAreaDiff, sym: Symbolizer | undefined, maxRanges: number): AreaMemoryDiff {
  const touches = new Map<string, SymbolTouch>();
  const sections = new Set<string>();
  let module: string | undefined;
  const ranges: ChangedRange[] = [];
  for (const r of d.runs) {
    let first: AddressInfo | undefined;
    if (sym) {
      // Long ranges are sampled: each probe stands for `step` bytes.
      const len = Number(r.end - r.start);
      const step = Math.max(1, Math.ceil(len / PROBES_PER_RANGE));
      for (let k = 0; k < len; k += step) {
        const addr = r.start + BigInt(k);
        const info = sym(addr);
        if (k === 0) first = info;
        if (!info) continue;
        if (info.module) module ??= info.module;
        if (info.section) sections.add(info.section);
        const name = info.symbol ?? `<${baseName(info.module ?? "?")} ${info.section ?? "?"}>`;
        const key = `${info.module ?? ""}\0${name}`;
        const off = info.symbol ? info.offset ?? 0n : addr;
        const bytes = Math.min(step, len - k);
        const t = touches.get(key);
        if (t) {
          t.bytes += bytes;
          if (off < t.firstOffset) t.firstOffset = off;
        } else touches.set(key, { name, module: info.module, section: info.section, bytes, firstOffset: off });
      }
    }
    if (ranges.length < maxRanges) ranges.push({ start: r.start, end: r.end, symbol: symbolText(first) });
  }
  const symbols = [...touches.values()].sort((p, q) => q.bytes - p.bytes || (p.firstOffset < q.firstOffset ? -1 : 1));
  const areaLabel = d.x.path || `[${d.x.kind}]`;
  const label = module && sections.size ? `${baseName(module)} ${[...sections].join(",")}` : baseName(areaLabel);
  const out: AreaMemoryDiff = {
    area: areaRef(d.x),
    label,
    pagesDiffering: d.pagesDiffering,
    pagesUnknown: d.pagesUnknown,
    bytesDiffering: d.bytesDiffering,
    ranges,
    rangesTruncated: d.runsTruncated || d.runs.length > ranges.length,
    symbols,
  };
  if (d.x.start !== d.y.start || d.x.end !== d.y.end) out.areaB = areaRef(d.y);
  return out;
}

function baseName(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? p : p.slice(i + 1);
}
