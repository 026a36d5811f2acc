/**
 * The ELF modules loaded in a captured process: which file each group of areas maps, its load
 * bias, and its symbols. Symbols come from the file on disk when it still has the identity the
 * image recorded (MAPPED_FILE size, inode, mtime; optionally SHA-256), else from the image's own
 * memory through PT_DYNAMIC (no section headers needed), else not at all (the module is still
 * known by its areas). The vDSO is parsed from memory when the image stores it.
 *
 * `ModuleMap` is the shared address → (module, symbol) service of src/analysis: backtraces, the
 * GOT audit, the disk comparison and the diff's byte attribution all go through `symbolize`.
 */
import { open, readFile, stat } from "node:fs/promises";
import { release } from "node:os";
import type { AreaRecord, CheckpointImage, MappedFileRecord } from "../format/index.js";
import { MFILE_ELF, PROT_EXEC } from "../format/raw.js";
import { openVerifiedFile } from "../format/file-identity.js";
import {
  ElfError, buildSymbolIndex, parseElf, parseLoadedElf, pltStubs,
  type ElfFile, type ElfSymbol, type LoadedElf, type Segment, type SymbolIndex, type SymbolTable,
} from "../elf/index.js";
import { ET_EXEC, PT_LOAD } from "../elf/raw.js";

export type ModuleKind = "executable" | "interpreter" | "library" | "vdso";
/**
 * Where a module's ELF structures were read from: the file on disk, the image's memory, the
 * running kernel's vDSO (same kernel release and size as the captured one), or nowhere.
 */
export type ModuleSource = "disk" | "memory" | "none" | "kernel";

export interface Module {
  /** Index in ModuleMap.modules (address order). */
  index: number;
  /** DT_SONAME, else the file's base name, else "[vdso]". */
  name: string;
  /** The mapped path (as the image recorded it), "[vdso]" for the vDSO. */
  path: string;
  kind: ModuleKind;
  /** Lowest and one-past-highest address of the module's areas. */
  start: bigint;
  end: bigint;
  /** Load bias: run-time address − ELF virtual address (0 for ET_EXEC at its link address). */
  bias: bigint;
  /** The areas the module spans (file areas, its bss, PROT_NONE gaps), in address order. */
  areas: AreaRecord[];
  file: MappedFileRecord | undefined;
  source: ModuleSource;
  /** Why a better source was not used ("file changed on disk: size …"), in order of attempts. */
  notes: string[];
  /** The ELF file from disk (source "disk"). */
  elf?: ElfFile;
  /** A separate debug file (by build-id) whose .symtab names what the stripped file does not. */
  debug?: ElfFile;
  /** The ELF as read from the image's memory (source "memory"). */
  loaded?: LoadedElf;
  /** e_type (ET_EXEC, ET_DYN), 0 when unknown. */
  elfType: number;
  segments: Segment[];
  soname: string | undefined;
  needed: string[];
  bindNow: boolean;
}

export interface SymbolInfo {
  name: string;
  version?: string;
  /** Run-time address of the symbol's start. */
  address: bigint;
  size: bigint;
  /** addr − address */
  offset: bigint;
  /** "FUNC", "OBJECT", "IFUNC", "NOTYPE", "PLT" … */
  type: string;
  /** "symtab", "dynsym", or "plt" for a synthetic name@plt stub. */
  table: "symtab" | "dynsym" | "plt";
}

export interface Symbolized {
  address: bigint;
  area: AreaRecord | undefined;
  module: Module | undefined;
  /** address − bias: the address in the ELF file's own terms */
  elfAddress: bigint | undefined;
  /** Offset in the mapped file (file areas only). */
  fileOffset: bigint | undefined;
  symbol: SymbolInfo | undefined;
}

export interface LoadModulesOptions {
  /** Prefix for mapped paths on disk (a sysroot); defaults to the image's own fileRoot use: none. */
  fileRoot?: string;
  /** Kept for compatibility: the SHA-256 the image holds is now always compared (FORMAT.md 4.9 rule F1). */
  checkSha256?: boolean;
  /** Never read files from disk: parse every module from the image's memory. */
  memoryOnly?: boolean;
  /**
   * Look for separate debug files of stripped modules, `DIR/.build-id/xx/yyyy.debug` (GDB's
   * layout, what Debian's *-dbg packages install); default true, dirs default ["/usr/lib/debug"].
   */
  debugSymbols?: boolean;
  debugDirs?: string[];
}

/** Parsed ELF files by path + identity, shared by every ModuleMap of this process. */
const ELF_CACHE_LIMIT = 256;
const elfCache = new Map<string, ElfFile>();

function cacheKey(path: string, ino: bigint, size: bigint, mtimeNs: bigint): string {
  return `${path}\0${ino}\0${size}\0${mtimeNs}`;
}

/** Drop every cached ELF (tests, long-running tools that want the memory back). */
export function clearElfCache(): void {
  elfCache.clear();
}

/**
 * The file on disk for a MAPPED_FILE when its identity matches, parsed (cached). Returns the
 * ELF, or a sentence saying why not.
 */
export async function elfFromDisk(file: MappedFileRecord, opts: LoadModulesOptions = {}): Promise<ElfFile | string> {
  // File identity as FORMAT.md 4.9 defines it: the SHA-256 the image holds decides (never size
  // and mtime alone); only an image without one falls back to inode, size and mtime.
  const verified = await openVerifiedFile(file, opts.fileRoot);
  if ("why" in verified) return verified.why;
  const key = cacheKey(verified.path, file.inode, file.size, file.sha256 ? BigInt("0x" + Buffer.from(file.sha256).toString("hex")) : file.mtimeNs);
  try {
    const hit = elfCache.get(key);
    if (hit) {
      elfCache.delete(key);
      elfCache.set(key, hit);
      return hit;
    }
    let bytes: Uint8Array;
    try {
      bytes = await verified.handle.readFile();
    } catch {
      return `${verified.path}: cannot read`;
    }
    let elf: ElfFile;
    try {
      elf = parseElf(bytes, { file: verified.path });
    } catch (err) {
      return err instanceof ElfError ? `${verified.path}: ${err.detail}` : `${verified.path}: not a readable ELF file`;
    }
    if (elfCache.size >= ELF_CACHE_LIMIT) elfCache.delete(elfCache.keys().next().value as string);
    elfCache.set(key, elf);
    return elf;
  } finally {
    await verified.handle.close().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------
// Reading image memory for the synchronous ELF reader

/**
 * A window of the image's memory read ahead of time, so that synchronous readers (the ELF
 * reader's MemoryReader, the unwinder) can use it. Pages the image cannot give (vDSO not
 * stored, mapped file changed on disk) are absent: `read` returns undefined across them.
 */
export class MemoryWindow {
  constructor(
    readonly start: bigint,
    readonly bytes: Uint8Array,
    /** one byte per page: 1 present, 0 absent */
    readonly present: Uint8Array,
    readonly pageSize: number,
  ) {}

  get end(): bigint {
    return this.start + BigInt(this.bytes.length);
  }

  read(addr: bigint, len: number): Uint8Array | undefined {
    if (addr < this.start || len < 0 || addr + BigInt(len) > this.end) return undefined;
    const o = Number(addr - this.start);
    const first = Math.floor(o / this.pageSize);
    const last = Math.floor((o + Math.max(len, 1) - 1) / this.pageSize);
    for (let p = first; p <= last; p++) if (!this.present[p]) return undefined;
    return this.bytes.subarray(o, o + len);
  }

  u64(addr: bigint): bigint | undefined {
    const b = this.read(addr, 8);
    if (!b) return undefined;
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  }
}

/** Read [start, end) of the image's memory (page-aligned outward); absent pages stay zero. */
export async function readWindow(image: CheckpointImage, start: bigint, end: bigint): Promise<MemoryWindow> {
  const ps = BigInt(image.pageSize);
  const lo = start - (start % ps);
  const hi = end % ps === 0n ? end : end + ps - (end % ps);
  const pages = Number((hi - lo) / ps);
  const bytes = new Uint8Array(pages * image.pageSize);
  const present = new Uint8Array(pages);
  let p = 0;
  while (p < pages) {
    const at = lo + BigInt(p) * ps;
    const area = image.areaAt(at);
    if (!area) {
      p++;
      continue;
    }
    // The run of pages of this area inside the window: try it in one read, else page by page.
    const runEnd = area.end < hi ? area.end : hi;
    const n = Number((runEnd - at) / ps);
    try {
      bytes.set(await image.readMemory(at, n * image.pageSize), p * image.pageSize);
      present.fill(1, p, p + n);
    } catch {
      for (let k = 0; k < n; k++) {
        try {
          bytes.set(await image.readMemory(at + BigInt(k) * ps, image.pageSize), (p + k) * image.pageSize);
          present[p + k] = 1;
        } catch {
          // absent
        }
      }
    }
    p += n;
  }
  return new MemoryWindow(lo, bytes, present, image.pageSize);
}

// ---------------------------------------------------------------------------------------
// Loading

function pageDown(v: bigint, ps: bigint): bigint {
  return v - (((v % ps) + ps) % ps);
}
function pageUp(v: bigint, ps: bigint): bigint {
  const r = ((v % ps) + ps) % ps;
  return r === 0n ? v : v + ps - r;
}

function baseName(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? path : path.slice(i + 1);
}

const AT_BASE = 7n;

/**
 * Find the modules of an image. Never throws for a module that cannot be read: it is kept with
 * source "none" and a note saying why.
 */
export async function loadModules(image: CheckpointImage, opts: LoadModulesOptions = {}): Promise<ModuleMap> {
  const ps = BigInt(image.pageSize);
  const interpBase = image.auxv.find((a) => a.type === AT_BASE)?.value;
  const modules: Module[] = [];
  const areas = image.areas;
  // Read and parse the candidate files concurrently (disk reads dominate), then claim areas in order.
  const pending = new Map<number, Promise<Module | undefined>>();
  areas.forEach((a, k) => {
    if (a.kind === "vdso") pending.set(k, vdsoModule(image, a));
    else if (a.kind === "file" && a.fileOffset === 0n && a.fileId !== undefined) {
      pending.set(k, fileModule(image, a, image.mappedFile(a.fileId), opts, ps));
    }
  });
  const ready = new Map<number, Module | undefined>();
  await Promise.all([...pending].map(async ([k, p]) => ready.set(k, await p)));
  let i = 0;
  while (i < areas.length) {
    const a = areas[i];
    const mod = ready.get(i);
    if (!mod) {
      i++;
      continue;
    }
    if (a.kind === "vdso") {
      modules.push(mod);
      i++;
      continue;
    }
    // Claim the areas inside the module's extent: its file areas, bss, alignment gaps. Without
    // program headers, the run of areas mapping the same file.
    let j = i;
    const claimed: AreaRecord[] = [];
    let fileEnd = a.end;
    while (j < areas.length) {
      const b = areas[j];
      const sameFile = j === i || (b.fileId === a.fileId && b.fileOffset !== 0n);
      if (b.start < mod.end) {
        if (!sameFile && b.kind !== "anon" && !(b.kind === "file" && b.prot === 0)) break;
      } else if (!(mod.source === "none" && sameFile && b.start === claimed[claimed.length - 1]?.end)) break;
      claimed.push(b);
      if (sameFile) fileEnd = b.end;
      j++;
    }
    mod.areas = claimed;
    if (fileEnd > mod.end) mod.end = fileEnd;
    if (j < areas.length && areas[j].start < mod.end) mod.end = areas[j].start;
    if (interpBase !== undefined && mod.start === interpBase) mod.kind = "interpreter";
    else if (image.process.exe && mod.path === image.process.exe) mod.kind = "executable";
    modules.push(mod);
    i = j;
  }
  modules.forEach((m, k) => (m.index = k));
  return new ModuleMap(image, modules);
}

async function fileModule(
  image: CheckpointImage, first: AreaRecord, file: MappedFileRecord | undefined, opts: LoadModulesOptions, ps: bigint,
): Promise<Module | undefined> {
  const notes: string[] = [];
  let elf: ElfFile | undefined;
  if (file && !opts.memoryOnly) {
    const r = await elfFromDisk(file, opts);
    if (typeof r === "string") notes.push(r);
    else elf = r;
  }
  if (elf && elf.header.type !== ET_EXEC && elf.header.type !== 3) return undefined;
  const debug = elf && opts.debugSymbols !== false ? await debugFileFor(elf, opts.debugDirs ?? ["/usr/lib/debug"]) : undefined;
  let loaded: LoadedElf | undefined;
  let segments: Segment[];
  let bias: bigint;
  if (elf) {
    segments = elf.segments;
    bias = biasFor(first, segments, ps);
  } else {
    // Not on disk (or not trusted): the image's own memory, if it holds the headers.
    const head = await image.readMemory(first.start, 4, { unavailable: "zero" }).catch(() => undefined);
    const isElf = head !== undefined && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
    if (!isElf && !(file && file.flags & MFILE_ELF)) return undefined;
    if (isElf) {
      const r = await loadFromMemory(image, first, ps);
      if (typeof r === "string") notes.push(r);
      else loaded = r;
    } else notes.push("ELF headers not stored in the image");
    segments = loaded?.segments ?? [];
    bias = loaded?.bias ?? first.start;
  }
  const loads = segments.filter((s) => s.type === PT_LOAD);
  const start = first.start;
  let end = first.end;
  if (loads.length) {
    let lo = loads[0].vaddr, hi = loads[0].vaddr + loads[0].memsz;
    for (const s of loads) {
      if (s.vaddr < lo) lo = s.vaddr;
      if (s.vaddr + s.memsz > hi) hi = s.vaddr + s.memsz;
    }
    end = pageUp(hi + bias, ps);
    if (end <= first.start) end = first.end;
  }
  const soname = elf?.soname ?? loaded?.soname;
  return {
    index: 0,
    name: soname ?? baseName(first.path),
    path: first.path,
    kind: "library",
    // The module begins at the file's first page; its end is where its PT_LOADs end (clipped to
    // the next module's first area by loadModules, so modules never overlap).
    start,
    end,
    bias,
    areas: [first],
    file,
    source: elf ? "disk" : loaded ? "memory" : "none",
    notes,
    ...(elf ? { elf } : {}),
    ...(debug ? { debug } : {}),
    ...(loaded ? { loaded } : {}),
    elfType: elf?.header.type ?? loaded?.header.type ?? 0,
    segments,
    soname,
    needed: safe(() => elf?.needed ?? loaded?.needed ?? [], []),
    bindNow: safe(() => elf?.bindNow ?? loaded?.bindNow ?? false, false),
  };
}

function safe<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

/** The separate debug file of a stripped ELF, found by build-id and checked to carry the same one. */
async function debugFileFor(elf: ElfFile, dirs: string[]): Promise<ElfFile | undefined> {
  if (safe(() => elf.symtab, undefined)) return undefined;
  const id = safe(() => elf.buildId, undefined);
  if (!id || id.length < 4) return undefined;
  for (const dir of dirs) {
    const path = `${dir}/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`;
    let st;
    try {
      st = await stat(path, { bigint: true });
    } catch {
      continue;
    }
    const key = cacheKey(path, st.ino, st.size, st.mtimeNs);
    let dbg = elfCache.get(key);
    if (!dbg) {
      try {
        dbg = parseElf(await readFile(path), { file: path });
      } catch {
        continue;
      }
      if (elfCache.size >= ELF_CACHE_LIMIT) elfCache.delete(elfCache.keys().next().value as string);
      elfCache.set(key, dbg);
    }
    if (safe(() => dbg!.buildId, undefined) === id && safe(() => dbg!.symtab, undefined)) return dbg;
  }
  return undefined;
}

/** bias = where the file's first page is mapped − the vaddr the PT_LOAD covering offset 0 gives it. */
function biasFor(first: AreaRecord, segments: Segment[], ps: bigint): bigint {
  const load = segments.find((s) => s.type === PT_LOAD && s.offset <= first.fileOffset && first.fileOffset < s.offset + (s.filesz > 0n ? s.filesz : 1n))
    ?? segments.find((s) => s.type === PT_LOAD);
  if (!load) return first.start;
  return BigInt.asUintN(64, first.start - pageDown(load.vaddr - load.offset + first.fileOffset, ps));
}

/** The most of a module's memory read into one window (its headers, tables and code). */
const MAX_MODULE_WINDOW = 1n << 30n;

/**
 * Where the run of areas that can hold the module starting at `first` ends: in address order,
 * areas of its file (segments, PROT_NONE alignment gaps) and an anonymous area right after
 * one of them (.bss); any other area ends the run.
 */
function moduleRunEnd(areas: readonly AreaRecord[], first: AreaRecord): bigint {
  let end = first.end;
  for (const a of areas) {
    if (a.start < end) continue;
    if (a.kind === "file" && a.fileId === first.fileId) end = a.end;
    else if (a.kind === "anon" && a.start === end) end = a.end;
    else break;
  }
  return end;
}

/** Parse an ELF from the image's memory: read the whole run of areas the module may span first. */
async function loadFromMemory(image: CheckpointImage, first: AreaRecord, ps: bigint): Promise<LoadedElf | string> {
  // Headers first (one page), to learn the extent; then the extent.
  const head = await readWindow(image, first.start, first.start + ps);
  let extentEnd = first.end;
  try {
    const probe = parseLoadedElf((v, n) => head.read(v, n), first.start, { dynamicRelocated: undefined });
    for (const s of probe.segments) if (s.type === PT_LOAD && s.vaddr + s.memsz + probe.bias > extentEnd) extentEnd = pageUp(s.vaddr + s.memsz + probe.bias, ps);
  } catch {
    // PT_DYNAMIC beyond the first page: fine, the full window below covers it.
    extentEnd = first.end;
    for (const a of image.areas) if (a.start >= first.start && a.fileId === first.fileId && a.end > extentEnd) extentEnd = a.end;
  }
  // Headers may claim any extent (damaged, hostile, or a huge PT_LOAD): read no further than
  // the areas that can hold this module, and never more than MAX_MODULE_WINDOW.
  const runEnd = moduleRunEnd(image.areas, first);
  if (extentEnd > runEnd) extentEnd = runEnd;
  if (extentEnd - first.start > MAX_MODULE_WINDOW) extentEnd = first.start + MAX_MODULE_WINDOW;
  const win = await readWindow(image, first.start, extentEnd);
  try {
    return parseLoadedElf((v, n) => win.read(v, n), first.start);
  } catch (err) {
    return err instanceof ElfError ? `from memory: ${err.detail}` : "from memory: unreadable";
  }
}

let ownVdso: Promise<ElfFile | undefined> | undefined;

/** This process's vDSO, when the kernel is the one the image was captured on and the size agrees. */
async function runningVdso(kernel: string, size: bigint): Promise<ElfFile | undefined> {
  if (!kernel || kernel !== release()) return undefined;
  ownVdso ??= (async () => {
    try {
      const line = (await readFile("/proc/self/maps", "utf8")).split("\n").find((l) => l.endsWith("[vdso]"));
      if (!line) return undefined;
      const [lo, hi] = line.split(" ")[0].split("-").map((x) => parseInt(x, 16));
      const fh = await open("/proc/self/mem", "r");
      try {
        const buf = new Uint8Array(hi - lo);
        const { bytesRead } = await fh.read(buf, 0, buf.length, lo);
        return bytesRead === buf.length ? parseElf(buf, { file: "[vdso]" }) : undefined;
      } finally {
        await fh.close();
      }
    } catch {
      return undefined;
    }
  })();
  const elf = await ownVdso;
  return elf && BigInt(elf.data.length) === size ? elf : undefined;
}

async function vdsoModule(image: CheckpointImage, area: AreaRecord): Promise<Module> {
  const mod: Module = {
    index: 0, name: "[vdso]", path: area.path || "[vdso]", kind: "vdso", start: area.start, end: area.end,
    bias: area.start, areas: [area], file: undefined, source: "none", notes: [], elfType: 0, segments: [],
    soname: undefined, needed: [], bindNow: false,
  };
  if (image.storedPages(area.id) === 0) {
    const own = await runningVdso(image.process.kernel, area.end - area.start);
    if (own) {
      Object.assign(mod, { elf: own, source: "kernel", segments: own.segments, elfType: own.header.type, soname: own.soname });
      mod.bias = biasFor(area, own.segments, BigInt(image.pageSize));
      mod.notes.push("vDSO not stored in the image: symbols and CFI from the running kernel's (same release)");
    } else mod.notes.push("vDSO pages not stored in the image (kernel-provided)");
    return mod;
  }
  const win = await readWindow(image, area.start, area.end);
  try {
    const loaded = parseLoadedElf((v, n) => win.read(v, n), area.start);
    Object.assign(mod, {
      loaded, source: "memory", bias: loaded.bias, segments: loaded.segments, elfType: loaded.header.type,
      soname: loaded.soname, name: loaded.soname ?? "[vdso]",
    });
  } catch (err) {
    mod.notes.push(err instanceof ElfError ? `vDSO: ${err.detail}` : "vDSO: unreadable");
  }
  return mod;
}

// ---------------------------------------------------------------------------------------
// The map

export class ModuleMap {
  readonly modules: Module[];
  readonly #indexes = new Map<Module, SymbolIndex | null>();
  readonly #byName = new Map<string, Module[]>();

  constructor(
    readonly image: CheckpointImage,
    modules: Module[],
  ) {
    this.modules = modules;
    for (const m of modules) {
      for (const key of new Set([m.name, baseName(m.path), m.path])) {
        const list = this.#byName.get(key) ?? [];
        list.push(m);
        this.#byName.set(key, list);
      }
    }
  }

  get executable(): Module | undefined {
    return this.modules.find((m) => m.kind === "executable");
  }

  get interpreter(): Module | undefined {
    return this.modules.find((m) => m.kind === "interpreter");
  }

  /** The module whose extent holds `addr`, by binary search. */
  moduleAt(addr: bigint): Module | undefined {
    const ms = this.modules;
    let lo = 0, hi = ms.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = ms[mid];
      if (addr < m.start) hi = mid - 1;
      else if (addr >= m.end) lo = mid + 1;
      else return m;
    }
    return undefined;
  }

  /** Modules known by soname, base name or path (DT_NEEDED names resolve through this). */
  byName(name: string): Module[] {
    return this.#byName.get(name) ?? [];
  }

  /** Address → area, module, symbol + offset. */
  symbolize(addr: bigint): Symbolized {
    const area = this.image.areaAt(addr);
    const module = this.moduleAt(addr);
    const out: Symbolized = {
      address: addr, area, module,
      elfAddress: module && module.source !== "none" ? BigInt.asUintN(64, addr - module.bias) : undefined,
      fileOffset: area && area.kind === "file" ? area.fileOffset + (addr - area.start) : undefined,
      symbol: undefined,
    };
    if (module) {
      const index = this.symbolIndex(module);
      const hit = index?.lookup(addr);
      if (hit) out.symbol = symbolInfo(hit.symbol, addr - hit.offset, hit.offset);
    }
    return out;
  }

  /** Every symbol of a module (symtab, dynsym, PLT stubs), values as in the ELF (add `bias`). */
  symbolsOf(module: Module): ElfSymbol[] {
    const out: ElfSymbol[] = [];
    const tables: SymbolTable[] = [];
    if (module.elf) {
      const st = safe(() => module.elf!.symtab ?? module.debug?.symtab, undefined);
      const ds = safe(() => module.elf!.dynsym, undefined);
      if (st) tables.push(st);
      if (ds) tables.push(ds);
    } else if (module.loaded) {
      const ds = safe(() => module.loaded!.dynsym, undefined);
      if (ds) tables.push(ds);
    }
    for (const t of tables) {
      try {
        for (let i = 1; i < t.count; i++) out.push(t.symbol(i));
      } catch {
        // a damaged table: keep what was read
      }
    }
    if (module.elf) {
      for (const stub of safe(() => pltStubs(module.elf!), [])) {
        if (!stub.name) continue;
        out.push({
          table: "dynsym", index: -1, name: `${stub.name}@plt`, value: stub.address, size: 16n, type: "FUNC", bind: "LOCAL",
          visibility: "DEFAULT", info: 0x02, other: 0, shndx: 1, section: stub.section,
        });
      }
    }
    return out;
  }

  /** The module's exported definitions by name (dynsym, defined, not local). */
  exports(module: Module): Map<string, ElfSymbol[]> {
    let m = this.#exports.get(module);
    if (m) return m;
    m = new Map();
    const table = module.elf ? safe(() => module.elf!.dynsym, undefined) : module.loaded ? safe(() => module.loaded!.dynsym, undefined) : undefined;
    if (table) {
      try {
        for (let i = 1; i < table.count; i++) {
          if (table.shndx(i) === 0) continue;
          const bind = table.bind(i);
          if (bind !== 1 && bind !== 2 && bind !== 10) continue;
          const s = table.symbol(i);
          const list = m.get(s.name);
          if (list) list.push(s);
          else m.set(s.name, [s]);
        }
      } catch {
        // keep what was read
      }
    }
    this.#exports.set(module, m);
    return m;
  }
  readonly #exports = new Map<Module, Map<string, ElfSymbol[]>>();

  /** The (lazily built) address index of a module's symbols, at run-time addresses. */
  symbolIndex(module: Module): SymbolIndex | undefined {
    let idx = this.#indexes.get(module);
    if (idx === undefined) {
      const syms = module.source === "none" ? [] : this.symbolsOf(module);
      idx = syms.length ? buildSymbolIndex(syms, module.bias) : null;
      this.#indexes.set(module, idx);
    }
    return idx ?? undefined;
  }

  /** Is `addr` inside an executable area of `module`? */
  inCode(module: Module, addr: bigint): boolean {
    return module.areas.some((a) => (a.prot & PROT_EXEC) !== 0 && addr >= a.start && addr < a.end);
  }
}

function symbolInfo(s: ElfSymbol, address: bigint, offset: bigint): SymbolInfo {
  const plt = s.index === -1;
  const info: SymbolInfo = {
    name: s.name, address, size: s.size, offset, type: plt ? "PLT" : s.type, table: plt ? "plt" : s.table,
  };
  if (s.version && !plt) info.version = s.version;
  // .symtab spells versioned definitions into the name ("__libc_start_main@@GLIBC_2.34").
  const at = s.table === "symtab" ? s.name.indexOf("@", 1) : -1;
  if (at > 0) {
    info.name = s.name.slice(0, at);
    info.version ??= s.name.slice(at).replace(/^@+/, "");
  }
  return info;
}

/** "pause+0x13 (libc.so.6)", "main+0x5 (a.out)", "0x7f… ([vdso])", "0x… (anon)" — one line. */
export function formatSymbolized(s: Symbolized): string {
  const where = s.module ? s.module.name : s.area ? s.area.path || `[${s.area.kind}]` : "unmapped";
  if (s.symbol) {
    const off = s.symbol.offset ? `+0x${s.symbol.offset.toString(16)}` : "";
    return `${s.symbol.name}${off} (${where})`;
  }
  if (s.module && s.elfAddress !== undefined) return `${where}+0x${s.elfAddress.toString(16)}`;
  return `0x${s.address.toString(16)} (${where})`;
}
