/**
 * A CRIU dump as CRIU wrote it: the entries of its image files, decoded with the generated
 * protobuf code and tied together (pstree → core/mm/pagemap/ids/fs/fdinfo → files.img). No
 * mapping into ckimg's model here (that is image.ts); only the checks that make the rest safe:
 * files named by the tree exist, pagemaps stay inside their pages file, ids are consistent.
 */
import { create } from "@bufbuild/protobuf";
import { ImageError } from "../format/errors.js";
import { type core_entry, core_entrySchema, type task_kobj_ids_entry, task_kobj_ids_entrySchema } from "./gen/core_pb.js";
import { type fdinfo_entry, fdinfo_entrySchema, type file_entry, file_entrySchema, fd_types } from "./gen/fdinfo_pb.js";
import { type fs_entry, fs_entrySchema } from "./gen/fs_pb.js";
import { type inventory_entry, inventory_entrySchema } from "./gen/inventory_pb.js";
import { type mm_entry, mm_entrySchema } from "./gen/mm_pb.js";
import { pagemap_entrySchema, pagemap_headSchema } from "./gen/pagemap_pb.js";
import { pipe_entrySchema } from "./gen/pipe_pb.js";
import { pstree_entrySchema } from "./gen/pstree_pb.js";
import { reg_file_entrySchema } from "./gen/regfile_pb.js";
import { inet_sk_entrySchema } from "./gen/sk-inet_pb.js";
import { unix_sk_entrySchema } from "./gen/sk-unix_pb.js";
import { type dump_stats_entry, stats_entrySchema } from "./gen/stats_pb.js";
import { decodeImageFile, decodeSingleEntry, readImageMagic } from "./image-file.js";
import { CRIU_PAGE_SIZE, MAGIC, PE_LAZY, PE_PARENT, PE_PRESENT, TASK_DEAD, TASK_ZOMBIE } from "./raw.js";
import type { DumpSource } from "./source.js";

/** One run of pages of a pagemap, with where its bytes are in the pages file. */
export interface CriuPageRun {
  vaddr: bigint;
  nrPages: number;
  flags: number;
  /** byte offset in pages-<pagesId>.img, undefined when the pages are not in this dump */
  pagesOffset: number | undefined;
  /** why not: "parent" (incremental dump) or "lazy" (post-copy) */
  elsewhere: "parent" | "lazy" | undefined;
}

export interface CriuPagemap {
  pagesId: number;
  pagesFile: string;
  runs: CriuPageRun[];
  /** pages stored in the pages file */
  storedPages: number;
}

export interface CriuProcess {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** thread ids, the main thread first */
  threads: number[];
  /** core-<tid>.img per thread */
  cores: Map<number, core_entry>;
  /** the main thread's core (its `tc` holds the task-wide state) */
  core: core_entry;
  /** absent for zombies and dead tasks */
  mm: mm_entry | undefined;
  pagemap: CriuPagemap | undefined;
  ids: task_kobj_ids_entry | undefined;
  fs: fs_entry | undefined;
  fds: fdinfo_entry[];
  /** task_state of the main core: alive, stopped, zombie, dead */
  state: number;
}

export interface CriuDump {
  source: DumpSource;
  inventory: inventory_entry;
  /** pstree order: the root first */
  processes: CriuProcess[];
  /** files.img (and pre-3.x per-kind files) by id */
  files: Map<number, file_entry>;
  stats: dump_stats_entry | undefined;
  /** every file of the dump (for inspect and verify) */
  images: { name: string; size: number }[];
}

/** Is this a CRIU dump? (an inventory.img whose magic is right) */
export async function looksLikeCriuDump(source: DumpSource): Promise<boolean> {
  if (source.size("inventory.img") === undefined) return false;
  const head = await source.readAt("inventory.img", 0, Math.min(8, source.size("inventory.img")!));
  try {
    return readImageMagic(head, "inventory.img").magic === MAGIC.inventory;
  } catch {
    return false;
  }
}

export async function readCriuDump(source: DumpSource): Promise<CriuDump> {
  const file = (name: string) => source.fileName(name);
  const inventory = decodeSingleEntry(await source.read("inventory.img"), file("inventory.img"), MAGIC.inventory, inventory_entrySchema);
  const tree = decodeImageFile(await source.read("pstree.img"), file("pstree.img"), MAGIC.pstree, pstree_entrySchema);
  if (!tree.length) throw new ImageError("MISSING_RECORD", "the process tree is empty", { file: file("pstree.img") });
  const seen = new Set<number>();
  for (const { message: p, offset } of tree) {
    if (p.pid === 0 || seen.has(p.pid)) throw new ImageError("BAD_FIELD", `process ${p.pid} is zero or listed twice`, { file: file("pstree.img"), offset });
    seen.add(p.pid);
  }
  const files = await readFiles(source);
  const processes: CriuProcess[] = [];
  for (const { message: p } of tree) {
    const threads = p.threads.length ? [...p.threads] : [p.pid];
    if (threads.length > 65536) throw new ImageError("BAD_FIELD", `process ${p.pid} lists ${threads.length} threads`, { file: file("pstree.img") });
    // The main thread is the one whose tid is the pid; keep it first.
    threads.sort((a, b) => (a === p.pid ? -1 : b === p.pid ? 1 : 0));
    const cores = new Map<number, core_entry>();
    for (const tid of threads) cores.set(tid, decodeSingleEntry(await source.read(`core-${tid}.img`), file(`core-${tid}.img`), MAGIC.core, core_entrySchema));
    const core = cores.get(threads[0])!;
    const state = core.tc?.taskState ?? 0;
    const ids = await optional(source, `ids-${p.pid}.img`, (b, f) => decodeSingleEntry(b, f, MAGIC.ids, task_kobj_ids_entrySchema)) ?? core.ids;
    const live = state !== TASK_ZOMBIE && state !== TASK_DEAD;
    const mm = live ? await optional(source, `mm-${p.pid}.img`, (b, f) => decodeSingleEntry(b, f, MAGIC.mm, mm_entrySchema)) : undefined;
    const pagemap = live ? await readPagemap(source, p.pid) : undefined;
    const fs = await optional(source, `fs-${p.pid}.img`, (b, f) => decodeSingleEntry(b, f, MAGIC.fs, fs_entrySchema));
    const fdName = ids && source.size(`fdinfo-${ids.filesId}.img`) !== undefined ? `fdinfo-${ids.filesId}.img` : `fdinfo-${p.pid}.img`;
    const fds = (await optional(source, fdName, (b, f) => decodeImageFile(b, f, MAGIC.fdinfo, fdinfo_entrySchema)))?.map((e) => e.message) ?? [];
    processes.push({ pid: p.pid, ppid: p.ppid, pgid: p.pgid, sid: p.sid, threads, cores, core, mm, pagemap, ids, fs, fds, state });
  }
  const stats = await optional(source, "stats-dump", (b, f) => decodeSingleEntry(b, f, MAGIC.stats, stats_entrySchema).dump);
  // Names and sizes only: the magic of each file is checked where a file is decoded (and by
  // verify), not by opening every file here (inspect would pay an open and a read per file).
  const images = source.names().sort().map((name) => ({ name, size: source.size(name)! }));
  return { source, inventory, processes, files, stats, images };
}

async function optional<T>(source: DumpSource, name: string, decode: (bytes: Uint8Array, file: string) => T): Promise<T | undefined> {
  if (source.size(name) === undefined) return undefined;
  return decode(await source.read(name), source.fileName(name));
}

/**
 * pagemap-<pid>.img: a pagemap_head naming pages-<id>.img, then runs. The pages of the runs
 * present in this dump are back to back in the pages file, in pagemap order
 * (criu/pagemap.c, advance()).
 */
async function readPagemap(source: DumpSource, pid: number): Promise<CriuPagemap | undefined> {
  const name = `pagemap-${pid}.img`;
  if (source.size(name) === undefined) return undefined;
  const f = source.fileName(name);
  const bytes = await source.read(name);
  const [head] = decodeImageFile(bytes, f, MAGIC.pagemap, pagemap_headSchema, { limit: 1 });
  if (!head) throw new ImageError("MISSING_RECORD", "pagemap has no head entry", { file: f });
  const pagesFile = `pages-${head.message.pagesId}.img`;
  const pagesSize = source.size(pagesFile);
  if (pagesSize === undefined) throw new ImageError("MISSING_RECORD", `${pagesFile} named by the pagemap is missing`, { file: f, offset: head.offset });
  // The rest are pagemap entries: same file, a different message.
  const entries = decodeImageFile(bytes, f, MAGIC.pagemap, pagemap_entrySchema, { from: head.end });
  const runs: CriuPageRun[] = [];
  const maxPages = BigInt(Math.floor(pagesSize / CRIU_PAGE_SIZE));
  let pos = 0n, stored = 0;
  let prevEnd = 0n;
  for (const { message: e, offset } of entries) {
    const where = { file: f, offset, recordType: "pagemap_entry" };
    const nr = e.nrPages !== 0n ? e.nrPages : BigInt(e.compatNrPages);
    if (nr === 0n || nr > 1n << 36n) throw new ImageError("BAD_FIELD", `run of ${nr} pages`, where);
    if (e.vaddr % BigInt(CRIU_PAGE_SIZE) !== 0n || e.vaddr + nr * BigInt(CRIU_PAGE_SIZE) > 1n << 64n) {
      throw new ImageError("BAD_FIELD", `run 0x${e.vaddr.toString(16)}+${nr} pages is not a page-aligned user address range`, where);
    }
    if (e.vaddr < prevEnd) throw new ImageError("BAD_FIELD", `run 0x${e.vaddr.toString(16)} overlaps or precedes the previous run`, where);
    prevEnd = e.vaddr + nr * BigInt(CRIU_PAGE_SIZE);
    // Pre-flags images (CRIU < 3.x) only said in_parent; everything else was in the file.
    const flags = e.flags || (e.inParent ? PE_PARENT : PE_PRESENT);
    let pagesOffset: number | undefined;
    if (flags & PE_PRESENT) {
      if (pos + nr > maxPages) {
        throw new ImageError("TRUNCATED", `run 0x${e.vaddr.toString(16)}+${nr} pages points past the end of ${pagesFile} (${pagesSize} bytes)`, where);
      }
      pagesOffset = Number(pos) * CRIU_PAGE_SIZE;
      pos += nr;
      stored += Number(nr);
    }
    runs.push({ vaddr: e.vaddr, nrPages: Number(nr), flags, pagesOffset, elsewhere: flags & PE_PRESENT ? undefined : flags & PE_PARENT ? "parent" : flags & PE_LAZY ? "lazy" : undefined });
  }
  return { pagesId: head.message.pagesId, pagesFile, runs, storedPages: stored };
}

/** files.img (CRIU ≥ 3.x) plus the per-kind files of older dumps, as file_entry by id. */
async function readFiles(source: DumpSource): Promise<Map<number, file_entry>> {
  const files = new Map<number, file_entry>();
  const add = (e: file_entry, f: string, offset: number) => {
    if (files.has(e.id)) throw new ImageError("DUPLICATE_RECORD", `file id ${e.id} appears twice`, { file: f, offset });
    files.set(e.id, e);
  };
  const f = await optional(source, "files.img", (b, n) => decodeImageFile(b, n, MAGIC.files, file_entrySchema));
  for (const e of f ?? []) add(e.message, source.fileName("files.img"), e.offset);
  const legacy = [
    ["reg-files.img", MAGIC.regFiles, reg_file_entrySchema, fd_types.REG, "reg"],
    ["pipes.img", MAGIC.pipes, pipe_entrySchema, fd_types.PIPE, "pipe"],
    ["unixsk.img", MAGIC.unixsk, unix_sk_entrySchema, fd_types.UNIXSK, "usk"],
    ["inetsk.img", MAGIC.inetsk, inet_sk_entrySchema, fd_types.INETSK, "isk"],
  ] as const;
  for (const [name, magic, schema, type, field] of legacy) {
    const list = await optional(source, name, (b, n) => decodeImageFile(b, n, magic, schema as typeof reg_file_entrySchema));
    for (const e of list ?? []) {
      const id = (e.message as { id: number }).id;
      if (files.has(id)) continue;
      add(create(file_entrySchema, { type, id, [field]: e.message } as never), source.fileName(name), e.offset);
    }
  }
  return files;
}
