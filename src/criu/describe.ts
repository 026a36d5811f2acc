/**
 * What a CRIU dump holds beyond one process's image model, for `inspect`: the process tree
 * with command lines, open files and sockets per process (as `checkpointctl inspect --ps-tree
 * --files --sockets` shows them), the container's metadata, and what CRIU does not record.
 */
import type { file_entry } from "./gen/fdinfo_pb.js";
import { fd_types } from "./gen/fdinfo_pb.js";
import type { inet_sk_entry } from "./gen/sk-inet_pb.js";
import type { ContainerInfo } from "./archive.js";
import type { CriuDump, CriuProcess } from "./dump.js";
import type { CriuImage } from "./image.js";
import { CRIU_PAGE_SIZE, TASK_DEAD, TASK_STOPPED, TASK_ZOMBIE } from "./raw.js";

export interface CriuTreeProcess {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  comm: string;
  state: string;
  threads: number[];
  cmdline: string;
}

export interface CriuFile {
  pid: number;
  fd: number;
  type: string;
  path: string;
}

export interface CriuSocket {
  pid: number;
  fd: number;
  family: string;
  type: string;
  state: string;
  local: string;
  remote: string;
  ino: number;
}

export interface CriuDescription {
  imgVersion: number;
  /** the process the image model shows */
  shownPid: number;
  tree: CriuTreeProcess[];
  files: CriuFile[];
  sockets: CriuSocket[];
  /** files of the dump directory and their sizes */
  images: { name: string; size: number }[];
  stats: { frozenUs: number; memdumpUs: number; pagesWritten: string } | undefined;
  container: ContainerInfo | undefined;
  gaps: string[];
}

const SOCK_TYPES: Record<number, string> = { 1: "STREAM", 2: "DGRAM", 3: "RAW", 5: "SEQPACKET" };
const TCP_STATES: Record<number, string> = {
  1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE",
  8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
};
const PROTOS: Record<number, string> = { 6: "TCP", 17: "UDP", 136: "UDPLITE", 1: "ICMP", 58: "ICMPV6", 255: "RAW" };

export async function describeCriu(img: CriuImage): Promise<CriuDescription> {
  const dump = img.dump;
  const tree: CriuTreeProcess[] = [];
  for (const p of dump.processes) {
    tree.push({
      pid: p.pid, ppid: p.ppid, pgid: p.pgid, sid: p.sid, comm: p.core.tc?.comm ?? "", state: stateName(p.state),
      threads: p.threads, cmdline: (await processArgs(dump, p)).join(" "),
    });
  }
  const files: CriuFile[] = [];
  const sockets: CriuSocket[] = [];
  for (const p of dump.processes) {
    for (const fd of [...p.fds].sort((a, b) => a.fd - b.fd)) {
      const f = dump.files.get(fd.id);
      files.push({ pid: p.pid, fd: fd.fd, type: fd_types[fd.type] ?? String(fd.type), path: filePath(dump, f, fd.type) });
      const s = f && socketOf(f);
      if (s) sockets.push({ pid: p.pid, fd: fd.fd, ...s });
    }
  }
  const st = dump.stats;
  return {
    imgVersion: dump.inventory.imgVersion,
    shownPid: img.criuProcess.pid,
    tree, files, sockets,
    images: dump.images.map(({ name, size }) => ({ name, size })),
    stats: st ? { frozenUs: st.frozenTime, memdumpUs: st.memdumpTime, pagesWritten: st.pagesWritten.toString() } : undefined,
    container: img.container,
    gaps: img.criuGaps,
  };
}

function stateName(s: number): string {
  return s === TASK_STOPPED ? "stopped" : s === TASK_ZOMBIE ? "zombie" : s === TASK_DEAD ? "dead" : "alive";
}

function filePath(dump: CriuDump, f: file_entry | undefined, type: number): string {
  if (!f) return "(missing from files.img)";
  switch (type) {
    case fd_types.REG: return f.reg?.name ?? "";
    case fd_types.PIPE: return `pipe:[${f.pipe?.pipeId}]`;
    case fd_types.FIFO: return dump.files.get(f.fifo?.regfId ?? -1)?.reg?.name ?? `fifo:[${f.fifo?.pipeId}]`;
    case fd_types.UNIXSK: return `socket:[${f.usk?.ino}]`;
    case fd_types.INETSK: return `socket:[${f.isk?.ino}]`;
    case fd_types.TTY: return dump.files.get(f.tty?.regfId ?? -1)?.reg?.name ?? "tty";
    default: return fd_types[type]?.toLowerCase() ?? "";
  }
}

function socketOf(f: file_entry): Omit<CriuSocket, "pid" | "fd"> | undefined {
  if (f.usk) {
    const u = f.usk;
    const name = u.name.length ? (u.name[0] === 0 ? "@" + Buffer.from(u.name.subarray(1)).toString("utf8") : Buffer.from(u.name).toString("utf8")) : "";
    return {
      family: "UNIX", type: SOCK_TYPES[u.type] ?? String(u.type), state: TCP_STATES[u.state] ?? String(u.state),
      local: name, remote: u.peer ? `peer ino ${u.peer}` : "", ino: u.ino,
    };
  }
  if (f.isk) {
    const s = f.isk;
    const v6 = s.family === 10;
    return {
      family: v6 ? "INET6" : "INET", type: PROTOS[s.proto] ?? SOCK_TYPES[s.type] ?? String(s.type), state: TCP_STATES[s.state] ?? String(s.state),
      local: endpoint(s, s.srcAddr, s.srcPort), remote: endpoint(s, s.dstAddr, s.dstPort), ino: s.ino,
    };
  }
  return undefined;
}

/** CRIU keeps addresses as the u32 words of in_addr / in6_addr, in memory (network) byte order. */
function endpoint(s: inet_sk_entry, words: number[], port: number): string {
  const b = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => b.writeUInt32LE(w >>> 0, i * 4));
  if (s.family === 10 && b.length >= 16) {
    const parts: string[] = [];
    for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16));
    return `[${parts.join(":").replace(/(^|:)0(:0)+(:|$)/, "::")}]:${port}`;
  }
  return b.length >= 4 ? `${b[0]}.${b[1]}.${b[2]}.${b[3]}:${port}` : `:${port}`;
}

/** argv of any process of the dump, read from its pages (the stack keeps them). */
export async function processArgs(dump: CriuDump, p: CriuProcess): Promise<string[]> {
  const mm = p.mm, pm = p.pagemap;
  if (!mm || !pm || mm.mmArgEnd <= mm.mmArgStart || mm.mmArgEnd - mm.mmArgStart > 65536n) return [];
  const out: number[] = [];
  const ps = BigInt(CRIU_PAGE_SIZE);
  for (let addr = mm.mmArgStart; addr < mm.mmArgEnd;) {
    const page = addr - (addr % ps);
    const run = pm.runs.find((r) => r.pagesOffset !== undefined && page >= r.vaddr && page < r.vaddr + BigInt(r.nrPages) * ps);
    const n = Number((page + ps < mm.mmArgEnd ? page + ps : mm.mmArgEnd) - addr);
    if (!run) return [];
    const bytes = await dump.source.readAt(pm.pagesFile, run.pagesOffset! + Number(addr - run.vaddr), n);
    out.push(...bytes);
    addr += BigInt(n);
  }
  const parts = Buffer.from(out).toString("utf8").split("\0");
  if (parts.length && parts[parts.length - 1] === "") parts.pop();
  return parts;
}
