/** fast-check arbitraries for every record type, shared by the format tests. */
import fc from "fast-check";
import { encodeRegs, AREA_KINDS, FD_KINDS, X86_64_REG_NAMES, type X86Regs } from "../../src/format/index.js";

export const u32 = fc.integer({ min: 0, max: 0xffffffff });
export const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
export const text = fc.string({ unit: "grapheme", maxLength: 40 });
export const bytes = (max: number) => fc.uint8Array({ maxLength: max });

export const arbProcess = fc.record({
  pid: u32, ppid: u32, pgid: u32, sid: u32,
  uid: fc.tuple(u32, u32, u32, u32), gid: fc.tuple(u32, u32, u32, u32),
  personality: u32, umask: fc.option(fc.integer({ min: 0, max: 0o777 }), { nil: undefined }), threadCount: u32,
  captureNs: u64, startTime: u64,
  mm: fc.record({
    startCode: u64, endCode: u64, startData: u64, endData: u64, startBrk: u64, brk: u64, startStack: u64,
    argStart: u64, argEnd: u64, envStart: u64, envEnd: u64,
  }),
  flags: u32, comm: text, exe: text, cwd: text, root: text, kernel: text,
});

const arbRegs = fc.tuple(...X86_64_REG_NAMES.map(() => u64)).map((vals) => {
  const r = {} as X86Regs;
  X86_64_REG_NAMES.forEach((n, i) => (r[n] = vals[i]));
  return r;
});

export const arbThread = fc.record({
  tid: u32, flags: u32, state: fc.constantFrom("R", "S", "D", "T", "t", "Z"), sigmask: u64, pending: u64,
  clearChildTid: u64, robustList: u64, robustListLen: u64,
  altstack: fc.record({ sp: u64, size: u64, flags: u32 }), regs: arbRegs, xstate: bytes(1200),
}).map((t) => ({ ...t, regsRaw: encodeRegs(t.regs) }));

export const arbArea = fc.record({
  id: u32, start: fc.bigInt({ min: 0n, max: (1n << 47n) - 2n }), len: fc.bigInt({ min: 1n, max: 1n << 40n }),
  fileOffset: u64, devMajor: u32, devMinor: u32, inode: u64, prot: fc.integer({ min: 0, max: 7 }), flags: u32,
  kind: fc.constantFrom(...AREA_KINDS), fileId: fc.option(fc.integer({ min: 0, max: 0xfffffffe }), { nil: undefined }),
  path: text, vmflags: text,
}).map(({ len, ...a }) => ({ ...a, end: a.start + len }));

export const arbMappedFile = fc.record({
  id: u32, devMajor: u32, devMinor: u32, inode: u64, size: u64, mtimeNs: u64, mode: u32,
  flags: fc.integer({ min: 0, max: 0x1c }), sha256: fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 }), { nil: undefined }),
  path: text, buildId: fc.option(fc.uint8Array({ minLength: 1, maxLength: 40 }), { nil: undefined }),
});

export const arbFd = fc.record({
  fd: u32, kind: fc.constantFrom(...FD_KINDS), openFlags: u32, fdFlags: u32, mode: u32, pos: u64,
  devMajor: u32, devMinor: u32, inode: u64, rdevMajor: u32, rdevMinor: u32, path: text,
  // format 1.1 fields: absent when zero / not set
  fileId: fc.integer({ min: 1, max: 0xffffffff }),
  owner: fc.record({ type: fc.integer({ min: 0, max: 2 }), id: fc.integer({ min: 1, max: 0x3fffffff }) }),
  ownerSignal: fc.integer({ min: 1, max: 64 }),
  unrestorable: text,
}, { requiredKeys: ["fd", "kind", "openFlags", "fdFlags", "mode", "pos", "devMajor", "devMinor", "inode", "rdevMajor", "rdevMinor", "path"] });

