/**
 * .eh_frame call frame information (DWARF 4 §6.4 "Call Frame Information" as adapted by the
 * LSB "Exception Frames" chapter): CIEs, FDEs, the DW_CFA instructions that build the unwind
 * table row for a pc, and the small DWARF expression machine that PLT and signal-frame CFI use.
 * Addresses here are the ELF file's own virtual addresses (no load bias).
 */
import type { ElfFile } from "../elf/index.js";
import { PT_GNU_EH_FRAME } from "../elf/raw.js";

/** DWARF register numbers of x86-64 (psABI figure 3.36): 0 rax … 7 rsp, 8–15 r8–r15, 16 return address. */
export const DWARF_RSP = 7;
export const DWARF_RBP = 6;
export const DWARF_RA = 16;

export type RegRule =
  | { kind: "undefined" }
  | { kind: "same" }
  | { kind: "offset"; offset: bigint }
  | { kind: "val_offset"; offset: bigint }
  | { kind: "register"; reg: number }
  | { kind: "expression"; expr: Uint8Array }
  | { kind: "val_expression"; expr: Uint8Array };

export interface CfaRow {
  cfa: { reg: number; offset: bigint } | { expr: Uint8Array };
  regs: Map<number, RegRule>;
  raReg: number;
  signalFrame: boolean;
}

interface Cie {
  codeAlign: bigint;
  dataAlign: bigint;
  raReg: number;
  fdeEncoding: number;
  signalFrame: boolean;
  initial: Uint8Array;
  /** augmentation string starts with "z": FDEs carry an augmentation data length */
  augZ: boolean;
}

interface Fde {
  pcBegin: bigint;
  pcEnd: bigint;
  cie: Cie;
  instructions: Uint8Array;
}

/** Byte cursor over a section's data, with its vaddr for pc-relative pointers. */
class Cursor {
  pos = 0;
  readonly dv: DataView;
  constructor(readonly b: Uint8Array, readonly vaddr: bigint) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  u8(): number {
    return this.b[this.pos++];
  }
  u16(): number {
    const v = this.dv.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(): number {
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  uleb(): bigint {
    let result = 0n, shift = 0n;
    for (;;) {
      const byte = this.b[this.pos++];
      if (byte === undefined) throw new RangeError("truncated LEB128");
      result |= BigInt(byte & 0x7f) << shift;
      shift += 7n;
      if (!(byte & 0x80)) return result;
    }
  }
  sleb(): bigint {
    let result = 0n, shift = 0n, byte: number;
    do {
      byte = this.b[this.pos++];
      if (byte === undefined) throw new RangeError("truncated LEB128");
      result |= BigInt(byte & 0x7f) << shift;
      shift += 7n;
    } while (byte & 0x80);
    if (byte & 0x40) result -= 1n << shift;
    return result;
  }
  cstr(): string {
    const e = this.b.indexOf(0, this.pos);
    if (e < 0) throw new RangeError("unterminated string");
    const s = String.fromCharCode(...this.b.subarray(this.pos, e));
    this.pos = e + 1;
    return s;
  }
  /** A DW_EH_PE-encoded pointer (LSB "DWARF Exception Header Encoding"). */
  pointer(enc: number, dataBase = 0n): bigint {
    if (enc === 0xff) return 0n;
    const at = this.vaddr + BigInt(this.pos);
    let v: bigint;
    switch (enc & 0x0f) {
      case 0x00: v = this.u64(); break;
      case 0x01: v = this.uleb(); break;
      case 0x02: v = BigInt(this.u16()); break;
      case 0x03: v = BigInt(this.u32()); break;
      case 0x04: v = this.u64(); break;
      case 0x09: v = this.sleb(); break;
      case 0x0a: v = BigInt(this.dv.getInt16(this.pos, true)); this.pos += 2; break;
      case 0x0b: v = BigInt(this.dv.getInt32(this.pos, true)); this.pos += 4; break;
      case 0x0c: v = this.dv.getBigInt64(this.pos, true); this.pos += 8; break;
      default: throw new RangeError(`unsupported pointer encoding 0x${enc.toString(16)}`);
    }
    switch (enc & 0x70) {
      case 0x10: v += at; break;
      case 0x30: v += dataBase; break;
    }
    return BigInt.asUintN(64, v);
  }
}

/** The FDE table of one ELF file, sorted by pc, built once. */
export class EhFrame {
  readonly #starts: bigint[] = [];
  readonly #fdes: Fde[] = [];

  private constructor() {}

  /** From the file's .eh_frame section (or the one PT_GNU_EH_FRAME's header points to). */
  static fromElf(elf: ElfFile): EhFrame | undefined {
    let data: Uint8Array | undefined;
    let vaddr = 0n;
    const sec = elf.sectionByName(".eh_frame");
    if (sec && sec.type !== 8) {
      try {
        data = sec.data();
        vaddr = sec.addr;
      } catch {
        data = undefined;
      }
    }
    if (!data) {
      // No section headers: .eh_frame_hdr's eh_frame_ptr; the section runs to its PT_LOAD's end.
      const hdr = elf.segments.find((s) => s.type === PT_GNU_EH_FRAME);
      if (!hdr) return undefined;
      const h = elf.readVaddr(hdr.vaddr, 8);
      if (!h || h[0] !== 1) return undefined;
      const c = new Cursor(h, hdr.vaddr);
      c.pos = 4;
      try {
        vaddr = c.pointer(h[1], hdr.vaddr);
      } catch {
        return undefined;
      }
      for (const s of elf.segments) {
        if (s.type === 1 && vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) {
          data = elf.readVaddr(vaddr, Number(s.vaddr + s.filesz - vaddr));
          break;
        }
      }
      if (!data) return undefined;
    }
    const f = new EhFrame();
    f.#scan(data, vaddr);
    return f.#fdes.length ? f : undefined;
  }

  get size(): number {
    return this.#fdes.length;
  }

  #scan(data: Uint8Array, vaddr: bigint): void {
    const cies = new Map<number, Cie | null>();
    const c = new Cursor(data, vaddr);
    const list: Fde[] = [];
    while (c.pos + 4 <= data.length) {
      const start = c.pos;
      let length = c.u32();
      if (length === 0) break; // terminator
      let headerEnd = c.pos;
      if (length === 0xffffffff) {
        length = Number(c.u64());
        headerEnd = c.pos;
      }
      const end = headerEnd + length;
      if (end > data.length || length < 4) break;
      const idPos = c.pos;
      const id = c.u32();
      try {
        if (id !== 0) {
          const ciePos = idPos - id;
          let cie = cies.get(ciePos);
          if (cie === undefined) {
            cie = this.#parseCie(data, vaddr, ciePos);
            cies.set(ciePos, cie);
          }
          if (cie) {
            const pcBegin = c.pointer(cie.fdeEncoding);
            const pcRange = c.pointer(cie.fdeEncoding & 0x0f);
            if (cie.augZ) c.pos += Number(c.uleb());
            if (pcBegin !== 0n) list.push({ pcBegin, pcEnd: pcBegin + pcRange, cie, instructions: data.subarray(c.pos, end) });
          }
        }
      } catch {
        // a damaged entry: skip it
      }
      c.pos = end;
      void start;
    }
    list.sort((a, b) => (a.pcBegin < b.pcBegin ? -1 : a.pcBegin > b.pcBegin ? 1 : 0));
    for (const f of list) {
      this.#starts.push(f.pcBegin);
      this.#fdes.push(f);
    }
  }

  #parseCie(data: Uint8Array, vaddr: bigint, at: number): Cie | null {
    if (at < 0 || at + 8 > data.length) return null;
    const c = new Cursor(data, vaddr);
    c.pos = at;
    let length = c.u32();
    let headerEnd = c.pos;
    if (length === 0xffffffff) {
      length = Number(c.u64());
      headerEnd = c.pos;
    }
    const end = headerEnd + length;
    if (c.u32() !== 0) return null;
    const version = c.u8();
    const aug = c.cstr();
    if (aug.includes("eh")) c.pos += 8; // GCC 2.x "eh" data pointer
    const codeAlign = c.uleb();
    const dataAlign = c.sleb();
    const raReg = version === 1 ? c.u8() : Number(c.uleb());
    let fdeEncoding = 0;
    let signalFrame = false;
    const augZ = aug.startsWith("z");
    if (augZ) {
      const augLen = Number(c.uleb());
      const augEnd = c.pos + augLen;
      for (const ch of aug.slice(1)) {
        if (ch === "R") fdeEncoding = c.u8();
        else if (ch === "P") {
          const enc = c.u8();
          c.pointer(enc & 0x7f);
        } else if (ch === "L") c.u8();
        else if (ch === "S") signalFrame = true;
        else if (ch === "B") {
          // AArch64 BTI: no data
        } else break;
      }
      c.pos = augEnd;
    }
    return { codeAlign, dataAlign, raReg, fdeEncoding, signalFrame, initial: data.subarray(c.pos, end), augZ };
  }

  #find(pc: bigint): Fde | undefined {
    const s = this.#starts;
    let lo = 0, hi = s.length - 1, k = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid] <= pc) {
        k = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (k < 0) return undefined;
    const f = this.#fdes[k];
    return pc < f.pcEnd ? f : undefined;
  }

  /** The unwind row in effect at `pc` (file vaddr), or undefined when no FDE covers it. */
  rowAt(pc: bigint): CfaRow | undefined {
    const fde = this.#find(pc);
    if (!fde) return undefined;
    const cie = fde.cie;
    const row: CfaRow = { cfa: { reg: DWARF_RSP, offset: 8n }, regs: new Map(), raReg: cie.raReg, signalFrame: cie.signalFrame };
    try {
      execute(cie.initial, cie, row, undefined, fde.pcBegin, pc);
      const initial = new Map(row.regs);
      execute(fde.instructions, cie, row, initial, fde.pcBegin, pc);
    } catch {
      return undefined;
    }
    return row;
  }
}

/** Run DW_CFA instructions until the location passes `target`. */
function execute(ins: Uint8Array, cie: Cie, row: CfaRow, initial: Map<number, RegRule> | undefined, start: bigint, target: bigint): void {
  const c = new Cursor(ins, 0n);
  let loc = start;
  const stack: { cfa: CfaRow["cfa"]; regs: Map<number, RegRule> }[] = [];
  const off = (v: bigint) => v * cie.dataAlign;
  const restore = (reg: number) => {
    const r = initial?.get(reg);
    if (r) row.regs.set(reg, r);
    else row.regs.delete(reg);
  };
  const block = () => {
    const n = Number(c.uleb());
    const b = ins.subarray(c.pos, c.pos + n);
    c.pos += n;
    return b;
  };
  while (c.pos < ins.length) {
    const op = c.u8();
    const hi = op & 0xc0;
    const low = op & 0x3f;
    if (hi === 0x40) {
      loc += BigInt(low) * cie.codeAlign;
      if (loc > target) return;
      continue;
    }
    if (hi === 0x80) {
      row.regs.set(low, { kind: "offset", offset: off(c.uleb()) });
      continue;
    }
    if (hi === 0xc0) {
      restore(low);
      continue;
    }
    switch (op) {
      case 0x00: break;
      case 0x01: loc = c.pointer(cie.fdeEncoding); if (loc > target) return; break;
      case 0x02: loc += BigInt(c.u8()) * cie.codeAlign; if (loc > target) return; break;
      case 0x03: loc += BigInt(c.u16()) * cie.codeAlign; if (loc > target) return; break;
      case 0x04: loc += BigInt(c.u32()) * cie.codeAlign; if (loc > target) return; break;
      case 0x05: { const r = Number(c.uleb()); row.regs.set(r, { kind: "offset", offset: off(c.uleb()) }); break; }
      case 0x06: restore(Number(c.uleb())); break;
      case 0x07: row.regs.set(Number(c.uleb()), { kind: "undefined" }); break;
      case 0x08: row.regs.set(Number(c.uleb()), { kind: "same" }); break;
      case 0x09: { const r = Number(c.uleb()); row.regs.set(r, { kind: "register", reg: Number(c.uleb()) }); break; }
      case 0x0a: stack.push({ cfa: { ...row.cfa }, regs: new Map(row.regs) }); break;
      case 0x0b: { const s = stack.pop(); if (s) { row.cfa = s.cfa; row.regs = s.regs; } break; }
      case 0x0c: { const r = Number(c.uleb()); row.cfa = { reg: r, offset: c.uleb() }; break; }
      case 0x0d: { const r = Number(c.uleb()); row.cfa = { reg: r, offset: "offset" in row.cfa ? row.cfa.offset : 0n }; break; }
      case 0x0e: { const o = c.uleb(); row.cfa = { reg: "reg" in row.cfa ? row.cfa.reg : DWARF_RSP, offset: o }; break; }
      case 0x0f: row.cfa = { expr: block() }; break;
      case 0x10: { const r = Number(c.uleb()); row.regs.set(r, { kind: "expression", expr: block() }); break; }
      case 0x11: { const r = Number(c.uleb()); row.regs.set(r, { kind: "offset", offset: off(c.sleb()) }); break; }
      case 0x12: { const r = Number(c.uleb()); row.cfa = { reg: r, offset: off(c.sleb()) }; break; }
      case 0x13: { const o = off(c.sleb()); row.cfa = { reg: "reg" in row.cfa ? row.cfa.reg : DWARF_RSP, offset: o }; break; }
      case 0x14: { const r = Number(c.uleb()); row.regs.set(r, { kind: "val_offset", offset: off(c.uleb()) }); break; }
      case 0x15: { const r = Number(c.uleb()); row.regs.set(r, { kind: "val_offset", offset: off(c.sleb()) }); break; }
      case 0x16: { const r = Number(c.uleb()); row.regs.set(r, { kind: "val_expression", expr: block() }); break; }
      case 0x2e: c.uleb(); break; // GNU_args_size
      case 0x2f: { const r = Number(c.uleb()); row.regs.set(r, { kind: "offset", offset: -off(c.uleb()) }); break; }
      default: throw new RangeError(`unknown DW_CFA op 0x${op.toString(16)}`);
    }
  }
}

/**
 * Evaluate a DWARF expression (DWARF 4 §2.5) with `initial` pushed (the CFA, for register
 * rules). `reg` gives register values, `load` 8-byte memory. Undefined when it cannot be done.
 */
export function evalExpression(
  expr: Uint8Array, initial: bigint | undefined, reg: (n: number) => bigint | undefined, load: (addr: bigint) => bigint | undefined,
): bigint | undefined {
  const st: bigint[] = initial === undefined ? [] : [initial];
  const c = new Cursor(expr, 0n);
  const M = (v: bigint) => BigInt.asUintN(64, v);
  const S = (v: bigint) => BigInt.asIntN(64, v);
  try {
    while (c.pos < expr.length) {
      const op = c.u8();
      if (op >= 0x30 && op <= 0x4f) st.push(BigInt(op - 0x30));
      else if (op >= 0x50 && op <= 0x6f) {
        const v = reg(op - 0x50);
        if (v === undefined) return undefined;
        st.push(v);
      } else if (op >= 0x70 && op <= 0x8f) {
        const v = reg(op - 0x70);
        if (v === undefined) return undefined;
        st.push(M(v + c.sleb()));
      } else {
        const pop = () => {
          const v = st.pop();
          if (v === undefined) throw new RangeError("stack underflow");
          return v;
        };
        switch (op) {
          case 0x06: { const v = load(pop()); if (v === undefined) return undefined; st.push(v); break; }
          case 0x08: st.push(BigInt(c.u8())); break;
          case 0x09: st.push(M(BigInt((c.u8() << 24) >> 24))); break;
          case 0x0a: st.push(BigInt(c.u16())); break;
          case 0x0b: st.push(M(BigInt((c.u16() << 16) >> 16))); break;
          case 0x0c: st.push(BigInt(c.u32())); break;
          case 0x0d: st.push(M(BigInt(c.u32() | 0))); break;
          case 0x0e: case 0x0f: st.push(c.u64()); break;
          case 0x10: st.push(c.uleb()); break;
          case 0x11: st.push(M(c.sleb())); break;
          case 0x12: { const v = pop(); st.push(v, v); break; }
          case 0x13: pop(); break;
          case 0x14: st.push(st[st.length - 2]); break;
          case 0x15: st.push(st[st.length - 1 - c.u8()]); break;
          case 0x16: { const a = pop(), b = pop(); st.push(a, b); break; }
          case 0x1a: { const a = pop(), b = pop(); st.push(a & b); break; }
          case 0x1c: { const a = pop(), b = pop(); st.push(M(b - a)); break; }
          case 0x1e: { const a = pop(), b = pop(); st.push(M(a * b)); break; }
          case 0x1f: st.push(M(-pop())); break;
          case 0x20: st.push(M(~pop())); break;
          case 0x21: { const a = pop(), b = pop(); st.push(a | b); break; }
          case 0x22: { const a = pop(), b = pop(); st.push(M(a + b)); break; }
          case 0x23: st.push(M(pop() + c.uleb())); break;
          case 0x24: { const a = pop(), b = pop(); st.push(M(b << a)); break; }
          case 0x25: { const a = pop(), b = pop(); st.push(b >> a); break; }
          case 0x26: { const a = pop(), b = pop(); st.push(M(S(b) >> a)); break; }
          case 0x27: { const a = pop(), b = pop(); st.push(a ^ b); break; }
          case 0x29: case 0x2a: case 0x2b: case 0x2c: case 0x2d: case 0x2e: {
            const a = S(pop()), b = S(pop());
            const r = op === 0x29 ? b === a : op === 0x2a ? b >= a : op === 0x2b ? b > a : op === 0x2c ? b <= a : op === 0x2d ? b < a : b !== a;
            st.push(r ? 1n : 0n);
            break;
          }
          case 0x96: break; // nop
          default: return undefined;
        }
      }
    }
  } catch {
    return undefined;
  }
  return st.pop();
}
