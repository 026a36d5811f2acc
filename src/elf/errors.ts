/**
 * The one error type of the ELF reader. `code` is stable (tests and callers match on it),
 * `offset` is the file offset (or, for images read from memory, the virtual address) where
 * reading went wrong, `detail` says what was wrong or expected, without the offset.
 */
export type ElfErrorCode =
  | "ELF_TRUNCATED" // a structure runs past the end of the data
  | "ELF_BAD_MAGIC" // not "\x7fELF"
  | "ELF_BAD_CLASS" // EI_CLASS is neither ELFCLASS32 nor ELFCLASS64
  | "ELF_BAD_DATA" // EI_DATA is neither little nor big endian
  | "ELF_BAD_ENTSIZE" // a table's entry size is smaller than its structure
  | "ELF_BAD_INDEX" // a section/symbol/string index out of range
  | "ELF_BAD_TABLE" // a table's header or chain is inconsistent (hash, version, notes, ...)
  | "ELF_LIMIT" // a named limit was hit (e.g. more relocations than MAX_ENTRIES)
  | "ELF_UNMAPPED" // a virtual address is not inside any PT_LOAD (or not readable in memory)
  | "ELF_MISSING"; // a structure the caller asked for does not exist

export class ElfError extends Error {
  override name = "ElfError";
  readonly code: ElfErrorCode;
  readonly offset: number | bigint;
  readonly detail: string;
  /** The path, when the caller knows it (set by the CLI and by file helpers). */
  file?: string;

  constructor(code: ElfErrorCode, detail: string, offset: number | bigint, file?: string) {
    super(`${detail} at offset ${offset}`);
    this.code = code;
    this.detail = detail;
    this.offset = offset;
    if (file !== undefined) this.file = file;
  }
}

/** Upper bound for any entry count we materialize (symbols, relocations, notes...). */
export const MAX_ENTRIES = 1 << 26;
