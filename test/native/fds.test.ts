/**
 * File descriptors of every kind across capture --kill → restore, on real processes. Each
 * program in test/native/fd-programs sets up its state in flight (bytes in a pipe, a half-read
 * socket queue, …), prints "ready", and on a "check" line verifies by itself that the state
 * is what it was, printing "ok" or "FAIL: …" lines. The restored process inherits the restore
 * command's stdio, so "check" goes to the restore command's stdin.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { crc32, openImage, type PipeState, type UdpQueueState, type UnixFilesState, type UnixSocketState } from "../../src/format/index.js";
import { REPO, compileC, makeTempDir, removeTempDirs, requireBuild, runCli, sleep, startProcess, type Started } from "./helpers.js";

const FP = join(REPO, "test/native/fd-programs");
const CLI = join(REPO, "bin/ckimg");
const prog = (name: string) => compileC(readFileSync(join(FP, `${name}.c`), "utf8"), name);

let tmp = "";
beforeAll(() => {
  requireBuild();
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

/**
 * Wait until the restored process runs on its own (exists, no longer traced by the restorer).
 * A peer that sends to a TCP connection before it is rebuilt gets a reset (nothing holds the
 * connection between the kill and the restore; see the notes), so the clients wait for this.
 */
export async function restoredRunning(pid: number, r: Started): Promise<void> {
  for (let i = 0; i < 500; i++) {
    try {
      // while the restorer builds it, the child runs ckimg-restore's code (its exe) or is traced
      const st = readFileSync(`/proc/${pid}/status`, "utf8");
      if (/^TracerPid:\s+0$/m.test(st) && !readlinkSync(`/proc/${pid}/exe`).endsWith("ckimg-restore")) return;
    } catch {
      /* not there yet */
    }
    if (r.child.exitCode !== null) throw new Error(`restore exited ${r.child.exitCode}: ${r.stderr()}`);
    await sleep(20);
  }
  throw new Error(`process ${pid} was not restored: ${r.stderr()}`);
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

describe("file locks", () => {
  it("flock, POSIX and OFD locks are held again after restore (another process cannot take them)", async () => {
    const dir = makeTempDir("ckimg-locks-");
    const verdict = await roundTrip("locks", [dir], async (path) => {
      const img = await openImage(path);
      try {
        const locks = img.fdState.filter((s) => s.type === "lock").map((l) => l.type === "lock" ? `${l.kind} ${l.write ? "write" : "read"} ${l.start}-${l.end ?? "EOF"}` : "");
        expect(locks.sort()).toEqual(["flock write 0-EOF", "ofd read 0-EOF", "posix write 10-29"]);
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

describe("unix socket peer credentials", () => {
  it("a pair made by a child that exited reports the child's pid, uid and gid again (SO_PEERCRED, zdtm sock_peercred)", async () => {
    const verdict = await roundTrip("unix-peercred", [], async (path) => {
      const img = await openImage(path);
      try {
        const creds = img.fdState.filter((s): s is UnixSocketState => s.type === "unix").map((s) => s.peerCred);
        expect(creds.filter((c) => c?.uid === 1234 && c?.gid === 4321)).toHaveLength(2);
      } finally {
        await img.close();
      }
    });
    expect(verdict).toEqual(["ok"]);
  });
});

describe("unix datagram senders", () => {
  it("each queued datagram names its sender again: a closed abstract-named client, a closed path-named one, a live one, an unbound one (zdtm socket_snd_addr)", async () => {
    const dir = makeTempDir("ckimg-senders-");
    const verdict = await roundTrip("unix-senders", [dir], async (path) => {
      const img = await openImage(path);
      try {
        const srv = img.fdState.find((s): s is UnixSocketState => s.type === "unix" && s.queue.length === 4);
        expect(srv?.senders?.map((n) => Buffer.from(n).toString("latin1"))).toEqual(
          ["\0ckimg-sender-gone", `${dir}/sender.sock`, "\0ckimg-sender-live", ""]);
        expect(runCli(["inspect", path]).stdout).toMatch(/4 message\(s\) \/ \d+ bytes queued \(from @ckimg-sender-gone, /);
      } finally {
        await img.close();
      }
    });
    expect(verdict).toEqual(["ok"]);
    expect(existsSync(join(dir, "sender.sock"))).toBe(false);   // the temporary sender left no file
  });
});

describe("unix sockets between the usual states", () => {
  it("a client of ours waiting in a listener's backlog, a connection whose client closed, a pair whose peer closed, datagram clients of a bound server, a self-connected socket, the socket file's mode", async () => {
    const dir = makeTempDir("ckimg-backlog-");
    const verdict = await roundTrip("unix-backlog", [dir], async (path) => {
      const img = await openImage(path);
      try {
        const socks = img.fdState.filter((s): s is UnixSocketState => s.type === "unix");
        const lsn = socks.find((s) => s.state === 10);
        expect(lsn?.pending).toBe(2);
        expect(lsn?.pendingClosed).toBe(1);
        expect((lsn?.socketFile?.mode ?? 0) & 0o7777).toBe(0o640);
        expect(socks.filter((s) => s.inBacklog).length).toBe(1);
        // nothing is marked: every peer is the process's own
        const own = img.fds.filter((f) => f.fd >= 3 && f.fd < 64);
        expect(own.filter((f) => f.unrestorable !== undefined || f.peerOutside !== undefined)).toEqual([]);
        expect(runCli(["inspect", path]).stdout).toMatch(/waiting in the backlog of .*backlog\.sock \(ours\)/);
      } finally {
        await img.close();
      }
    });
    expect(verdict).toEqual(["ok"]);
  });
});

describe("unix sockets: files in flight", () => {
  it("a queued message carrying a file it cannot describe (SCM_RIGHTS) is named at capture; restore refuses it unless --force", async () => {
    const exe = prog("unix-rights");
    const img = join(tmp, "rights.img");
    const p = startProcess([exe], { cwd: tmp });
    const fd = Number((await p.waitForLine(/^ready \d+/)).split(" ")[1]);
    const cap = await captureKill(p, img);
    expect(cap.stderr).toMatch(new RegExp(`fd ${fd} .*a file passed in its queue \\(SCM_RIGHTS\\) cannot be kept: message 0 carries anon_inode:\\[eventfd\\]`));
    const j = JSON.parse(runCli(["inspect", "--json", img]).stdout);
    expect(j.files.find((f: { fd: number }) => f.fd === fd).summary).toMatch(/1 message\(s\) \/ 12 bytes queued/);
    const r = runCli(["restore", img]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n").filter((l) => !/warning/.test(l))).toHaveLength(1);
    expect(r.stderr).toMatch(/SCM_RIGHTS/);
    expect(existsSync(`/proc/${p.pid}`)).toBe(false);
  });
});

describe("unix sockets: files in flight that come back", () => {
  it("pipe ends (also one held nowhere else), a regular file at its offset and the process's own description are passed again with their messages", async () => {
    const dir = makeTempDir("ckimg-passed-");
    const verdict = await roundTrip("unix-passed", [dir], async (path) => {
      const img = await openImage(path);
      try {
        const passed = img.fdState.filter((s): s is UnixFilesState => s.type === "scm");
        expect(passed.map((s) => s.files.map((f) => `${f.message}:${f.kind}`).join(" ")).sort()).toEqual(["0:file 0:fd", "0:pipe 2:pipe 2:fd"]);
        // nothing is marked: the pipe whose read end is only in flight is the process's own
        const own = img.fds.filter((f) => f.fd >= 3 && f.fd < 64);
        expect(own.filter((f) => f.unrestorable !== undefined || f.peerOutside !== undefined)).toEqual([]);
        const r = runCli(["inspect", path]);
        expect(r.stdout).toMatch(/3 message\(s\) \/ 12 bytes queued; 3 file\(s\) in flight/);
      } finally {
        await img.close();
      }
    });
    expect(verdict).toEqual(["ok"]);
  });
});

describe("UDP receive queues", () => {
  it("datagrams waiting in UDP sockets come back with their boundaries and loopback sources (a socket of ours, a closed one), IPv4 and IPv6, to a connected socket", async () => {
    const verdict = await roundTrip("udp-queue", [], async (path) => {
      const img = await openImage(path);
      try {
        const queues = img.fdState.filter((s): s is UdpQueueState => s.type === "udpq");
        expect(queues.map((q) => q.datagrams.map((d) => Buffer.from(d.data).toString()).join("|")).sort()).toEqual(["from-ours|from-gone|", "six", "to-connected"]);
        expect(runCli(["inspect", path]).stdout).toMatch(/3 datagram\(s\) \/ 18 bytes queued \(from 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+\)/);
        const inet = img.fdState.filter((s) => s.type === "inet");
        expect(inet.filter((s) => s.type === "inet" && s.shutWr && !s.shutRd)).toHaveLength(1);
        expect(inet.filter((s) => s.type === "inet" && s.shutRd && !s.shutWr)).toHaveLength(1);
      } finally {
        await img.close();
      }
    });
    expect(verdict).toEqual(["ok"]);
  });
});

describe("TCP and UDP", () => {
  it("bring back listeners (v4, v6-only), an established connection with unread bytes both ways (TCP repair), bound and connected UDP, SO_BINDTODEVICE", async () => {
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
      // SO_BINDTODEVICE needs CAP_NET_RAW: the program binds its UDP socket to lo when it can
      if (process.getuid?.() === 0) expect(r.stdout).toMatch(/udp 127\.0\.0\.1:\d+: bound, bound to device lo/);
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

/** A loopback port nobody listens on right now (bound by us, then released). */
async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

async function httpGet(port: number, path = "/"): Promise<{ status: number; body: string }> {
  const http = await import("node:http");
  return new Promise((res, rej) => {
    const req = http.get({ host: "127.0.0.1", port, path, agent: false }, (r) => {
      let body = "";
      r.setEncoding("utf8");
      r.on("data", (t: string) => (body += t));
      r.on("end", () => res({ status: r.statusCode ?? 0, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error("HTTP request timed out")));
    req.on("error", rej);
  });
}

describe("real servers", () => {
  it("python3 -m http.server: its listening socket answers after capture --kill → restore", async () => {
    const dir = makeTempDir("ckimg-http-");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(dir, "hello.txt"), "served from a restored process\n");
    const port = await freePort();
    const img = join(tmp, `http-${port}.img`);
    const p = startProcess(["python3", "-u", "-m", "http.server", String(port), "--bind", "127.0.0.1"], { cwd: dir });
    await p.waitForLine(/Serving HTTP/);
    expect((await httpGet(port, "/hello.txt")).body).toBe("served from a restored process\n");
    await captureKill(p, img);
    await expect(httpGet(port, "/hello.txt")).rejects.toThrow();     // nobody listens now
    const r = restore(img);
    try {
      let got: { status: number; body: string } | undefined;
      for (let i = 0; i < 100 && !got; i++) {
        got = await httpGet(port, "/hello.txt").catch(async () => { await sleep(100); return undefined; });
      }
      expect(got?.status).toBe(200);
      expect(got?.body).toBe("served from a restored process\n");
    } finally {
      await stopRestored(p.pid, r);
    }
  });
});

/** A minimal RESP client on one TCP connection (the one that must survive the restore). */
class RedisConn {
  private buf = "";
  private waiters: (() => void)[] = [];
  closed = false;
  constructor(private readonly sock: import("node:net").Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (t: string) => { this.buf += t; this.waiters.splice(0).forEach((w) => w()); });
    sock.on("close", () => { this.closed = true; this.waiters.splice(0).forEach((w) => w()); });
    sock.on("error", () => {});
  }
  static async connect(port: number): Promise<RedisConn> {
    const net = await import("node:net");
    return new Promise((res, rej) => {
      const s = net.connect(port, "127.0.0.1", () => res(new RedisConn(s)));
      s.once("error", rej);
    });
  }
  /** Send one command, resolve with its one-line (or bulk) reply. */
  async cmd(...args: string[]): Promise<string> {
    this.buf = "";
    this.sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const m = /^([+:-][^\r]*)\r\n|^\$(-?\d+)\r\n/.exec(this.buf);
      if (m?.[1] !== undefined) return m[1];
      if (m?.[2] !== undefined) {
        const n = Number(m[2]);
        if (n < 0) return "(nil)";
        const start = m[0].length;
        if (this.buf.length >= start + n + 2) return this.buf.slice(start, start + n);
      }
      if (this.closed) throw new Error(`connection closed before the reply to ${args[0]}; got ${JSON.stringify(this.buf)}`);
      if (Date.now() > deadline) throw new Error(`no reply to ${args[0]}; got ${JSON.stringify(this.buf)}`);
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 200); });
    }
  }
  end(): void { this.sock.destroy(); }
}

describe("real servers: redis", () => {
  const haveRedis = existsSync("/usr/bin/redis-server");
  it.skipIf(!haveRedis)("redis-server: the same client connection goes on after capture --kill → restore, data intact", async () => {
    const dir = makeTempDir("ckimg-redis-");
    const port = await freePort();
    const img = join(tmp, `redis-${port}.img`);
    const p = startProcess(["/usr/bin/redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--protected-mode", "no", "--daemonize", "no", "--dir", dir, "--logfile", ""], { cwd: dir });
    let conn: RedisConn | undefined;
    try {
      await p.waitForLine(/Ready to accept connections/);
      conn = await RedisConn.connect(port);
      expect(await conn.cmd("SET", "greeting", "hello from before the capture")).toBe("+OK");
      for (let i = 0; i < 200; i++) await conn.cmd("RPUSH", "list", `item-${i}`);
      await captureKill(p, img);
      const r = restore(img);
      try {
        await restoredRunning(p.pid, r);
        // the same socket: no reconnect, no reset
        expect(await conn.cmd("GET", "greeting")).toBe("hello from before the capture");
        expect(await conn.cmd("LLEN", "list")).toBe(":200");
        expect(await conn.cmd("SET", "after", "restore")).toBe("+OK");
        expect(await conn.cmd("GET", "after")).toBe("restore");
        expect(conn.closed).toBe(false);
        // and it still accepts new clients on its listening socket
        const other = await RedisConn.connect(port);
        expect(await other.cmd("DBSIZE")).toBe(":3");
        other.end();
      } finally {
        await stopRestored(p.pid, r);
      }
    } finally {
      conn?.end();
      await p.kill();
    }
  });
});

/** Rewrite one record's payload in place (same length) and fix its checksums, as damage that a
 * CRC cannot catch would look (a writer's bug, a crafted image). */
async function patchRecord(img: string, type: number, patch: (payload: Buffer) => void): Promise<void> {
  const im = await openImage(img);
  const e = im.entries.find((x) => x.type === type);
  await im.close();
  if (!e) throw new Error(`no record of type ${type}`);
  const { openSync, readSync, writeSync, closeSync } = await import("node:fs");
  const fd = openSync(img, "r+");
  try {
    const hdr = Buffer.alloc(32);
    readSync(fd, hdr, 0, 32, e.offset);
    const payload = Buffer.alloc(e.payloadLength);
    readSync(fd, payload, 0, e.payloadLength, e.offset + 32);
    patch(payload);
    hdr.writeUInt32LE(crc32(payload), 16);
    hdr.writeUInt32LE(crc32(hdr.subarray(0, 28)), 28);
    writeSync(fd, payload, 0, payload.length, e.offset + 32);
    writeSync(fd, hdr, 0, 32, e.offset);
  } finally {
    closeSync(fd);
  }
}

describe("namespace files", () => {
  it("fds on /proc/self/ns/net and /proc/self/ns/uts are the same namespaces again (zdtm proc-self)", async () => {
    expect(await roundTrip("nsfd", [])).toEqual(["ok"]);
  });

  it.skipIf(process.getuid?.() !== 0)("an fd on a namespace nothing is in any more: restore refuses it in one line and leaves no process", async () => {
    const exe = prog("nsfd");
    const img = join(tmp, "nsfd-gone.img");
    const p = startProcess([exe, "gone"], { cwd: tmp });
    await p.waitForLine(/^ready/);
    await captureKill(p, img);
    const r = runCli(["restore", img]);
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split("\n").filter((l) => !l.includes("warning:"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/fd \d+, namespace, uts:\[\d+\]\): namespace uts:\[\d+\] is gone/);
    expect(existsSync(`/proc/${p.pid}`)).toBe(false);
  });
});

describe("damaged fd state", () => {
  it("restore refuses a PIPE, UNIX_SOCKET, UNIX_FILES or UDP_QUEUE record that does not add up, with one line naming it, and leaves no process", async () => {
    const { copyFileSync } = await import("node:fs");
    const images: Record<string, { img: string; pid: number }> = {};
    for (const name of ["pipes", "unix", "unix-passed", "udp-queue"]) {
      const p = startProcess([prog(name), makeTempDir(`ckimg-damaged-${name}-`)], { cwd: tmp });
      await p.waitForLine(/^ready/);
      images[name] = { img: join(tmp, `damaged-${name}-${p.pid}.img`), pid: p.pid };
      await captureKill(p, images[name].img);
    }
    const cases: [string, number, (b: Buffer) => void, RegExp][] = [
      // PIPE data_length beyond the payload
      ["pipes", 0x0041, (b) => b.writeUInt32LE(0x7fffffff, 20), /PIPE #\d+ at offset \d+ \(fd \d+\): data_length/],
      // UNIX_SOCKET queue_bytes that the queue does not hold
      ["unix", 0x0042, (b) => b.writeBigUInt64LE(123456n, 56), /UNIX_SOCKET #\d+ at offset \d+ \(fd \d+\): queue holds/],
      // UNIX_SOCKET socket type 9
      ["unix", 0x0042, (b) => b.writeUInt32LE(9, 4), /UNIX_SOCKET #\d+ .*socket type 9/],
      // UNIX_FILES: the first passed file of an unknown kind
      ["unix-passed", 0x0046, (b) => b.writeUInt32LE(9, 28), /UNIX_FILES #\d+ .*kind 9/],
      // UDP_QUEUE: a datagram from an address family that is not IP
      ["udp-queue", 0x0047, (b) => b.writeUInt32LE(1, 24), /UDP_QUEUE #\d+ .*source family 1/],
    ];
    for (const [name, type, patch, want] of cases) {
      const img = join(tmp, `damaged-${type}-${Math.random().toString(36).slice(2)}.img`);
      copyFileSync(images[name].img, img);
      await patchRecord(img, type, patch);
      const r = runCli(["restore", img]);
      expect(r.status).toBe(2);
      const lines = r.stderr.split("\n").filter((l) => l && !l.includes("warning:"));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(want);
      expect(existsSync(`/proc/${images[name].pid}`)).toBe(false);
    }
  });
});
