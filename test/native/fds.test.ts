/**
 * File descriptors of every kind across capture --kill → restore, on real processes. Each
 * program in test/native/fd-programs sets up its state in flight (bytes in a pipe, a half-read
 * socket queue, …), prints "ready", and on a "check" line verifies by itself that the state
 * is what it was, printing "ok" or "FAIL: …" lines. The restored process inherits the restore
 * command's stdio, so "check" goes to the restore command's stdin.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { openImage, type PipeState, type UnixSocketState } from "../../src/format/index.js";
import { REPO, compileC, makeTempDir, removeTempDirs, runCli, sleep, startProcess, type Started } from "./helpers.js";

const FP = join(REPO, "test/native/fd-programs");
const CLI = join(REPO, "bin/ckimg");
const prog = (name: string) => compileC(readFileSync(join(FP, `${name}.c`), "utf8"), name);

let tmp = "";
beforeAll(() => {
  for (const b of ["build/ckimg-restore", "build/ckimg-capture", "dist/cli/main.js"])
    if (!existsSync(join(REPO, b))) throw new Error(`${b} missing: run npm run build first`);
  tmp = makeTempDir("ckimg-fds-");
});
afterAll(() => removeTempDirs());

async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 500 && existsSync(`/proc/${pid}`); i++) await sleep(20);
  if (existsSync(`/proc/${pid}`)) throw new Error(`process ${pid} did not go away`);
}

export interface Captured { img: string; stderr: string }

/** capture --kill (the target dies at the capture point) and wait until its PID is free. */
export async function captureKill(p: Started, img: string, extra: string[] = []): Promise<Captured> {
  const r = runCli(["capture", String(p.pid), "-o", img, "--kill", ...extra]);
  if (r.status !== 0) {
    await p.kill();
    throw new Error(`capture failed (${r.status}): ${r.stderr}`);
  }
  await p.exited;
  await gone(p.pid);
  return { img, stderr: r.stderr };
}

export function restore(img: string, extra: string[] = []): Started {
  return startProcess([process.execPath, CLI, "restore", img, ...extra]);
}

export async function stopRestored(pid: number, r: Started): Promise<void> {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* already gone */
  }
  await Promise.race([r.exited, sleep(10_000)]);
  await r.kill();
  await gone(pid);
}

/** Ask the restored program to check itself; resolves with its verdict lines. */
async function selfCheck(r: Started): Promise<string[]> {
  const from = r.lines.length;
  r.write("check\n");
  await r.waitForLine(/^(ok|FAIL)/, { from });
  await sleep(50);    // let the rest of a FAIL list arrive
  return r.lines.slice(from).filter((l) => /^(ok|FAIL)/.test(l));
}

async function roundTrip(name: string, args: string[], inspect?: (img: string) => Promise<void>): Promise<string[]> {
  const exe = prog(name);
  const img = join(tmp, `${name}-${Math.random().toString(36).slice(2)}.img`);
  const p = startProcess([exe, ...args], { cwd: tmp });
  await p.waitForLine(/^ready/);
  await captureKill(p, img);
  if (inspect) await inspect(img);
  const r = restore(img);
  try {
    return await selfCheck(r);
  } finally {
    await stopRestored(p.pid, r);
  }
}

describe("pipes, FIFOs and shared open file descriptions", () => {
  it("bring back buffered bytes, pipe sizes, ends, dups, offsets, O_APPEND, FD_CLOEXEC, F_SETOWN/F_SETSIG", async () => {
    const dir = makeTempDir("ckimg-pipes-");
    const verdict = await roundTrip("pipes", [dir], async (path) => {
      const img = await openImage(path);
      try {
        const pipes = img.fdState.filter((s): s is PipeState => s.type === "pipe");
        const text = pipes.map((p) => Buffer.from(p.data).toString("latin1"));
        expect(text).toContain("hello through the pipe\0");
        expect(text).toContain("fifo bytes");
        expect(pipes.some((p) => p.data.length === 100000 && p.pipeSize === 128 * 1024)).toBe(true);
        // the dup'ed read end shares its description with the original
        const readEnds = img.fds.filter((f) => f.kind === "fifo" && f.fileId !== undefined);
        const ids = readEnds.map((f) => f.fileId);
        expect(new Set(ids).size).toBeLessThan(ids.length);
        // a pipe whose writer was closed everywhere comes back exactly (bytes, then end of
        // file): none of the program's own fds (3-63; higher ones are inherited) is marked
        const own = img.fds.filter((f) => f.fd >= 3 && f.fd < 64);
        expect(own.filter((f) => f.unrestorable !== undefined || f.peerOutside !== undefined)).toEqual([]);
      } finally {
        await img.close();
      }
    });
    expect(verdict).toEqual(["ok"]);
  });
});

describe("unix sockets", () => {
  it("bring back pairs with half-read queues (stream, dgram, seqpacket), listeners on paths and abstract names, bound datagram queues, shutdowns", async () => {
    const dir = makeTempDir("ckimg-unix-");
    const verdict = await roundTrip("unix", [dir], async (path) => {
      const img = await openImage(path);
      try {
        const socks = img.fdState.filter((s): s is UnixSocketState => s.type === "unix");
        const listening = socks.filter((s) => s.state === 10);
        expect(listening.map((s) => s.backlog).sort()).toEqual([3, 7]);
        expect(listening.some((s) => s.name[0] === 0)).toBe(true);     // the abstract one
        const dgram = socks.find((s) => s.socketType === "dgram" && s.queue.length === 2 && s.peerInside);
        expect(dgram?.queue.map((m) => Buffer.from(m).toString())).toEqual(["dgram-A", "dgram-BB"]);
        // inspect names each socket's state
        const r = runCli(["inspect", path]);
        expect(r.stdout).toMatch(/unix stream .*listen\.sock: listening \(backlog 7\)/);
        expect(r.stdout).toMatch(/unix dgram: peer socket \d+ \(ours\), 2 message\(s\) \/ 15 bytes queued/);
      } finally {
        await img.close();
      }
    });
    expect(verdict).toEqual(["ok"]);
  });
});

describe("TCP and UDP", () => {
  it("bring back listeners (v4, v6-only), an established connection with unread bytes both ways (TCP repair), bound and connected UDP", async () => {
    const exe = prog("inet");
    const img = join(tmp, `inet-${Math.random().toString(36).slice(2)}.img`);
    const p = startProcess([exe], { cwd: tmp });
    await p.waitForLine(/^ready/);
    await captureKill(p, img);
    const im = await openImage(img);
    try {
      const tcp = im.fdState.filter((s) => s.type === "tcp");
      expect(tcp.length).toBe(2);                 // both ends of the connection
      const r = runCli(["inspect", img]);
      expect(r.stdout).toMatch(/tcp 127\.0\.0\.1:\d+: listening \(backlog 5\)/);
      expect(r.stdout).toMatch(/tcp \[::1\]:\d+: listening \(backlog 9\)/);
      expect(r.stdout).toMatch(/tcp 127\.0\.0\.1:\d+ → 127\.0\.0\.1:\d+: established; 9 bytes unread/);
    } finally {
      await im.close();
    }
    const rs = restore(img);
    try {
      expect(await selfCheck(rs)).toEqual(["ok"]);
    } finally {
      await stopRestored(p.pid, rs);
    }
  });
});
