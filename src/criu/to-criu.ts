/**
 * ckimg image → CRIU image directory (`ckimg convert IMG -o DIR --to criu`) that
 * `criu restore -D DIR` (CRIU v4.2) runs. The messages are built with the generated protobuf
 * code and written in CRIU's file layout (magics, u32-size-prefixed entries; pages-1.img raw).
 *
 * The directory is written beside the target and renamed into place, so a failure leaves
 * nothing half-written. What ckimg's image does not hold and CRIU needs is filled the way CRIU
 * itself fills an ordinary process (three empty GDT TLS slots, root namespaces); what cannot
 * be carried (pipes, sockets, ttys, shared anonymous memory) is listed in the report.
 */
import { create, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { release } from "node:os";
import { basename, dirname, join } from "node:path";
import { ImageError } from "../format/errors.js";
import type { CheckpointImage } from "../format/reader.js";
import { THREAD_MAIN } from "../format/raw.js";
import type { AreaRecord, ThreadRecord } from "../format/records.js";
import { core_entry_march, core_entrySchema, task_core_entrySchema, task_kobj_ids_entrySchema, task_rlimits_entrySchema, thread_core_entrySchema, thread_sas_entrySchema } from "./gen/core_pb.js";
import { thread_info_x86Schema, user_desc_tSchema, user_x86_fpregs_entrySchema, user_x86_regs_entrySchema, user_x86_xsave_entrySchema, type user_x86_regs_entry } from "./gen/core-x86_pb.js";
import { creds_entrySchema } from "./gen/creds_pb.js";
import { fd_types, fdinfo_entrySchema, file_entrySchema, type file_entry } from "./gen/fdinfo_pb.js";
import { fown_entrySchema } from "./gen/fown_pb.js";
import { fs_entrySchema } from "./gen/fs_pb.js";
import { inventory_entrySchema, lsmtype } from "./gen/inventory_pb.js";
import { mm_entrySchema } from "./gen/mm_pb.js";
import { pagemap_entrySchema, pagemap_headSchema } from "./gen/pagemap_pb.js";
import { pstree_entrySchema } from "./gen/pstree_pb.js";
import { reg_file_entrySchema } from "./gen/regfile_pb.js";
import { rlimit_entrySchema } from "./gen/rlimit_pb.js";
import { sa_entrySchema } from "./gen/sa_pb.js";
import { vma_entrySchema, type vma_entry } from "./gen/vma_pb.js";
import { itimer_entrySchema, task_timers_entrySchema } from "./gen/timer_pb.js";
import {
  CRIU_PAGE_SIZE, IMG_COMMON_MAGIC, MAGIC, MAP_GROWSDOWN, MAP_PRIVATE, MAP_SHARED, PE_PRESENT, TASK_ALIVE, VMA_ANON_PRIVATE, VMA_AREA_HEAP,
  VMA_AREA_REGULAR, VMA_AREA_VDSO, VMA_AREA_VSYSCALL, VMA_AREA_VVAR, VMA_FILE_PRIVATE, VMA_FILE_SHARED, XSAVE_HI16_ZMM_OFFSET,
  XSAVE_LEGACY_SIZE, XSAVE_OPMASK_OFFSET, XSAVE_PKRU_OFFSET, XSAVE_YMM_OFFSET, XSAVE_ZMM_UPPER_OFFSET,
} from "./raw.js";
import type { ConversionReport } from "./to-ckimg.js";

const MAP_ANONYMOUS = 0x20;
/** x86-64 errno values the kernel uses for restartable syscalls (include/linux/errno.h). */
const ERESTARTSYS = -512n, ERESTARTNOINTR = -513n, ERESTARTNOHAND = -514n, ERESTART_RESTARTBLOCK = -516n;
const NR_RESTART_SYSCALL = 219n;
const RLIMIT_COUNT = 16;
const SIGMAX = 64;

/** CRIU's ids of the root namespaces; the task carries the same ones (it lives in them). */
const NS_IDS = { pidNsId: 1, netNsId: 2, ipcNsId: 3, utsNsId: 4, timeNsId: 5, mntNsId: 6, userNsId: 7, cgroupNsId: 8 };

/** One image file: common magic, the file's magic, then (u32 size, message)*. */
function imageFile<D extends DescMessage>(magic: number, schema: D, messages: MessageShape<D>[], raw?: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  const head = new Uint8Array(raw ? 4 : 8);
  const hv = new DataView(head.buffer);
  if (raw) hv.setUint32(0, magic, true);
  else {
    hv.setUint32(0, IMG_COMMON_MAGIC, true);
    hv.setUint32(4, magic, true);
  }
  parts.push(head);
  for (const m of messages) {
    const body = toBinary(schema, m);
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, body.length, true);
    parts.push(len, body);
  }
  return Buffer.concat(parts);
}

/** The same with two message kinds (pagemap: a head, then entries). */
function concat(...parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

const fown = () => create(fown_entrySchema, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 });

export async function ckimgToCriu(img: CheckpointImage, out: string): Promise<ConversionReport> {
  if (img.header.machine !== 62) throw new ImageError("UNSUPPORTED_VERSION", "only x86-64 images convert to CRIU", { file: img.path });
  if (img.pageSize !== CRIU_PAGE_SIZE) throw new ImageError("UNSUPPORTED_VERSION", `page size ${img.pageSize}: CRIU on x86-64 wants 4096`, { file: img.path });
  if (await stat(out).then(() => true, () => false)) throw new ImageError("IO", "already exists (convert writes a new directory)", { file: out });
  const notCarried: string[] = [];
  for (const r of img.unknownRecords) notCarried.push(`record type 0x${r.type.toString(16).padStart(4, "0")} at offset ${r.offset}: not known to this converter`);
  const p = img.process;
  const files: file_entry[] = [];
  const regId = new Map<string, number>();
  const addReg = (name: string, extra: { flags?: number; pos?: bigint; size?: bigint; mode?: number; buildId?: Uint8Array } = {}, shareable = true): number => {
    const key = `${name}\0${extra.flags ?? 0}\0${extra.size ?? ""}`;
    if (shareable && regId.has(key)) return regId.get(key)!;
    const id = files.length + 1;
    files.push(create(file_entrySchema, {
      type: fd_types.REG, id,
      reg: create(reg_file_entrySchema, {
        id, flags: extra.flags ?? 0, pos: extra.pos ?? 0n, fown: fown(), name, size: extra.size, mode: extra.mode,
        buildId: extra.buildId ? u32s(extra.buildId) : [],
      }),
    }));
    if (shareable) regId.set(key, id);
    return id;
  };

  // Mapped files and the exe: CRIU checks their size (and build-id) at restore.
  const fileIdOf = new Map<number, number>();
  for (const f of img.files) fileIdOf.set(f.id, addReg(f.path, { size: f.size || undefined, mode: f.mode || undefined, buildId: f.buildId }));
  const exeFile = img.files.find((f) => f.path === p.exe);
  const exeId = exeFile ? fileIdOf.get(exeFile.id)! : addReg(p.exe);

  const { vmas, stored } = vmasOf(img, fileIdOf, notCarried);

  // fds: regular files and directories reopen by path; the other kinds have no peer here.
  const fdinfos = [];
  for (const f of img.fds) {
    if (f.kind === "regular" || f.kind === "directory" || f.kind === "chardev" || f.kind === "blockdev") {
      const id = addReg(f.path, { flags: f.openFlags, pos: f.pos, mode: f.mode || undefined }, false);
      fdinfos.push(create(fdinfo_entrySchema, { id, flags: f.fdFlags & 1, type: fd_types.REG, fd: f.fd }));
    } else {
      notCarried.push(`fd ${f.fd} (${f.kind} ${f.path}): no ${f.kind} object in a ckimg 1.0 image to rebuild it from — left closed`);
    }
  }
  const cwdId = addReg(p.cwd || "/", {}, false);
  const rootId = addReg(p.root || "/", {}, false);

  const dir = join(dirname(out), `.${basename(out)}.tmp-${process.pid}-${Date.now()}`);
  await mkdir(dir, { mode: 0o700 });
  try {
    const write = async (name: string, bytes: Uint8Array) => {
      const fh = await open(join(dir, name), "wx", 0o600);
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
    };
    await write("inventory.img", imageFile(MAGIC.inventory, inventory_entrySchema, [create(inventory_entrySchema, {
      imgVersion: 2, fdinfoPerId: true, nsPerId: true, lsmtype: lsmtype.NO_LSM,
      rootIds: create(task_kobj_ids_entrySchema, { vmId: 1, filesId: 1, fsId: 1, sighandId: 1, ...NS_IDS }),
    })], true));
    await write("pstree.img", imageFile(MAGIC.pstree, pstree_entrySchema, [create(pstree_entrySchema, {
      pid: p.pid, ppid: 0, pgid: p.pgid, sid: p.sid, threads: img.threads.map((t) => t.tid),
    })]));
    await write(`ids-${p.pid}.img`, imageFile(MAGIC.ids, task_kobj_ids_entrySchema, [create(task_kobj_ids_entrySchema, { vmId: 2, filesId: 2, fsId: 2, sighandId: 2, ...NS_IDS })]));
    const creds = await credsOf(img, notCarried);
    for (const t of img.threads) await write(`core-${t.tid}.img`, imageFile(MAGIC.core, core_entrySchema, [coreOf(img, t, creds)]));
    await write(`mm-${p.pid}.img`, imageFile(MAGIC.mm, mm_entrySchema, [create(mm_entrySchema, {
      mmStartCode: p.mm.startCode, mmEndCode: p.mm.endCode, mmStartData: p.mm.startData, mmEndData: p.mm.endData,
      mmStartStack: p.mm.startStack, mmStartBrk: p.mm.startBrk, mmBrk: p.mm.brk, mmArgStart: p.mm.argStart, mmArgEnd: p.mm.argEnd,
      mmEnvStart: p.mm.envStart, mmEnvEnd: p.mm.envEnd, exeFileId: exeId,
      mmSavedAuxv: img.auxv.flatMap((a) => [a.type, a.value]), vmas, dumpable: 1,
    })]));
    await write(`fs-${p.pid}.img`, imageFile(MAGIC.fs, fs_entrySchema, [create(fs_entrySchema, { cwdId, rootId, umask: p.umask ?? 0o022 })]));
    await write("files.img", imageFile(MAGIC.files, file_entrySchema, files));
    await write("fdinfo-2.img", imageFile(MAGIC.fdinfo, fdinfo_entrySchema, fdinfos));

    // pages-1.img: the stored pages in address order; pagemap runs say where each run is.
    const runs: { vaddr: bigint; nrPages: number }[] = [];
    const pagesFh = await open(join(dir, "pages-1.img"), "wx", 0o600);
    let pages = 0;
    try {
      for (const { area, from, to } of stored) {
        // CRIU's restorer reads the dumped vDSO's ELF to match its symbols with the running
        // kernel's; ckimg does not store the vDSO, so this host's goes in when the size agrees.
        if (area.kind === "vdso" && !img.chunksByArea.get(area.id)?.length) {
          const vdso = await hostVdso(area.end - area.start);
          if (!vdso) {
            notCarried.push(`vdso ${hex(area.start)}: not stored in the image and this host's differs in size — criu restore will refuse it`);
            continue;
          }
          if (img.process.kernel && img.process.kernel !== release()) notCarried.push(`vdso: the image is from kernel ${img.process.kernel}; this host's (${release()}) vDSO was written in its place`);
          for (let o = 0; o < vdso.length; o += CRIU_PAGE_SIZE) {
            const addr = area.start + BigInt(o);
            const last = runs[runs.length - 1];
            if (last && last.vaddr + BigInt(last.nrPages * CRIU_PAGE_SIZE) === addr) last.nrPages++;
            else runs.push({ vaddr: addr, nrPages: 1 });
            await pagesFh.write(vdso.subarray(o, o + CRIU_PAGE_SIZE));
            pages++;
          }
          continue;
        }
        for (const ref of img.chunksByArea.get(area.id) ?? []) {
          const { header, raw } = await img.readChunk(ref);
          for (let i = 0, k = 0; i < header.spanPages; i++) {
            if (!(header.bitmap[i >> 3] & (1 << (i & 7)))) continue;
            const addr = header.firstPage + BigInt(i * CRIU_PAGE_SIZE);
            const bytes = raw.subarray(k * CRIU_PAGE_SIZE, (k + 1) * CRIU_PAGE_SIZE);
            k++;
            if (addr < from || addr >= to) continue;
            const last = runs[runs.length - 1];
            if (last && last.vaddr + BigInt(last.nrPages * CRIU_PAGE_SIZE) === addr) last.nrPages++;
            else runs.push({ vaddr: addr, nrPages: 1 });
            await pagesFh.write(bytes);
            pages++;
          }
        }
      }
      await pagesFh.sync();
    } finally {
      await pagesFh.close();
    }
    await write(`pagemap-${p.pid}.img`, concat(
      imageFile(MAGIC.pagemap, pagemap_headSchema, [create(pagemap_headSchema, { pagesId: 1 })]),
      imageFile(MAGIC.pagemap, pagemap_entrySchema, runs.map((r) => create(pagemap_entrySchema, {
        vaddr: r.vaddr, compatNrPages: r.nrPages, nrPages: BigInt(r.nrPages), flags: PE_PRESENT,
      }))).subarray(8),
    ));
    await rename(dir, out);
    let bytes = 0;
    for (const name of ["pages-1.img"]) bytes += (await stat(join(out, name))).size;
    if (p.sid !== p.pid) notCarried.push(`session ${p.sid} is led by another process: restore with criu's --shell-job`);
    return { output: out, bytes, pages, notCarried };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

interface StoredRange {
  area: AreaRecord;
  from: bigint;
  to: bigint;
}

/** VMAs in CRIU's terms; the kernel's [vvar] + [vvar_vclock] become one vvar VMA as CRIU dumps them. */
function vmasOf(img: CheckpointImage, fileIdOf: Map<number, number>, notCarried: string[]): { vmas: vma_entry[]; stored: StoredRange[] } {
  const vmas: vma_entry[] = [];
  const stored: StoredRange[] = [];
  for (const a of img.areas) {
    const shared = (a.flags & 1) !== 0;
    const madv = madvOf(a.flags);
    const base = { start: a.start, end: a.end, pgoff: 0n, shmid: 0n, prot: a.prot, fd: -1n, madv: madv || undefined };
    let v: vma_entry;
    // [vvar_vclock] is SPECIAL in our images; CRIU knows it as the tail of the vvar VMA
    const kind = a.kind === "special" && a.path === "[vvar_vclock]" ? "vvar" : a.kind;
    switch (kind) {
      case "file": {
        const id = a.fileId === undefined ? undefined : fileIdOf.get(a.fileId);
        if (id === undefined) {
          notCarried.push(`area ${hex(a.start)}-${hex(a.end)} ${a.path}: its mapped file is not recorded`);
          continue;
        }
        v = create(vma_entrySchema, {
          ...base, pgoff: a.fileOffset, shmid: BigInt(id), flags: shared ? MAP_SHARED : MAP_PRIVATE,
          status: VMA_AREA_REGULAR | (shared ? VMA_FILE_SHARED : VMA_FILE_PRIVATE), fdflags: shared && a.prot & 2 ? 2 : 0,
        });
        break;
      }
      case "anon": case "heap": case "stack": case "shmem": {
        if (a.kind === "shmem" || shared) notCarried.push(`area ${hex(a.start)}-${hex(a.end)}: shared anonymous memory restored as private (its sharers are not in the image)`);
        v = create(vma_entrySchema, {
          ...base, flags: MAP_PRIVATE | MAP_ANONYMOUS | (a.flags & 2 ? MAP_GROWSDOWN : 0),
          status: VMA_AREA_REGULAR | VMA_ANON_PRIVATE | (a.kind === "heap" ? VMA_AREA_HEAP : 0),
        });
        break;
      }
      case "vdso":
        v = create(vma_entrySchema, { ...base, flags: MAP_PRIVATE | MAP_ANONYMOUS, status: VMA_AREA_REGULAR | VMA_ANON_PRIVATE | VMA_AREA_VDSO });
        break;
      case "vvar": {
        const prev = vmas[vmas.length - 1];
        if (prev && prev.status & VMA_AREA_VVAR && prev.end === a.start) {
          prev.end = a.end;
          continue;
        }
        v = create(vma_entrySchema, { ...base, flags: MAP_PRIVATE | MAP_ANONYMOUS, status: VMA_AREA_REGULAR | VMA_ANON_PRIVATE | VMA_AREA_VVAR });
        break;
      }
      case "vsyscall":
        v = create(vma_entrySchema, { ...base, flags: MAP_PRIVATE | MAP_ANONYMOUS, status: VMA_ANON_PRIVATE | VMA_AREA_VSYSCALL });
        break;
      default:
        notCarried.push(`area ${hex(a.start)}-${hex(a.end)} ${a.path || a.kind}: a special mapping CRIU cannot recreate`);
        continue;
    }
    vmas.push(v);
    // vvar and vsyscall have no content to restore; the vdso's pages are written (see below).
    if (kind !== "vvar" && kind !== "vsyscall") stored.push({ area: a, from: a.start, to: a.end });
  }
  return { vmas, stored };
}

/** AREA flags → CRIU's madvise bitmap (1 << MADV_*). */
function madvOf(flags: number): bigint {
  let m = 0n;
  if (flags & (1 << 3)) m |= 1n << 16n; // dontdump
  if (flags & (1 << 4)) m |= 1n << 14n; // hugepage
  if (flags & (1 << 5)) m |= 1n << 15n; // nohugepage
  if (flags & (1 << 8)) m |= 1n << 10n; // dontfork
  if (flags & (1 << 9)) m |= 1n << 18n; // wipeonfork
  if (flags & (1 << 10)) m |= 1n << 12n; // mergeable
  return m;
}

/** Capabilities are not in a ckimg 1.0 image: uid 0 gets this host's full set, others none. */
async function credsOf(img: CheckpointImage, notCarried: string[]) {
  const p = img.process;
  let full = [0, 0];
  if (p.uid[1] === 0) {
    const status = await readFile("/proc/self/status", "utf8").catch(() => "");
    const bnd = /CapBnd:\s*([0-9a-f]+)/.exec(status)?.[1];
    if (bnd) {
      const v = BigInt("0x" + bnd);
      full = [Number(v & 0xffffffffn), Number(v >> 32n)];
    }
  }
  notCarried.push("interval and POSIX timers are not in a ckimg 1.0 image: restored disarmed");
  notCarried.push(`capabilities and supplementary groups are not in a ckimg 1.0 image: set to ${p.uid[1] === 0 ? "the full set (uid 0)" : "none"}, no groups`);
  return create(creds_entrySchema, {
    uid: p.uid[0], euid: p.uid[1], suid: p.uid[2], fsuid: p.uid[3], gid: p.gid[0], egid: p.gid[1], sgid: p.gid[2], fsgid: p.gid[3],
    capInh: [0, 0], capPrm: full, capEff: full, capBnd: full, capAmb: [0, 0], secbits: 0, groups: [],
  });
}

function coreOf(img: CheckpointImage, t: ThreadRecord, creds: ReturnType<typeof create<typeof creds_entrySchema>>) {
  const p = img.process;
  const main = (t.flags & THREAD_MAIN) !== 0 || t.tid === p.pid;
  if (!t.regs) throw new ImageError("MISSING_RECORD", `thread ${t.tid} has no x86-64 registers`, { file: img.path });
  const threadCore = create(thread_core_entrySchema, {
    futexRla: t.robustList, futexRlaLen: Number(t.robustListLen), blkSigset: t.sigmask, comm: p.comm,
    sas: create(thread_sas_entrySchema, { ssSp: t.altstack.sp, ssSize: t.altstack.size, ssFlags: t.altstack.flags }),
    creds, schedNice: 0, schedPolicy: 0,
  });
  const core = create(core_entrySchema, {
    mtype: core_entry_march.X86_64,
    threadInfo: create(thread_info_x86Schema, {
      clearTidAddr: t.clearChildTid, gpregs: gpregsOf(t), fpregs: fpregsOf(t.xstate),
      tls: [12, 13, 14].map((n) => create(user_desc_tSchema, {
        entryNumber: n, baseAddr: 0, limit: 0, seg32bit: false, contentsH: false, contentsL: false, readExecOnly: true,
        limitInPages: false, segNotPresent: true, usable: false,
      })),
    }),
    threadCore,
  });
  if (main) {
    const rl = Array.from({ length: RLIMIT_COUNT }, (_, resource) => {
      const r = img.rlimits.find((x) => x.resource === resource);
      return create(rlimit_entrySchema, { cur: r?.cur ?? 0xffffffffffffffffn, max: r?.max ?? 0xffffffffffffffffn });
    });
    const actions = [];
    for (let sig = 1; sig <= SIGMAX; sig++) {
      if (sig === 9 || sig === 19) continue;
      const a = img.sigactions.actions.find((x) => x.signo === sig);
      actions.push(create(sa_entrySchema, { sigaction: a?.handler ?? 0n, flags: a?.flags ?? 0n, restorer: a?.restorer ?? 0n, mask: a?.mask ?? 0n, compatSigaction: false }));
    }
    core.tc = create(task_core_entrySchema, {
      taskState: TASK_ALIVE, exitCode: 0, personality: p.personality, flags: 0, blkSigset: t.sigmask, comm: p.comm,
      rlimits: create(task_rlimits_entrySchema, { rlimits: rl }), sigactions: actions, loginuid: 0xffffffff, oomScoreAdj: 0,
      // Without a timers entry CRIU looks for the pre-2.x itimers/posix-timers images (deprecated).
      timers: create(task_timers_entrySchema, { real: itimerOff(), virt: itimerOff(), prof: itimerOff(), posix: [] }),
    });
  }
  return core;
}

/**
 * CRIU's images hold the registers of a thread interrupted in a restartable syscall already
 * rewound (compel's get_task_regs): ip back over `syscall`, ax = the syscall number again (or
 * restart_syscall). ckimg keeps the interrupted state; rewind it the same way.
 */
function gpregsOf(t: ThreadRecord): user_x86_regs_entry {
  const r = { ...t.regs! };
  if (BigInt.asIntN(64, r.orig_rax) >= 0n) {
    const ax = BigInt.asIntN(64, r.rax);
    if (ax === ERESTARTSYS || ax === ERESTARTNOINTR || ax === ERESTARTNOHAND) {
      r.rax = r.orig_rax;
      r.rip -= 2n;
    } else if (ax === ERESTART_RESTARTBLOCK) {
      r.rax = NR_RESTART_SYSCALL;
      r.rip -= 2n;
    }
  }
  return create(user_x86_regs_entrySchema, {
    r15: r.r15, r14: r.r14, r13: r.r13, r12: r.r12, bp: r.rbp, bx: r.rbx, r11: r.r11, r10: r.r10, r9: r.r9, r8: r.r8,
    ax: r.rax, cx: r.rcx, dx: r.rdx, si: r.rsi, di: r.rdi, origAx: r.orig_rax, ip: r.rip, cs: r.cs, flags: r.eflags,
    sp: r.rsp, ss: r.ss, fsBase: r.fs_base, gsBase: r.gs_base, ds: r.ds, es: r.es, fs: r.fs, gs: r.gs,
  });
}

/** FXSAVE legacy region + the XSAVE components CRIU keeps, from the standard-format area. */
function fpregsOf(x: Uint8Array) {
  const buf = new Uint8Array(Math.max(x.length, XSAVE_LEGACY_SIZE));
  buf.set(x);
  const v = new DataView(buf.buffer);
  const u32 = (at: number, n: number) => Array.from({ length: n }, (_, i) => v.getUint32(at + 4 * i, true));
  const u64 = (at: number, n: number) => Array.from({ length: n }, (_, i) => v.getBigUint64(at + 8 * i, true));
  const fp = create(user_x86_fpregs_entrySchema, {
    cwd: v.getUint16(0, true), swd: v.getUint16(2, true), twd: v.getUint16(4, true), fop: v.getUint16(6, true),
    rip: v.getBigUint64(8, true), rdp: v.getBigUint64(16, true), mxcsr: v.getUint32(24, true), mxcsrMask: v.getUint32(28, true),
    stSpace: u32(32, 32), xmmSpace: u32(160, 64), padding: u32(416, 24),
  });
  if (x.length >= XSAVE_LEGACY_SIZE + 64) {
    const has = (end: number) => x.length >= end;
    fp.xsave = create(user_x86_xsave_entrySchema, {
      xstateBv: v.getBigUint64(XSAVE_LEGACY_SIZE, true),
      ymmhSpace: has(XSAVE_YMM_OFFSET + 256) ? u32(XSAVE_YMM_OFFSET, 64) : [],
      opmaskReg: has(XSAVE_OPMASK_OFFSET + 64) ? u64(XSAVE_OPMASK_OFFSET, 8) : [],
      zmmUpper: has(XSAVE_ZMM_UPPER_OFFSET + 512) ? u64(XSAVE_ZMM_UPPER_OFFSET, 64) : [],
      hi16Zmm: has(XSAVE_HI16_ZMM_OFFSET + 1024) ? u64(XSAVE_HI16_ZMM_OFFSET, 128) : [],
      pkru: has(XSAVE_PKRU_OFFSET + 8) ? u32(XSAVE_PKRU_OFFSET, 2) : [],
    });
  }
  return fp;
}

/** Interval timers are not in a ckimg 1.0 image: disarmed (listed by the caller). */
function itimerOff() {
  return create(itimer_entrySchema, { isec: 0n, iusec: 0n, vsec: 0n, vusec: 0n });
}

/** This process's vDSO (the kernel maps the same one into every process), if `size` agrees. */
async function hostVdso(size: bigint): Promise<Uint8Array | undefined> {
  try {
    const m = /^([0-9a-f]+)-([0-9a-f]+) .*\[vdso\]$/m.exec(await readFile("/proc/self/maps", "utf8"));
    if (!m) return undefined;
    const start = BigInt("0x" + m[1]), end = BigInt("0x" + m[2]);
    if (end - start !== size) return undefined;
    const fh = await open("/proc/self/mem", "r");
    try {
      const buf = new Uint8Array(Number(size));
      const { bytesRead } = await fh.read(buf, 0, buf.length, Number(start));
      return bytesRead === buf.length ? buf : undefined;
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}

function u32s(bytes: Uint8Array): number[] {
  const out: number[] = [];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i + 4 <= bytes.length; i += 4) out.push(v.getUint32(i, true));
  return out;
}

function hex(v: bigint): string {
  return "0x" + v.toString(16);
}
