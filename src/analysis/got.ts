/**
 * GOT/PLT hook audit: for every ELF mapped in the image, every GOT slot that the dynamic linker
 * fills with a symbol's address (JUMP_SLOT, GLOB_DAT) or an IFUNC's choice (IRELATIVE), the
 * address the image holds there and what it points to.
 *
 * A slot is suspicious when its value could not have come from the dynamic linker:
 *  - it points outside every module (anonymous memory, heap, stack …);
 *  - it points into a module outside the lookup scope of the slot's module — the global scope
 *    (the executable, LD_PRELOAD libraries, their DT_NEEDED closures, ld.so) plus the module's
 *    own DT_NEEDED closure (the rule of Volatility's linux_plthook, widened to the scope glibc
 *    really searches);
 *  - it points into a module in scope that does not export the symbol, or not at the symbol's
 *    definition (for an IFUNC definition: not into that module's code).
 * Not suspicious: lazy slots that still hold their unrelocated PLT address plus the load bias;
 * IRELATIVE slots resolved into their own module; undefined weak symbols left at 0.
 */
import { PROT_EXEC } from "../format/raw.js";
import type { CheckpointImage } from "../format/index.js";
import type { ElfSymbol, GotSlot, GotSlotKind, RelocationTable, SymbolTable } from "../elf/index.js";
import { SHT_DYNSYM } from "../elf/raw.js";
import { formatSymbolized, loadModules, readWindow, type LoadModulesOptions, type MemoryWindow, type Module, type ModuleMap } from "./modules.js";

export type SlotStatus =
  /** resolved to the symbol's definition in a library of the lookup scope */
  | "ok"
  /** resolved to an IFUNC variant (IRELATIVE slot, or IFUNC definition) in the right module */
  | "ifunc"
  /** lazy binding: still points back into the module's own PLT */
  | "lazy"
  /** 0: an undefined weak symbol, or not yet relocated */
  | "unresolved"
  /** points into a module in scope whose symbols could not be read */
  | "unverified"
  /** the image does not hold the slot's page */
  | "unreadable"
  | "suspicious";

export interface GotSlotReport {
  /** Name of the module that owns the slot (its soname or file name). */
  module: string;
  modulePath: string;
  /** Run-time address of the slot. */
  slot: bigint;
  kind: GotSlotKind;
  /** "R_X86_64_JUMP_SLOT" … */
  type: string;
  /** Symbol the slot is for ("" for IRELATIVE). */
  symbol: string;
  version: string | undefined;
  /** The address the image holds in the slot (undefined when unreadable). */
  value: bigint | undefined;
  /** Where the value points. */
  target: { module: string | undefined; path: string | undefined; symbol: string | undefined; text: string } | undefined;
  status: SlotStatus;
  /** Why the status (always set for "suspicious"). */
  reason: string | undefined;
}

export interface GotModuleSummary {
  name: string;
  path: string;
  source: Module["source"];
  bindNow: boolean;
  slots: number;
  suspicious: number;
  /** why slots could not be listed (no symbols, …) */
  notes: string[];
}

export interface GotAudit {
  modules: GotModuleSummary[];
  slots: GotSlotReport[];
  suspicious: GotSlotReport[];
  /** Libraries named by LD_PRELOAD in the image's environment (part of the global scope). */
  preload: string[];
  /** The global scope could not be computed (a module's DT_NEEDED unreadable): every module counted in it. */
  scopeWidened: boolean;
}

export interface AuditGotOptions extends LoadModulesOptions {
  /** Include slots of every status in `slots` (default true); false keeps only suspicious ones. */
  allSlots?: boolean;
}

const R_GLOB_DAT = 6;
const R_JUMP_SLOT = 7;
const R_IRELATIVE = 37;
const TYPE_NAMES: Record<string, string> = { jump_slot: "R_X86_64_JUMP_SLOT", glob_dat: "R_X86_64_GLOB_DAT", irelative: "R_X86_64_IRELATIVE" };
const STT_GNU_IFUNC = 10;

interface Slot extends GotSlot {
  /** bound for undefined weak references */
  weak: boolean;
}

/** Slots of a module: from the file's relocation sections, or from PT_DYNAMIC in memory. */
function slotsOf(m: Module): Slot[] {
  const out: Slot[] = [];
  let tables: { name: string; table: RelocationTable | undefined; symbols: SymbolTable | undefined }[];
  // Only the GOT proper: IRELATIVE also fills function pointers in .data.rel.ro, which the
  // program may rewrite (glibc clears some), and those are not GOT slots.
  let inGot: (a: bigint) => boolean = () => true;
  if (m.elf) {
    const elf = m.elf;
    const dynsym = safe(() => elf.dynsym, undefined);
    tables = safe(() => elf.relocationSections(), []).filter((r) => r.table && (r.section === undefined || r.symbols === dynsym || elf.sections[r.section.link]?.type === SHT_DYNSYM || (dynsym === undefined && (r.section.flags & 2n) !== 0n)))
      .map((r) => ({ name: r.name, table: r.table, symbols: r.symbols ?? dynsym }));
    const got = elf.sections.filter((x) => x.name === ".got" || x.name === ".got.plt").map((x) => [x.addr, x.addr + x.size] as const);
    if (got.length) inGot = (a) => got.some(([lo, hi]) => a >= lo && a < hi);
  } else {
    const d = m.loaded?.dynamic;
    if (!d) return out;
    const syms = safe(() => d.symbols, undefined);
    tables = [
      { name: "DT_RELA", table: safe(() => d.rela, undefined), symbols: syms },
      { name: "DT_REL", table: safe(() => d.rel, undefined), symbols: syms },
      { name: "DT_JMPREL", table: safe(() => d.jmprel, undefined), symbols: syms },
    ];
  }
  for (const { name, table: t, symbols: syms } of tables) {
    if (!t) continue;
    for (let i = 0; i < t.count; i++) {
      const r = safe(() => t.get(i), undefined);
      if (!r) continue;
      const kind: GotSlotKind | undefined = r.type === R_JUMP_SLOT ? "jump_slot" : r.type === R_GLOB_DAT ? "glob_dat" : r.type === R_IRELATIVE ? "irelative" : undefined;
      if (!kind || !inGot(r.offset)) continue;
      if (!m.elf && kind === "irelative" && name !== "DT_JMPREL") continue;
      const slot: Slot = {
        address: r.offset, type: r.type, typeName: TYPE_NAMES[kind], kind, symbol: "", symbolIndex: r.symbolIndex,
        addend: r.addend, table: name, weak: weakRef(syms, r.symbolIndex),
      };
      if (syms && r.symbolIndex > 0 && r.symbolIndex < syms.count) {
        slot.symbol = safe(() => syms.name(r.symbolIndex), "");
        const v = safe(() => syms.version(r.symbolIndex), undefined);
        if (v) slot.version = v.name;
      }
      out.push(slot);
    }
  }
  return out;
}

function weakRef(t: SymbolTable | undefined, i: number): boolean {
  if (!t || i <= 0 || i >= t.count) return false;
  return safe(() => t.bind(i) === 2 && t.shndx(i) === 0, false);
}

function safe<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

/** LD_PRELOAD entries of the image's environment (space- or colon-separated). */
export function preloadList(environ: readonly string[]): string[] {
  const e = environ.find((s) => s.startsWith("LD_PRELOAD="));
  if (!e) return [];
  return e.slice("LD_PRELOAD=".length).split(/[\s:]+/).filter(Boolean);
}

/**
 * Modules reachable from `roots` through DT_NEEDED (names resolved by soname, file name or path).
 * A module whose dynamic section could not be read hides its dependencies: then every module
 * is taken as reachable (no false positives for want of a file).
 */
function closure(map: ModuleMap, roots: Module[]): Set<Module> {
  const seen = new Set<Module>();
  const stack = [...roots];
  while (stack.length) {
    const m = stack.pop()!;
    if (seen.has(m)) continue;
    seen.add(m);
    if (m.source === "none" && m.kind !== "vdso") return new Set(map.modules);
    for (const n of m.needed) for (const d of map.byName(n)) if (!seen.has(d)) stack.push(d);
  }
  return seen;
}

/** Audit every GOT slot of every module of the image. */
export async function auditGot(source: CheckpointImage | ModuleMap, opts: AuditGotOptions = {}): Promise<GotAudit> {
  // Debug files only add local names, which the audit does not need.
  const map = "modules" in source ? source : await loadModules(source, { debugSymbols: false, ...opts });
  const image = map.image;
  const preload = preloadList(image.environ);
  const roots: Module[] = [];
  const exe = map.executable;
  if (exe) roots.push(exe);
  for (const p of preload) {
    // By path as written, else (a symlinked or relative path) by file name.
    const hits = map.byName(p);
    const found = hits.length || !p.includes("/") ? hits : map.byName(p.slice(p.lastIndexOf("/") + 1));
    for (const m of found) if (!roots.includes(m)) roots.push(m);
  }
  // Without a known executable (its file changed and its headers are not in the image) the
  // global scope is unknown: take every module.
  const globalScope = exe ? closure(map, roots) : new Set(map.modules);
  const interp = map.interpreter;
  if (interp) globalScope.add(interp);

  const audit: GotAudit = { modules: [], slots: [], suspicious: [], preload, scopeWidened: globalScope.size === map.modules.length && map.modules.some((m) => m.source === "none" && m.kind !== "vdso") };
  // Slots first (no I/O), then every module's GOT pages read concurrently (chunk reads overlap).
  const work: { m: Module; summary: GotModuleSummary; slots: Slot[]; win: Promise<MemoryWindow | undefined> }[] = [];
  for (const m of map.modules) {
    if (m.kind === "vdso") continue;
    const summary: GotModuleSummary = { name: m.name, path: m.path, source: m.source, bindNow: m.bindNow, slots: 0, suspicious: 0, notes: [...m.notes] };
    audit.modules.push(summary);
    if (m.source === "none") {
      summary.notes.push("no ELF structures: slots not listed");
      continue;
    }
    const slots = slotsOf(m);
    summary.slots = slots.length;
    if (!slots.length) continue;
    // One window over the module's GOT (slots sit in .got/.got.plt, a few pages).
    let lo = slots[0].address, hi = slots[0].address;
    for (const s of slots) {
      if (s.address < lo) lo = s.address;
      if (s.address > hi) hi = s.address;
    }
    const win = hi - lo < 64n << 20n ? readWindow(image, lo + m.bias, hi + m.bias + 8n) : Promise.resolve(undefined);
    work.push({ m, summary, slots, win });
  }
  const defs = new Map<string, ElfSymbol[]>();
  const ctx: JudgeContext = {
    find: (t, name, version) => {
      const key = `${t.index}\0${name}\0${version ?? ""}`;
      let d = defs.get(key);
      if (!d) defs.set(key, (d = findExport(t, name, version)));
      return d;
    },
    scope: globalScope,
  };
  for (const { m, summary, slots, win: pending } of work) {
    const win = await pending;
    ctx.scope = new Set(globalScope);
    for (const d of closure(map, [m])) ctx.scope.add(d);
    for (const s of slots) {
      const at = BigInt.asUintN(64, s.address + m.bias);
      let value = win?.u64(at);
      if (value === undefined && !win) value = await image.readMemory(at, 8, { unavailable: "zero" }).then((b) => new DataView(b.buffer).getBigUint64(0, true)).catch(() => undefined);
      const r = await judge(map, m, s, at, value, ctx);
      if (r.status === "suspicious") {
        summary.suspicious++;
        audit.suspicious.push(r);
      }
      if (opts.allSlots !== false || r.status === "suspicious") audit.slots.push(r);
    }
  }
  return audit;
}

interface JudgeContext {
  /** findExport, memoized over the whole audit (hundreds of modules import the same names) */
  find(t: Module, name: string, version: string | undefined): ElfSymbol[];
  /** the lookup scope of the module being audited */
  scope: Set<Module>;
}

async function judge(map: ModuleMap, m: Module, s: Slot, at: bigint, value: bigint | undefined, ctx: JudgeContext): Promise<GotSlotReport> {
  const scope = ctx.scope;
  const report: GotSlotReport = {
    module: m.name, modulePath: m.path, slot: at, kind: s.kind, type: s.typeName, symbol: s.symbol, version: s.version,
    value, target: undefined, status: "ok", reason: undefined,
  };
  if (value === undefined) return finish(report, "unreadable", "the slot's page is not in the image");
  if (value === 0n) {
    if (s.weak) return finish(report, "unresolved", "undefined weak symbol");
    if (s.kind === "irelative") return finish(report, "suspicious", "IRELATIVE slot holds 0");
    return finish(report, "unresolved", "slot holds 0 (not relocated)");
  }
  const t = map.moduleAt(value);
  // Symbolizing every target costs a symbol index per module: name the verified ones directly.
  const describe = (): string => {
    const sym = map.symbolize(value);
    report.target = {
      module: t?.name, path: t?.path ?? sym.area?.path,
      symbol: sym.symbol ? sym.symbol.name + (sym.symbol.offset ? `+0x${sym.symbol.offset.toString(16)}` : "") : undefined,
      text: formatSymbolized(sym),
    };
    return report.target.text;
  };
  const good = (status: SlotStatus) => {
    if (t && status === "ok") report.target = { module: t.name, path: t.path, symbol: s.symbol, text: `${s.symbol} (${t.name})` };
    else if (t && status === "lazy") report.target = { module: t.name, path: t.path, symbol: undefined, text: `lazy PLT entry (${t.name})` };
    else describe();
    return finish(report, status, undefined);
  };
  const bad = (reason: string) => finish(report, "suspicious", reason);
  const what = s.symbol ? `'${s.symbol}'` : "IFUNC";
  if (!t) {
    describe();
    const area = map.image.areaAt(value);
    const where = area ? `${area.kind} memory${area.path ? ` ${area.path}` : ""}${area.prot & PROT_EXEC ? " (executable)" : ""}` : "unmapped memory";
    return bad(`${what} points outside every module, into ${where}`);
  }
  // Lazy binding: the slot still holds what the file holds (the PLT's push) plus the bias.
  if (t === m && (await isLazy(map, m, s, value))) return good("lazy");
  if (s.kind === "irelative" || s.symbolIndex === 0) {
    if (t === m && map.inCode(m, value)) return good("ifunc");
    describe();
    return bad(`${what} slot points into ${t.name}, not into ${m.name}'s own code`);
  }
  // glibc's time/gettimeofday/clock_gettime are IFUNCs whose resolvers return the vDSO's function.
  if (t.kind === "vdso" && ifuncInScope(ctx, s.symbol, s.version)) return good("ifunc");
  if (!scope.has(t)) {
    describe();
    return bad(`${what} resolves into ${t.name}, which is not in ${m.name}'s lookup scope (DT_NEEDED closure, executable, LD_PRELOAD)`);
  }
  if (t.source === "none") return good("unverified");
  const defs = ctx.find(t, s.symbol, s.version);
  if (!defs.length) {
    describe();
    return bad(`${what} points into ${t.name}, which does not export it`);
  }
  for (const d of defs) {
    if ((d.info & 0xf) === STT_GNU_IFUNC) {
      if (map.inCode(t, value)) return good("ifunc");
      continue;
    }
    if (BigInt.asUintN(64, d.value + t.bias + s.addend) === value) return good("ok");
  }
  const text = describe();
  return bad(`${what} points to ${text}, not to its definition in ${t.name} (0x${BigInt.asUintN(64, defs[0].value + t.bias).toString(16)})`);
}

function finish(r: GotSlotReport, status: SlotStatus, reason: string | undefined): GotSlotReport {
  r.status = status;
  r.reason = reason;
  return r;
}

/** The module's exported definitions of `name`: the requested version, and the default one. */
function findExport(m: Module, name: string, version: string | undefined): ElfSymbol[] {
  const table = dynsymOf(m);
  if (!table || !name) return [];
  const out: ElfSymbol[] = [];
  const defined = (d: ElfSymbol | undefined): d is ElfSymbol => d !== undefined && d.shndx !== 0 && d.info >> 4 !== 0;
  const a = version ? safe(() => table.lookup(name, version), undefined) : undefined;
  if (defined(a)) out.push(a);
  const b = safe(() => table.lookup(name), undefined);
  if (defined(b) && b.index !== a?.index) out.push(b);
  return out;
}

function dynsymOf(m: Module): SymbolTable | undefined {
  if (m.elf) return safe(() => m.elf!.dynsym, undefined);
  if (m.loaded) return safe(() => m.loaded!.dynsym, undefined);
  return undefined;
}

function ifuncInScope(ctx: JudgeContext, name: string, version: string | undefined): boolean {
  for (const m of ctx.scope) for (const d of ctx.find(m, name, version)) if ((d.info & 0xf) === STT_GNU_IFUNC) return true;
  return false;
}

/** A lazy slot holds the file's own content (the address of the PLT entry's push) plus the bias. */
async function isLazy(map: ModuleMap, m: Module, s: Slot, value: bigint): Promise<boolean> {
  if (s.kind !== "jump_slot") return false;
  if (m.elf) {
    const b = safe(() => m.elf!.readVaddr(s.address, 8), undefined);
    if (!b) return false;
    const fileValue = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
    return fileValue !== 0n && BigInt.asUintN(64, fileValue + m.bias) === value;
  }
  // From memory only: the target must be a lazy PLT entry, `[endbr64] push $index`.
  if (!map.inCode(m, value)) return false;
  const code = await map.image.readMemory(value, 9, { unavailable: "zero" }).catch(() => undefined);
  if (!code) return false;
  const p = code[0] === 0xf3 && code[1] === 0x0f && code[2] === 0x1e && code[3] === 0xfa ? 4 : 0;
  return code[p] === 0x68;
}
