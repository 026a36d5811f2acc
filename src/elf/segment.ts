/**
 * Program headers (gABI "Program Header"): the loader's view. The only structure a core file
 * or an image read back from memory is guaranteed to have.
 */
import { ElfError } from "./errors.js";
import { PHDR32, PHDR64, PT_NAMES, PF_R, PF_W, PF_X } from "./raw.js";
import { ByteView, toIndex } from "./view.js";

export class Segment {
  readonly index: number;
  readonly type: number;
  readonly flags: number;
  readonly offset: bigint;
  readonly vaddr: bigint;
  readonly paddr: bigint;
  readonly filesz: bigint;
  readonly memsz: bigint;
  readonly align: bigint;
  #file: ByteView;

  constructor(v: ByteView, off: number, index: number) {
    const L = v.is64 ? PHDR64 : PHDR32;
    this.index = index;
    this.type = v.u32(off + L.type);
    this.flags = v.u32(off + L.flags);
    this.offset = v.word(off + L.offset);
    this.vaddr = v.word(off + L.vaddr);
    this.paddr = v.word(off + L.paddr);
    this.filesz = v.word(off + L.filesz);
    this.memsz = v.word(off + L.memsz);
    this.align = v.word(off + L.align);
    this.#file = v;
  }

  /** readelf's spelling of p_type ("LOAD", "GNU_STACK", ...). */
  get typeName(): string {
    return PT_NAMES[this.type] ?? `0x${this.type.toString(16)}`;
  }

  /** "R E", "RW ", ... as readelf prints p_flags. */
  get flagsText(): string {
    return (this.flags & PF_R ? "R" : " ") + (this.flags & PF_W ? "W" : " ") + (this.flags & PF_X ? "E" : " ");
  }

  /** The segment's file bytes (p_offset, p_filesz), zero-copy; throws if outside the data. */
  data(): Uint8Array {
    const off = toIndex(this.offset);
    const len = toIndex(this.filesz);
    this.#file.need(off, len, `segment [${this.index}] ${this.typeName}`);
    return this.#file.bytes.subarray(off, off + len);
  }
}

export function readProgramHeaders(v: ByteView, off: number, count: number, entsize: number): Segment[] {
  const L = v.is64 ? PHDR64 : PHDR32;
  if (count === 0) return [];
  if (entsize < L.size) throw new ElfError("ELF_BAD_ENTSIZE", `program header size ${entsize} smaller than ${L.size}`, v.is64 ? 54 : 42);
  v.need(off, count * entsize, `program header table (${count} entries)`);
  const out: Segment[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = new Segment(v, off + i * entsize, i);
  return out;
}
