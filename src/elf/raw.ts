/**
 * ELF on-disk constants and field layouts (the equivalent of <elf.h>): no logic here.
 * Sources: System V gABI (4.1 + 2013 drafts), x86-64 psABI, LSB, glibc <elf.h>, binutils
 * include/elf/common.h. Names keep the spec's spelling so grep finds them.
 */

// ---- e_ident ---------------------------------------------------------------------------
export const ELFMAG = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7fELF"
export const EI_CLASS = 4;
export const EI_DATA = 5;
export const EI_VERSION = 6;
export const EI_OSABI = 7;
export const EI_ABIVERSION = 8;
export const EI_NIDENT = 16;
export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ELFDATA2MSB = 2;

// ---- e_type ----------------------------------------------------------------------------
export const ET_NONE = 0;
export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const ET_CORE = 4;
export const ET_NAMES: Record<number, string> = { 0: "NONE", 1: "REL", 2: "EXEC", 3: "DYN", 4: "CORE" };

// ---- e_machine (the common ones; others print as numbers) --------------------------------
export const EM_386 = 3;
export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;
export const EM_NAMES: Record<number, string> = {
  0: "None", 2: "SPARC", 3: "Intel 80386", 8: "MIPS R3000", 20: "PowerPC", 21: "PowerPC64",
  22: "IBM S/390", 40: "ARM", 42: "Renesas / SuperH SH", 43: "Sparc v9", 50: "Intel IA-64",
  62: "Advanced Micro Devices X86-64", 183: "AArch64", 243: "RISC-V", 247: "Linux BPF",
  258: "LoongArch",
};

// ---- Field layouts: byte offsets inside each structure, per class --------------------------
/** Elf32_Ehdr / Elf64_Ehdr. */
export const EHDR32 = { size: 52, type: 16, machine: 18, version: 20, entry: 24, phoff: 28, shoff: 32, flags: 36, ehsize: 40, phentsize: 42, phnum: 44, shentsize: 46, shnum: 48, shstrndx: 50 } as const;
export const EHDR64 = { size: 64, type: 16, machine: 18, version: 20, entry: 24, phoff: 32, shoff: 40, flags: 48, ehsize: 52, phentsize: 54, phnum: 56, shentsize: 58, shnum: 60, shstrndx: 62 } as const;
/** Elf32_Phdr (p_flags after p_memsz) / Elf64_Phdr (p_flags second). */
export const PHDR32 = { size: 32, type: 0, offset: 4, vaddr: 8, paddr: 12, filesz: 16, memsz: 20, flags: 24, align: 28 } as const;
export const PHDR64 = { size: 56, type: 0, flags: 4, offset: 8, vaddr: 16, paddr: 24, filesz: 32, memsz: 40, align: 48 } as const;
/** Elf32_Shdr / Elf64_Shdr. */
export const SHDR32 = { size: 40, name: 0, type: 4, flags: 8, addr: 12, offset: 16, size_: 20, link: 24, info: 28, addralign: 32, entsize: 36 } as const;
export const SHDR64 = { size: 64, name: 0, type: 4, flags: 8, addr: 16, offset: 24, size_: 32, link: 40, info: 44, addralign: 48, entsize: 56 } as const;
/** Elf32_Sym (value, size, info, other, shndx) / Elf64_Sym (info, other, shndx, value, size). */
export const SYM32 = { size: 16, name: 0, value: 4, size_: 8, info: 12, other: 13, shndx: 14 } as const;
export const SYM64 = { size: 24, name: 0, info: 4, other: 5, shndx: 6, value: 8, size_: 16 } as const;
/** Elf32_Dyn / Elf64_Dyn: d_tag then d_un, each one word. */
export const DYN32 = { size: 8, tag: 0, val: 4 } as const;
export const DYN64 = { size: 16, tag: 0, val: 8 } as const;
/** Elf32_Rel(a) / Elf64_Rel(a): r_offset, r_info[, r_addend]. */
export const REL32 = { size: 8, relaSize: 12, offset: 0, info: 4, addend: 8 } as const;
export const REL64 = { size: 16, relaSize: 24, offset: 0, info: 8, addend: 16 } as const;
/** Elf_Nhdr: namesz, descsz, type, then name and desc each padded to 4 (8 for some GNU notes). */
export const NHDR = { size: 12, namesz: 0, descsz: 4, type: 8 } as const;
/** Elf_Verdef: vd_version, vd_flags, vd_ndx, vd_cnt, vd_hash, vd_aux, vd_next. */
export const VERDEF = { size: 20, version: 0, flags: 2, ndx: 4, cnt: 6, hash: 8, aux: 12, next: 16 } as const;
/** Elf_Verdaux: vda_name, vda_next. */
export const VERDAUX = { size: 8, name: 0, next: 4 } as const;
/** Elf_Verneed: vn_version, vn_cnt, vn_file, vn_aux, vn_next. */
export const VERNEED = { size: 16, version: 0, cnt: 2, file: 4, aux: 8, next: 12 } as const;
/** Elf_Vernaux: vna_hash, vna_flags, vna_other, vna_name, vna_next. */
export const VERNAUX = { size: 16, hash: 0, flags: 4, other: 6, name: 8, next: 12 } as const;

// ---- Program header types and flags -------------------------------------------------------
export const PT_NULL = 0;
export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_INTERP = 3;
export const PT_NOTE = 4;
export const PT_SHLIB = 5;
export const PT_PHDR = 6;
export const PT_TLS = 7;
export const PT_GNU_EH_FRAME = 0x6474e550;
export const PT_GNU_STACK = 0x6474e551;
export const PT_GNU_RELRO = 0x6474e552;
export const PT_GNU_PROPERTY = 0x6474e553;
export const PT_NAMES: Record<number, string> = {
  0: "NULL", 1: "LOAD", 2: "DYNAMIC", 3: "INTERP", 4: "NOTE", 5: "SHLIB", 6: "PHDR", 7: "TLS",
  0x6474e550: "GNU_EH_FRAME", 0x6474e551: "GNU_STACK", 0x6474e552: "GNU_RELRO", 0x6474e553: "GNU_PROPERTY",
};
export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;

// ---- Section header types, flags and special indexes ----------------------------------------
export const SHT_NULL = 0;
export const SHT_PROGBITS = 1;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_RELA = 4;
export const SHT_HASH = 5;
export const SHT_DYNAMIC = 6;
export const SHT_NOTE = 7;
export const SHT_NOBITS = 8;
export const SHT_REL = 9;
export const SHT_SHLIB = 10;
export const SHT_DYNSYM = 11;
export const SHT_INIT_ARRAY = 14;
export const SHT_FINI_ARRAY = 15;
export const SHT_PREINIT_ARRAY = 16;
export const SHT_GROUP = 17;
export const SHT_SYMTAB_SHNDX = 18;
export const SHT_RELR = 19;
export const SHT_GNU_ATTRIBUTES = 0x6ffffff5;
export const SHT_GNU_HASH = 0x6ffffff6;
export const SHT_GNU_LIBLIST = 0x6ffffff7;
export const SHT_GNU_VERDEF = 0x6ffffffd;
export const SHT_GNU_VERNEED = 0x6ffffffe;
export const SHT_GNU_VERSYM = 0x6fffffff;
export const SHT_NAMES: Record<number, string> = {
  0: "NULL", 1: "PROGBITS", 2: "SYMTAB", 3: "STRTAB", 4: "RELA", 5: "HASH", 6: "DYNAMIC", 7: "NOTE",
  8: "NOBITS", 9: "REL", 10: "SHLIB", 11: "DYNSYM", 14: "INIT_ARRAY", 15: "FINI_ARRAY",
  16: "PREINIT_ARRAY", 17: "GROUP", 18: "SYMTAB SECTION INDICES", 19: "RELR",
  0x6ffffff5: "GNU_ATTRIBUTES", 0x6ffffff6: "GNU_HASH", 0x6ffffff7: "GNU_LIBLIST",
  0x6ffffffd: "VERDEF", 0x6ffffffe: "VERNEED", 0x6fffffff: "VERSYM",
};
export const SHF_WRITE = 0x1;
export const SHF_ALLOC = 0x2;
export const SHF_EXECINSTR = 0x4;
export const SHF_COMPRESSED = 0x800;

export const SHN_UNDEF = 0;
export const SHN_LORESERVE = 0xff00;
export const SHN_LOPROC = 0xff00;
export const SHN_HIPROC = 0xff1f;
export const SHN_LOOS = 0xff20;
export const SHN_HIOS = 0xff3f;
export const SHN_ABS = 0xfff1;
export const SHN_COMMON = 0xfff2;
export const SHN_XINDEX = 0xffff;

// ---- Symbols -------------------------------------------------------------------------------
export const STB_LOCAL = 0;
export const STB_GLOBAL = 1;
export const STB_WEAK = 2;
export const STB_GNU_UNIQUE = 10;
export const STT_NOTYPE = 0;
export const STT_OBJECT = 1;
export const STT_FUNC = 2;
export const STT_SECTION = 3;
export const STT_FILE = 4;
export const STT_COMMON = 5;
export const STT_TLS = 6;
export const STT_GNU_IFUNC = 10;
export const STV_DEFAULT = 0;
export const STV_INTERNAL = 1;
export const STV_HIDDEN = 2;
export const STV_PROTECTED = 3;
/** readelf's spellings, indexed by value. */
export const STB_NAMES = ["LOCAL", "GLOBAL", "WEAK"] as const;
export const STT_NAMES = ["NOTYPE", "OBJECT", "FUNC", "SECTION", "FILE", "COMMON", "TLS"] as const;
export const STV_NAMES = ["DEFAULT", "INTERNAL", "HIDDEN", "PROTECTED"] as const;

// ---- Symbol versioning (Solaris/GNU) --------------------------------------------------------
export const VER_NDX_LOCAL = 0;
export const VER_NDX_GLOBAL = 1;
export const VERSYM_HIDDEN = 0x8000;
export const VERSYM_VERSION = 0x7fff;
export const VER_FLG_BASE = 0x1;

// ---- Dynamic section ----------------------------------------------------------------------
export const DT_NULL = 0;
export const DT_NEEDED = 1;
export const DT_PLTRELSZ = 2;
export const DT_PLTGOT = 3;
export const DT_HASH = 4;
export const DT_STRTAB = 5;
export const DT_SYMTAB = 6;
export const DT_RELA = 7;
export const DT_RELASZ = 8;
export const DT_RELAENT = 9;
export const DT_STRSZ = 10;
export const DT_SYMENT = 11;
export const DT_INIT = 12;
export const DT_FINI = 13;
export const DT_SONAME = 14;
export const DT_RPATH = 15;
export const DT_SYMBOLIC = 16;
export const DT_REL = 17;
export const DT_RELSZ = 18;
export const DT_RELENT = 19;
export const DT_PLTREL = 20;
export const DT_DEBUG = 21;
export const DT_TEXTREL = 22;
export const DT_JMPREL = 23;
export const DT_BIND_NOW = 24;
export const DT_INIT_ARRAY = 25;
export const DT_FINI_ARRAY = 26;
export const DT_INIT_ARRAYSZ = 27;
export const DT_FINI_ARRAYSZ = 28;
export const DT_RUNPATH = 29;
export const DT_FLAGS = 30;
export const DT_PREINIT_ARRAY = 32;
export const DT_PREINIT_ARRAYSZ = 33;
export const DT_SYMTAB_SHNDX = 34;
export const DT_RELRSZ = 35;
export const DT_RELR = 36;
export const DT_RELRENT = 37;
export const DT_GNU_HASH = 0x6ffffef5;
export const DT_VERSYM = 0x6ffffff0;
export const DT_RELACOUNT = 0x6ffffff9;
export const DT_RELCOUNT = 0x6ffffffa;
export const DT_FLAGS_1 = 0x6ffffffb;
export const DT_VERDEF = 0x6ffffffc;
export const DT_VERDEFNUM = 0x6ffffffd;
export const DT_VERNEED = 0x6ffffffe;
export const DT_VERNEEDNUM = 0x6fffffff;
export const DT_AUXILIARY = 0x7ffffffd;
export const DT_FILTER = 0x7fffffff;
/** readelf's spelling of each tag (get_dynamic_type), without the DT_ prefix. */
export const DT_NAMES: Record<number, string> = {
  0: "NULL", 1: "NEEDED", 2: "PLTRELSZ", 3: "PLTGOT", 4: "HASH", 5: "STRTAB", 6: "SYMTAB",
  7: "RELA", 8: "RELASZ", 9: "RELAENT", 10: "STRSZ", 11: "SYMENT", 12: "INIT", 13: "FINI",
  14: "SONAME", 15: "RPATH", 16: "SYMBOLIC", 17: "REL", 18: "RELSZ", 19: "RELENT", 20: "PLTREL",
  21: "DEBUG", 22: "TEXTREL", 23: "JMPREL", 24: "BIND_NOW", 25: "INIT_ARRAY", 26: "FINI_ARRAY",
  27: "INIT_ARRAYSZ", 28: "FINI_ARRAYSZ", 29: "RUNPATH", 30: "FLAGS", 32: "PREINIT_ARRAY",
  33: "PREINIT_ARRAYSZ", 34: "SYMTAB_SHNDX", 35: "RELRSZ", 36: "RELR", 37: "RELRENT",
  0x6ffffdf4: "GNU_FLAGS_1", 0x6ffffdf5: "GNU_PRELINKED", 0x6ffffdf6: "GNU_CONFLICTSZ",
  0x6ffffdf7: "GNU_LIBLISTSZ", 0x6ffffdf8: "CHECKSUM", 0x6ffffdf9: "PLTPADSZ", 0x6ffffdfa: "MOVEENT",
  0x6ffffdfb: "MOVESZ", 0x6ffffdfc: "FEATURE", 0x6ffffdfd: "POSFLAG_1", 0x6ffffdfe: "SYMINSZ",
  0x6ffffdff: "SYMINENT", 0x6ffffef5: "GNU_HASH", 0x6ffffef6: "TLSDESC_PLT", 0x6ffffef7: "TLSDESC_GOT",
  0x6ffffef8: "GNU_CONFLICT", 0x6ffffef9: "GNU_LIBLIST", 0x6ffffefa: "CONFIG", 0x6ffffefb: "DEPAUDIT",
  0x6ffffefc: "AUDIT", 0x6ffffefd: "PLTPAD", 0x6ffffefe: "MOVETAB", 0x6ffffeff: "SYMINFO",
  0x6ffffff0: "VERSYM", 0x6ffffff9: "RELACOUNT", 0x6ffffffa: "RELCOUNT", 0x6ffffffb: "FLAGS_1",
  0x6ffffffc: "VERDEF", 0x6ffffffd: "VERDEFNUM", 0x6ffffffe: "VERNEED", 0x6fffffff: "VERNEEDNUM",
  0x7ffffffd: "AUXILIARY", 0x7ffffffe: "USED", 0x7fffffff: "FILTER",
};
/** DT_FLAGS bits. */
export const DF_ORIGIN = 0x1;
export const DF_SYMBOLIC = 0x2;
export const DF_TEXTREL = 0x4;
export const DF_BIND_NOW = 0x8;
export const DF_STATIC_TLS = 0x10;
export const DF_NAMES: [number, string][] = [[0x1, "ORIGIN"], [0x2, "SYMBOLIC"], [0x4, "TEXTREL"], [0x8, "BIND_NOW"], [0x10, "STATIC_TLS"]];
/** DT_FLAGS_1 bits, readelf's spellings in bit order. */
export const DF_1_NOW = 0x1;
export const DF_1_PIE = 0x08000000;
export const DF_1_NAMES: [number, string][] = [
  [0x1, "NOW"], [0x2, "GLOBAL"], [0x4, "GROUP"], [0x8, "NODELETE"], [0x10, "LOADFLTR"],
  [0x20, "INITFIRST"], [0x40, "NOOPEN"], [0x80, "ORIGIN"], [0x100, "DIRECT"], [0x200, "TRANS"],
  [0x400, "INTERPOSE"], [0x800, "NODEFLIB"], [0x1000, "NODUMP"], [0x2000, "CONFALT"],
  [0x4000, "ENDFILTEE"], [0x8000, "DISPRELDNE"], [0x10000, "DISPRELPND"], [0x20000, "NODIRECT"],
  [0x40000, "IGNMULDEF"], [0x80000, "NOKSYMS"], [0x100000, "NOHDR"], [0x200000, "EDITED"],
  [0x400000, "NORELOC"], [0x800000, "SYMINTPOSE"], [0x1000000, "GLOBAUDIT"], [0x2000000, "SINGLETON"],
  [0x4000000, "STUB"], [0x8000000, "PIE"], [0x10000000, "KMOD"], [0x20000000, "WEAKFILTER"],
  [0x40000000, "NOCOMMON"],
];

// ---- Relocation types ----------------------------------------------------------------------
/** x86-64 psABI relocation types, indexed by number (binutils 2.40 spellings). */
export const R_X86_64_NAMES: readonly string[] = [
  "R_X86_64_NONE", "R_X86_64_64", "R_X86_64_PC32", "R_X86_64_GOT32", "R_X86_64_PLT32",
  "R_X86_64_COPY", "R_X86_64_GLOB_DAT", "R_X86_64_JUMP_SLOT", "R_X86_64_RELATIVE",
  "R_X86_64_GOTPCREL", "R_X86_64_32", "R_X86_64_32S", "R_X86_64_16", "R_X86_64_PC16",
  "R_X86_64_8", "R_X86_64_PC8", "R_X86_64_DTPMOD64", "R_X86_64_DTPOFF64", "R_X86_64_TPOFF64",
  "R_X86_64_TLSGD", "R_X86_64_TLSLD", "R_X86_64_DTPOFF32", "R_X86_64_GOTTPOFF",
  "R_X86_64_TPOFF32", "R_X86_64_PC64", "R_X86_64_GOTOFF64", "R_X86_64_GOTPC32",
  "R_X86_64_GOT64", "R_X86_64_GOTPCREL64", "R_X86_64_GOTPC64", "R_X86_64_GOTPLT64",
  "R_X86_64_PLTOFF64", "R_X86_64_SIZE32", "R_X86_64_SIZE64", "R_X86_64_GOTPC32_TLSDESC",
  "R_X86_64_TLSDESC_CALL", "R_X86_64_TLSDESC", "R_X86_64_IRELATIVE", "R_X86_64_RELATIVE64",
  "R_X86_64_PC32_BND", "R_X86_64_PLT32_BND", "R_X86_64_GOTPCRELX", "R_X86_64_REX_GOTPCRELX",
];
export const R_X86_64_GLOB_DAT = 6;
export const R_X86_64_JUMP_SLOT = 7;
export const R_X86_64_RELATIVE = 8;
export const R_X86_64_IRELATIVE = 37;
/** i386 psABI relocation types (holes are unassigned numbers). */
export const R_386_NAMES: Record<number, string> = {
  0: "R_386_NONE", 1: "R_386_32", 2: "R_386_PC32", 3: "R_386_GOT32", 4: "R_386_PLT32",
  5: "R_386_COPY", 6: "R_386_GLOB_DAT", 7: "R_386_JUMP_SLOT", 8: "R_386_RELATIVE",
  9: "R_386_GOTOFF", 10: "R_386_GOTPC", 11: "R_386_32PLT", 14: "R_386_TLS_TPOFF",
  15: "R_386_TLS_IE", 16: "R_386_TLS_GOTIE", 17: "R_386_TLS_LE", 18: "R_386_TLS_GD",
  19: "R_386_TLS_LDM", 20: "R_386_16", 21: "R_386_PC16", 22: "R_386_8", 23: "R_386_PC8",
  24: "R_386_TLS_GD_32", 25: "R_386_TLS_GD_PUSH", 26: "R_386_TLS_GD_CALL", 27: "R_386_TLS_GD_POP",
  28: "R_386_TLS_LDM_32", 29: "R_386_TLS_LDM_PUSH", 30: "R_386_TLS_LDM_CALL",
  31: "R_386_TLS_LDM_POP", 32: "R_386_TLS_LDO_32", 33: "R_386_TLS_IE_32", 34: "R_386_TLS_LE_32",
  35: "R_386_TLS_DTPMOD32", 36: "R_386_TLS_DTPOFF32", 37: "R_386_TLS_TPOFF32", 38: "R_386_SIZE32",
  39: "R_386_TLS_GOTDESC", 40: "R_386_TLS_DESC_CALL", 41: "R_386_TLS_DESC", 42: "R_386_IRELATIVE",
  43: "R_386_GOT32X", 250: "R_386_GNU_VTINHERIT", 251: "R_386_GNU_VTENTRY",
};
export const R_386_GLOB_DAT = 6;
export const R_386_JUMP_SLOT = 7;
export const R_386_RELATIVE = 8;
export const R_386_IRELATIVE = 42;

// ---- Notes ---------------------------------------------------------------------------------
export const NT_GNU_ABI_TAG = 1;
export const NT_GNU_HWCAP = 2;
export const NT_GNU_BUILD_ID = 3;
export const NT_GNU_GOLD_VERSION = 4;
export const NT_GNU_PROPERTY_TYPE_0 = 5;
export const NT_PRSTATUS = 1;
export const NT_FPREGSET = 2;
export const NT_PRPSINFO = 3;
export const NT_TASKSTRUCT = 4;
export const NT_AUXV = 6;
export const NT_PRXFPREG = 0x46e62b7f;
export const NT_X86_XSTATE = 0x202;
export const NT_SIGINFO = 0x53494749;
export const NT_FILE = 0x46494c45;
/** GNU property types (NT_GNU_PROPERTY_TYPE_0 payload), x86 psABI §"Program Property". */
export const GNU_PROPERTY_STACK_SIZE = 1;
export const GNU_PROPERTY_NO_COPY_ON_PROTECTED = 2;
export const GNU_PROPERTY_X86_ISA_1_USED = 0xc0010002;
export const GNU_PROPERTY_X86_ISA_1_NEEDED = 0xc0008002;
export const GNU_PROPERTY_X86_FEATURE_1_AND = 0xc0000002;
export const GNU_PROPERTY_X86_FEATURE_2_USED = 0xc0010001;
export const GNU_PROPERTY_X86_FEATURE_2_NEEDED = 0xc0008001;
export const GNU_PROPERTY_X86_FEATURE_1_IBT = 0x1;
export const GNU_PROPERTY_X86_FEATURE_1_SHSTK = 0x2;
export const GNU_PROPERTY_X86_FEATURE_1_LAM_U48 = 0x4;
export const GNU_PROPERTY_X86_FEATURE_1_LAM_U57 = 0x8;
export const GNU_PROPERTY_1_NEEDED = 0xb0008000;

/** Auxiliary vector types (NT_AUXV), <elf.h>. */
export const AT_NAMES: Record<number, string> = {
  0: "AT_NULL", 1: "AT_IGNORE", 2: "AT_EXECFD", 3: "AT_PHDR", 4: "AT_PHENT", 5: "AT_PHNUM",
  6: "AT_PAGESZ", 7: "AT_BASE", 8: "AT_FLAGS", 9: "AT_ENTRY", 10: "AT_NOTELF", 11: "AT_UID",
  12: "AT_EUID", 13: "AT_GID", 14: "AT_EGID", 15: "AT_PLATFORM", 16: "AT_HWCAP", 17: "AT_CLKTCK",
  23: "AT_SECURE", 24: "AT_BASE_PLATFORM", 25: "AT_RANDOM", 26: "AT_HWCAP2", 27: "AT_RSEQ_FEATURE_SIZE",
  28: "AT_RSEQ_ALIGN", 31: "AT_EXECFN", 32: "AT_SYSINFO", 33: "AT_SYSINFO_EHDR", 51: "AT_MINSIGSTKSZ",
};
/** String-valued Solaris/GNU tags. */
export const DT_CONFIG = 0x6ffffefa;
export const DT_DEPAUDIT = 0x6ffffefb;
export const DT_AUDIT = 0x6ffffefc;

/** AArch64 relocation types (ELF for the Arm 64-bit Architecture), the dynamic ones and common static ones. */
export const R_AARCH64_NAMES: Record<number, string> = {
  0: "R_AARCH64_NONE", 257: "R_AARCH64_ABS64", 258: "R_AARCH64_ABS32", 259: "R_AARCH64_ABS16",
  260: "R_AARCH64_PREL64", 261: "R_AARCH64_PREL32", 262: "R_AARCH64_PREL16",
  275: "R_AARCH64_ADR_PREL_PG_HI21", 277: "R_AARCH64_ADD_ABS_LO12_NC", 282: "R_AARCH64_JUMP26",
  283: "R_AARCH64_CALL26", 286: "R_AARCH64_LDST64_ABS_LO12_NC", 311: "R_AARCH64_ADR_GOT_PAGE",
  312: "R_AARCH64_LD64_GOT_LO12_NC",
  1024: "R_AARCH64_COPY", 1025: "R_AARCH64_GLOB_DAT", 1026: "R_AARCH64_JUMP_SLOT",
  1027: "R_AARCH64_RELATIVE", 1028: "R_AARCH64_TLS_DTPMOD64", 1029: "R_AARCH64_TLS_DTPREL64",
  1030: "R_AARCH64_TLS_TPREL64", 1031: "R_AARCH64_TLSDESC", 1032: "R_AARCH64_IRELATIVE",
};

/** MIPS processor-specific dynamic tags (readelf's spellings, "MIPS_" prefixed). */
export const DT_MIPS_NAMES: Record<number, string> = {
  0x70000001: "MIPS_RLD_VERSION", 0x70000002: "MIPS_TIME_STAMP", 0x70000003: "MIPS_ICHECKSUM",
  0x70000004: "MIPS_IVERSION", 0x70000005: "MIPS_FLAGS", 0x70000006: "MIPS_BASE_ADDRESS",
  0x70000007: "MIPS_MSYM", 0x70000008: "MIPS_CONFLICT", 0x70000009: "MIPS_LIBLIST",
  0x7000000a: "MIPS_LOCAL_GOTNO", 0x7000000b: "MIPS_CONFLICTNO", 0x70000010: "MIPS_LIBLISTNO",
  0x70000011: "MIPS_SYMTABNO", 0x70000012: "MIPS_UNREFEXTNO", 0x70000013: "MIPS_GOTSYM",
  0x70000014: "MIPS_HIPAGENO", 0x70000016: "MIPS_RLD_MAP", 0x70000029: "MIPS_OPTIONS",
  0x7000002a: "MIPS_INTERFACE", 0x7000002b: "MIPS_DYNSTR_ALIGN", 0x7000002c: "MIPS_INTERFACE_SIZE",
  0x7000002d: "MIPS_RLD_TEXT_RESOLVE_ADDR", 0x7000002e: "MIPS_PERF_SUFFIX", 0x7000002f: "MIPS_COMPACT_SIZE",
  0x70000030: "MIPS_GP_VALUE", 0x70000031: "MIPS_AUX_DYNAMIC", 0x70000032: "MIPS_PLTGOT",
  0x70000034: "MIPS_RWPLT", 0x70000035: "MIPS_RLD_MAP_REL", 0x70000036: "MIPS_XHASH",
};
export const EM_MIPS = 8;
