/**
 * Each fd's recorded state (format 1.1): the text `inspect` shows, the JSON it carries, and
 * what `diff` reports when a terminal's mode or size, a deleted file's size or a file's
 * identity differ between two images.
 */
import { describe, expect, test } from "vitest";
import { join } from "node:path";
import { diffFdState, diffImages, fdState, fdStateText } from "../../src/analysis/index.js";
import { ImageWriter, openImage, type FdRecord, type TtyRecord } from "../../src/format/index.js";
import { diffText } from "../../src/cli/diff.js";
import { tempDir } from "../support/tmp.js";

const dir = tempDir();

const proc = {
  pid: 77, ppid: 1, pgid: 77, sid: 77, uid: [0, 0, 0, 0] as [number, number, number, number], gid: [0, 0, 0, 0] as [number, number, number, number],
  personality: 0, umask: 0o22, threadCount: 0, captureNs: 0n, startTime: 0n,
  mm: { startCode: 0n, endCode: 0n, startData: 0n, endData: 0n, startBrk: 0n, brk: 0n, startStack: 0n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n },
  flags: 0, comm: "t", exe: "/bin/t", cwd: "/", root: "/", kernel: "6",
};
const fd = (n: number, kind: FdRecord["kind"], path: string): FdRecord => ({
  fd: n, kind, openFlags: 2, fdFlags: 0, mode: 0, pos: 0n, devMajor: 0, devMinor: 0, inode: BigInt(100 + n), rdevMajor: 136, rdevMinor: 3, path,
});
const tty = (lflag: number, rows: number): TtyRecord => ({
  fd: 0, flags: 1 | 4 | 128, index: 3, sid: 77, fgPgrp: 77,
  termios: { iflag: 0o400, oflag: 5, cflag: 0o277, lflag, line: 0, cc: new Uint8Array(19), ispeed: 38400, ospeed: 38400 },
  winsize: { rows, cols: 80, xpixel: 0, ypixel: 0 }, inQueued: 0, outQueued: 0, peerFd: undefined, name: "/dev/pts/3", data: new Uint8Array(0),
});

async function image(name: string, lflag: number, rows: number, size: bigint): Promise<string> {
  const path = join(dir, name);
  const w = await ImageWriter.create(path, { durable: false });
  await w.addProcess(proc);
  await w.addFd(fd(0, "tty", "/dev/pts/3"));
  await w.addFd(fd(3, "regular", "/tmp/x (deleted)"));
  await w.addFd(fd(4, "regular", "/etc/hosts"));
  await w.addTty(tty(lflag, rows));
  await w.addFileContent({ id: 1, kind: "deleted", flags: 0, devMajor: 0, devMinor: 0, inode: 103n, size, mtimeNs: 0n, mode: 0o100600, seals: 0, dataBytes: 0n, runCount: 0, path: "/tmp/x" });
  await w.addFdFile({ fd: 3, contentId: 1, flags: 1, size, mtimeNs: 0n, ctimeNs: 0n });
  await w.addFdFile({ fd: 4, contentId: undefined, flags: 0, size: 200n, mtimeNs: 1_700_000_000_000_000_000n, ctimeNs: 0n });
  await w.finish();
  return path;
}

describe("fd state", () => {
  test("inspect text and JSON", async () => {
    const img = await openImage(await image("a.img", 0o2 | 0o10 | 0o1, 24, 5n << 20n));
    expect(fdStateText(fdState(img, 0))).toBe("cooked 24x80 controlling foreground");
    expect(fdStateText(fdState(img, 3))).toBe("deleted 5.0 MiB (0 B stored)");
    expect(fdStateText(fdState(img, 4))).toBe("size 200 B");
    expect(fdState(img, 4).file).toEqual({ size: "200", mtime: "2023-11-14T22:13:20.000Z" });
    expect(fdState(img, 9)).toEqual({ tty: null, content: null, file: null });
    await img.close();
  });

  test("diff names the terminal and file changes", async () => {
    const a = await openImage(await image("b.img", 0o2 | 0o10 | 0o1, 24, 5n << 20n));
    const b = await openImage(await image("c.img", 0, 40, 6n << 20n));
    expect(diffFdState(a, b, 0)).toEqual([
      { field: "tty.mode", a: "cooked", b: "raw" },
      { field: "tty.window", a: "24x80", b: "40x80" },
      { field: "tty.lflag", a: "013", b: "00" },
    ]);
    expect(diffFdState(a, b, 3)).toEqual([{ field: "content.size", a: String(5 << 20), b: String(6 << 20) }]);
    expect(diffFdState(a, a, 3)).toEqual([]);
    const d = await diffImages(a, b);
    expect(d.same).toBe(false);
    expect(d.files.changed.map((c) => c.fd)).toEqual([0, 3]);
    expect(diffText(d)).toMatch(/tty\.mode/);
    await a.close();
    await b.close();
  });
});
