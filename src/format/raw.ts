/**
 * On-disk constants and field offsets of image format v1.0, exactly as docs/FORMAT.md gives
 * them. Constants only, no logic: the reader and writer import from here so that the
 * spec and the code have one meeting place.
 */

export const IMAGE_MAGIC = Uint8Array.of(0x89, 0x43, 0x4b, 0x49, 0x4d, 0x47, 0x0d, 0x0a); // "\x89CKIMG\r\n"
export const RECORD_MAGIC = Uint8Array.of(0x43, 0x4b, 0x52, 0x31); // "CKR1"
export const TRAILER_MAGIC = Uint8Array.of(0x43, 0x4b, 0x49, 0x4d, 0x47, 0x45, 0x4e, 0x44); // "CKIMGEND"

export const VERSION_MAJOR = 1;
export const VERSION_MINOR = 2;
export const HEADER_SIZE = 64;
export const RECORD_HEADER_SIZE = 32;
export const TRAILER_SIZE = 32;
export const INDEX_FIXED_SIZE = 16;
export const INDEX_ENTRY_SIZE = 40;
/** format 1.2: a tree image's INDEX entries carry owner_pid at offset 40 (entry_size 48). */
export const INDEX_ENTRY_SIZE_TREE = 48;
export const EM_X86_64 = 62;
/** Largest header_size a reader accepts (rule H5): bytes 64..header_size are skipped unread. */
export const MAX_HEADER_SIZE = 65536;

/** HEADER field offsets (section 1). */
export const HDR = {
  magic: 0, versionMajor: 8, versionMinor: 10, headerSize: 12, flags: 16, pageSize: 20,
  machine: 24, createdNs: 32, imageId: 40, crc: 60,
} as const;

/** RECORD_HEADER field offsets (section 2). */
export const REC = {
  magic: 0, type: 4, flags: 6, payloadLength: 8, payloadCrc: 16, sequence: 20, ownerPid: 24, crc: 28,
} as const;

/** TRAILER field offsets (section 3). */
export const TRL = { magic: 0, indexOffset: 8, recordCount: 16, flags: 24, crc: 28 } as const;

/** INDEX entry field offsets (section 3). */
export const IDX = {
  type: 0, flags: 2, key32: 4, offset: 8, payloadLength: 16, key64: 24, auxA: 32, auxB: 36,
  /** format 1.2, entry_size ≥ 48 */
  ownerPid: 40,
} as const;

export const RecordType = {
  PROCESS: 0x0001,
  ARGV: 0x0002,
  ENVIRON: 0x0003,
  AUXV: 0x0004,
  RLIMITS: 0x0005,
  SIGACTIONS: 0x0006,
  // format 1.1, per-process / per-thread state (records-state.ts)
  TIMERS: 0x0007,
  PROCESS_STATE: 0x0008,
  SECCOMP: 0x0009,
  // format 1.2 process trees (records-tree.ts)
  TREE: 0x000a,
  SHARED_PAGES: 0x000b,
  // format 1.2 incremental images (records-chain.ts)
  PARENT: 0x000e,
  PAGE_DIGESTS: 0x0023,
  THREAD: 0x0010,
  THREAD_STATE: 0x0011,
  // format 1.2: pending signals with their siginfo (records-state.ts)
  SIGQUEUE: 0x0012,
  EVENTFD: 0x0050,
  TIMERFD: 0x0051,
  SIGNALFD: 0x0052,
  EPOLL: 0x0053,
  INOTIFY: 0x0054,
  AREA: 0x0020,
  PAGES: 0x0021,
  // format 1.2: pages of an UNREADABLE area that could not be read (records-unreadable.ts)
  UNREADABLE_PAGES: 0x0022,
  MAPPED_FILE: 0x0030,
  // format 1.1 files and terminals (raw-files.ts)
  FILE_CONTENT: 0x0031,
  FILE_DATA: 0x0032,
  FD_FILE: 0x0033,
  FD: 0x0040,
  TTY: 0x0058,
  // format 1.2 SysV IPC objects (records-sysv.ts)
  SYSV_SHM: 0x0060,
  SYSV_SEM: 0x0061,
  SYSV_MSG: 0x0062,
  INDEX: 0x7ffe,
} as const;
export type RecordTypeCode = (typeof RecordType)[keyof typeof RecordType];

export const RECORD_TYPE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(RecordType).map(([name, code]) => [code, name]),
);

export const RECORD_FLAG_MUST_UNDERSTAND = 0x0001;

/** 1.0 sizes of each payload's FIXED part; a reader refuses smaller, skips what is larger. */
export const FIXED_SIZE = {
  PROCESS: 176, LIST: 8, SIGACTIONS: 16, THREAD: 88, AREA: 64, PAGES: 48, MAPPED_FILE: 80, FD: 56,
  INDEX: 16,
} as const;

export const RLIMIT_ENTRY_SIZE = 24;
export const SIGACTION_ENTRY_SIZE = 40;
export const AUXV_ENTRY_SIZE = 16;

/** Reader limits (section 5). */
export const MAX_METADATA_PAYLOAD = 64 * 1024 * 1024;
export const MAX_CHUNK_RAW = 64 * 1024 * 1024;
export const MAX_SPAN_PAGES = 1 << 20;
/** Writers place page spans on this grid so images of one process chunk alike. */
export const SPAN_GRID_PAGES = 256;

/** PROCESS FIXED offsets. */
export const PROC = {
  pid: 4, ppid: 8, pgid: 12, sid: 16, uid: 20, gid: 36, personality: 52, umask: 56,
  threadCount: 60, captureNs: 64, startTime: 72, mm: 80, flags: 168,
} as const;
export const PROCESS_STOPPED = 0x1;

/** THREAD FIXED offsets. */
export const THR = {
  tid: 4, flags: 8, state: 12, sigmask: 16, pending: 24, clearChildTid: 32, robustList: 40,
  robustListLen: 48, altstackSp: 56, altstackSize: 64, altstackFlags: 72, regsSize: 76,
  xstateSize: 80,
} as const;
export const THREAD_MAIN = 0x1;
export const THREAD_IN_SYSCALL = 0x2;
export const THREAD_FPREGS_ONLY = 0x4;

/** x86-64 `struct user_regs_struct`, in kernel order (27 × u64 = 216 bytes). */
export const X86_64_REG_NAMES = [
  "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
  "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds",
  "es", "fs", "gs",
] as const;
export const X86_64_REGS_SIZE = 216;

/** AREA FIXED offsets. */
export const AREA = {
  areaId: 4, start: 8, end: 16, fileOffset: 24, devMajor: 32, devMinor: 36, inode: 40,
  prot: 48, flags: 52, kind: 56, fileId: 60,
} as const;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
export const NO_FILE = 0xffffffff;

export const AREA_FLAG_NAMES = [
  "shared", "growsdown", "deleted", "dontdump", "hugepage", "nohugepage", "locked",
  "noreserve", "dontfork", "wipeonfork", "mergeable", "unreadable",
] as const;
export type AreaFlagName = (typeof AREA_FLAG_NAMES)[number];
export const AREA_SHARED = 1 << 0;
export const AREA_DELETED = 1 << 2;
export const AREA_UNREADABLE = 1 << 11;

export const AREA_KINDS = ["anon", "file", "heap", "stack", "vdso", "vvar", "vsyscall", "shmem", "special"] as const;
export type AreaKind = (typeof AREA_KINDS)[number];

/** PAGES FIXED offsets. */
export const PAGES = {
  areaId: 4, firstPage: 8, spanPages: 16, storedPages: 20, codec: 24, storedSize: 28,
  rawCrc: 32, dataOffset: 36,
} as const;

/** MAPPED_FILE FIXED offsets. */
export const MFILE = {
  fileId: 4, devMajor: 8, devMinor: 12, inode: 16, size: 24, mtimeNs: 32, mode: 40, flags: 44,
  sha256: 48,
} as const;
export const MFILE_SHA256 = 1 << 0;
export const MFILE_BUILD_ID = 1 << 1;
export const MFILE_ELF = 1 << 2;
export const MFILE_DELETED = 1 << 3;
export const MFILE_UNREADABLE = 1 << 4;

/** FD FIXED offsets. */
export const FDR = {
  fd: 4, kind: 8, openFlags: 12, fdFlags: 16, mode: 20, pos: 24, devMajor: 32, devMinor: 36,
  inode: 40, rdevMajor: 48, rdevMinor: 52,
  // format 1.1 (fixed_size 80)
  fileId: 56, ownerType: 60, ownerId: 64, ownerSignal: 68, state: 72,
} as const;
/** FD FIXED size written by format 1.1 writers (readers accept the 1.0 size, 56). */
export const FD_FIXED_SIZE_1_1 = 80;
/** FD.state bit: the fd cannot be brought back; the note says why. */
export const FD_STATE_UNRESTORABLE = 0x1;
/** FD.state bit: its other end is in a process outside the image; it comes back detached. */
export const FD_STATE_PEER_OUTSIDE = 0x2;
export const FD_CLOEXEC = 0x1;
export const FD_KINDS = ["unknown", "regular", "directory", "chardev", "blockdev", "fifo", "socket", "tty", "anon_inode"] as const;
export type FdKind = (typeof FD_KINDS)[number];
