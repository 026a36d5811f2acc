/**
 * `ckimg sym IMG ADDR…` (address → mapping, ELF, symbol + offset) and `ckimg bt IMG [--thread TID]`
 * (best-effort backtrace per thread). Output comes from pure functions (symText, btText, btJson)
 * that tests call.
 */
import { areaPerms } from "../format/index.js";
import { openImage } from "../open.js";
import {
  backtrace, formatBacktrace, loadModules, symbolizedReport,
  type Symbolized, type ThreadBacktrace,
} from "../analysis/index.js";
import { EXIT_OK, UsageError, hex, parseAddress, parseVerbArgs, toJson, type Verb } from "./common.js";

export function symText(results: Symbolized[]): string {
  const out: string[] = [];
  for (const s of results) {
    out.push(`${hex(s.address)}  ${symLine(s)}`);
    if (s.area) {
      const a = s.area;
      out.push(`    mapping  ${hex(a.start)}-${hex(a.end)} ${areaPerms(a)} ${a.kind}${a.path ? ` ${a.path}` : ""}${s.fileOffset !== undefined ? `  file offset ${hex(s.fileOffset)}` : ""}`);
    } else out.push("    mapping  none (address not mapped)");
    if (s.module) {
      const m = s.module;
      out.push(`    module   ${m.name} (${m.kind}) base ${hex(m.start)} bias ${hex(m.bias)}, symbols from ${m.source}${s.elfAddress !== undefined ? `, ELF address ${hex(s.elfAddress)}` : ""}`);
      for (const n of m.notes) out.push(`    note     ${n}`);
    }
  }
  return out.join("\n") + "\n";
}

function symLine(s: Symbolized): string {
  if (s.symbol) {
    const v = s.symbol.version ? `@${s.symbol.version}` : "";
    return `${s.symbol.name}${v}${s.symbol.offset ? `+${hex(s.symbol.offset)}` : ""} in ${s.module?.name ?? "?"}`;
  }
  if (s.module) return `${s.module.name}+${hex(s.elfAddress ?? s.address - s.module.start)} (no symbol)`;
  if (s.area) return `${s.area.path || `[${s.area.kind}]`}+${hex(s.address - s.area.start)} (not an ELF module)`;
  return "unmapped";
}

export const SYM_VERB: Verb = {
  summary: "symbolize addresses of an image: mapping, ELF module, symbol+offset",
  usage: "[--json] IMG ADDR...",
  async run(args, ctx) {
    const { values, positionals } = parseVerbArgs(args, { json: { type: "boolean" } });
    if (positionals.length < 2) throw new UsageError("sym takes an image and at least one address");
    const addrs = positionals.slice(1).map(parseAddress);
    const img = await openImage(positionals[0]);
    try {
      const map = await loadModules(img);
      const results = addrs.map((a) => map.symbolize(a));
      ctx.stdout(values.json ? toJson(results.map(symbolizedReport)) : symText(results));
    } finally {
      await img.close();
    }
    return EXIT_OK;
  },
};

export function btJson(bts: ThreadBacktrace[]) {
  return bts.map((bt) => ({
    tid: bt.tid, main: bt.main, state: bt.state, inSyscall: bt.inSyscall, end: bt.end,
    frames: bt.frames.map((f) => ({ index: f.index, pc: f.pc, sp: f.sp, method: f.method, ...symbolizedReport(f.location), address: undefined })),
  }));
}

export function btText(bts: ThreadBacktrace[]): string {
  return bts.map(formatBacktrace).join("\n");
}

export const BT_VERB: Verb = {
  summary: "best-effort backtrace of each thread (CFI, frame pointers, stack scan)",
  usage: "[--json] [--thread TID] IMG",
  async run(args, ctx) {
    const { values, positionals } = parseVerbArgs(args, { json: { type: "boolean" }, thread: { type: "string" } });
    if (positionals.length !== 1) throw new UsageError("bt takes one image");
    let tid: number | undefined;
    if (values.thread !== undefined) {
      tid = Number(values.thread);
      if (!Number.isInteger(tid) || tid <= 0) throw new UsageError(`not a thread id: '${String(values.thread)}'`);
    }
    const img = await openImage(positionals[0]);
    try {
      if (tid !== undefined && !img.threads.some((t) => t.tid === tid)) throw new UsageError(`no thread ${tid} in ${positionals[0]}`);
      const bts = await backtrace(img, { tid });
      ctx.stdout(values.json ? toJson(btJson(bts)) : btText(bts));
    } finally {
      await img.close();
    }
    return EXIT_OK;
  },
};
