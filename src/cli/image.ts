/**
 * `ckimg inspect` and `ckimg verify`: what an image holds, and whether it is intact.
 * Output is computed by pure functions (inspectReport, inspectText, verifyText) that tests call.
 */
import { treeReport, treeText } from "../analysis/tree.js";
import {
  areaFlagNames, areaPerms, describeFdState, fdStateFields, fdStateOf, THREAD_IN_SYSCALL,
  type CheckpointImage, type VerifyReport,
} from "../format/index.js";
import { againstDiskText, verifyAgainstDisk } from "../analysis/against-disk.js";
import { fdState, fdStateText } from "../analysis/fd-state.js";
import { ImageError, isCriuImage, openImage, verifyAnyImage } from "../open.js";
import type { CriuDescription } from "../criu/describe.js";
import { EXIT_FINDING, EXIT_OK, EXIT_TROUBLE, UsageError, formatTrouble, hex, parseVerbArgs, toJson, type CliContext, type Verb } from "./common.js";
import { progressPrinter } from "./progress.js";
import { stateReport, stateText } from "./state-report.js";
import { parentReport, parentText } from "./chain-report.js";

const SIGNAL_NAMES = [
  "", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL",
  "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT",
  "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF",
  "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
];

export function signalName(signo: number): string {
  if (signo > 0 && signo < SIGNAL_NAMES.length) return SIGNAL_NAMES[signo];
  if (signo >= 34 && signo <= 64) return signo === 34 ? "SIGRTMIN" : `SIGRTMIN+${signo - 34}`;
  return `SIG${signo}`;
}

function handlerName(h: bigint): string {
  return h === 0n ? "SIG_DFL" : h === 1n ? "SIG_IGN" : hex(h);
}

/** The JSON form of `inspect`: addresses as "0x…" strings, counts as numbers. */
export function inspectReport(img: CheckpointImage) {
  const p = img.process;
  return {
    image: {
      path: img.path,
      size: img.size,
      version: img.formatVersion,
      pageSize: img.pageSize,
      created: img.header.createdNs ? new Date(Number(img.header.createdNs / 1_000_000n)).toISOString() : null,
      imageId: Buffer.from(img.header.imageId).toString("hex"),
      records: img.entries.length,
      recovered: img.recovered,
      problems: img.problems,
      unknownRecords: img.unknownRecords.map((r) => ({ type: hex(r.type), offset: r.offset, payloadLength: r.payloadLength })),
      /** format 1.2: the image this one is a delta of (null for a standalone image) */
      parent: parentReport(img),
    },
    process: {
      pid: p.pid, ppid: p.ppid, pgid: p.pgid, sid: p.sid, uid: p.uid, gid: p.gid,
      comm: p.comm, exe: p.exe, cwd: p.cwd, root: p.root, kernel: p.kernel,
      personality: hex(p.personality), umask: p.umask === undefined ? null : "0" + p.umask.toString(8).padStart(3, "0"),
      threadCount: p.threadCount, stopped: (p.flags & 1) !== 0,
      captured: p.captureNs ? new Date(Number(p.captureNs / 1_000_000n)).toISOString() : null,
      mm: Object.fromEntries(Object.entries(p.mm).map(([k, v]) => [k, hex(v)])),
    },
    argv: img.argv,
    environ: img.environ,
    auxv: img.auxv.map((a) => ({ type: Number(a.type), value: hex(a.value) })),
    rlimits: img.rlimits.map((r) => ({ resource: r.resource, cur: r.cur === 0xffffffffffffffffn ? "unlimited" : r.cur.toString(), max: r.max === 0xffffffffffffffffn ? "unlimited" : r.max.toString() })),
    threads: img.threads.map((t) => ({
      tid: t.tid, state: t.state, main: (t.flags & 1) !== 0, inSyscall: (t.flags & THREAD_IN_SYSCALL) !== 0,
      sigmask: hex(t.sigmask), pending: hex(t.pending), xstateSize: t.xstate.length,
      regs: t.regs ? Object.fromEntries(Object.entries(t.regs).map(([k, v]) => [k, hex(v)])) : null,
    })),
    memory: img.areas.map((a) => {
      const size = Number(a.end - a.start);
      const storedPages = img.storedPages(a.id);
      const storedBytes = img.storedBytes(a.id);
      return {
        id: a.id, start: hex(a.start), end: hex(a.end), perms: areaPerms(a), kind: a.kind, flags: areaFlagNames(a.flags),
        offset: hex(a.fileOffset), inode: a.inode.toString(), path: a.path, size, storedPages,
        rawBytes: storedPages * img.pageSize, storedBytes,
        ratio: storedBytes ? round2((storedPages * img.pageSize) / storedBytes) : null,
      };
    }),
    files: img.fds.map((f) => ({
      fd: f.fd, kind: f.kind, path: f.path, pos: f.pos.toString(), flags: "0" + f.openFlags.toString(8), cloexec: (f.fdFlags & 1) !== 0,
      fileId: f.fileId ?? null,
      owner: f.owner ?? null, ownerSignal: f.ownerSignal ?? null,
      unrestorable: f.unrestorable ?? null, peerOutside: f.peerOutside ?? null,
      state: fdStateOf(img.fdState, f).map(fdStateFields),
      // terminal, stored file content, on-disk identity (records-files.ts)
      ...fdState(img, f.fd),
      summary: [...fdStateOf(img.fdState, f).map(describeFdState), fdStateText(fdState(img, f.fd))].filter(Boolean).join("; "),
    })),
    mappedFiles: img.files.map((f) => ({
      id: f.id, path: f.path, size: f.size.toString(), inode: f.inode.toString(),
      mtime: new Date(Number(f.mtimeNs / 1_000_000n)).toISOString(),
      sha256: f.sha256 ? Buffer.from(f.sha256).toString("hex") : null,
      buildId: f.buildId ? Buffer.from(f.buildId).toString("hex") : null,
    })),
    signals: img.sigactions.actions.map((a) => ({
      signo: a.signo, name: signalName(a.signo), handler: handlerName(a.handler), flags: hex(a.flags), mask: hex(a.mask), restorer: hex(a.restorer),
    })),
    /** format 1.2: pending signals with their siginfo, in queue order (SIGQUEUE; empty when none) */
    pendingSignals: img.pendingSignals.map((s) => ({
      queue: s.tid === 0 ? "process" : `thread ${s.tid}`, tid: s.tid, signo: s.signo, name: signalName(s.signo), code: s.code,
      errno: s.errno, pid: s.pid, uid: s.uid, value: hex(s.value),
    })),
    /** format 1.1: timers, process and thread state, seccomp (null in 1.0 images) */
    state: stateReport(img),
    /** format 1.2: the process tree (null for a single process) */
    tree: treeReport(img),
    /** format 1.2: SysV IPC objects the processes use (the root's records in a tree) */
    sysv: {
      shm: img.sysv.shm.map((x) => ({ id: x.id, key: hex(BigInt(x.key)), mode: "0" + x.mode.toString(8), uid: x.uid, gid: x.gid, size: x.size.toString(), removed: x.removed })),
      sem: img.sysv.sem.map((x) => ({ id: x.id, key: hex(BigInt(x.key)), mode: "0" + x.mode.toString(8), uid: x.uid, gid: x.gid, values: x.sems.map((s) => s.value) })),
      msg: img.sysv.msg.map((x) => ({ id: x.id, key: hex(BigInt(x.key)), mode: "0" + x.mode.toString(8), uid: x.uid, gid: x.gid, qbytes: x.qbytes.toString(),
        messages: x.messages.length, bytes: x.messages.reduce((n, m) => n + m.data.length, 0) })),
    },
  };
}

/** One line per SysV object (none: no lines). */
function sysvText(s: InspectReport["sysv"]): string[] {
  const out: string[] = [];
  const key = (k: string) => (k === "0x0" ? "private" : `key ${k}`);
  for (const x of s.shm) out.push(`sysv     shm ${x.id} (${key(x.key)}, mode ${x.mode}): ${bytes(Number(x.size))}${x.removed ? ", removed (goes with its last detach)" : ""}`);
  for (const x of s.sem) out.push(`sysv     sem ${x.id} (${key(x.key)}, mode ${x.mode}): values ${x.values.join(" ")}`);
  for (const x of s.msg) out.push(`sysv     msg ${x.id} (${key(x.key)}, mode ${x.mode}): ${x.messages} message${x.messages === 1 ? "" : "s"}, ${bytes(x.bytes)}`);
  return out;
}

export type InspectReport = ReturnType<typeof inspectReport>;

export function inspectText(r: InspectReport): string {
  const out: string[] = [];
  const p = r.process;
  out.push(`image    ${r.image.path}  (${bytes(r.image.size)}, format ${r.image.version}, page ${r.image.pageSize}${r.image.created ? `, created ${r.image.created}` : ""})`);
  if (r.image.recovered) out.push(`         RECOVERED: index damaged, records found by scanning`);
  if (r.image.parent) out.push(parentText(r.image.parent));
  for (const pr of r.image.problems) out.push(`         problem: ${pr.detail}${pr.offset !== undefined ? ` at offset ${pr.offset}` : ""}`);
  if (r.tree) out.push(treeText(r.tree));
  out.push(`process  pid ${p.pid} (${p.comm})  ppid ${p.ppid}  pgid ${p.pgid}  sid ${p.sid}  uid ${p.uid[0]}/${p.uid[1]}  gid ${p.gid[0]}/${p.gid[1]}${p.stopped ? "  [stopped]" : ""}`);
  out.push(`  exe    ${p.exe}`);
  out.push(`  cwd    ${p.cwd}${p.root !== "/" && p.root ? `  root ${p.root}` : ""}`);
  out.push(`  argv   ${r.argv.map(shellQuote).join(" ")}`);
  out.push(`  env    ${r.environ.length} entries, auxv ${r.auxv.length}, rlimits ${r.rlimits.length}, kernel ${p.kernel || "?"}`);
  out.push(...sysvText(r.sysv));
  out.push("");
  out.push(`threads  ${r.threads.length}`);
  out.push(table(
    ["TID", "ST", "RIP", "RSP", "FS_BASE", "ORIG_RAX", "NOTE"],
    r.threads.map((t) => [
      String(t.tid), t.state, t.regs?.rip ?? "-", t.regs?.rsp ?? "-", t.regs?.fs_base ?? "-",
      t.regs ? signedHex(t.regs.orig_rax) : "-", [t.main ? "main" : "", t.inSyscall ? "in-syscall" : ""].filter(Boolean).join(","),
    ]),
  ));
  out.push("");
  const mapped = r.memory.reduce((n, a) => n + a.size, 0);
  const raw = r.memory.reduce((n, a) => n + a.rawBytes, 0);
  const stored = r.memory.reduce((n, a) => n + a.storedBytes, 0);
  out.push(`memory   ${r.memory.length} areas, ${bytes(mapped)} mapped, ${bytes(raw)} of pages stored in ${bytes(stored)}${stored ? ` (ratio ${round2(raw / stored)})` : ""}`);
  out.push(table(
    ["START", "END", "PERMS", "KIND", "SIZE", "STORED", "RATIO", "PATH"],
    r.memory.map((a) => [a.start, a.end, a.perms, a.kind, bytes(a.size), a.rawBytes ? bytes(a.rawBytes) : "-", a.ratio === null ? "-" : a.ratio.toFixed(2), a.path]),
  ));
  out.push("");
  out.push(`files    ${r.files.length} open descriptors`);
  const firstOfDescription = new Map<number, number>();
  for (const f of r.files) if (f.fileId !== null && !firstOfDescription.has(f.fileId)) firstOfDescription.set(f.fileId, f.fd);
  out.push(table(["FD", "KIND", "FLAGS", "POS", "PATH", "STATE"], r.files.map((f) => [
    String(f.fd), f.kind, f.flags + (f.cloexec ? ",cloexec" : ""), f.pos, f.path,
    [f.fileId !== null && firstOfDescription.get(f.fileId) !== f.fd ? `dup of fd ${firstOfDescription.get(f.fileId)}` : "", f.summary, f.unrestorable !== null ? `NOT RESTORABLE: ${f.unrestorable}` : "", f.peerOutside !== null ? `peer outside: ${f.peerOutside}` : ""]
      .filter(Boolean).join("; "),
  ])));
  out.push("");
  out.push(`signals  ${r.signals.length} dispositions set`);
  out.push(table(["SIGNAL", "HANDLER", "FLAGS", "MASK"], r.signals.map((s) => [`${s.name} (${s.signo})`, s.handler, s.flags, s.mask])));
  if (r.pendingSignals.length) {
    out.push(`pending  ${r.pendingSignals.length} signal${r.pendingSignals.length === 1 ? "" : "s"} queued`);
    out.push(table(["QUEUE", "SIGNAL", "CODE", "PID", "UID", "VALUE"], r.pendingSignals.map((s) => [
      s.queue, `${s.name} (${s.signo})`, String(s.code), String(s.pid), String(s.uid), s.value])));
  }
  return out.join("\n") + "\n" + stateText(r.state);
}

export function verifyText(r: VerifyReport): string {
  const out: string[] = [];
  const rate = r.seconds > 0 ? `${(r.rawBytesChecked / r.seconds / 1e6).toFixed(0)} MB/s of pages, ${r.threads} thread${r.threads > 1 ? "s" : ""}` : "";
  if (r.ok) {
    out.push(`${r.path}: ok — ${r.records} records, ${r.chunks} page chunks, ${bytes(r.rawBytesChecked)} of pages checked in ${r.seconds.toFixed(2)} s (${rate})`);
  } else {
    out.push(`${r.path}: DAMAGED — ${r.problems.length} problem(s)${r.recovered ? ", index unusable: records recovered by scanning" : ""}; ${r.damagedChunks} of ${r.chunks} page chunks damaged`);
    for (const p of r.problems) out.push(`  ${p.code.padEnd(18)} ${p.rule ? `rule ${p.rule}: ` : ""}${p.detail}${p.offset !== undefined ? ` at offset ${p.offset}` : ""}`);
  }
  return out.join("\n") + "\n";
}

export const INSPECT_VERB: Verb = {
  summary: "show what an image holds (process, threads, memory map, files, signals)",
  usage: "[--json] [--recover] [--pid PID] IMG|CRIU_DIR|ARCHIVE",
  async run(args, ctx) {
    const { values, positionals } = parseVerbArgs(args, { json: { type: "boolean" }, recover: { type: "boolean" } });
    if (positionals.length !== 1) throw new UsageError("inspect takes one image");
    const img = await openImage(positionals[0], { tolerant: Boolean(values.recover) });
    try {
      const report: InspectReport & { criu?: CriuDescription } = inspectReport(img);
      // A CRIU dump or container archive adds its tree, files, sockets and container metadata.
      let criuText = "";
      if (isCriuImage(img)) {
        const [{ describeCriu }, { criuInspectText }] = await Promise.all([import("../criu/describe.js"), import("./criu.js")]);
        report.criu = await describeCriu(img);
        criuText = criuInspectText(report.criu);
      }
      ctx.stdout(values.json ? toJson(report) : inspectText(report) + criuText);
    } finally {
      await img.close();
    }
    return EXIT_OK;
  },
};

export const VERIFY_VERB: Verb = {
  summary: "check an image's structure and every checksum (--against-disk: code vs files on disk); exit 1 if damaged or patched",
  usage: "[--json] [--against-disk] IMG",
  async run(args, ctx: CliContext) {
    const { values, positionals } = parseVerbArgs(args, { json: { type: "boolean" }, "against-disk": { type: "boolean" } });
    if (positionals.length !== 1) throw new UsageError("verify takes one image");
    const progress = progressPrinter(ctx, "verify");
    let report;
    try {
      report = await verifyAnyImage(positionals[0], { onProgress: progress.update });
    } catch (err) {
      // nothing to verify (not an image, unknown major version): one line naming the rule
      if (!(err instanceof ImageError) || !err.rule) throw err;
      progress.done();
      ctx.stderr(formatTrouble(err, { rule: true }) + "\n");
      return EXIT_TROUBLE;
    }
    progress.done();
    if (!values["against-disk"]) {
      ctx.stdout(values.json ? toJson(report) : verifyText(report));
      return report.ok ? EXIT_OK : EXIT_FINDING;
    }
    const img = await openImage(positionals[0], { tolerant: !report.ok });
    try {
      const disk = await verifyAgainstDisk(img);
      ctx.stdout(values.json ? toJson({ ...report, againstDisk: disk }) : verifyText(report) + againstDiskText(disk));
      return report.ok && disk.ok ? EXIT_OK : EXIT_FINDING;
    } finally {
      await img.close();
    }
  },
};

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => "  " + cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ");
  return [line(head), ...rows.map(line)].join("\n");
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024, u = 0;
  while (v >= 1024 && u < units.length - 1) (v /= 1024), u++;
  return `${v < 10 ? v.toFixed(1) : v.toFixed(0)} ${units[u]}`;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function signedHex(h: string): string {
  return h === "0xffffffffffffffff" ? "-1" : h;
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
