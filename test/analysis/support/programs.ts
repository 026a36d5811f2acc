/**
 * Real programs for the analysis tests: compile C with gcc, start it, wait for its "ready" line,
 * capture it (the native capturer, or `procImage` below), and always kill and reap it.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readlinkSync, statSync, openSync, readSync, closeSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll } from "vitest";
import { runCapture, captureBinary } from "../../../src/cli/capture.js";
import { ImageWriter, type AreaRecord } from "../../../src/format/index.js";

/** Compile one of the C programs beside this file (hook.c, bt.c) into `dir`. */
export function compileC(dir: string, name: string, program: "hook" | "bt", flags: string[] = []): string {
  const src = fileURLToPath(new URL(`./${program}.c`, import.meta.url));
  const out = join(dir, name);
  execFileSync("gcc", ["-g", ...flags, "-o", out, src, "-lpthread"], { stdio: "pipe" });
  return out;
}

export interface Running {
  child: ChildProcess;
  pid: number;
  /** the "ready …" line, split on spaces */
  ready: string[];
  stop(): Promise<void>;
}

const running = new Set<Running>();
afterAll(async () => {
  for (const r of [...running]) await r.stop();
});

/** Start a program and wait until it prints a line starting with "ready". */
export function startProgram(path: string, args: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<Running> {
  // stdin is a pipe that stays open: programs may block reading it (bash's `read`).
  const child = spawn(path, args, { stdio: ["pipe", "pipe", "pipe"], env });
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => child.on("exit", () => ((exited = true), resolve())));
  const r: Running = {
    child, pid: child.pid!, ready: [],
    async stop() {
      running.delete(r);
      if (!exited) child.kill("SIGKILL");
      await exitPromise;
    },
  };
  running.add(r);
  return new Promise((resolve, reject) => {
    let buf = "";
    let err = "";
    child.stderr!.on("data", (d) => (err += d));
    child.stdout!.on("data", (d) => {
      buf += d;
      const line = buf.split("\n").find((l) => l.startsWith("ready"));
      if (line) {
        r.ready = line.trim().split(/\s+/);
        resolve(r);
      }
    });
    child.on("exit", (code) => reject(new Error(`${path} exited (${code}) before ready: ${err}`)));
  });
}

/** Capture with build/ckimg-capture when it exists, else with procImage. */
export async function captureProcess(pid: number, out: string): Promise<string> {
  if (existsSync(captureBinary())) {
    await runCapture({ pid, output: out });
    return out;
  }
  return procImage(pid, out);
}

/**
 * A whole-memory image of a live process from /proc (no registers: not for backtraces). The
 * process is stopped with SIGSTOP while it is read, then continued. Every readable page is
 * stored, so modules can be parsed from memory (vDSO included).
 */
export async function procImage(pid: number, out: string): Promise<string> {
  process.kill(pid, "SIGSTOP");
  try {
    const w = await ImageWriter.create(out, { durable: false });
    const exe = readlinkSync(`/proc/${pid}/exe`);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const zeroMm = { startCode: 0n, endCode: 0n, startData: 0n, endData: 0n, startBrk: 0n, brk: 0n, startStack: 0n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n };
    await w.addProcess({
      pid, ppid: 0, pgid: 0, sid: 0, uid: [0, 0, 0, 0], gid: [0, 0, 0, 0], personality: 0, umask: undefined, threadCount: 0,
      captureNs: BigInt(Date.now()) * 1_000_000n, startTime: 0n, mm: zeroMm, flags: 0, comm, exe, cwd: "/", root: "/", kernel: "",
    });
    await w.addEnviron(readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").filter(Boolean));
    const auxvRaw = readFileSync(`/proc/${pid}/auxv`);
    const auxv = [];
    for (let o = 0; o + 16 <= auxvRaw.length; o += 16) {
      const type = auxvRaw.readBigUInt64LE(o);
      if (type === 0n) break;
      auxv.push({ type, value: auxvRaw.readBigUInt64LE(o + 8) });
    }
    await w.addAuxv(auxv);
    const fileIds = new Map<string, number>();
    const areas: AreaRecord[] = [];
    const lines = readFileSync(`/proc/${pid}/maps`, "utf8").trim().split("\n");
    for (const [i, line] of lines.entries()) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) \S+ (\d+)\s*(.*)$/.exec(line)!;
      const [, lo, hi, perms, off, inode, rawPath] = m;
      const path = rawPath.replace(/ \(deleted\)$/, "");
      let kind: AreaRecord["kind"] = "anon";
      let fileId: number | undefined;
      if (path === "[heap]") kind = "heap";
      else if (path === "[stack]") kind = "stack";
      else if (path === "[vdso]") kind = "vdso";
      else if (path.startsWith("[vvar")) kind = "vvar";
      else if (path === "[vsyscall]") kind = "vsyscall";
      else if (path.startsWith("/") && inode !== "0") {
        kind = "file";
        if (!fileIds.has(path)) {
          const st = statSync(path, { bigint: true });
          const id = fileIds.size;
          fileIds.set(path, id);
          await w.addMappedFile({
            id, devMajor: 0, devMinor: 0, inode: st.ino, size: st.size, mtimeNs: st.mtimeNs, mode: Number(st.mode), flags: 4,
            sha256: undefined, path, buildId: undefined,
          });
        }
        fileId = fileIds.get(path);
      } else if (path) kind = "special";
      const prot = (perms[0] === "r" ? 1 : 0) | (perms[1] === "w" ? 2 : 0) | (perms[2] === "x" ? 4 : 0);
      areas.push({
        id: i, start: BigInt("0x" + lo), end: BigInt("0x" + hi), fileOffset: BigInt("0x" + off), devMajor: 0, devMinor: 0,
        inode: BigInt(inode), prot, flags: perms[3] === "s" ? 1 : 0, kind, fileId, path, vmflags: "",
      });
    }
    const mem = openSync(`/proc/${pid}/mem`, "r");
    try {
      for (const a of areas) {
        const size = Number(a.end - a.start);
        let bytes: Buffer | undefined;
        if (a.prot & 1 && a.kind !== "vvar" && a.kind !== "vsyscall" && size <= 256 << 20) {
          bytes = Buffer.alloc(size);
          try {
            let got = 0;
            while (got < size) {
              const n = readSync(mem, bytes, got, size - got, Number(a.start) + got);
              if (n <= 0) break;
              got += n;
            }
            if (got < size) bytes = undefined;
          } catch {
            bytes = undefined;
          }
        }
        if (!bytes) a.flags |= 1 << 11;
        await w.addArea(a);
        if (bytes) await w.addAreaMemory(a, new Uint8Array(bytes.buffer, bytes.byteOffset, size), (_p, b) => a.kind !== "file" && a.kind !== "vdso" && b.every((x) => x === 0));
      }
    } finally {
      closeSync(mem);
    }
    await w.finish();
    return out;
  } finally {
    process.kill(pid, "SIGCONT");
  }
}
