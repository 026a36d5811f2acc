/**
 * Code patched in memory: compare every stored page of the image's file-backed executable
 * areas with the same bytes of the file on disk (only when the file still has the identity the
 * image recorded). A capturer omits clean private file pages, so a stored code page is already
 * a sign that the page was written to; the comparison says which bytes changed and in which
 * function. Bytes the dynamic linker itself writes into code (relocations in text: DT_TEXTREL,
 * rare on x86-64) are left out of the comparison and counted.
 */
import type { AreaRecord, CheckpointImage } from "../format/index.js";
import { areaPerms } from "../format/index.js";
import { PROT_EXEC } from "../format/raw.js";
import { formatSymbolized, loadModules, type LoadModulesOptions, type Module, type ModuleMap } from "./modules.js";

export interface CodePatch {
  module: string;
  path: string;
  /** run-time address range [start, end) of the changed bytes */
  start: bigint;
  end: bigint;
  /** where the range starts in the file */
  fileOffset: bigint;
  /** "puts+0x4 (libc.so.6)" */
  location: string;
  /** symbol name when the start is inside one */
  symbol: string | undefined;
  memory: Uint8Array;
  disk: Uint8Array;
}

export interface AreaCheck {
  start: bigint;
  end: bigint;
  perms: string;
  path: string;
  storedPages: number;
  /** stored pages that equal the file (written to, then restored, or stored anyway) */
  identicalPages: number;
  differingPages: number;
  /** "checked", or why not: the file changed on disk, no stored pages … */
  status: "checked" | "clean" | "skipped";
  reason: string | undefined;
}

export interface AgainstDiskReport {
  /** executable file-backed areas looked at */
  areas: AreaCheck[];
  pagesChecked: number;
  pagesDiffering: number;
  /** bytes left out because the loader relocates them */
  relocatedBytesSkipped: number;
  patches: CodePatch[];
  /** true when no compared byte differs from the disk (skipped areas are listed, not failed) */
  ok: boolean;
}

export interface AgainstDiskOptions extends LoadModulesOptions {
  /** Differences closer than this many bytes join one patch (default 16). */
  mergeGap?: number;
}

/** Relocations (r_offset, width) that fall inside [lo, hi) of the file's vaddr space. */
function relocatedRanges(m: Module, lo: bigint, hi: bigint): [bigint, bigint][] {
  const elf = m.elf;
  if (!elf) return [];
  const out: [bigint, bigint][] = [];
  let sections;
  try {
    sections = elf.relocationSections();
  } catch {
    return out;
  }
  for (const r of sections) {
    if (r.section && (r.section.flags & 2n) === 0n) continue; // not loaded: .rela.debug* and friends
    if (r.relr) {
      for (const a of r.relr) if (a >= lo && a < hi) out.push([a, a + 8n]);
      continue;
    }
    const t = r.table;
    if (!t) continue;
    for (let i = 0; i < t.count; i++) {
      const a = t.offsetAt(i);
      if (a >= lo && a < hi) out.push([a, a + 8n]);
    }
  }
  return out;
}

/** Compare stored code pages with the files on disk. */
export async function verifyAgainstDisk(source: CheckpointImage | ModuleMap, opts: AgainstDiskOptions = {}): Promise<AgainstDiskReport> {
  const map = "modules" in source ? source : await loadModules(source, opts);
  const image = map.image;
  const gap = BigInt(opts.mergeGap ?? 16);
  const report: AgainstDiskReport = { areas: [], pagesChecked: 0, pagesDiffering: 0, relocatedBytesSkipped: 0, patches: [], ok: true };
  for (const area of image.areas) {
    if (area.kind !== "file" || !(area.prot & PROT_EXEC)) continue;
    const stored = image.storedPages(area.id);
    const check: AreaCheck = {
      start: area.start, end: area.end, perms: areaPerms(area), path: area.path, storedPages: stored,
      identicalPages: 0, differingPages: 0, status: "checked", reason: undefined,
    };
    report.areas.push(check);
    const m = map.moduleAt(area.start);
    const fromDisk = m !== undefined && m.elf !== undefined && m.file?.id === area.fileId;
    if (stored === 0 && fromDisk) {
      check.status = "clean";
      check.reason = "no stored pages: the area is the file's content";
      continue;
    }
    if (!fromDisk) {
      check.status = "skipped";
      check.reason = m?.notes[0] ?? (m ? "module not read from disk" : "not an ELF module");
      continue;
    }
    await compareArea(map, m!, area, check, report, gap);
  }
  return report;
}

async function compareArea(map: ModuleMap, m: Module, area: AreaRecord, check: AreaCheck, report: AgainstDiskReport, gap: bigint): Promise<void> {
  const image = map.image;
  const disk = m.elf!.data;
  const ps = image.pageSize;
  const lo = BigInt.asUintN(64, area.start - m.bias);
  const relocs = relocatedRanges(m, lo, lo + (area.end - area.start));
  // Run-time ranges of relocated bytes, sorted, for a per-page mask.
  const masked = relocs.map(([a, b]) => [a + m.bias, b + m.bias] as const).sort((x, y) => (x[0] < y[0] ? -1 : 1));
  let open: { start: bigint; end: bigint } | undefined;
  const flush = () => {
    if (!open) return;
    const fileOffset = area.fileOffset + (open.start - area.start);
    const n = Number(open.end - open.start);
    const fo = Number(fileOffset);
    const diskBytes = new Uint8Array(n);
    if (fo < disk.length) diskBytes.set(disk.subarray(fo, Math.min(disk.length, fo + n)));
    const loc = map.symbolize(open.start);
    report.patches.push({
      module: m.name, path: area.path, start: open.start, end: open.end, fileOffset, location: formatSymbolized(loc),
      symbol: loc.symbol?.name, memory: new Uint8Array(0), disk: diskBytes,
    });
    open = undefined;
  };
  for await (const { address, data } of image.pages(area)) {
    report.pagesChecked++;
    const fo = Number(area.fileOffset + (address - area.start));
    const mask = new Uint8Array(ps);
    for (const [a, b] of masked) {
      if (b <= address || a >= address + BigInt(ps)) continue;
      const s = Math.max(0, Number(a - address)), e = Math.min(ps, Number(b - address));
      mask.fill(1, s, e);
      report.relocatedBytesSkipped += e - s;
    }
    let differs = false;
    for (let i = 0; i < ps; i++) {
      const d = fo + i < disk.length ? disk[fo + i] : 0;
      if (data[i] === d || mask[i]) continue;
      differs = true;
      const at = address + BigInt(i);
      if (open && at - open.end <= gap) open.end = at + 1n;
      else {
        flush();
        open = { start: at, end: at + 1n };
      }
    }
    if (differs) {
      check.differingPages++;
      report.pagesDiffering++;
      report.ok = false;
    } else check.identicalPages++;
  }
  flush();
  // Fill in the memory bytes of this area's patches (pages are streamed: read them back now).
  for (const p of report.patches) {
    if (p.start >= area.start && p.end <= area.end && p.memory.length === 0) {
      p.memory = await image.readMemory(p.start, Number(p.end - p.start), { unavailable: "zero" });
    }
  }
}

function hexBytes(b: Uint8Array, max = 32): string {
  const s = [...b.subarray(0, max)].map((x) => x.toString(16).padStart(2, "0")).join(" ");
  return b.length > max ? `${s} …` : s;
}

/** Text report (used by `ckimg verify --against-disk`). */
export function againstDiskText(r: AgainstDiskReport): string {
  const out: string[] = [];
  const checked = r.areas.filter((a) => a.status === "checked").length;
  const clean = r.areas.filter((a) => a.status === "clean").length;
  const skipped = r.areas.filter((a) => a.status === "skipped");
  out.push(`against disk: ${r.areas.length} executable file areas (${clean} unmodified, ${checked} with stored pages, ${skipped.length} skipped); ${r.pagesChecked} pages compared, ${r.pagesDiffering} differ${r.relocatedBytesSkipped ? `, ${r.relocatedBytesSkipped} relocated bytes left out` : ""}`);
  for (const a of skipped) out.push(`  skipped 0x${a.start.toString(16)}-0x${a.end.toString(16)} ${a.path}: ${a.reason}`);
  for (const p of r.patches) {
    out.push(`  PATCHED 0x${p.start.toString(16)}-0x${p.end.toString(16)} (${p.end - p.start} bytes) in ${p.location}, file offset 0x${p.fileOffset.toString(16)}`);
    out.push(`    memory: ${hexBytes(p.memory)}`);
    out.push(`    disk:   ${hexBytes(p.disk)}`);
  }
  if (!r.patches.length && !skipped.length) out.push("  code matches the files on disk");
  return out.join("\n") + "\n";
}
