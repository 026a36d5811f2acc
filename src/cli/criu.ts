/**
 * The CRIU part of `ckimg inspect` on a CRIU dump or container archive: container metadata,
 * process tree, files and sockets (checkpointctl inspect --ps-tree --files --sockets).
 * Pure text from the library's CriuDescription.
 */
import type { CriuDescription } from "../criu/describe.js";
import { bytes } from "./image.js";

export function criuInspectText(d: CriuDescription): string {
  const out: string[] = [""];
  const c = d.container;
  if (c) {
    out.push(`container  ${c.name || "?"}  (${c.archiveKind} archive, ${c.compression})`);
    out.push(table(["ENGINE", "IMAGE", "ID", "RUNTIME", "CREATED", "CHKPT SIZE", "ROOT FS DIFF SIZE"], [[
      c.engine || "-", c.image || "-", c.id.slice(0, 12) || "-", c.runtime || "-", c.created || "-", bytes(c.checkpointSize), bytes(c.rootfsDiffSize),
    ]]));
    if (c.namespace || c.pod || c.ip) out.push(`  pod ${c.pod || "-"}  namespace ${c.namespace || "-"}  ip ${c.ip || "-"}`);
    for (const r of c.rejectedEntries) out.push(`  rejected archive entry with an unsafe name: ${JSON.stringify(r)}`);
    out.push("");
  }
  out.push(`criu     image version ${d.imgVersion}, ${d.tree.length} process(es), ${d.images.length} files${d.stats ? `; frozen ${(d.stats.frozenUs / 1000).toFixed(1)} ms, ${d.stats.pagesWritten} pages written` : ""}`);
  out.push("ps tree");
  const children = new Map<number, number[]>();
  const pids = new Set(d.tree.map((p) => p.pid));
  for (const p of d.tree) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const byPid = new Map(d.tree.map((p) => [p.pid, p]));
  const walk = (pid: number, prefix: string, last: boolean, root: boolean) => {
    const p = byPid.get(pid)!;
    const mark = p.pid === d.shownPid ? "  (shown above)" : "";
    out.push(`${prefix}${root ? "" : last ? "└── " : "├── "}[${p.pid}]  ${p.cmdline || p.comm}${p.threads.length > 1 ? `  (${p.threads.length} threads)` : ""}${p.state !== "alive" ? `  ${p.state}` : ""}${mark}`);
    const kids = children.get(pid) ?? [];
    kids.forEach((k, i) => walk(k, prefix + (root ? "  " : last ? "    " : "│   "), i === kids.length - 1, false));
  };
  for (const p of d.tree) if (!pids.has(p.ppid)) walk(p.pid, "  ", true, true);
  out.push("");
  out.push(`open files`);
  out.push(table(["PID", "FD", "TYPE", "PATH"], d.files.map((f) => [String(f.pid), String(f.fd), f.type, f.path])));
  out.push("");
  out.push(`sockets  ${d.sockets.length}`);
  if (d.sockets.length) out.push(table(["PID", "FD", "FAMILY", "TYPE", "STATE", "LOCAL", "REMOTE"], d.sockets.map((s) => [String(s.pid), String(s.fd), s.family, s.type, s.state, s.local || "-", s.remote || "-"])));
  for (const g of d.gaps) out.push(`note: ${g}`);
  return out.join("\n") + "\n";
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => "  " + cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ");
  return [line(head), ...rows.map(line)].join("\n");
}
