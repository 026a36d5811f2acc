/**
 * Deterministic synthetic images: a plausible process (threads, a memory map with text, heap,
 * stack, a sparse anonymous area, vdso; fds; signal handlers) with reproducible page content.
 * Used for the committed corpus, for tests before and beside real captures, and for benchmarks
 * at any size. Same options → byte-identical image.
 */
import { CODEC, type CodecId } from "./codecs.js";
import { ImageWriter, type WriteSummary } from "./writer.js";
import { X86_64_REG_NAMES } from "./raw.js";
import type { AreaRecord, ThreadRecord, X86Regs } from "./records.js";

export interface SyntheticOptions {
  seed?: number;
  codec?: CodecId;
  /** bytes of touched heap (rounded to pages); default 2 MiB */
  heapBytes?: number;
  threads?: number;
  /** fsync before rename (default false: synthetic images are reproducible) */
  durable?: boolean;
}

const PAGE = 4096;

/** xorshift32: fast, reproducible, good enough for test data. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

/**
 * Heap-like page content: zero pages, small repeated structs, pointer-rich pages, text, and
 * random bytes, in proportions that compress about 2:1 like real heaps.
 */
export function fillHeapLike(buf: Uint8Array, seed: number): void {
  const rnd = prng(seed);
  const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >> 2);
  const pageWords = PAGE >> 2;
  for (let p = 0; p < words.length / pageWords; p++) {
    const kind = rnd() % 10;
    const base = p * pageWords;
    if (kind < 2) continue; // zero page
    if (kind < 5) {
      // array of 32-byte structs: a pointer, a counter, flags
      for (let i = 0; i < pageWords; i += 8) {
        words[base + i] = 0x55550000 + ((rnd() & 0xfff) << 4);
        words[base + i + 1] = 0x00005555;
        words[base + i + 2] = i;
        words[base + i + 4] = rnd() & 0xff;
      }
    } else if (kind < 7) {
      const text = "the quick brown fox jumps over the lazy dog; ckimg heap text ";
      for (let i = 0; i < PAGE; i++) buf[base * 4 + i] = text.charCodeAt((i + p) % text.length);
    } else if (kind < 9) {
      for (let i = 0; i < pageWords; i++) words[base + i] = rnd() & 0x0f0f0f0f;
    } else {
      for (let i = 0; i < pageWords; i++) words[base + i] = rnd();
    }
  }
}

function regs(seed: number, rip: bigint, rsp: bigint, fsBase: bigint): X86Regs {
  const rnd = prng(seed);
  const r = {} as X86Regs;
  for (const name of X86_64_REG_NAMES) r[name] = BigInt(rnd()) << 16n;
  Object.assign(r, { rip, rsp, fs_base: fsBase, gs_base: 0n, cs: 0x33n, ss: 0x2bn, ds: 0n, es: 0n, fs: 0n, gs: 0n, eflags: 0x246n, orig_rax: 0xffffffffffffffffn });
  return r;
}

function regsBytes(r: X86Regs): Uint8Array {
  const b = new Uint8Array(X86_64_REG_NAMES.length * 8);
  const v = new DataView(b.buffer);
  X86_64_REG_NAMES.forEach((n, i) => v.setBigUint64(i * 8, r[n], true));
  return b;
}

/** Write a synthetic image to `path`. */
export async function writeSyntheticImage(path: string, opts: SyntheticOptions = {}): Promise<WriteSummary> {
  const seed = opts.seed ?? 1;
  const heapPages = Math.max(1, Math.ceil((opts.heapBytes ?? 2 << 20) / PAGE));
  const threadCount = opts.threads ?? 2;
  const idBytes = new Uint8Array(16);
  new DataView(idBytes.buffer).setUint32(0, seed, true);
  const w = await ImageWriter.create(path, {
    createdNs: 1_763_900_000_000_000_000n + BigInt(seed), imageId: idBytes, codec: opts.codec ?? CODEC.LZ4, durable: opts.durable ?? false,
  });
  try {
    const pid = 4000 + (seed % 1000);
    const exe = "/usr/bin/synthetic-app";
    const text = 0x555555554000n, heap = 0x555555600000n, sparse = 0x7f0000000000n, stack = 0x7ffffffde000n, vdso = 0x7ffff7fc1000n;
    const heapEnd = heap + BigInt(heapPages * PAGE);
    await w.addProcess({
      pid, ppid: 1, pgid: pid, sid: pid, uid: [1000, 1000, 1000, 1000], gid: [1000, 1000, 1000, 1000],
      personality: 0, umask: 0o022, threadCount, captureNs: 1_763_900_000_000_000_000n, startTime: 123456n,
      mm: {
        startCode: text, endCode: text + 0x2000n, startData: text + 0x3000n, endData: text + 0x4000n,
        startBrk: heap, brk: heapEnd, startStack: stack + 0x20000n, argStart: stack + 0x20100n, argEnd: stack + 0x20140n,
        envStart: stack + 0x20140n, envEnd: stack + 0x20400n,
      },
      flags: 0, comm: "synthetic-app", exe, cwd: "/home/user", root: "/", kernel: "6.1.0-synthetic",
    });
    await w.addArgv([exe, "--seed", String(seed), "arg with spaces"]);
    await w.addEnviron(["HOME=/home/user", "PATH=/usr/bin:/bin", "LANG=C.UTF-8", `SEED=${seed}`]);
    await w.addAuxv([
      { type: 33n, value: vdso }, { type: 6n, value: 4096n }, { type: 3n, value: text + 0x40n }, { type: 9n, value: text + 0x1040n },
    ]);
    await w.addRlimits([
      { resource: 3, cur: 8n << 20n, max: 0xffffffffffffffffn }, { resource: 7, cur: 1024n, max: 524288n },
    ]);
    await w.addSigactions({
      sharedPending: 0n,
      actions: [
        { signo: 2, handler: text + 0x1200n, flags: 0x04000000n, restorer: 0x7ffff7dd0000n, mask: 0n },
        { signo: 10, handler: 1n, flags: 0n, restorer: 0n, mask: 0n },
        { signo: 14, handler: text + 0x1280n, flags: 0x14000000n, restorer: 0x7ffff7dd0000n, mask: 1n << 1n },
      ],
    });
    for (let i = 0; i < threadCount; i++) {
      const r = regs(seed * 31 + i, text + 0x1100n + BigInt(i * 16), stack + 0x1f000n - BigInt(i * 0x1000), 0x7ffff7d80740n + BigInt(i * 0x1000));
      const xstate = new Uint8Array(832 + 64 * i);
      new DataView(xstate.buffer).setUint32(24, 0x1f80, true); // MXCSR default
      const t: ThreadRecord = {
        tid: pid + i, flags: i === 0 ? 1 : 0, state: "S", sigmask: i === 0 ? 0n : 1n << 13n, pending: 0n,
        clearChildTid: 0n, robustList: 0x7ffff7d80a20n, robustListLen: 24n, altstack: { sp: 0n, size: 0n, flags: 2 },
        regs: r, regsRaw: regsBytes(r), xstate,
      };
      await w.addThread(t);
    }
    await w.addMappedFile({
      id: 0, devMajor: 8, devMinor: 1, inode: 1234567n, size: 16384n, mtimeNs: 1_700_000_000_000_000_000n, mode: 0o100755,
      flags: 4, sha256: new Uint8Array(32).fill(0xab), path: exe, buildId: Uint8Array.of(0xde, 0xad, 0xbe, 0xef),
    });
    const fds: [number, "tty" | "regular" | "fifo" | "socket", string, bigint][] = [
      [0, "tty", "/dev/pts/0", 0n], [1, "tty", "/dev/pts/0", 0n], [2, "tty", "/dev/pts/0", 0n],
      [3, "regular", "/home/user/data.log", 4096n], [4, "fifo", "pipe:[8812]", 0n], [5, "socket", "socket:[9911]", 0n],
    ];
    for (const [fd, kind, path, pos] of fds) {
      await w.addFd({
        fd, kind, openFlags: fd === 3 ? 0o2002 : 2, fdFlags: fd > 2 ? 1 : 0, mode: kind === "regular" ? 0o100644 : 0o20620,
        pos, devMajor: 0, devMinor: 25, inode: kind === "fifo" ? 8812n : BigInt(100 + fd), rdevMajor: kind === "tty" ? 136 : 0, rdevMinor: 0, path,
        // format 1.1: the tty's three fds share one open file description
        fileId: fd <= 2 ? 1 : fd - 1,
        ...(kind === "fifo" ? { peerOutside: "the pipe's writing end is held by another process; restore gives this end the buffered bytes, then end of file" } : {}),
      });
    }
    // format 1.1: what waits in the pipe on fd 4
    await w.addFdState({
      type: "pipe", fd: 4, pipeId: 8812n, devMajor: 0, devMinor: 14, fifo: false, hasReader: true, hasWriter: false,
      pipeSize: 65536, data: new TextEncoder().encode("job 17 queued\njob 18 queued\n"),
    });
    const areas: AreaRecord[] = [
      area(0, text, text + 0x1000n, 5, "file", exe, 0n, 0),
      area(1, text + 0x1000n, text + 0x3000n, 5, "file", exe, 0x1000n, 0),
      area(2, text + 0x3000n, text + 0x4000n, 3, "file", exe, 0x3000n, 0),
      area(3, heap, heapEnd, 3, "heap", "[heap]"),
      area(4, sparse, sparse + (64n << 20n), 3, "anon", ""),
      area(5, stack, stack + 0x21000n, 3, "stack", "[stack]"),
      area(6, vdso, vdso + 0x2000n, 5, "vdso", "[vdso]"),
    ];
    for (const a of areas) await w.addArea(a);
    // Data page of the executable, dirtied (a private file page that must be stored).
    const data = new Uint8Array(PAGE);
    data.set(new TextEncoder().encode("synthetic .data: counter_total=42"), 0x10);
    await w.addAreaMemory(areas[2], data);
    // Heap, streamed one grid span at a time so huge synthetic heaps use constant memory.
    await w.addAreaMemory(areas[3], (offset, length) => {
      const buf = new Uint8Array(length);
      fillHeapLike(buf, seed * 7919 + offset / PAGE);
      return buf;
    });
    // Sparse area: a few touched pages in 64 MiB.
    await w.addAreaMemory(areas[4], (offset, length) => {
      const buf = new Uint8Array(length);
      for (let p = 0; p < length / PAGE; p++) {
        const pageNo = offset / PAGE + p;
        if (pageNo % 1000 === 7) buf.fill((pageNo & 0xff) | 1, p * PAGE, p * PAGE + 64);
      }
      return buf;
    });
    const stackMem = new Uint8Array(0x21000);
    fillHeapLike(stackMem.subarray(0x1c000), seed + 99);
    await w.addAreaMemory(areas[5], stackMem);
    return await w.finish();
  } catch (err) {
    await w.abort();
    throw err;
  }
}

function area(
  id: number, start: bigint, end: bigint, prot: number, kind: AreaRecord["kind"], path: string,
  fileOffset = 0n, fileId?: number,
): AreaRecord {
  const isFile = fileId !== undefined;
  return {
    id, start, end, fileOffset, devMajor: isFile ? 8 : 0, devMinor: isFile ? 1 : 0, inode: isFile ? 1234567n : 0n,
    prot, flags: 0, kind, fileId, path, vmflags: prot & 2 ? "rd wr mr mw me ac sd" : "rd ex mr mw me sd",
  };
}
