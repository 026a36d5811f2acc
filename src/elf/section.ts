/**
 * Section headers (gABI "Sections"): a lazy list over the section header table. Names come
 * from e_shstrndx's string table when asked for.
 */
import { ElfError } from "./errors.js";
import { SHDR32, SHDR64, SHT_NOBITS, SHT_NAMES } from "./raw.js";
import type { StringTable } from "./strtab.js";
import { ByteView, toIndex } from "./view.js";

export class Section {
  readonly index: number;
  readonly nameOffset: number;
  readonly type: number;
  readonly flags: bigint;
  readonly addr: bigint;
  readonly offset: bigint;
  readonly size: bigint;
  readonly link: number;
  readonly info: number;
  readonly addralign: bigint;
  readonly entsize: bigint;
  /** File offset of this section's header, for error reports. */
  readonly headerOffset: number;
  #names: { table?: StringTable };
  #name: string | undefined;
  #file: ByteView;

  constructor(v: ByteView, off: number, index: number, names: { table?: StringTable }) {
    const L = v.is64 ? SHDR64 : SHDR32;
    this.index = index;
    this.headerOffset = off;
    this.nameOffset = v.u32(off + L.name);
    this.type = v.u32(off + L.type);
    this.flags = v.word(off + L.flags);
    this.addr = v.word(off + L.addr);
    this.offset = v.word(off + L.offset);
    this.size = v.word(off + L.size_);
    this.link = v.u32(off + L.link);
    this.info = v.u32(off + L.info);
    this.addralign = v.word(off + L.addralign);
    this.entsize = v.word(off + L.entsize);
    this.#names = names;
    this.#file = v;
  }

  /** Section name from .shstrtab; "" when there is no name table, "<corrupt>" when out of range. */
  get name(): string {
    if (this.#name === undefined) {
      const t = this.#names.table;
      this.#name = t ? t.getOr(this.nameOffset) : "";
    }
    return this.#name;
  }

  /** readelf's spelling of sh_type ("PROGBITS", "DYNSYM", ...). */
  get typeName(): string {
    return SHT_NAMES[this.type] ?? `0x${this.type.toString(16)}`;
  }

  /** Whether the section occupies file bytes (everything but SHT_NOBITS). */
  get hasFileData(): boolean {
    return this.type !== SHT_NOBITS;
  }

  /** The section's bytes, zero-copy. SHT_NOBITS gives an empty array; out-of-file ranges throw. */
  data(): Uint8Array {
    if (this.type === SHT_NOBITS) return new Uint8Array(0);
    const off = toIndex(this.offset);
    const len = toIndex(this.size);
    this.#file.need(off, len, `section [${this.index}] '${this.name}'`);
    return this.#file.bytes.subarray(off, off + len);
  }

  /** The section's file offset and size as numbers, checked against the data. */
  range(): { offset: number; size: number } {
    const off = toIndex(this.offset);
    const len = this.type === SHT_NOBITS ? 0 : toIndex(this.size);
    this.#file.need(off, len, `section [${this.index}] '${this.name}'`);
    return { offset: off, size: len };
  }
}

/**
 * Parse `count` section headers at `off`; throws ELF_TRUNCATED/ELF_BAD_ENTSIZE before allocating.
 * `names` is filled in by the caller once e_shstrndx is known (names stay lazy).
 */
export function readSectionHeaders(v: ByteView, off: number, count: number, entsize: number, names: { table?: StringTable }): Section[] {
  const L = v.is64 ? SHDR64 : SHDR32;
  if (count === 0) return [];
  if (entsize < L.size) throw new ElfError("ELF_BAD_ENTSIZE", `section header size ${entsize} smaller than ${L.size}`, v.is64 ? 58 : 46);
  v.need(off, count * entsize, `section header table (${count} entries)`);
  const out: Section[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = new Section(v, off + i * entsize, i, names);
  return out;
}
