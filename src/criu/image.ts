/**
 * A CRIU dump seen through ckimg's image model: `CriuImage` is a CheckpointImage whose records
 * come from one process of the dump and whose page chunks are runs of CRIU's pages file. Every
 * verb that takes a CheckpointImage (inspect, diff, sym, bt, got, mem, strings, to-core)
 * therefore answers on a CRIU dump with the same code and output shapes as on a ckimg image.
 *
 * What CRIU does not record is left empty and said so in `criuGaps` (kernel release, per-thread
 * run state, device and inode numbers of mappings, file mtimes).
 */
import { readFileSync } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import { CheckpointImage, type ChunkRef, type DecodedChunk, type MappedFileBytes, type OpenOptions } from "../format/reader.js";
import { ImageError } from "../format/errors.js";
import { CODEC } from "../format/codecs.js";
import {
  MFILE_BUILD_ID, MFILE_ELF, THREAD_FPREGS_ONLY, THREAD_IN_SYSCALL, THREAD_MAIN, X86_64_REG_NAMES, X86_64_REGS_SIZE,
  type AreaKind, type FdKind,
} from "../format/raw.js";
import type { AreaRecord, FdRecord, MappedFileRecord, MmLayout, ThreadRecord, X86Regs } from "../format/records.js";
import type { core_entry } from "./gen/core_pb.js";
import type { user_x86_fpregs_entry, user_x86_regs_entry } from "./gen/core-x86_pb.js";
import { fd_types, type file_entry } from "./gen/fdinfo_pb.js";
import type { signal_queue_entry } from "./gen/siginfo_pb.js";
import type { CriuDump, CriuProcess } from "./dump.js";
import {
  CRIU_PAGE_SIZE, MAP_GROWSDOWN, MAP_SHARED, MTYPE_X86_64, TASK_DEAD, TASK_STOPPED, TASK_ZOMBIE, VMA_ANON_SHARED,
  VMA_AREA_HEAP, VMA_AREA_STACK, VMA_AREA_SYSVIPC, VMA_AREA_VDSO, VMA_AREA_VSYSCALL, VMA_AREA_VVAR, VMA_FILE_PRIVATE,
  VMA_FILE_SHARED, XSAVE_HEADER_SIZE, XSAVE_HI16_ZMM_OFFSET, XSAVE_LEGACY_SIZE, XSAVE_OPMASK_OFFSET, XSAVE_PKRU_OFFSET,
  XSAVE_YMM_OFFSET, XSAVE_ZMM_UPPER_OFFSET,
} from "./raw.js";

/** Pages per synthetic chunk: a random read costs at most this much I/O. */
const PAGES_PER_CHUNK = 256;
const CHUNK_CACHE = 16;
/** argv/environ longer than this are cut (they are read from the dumped stack). */
const MAX_ARGS_BYTES = 1 << 20;

export interface CriuOpenOptions extends OpenOptions {
  /** which process of the tree (default: the root) */
  pid?: number;
}

/** x86 register names in ckimg order ← CRIU's user_x86_regs_entry field names. */
const CRIU_REG: Record<string, keyof user_x86_regs_entry> = {
  r15: "r15", r14: "r14", r13: "r13", r12: "r12", rbp: "bp", rbx: "bx", r11: "r11", r10: "r10", r9: "r9", r8: "r8",
  rax: "ax", rcx: "cx", rdx: "dx", rsi: "si", rdi: "di", orig_rax: "origAx", rip: "ip", cs: "cs", eflags: "flags",
  rsp: "sp", ss: "ss", fs_base: "fsBase", gs_base: "gsBase", ds: "ds", es: "es", fs: "fs", gs: "gs",
};

interface PageRunChunk {
  file: string;
  /** byte offset in the pages file */
  at: number;
}

export class CriuImage extends CheckpointImage {
  /** the CRIU process this image shows */
  readonly criuProcess: CriuProcess;
  /** what CRIU does not record and the model therefore leaves empty */
  readonly criuGaps: string[] = [];
  /** set when the dump came from a container checkpoint archive */
  container: import("./archive.js").ContainerInfo | undefined;
  /** mapped files found in the archive's rootfs-diff.tar (MAPPED_FILE id → where) */
  private readonly fromRootfs = new Map<number, { archive: import("./archive.js").CheckpointArchive; offset: number; size: number }>();
  private readonly runs: PageRunChunk[] = [];
  private readonly cache = new Map<number, DecodedChunk>();
  /** buffers of chunks evicted from the cache, reused for the next reads (see readChunk) */
  private readonly spare: Uint8Array[] = [];

  constructor(
    readonly dump: CriuDump,
    placeholder: FileHandle,
    private readonly criuOpts: CriuOpenOptions,
  ) {
    super(dump.source.path, placeholder, criuOpts);
    const pid = criuOpts.pid ?? dump.processes[0].pid;
    const p = dump.processes.find((x) => x.pid === pid);
    if (!p) throw new ImageError("MISSING_RECORD", `process ${pid} is not in the dump (it holds ${dump.processes.map((x) => x.pid).join(", ")})`, { file: dump.source.path });
    this.criuProcess = p;
  }

  override get formatVersion(): string {
    return `criu ${this.dump.inventory.imgVersion}`;
  }

  override get chunksHaveCrc(): boolean {
    return false;
  }

  /** @internal called by openCriuImage */
  override async load(): Promise<void> {
    const p = this.criuProcess;
    const file = (n: string) => this.dump.source.fileName(n);
    if (p.core.mtype !== MTYPE_X86_64) throw new ImageError("UNSUPPORTED_VERSION", `core of machine type ${p.core.mtype}: only x86-64 dumps are read`, { file: file(`core-${p.pid}.img`) });
    this.size = this.dump.images.reduce((n, f) => n + f.size, 0);
    this.header = {
      versionMajor: 0, versionMinor: 0, headerSize: 0, flags: 0, pageSize: CRIU_PAGE_SIZE, machine: 62,
      createdNs: 0n, imageId: new Uint8Array(16),
    };
    const tc = p.core.tc;
    const creds = p.core.threadCore?.creds;
    const mm = p.mm;
    this.loadFiles();
    this.loadAreas();
    this.loadPages();
    await this.resolveMappedFiles();
    const rewound = await this.rewoundThreads();
    this.threads = p.threads.map((tid) => this.thread(tid, p.cores.get(tid)!, tid === p.pid, rewound));
    const mmLayout: MmLayout = {
      startCode: mm?.mmStartCode ?? 0n, endCode: mm?.mmEndCode ?? 0n, startData: mm?.mmStartData ?? 0n, endData: mm?.mmEndData ?? 0n,
      startBrk: mm?.mmStartBrk ?? 0n, brk: mm?.mmBrk ?? 0n, startStack: mm?.mmStartStack ?? 0n, argStart: mm?.mmArgStart ?? 0n,
      argEnd: mm?.mmArgEnd ?? 0n, envStart: mm?.mmEnvStart ?? 0n, envEnd: mm?.mmEnvEnd ?? 0n,
    };
    const name = (id: number | undefined) => (id === undefined ? "" : this.dump.files.get(id)?.reg?.name ?? "");
    this.process = {
      pid: p.pid, ppid: p.ppid, pgid: p.pgid, sid: p.sid,
      uid: creds ? [creds.uid, creds.euid, creds.suid, creds.fsuid] : [0, 0, 0, 0],
      gid: creds ? [creds.gid, creds.egid, creds.sgid, creds.fsgid] : [0, 0, 0, 0],
      personality: tc?.personality ?? 0,
      umask: p.fs?.umask,
      threadCount: p.threads.length,
      captureNs: 0n,
      startTime: 0n,
      mm: mmLayout,
      flags: tc?.taskState === TASK_STOPPED ? 1 : 0,
      comm: tc?.comm ?? "",
      exe: name(mm?.exeFileId),
      cwd: name(p.fs?.cwdId),
      root: name(p.fs?.rootId),
      kernel: "",
    };
    const auxv = mm?.mmSavedAuxv ?? [];
    for (let i = 0; i + 1 < auxv.length; i += 2) {
      this.auxv.push({ type: auxv[i], value: auxv[i + 1] });
      if (auxv[i] === 0n) break;
    }
    this.rlimits = (tc?.rlimits?.rlimits ?? []).map((r, resource) => ({ resource, cur: r.cur, max: r.max }));
    this.sigactions = {
      sharedPending: pendingMask(tc?.signalsS),
      actions: (tc?.sigactions ?? []).map((a, i) => ({ signo: sigactionSigno(i), handler: a.sigaction, flags: a.flags, restorer: a.restorer, mask: a.mask }))
        .filter((a) => a.handler !== 0n || a.flags !== 0n || a.mask !== 0n),
    };
    this.fds = p.fds.map((fd) => this.fdRecord(fd.fd, fd.flags, this.dump.files.get(fd.id), fd.type)).sort((a, b) => a.fd - b.fd);
    this.argv = await this.stringsAt(mmLayout.argStart, mmLayout.argEnd);
    this.environ = await this.stringsAt(mmLayout.envStart, mmLayout.envEnd);
    this.criuGaps.push(
      "kernel release, capture time and per-thread run state are not in CRIU's images",
      "device and inode numbers of mappings are not in CRIU's images (mapped files are matched by path, size and build-id)",
    );
    if (p.state === TASK_ZOMBIE || p.state === TASK_DEAD) this.criuGaps.push(`process ${p.pid} is a ${p.state === TASK_ZOMBIE ? "zombie" : "dead task"}: no memory`);
  }

  override async close(): Promise<void> {
    this.cache.clear();
    await this.dump.source.close();
    await super.close();
  }

  /** Page runs are raw 4 KiB pages in pages-N.img: no header, no checksum, no compression. */
  override async readChunk(ref: ChunkRef): Promise<DecodedChunk> {
    const hit = this.cache.get(ref.sequence);
    if (hit) return hit;
    const run = this.runs[ref.sequence];
    if (!run) throw new ImageError("BAD_INDEX", `no page run #${ref.sequence}`, { file: this.path });
    // A scan reads every chunk once: recycling the buffers of evicted chunks avoids touching
    // fresh memory for each (10x slower on first touch on these VMs). Evicted chunks are
    // CHUNK_CACHE reads old; callers copy out of a chunk or drop it before reading that many more.
    const length = ref.storedPages * CRIU_PAGE_SIZE;
    const spare = length <= PAGES_PER_CHUNK * CRIU_PAGE_SIZE ? this.spare.pop() : undefined;
    const raw = await this.dump.source.readAt(run.file, run.at, length, spare);
    const decoded: DecodedChunk = {
      header: {
        areaId: ref.areaId, firstPage: ref.firstPage, spanPages: ref.spanPages, storedPages: ref.storedPages, codec: CODEC.NONE,
        storedSize: raw.length, rawCrc: 0, dataOffset: 0, bitmap: allOnes(ref.spanPages),
      },
      raw,
    };
    if (this.cache.size >= CHUNK_CACHE) {
      const oldest = this.cache.keys().next().value as number;
      const old = this.cache.get(oldest)!.raw;
      this.cache.delete(oldest);
      if (old.buffer.byteLength - old.byteOffset >= PAGES_PER_CHUNK * CRIU_PAGE_SIZE && this.spare.length < 4) {
        this.spare.push(new Uint8Array(old.buffer, old.byteOffset, PAGES_PER_CHUNK * CRIU_PAGE_SIZE));
      }
    }
    this.cache.set(ref.sequence, decoded);
    return decoded;
  }

  /**
   * A container's own files come first from its rootfs-diff.tar (they are what the container
   * mapped); else from disk under fileRoot, as for ckimg images.
   */
  protected override async readFromMappedFile(area: AreaRecord, at: bigint, dst: Uint8Array): Promise<MappedFileBytes> {
    const inArchive = area.fileId === undefined ? undefined : this.fromRootfs.get(area.fileId);
    if (!inArchive) return super.readFromMappedFile(area, at, dst);
    const fileOffset = Number(area.fileOffset + (at - area.start));
    const n = Math.max(0, Math.min(dst.length, inArchive.size - fileOffset));
    dst.fill(0);
    if (n > 0) dst.set(await inArchive.archive.readEntry("rootfs-diff.tar", inArchive.offset + fileOffset, n));
    return { path: `rootfs-diff.tar:${area.path}`, evidence: "archive" };
  }

  /** Called by openCheckpointArchive: mapped files the container changed are in rootfs-diff.tar. */
  async useRootfsDiff(archive: import("./archive.js").CheckpointArchive): Promise<void> {
    const files = await archive.rootfsFiles();
    let found = 0;
    for (const f of this.files) {
      const e = files.get(f.path);
      if (!e || (f.size !== 0n && BigInt(e.size) !== f.size)) continue;
      this.fromRootfs.set(f.id, { archive, ...e });
      // identity for the analysis: this is the file the process mapped, read from the archive
      f.inode = 0n;
      found++;
    }
    if (found) this.criuGaps.push(`${found} mapped file(s) read from the archive's rootfs-diff.tar`);
  }

  override async readAt(): Promise<Uint8Array> {
    throw new ImageError("UNSUPPORTED_RECORD", "a CRIU dump has no ckimg records to read", { file: this.path });
  }

  // -------------------------------------------------------------------------------------

  private fileIds = new Map<number, number>();

  /** MAPPED_FILE records: the regular files the VMAs and the exe link map. */
  private loadFiles(): void {
    const p = this.criuProcess;
    const ids = new Set<number>();
    for (const v of p.mm?.vmas ?? []) if (v.status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED)) ids.add(Number(v.shmid));
    if (p.mm?.exeFileId !== undefined && this.dump.files.get(p.mm.exeFileId)?.reg) ids.add(p.mm.exeFileId);
    for (const id of [...ids].sort((a, b) => a - b)) {
      const reg = this.dump.files.get(id)?.reg;
      if (!reg) continue;
      const buildId = reg.buildId.length ? u32sToBytes(reg.buildId) : undefined;
      const rec: MappedFileRecord = {
        id: this.files.length, devMajor: 0, devMinor: 0, inode: 0n, size: reg.size, mtimeNs: 0n, mode: reg.mode ?? 0,
        flags: buildId ? MFILE_BUILD_ID | MFILE_ELF : 0, sha256: undefined, path: reg.name, buildId,
      };
      this.fileIds.set(id, rec.id);
      this.files.push(rec);
      this.fileById.set(rec.id, rec);
    }
  }

  private loadAreas(): void {
    const vmas = [...(this.criuProcess.mm?.vmas ?? [])].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const vvarSplit = hostVvarSplit();
    let prevEnd = 0n;
    for (const v of vmas) {
      const where = { file: this.dump.source.fileName(`mm-${this.criuProcess.pid}.img`), recordType: "vma_entry" };
      if (v.end <= v.start || v.start % 4096n !== 0n || v.end % 4096n !== 0n) throw new ImageError("BAD_FIELD", `VMA 0x${v.start.toString(16)}-0x${v.end.toString(16)} is empty or unaligned`, where);
      if (v.start < prevEnd) throw new ImageError("BAD_FIELD", `VMA 0x${v.start.toString(16)} overlaps the previous one`, where);
      prevEnd = v.end;
      const isFile = (v.status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED)) !== 0;
      const fileId = isFile ? this.fileIds.get(Number(v.shmid)) : undefined;
      // CRIU marks no main-stack bit on x86; the VMA holding mm.start_stack is "[stack]" in maps.
      const startStack = this.criuProcess.mm?.mmStartStack ?? 0n;
      const kind = !isFile && v.start <= startStack && startStack < v.end ? "stack" : vmaKind(v.status, isFile);
      const area: AreaRecord = {
        id: this.areas.length, start: v.start, end: v.end, fileOffset: isFile ? v.pgoff : 0n, devMajor: 0, devMinor: 0, inode: 0n,
        prot: v.prot & 7, flags: areaFlags(v.flags, v.madv ?? 0n), kind,
        fileId, path: fileId !== undefined ? this.files[fileId].path : specialPath(kind), vmflags: "",
      };
      // CRIU dumps the kernel's [vvar] + [vvar_vclock] (Linux ≥ 6.13) as one vvar VMA; when this
      // host maps them with the same sizes, show them as the kernel does (and as restore maps them).
      if (kind === "vvar" && vvarSplit && v.end - v.start === vvarSplit[0] + vvarSplit[1]) {
        const cut = v.start + vvarSplit[0];
        this.push({ ...area, end: cut });
        this.push({ ...area, id: this.areas.length, start: cut, path: "[vvar_vclock]" });
        continue;
      }
      this.push(area);
    }
  }

  private push(area: AreaRecord): void {
    this.areas.push(area);
    this.areaById.set(area.id, area);
  }

  /** Each pagemap run, cut at area boundaries and into PAGES_PER_CHUNK pieces, becomes a chunk. */
  private loadPages(): void {
    const pm = this.criuProcess.pagemap;
    if (!pm) return;
    const ps = BigInt(CRIU_PAGE_SIZE);
    let elsewhere = 0;
    for (const run of pm.runs) {
      if (run.pagesOffset === undefined) {
        elsewhere += run.nrPages;
        continue;
      }
      let addr = run.vaddr;
      const end = run.vaddr + BigInt(run.nrPages) * ps;
      while (addr < end) {
        const area = this.areaAt(addr);
        if (!area) {
          throw new ImageError("BAD_FIELD", `pagemap run 0x${run.vaddr.toString(16)} holds page 0x${addr.toString(16)} outside every VMA`, { file: this.dump.source.fileName(`pagemap-${this.criuProcess.pid}.img`) });
        }
        const stop = [end, area.end, addr + BigInt(PAGES_PER_CHUNK) * ps].reduce((a, b) => (a < b ? a : b));
        const n = Number((stop - addr) / ps);
        const at = run.pagesOffset + Number((addr - run.vaddr) / ps) * CRIU_PAGE_SIZE;
        const ref: ChunkRef = { sequence: this.runs.length, areaId: area.id, firstPage: addr, spanPages: n, storedPages: n, offset: at, payloadLength: n * CRIU_PAGE_SIZE };
        this.runs.push({ file: pm.pagesFile, at });
        const list = this.chunksByArea.get(area.id) ?? [];
        list.push(ref);
        this.chunksByArea.set(area.id, list);
        addr = stop;
      }
    }
    if (elsewhere) {
      this.problems.push({ code: "UNAVAILABLE", detail: `${elsewhere} pages are in a parent (pre-)dump or lazy, not in this one`, offset: undefined, recordType: "pagemap_entry", sequence: undefined });
    }
  }

  /**
   * Threads CRIU rewound: stopped in a syscall (orig_ax >= 0, which the kernel sets only on
   * syscall entry) with ax = orig_ax or restart_syscall. Where the code at ip is readable it
   * must be the 2-byte `syscall` instruction (0f 05).
   */
  private async rewoundThreads(): Promise<Set<number>> {
    const out = new Set<number>();
    for (const tid of this.criuProcess.threads) {
      const g = this.criuProcess.cores.get(tid)?.threadInfo?.gpregs;
      if (!g || BigInt.asIntN(64, g.origAx) < 0n || (g.ax !== g.origAx && g.ax !== 219n)) continue;
      try {
        const insn = await this.readMemory(g.ip, 2);
        if (insn[0] !== 0x0f || insn[1] !== 0x05) continue;
      } catch (err) {
        if (!(err instanceof ImageError)) throw err;
        // code not in the dump nor on disk: the registers alone say it
      }
      out.add(tid);
    }
    return out;
  }

  private thread(tid: number, core: core_entry, main: boolean, syscallRewound: Set<number>): ThreadRecord {
    const ti = core.threadInfo;
    const file = this.dump.source.fileName(`core-${tid}.img`);
    if (!ti?.gpregs) throw new ImageError("MISSING_RECORD", "core has no x86 thread_info", { file });
    const regs = {} as X86Regs;
    const regsRaw = new Uint8Array(X86_64_REGS_SIZE);
    const rv = new DataView(regsRaw.buffer);
    X86_64_REG_NAMES.forEach((n, i) => {
      const v = ti.gpregs![CRIU_REG[n]] as bigint;
      regs[n] = v;
      rv.setBigUint64(i * 8, v, true);
    });
    const tcore = core.threadCore;
    const { xstate, fpOnly } = xsaveArea(ti.fpregs);
    const signed = (v: bigint) => BigInt.asIntN(64, v);
    const ax = signed(regs.rax);
    // CRIU rewinds an interrupted syscall before dumping (compel's get_task_regs: ip -= 2,
    // ax = orig_ax or __NR_restart_syscall), so the registers show the `syscall` about to run
    // again; ckimg images keep the interrupted state (ax = -ERESTART*). Both mean "in a syscall".
    const inSyscall = signed(regs.orig_rax) >= 0n && (ax === -512n || ax === -513n || ax === -514n || ax === -516n || ax === -4n || syscallRewound.has(tid));
    const state = this.criuProcess.state;
    return {
      tid,
      flags: (main ? THREAD_MAIN : 0) | (inSyscall ? THREAD_IN_SYSCALL : 0) | (fpOnly ? THREAD_FPREGS_ONLY : 0),
      state: state === TASK_STOPPED ? "T" : state === TASK_ZOMBIE ? "Z" : state === TASK_DEAD ? "X" : "?",
      sigmask: tcore?.blkSigset ?? (main ? core.tc?.blkSigset ?? 0n : 0n),
      pending: pendingMask(tcore?.signalsP),
      clearChildTid: ti.clearTidAddr,
      robustList: tcore?.futexRla ?? 0n,
      robustListLen: BigInt(tcore?.futexRlaLen ?? 0),
      altstack: { sp: tcore?.sas?.ssSp ?? 0n, size: tcore?.sas?.ssSize ?? 0n, flags: tcore?.sas?.ssFlags ?? 0 },
      regs, regsRaw, xstate,
    };
  }

  private fdRecord(fd: number, fdFlags: number, f: file_entry | undefined, type: fd_types): FdRecord {
    const rec: FdRecord = {
      fd, kind: "unknown", openFlags: 0, fdFlags: fdFlags & 1, mode: 0, pos: 0n, devMajor: 0, devMinor: 0, inode: 0n,
      rdevMajor: 0, rdevMinor: 0, path: "",
    };
    const set = (kind: FdKind, path: string, extra: Partial<FdRecord> = {}) => Object.assign(rec, { kind, path }, extra);
    switch (type) {
      case fd_types.REG: {
        const r = f?.reg;
        const fmt = (r?.mode ?? 0) & 0o170000;
        const kind: FdKind = fmt === 0o040000 ? "directory" : fmt === 0o020000 ? "chardev" : fmt === 0o060000 ? "blockdev" : fmt === 0o010000 ? "fifo" : "regular";
        set(kind, r?.name ?? "", { openFlags: r?.flags ?? 0, pos: r?.pos ?? 0n, mode: r?.mode ?? 0 });
        break;
      }
      case fd_types.PIPE: set("fifo", `pipe:[${f?.pipe?.pipeId ?? "?"}]`, { openFlags: f?.pipe?.flags ?? 0, inode: BigInt(f?.pipe?.pipeId ?? 0) }); break;
      case fd_types.FIFO: set("fifo", this.dump.files.get(f?.fifo?.regfId ?? -1)?.reg?.name ?? `fifo:[${f?.fifo?.pipeId ?? "?"}]`); break;
      case fd_types.UNIXSK: set("socket", `socket:[${f?.usk?.ino ?? "?"}]`, { openFlags: f?.usk?.flags ?? 0, inode: BigInt(f?.usk?.ino ?? 0) }); break;
      case fd_types.INETSK: set("socket", `socket:[${f?.isk?.ino ?? "?"}]`, { openFlags: f?.isk?.flags ?? 0, inode: BigInt(f?.isk?.ino ?? 0) }); break;
      case fd_types.PACKETSK: case fd_types.NETLINKSK: set("socket", "socket:[?]"); break;
      case fd_types.TTY: set("tty", this.dump.files.get(f?.tty?.regfId ?? -1)?.reg?.name ?? `tty:[${f?.tty?.ttyInfoId ?? "?"}]`, { openFlags: f?.tty?.flags ?? 0 }); break;
      case fd_types.EVENTFD: set("anon_inode", "anon_inode:[eventfd]"); break;
      case fd_types.EVENTPOLL: set("anon_inode", "anon_inode:[eventpoll]"); break;
      case fd_types.SIGNALFD: set("anon_inode", "anon_inode:[signalfd]"); break;
      case fd_types.TIMERFD: set("anon_inode", "anon_inode:[timerfd]"); break;
      case fd_types.INOTIFY: set("anon_inode", "anon_inode:inotify"); break;
      case fd_types.FANOTIFY: set("anon_inode", "anon_inode:[fanotify]"); break;
      case fd_types.PIDFD: set("anon_inode", "anon_inode:[pidfd]"); break;
      case fd_types.MEMFD: set("regular", `/memfd:[${f?.memfd?.inodeId ?? "?"}]`, { openFlags: f?.memfd?.flags ?? 0, pos: f?.memfd?.pos ?? 0n }); break;
      case fd_types.NS: set("regular", `ns:[${f?.nsf?.nsCflag ?? "?"}]`); break;
      default: set("unknown", fd_types[type] ?? `fd type ${type}`);
    }
    return rec;
  }

  /**
   * CRIU matches a mapped file by path, size and build-id at restore; do the same, and when the
   * file on disk (under `fileRoot`) passes, take its inode and mtime so that the reader reads
   * unstored file-backed pages from it and the analysis loads its symbols.
   */
  private async resolveMappedFiles(): Promise<void> {
    for (const f of this.files) {
      try {
        const st = await stat((this.criuOpts.fileRoot ?? "") + f.path, { bigint: true });
        if (!st.isFile() || (f.size !== 0n && st.size !== f.size)) continue;
        f.inode = st.ino;
        f.mtimeNs = st.mtimeNs;
        f.devMajor = Number(st.dev >> 8n) & 0xfff;
        f.devMinor = Number((st.dev & 0xffn) | ((st.dev >> 12n) & 0xfff00n));
        if (f.size === 0n) f.size = st.size;
      } catch {
        // Not on this machine: the verbs say which modules they could not resolve.
      }
    }
    for (const a of this.areas) {
      const f = this.mappedFile(a.fileId);
      if (f) a.inode = f.inode;
    }
  }

  /** NUL-separated strings of the dumped memory [start, end) (argv, environ). */
  private async stringsAt(start: bigint, end: bigint): Promise<string[]> {
    if (end <= start || end - start > BigInt(MAX_ARGS_BYTES)) return [];
    try {
      const bytes = await this.readMemory(start, Number(end - start), { unavailable: "zero" });
      const text = Buffer.from(bytes).toString("utf8");
      const parts = text.split("\0");
      if (parts.length && parts[parts.length - 1] === "") parts.pop();
      return parts;
    } catch (err) {
      if (err instanceof ImageError) return [];
      throw err;
    }
  }
}

/** Open one process of a CRIU dump as a CheckpointImage. */
export async function openCriuDump(dump: CriuDump, placeholder: string, opts: CriuOpenOptions = {}): Promise<CriuImage> {
  const handle = await open(placeholder, "r");
  try {
    const img = new CriuImage(dump, handle, opts);
    await img.load();
    return img;
  } catch (err) {
    await handle.close().catch(() => {});
    await dump.source.close().catch(() => {});
    throw err;
  }
}

/** Sizes of this host's [vvar] and [vvar_vclock] when it maps both, back to back. */
function hostVvarSplit(): [bigint, bigint] | undefined {
  try {
    const maps = readFileSync("/proc/self/maps", "utf8");
    const a = /^([0-9a-f]+)-([0-9a-f]+) .*\[vvar\]$/m.exec(maps), b = /^([0-9a-f]+)-([0-9a-f]+) .*\[vvar_vclock\]$/m.exec(maps);
    if (!a || !b || a[2] !== b[1]) return undefined;
    return [BigInt("0x" + a[2]) - BigInt("0x" + a[1]), BigInt("0x" + b[2]) - BigInt("0x" + b[1])];
  } catch {
    return undefined;
  }
}

/** AREA flag bits (format/raw.ts AREA_FLAG_NAMES) from CRIU's mmap flags and madvise bitmap (1 << MADV_*). */
function areaFlags(mapFlags: number, madv: bigint): number {
  const m = (advice: number) => (madv >> BigInt(advice)) & 1n;
  let f = 0;
  if (mapFlags & MAP_SHARED) f |= 1 << 0;
  if (mapFlags & MAP_GROWSDOWN) f |= 1 << 1;
  if (m(16)) f |= 1 << 3; // MADV_DONTDUMP
  if (m(14)) f |= 1 << 4; // MADV_HUGEPAGE
  if (m(15)) f |= 1 << 5; // MADV_NOHUGEPAGE
  if (mapFlags & 0x2000) f |= 1 << 6; // MAP_LOCKED
  if (mapFlags & 0x4000) f |= 1 << 7; // MAP_NORESERVE
  if (m(10)) f |= 1 << 8; // MADV_DONTFORK
  if (m(18)) f |= 1 << 9; // MADV_WIPEONFORK
  if (m(12)) f |= 1 << 10; // MADV_MERGEABLE
  return f;
}

/** tc.sigactions holds signals 1..64 without SIGKILL (9) and SIGSTOP (19) (criu/sigact.c). */
export function sigactionSigno(index: number): number {
  return index < 8 ? index + 1 : index < 17 ? index + 2 : index + 3;
}

function vmaKind(status: number, isFile: boolean): AreaKind {
  if (status & VMA_AREA_VDSO) return "vdso";
  if (status & VMA_AREA_VVAR) return "vvar";
  if (status & VMA_AREA_VSYSCALL) return "vsyscall";
  if (status & VMA_AREA_HEAP) return "heap";
  if (status & VMA_AREA_STACK) return "stack";
  if (status & (VMA_ANON_SHARED | VMA_AREA_SYSVIPC)) return "shmem";
  if (isFile) return "file";
  return "anon";
}

function specialPath(kind: AreaKind): string {
  switch (kind) {
    case "vdso": return "[vdso]";
    case "vvar": return "[vvar]";
    case "vsyscall": return "[vsyscall]";
    case "heap": return "[heap]";
    case "stack": return "[stack]";
    default: return "";
  }
}

/** siginfo's first int is si_signo (asm-generic/siginfo.h). */
function pendingMask(q: signal_queue_entry | undefined): bigint {
  let mask = 0n;
  for (const s of q?.signals ?? []) {
    if (s.siginfo.length < 4) continue;
    const signo = new DataView(s.siginfo.buffer, s.siginfo.byteOffset, 4).getInt32(0, true);
    if (signo >= 1 && signo <= 64) mask |= 1n << BigInt(signo - 1);
  }
  return mask;
}

function allOnes(bits: number): Uint8Array {
  const b = new Uint8Array(Math.ceil(bits / 8)).fill(0xff);
  if (bits & 7) b[b.length - 1] = (1 << (bits & 7)) - 1;
  return b;
}

function u32sToBytes(words: number[]): Uint8Array {
  const out = new Uint8Array(words.length * 4);
  const v = new DataView(out.buffer);
  words.forEach((w, i) => v.setUint32(i * 4, w >>> 0, true));
  return out;
}

/**
 * The XSAVE area (standard format, Intel SDM vol. 1 ch. 13) from CRIU's split-out fields:
 * the 512-byte legacy FXSAVE region, then the header's XSTATE_BV and the components CRIU keeps.
 */
export function xsaveArea(fp: user_x86_fpregs_entry | undefined): { xstate: Uint8Array; fpOnly: boolean } {
  if (!fp) return { xstate: new Uint8Array(0), fpOnly: true };
  const xs = fp.xsave;
  let size = XSAVE_LEGACY_SIZE;
  if (xs) {
    size = XSAVE_LEGACY_SIZE + XSAVE_HEADER_SIZE;
    if (xs.ymmhSpace.length) size = Math.max(size, XSAVE_YMM_OFFSET + 256);
    if (xs.opmaskReg.length) size = Math.max(size, XSAVE_OPMASK_OFFSET + 64);
    if (xs.zmmUpper.length) size = Math.max(size, XSAVE_ZMM_UPPER_OFFSET + 512);
    if (xs.hi16Zmm.length) size = Math.max(size, XSAVE_HI16_ZMM_OFFSET + 1024);
    if (xs.pkru.length) size = Math.max(size, XSAVE_PKRU_OFFSET + 8);
  }
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint16(0, fp.cwd, true);
  v.setUint16(2, fp.swd, true);
  v.setUint16(4, fp.twd, true);
  v.setUint16(6, fp.fop, true);
  v.setBigUint64(8, fp.rip, true);
  v.setBigUint64(16, fp.rdp, true);
  v.setUint32(24, fp.mxcsr, true);
  v.setUint32(28, fp.mxcsrMask, true);
  const put32 = (at: number, words: number[], max: number) => words.slice(0, max).forEach((w, i) => v.setUint32(at + 4 * i, w >>> 0, true));
  const put64 = (at: number, words: bigint[], max: number) => words.slice(0, max).forEach((w, i) => v.setBigUint64(at + 8 * i, w, true));
  put32(32, fp.stSpace, 32);
  put32(160, fp.xmmSpace, 64);
  if (xs) {
    v.setBigUint64(XSAVE_LEGACY_SIZE, xs.xstateBv, true);
    put32(XSAVE_YMM_OFFSET, xs.ymmhSpace, 64);
    put64(XSAVE_OPMASK_OFFSET, xs.opmaskReg, 8);
    put64(XSAVE_ZMM_UPPER_OFFSET, xs.zmmUpper, 64);
    put64(XSAVE_HI16_ZMM_OFFSET, xs.hi16Zmm, 128);
    put32(XSAVE_PKRU_OFFSET, xs.pkru, 1);
  }
  return { xstate: out, fpOnly: !xs };
}
