/**
 * PLT and GOT (x86-64 and i386 psABI "Procedure Linkage Table"). Names every PLT stub the way
 * GNU objdump labels it (`name@plt`): decode each entry's indirect jump to find its GOT slot,
 * then name the slot by the dynamic relocation that fills it. Handles lazy .plt, IBT .plt.sec
 * (with or without the bnd prefix), non-lazy .plt.got (`-fno-plt` GLOB_DAT slots, `-z now`),
 * MPX .plt.bnd, PIE and non-PIE, and IRELATIVE slots named `*ABS*+0x…` as objdump does.
 */
import { EM_386, EM_X86_64, R_386_GLOB_DAT, R_386_IRELATIVE, R_386_JUMP_SLOT, R_386_RELATIVE, R_X86_64_GLOB_DAT, R_X86_64_IRELATIVE, R_X86_64_JUMP_SLOT, R_X86_64_RELATIVE, SHF_ALLOC, SHT_DYNSYM } from "./raw.js";
import type { ElfFile, RelocationSection } from "./file.js";
import type { LoadedElf } from "./loaded.js";
import { relocationTypeName } from "./relocation.js";
import type { Section } from "./section.js";
import { toIndex } from "./view.js";

export type GotSlotKind = "jump_slot" | "glob_dat" | "irelative" | "relative" | "copy" | "tls" | "absolute" | "other";

export interface GotSlot {
  /** The slot's (unrelocated) virtual address: r_offset. */
  address: bigint;
  type: number;
  /** "R_X86_64_JUMP_SLOT", ... ("R_<n>" for unknown types). */
  typeName: string;
  kind: GotSlotKind;
  /** Symbol name ("" for symbol 0). */
  symbol: string;
  version?: string;
  symbolIndex: number;
  addend: bigint;
  /** The relocation section it came from. */
  table: string;
}

export interface PltStub {
  /** Address of the stub (what `call` targets). */
  address: bigint;
  /** objdump's label without "@plt": "puts", "*ABS*+0x114f", "foo+0x10"; undefined if no relocation fills the slot. */
  name: string | undefined;
  /** The GOT slot the stub jumps through. */
  got: bigint;
  /** ".plt", ".plt.sec", ".plt.got", ".plt.bnd". */
  section: string;
  slot?: GotSlot;
}

function kindOf(machine: number, type: number): GotSlotKind {
  if (machine === EM_X86_64) {
    switch (type) {
      case R_X86_64_JUMP_SLOT: return "jump_slot";
      case R_X86_64_GLOB_DAT: return "glob_dat";
      case R_X86_64_IRELATIVE: return "irelative";
      case R_X86_64_RELATIVE: case 38: return "relative";
      case 5: return "copy";
      case 16: case 17: case 18: case 36: return "tls";
      case 1: case 10: case 11: return "absolute";
    }
  } else if (machine === EM_386) {
    switch (type) {
      case R_386_JUMP_SLOT: return "jump_slot";
      case R_386_GLOB_DAT: return "glob_dat";
      case R_386_IRELATIVE: return "irelative";
      case R_386_RELATIVE: return "relative";
      case 5: return "copy";
      case 14: case 35: case 36: case 37: case 41: return "tls";
      case 1: return "absolute";
    }
  }
  return "other";
}

/** Relocation sections that fill the GOT at run time: linked to .dynsym, or allocated in a static file. */
function dynamicRelocations(elf: ElfFile): RelocationSection[] {
  const all = elf.relocationSections();
  return all.filter((r) => {
    if (!r.table) return false;
    if (!r.section) return true;
    const link = elf.sections[r.section.link];
    if (link && link.type === SHT_DYNSYM) return true;
    return (r.section.flags & BigInt(SHF_ALLOC)) !== 0n && elf.dynsym === undefined;
  });
}

/**
 * Every dynamic relocation as a GOT/data slot with its symbol, version and kind. Works on a
 * file (its dynamic relocation sections, or DT_RELA/DT_REL/DT_JMPREL without section headers)
 * and on an image read from memory (addresses stay unrelocated: add `bias`).
 */
export function gotSlots(elf: ElfFile | LoadedElf): GotSlot[] {
  const out: GotSlot[] = [];
  const m = elf.header.machine;
  const tables = "sections" in elf ? dynamicRelocations(elf) : elf.relocationTables();
  for (const r of tables) {
    const t = r.table!;
    const syms = r.symbols;
    for (let i = 0; i < t.count; i++) {
      const rel = t.get(i);
      const slot: GotSlot = {
        address: rel.offset, type: rel.type,
        typeName: relocationTypeName(m, rel.type) ?? `R_${rel.type}`,
        kind: kindOf(m, rel.type), symbol: "", symbolIndex: rel.symbolIndex, addend: rel.addend, table: r.name,
      };
      if (rel.symbolIndex !== 0 && syms && rel.symbolIndex < syms.count) {
        slot.symbol = syms.name(rel.symbolIndex);
        const v = syms.version(rel.symbolIndex);
        if (v) slot.version = v.name;
      }
      out.push(slot);
    }
  }
  return out;
}

/** objdump's synthetic name for a slot: symbol (or *ABS*) plus "+0x<addend>" when non-zero. */
export function slotLabel(s: GotSlot): string {
  const base = s.symbolIndex === 0 ? "*ABS*" : s.symbol;
  return s.addend !== 0n ? `${base}+0x${BigInt.asUintN(64, s.addend).toString(16)}` : base;
}

const PLT_SECTIONS = [".plt", ".plt.sec", ".plt.got", ".plt.bnd"];

/**
 * Decode one PLT entry at byte `p` of `b` (address `addr`): optional endbr64/endbr32, optional
 * bnd (f2) prefix, then `jmp *disp32(%rip)` (ff 25, x86-64), `jmp *abs32` (ff 25, i386 non-PIC)
 * or `jmp *disp32(%ebx)` (ff a3, i386 PIC, relative to the GOT base). Returns the GOT slot.
 */
function decodeJump(b: Uint8Array, p: number, end: number, addr: bigint, is64: boolean, gotBase: bigint | undefined): bigint | undefined {
  let q = p;
  if (q + 4 <= end && b[q] === 0xf3 && b[q + 1] === 0x0f && b[q + 2] === 0x1e && (b[q + 3] === 0xfa || b[q + 3] === 0xfb)) q += 4;
  if (q < end && b[q] === 0xf2) q++;
  if (q + 6 > end || b[q] !== 0xff) return undefined;
  const modrm = b[q + 1];
  const disp = (b[q + 2] | (b[q + 3] << 8) | (b[q + 4] << 16) | (b[q + 5] << 24)) >> 0;
  if (modrm === 0x25) {
    if (is64) return addr + BigInt(q + 6 - p) + BigInt(disp);
    return BigInt(disp >>> 0);
  }
  if (modrm === 0xa3 && !is64 && gotBase !== undefined) return BigInt.asUintN(32, gotBase + BigInt(disp));
  return undefined;
}

/** Stride and first entry of a PLT section, from its name and first bytes. */
function layout(sec: Section, b: Uint8Array, is64: boolean): { first: number; stride: number } {
  const ent = toIndex(sec.entsize);
  if (sec.name === ".plt") {
    // Lazy PLT0: pushq GOT+8(%rip) (ff 35) on x86-64 / i386 non-PIC, pushl 4(%ebx) (ff b3) on i386 PIC.
    const lazy = b.length >= 2 && b[0] === 0xff && (b[1] === 0x35 || b[1] === 0xb3);
    if (lazy) return { first: 16, stride: 16 };
    // Non-lazy .plt of static executables: `jmp *slot; xchg %ax,%ax` (8 bytes).
    if (b.length >= 8 && b[0] === 0xff && b[1] === 0x25 && b[6] === 0x66 && b[7] === 0x90) return { first: 0, stride: 8 };
    return { first: 0, stride: ent === 8 || ent === 16 ? ent : 16 };
  }
  if (sec.name === ".plt.got" || sec.name === ".plt.bnd") {
    if (b.length >= 8 && ((b[0] === 0xff && b[1] === 0x25 && b[6] === 0x66 && b[7] === 0x90) || (b[0] === 0xf2 && b[1] === 0xff && b[2] === 0x25 && b[7] === 0x90))) return { first: 0, stride: 8 };
    return { first: 0, stride: ent === 8 || ent === 16 ? ent : is64 ? 16 : 16 };
  }
  return { first: 0, stride: 16 };
}

/** Only JUMP_SLOT, GLOB_DAT and IRELATIVE slots name PLT entries (as in binutils' synthetic symbols). */
function namesPlt(k: GotSlotKind): boolean {
  return k === "jump_slot" || k === "glob_dat" || k === "irelative";
}

/** All PLT stubs, sorted by address, named like objdump's `name@plt` labels. */
export function pltStubs(elf: ElfFile): PltStub[] {
  const m = elf.machine;
  if (m !== EM_X86_64 && m !== EM_386) return [];
  const is64 = m === EM_X86_64;
  const bySlot = new Map<bigint, GotSlot>();
  for (const s of gotSlots(elf)) if (namesPlt(s.kind) && !bySlot.has(s.address)) bySlot.set(s.address, s);
  // i386 PIC stubs address the GOT relative to %ebx = .got.plt (DT_PLTGOT).
  const gotBase = elf.sectionByName(".got.plt")?.addr ?? elf.dynamic?.get(3) ?? elf.sectionByName(".got")?.addr;
  const out: PltStub[] = [];
  for (const sec of elf.sections) {
    if (!PLT_SECTIONS.includes(sec.name) || sec.type === 8) continue;
    const b = sec.data();
    const { first, stride } = layout(sec, b, is64);
    for (let p = first; p + 6 <= b.length; p += stride) {
      const addr = sec.addr + BigInt(p);
      const got = decodeJump(b, p, Math.min(b.length, p + stride), addr, is64, gotBase);
      if (got === undefined) continue;
      const slot = bySlot.get(got);
      const stub: PltStub = { address: addr, name: slot ? slotLabel(slot) : undefined, got, section: sec.name };
      if (slot) stub.slot = slot;
      out.push(stub);
    }
  }
  out.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  return out;
}
