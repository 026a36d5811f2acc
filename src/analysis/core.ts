/**
 * Image → ELF core file, the kind the kernel writes on a crash and gdb's `gcore` writes, so the
 * usual tools (gdb, eu-stack, readelf) can look at a captured process: `gdb EXE core`.
 *
 * Layout (as the kernel's fs/binfmt_elf.c lays it out): ELF header, program headers (one
 * PT_NOTE, then one PT_LOAD per area in address order), the notes, then each area's memory at a
 * page-aligned offset. Notes per thread, main thread first: NT_PRSTATUS (struct elf_prstatus,
 * pr_reg = user_regs_struct), NT_FPREGSET (the 512-byte FXSAVE area), NT_X86_XSTATE (the whole
 * XSAVE area, owner "LINUX"); after the first thread's NT_PRSTATUS come the process notes
 * NT_PRPSINFO, NT_AUXV and NT_FILE. Layouts: <linux/elfcore.h>, <sys/procfs.h>.
 *
 * Memory: stored pages from the image; unstored pages as the format defines them (zero for
 * anonymous memory, the mapped file's bytes for file mappings — including read-only text, so
 * gdb needs no other file than the executable for symbols). All-zero spans are left as holes,
 * so a sparse process gives a sparse core. Areas without readable content (PROT_NONE guards,
 * vvar, vsyscall, unreadable) get a PT_LOAD with p_filesz 0, as the kernel writes them. The vDSO
 * is not in images; when the image was captured on the running kernel, this process's own vDSO
 * (identical for one kernel build) is used so gdb can unwind through it.
 *
 * Streamed: one 1 MiB window of memory at a time; written to a temp file (0600) beside the
 * target, fsynced, renamed.
 *
 * @example
 * ```ts
 * import { openImage } from "ckimg";
 * import { writeCore } from "ckimg/analysis";
 * const img = await openImage("app.img");
 * const summary = await writeCore(img, "app.core");   // then: gdb -batch -ex bt /path/to/app app.core
 * await img.close();
 * ```
 */
import { open, readFile, type FileHandle } from "node:fs/promises";
import { release } from "node:os";
import {
  AREA_DELETED, AREA_UNREADABLE, ImageError, PROT_EXEC, PROT_READ, PROT_WRITE, THREAD_FPREGS_ONLY, THREAD_MAIN,
  writeFileAtomically, type AreaRecord, type CheckpointImage, type ThreadRecord,
} from "../format/index.js";
import { raw } from "../elf/index.js";

export interface CoreOptions {
  /** include unstored pages of read-only file mappings (text) from the files on disk (default true) */
  fileText?: boolean;
  /**
   * vDSO content: "auto" (default) uses this process's vDSO when the image's kernel release is
   * the running one and the sizes agree; "omit" writes its PT_LOAD without content.
   */
  vdso?: "auto" | "omit";
  /** fsync before rename (default true) */
  durable?: boolean;
  /** progress: bytes of memory done, total */
  onProgress?: (done: number, total: number) => void;
}

export interface CoreSummary {
  path: string;
  /** size of the core file (its allocated blocks may be fewer: zero spans are holes) */
  bytes: number;
  threads: number;
  loadSegments: number;
  notes: string[];
  /** bytes of memory written from the image's stored pages, from mapped files, and as zero holes */
  fromImage: number;
  fromFiles: number;
  zero: number;
  /** pages the image could not supply (a mapped file missing or changed on disk), written as zero */
  unavailablePages: number;
  /** whether the vDSO content was supplied from the running kernel */
  vdso: boolean;
}

const PAGE_ALIGN = 4096;
const WINDOW = 1 << 20;
/** e_phnum escape (gABI "extended numbering"): the real count lives in section header 0's sh_info. */
const PN_XNUM = 0xffff;
/** <linux/elfcore.h>: ELF_PRARGSZ, struct elf_prstatus / elf_prpsinfo sizes on x86-64. */
const ELF_PRARGSZ = 80;
const PRSTATUS_SIZE = 336;
const PRSTATUS_REG_OFFSET = 112;
const PRPSINFO_SIZE = 136;
const FXSAVE_SIZE = 512;

interface Note {
  owner: string;
  type: number;
  desc: Uint8Array;
  label: string;
}

interface LoadPlan {
  area: AreaRecord | undefined;
  vaddr: bigint;
  memsz: bigint;
  filesz: bigint;
  flags: number;
  offset: number;
  /** supplied content for the whole area (the vDSO) */
  content?: Uint8Array;
}

// ---------------------------------------------------------------------------------------
// Notes

function threadOrder(threads: readonly ThreadRecord[]): ThreadRecord[] {
  // The first NT_PRSTATUS is the thread gdb selects: the main thread, as `gdb -p` does.
  return [...threads].sort((a, b) => (b.flags & THREAD_MAIN) - (a.flags & THREAD_MAIN) || a.tid - b.tid);
}

/** struct elf_prstatus (x86-64): si_signo/code/errno, cursig, sigpend, sighold, ids, times, pr_reg, fpvalid. */
export function encodePrstatus(img: CheckpointImage, t: ThreadRecord): Uint8Array {
  const b = new Uint8Array(PRSTATUS_SIZE);
  const v = new DataView(b.buffer);
  // pr_info and pr_cursig stay 0: the process was not stopped by a signal gdb should report.
  v.setBigUint64(16, t.pending, true);
  v.setBigUint64(24, t.sigmask, true);
  v.setInt32(32, t.tid, true);
  v.setInt32(36, img.process.ppid, true);
  v.setInt32(40, img.process.pgid, true);
  v.setInt32(44, img.process.sid, true);
  if (t.regsRaw.length >= 27 * 8) b.set(t.regsRaw.subarray(0, 27 * 8), PRSTATUS_REG_OFFSET);
  v.setInt32(PRSTATUS_REG_OFFSET + 27 * 8, t.xstate.length >= FXSAVE_SIZE ? 1 : 0, true);
  return b;
}

/** struct elf_prpsinfo (x86-64): state, sname, flag, uid, gid, ids, pr_fname[16], pr_psargs[80]. */
export function encodePrpsinfo(img: CheckpointImage): Uint8Array {
  const b = new Uint8Array(PRPSINFO_SIZE);
  const v = new DataView(b.buffer);
  const main = threadOrder(img.threads)[0];
  const sname = main?.state || "R";
  const state = "RSDTZW".indexOf(sname);
  b[0] = state < 0 ? 0 : state;
  b[1] = sname.charCodeAt(0) & 0x7f;
  v.setUint32(16, img.process.uid[0], true);
  v.setUint32(20, img.process.gid[0], true);
  v.setInt32(24, img.process.pid, true);
  v.setInt32(28, img.process.ppid, true);
  v.setInt32(32, img.process.pgid, true);
  v.setInt32(36, img.process.sid, true);
  const enc = new TextEncoder();
  b.set(enc.encode(img.process.comm).subarray(0, 15), 40);
  // The kernel copies the argument area with NULs turned into spaces, cut to ELF_PRARGSZ − 1.
  b.set(enc.encode(img.argv.join(" ")).subarray(0, ELF_PRARGSZ - 1), 56);
  return b;
}

function encodeAuxv(img: CheckpointImage): Uint8Array {
  const b = new Uint8Array((img.auxv.length + 1) * 16);
  const v = new DataView(b.buffer);
  img.auxv.forEach((e, i) => {
    v.setBigUint64(i * 16, e.type, true);
    v.setBigUint64(i * 16 + 8, e.value, true);
  });
  return b; // ends with AT_NULL (zeros)
}

/** NT_FILE: count, page size, count × (start, end, file offset in pages), then the paths. */
function encodeNtFile(img: CheckpointImage): Uint8Array {
  const areas = img.areas.filter((a) => a.kind === "file" && a.path !== "");
  const enc = new TextEncoder();
  const names = areas.map((a) => enc.encode(a.path + (a.flags & AREA_DELETED ? " (deleted)" : "")));
  const head = 16 + areas.length * 24;
  const b = new Uint8Array(head + names.reduce((n, s) => n + s.length + 1, 0));
  const v = new DataView(b.buffer);
  const ps = BigInt(img.pageSize);
  v.setBigUint64(0, BigInt(areas.length), true);
  v.setBigUint64(8, ps, true);
  areas.forEach((a, i) => {
    v.setBigUint64(16 + i * 24, a.start, true);
    v.setBigUint64(24 + i * 24, a.end, true);
    v.setBigUint64(32 + i * 24, a.fileOffset / ps, true);
  });
  let p = head;
  for (const n of names) {
    b.set(n, p);
    p += n.length + 1;
  }
  return b;
}

export function coreNotes(img: CheckpointImage): Note[] {
  const notes: Note[] = [];
  threadOrder(img.threads).forEach((t, i) => {
    notes.push({ owner: "CORE", type: raw.NT_PRSTATUS, desc: encodePrstatus(img, t), label: `NT_PRSTATUS ${t.tid}` });
    if (i === 0) {
      notes.push({ owner: "CORE", type: raw.NT_PRPSINFO, desc: encodePrpsinfo(img), label: "NT_PRPSINFO" });
      if (img.auxv.length) notes.push({ owner: "CORE", type: raw.NT_AUXV, desc: encodeAuxv(img), label: "NT_AUXV" });
      notes.push({ owner: "CORE", type: raw.NT_FILE, desc: encodeNtFile(img), label: "NT_FILE" });
    }
    if (t.xstate.length >= FXSAVE_SIZE) {
      notes.push({ owner: "CORE", type: raw.NT_FPREGSET, desc: t.xstate.subarray(0, FXSAVE_SIZE), label: `NT_FPREGSET ${t.tid}` });
      if (!(t.flags & THREAD_FPREGS_ONLY) && t.xstate.length > FXSAVE_SIZE) {
        notes.push({ owner: "LINUX", type: raw.NT_X86_XSTATE, desc: t.xstate, label: `NT_X86_XSTATE ${t.tid}` });
      }
    }
  });
  return notes;
}

/** Elf64_Nhdr + name + desc, name and desc each padded to 4 bytes. */
function encodeNotes(notes: Note[]): Uint8Array {
  const pad4 = (n: number) => (n + 3) & ~3;
  const enc = new TextEncoder();
  const parts = notes.map((n) => ({ n, name: enc.encode(n.owner + "\0") }));
  const size = parts.reduce((s, { n, name }) => s + 12 + pad4(name.length) + pad4(n.desc.length), 0);
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  let p = 0;
  for (const { n, name } of parts) {
    v.setUint32(p, name.length, true);
    v.setUint32(p + 4, n.desc.length, true);
    v.setUint32(p + 8, n.type, true);
    b.set(name, p + 12);
    p += 12 + pad4(name.length);
    b.set(n.desc, p);
    p += pad4(n.desc.length);
  }
  return b;
}

// ---------------------------------------------------------------------------------------
// Memory plan

function pFlags(prot: number): number {
  return (prot & PROT_READ ? raw.PF_R : 0) | (prot & PROT_WRITE ? raw.PF_W : 0) | (prot & PROT_EXEC ? raw.PF_X : 0);
}

/** This process's vDSO bytes, when the image was captured on this kernel and the size agrees. */
async function ownVdso(img: CheckpointImage, area: AreaRecord): Promise<Uint8Array | undefined> {
  if (img.process.kernel !== release()) return undefined;
  try {
    const maps = await readFile("/proc/self/maps", "utf8");
    const m = /^([0-9a-f]+)-([0-9a-f]+) .*\[vdso\]$/m.exec(maps);
    if (!m) return undefined;
    const start = BigInt("0x" + m[1]), end = BigInt("0x" + m[2]);
    if (end - start !== area.end - area.start) return undefined;
    const fh = await open("/proc/self/mem", "r");
    try {
      const buf = new Uint8Array(Number(end - start));
      const { bytesRead } = await fh.read(buf, 0, buf.length, Number(start));
      return bytesRead === buf.length ? buf : undefined;
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}

function hasContent(area: AreaRecord): boolean {
  if (area.flags & AREA_UNREADABLE) return false;
  if (!(area.prot & PROT_READ)) return false;
  return area.kind !== "vvar" && area.kind !== "vsyscall";
}

// ---------------------------------------------------------------------------------------
// Writer

/** Write `image` as an ELF core file at `path`. */
export async function writeCore(image: CheckpointImage, path: string, opts: CoreOptions = {}): Promise<CoreSummary> {
  if (image.header.machine !== raw.EM_X86_64) {
    throw new ImageError("BAD_FIELD", `machine ${image.header.machine} is not x86-64: no core layout for it`, { file: image.path });
  }
  const fileText = opts.fileText ?? true;
  const notes = coreNotes(image);
  const noteBytes = encodeNotes(notes);
  const plans: LoadPlan[] = [];
  let vdsoSupplied = false;
  for (const area of image.areas) {
    const memsz = area.end - area.start;
    const plan: LoadPlan = { area, vaddr: area.start, memsz, filesz: 0n, flags: pFlags(area.prot), offset: 0 };
    if (area.kind === "vdso") {
      const content = opts.vdso === "omit" ? undefined : await ownVdso(image, area);
      if (content) {
        plan.content = content;
        plan.filesz = memsz;
        vdsoSupplied = true;
      }
    } else if (hasContent(area)) {
      // Without fileText, clean read-only file mappings are left to the files (as the kernel's
      // default coredump_filter does): gdb reads them from the executable and libraries.
      const leftToFile = !fileText && area.kind === "file" && !(area.prot & PROT_WRITE) && image.storedPages(area.id) === 0;
      if (!leftToFile) plan.filesz = memsz;
    }
    plans.push(plan);
  }
  const phnum = 1 + plans.length;
  const extended = phnum >= PN_XNUM;
  const phoff = raw.EHDR64.size;
  const shoff = phoff + phnum * raw.PHDR64.size;
  const noteOffset = shoff + (extended ? raw.SHDR64.size : 0);
  let offset = align(noteOffset + noteBytes.length, PAGE_ALIGN);
  for (const p of plans) {
    p.offset = offset;
    offset = align(offset + Number(p.filesz), PAGE_ALIGN);
  }
  const last = plans.length ? plans[plans.length - 1] : undefined;
  const total = last ? last.offset + Number(last.filesz) : noteOffset + noteBytes.length;

  const head = new Uint8Array(noteOffset + noteBytes.length);
  const hv = new DataView(head.buffer);
  head.set(raw.ELFMAG, 0);
  head[raw.EI_CLASS] = raw.ELFCLASS64;
  head[raw.EI_DATA] = raw.ELFDATA2LSB;
  head[raw.EI_VERSION] = 1;
  hv.setUint16(raw.EHDR64.type, raw.ET_CORE, true);
  hv.setUint16(raw.EHDR64.machine, raw.EM_X86_64, true);
  hv.setUint32(raw.EHDR64.version, 1, true);
  hv.setBigUint64(raw.EHDR64.phoff, BigInt(phoff), true);
  hv.setUint16(raw.EHDR64.ehsize, raw.EHDR64.size, true);
  hv.setUint16(raw.EHDR64.phentsize, raw.PHDR64.size, true);
  hv.setUint16(raw.EHDR64.phnum, extended ? PN_XNUM : phnum, true);
  if (extended) {
    hv.setBigUint64(raw.EHDR64.shoff, BigInt(shoff), true);
    hv.setUint16(raw.EHDR64.shentsize, raw.SHDR64.size, true);
    hv.setUint16(raw.EHDR64.shnum, 1, true);
    hv.setUint32(shoff + raw.SHDR64.info, phnum, true);
  }
  const ph = (i: number, type: number, flags: number, off: number, vaddr: bigint, filesz: bigint, memsz: bigint, alignment: number) => {
    const o = phoff + i * raw.PHDR64.size;
    hv.setUint32(o + raw.PHDR64.type, type, true);
    hv.setUint32(o + raw.PHDR64.flags, flags, true);
    hv.setBigUint64(o + raw.PHDR64.offset, BigInt(off), true);
    hv.setBigUint64(o + raw.PHDR64.vaddr, vaddr, true);
    hv.setBigUint64(o + raw.PHDR64.filesz, filesz, true);
    hv.setBigUint64(o + raw.PHDR64.memsz, memsz, true);
    hv.setBigUint64(o + raw.PHDR64.align, BigInt(alignment), true);
  };
  ph(0, raw.PT_NOTE, 0, noteOffset, 0n, BigInt(noteBytes.length), 0n, 4);
  plans.forEach((p, i) => ph(i + 1, raw.PT_LOAD, p.flags, p.offset, p.vaddr, p.filesz, p.memsz, image.pageSize));
  head.set(noteBytes, noteOffset);

  const summary: CoreSummary = {
    path, bytes: total, threads: image.threads.length, loadSegments: plans.length, notes: notes.map((n) => n.label),
    fromImage: 0, fromFiles: 0, zero: 0, unavailablePages: 0, vdso: vdsoSupplied,
  };
  await writeFileAtomically(path, async (fh) => {
    await writeAll(fh, head, 0);
    const memTotal = plans.reduce((n, p) => n + Number(p.filesz), 0);
    let done = 0;
    for (const p of plans) {
      if (p.filesz === 0n || !p.area) continue;
      if (p.content) {
        await writeAll(fh, p.content, p.offset);
        summary.fromFiles += p.content.length;
        done += p.content.length;
        continue;
      }
      for (let off = 0n; off < p.filesz; off += BigInt(WINDOW)) {
        const len = Number(p.filesz - off < BigInt(WINDOW) ? p.filesz - off : BigInt(WINDOW));
        const bytes = await windowBytes(image, p.area, p.vaddr + off, len, fileText, summary);
        if (bytes) await writeAll(fh, bytes, p.offset + Number(off));
        done += len;
        opts.onProgress?.(done, memTotal);
      }
    }
    await fh.truncate(total);
  }, { durable: opts.durable });
  return summary;
}

/**
 * One window of an area's memory, or undefined when it is all zero (left as a hole). Counts
 * where the bytes came from into `summary`.
 */
async function windowBytes(img: CheckpointImage, area: AreaRecord, addr: bigint, len: number, fileText: boolean, summary: CoreSummary): Promise<Uint8Array | undefined> {
  const ps = img.pageSize;
  const end = addr + BigInt(len);
  const chunks = (img.chunksByArea.get(area.id) ?? []).filter((c) => c.firstPage < end && c.firstPage + BigInt(c.spanPages * ps) > addr);
  const fromFile = area.kind === "file" && (fileText || (area.prot & PROT_WRITE) !== 0);
  if (!chunks.length && !fromFile) {
    summary.zero += len;
    return undefined;
  }
  const out = new Uint8Array(len);
  for (let o = 0; o < len; o += ps) {
    const page = addr + BigInt(o);
    const source = await img.pageSource(page);
    if (source === "image") {
      out.set(await img.readMemory(page, ps), o);
      summary.fromImage += ps;
    } else if (source === "file" && fromFile) {
      try {
        out.set(await img.readMemory(page, ps), o);
        summary.fromFiles += ps;
      } catch (err) {
        if (!(err instanceof ImageError) || err.code !== "UNAVAILABLE") throw err;
        summary.unavailablePages++;
      }
    } else {
      summary.zero += ps;
    }
  }
  return out;
}

async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
