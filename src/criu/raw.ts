/**
 * CRIU's image constants: file magics (criu/include/magic.h), VMA status bits and pagemap
 * flags (criu/include/image.h, pagemap.h) of CRIU v4.2. Constants only, no logic.
 */

/** v1.1 images start with one of these, followed by the file's own magic (inventory excepted). */
export const IMG_COMMON_MAGIC = 0x54564319;
export const IMG_SERVICE_MAGIC = 0x55105940;

/** The per-file magics ckimg reads, by the file-name prefix they belong to. */
export const MAGIC = {
  inventory: 0x58313116,
  pstree: 0x50273030,
  fdinfo: 0x56213732,
  pagemap: 0x56084025,
  core: 0x55053847,
  ids: 0x54432030,
  vmas: 0x54123737,
  pipes: 0x56513555,
  pipesData: 0x56453709,
  fifo: 0x58364939,
  sigacts: 0x55344201,
  unixsk: 0x54373943,
  inetsk: 0x56443851,
  skQueues: 0x56264026,
  utsns: 0x54473203,
  creds: 0x54023547,
  regFiles: 0x50363636,
  fs: 0x51403912,
  mm: 0x57492820,
  ghostFile: 0x52583605,
  tty: 0x59433025,
  ttyInfo: 0x59453036,
  rlimit: 0x57113925,
  files: 0x56303138,
  eventfd: 0x44523722,
  eventpoll: 0x45023858,
  timerfd: 0x50493712,
  seccomp: 0x64413049,
  timens: 0x43114433,
  mnts: 0x55563928,
  stats: 0x57093306,
  irmapCache: 0x57004059,
  cgroup: 0x59383330,
  memfdInode: 0x48453499,
  tcpStream: 0x51465506,
} as const;

export type CriuImageKind = keyof typeof MAGIC;

/** magic → kind, for naming an unknown file by what it holds. */
export const MAGIC_NAMES: ReadonlyMap<number, CriuImageKind> = new Map(
  Object.entries(MAGIC).map(([k, v]) => [v, k as CriuImageKind]),
);

// vma_entry.status (criu/include/image.h)
export const VMA_AREA_REGULAR = 1 << 0;
export const VMA_AREA_STACK = 1 << 1;
export const VMA_AREA_VSYSCALL = 1 << 2;
export const VMA_AREA_VDSO = 1 << 3;
export const VMA_AREA_HEAP = 1 << 5;
export const VMA_FILE_PRIVATE = 1 << 6;
export const VMA_FILE_SHARED = 1 << 7;
export const VMA_ANON_SHARED = 1 << 8;
export const VMA_ANON_PRIVATE = 1 << 9;
export const VMA_AREA_SYSVIPC = 1 << 10;
export const VMA_AREA_SOCKET = 1 << 11;
export const VMA_AREA_VVAR = 1 << 12;
export const VMA_AREA_AIORING = 1 << 13;
export const VMA_AREA_MEMFD = 1 << 14;
export const VMA_AREA_SHSTK = 1 << 15;
export const VMA_AREA_GUARD = 1 << 16;
export const VMA_AREA_UPROBES = 1 << 17;
export const VMA_UNSUPP = 1 << 31;

// pagemap_entry.flags (criu/include/pagemap.h)
export const PE_PARENT = 1 << 0;
export const PE_LAZY = 1 << 1;
export const PE_PRESENT = 1 << 2;

// mmap(2) flags as CRIU stores them in vma_entry.flags
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_GROWSDOWN = 0x100;

// task_core_entry.task_state (compel/include/uapi/task-state.h)
export const TASK_ALIVE = 0x01;
export const TASK_DEAD = 0x02;
export const TASK_STOPPED = 0x03;
export const TASK_ZOMBIE = 0x06;

/** core_entry.mtype */
export const MTYPE_X86_64 = 1;

/** `struct xsave_struct` layout used to rebuild an XSAVE area from user_x86_fpregs_entry. */
export const XSAVE_LEGACY_SIZE = 512;
export const XSAVE_HEADER_SIZE = 64;
/** Offsets of the XSAVE components CRIU keeps (Intel SDM vol. 1, 13.4; standard format). */
export const XSAVE_YMM_OFFSET = 576;
export const XSAVE_OPMASK_OFFSET = 1088;
export const XSAVE_ZMM_UPPER_OFFSET = 1152;
export const XSAVE_HI16_ZMM_OFFSET = 1664;
export const XSAVE_PKRU_OFFSET = 2688;

/** The page size CRIU writes on x86-64 (pagemap nr_pages count these). */
export const CRIU_PAGE_SIZE = 4096;

/**
 * Bounds against hostile input: one protobuf entry of a metadata image (core-*.img with a
 * big seccomp or a long argv is a few KiB; mm with 64 Ki VMAs is ~4 MiB) and the whole of a
 * metadata file read into memory.
 */
export const MAX_ENTRY_SIZE = 64 << 20;
export const MAX_METADATA_FILE = 256 << 20;
