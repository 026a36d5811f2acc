/**
 * `ckimg got IMG [--json] [--all]`: the GOT/PLT hook audit. Exit 1 when a slot is suspicious.
 * Output is computed by pure functions (gotReportJson, gotText) that tests call.
 */
import { openImage } from "../open.js";
import { auditGot, type GotAudit, type GotSlotReport } from "../analysis/index.js";
import { EXIT_FINDING, EXIT_OK, UsageError, hex, parseVerbArgs, toJson, type Verb } from "./common.js";

/** The JSON form: every slot (or only suspicious ones), addresses as "0x…". */
export function gotReportJson(a: GotAudit, all: boolean) {
  return {
    suspicious: a.suspicious.length,
    preload: a.preload,
    modules: a.modules,
    slots: (all ? a.slots : a.suspicious).map(slotJson),
  };
}

function slotJson(s: GotSlotReport) {
  return {
    module: s.module, path: s.modulePath, slot: s.slot, type: s.type, symbol: s.symbol, version: s.version ?? null,
    value: s.value ?? null, target: s.target ?? null, status: s.status, reason: s.reason ?? null,
  };
}

export function gotText(a: GotAudit, all: boolean): string {
  const out: string[] = [];
  const total = a.modules.reduce((n, m) => n + m.slots, 0);
  const counts = new Map<string, number>();
  for (const s of a.slots) counts.set(s.status, (counts.get(s.status) ?? 0) + 1);
  out.push(`${a.modules.length} modules, ${total} GOT slots: ${[...counts].map(([k, n]) => `${n} ${k}`).join(", ") || "none"}`);
  if (a.preload.length) out.push(`LD_PRELOAD: ${a.preload.join(" ")}`);
  for (const m of a.modules) for (const n of m.notes) out.push(`note: ${m.name}: ${n}`);
  const rows = all ? a.slots : a.suspicious;
  if (rows.length) {
    out.push("");
    out.push(`${all ? "" : "SUSPICIOUS "}SLOT                MODULE               SYMBOL                         VALUE               STATUS      TARGET`);
    for (const s of rows) {
      const sym = s.symbol ? s.symbol + (s.version ? `@${s.version}` : "") : "*IFUNC*";
      out.push([
        hex(s.slot).padEnd(19), s.module.slice(0, 20).padEnd(20), sym.slice(0, 30).padEnd(30), (s.value === undefined ? "-" : hex(s.value)).padEnd(19),
        s.status.padEnd(11), s.target?.text ?? "-",
      ].join(" "));
      if (s.status === "suspicious" && s.reason) out.push(`    ${s.reason}`);
    }
  }
  out.push(a.suspicious.length ? `${a.suspicious.length} suspicious slot(s)` : "no suspicious slots");
  return out.join("\n") + "\n";
}

export const GOT_VERB: Verb = {
  summary: "audit every GOT slot of every mapped ELF; exit 1 if a slot looks hooked",
  usage: "[--json] [--all] IMG",
  async run(args, ctx) {
    const { values, positionals } = parseVerbArgs(args, { json: { type: "boolean" }, all: { type: "boolean" } });
    if (positionals.length !== 1) throw new UsageError("got takes one image");
    const img = await openImage(positionals[0]);
    try {
      const audit = await auditGot(img);
      const all = Boolean(values.all);
      ctx.stdout(values.json ? toJson(gotReportJson(audit, all)) : gotText(audit, all));
      return audit.suspicious.length ? EXIT_FINDING : EXIT_OK;
    } finally {
      await img.close();
    }
  },
};
