/**
 * An ELF object as loaded in a process (or captured in an image): no section headers, only
 * what the dynamic linker sees. Program headers at load base + e_phoff, PT_DYNAMIC, then every
 * table through DT_* pointers, read piecewise through the caller's `read`.
 *
 * Pointer values: in memory, ld.so has already added l_addr to some d_ptr entries (glibc's
 * elf_get_dynamic_info relocates DT_HASH, DT_PLTGOT, DT_STRTAB, DT_SYMTAB, DT_RELA/DT_REL,
 * DT_JMPREL, DT_VERSYM, DT_GNU_HASH, DT_RELR on x86-64) but not others (DT_VERDEF, DT_VERNEED,
 * DT_INIT...), and not at all on some ports or in the vDSO. Each pointer is therefore taken as
 * relocated when it falls inside the loaded image and as unrelocated when it falls inside the
 * file's own address range; `dynamicRelocated` forces one reading.
 */
import { ElfError } from "./errors.js";
import { PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_PHDR } from "./raw.js";
import { ByteView, toIndex } from "./view.js";
import { ElfHeader, readHeader } from "./file.js";
import { Segment, readProgramHeaders } from "./segment.js";
import { AddressSpace, DynamicRelocationTable, DynamicTables, dynamicRelocationTables, readDynamicEntries } from "./dynamic.js";
import { decodeString } from "./strtab.js";
import type { SymbolTable } from "./symbol.js";

/** Read `len` bytes at absolute address `vaddr`; undefined when not readable. */
export type MemoryReader = (vaddr: bigint, len: number) => Uint8Array | undefined;

export interface LoadedElfOptions {
  /** true: d_ptr values are relocated; false: file values; undefined: decide per pointer. */
  dynamicRelocated?: boolean;
  /** Address of the program headers when known (AT_PHDR), instead of load base + e_phoff. */
  phdrAddress?: bigint;
}

export interface LoadedElf {
  header: ElfHeader;
  /** Program headers (their data() is not available: use `read`). */
  segments: Segment[];
  /** Load bias: added to every file vaddr (0 for ET_EXEC at its link address). */
  bias: bigint;
  /** The dynamic tables, undefined for static executables. */
  dynamic: DynamicTables | undefined;
  /** Dynamic symbols (values are file values: add `bias` for run-time addresses). */
  dynsym: SymbolTable | undefined;
  needed: string[];
  soname: string | undefined;
  bindNow: boolean;
  interp: string | undefined;
  /** DT_RELA, DT_REL and DT_JMPREL tables (for gotSlots()). */
  relocationTables(): DynamicRelocationTable[];
}

const MAX_PHDR_BYTES = 0xffff * 64;
/** 64 Ki dynamic entries: far more than any linker writes. */
const MAX_DYNAMIC_BYTES = 65536 * 16;
const at0 = (v: bigint): bigint => v;

export function parseLoadedElf(read: MemoryReader, loadBase: bigint, opts: LoadedElfOptions = {}): LoadedElf {
  const ident = read(loadBase, 64) ?? read(loadBase, 52);
  if (!ident) throw new ElfError("ELF_UNMAPPED", "ELF header not readable", loadBase);
  if (ident.length < 16 || ident[0] !== 0x7f || ident[1] !== 0x45 || ident[2] !== 0x4c || ident[3] !== 0x46) {
    throw new ElfError("ELF_BAD_MAGIC", "not an ELF image: bad magic (expected \\x7fELF)", loadBase);
  }
  const is64 = ident[4] === 2;
  if (ident[4] !== 1 && ident[4] !== 2) throw new ElfError("ELF_BAD_CLASS", `unsupported ELF class ${ident[4]}`, loadBase + 4n);
  if (ident[5] !== 1 && ident[5] !== 2) throw new ElfError("ELF_BAD_DATA", `unsupported ELF data encoding ${ident[5]}`, loadBase + 5n);
  const le = ident[5] === 1;
  const hv = new ByteView(ident, le, is64);
  const header = readHeader(hv);
  const phBytes = header.phnum * header.phentsize;
  if (phBytes > MAX_PHDR_BYTES) throw new ElfError("ELF_LIMIT", `${header.phnum} program headers`, loadBase);
  const phAddr = opts.phdrAddress ?? loadBase + header.phoff;
  const ph = read(phAddr, phBytes);
  if (!ph) throw new ElfError("ELF_UNMAPPED", `program headers (${phBytes} bytes) not readable`, phAddr);
  const segments = readProgramHeaders(new ByteView(ph, le, is64), 0, header.phnum, header.phentsize);
  const loads = segments.filter((s) => s.type === PT_LOAD);
  // Bias: where file offset 0 maps minus where the file says it maps; PT_PHDR pins it when present.
  const phdrSeg = segments.find((s) => s.type === PT_PHDR);
  let bias: bigint;
  if (phdrSeg) bias = phAddr - phdrSeg.vaddr;
  else if (loads.length) bias = loadBase - (loads[0].vaddr - loads[0].offset);
  else bias = 0n;
  bias = BigInt.asUintN(is64 ? 64 : 32, bias);

  const inRange = (a: bigint, add: bigint): boolean => loads.some((s) => a >= s.vaddr + add && a < s.vaddr + add + s.memsz);
  const space: AddressSpace = {
    read(vaddr, len) {
      const b = read(vaddr, len);
      if (!b || b.length < len) return undefined;
      return { view: new ByteView(b, le, is64), offset: 0 };
    },
    extent(vaddr) {
      for (const s of loads) {
        const lo = s.vaddr + bias;
        const hi = lo + s.memsz;
        if (vaddr >= lo && vaddr < hi) return toIndex(hi - vaddr);
      }
      return 0;
    },
    pointer(_tag, value) {
      if (bias === 0n || opts.dynamicRelocated === true) return value;
      if (opts.dynamicRelocated === false) return value + bias;
      if (inRange(value, bias)) return value;
      if (inRange(value, 0n)) return value + bias;
      return value;
    },
    where: (vaddr) => vaddr,
  };

  let dynamic: DynamicTables | undefined;
  const dseg = segments.find((s) => s.type === PT_DYNAMIC);
  if (dseg) {
    const size = toIndex(dseg.memsz < dseg.filesz ? dseg.memsz : dseg.filesz);
    if (size > MAX_DYNAMIC_BYTES) throw new ElfError("ELF_LIMIT", `PT_DYNAMIC of ${size} bytes`, at0(dseg.vaddr + bias));
    const at = dseg.vaddr + bias;
    const b = read(at, size);
    if (!b) throw new ElfError("ELF_UNMAPPED", `PT_DYNAMIC (${size} bytes) not readable`, at);
    const entries = readDynamicEntries(new ByteView(b, le, is64), 0, size);
    dynamic = new DynamicTables(entries, space, header.machine, header.osabi, is64);
  }
  let interp: string | undefined;
  const iseg = segments.find((s) => s.type === PT_INTERP);
  if (iseg && iseg.filesz < 4096n) {
    const b = read(iseg.vaddr + bias, Number(iseg.filesz));
    if (b) {
      let e = b.indexOf(0);
      if (e < 0) e = b.length;
      interp = decodeString(b, 0, e);
    }
  }
  return {
    header, segments, bias, dynamic,
    dynsym: dynamic?.symbols,
    needed: dynamic?.needed ?? [],
    soname: dynamic?.soname,
    bindNow: dynamic?.bindNow ?? false,
    interp,
    relocationTables: () => (dynamic ? dynamicRelocationTables(dynamic) : []),
  };
}

/** A MemoryReader over a file image laid out as in memory (tests, and images captured whole). */
export function readerFromSegments(file: Uint8Array, segments: Segment[], bias: bigint): MemoryReader {
  return (vaddr, len) => {
    for (const s of segments) {
      if (s.type !== PT_LOAD) continue;
      const lo = s.vaddr + bias;
      if (vaddr >= lo && vaddr + BigInt(len) <= lo + s.filesz) {
        const o = toIndex(s.offset + (vaddr - lo));
        if (o + len > file.length) return undefined;
        return file.subarray(o, o + len);
      }
    }
    return undefined;
  };
}
