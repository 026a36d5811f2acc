/**
 * Notes (gABI "Note Section"): Elf_Nhdr, name, desc, each padded to the note alignment (4, or 8
 * for 8-aligned PT_NOTE/SHT_NOTE such as .note.gnu.property on ELF64). Decoders for the notes
 * ckimg needs: build-id, ABI tag, GNU properties (x86 IBT/SHSTK) and core notes (prstatus,
 * prpsinfo, NT_FILE, auxv, XSAVE state).
 */
import { ElfError, MAX_ENTRIES } from "./errors.js";
import {
  AT_NAMES, EM_386, EM_X86_64, GNU_PROPERTY_1_NEEDED, GNU_PROPERTY_NO_COPY_ON_PROTECTED, GNU_PROPERTY_STACK_SIZE,
  GNU_PROPERTY_X86_FEATURE_1_AND, GNU_PROPERTY_X86_FEATURE_1_IBT, GNU_PROPERTY_X86_FEATURE_1_SHSTK,
  GNU_PROPERTY_X86_ISA_1_NEEDED, GNU_PROPERTY_X86_ISA_1_USED, GNU_PROPERTY_X86_FEATURE_2_USED,
  GNU_PROPERTY_X86_FEATURE_2_NEEDED, NHDR, NT_AUXV, NT_FILE, NT_FPREGSET, NT_GNU_ABI_TAG, NT_GNU_BUILD_ID,
  NT_GNU_GOLD_VERSION, NT_GNU_HWCAP, NT_GNU_PROPERTY_TYPE_0, NT_PRPSINFO, NT_PRSTATUS, NT_PRXFPREG,
  NT_SIGINFO, NT_TASKSTRUCT, NT_X86_XSTATE, ET_CORE,
} from "./raw.js";
import { decodeString } from "./strtab.js";
import { ByteView } from "./view.js";

export interface ElfNote {
  /** Note name ("GNU", "CORE", "LINUX", ...), without the NUL. */
  owner: string;
  type: number;
  /** The description bytes, zero-copy. */
  desc: Uint8Array;
  /** File offset (or vaddr) of the note header. */
  offset: number | bigint;
}

/** Parse the notes in [off, off+size). `align` is the section/segment alignment (4 or 8). */
export function readNotes(v: ByteView, off: number, size: number, align: number, origin: number | bigint = off): ElfNote[] {
  v.need(off, size, "note section");
  const a = align === 8 ? 8 : 4;
  const pad = (n: number): number => (n + a - 1) & ~(a - 1);
  const out: ElfNote[] = [];
  const end = off + size;
  let p = off;
  while (p + NHDR.size <= end) {
    if (out.length >= MAX_ENTRIES) throw new ElfError("ELF_LIMIT", "too many notes", p);
    const namesz = v.u32(p + NHDR.namesz);
    const descsz = v.u32(p + NHDR.descsz);
    const type = v.u32(p + NHDR.type);
    const nameOff = p + NHDR.size;
    // Name and desc start at offsets aligned within the note (12-byte header + name, then desc).
    const descOff = off + pad(nameOff + namesz - off);
    const where = typeof origin === "bigint" ? origin + BigInt(p - off) : origin + (p - off);
    if (namesz > end - nameOff || descOff > end || descsz > end - descOff) {
      throw new ElfError("ELF_TRUNCATED", `note (name ${namesz} bytes, desc ${descsz} bytes) runs past its section`, where);
    }
    let nameEnd = nameOff + namesz;
    while (nameEnd > nameOff && v.bytes[nameEnd - 1] === 0) nameEnd--;
    out.push({ owner: decodeString(v.bytes, nameOff, nameEnd), type, desc: v.bytes.subarray(descOff, descOff + descsz), offset: where });
    const next = off + pad(descOff + descsz - off);
    if (next <= p) break;
    p = next;
  }
  return out;
}

/** readelf's description of a note type (get_note_type / get_gnu_elf_note_type...). */
export function noteTypeName(note: { owner: string; type: number }, elfType: number): string {
  const t = note.type;
  if (note.owner === "GNU") {
    switch (t) {
      case NT_GNU_ABI_TAG: return "NT_GNU_ABI_TAG (ABI version tag)";
      case NT_GNU_HWCAP: return "NT_GNU_HWCAP (DSO-supplied software HWCAP info)";
      case NT_GNU_BUILD_ID: return "NT_GNU_BUILD_ID (unique build ID bitstring)";
      case NT_GNU_GOLD_VERSION: return "NT_GNU_GOLD_VERSION (gold version)";
      case NT_GNU_PROPERTY_TYPE_0: return "NT_GNU_PROPERTY_TYPE_0";
      case 0x100: return "NT_GNU_BUILD_ATTRIBUTE_OPEN";
      case 0x101: return "NT_GNU_BUILD_ATTRIBUTE_FUNC";
    }
    return unknownNote(t);
  }
  if (note.owner === "stapsdt") return t === 3 ? "NT_STAPSDT (SystemTap probe descriptors)" : unknownNote(t);
  if (note.owner === "FDO" && t === 0xcafe1a7e) return "FDO_PACKAGING_METADATA";
  if (note.owner === "Go" && t === 4) return "GO BUILDID";
  if (note.owner === "GDB" && t === 0xff000000) return "NT_GDB_TDESC (GDB XML target description)";
  // GNU build attribute notes (annobin): the owner is "GA" + an encoded attribute.
  if (note.owner.startsWith("GA")) return t === 0x100 ? "OPEN" : t === 0x101 ? "func" : unknownNote(t);
  if (elfType === ET_CORE || note.owner === "CORE" || note.owner === "LINUX") {
    switch (t) {
      case NT_PRSTATUS: return "NT_PRSTATUS (prstatus structure)";
      case NT_FPREGSET: return "NT_FPREGSET (floating point registers)";
      case NT_PRPSINFO: return "NT_PRPSINFO (prpsinfo structure)";
      case NT_TASKSTRUCT: return "NT_TASKSTRUCT (task structure)";
      case NT_AUXV: return "NT_AUXV (auxiliary vector)";
      case NT_PRXFPREG: return "NT_PRXFPREG (user_xfpregs structure)";
      case NT_X86_XSTATE: return "NT_X86_XSTATE (x86 XSAVE extended state)";
      case NT_SIGINFO: return "NT_SIGINFO (siginfo_t data)";
      case NT_FILE: return "NT_FILE (mapped files)";
      case 0x200: return "NT_386_TLS (x86 TLS information)";
      case 0x201: return "NT_386_IOPERM (x86 I/O permissions)";
      case 0x203: return "NT_X86_CET (x86 CET state)";
    }
    return unknownNote(t);
  }
  if (t === 1) return "NT_VERSION (version)";
  if (t === 2) return "NT_ARCH (architecture)";
  return unknownNote(t);
}

function unknownNote(t: number): string {
  return `Unknown note type: (0x${t.toString(16).padStart(8, "0")})`;
}

function hexBytes(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += (b[i] < 16 ? "0" : "") + b[i].toString(16);
  return s;
}

/** NT_GNU_BUILD_ID: the build ID as lowercase hex. */
export function buildIdOf(note: ElfNote): string {
  return hexBytes(note.desc);
}

export interface AbiTag {
  os: string;
  abi: [number, number, number];
}
const ABI_OS = ["Linux", "Hurd", "Solaris", "FreeBSD", "NetBSD", "Syllable", "NaCl"];
/** NT_GNU_ABI_TAG: OS and minimum kernel ABI ("OS: Linux, ABI: 3.2.0" in readelf). */
export function abiTagOf(note: ElfNote, le: boolean): AbiTag | undefined {
  if (note.desc.length < 16) return undefined;
  const dv = new DataView(note.desc.buffer, note.desc.byteOffset, 16);
  const os = dv.getUint32(0, le);
  return { os: ABI_OS[os] ?? `Unknown`, abi: [dv.getUint32(4, le), dv.getUint32(8, le), dv.getUint32(12, le)] };
}

export interface GnuProperty {
  type: number;
  /** Raw property data. */
  data: Uint8Array;
  /** For 4-byte bitmask properties: the mask. */
  bits?: number;
  /** Decoded names (x86 feature/ISA bits), readelf's spelling. */
  names?: string[];
}

const X86_FEATURE_1 = ["IBT", "SHSTK", "LAM_U48", "LAM_U57"];
const X86_ISA_1 = ["x86-64-baseline", "x86-64-v2", "x86-64-v3", "x86-64-v4"];
const X86_FEATURE_2 = ["x86", "x87", "MMX", "XMM", "YMM", "ZMM", "FXSR", "XSAVE", "XSAVEOPT", "XSAVEC", "TMM", "MASK"];

function bitNames(bits: number, names: string[]): string[] {
  const out: string[] = [];
  for (let b = 0; b < 32; b++) {
    if ((bits >>> b) & 1) out.push(names[b] ?? `<unknown: ${(1 << b >>> 0).toString(16)}>`);
  }
  return out;
}

/**
 * NT_GNU_PROPERTY_TYPE_0: pr_type, pr_datasz, data padded to 8 (ELF64) or 4 (ELF32).
 * Malformed lists end the walk (returned so far) rather than throw: readelf prints
 * "<corrupt ...>" and moves on.
 */
export function gnuPropertiesOf(note: ElfNote, is64: boolean, le: boolean, machine: number): GnuProperty[] {
  const d = note.desc;
  const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const align = is64 ? 8 : 4;
  const out: GnuProperty[] = [];
  let p = 0;
  while (p + 8 <= d.length) {
    const type = dv.getUint32(p, le);
    const sz = dv.getUint32(p + 4, le);
    if (sz > d.length - p - 8) break;
    const data = d.subarray(p + 8, p + 8 + sz);
    const prop: GnuProperty = { type, data };
    if (sz === 4) {
      const bits = dv.getUint32(p + 8, le);
      prop.bits = bits;
      if (machine === EM_X86_64 || machine === EM_386) {
        if (type === GNU_PROPERTY_X86_FEATURE_1_AND) prop.names = bitNames(bits, X86_FEATURE_1);
        else if (type === GNU_PROPERTY_X86_ISA_1_NEEDED || type === GNU_PROPERTY_X86_ISA_1_USED) prop.names = bitNames(bits, X86_ISA_1);
        else if (type === GNU_PROPERTY_X86_FEATURE_2_USED || type === GNU_PROPERTY_X86_FEATURE_2_NEEDED) prop.names = bitNames(bits, X86_FEATURE_2);
      }
    }
    out.push(prop);
    p += 8 + ((sz + align - 1) & ~(align - 1));
  }
  return out;
}

/** IBT and SHSTK markings of GNU_PROPERTY_X86_FEATURE_1_AND (CET). */
export function x86Features(props: GnuProperty[]): { ibt: boolean; shstk: boolean } {
  const p = props.find((q) => q.type === GNU_PROPERTY_X86_FEATURE_1_AND);
  const bits = p?.bits ?? 0;
  return { ibt: (bits & GNU_PROPERTY_X86_FEATURE_1_IBT) !== 0, shstk: (bits & GNU_PROPERTY_X86_FEATURE_1_SHSTK) !== 0 };
}

/** readelf's text for one property ("x86 feature: IBT, SHSTK"). */
export function gnuPropertyText(p: GnuProperty): string {
  const list = (n?: string[]) => (n && n.length ? n.join(", ") : "<None>");
  switch (p.type) {
    case GNU_PROPERTY_X86_FEATURE_1_AND: return `x86 feature: ${list(p.names)}`;
    case GNU_PROPERTY_X86_ISA_1_NEEDED: return `x86 ISA needed: ${list(p.names)}`;
    case GNU_PROPERTY_X86_ISA_1_USED: return `x86 ISA used: ${list(p.names)}`;
    case GNU_PROPERTY_X86_FEATURE_2_USED: return `x86 feature used: ${list(p.names)}`;
    case GNU_PROPERTY_X86_FEATURE_2_NEEDED: return `x86 feature needed: ${list(p.names)}`;
    case GNU_PROPERTY_STACK_SIZE: return "stack size";
    case GNU_PROPERTY_NO_COPY_ON_PROTECTED: return "no copy on protected";
    case GNU_PROPERTY_1_NEEDED: return "1_needed";
  }
  return `<unknown: 0x${p.type.toString(16)}>`;
}

// ---- Core notes ----------------------------------------------------------------------------

/** x86-64 user_regs_struct order (pr_reg in NT_PRSTATUS), <sys/user.h>. */
export const X86_64_REGS = ["r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs"] as const;
/** i386 user_regs_struct order. */
export const I386_REGS = ["ebx", "ecx", "edx", "esi", "edi", "ebp", "eax", "ds", "es", "fs", "gs", "orig_eax", "eip", "cs", "eflags", "esp", "ss"] as const;

export interface PrStatus {
  signo: number;
  code: number;
  errno: number;
  cursig: number;
  sigpend: bigint;
  sighold: bigint;
  pid: number;
  ppid: number;
  pgrp: number;
  sid: number;
  /** General registers by name (x86-64 or i386 user_regs_struct). */
  regs: Record<string, bigint>;
  fpvalid: number;
}

/** NT_PRSTATUS for x86-64 (336 bytes, pr_reg at 112) and i386 (144 bytes, pr_reg at 72). */
export function prstatusOf(note: ElfNote, machine: number, le = true): PrStatus | undefined {
  const d = new ByteView(note.desc, le, machine === EM_X86_64);
  const is64 = machine === EM_X86_64;
  if (machine !== EM_X86_64 && machine !== EM_386) return undefined;
  const regOff = is64 ? 112 : 72;
  const names = is64 ? X86_64_REGS : I386_REGS;
  const w = is64 ? 8 : 4;
  if (d.length < regOff + names.length * w + 4) return undefined;
  const regs: Record<string, bigint> = {};
  names.forEach((n, i) => (regs[n] = d.word(regOff + i * w)));
  const sig = (o: number) => (is64 ? d.u64(o) : BigInt(d.u32(o)));
  return {
    signo: d.i32(0), code: d.i32(4), errno: d.i32(8), cursig: d.u16(12),
    sigpend: sig(is64 ? 16 : 16), sighold: sig(is64 ? 24 : 20),
    pid: d.i32(is64 ? 32 : 24), ppid: d.i32(is64 ? 36 : 28), pgrp: d.i32(is64 ? 40 : 32), sid: d.i32(is64 ? 44 : 36),
    regs, fpvalid: d.i32(regOff + names.length * w),
  };
}

export interface PrPsInfo {
  state: number;
  sname: string;
  zomb: number;
  nice: number;
  flag: bigint;
  uid: number;
  gid: number;
  pid: number;
  ppid: number;
  pgrp: number;
  sid: number;
  fname: string;
  psargs: string;
}

function cstr(b: Uint8Array, off: number, len: number): string {
  let e = off;
  while (e < off + len && b[e] !== 0) e++;
  return decodeString(b, off, e);
}

/** NT_PRPSINFO: x86-64 (136 bytes) or i386 (124 bytes) struct elf_prpsinfo. */
export function prpsinfoOf(note: ElfNote, machine: number, le = true): PrPsInfo | undefined {
  const is64 = machine === EM_X86_64;
  if (machine !== EM_X86_64 && machine !== EM_386) return undefined;
  const d = new ByteView(note.desc, le, is64);
  if (d.length < (is64 ? 136 : 124)) return undefined;
  const b = note.desc;
  const o = is64 ? { flag: 8, uid: 16, gid: 20, pid: 24, fname: 40 } : { flag: 4, uid: 8, gid: 10, pid: 12, fname: 28 };
  return {
    state: b[0], sname: String.fromCharCode(b[1]), zomb: b[2], nice: (b[3] << 24) >> 24,
    flag: is64 ? d.u64(o.flag) : BigInt(d.u32(o.flag)),
    uid: is64 ? d.u32(o.uid) : d.u16(o.uid), gid: is64 ? d.u32(o.gid) : d.u16(o.gid),
    pid: d.i32(o.pid), ppid: d.i32(o.pid + 4), pgrp: d.i32(o.pid + 8), sid: d.i32(o.pid + 12),
    fname: cstr(b, o.fname, 16), psargs: cstr(b, o.fname + 16, 80),
  };
}

export interface MappedFile {
  start: bigint;
  end: bigint;
  /** File offset in bytes (NT_FILE stores pages; multiplied by page_size here). */
  offset: bigint;
  path: string;
}

/** NT_FILE: count, page_size, count × (start, end, pgoff), then count NUL-terminated paths. */
export function mappedFilesOf(note: ElfNote, is64: boolean, le = true): MappedFile[] {
  const d = new ByteView(note.desc, le, is64);
  const w = is64 ? 8 : 4;
  if (d.length < 2 * w) throw new ElfError("ELF_TRUNCATED", "NT_FILE header", note.offset);
  const count = d.word(0);
  const page = d.word(w);
  if (count > BigInt(Math.floor((d.length - 2 * w) / (3 * w)))) {
    throw new ElfError("ELF_TRUNCATED", `NT_FILE with ${count} entries does not fit in ${d.length} bytes`, note.offset);
  }
  const n = Number(count);
  let s = 2 * w + 3 * w * n;
  const out: MappedFile[] = [];
  for (let i = 0; i < n; i++) {
    const e = 2 * w + 3 * w * i;
    let z = s;
    while (z < d.length && d.bytes[z] !== 0) z++;
    out.push({ start: d.word(e), end: d.word(e + w), offset: d.word(e + 2 * w) * page, path: decodeString(d.bytes, s, z) });
    s = z + 1;
  }
  return out;
}

export interface AuxvEntry {
  type: number;
  name: string;
  value: bigint;
}

/** NT_AUXV: (a_type, a_val) word pairs up to AT_NULL. */
export function auxvOf(note: ElfNote, is64: boolean, le = true): AuxvEntry[] {
  const d = new ByteView(note.desc, le, is64);
  const w = is64 ? 8 : 4;
  const out: AuxvEntry[] = [];
  for (let p = 0; p + 2 * w <= d.length; p += 2 * w) {
    const t = d.word(p);
    const type = t > 0xffffffffn ? -1 : Number(t);
    out.push({ type, name: AT_NAMES[type] ?? `AT_${type}`, value: d.word(p + w) });
    if (type === 0) break;
  }
  return out;
}

export interface XState {
  /** XCR0 as saved by the kernel in the sw_reserved area (bytes 464..471). */
  xcr0: bigint;
  /** XSTATE_BV from the XSAVE header (bytes 512..519). */
  xstateBv: bigint;
  size: number;
}

/** NT_X86_XSTATE: the XSAVE area (Intel SDM vol. 1 §13.4), Linux's software-reserved bytes. */
export function xstateOf(note: ElfNote, le = true): XState | undefined {
  if (note.desc.length < 576) return undefined;
  const dv = new DataView(note.desc.buffer, note.desc.byteOffset, note.desc.byteLength);
  return { xcr0: dv.getBigUint64(464, le), xstateBv: dv.getBigUint64(512, le), size: note.desc.length };
}
