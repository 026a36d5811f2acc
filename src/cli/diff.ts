/**
 * `ckimg diff A.img B.img [--json]`: what changed between two images, coarse to fine.
 * Exit 0 same, 1 different, 2 trouble. The comparison is src/analysis/diff.ts; symbols come from
 * each image's module map; diffText formats (tests call it).
 */
import { pairProcesses } from "../analysis/tree.js";
import { defaultProcess } from "../open-defaults.js";
import { type CheckpointImage } from "../format/index.js";
import { openImage } from "../open.js";
import { diffImages, moduleSymbolizer, type ImageDiff, type Symbolizer, type FieldChange } from "../analysis/diff.js";
import { loadModules } from "../analysis/modules.js";
import { EXIT_FINDING, EXIT_OK, UsageError, hex, parseVerbArgs, toJson, type Verb } from "./common.js";

/** The image's module map as a Symbolizer; none when the map cannot be built (the diff still runs). */
export async function imageSymbolizer(img: CheckpointImage): Promise<Symbolizer | undefined> {
  try {
    return moduleSymbolizer(await loadModules(img));
  } catch {
    return undefined;
  }
}

/** Addresses and masks in hex; file positions, inodes and ids in decimal. */
const DECIMAL_FIELDS = new Set(["pos", "inode", "pid", "ppid", "pgid", "sid", "startTime"]);

function val(v: FieldChange["a"], field = ""): string {
  if (v === null) return "-";
  if (typeof v === "bigint") return DECIMAL_FIELDS.has(field) ? v.toString() : hex(v);
  return String(v);
}

function fields(list: FieldChange[]): string {
  return list.map((f) => `${f.field} ${val(f.a, f.field)} → ${val(f.b, f.field)}`).join(", ");
}

function range(start: bigint, end: bigint): string {
  return `${hex(start)}-${hex(end)}`;
}

/** Text report: one section per level, only the levels that changed, then a summary line. */
export function diffText(d: ImageDiff): string {
  const out: string[] = [];
  out.push(`a  ${d.a.path}  (pid ${d.a.pid} ${d.a.comm})`);
  out.push(`b  ${d.b.path}  (pid ${d.b.pid} ${d.b.comm})`);
  if (d.same) {
    out.push("same: no difference in process, threads, memory map, memory, files or state");
    return out.join("\n") + "\n";
  }
  if (d.process.length) {
    out.push("", "process");
    for (const f of d.process) out.push(`  ${f.field.padEnd(14)} ${val(f.a, f.field)} → ${val(f.b, f.field)}`);
  }
  if (d.argv) out.push("", "argv", `  a: ${JSON.stringify(d.argv.a)}`, `  b: ${JSON.stringify(d.argv.b)}`);
  const env = d.environ;
  if (env.added.length || env.removed.length || env.changed.length) {
    out.push("", "environ");
    for (const e of env.removed) out.push(`  - ${e}`);
    for (const e of env.added) out.push(`  + ${e}`);
    for (const e of env.changed) out.push(`  ~ ${e.name}: ${JSON.stringify(e.a)} → ${JSON.stringify(e.b)}`);
  }
  if (d.signals.length) {
    out.push("", "signals");
    for (const f of d.signals) out.push(`  ${f.field}: ${val(f.a)} → ${val(f.b)}`);
  }
  const t = d.threads;
  if (t.added.length || t.removed.length || t.changed.length) {
    out.push("", `threads${t.matchedBy === "order" ? " (no tid in common: paired in order, main thread first)" : ""}`);
    for (const x of t.removed) out.push(`  - ${x.tid}  rip ${x.rip === null ? "-" : hex(x.rip)}${x.symbol ? ` ${x.symbol}` : ""}`);
    for (const x of t.added) out.push(`  + ${x.tid}  rip ${x.rip === null ? "-" : hex(x.rip)}${x.symbol ? ` ${x.symbol}` : ""}`);
    for (const c of t.changed) {
      const tid = c.tidA === c.tidB ? String(c.tidA) : `${c.tidA}→${c.tidB}`;
      const ripA = c.rip.a === null ? "-" : `${hex(c.rip.a)}${c.rip.symbolA ? ` (${c.rip.symbolA})` : ""}`;
      const ripB = c.rip.b === null ? "-" : `${hex(c.rip.b)}${c.rip.symbolB ? ` (${c.rip.symbolB})` : ""}`;
      out.push(`  ~ ${tid}  rip ${c.rip.a === c.rip.b ? ripA : `${ripA} → ${ripB}`}`);
      const regs = c.registers.filter((r) => r.name !== "rip");
      if (regs.length) out.push(`      regs: ${regs.map((r) => `${r.name} ${hex(r.a)}→${hex(r.b)}`).join(", ")}`);
      if (c.fields.length) out.push(`      ${fields(c.fields)}`);
      if (c.xstateChanged) out.push("      xstate (FPU/SSE/AVX) differs");
    }
  }
  const a = d.areas;
  if (a.added.length || a.removed.length || a.changed.length) {
    out.push("", "memory map");
    for (const x of a.removed) out.push(`  - ${range(x.start, x.end)} ${x.perms} ${x.path || `[${x.kind}]`}`);
    for (const x of a.added) out.push(`  + ${range(x.start, x.end)} ${x.perms} ${x.path || `[${x.kind}]`}`);
    for (const c of a.changed) {
      const detail = c.changes.map((k) => (k === "perms" ? `perms ${c.a.perms}→${c.b.perms}` : k === "resized" || k === "moved-start" ? `${k} ${range(c.a.start, c.a.end)}→${range(c.b.start, c.b.end)}` : k)).join(", ");
      out.push(`  ~ ${range(c.a.start, c.a.end)} ${c.a.path || `[${c.a.kind}]`}: ${detail}`);
    }
  }
  if (d.memory.length) {
    const pages = d.memory.reduce((n, m) => n + m.pagesDiffering, 0);
    out.push("", `memory  ${pages} page(s) differ in ${d.memory.length} area(s)`);
    for (const m of d.memory) {
      const syms = m.symbols.slice(0, 8).map((s) => (s.name.startsWith("<") ? s.name : s.firstOffset ? `${s.name}+0x${s.firstOffset.toString(16)}` : s.name));
      const more = m.symbols.length > 8 ? `, … (${m.symbols.length - 8} more)` : "";
      out.push(
        `  ${m.label}  ${range(m.area.start, m.area.end)} ${m.area.perms}: ${m.pagesDiffering} page(s), ${m.bytesDiffering} byte(s)` +
        `${m.pagesUnknown ? `, ${m.pagesUnknown} page(s) not comparable` : ""}${syms.length ? `: ${syms.join(", ")}${more}` : ""}`,
      );
      for (const r of m.ranges.slice(0, 16)) out.push(`      ${range(r.start, r.end)}${r.symbol ? `  ${r.symbol}` : ""}`);
      if (m.ranges.length > 16 || m.rangesTruncated) out.push(`      … more ranges (--json lists up to --max-ranges)`);
    }
  }
  const f = d.files;
  if (f.opened.length || f.closed.length || f.changed.length) {
    out.push("", "files");
    for (const x of f.closed) out.push(`  - fd ${x.fd} ${x.kind} ${x.path}`);
    for (const x of f.opened) out.push(`  + fd ${x.fd} ${x.kind} ${x.path}`);
    for (const c of f.changed) out.push(`  ~ fd ${c.fd} ${c.path}: ${c.changes.map((x) => `${x.field} ${val(x.a, x.field)} → ${val(x.b, x.field)}`).join(", ")}`);
  }
  if (d.state.length) {
    out.push("", "state");
    for (const c of d.state) out.push(`  ${c.field}: ${val(c.a, c.field)} → ${val(c.b, c.field)}`);
  }
  const s = d.stats;
  out.push("", `compared ${s.chunksA}+${s.chunksB} chunks (${s.chunksEqualByCrc} pairs equal by CRC), read ${s.chunksRead}, ${s.pagesCompared} pages compared in ${(s.seconds * 1000).toFixed(0)} ms`);
  return out.join("\n") + "\n";
}

export const DIFF_VERB: Verb = {
  summary: "what changed between two images (process, threads, map, memory with symbols, files); exit 1 if any",
  usage: "[--json] [--exact] [--no-symbols] [--max-ranges N] [--pid PID] A.img B.img  (trees: every process paired by PID)",
  async run(args, ctx) {
    const { values, positionals } = parseVerbArgs(args, {
      json: { type: "boolean" },
      exact: { type: "boolean" },
      "no-symbols": { type: "boolean" },
      "max-ranges": { type: "string" },
    });
    if (positionals.length !== 2) throw new UsageError("diff takes two images");
    const maxRanges = values["max-ranges"] === undefined ? 64 : Number(values["max-ranges"]);
    if (!Number.isInteger(maxRanges) || maxRanges < 0) throw new UsageError(`--max-ranges needs a number, not '${values["max-ranges"]}'`);
    const a = await openImage(positionals[0]);
    let b: CheckpointImage | undefined;
    try {
      b = await openImage(positionals[1]);
      const symbols = !values["no-symbols"];
      const diffOne = async (x: CheckpointImage, y: CheckpointImage) => {
        const [symbolizeA, symbolizeB] = symbols ? await Promise.all([imageSymbolizer(x), imageSymbolizer(y)]) : [undefined, undefined];
        return diffImages(x, y, { exact: Boolean(values.exact), maxRanges, symbolizeA, symbolizeB });
      };
      if (defaultProcess() === undefined && (a.root.processes.length > 1 || b.root.processes.length > 1)) {
        // process trees (format 1.2): processes paired by PID
        const pairs = pairProcesses(a, b);
        const processes = [];
        for (const p of pairs.both) processes.push({ pid: p.pid, diff: await diffOne(p.a, p.b) });
        const same = !pairs.onlyInA.length && !pairs.onlyInB.length && processes.every((p) => p.diff.same);
        ctx.stdout(values.json ? toJson({ same, onlyInA: pairs.onlyInA, onlyInB: pairs.onlyInB, processes }) :
          [
            ...pairs.onlyInA.map((pid) => `- process ${pid} (only in ${positionals[0]})\n`),
            ...pairs.onlyInB.map((pid) => `+ process ${pid} (only in ${positionals[1]})\n`),
            ...processes.map((p) => `== process ${p.pid}\n${diffText(p.diff)}`),
          ].join("\n"));
        return same ? EXIT_OK : EXIT_FINDING;
      }
      const d = await diffOne(a, b);
      ctx.stdout(values.json ? toJson(d) : diffText(d));
      return d.same ? EXIT_OK : EXIT_FINDING;
    } finally {
      await a.close();
      await b?.close();
    }
  },
};
