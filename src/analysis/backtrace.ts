/**
 * Best-effort backtraces of a captured process's threads: CFI from .eh_frame (./ehframe.ts),
 * frame pointers, and a stack scan for return addresses, each frame marked with how it was found.
 */
import type { CheckpointImage, ThreadRecord, X86Regs } from "../format/index.js";
import { PROT_EXEC, THREAD_IN_SYSCALL, THREAD_MAIN } from "../format/raw.js";
import type { ElfFile } from "../elf/index.js";
import { DWARF_RA, DWARF_RBP, DWARF_RSP, EhFrame, evalExpression, type RegRule } from "./ehframe.js";
import { formatSymbolized, loadModules, readWindow, type LoadModulesOptions, type MemoryWindow, type ModuleMap, type Symbolized } from "./modules.js";

export type FrameMethod =
  /** frame 0: the thread's registers */
  | "regs"
  /** .eh_frame CFI of the module on disk */
  | "cfi"
  /** the rbp chain */
  | "fp"
  /** a stack word pointing just after a call instruction (a guess: may be stale) */
  | "scan";

export interface Frame {
  index: number;
  /** rip for frame 0; for the others the return address */
  pc: bigint;
  /** the stack pointer in this frame */
  sp: bigint;
  method: FrameMethod;
  /** this frame is the kernel's signal trampoline (__restore_rt): the caller was interrupted, not calling */
  signal: boolean;
  location: Symbolized;
  /** "pause+0x13 (libc.so.6)" */
  text: string;
}

export interface ThreadBacktrace {
  tid: number;
  main: boolean;
  state: string;
  inSyscall: boolean;
  frames: Frame[];
  /** why the walk ended */
  end: string;
}

export interface BacktraceOptions extends LoadModulesOptions {
  /** only this thread */
  tid?: number;
  /** default 64 */
  maxFrames?: number;
  /** unwinders to try, in this order of preference (default cfi, fp, scan) */
  methods?: readonly ("cfi" | "fp" | "scan")[];
  /** how many stack words the scan looks at for one frame (default 2048) */
  scanWords?: number;
}

const REG_ORDER: readonly [number, keyof X86Regs][] = [
  [0, "rax"], [1, "rdx"], [2, "rcx"], [3, "rbx"], [4, "rsi"], [5, "rdi"], [6, "rbp"], [7, "rsp"],
  [8, "r8"], [9, "r9"], [10, "r10"], [11, "r11"], [12, "r12"], [13, "r13"], [14, "r14"], [15, "r15"], [16, "rip"],
];

const ehCache = new WeakMap<ElfFile, EhFrame | null>();

function ehFrameOf(elf: ElfFile): EhFrame | undefined {
  let e = ehCache.get(elf);
  if (e === undefined) {
    try {
      e = EhFrame.fromElf(elf) ?? null;
    } catch {
      e = null;
    }
    ehCache.set(elf, e);
  }
  return e ?? undefined;
}

/** Backtraces of the image's threads (or one thread). Never throws for a thread that cannot be unwound. */
export async function backtrace(source: CheckpointImage | ModuleMap, opts: BacktraceOptions = {}): Promise<ThreadBacktrace[]> {
  const map = "modules" in source ? source : await loadModules(source, opts);
  const image = map.image;
  const threads = image.threads.filter((t) => opts.tid === undefined || t.tid === opts.tid);
  const out: ThreadBacktrace[] = [];
  for (const t of threads) out.push(await unwindThread(map, t, opts));
  return out;
}

async function unwindThread(map: ModuleMap, t: ThreadRecord, opts: BacktraceOptions): Promise<ThreadBacktrace> {
  const image = map.image;
  const bt: ThreadBacktrace = {
    tid: t.tid, main: (t.flags & THREAD_MAIN) !== 0, state: t.state, inSyscall: (t.flags & THREAD_IN_SYSCALL) !== 0, frames: [], end: "",
  };
  if (!t.regs) {
    bt.end = "no registers in the image";
    return bt;
  }
  const methods = opts.methods ?? ["cfi", "fp", "scan"];
  const maxFrames = opts.maxFrames ?? 64;
  const scanWords = opts.scanWords ?? 2048;
  let regs = new Map<number, bigint>();
  for (const [n, name] of REG_ORDER) regs.set(n, t.regs[name]);
  const push = (pc: bigint, sp: bigint, method: FrameMethod) => {
    const location = map.symbolize(pc);
    bt.frames.push({ index: bt.frames.length, pc, sp, method, signal: false, location, text: formatSymbolized(location) });
  };
  push(t.regs.rip, t.regs.rsp, "regs");

  const stackArea = image.areaAt(t.regs.rsp);
  if (!stackArea) {
    bt.end = `rsp 0x${t.regs.rsp.toString(16)} is not mapped`;
    return bt;
  }
  const winStart = t.regs.rsp - (t.regs.rsp % BigInt(image.pageSize));
  const winEnd = stackArea.end - winStart > MAX_STACK ? winStart + MAX_STACK : stackArea.end;
  const stack = await readWindow(image, winStart, winEnd);
  const load = (a: bigint) => stack.u64(a);
  const code = new CodeReader(image);
  const isCode = (a: bigint) => {
    const area = image.areaAt(a);
    return area !== undefined && (area.prot & PROT_EXEC) !== 0;
  };

  let afterSignal = false;
  let signalFrame = false;
  while (bt.frames.length < maxFrames) {
    signalFrame = false;
    const pc = regs.get(DWARF_RA)!;
    const sp = regs.get(DWARF_RSP)!;
    // Callers' pcs are return addresses: look up the call instruction (pc − 1), which may be the
    // last byte of a function whose call never returns.
    // After a signal frame the pc is the interrupted instruction itself, not a return address.
    const lookup = bt.frames.length === 1 || afterSignal ? pc : pc - 1n;
    afterSignal = false;
    let next: Map<number, bigint> | undefined;
    let method: FrameMethod | undefined;
    let failure = "";
    for (const m of methods) {
      if (m === "cfi") {
        const r = cfiStep(map, regs, lookup, load, (sig) => (signalFrame = sig));
        if (r === "end") {
          bt.end = "outermost frame (CFI marks the return address undefined)";
          return bt;
        }
        if (r && valid(r, sp, isCode)) {
          next = r;
          method = "cfi";
          break;
        }
        if (!failure) failure = r ? "CFI gave an implausible frame" : "no CFI for this pc";
      } else if (m === "fp") {
        const r = fpStep(regs, stack, load);
        if (r && valid(r, sp, isCode)) {
          next = r;
          method = "fp";
          break;
        }
      } else {
        const r = await scanStep(regs, stack, isCode, code, scanWords);
        if (r) {
          next = r;
          method = "scan";
          break;
        }
      }
    }
    if (!next || !method) {
      bt.end = `cannot unwind past frame ${bt.frames.length - 1}${failure ? ` (${failure})` : ""}`;
      return bt;
    }
    const ra = next.get(DWARF_RA)!;
    if (ra === 0n) {
      bt.end = "return address 0 (outermost frame)";
      return bt;
    }
    afterSignal = method === "cfi" && signalFrame;
    if (afterSignal) bt.frames[bt.frames.length - 1].signal = true;
    push(ra, next.get(DWARF_RSP)!, method);
    regs = next;
  }
  bt.end = `stopped at ${maxFrames} frames`;
  return bt;
}

/** Stacks are walked at most this far from rsp. */
const MAX_STACK = 8n << 20n;

function valid(next: Map<number, bigint>, sp: bigint, isCode: (a: bigint) => boolean): boolean {
  const nsp = next.get(DWARF_RSP);
  const ra = next.get(DWARF_RA);
  if (nsp === undefined || ra === undefined) return false;
  if (nsp <= sp) return false; // frames move toward higher addresses
  return ra === 0n || isCode(ra);
}

function cfiStep(
  map: ModuleMap, regs: Map<number, bigint>, pc: bigint, load: (a: bigint) => bigint | undefined, onSignal: (signal: boolean) => void,
): Map<number, bigint> | "end" | undefined {
  const m = map.moduleAt(pc);
  if (!m?.elf) return undefined;
  const eh = ehFrameOf(m.elf);
  const row = eh?.rowAt(BigInt.asUintN(64, pc - m.bias));
  if (!row) return undefined;
  onSignal(row.signalFrame);
  const get = (n: number) => regs.get(n);
  let cfa: bigint | undefined;
  if ("expr" in row.cfa) cfa = evalExpression(row.cfa.expr, undefined, get, load);
  else {
    const base = regs.get(row.cfa.reg);
    cfa = base === undefined ? undefined : BigInt.asUintN(64, base + row.cfa.offset);
  }
  if (cfa === undefined) return undefined;
  const raRule = row.regs.get(row.raReg);
  if (!raRule || raRule.kind === "undefined") return "end";
  const next = new Map(regs);
  const value = (rule: RegRule): bigint | undefined | null => {
    switch (rule.kind) {
      case "undefined": return null;
      case "same": return undefined;
      case "offset": return load(BigInt.asUintN(64, cfa! + rule.offset));
      case "val_offset": return BigInt.asUintN(64, cfa! + rule.offset);
      case "register": return regs.get(rule.reg);
      case "expression": {
        const a = evalExpression(rule.expr, cfa, get, load);
        return a === undefined ? undefined : load(a);
      }
      case "val_expression": return evalExpression(rule.expr, cfa, get, load);
    }
  };
  for (const [reg, rule] of row.regs) {
    if (reg === row.raReg) continue;
    const v = value(rule);
    if (v === null) next.delete(reg);
    else if (v !== undefined) next.set(reg, v);
  }
  const ra = value(raRule);
  if (ra === undefined || ra === null) return undefined;
  next.set(DWARF_RA, ra);
  next.set(DWARF_RSP, cfa);
  return next;
}

function fpStep(regs: Map<number, bigint>, stack: MemoryWindow, load: (a: bigint) => bigint | undefined): Map<number, bigint> | undefined {
  const rbp = regs.get(DWARF_RBP);
  const sp = regs.get(DWARF_RSP)!;
  if (rbp === undefined || rbp < sp || rbp < stack.start || rbp + 16n > stack.end || rbp % 8n !== 0n) return undefined;
  const saved = load(rbp);
  const ra = load(rbp + 8n);
  if (saved === undefined || ra === undefined) return undefined;
  const next = new Map(regs);
  next.set(DWARF_RBP, saved);
  next.set(DWARF_RSP, rbp + 16n);
  next.set(DWARF_RA, ra);
  return next;
}

async function scanStep(
  regs: Map<number, bigint>, stack: MemoryWindow, isCode: (a: bigint) => boolean, code: CodeReader, words: number,
): Promise<Map<number, bigint> | undefined> {
  const sp = regs.get(DWARF_RSP)!;
  let a = sp + 7n - ((sp + 7n) % 8n);
  for (let k = 0; k < words && a + 8n <= stack.end; k++, a += 8n) {
    const w = stack.u64(a);
    if (w === undefined || !isCode(w)) continue;
    if (!(await code.followsCall(w))) continue;
    const next = new Map(regs);
    next.set(DWARF_RSP, a + 8n);
    next.set(DWARF_RA, w);
    return next;
  }
  return undefined;
}

/** Code bytes of the image (stored pages, else the mapped file), a page at a time, cached. */
class CodeReader {
  readonly #pages = new Map<bigint, Uint8Array | null>();
  constructor(readonly image: CheckpointImage) {}

  async bytes(addr: bigint, len: number): Promise<Uint8Array | undefined> {
    const ps = BigInt(this.image.pageSize);
    const out = new Uint8Array(len);
    for (let i = 0; i < len; ) {
      const a = addr + BigInt(i);
      const page = a - (a % ps);
      let p = this.#pages.get(page);
      if (p === undefined) {
        p = await this.image.readMemory(page, this.image.pageSize).catch(() => null);
        this.#pages.set(page, p);
      }
      if (!p) return undefined;
      const o = Number(a - page);
      const n = Math.min(len - i, p.length - o);
      out.set(p.subarray(o, o + n), i);
      i += n;
    }
    return out;
  }

  /** Does a call instruction end at `ra`? (e8 rel32; ff /2 in its 2- to 7-byte forms) */
  async followsCall(ra: bigint): Promise<boolean> {
    const b = await this.bytes(ra - 8n, 8);
    if (!b) return false;
    if (b[3] === 0xe8) return true;
    for (const d of [2, 3, 4, 6, 7]) {
      const i = 8 - d;
      if (b[i] !== 0xff) continue;
      const modrm = b[i + 1];
      if (((modrm >> 3) & 7) !== 2) continue;
      const mod = modrm >> 6, rm = modrm & 7;
      const sib = rm === 4 && mod !== 3 ? 1 : 0;
      const disp = mod === 1 ? 1 : mod === 2 ? 4 : mod === 0 && rm === 5 ? 4 : 0;
      const sibDisp = sib && mod === 0 && (b[i + 2] & 7) === 5 ? 4 : 0;
      if (2 + sib + disp + sibDisp === d) return true;
    }
    return false;
  }
}

/** Text form: one block per thread, gdb-like frame lines with how each frame was found. */
export function formatBacktrace(bt: ThreadBacktrace): string {
  const head = `thread ${bt.tid}${bt.main ? " (main)" : ""} state ${bt.state}${bt.inSyscall ? ", in syscall" : ""}`;
  const lines = bt.frames.map((f) => `  #${String(f.index).padEnd(3)} 0x${f.pc.toString(16).padStart(16, "0")} in ${f.signal ? "<signal handler called> " : ""}${f.text}  [${f.method}]`);
  return [head, ...lines, `  (${bt.end})`].join("\n") + "\n";
}
