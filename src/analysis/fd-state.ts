/**
 * What an image records about an fd beyond its FD record (format 1.1 files and terminals):
 * terminal state (termios summary, window, controlling, foreground), the content of a deleted
 * file or memfd, the identity of a file on disk. One JSON-ready shape for `inspect --json`,
 * a short text for `inspect`, and field-by-field changes for `diff`.
 */
import {
  SEAL_NAMES, termiosMode, ttyFlagNames, type CheckpointImage, type FdFileRecord, type FileContentRecord, type TtyRecord,
} from "../format/index.js";

export interface FdTtyState {
  name: string;
  /** "raw", "cooked" or the flags that differ ("-icanon echo isig") */
  mode: string;
  rows: number;
  cols: number;
  flags: string[];
  index: number | null;
  foregroundPgrp: number | null;
  session: number | null;
  peerFd: number | null;
  inQueued: number;
  outQueued: number;
  /** bytes of the side's queue the image holds (a pair's lowest fd on each side) */
  keptBytes: number;
  /** PTY_SLAVE: owner of /dev/pts/N ("uid:gid") and its mode ("0620"), null when not recorded */
  owner: string | null;
  nodeMode: string | null;
  termios: { iflag: string; oflag: string; cflag: string; lflag: string };
}

export interface FdContentState {
  id: number;
  kind: string;
  path: string;
  size: string;
  storedBytes: string;
  runs: number;
  seals: string[];
  mode: string;
  /** owner at capture ("uid:gid"), null when the record has none */
  owner: string | null;
}

export interface FdState {
  tty: FdTtyState | null;
  /** deleted file or memfd whose bytes the image holds */
  content: FdContentState | null;
  /** file on disk: what restore compares with */
  file: { size: string; mtime: string } | null;
}

const oct = (n: number) => "0" + n.toString(8);

function ttyState(t: TtyRecord): FdTtyState {
  return {
    name: t.name, mode: termiosMode(t.termios), rows: t.winsize.rows, cols: t.winsize.cols,
    flags: ttyFlagNames(t.flags).map((f) => f.toLowerCase()),
    index: t.index ?? null, foregroundPgrp: t.fgPgrp || null, session: t.sid || null, peerFd: t.peerFd ?? null,
    inQueued: t.inQueued, outQueued: t.outQueued, keptBytes: t.data.length,
    owner: t.uid !== undefined || t.gid !== undefined ? `${t.uid ?? "-"}:${t.gid ?? "-"}` : null,
    nodeMode: t.mode !== undefined ? oct(t.mode & 0o7777) : null,
    termios: { iflag: oct(t.termios.iflag), oflag: oct(t.termios.oflag), cflag: oct(t.termios.cflag), lflag: oct(t.termios.lflag) },
  };
}

function contentState(c: FileContentRecord): FdContentState {
  return {
    id: c.id, kind: c.kind, path: c.path, size: c.size.toString(), storedBytes: c.dataBytes.toString(), runs: c.runCount,
    seals: SEAL_NAMES.filter((_, i) => c.seals & (1 << i)), mode: oct(c.mode & 0o7777),
    owner: c.uid !== undefined || c.gid !== undefined ? `${c.uid ?? "-"}:${c.gid ?? "-"}` : null,
  };
}

function fileState(f: FdFileRecord): FdState["file"] {
  return { size: f.size.toString(), mtime: new Date(Number(f.mtimeNs / 1_000_000n)).toISOString() };
}

/** The recorded state of fd `fd` (all null for a 1.0 image or an fd with nothing more). */
export function fdState(img: CheckpointImage, fd: number): FdState {
  const t = img.ttys.get(fd);
  const f = img.fdFiles.get(fd);
  const c = f?.contentId !== undefined ? img.fileContents.find((x) => x.id === f.contentId) : undefined;
  return { tty: t ? ttyState(t) : null, content: c ? contentState(c) : null, file: f && !c ? fileState(f) : null };
}

function bytesText(n: string): string {
  const v = Number(n);
  if (v < 1024) return `${v} B`;
  if (v < 1 << 20) return `${(v / 1024).toFixed(1)} KiB`;
  if (v < 1 << 30) return `${(v / (1 << 20)).toFixed(1)} MiB`;
  return `${(v / (1 << 30)).toFixed(1)} GiB`;
}

/** One short line: "raw 24x80 controlling foreground", "deleted 1.0 MiB (8.0 KiB stored)", "memfd 8.0 KiB seals shrink,grow". */
export function fdStateText(s: FdState): string {
  const parts: string[] = [];
  if (s.tty) {
    parts.push(s.tty.mode, `${s.tty.rows}x${s.tty.cols}`);
    for (const f of s.tty.flags) if (f !== "pty_slave" && f !== "pty_master") parts.push(f === "paired" && s.tty.peerFd !== null ? `paired(fd ${s.tty.peerFd})` : f);
    if (s.tty.flags.includes("pty_master")) parts.push(`ptmx${s.tty.index !== null ? ` #${s.tty.index}` : ""}`);
    if (s.tty.inQueued || s.tty.outQueued) parts.push(`queued in ${s.tty.inQueued} out ${s.tty.outQueued}`);
    if (s.tty.keptBytes) parts.push(`${s.tty.keptBytes} queued bytes kept`);
    if (s.tty.owner) parts.push(`owner ${s.tty.owner}`);
    if (s.tty.nodeMode) parts.push(`mode ${s.tty.nodeMode}`);
  }
  if (s.content) {
    parts.push(s.content.kind, bytesText(s.content.size), `(${bytesText(s.content.storedBytes)} stored)`);
    if (s.content.seals.length) parts.push(`seals ${s.content.seals.join(",")}`);
    if (s.content.owner) parts.push(`owner ${s.content.owner}`);
  }
  if (s.file) parts.push(`size ${bytesText(s.file.size)}`);
  return parts.join(" ");
}

export interface FdStateChange { field: string; a: string | number | null; b: string | number | null }

/** How fd `fd`'s recorded state differs between two images (empty when the same). */
export function diffFdState(a: CheckpointImage, b: CheckpointImage, fd: number): FdStateChange[] {
  const x = fdState(a, fd), y = fdState(b, fd);
  const out: FdStateChange[] = [];
  const cmp = (field: string, p: string | number | null | undefined, q: string | number | null | undefined) => {
    if ((p ?? null) !== (q ?? null)) out.push({ field, a: p ?? null, b: q ?? null });
  };
  cmp("tty.mode", x.tty?.mode, y.tty?.mode);
  cmp("tty.window", x.tty ? `${x.tty.rows}x${x.tty.cols}` : null, y.tty ? `${y.tty.rows}x${y.tty.cols}` : null);
  cmp("tty.flags", x.tty?.flags.join(","), y.tty?.flags.join(","));
  cmp("tty.lflag", x.tty?.termios.lflag, y.tty?.termios.lflag);
  cmp("tty.iflag", x.tty?.termios.iflag, y.tty?.termios.iflag);
  cmp("tty.oflag", x.tty?.termios.oflag, y.tty?.termios.oflag);
  cmp("tty.owner", x.tty?.owner, y.tty?.owner);
  cmp("tty.keptBytes", x.tty?.keptBytes, y.tty?.keptBytes);
  cmp("tty.nodeMode", x.tty?.nodeMode, y.tty?.nodeMode);
  cmp("content.kind", x.content?.kind, y.content?.kind);
  cmp("content.size", x.content?.size, y.content?.size);
  cmp("content.storedBytes", x.content?.storedBytes, y.content?.storedBytes);
  cmp("content.seals", x.content?.seals.join(","), y.content?.seals.join(","));
  cmp("file.size", x.file?.size, y.file?.size);
  cmp("file.mtime", x.file?.mtime, y.file?.mtime);
  return out;
}
