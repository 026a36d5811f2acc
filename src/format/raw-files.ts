/**
 * Format 1.1 layouts of files and terminals (docs/FORMAT.md "Files and terminals"): FIXED
 * offsets and flag values of FILE_CONTENT, FILE_DATA, FD_FILE and TTY. Constants only.
 */

export const FILES_RECORD_TYPES = {
  FILE_CONTENT: 0x0031,
  FILE_DATA: 0x0032,
  FD_FILE: 0x0033,
  TTY: 0x0058,
} as const;

export const FILES_FIXED_SIZE = { FILE_CONTENT: 72, FILE_DATA: 40, FD_FILE: 40, TTY: 96 } as const;

/** FILE_CONTENT FIXED offsets. */
export const FILE_CONTENT = {
  contentId: 4, kind: 8, flags: 12, devMajor: 16, devMinor: 20, inode: 24, size: 32, mtimeNs: 40,
  mode: 48, seals: 52, dataBytes: 56, runCount: 64, uid: 72, gid: 76,
} as const;
/** FILE_CONTENT written with the owner (uid, gid); a 72-byte record has none. */
export const FILE_CONTENT_OWNER_FIXED = 80;
/** FILE_CONTENT uid/gid: not recorded. */
export const CONTENT_NO_OWNER = 0xffffffff;
/** FILE_CONTENT.kind: index 1 DELETED, 2 MEMFD (0 is not a kind). */
export const CONTENT_KINDS = ["none", "deleted", "memfd"] as const;
export type ContentKind = (typeof CONTENT_KINDS)[number];
export const CONTENT_MAPPED = 1 << 0;
export const CONTENT_WRITE_SHARED = 1 << 1;

/** memfd seals (fcntl(2) F_ADD_SEALS), bit order. */
export const SEAL_NAMES = ["seal", "shrink", "grow", "write", "future_write", "exec"] as const;

/** FILE_DATA FIXED offsets. */
export const FILE_DATA = {
  contentId: 4, offset: 8, length: 16, codec: 20, storedSize: 24, rawCrc: 28,
} as const;
export const MAX_FILE_RUN = 16 * 1024 * 1024;

/** FD_FILE FIXED offsets. */
export const FDFILE = { fd: 4, contentId: 8, flags: 12, size: 16, mtimeNs: 24, ctimeNs: 32 } as const;
export const FDFILE_DELETED = 1 << 0;
export const FDFILE_MEMFD = 1 << 1;

/** TTY FIXED offsets. */
export const TTY = {
  fd: 4, flags: 8, index: 12, sid: 16, fgPgrp: 20, iflag: 24, oflag: 28, cflag: 32, lflag: 36,
  line: 40, cc: 41, ispeed: 60, ospeed: 64, wsRow: 68, wsCol: 70, wsXpixel: 72, wsYpixel: 74,
  inQueued: 76, outQueued: 80, peerFd: 84, dataLength: 88, uid: 96, gid: 100, mode: 104,
} as const;
/** TTY written with the slave's owner and mode (uid, gid, mode); a 96-byte record has none. */
export const TTY_OWNER_FIXED = 112;
export const TTY_NCCS = 19;
export const TTY_NONE = 0xffffffff;
export const TTY_FLAG_NAMES = [
  "CONTROLLING", "PTY_MASTER", "PTY_SLAVE", "PAIRED", "LOCKED", "PACKET", "EXCLUSIVE", "FOREGROUND",
] as const;
export type TtyFlagName = (typeof TTY_FLAG_NAMES)[number];
export const TTY_CONTROLLING = 1 << 0;
export const TTY_PTY_MASTER = 1 << 1;
export const TTY_PTY_SLAVE = 1 << 2;
export const TTY_PAIRED = 1 << 3;
export const TTY_FOREGROUND = 1 << 7;
