/**
 * `diff`: images built with ImageWriter that differ in known ways (pages, bytes, chunk grids,
 * unstored pages, the map, threads, fds, environment), a property over random byte changes,
 * the verb's text/JSON/exit codes, the example script, and two captures of a real counter.
 */
import { afterAll, describe, expect, test } from "vitest";
import fc from "fast-check";
import { spawnSync } from "node:child_process";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  ImageWriter, encodeRegs, openImage, writeSyntheticImage, X86_64_REG_NAMES,
  type AreaRecord, type CheckpointImage, type FdRecord, type X86Regs,
} from "../../src/format/index.js";
import { diffImages, type DiffOptions, type ImageDiff, type Symbolizer } from "../../src/analysis/diff.js";
import { diffText } from "../../src/cli/diff.js";
import { main } from "../../src/cli/main.js";
import { runCapture } from "../../src/cli/capture.js";
import { tempDir } from "../support/tmp.js";
import { REPO, compileC, haveCaptureBinary, removeTempDirs, sleep, startProcess, withProcess } from "../native/helpers.js";

const dir = tempDir("ckimg-diff-test-");
afterAll(removeTempDirs);
const PAGE = 4096;
const root = new URL("../../", import.meta.url).pathname;

async function run(args: string[]) {
  let stdout = "", stderr = "";
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), stderrIsTty: false });
  return { code, stdout, stderr };
}

// ---------------------------------------------------------------------------------------
// A small image builder: a process, threads, fds and areas with given memory.

interface AreaSpec {
  id: number;
  start: bigint;
  pages: number;
  kind?: AreaRecord["kind"];
  prot?: number;
  path?: string;
  fileOffset?: bigint;
  /** full area content (default zero) */
  memory?: Uint8Array;
  /** pages not to store (default: all-zero pages) */
  omit?: (page: number, bytes: Uint8Array) => boolean;
  /** explicit chunk spans [first page index, span pages] instead of the 256-page grid */
  spans?: [number, number][];
}

interface Spec {
  pid?: number;
  argv?: string[];
  env?: string[];
  threads?: { tid: number; main?: boolean; regs?: Partial<X86Regs> }[];
  fds?: { fd: number; path: string; pos?: bigint }[];
  file?: { path: string };
  areas: AreaSpec[];
}

let built = 0;
async function build(spec: Spec): Promise<string> {
  const path = join(dir, `img-${built++}.img`);
  const w = await ImageWriter.create(path, { durable: false });
  const pid = spec.pid ?? 500;
  const threads = spec.threads ?? [{ tid: pid, main: true }];
  await w.addProcess({
    pid, ppid: 1, pgid: pid, sid: pid, uid: [1000, 1000, 1000, 1000], gid: [1000, 1000, 1000, 1000], personality: 0, umask: 0o22,
    threadCount: threads.length, captureNs: BigInt(built), startTime: 99n, flags: 0, comm: "built", exe: "/usr/bin/built", cwd: "/", root: "/",
    kernel: "test", mm: { startCode: 0n, endCode: 0n, startData: 0n, endData: 0n, startBrk: 0n, brk: 0n, startStack: 0n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n },
  });
  await w.addArgv(spec.argv ?? ["/usr/bin/built", "--flag"]);
  await w.addEnviron(spec.env ?? ["HOME=/root", "LANG=C"]);
  for (const t of threads) {
    const regs = Object.fromEntries(X86_64_REG_NAMES.map((n, i) => [n, BigInt(i * 0x100)])) as X86Regs;
    Object.assign(regs, t.regs ?? {});
    await w.addThread({
      tid: t.tid, flags: t.main ? 1 : 0, state: "S", sigmask: 0n, pending: 0n, clearChildTid: 0n, robustList: 0n, robustListLen: 0n,
      altstack: { sp: 0n, size: 0n, flags: 2 }, regs, regsRaw: encodeRegs(regs), xstate: new Uint8Array(576),
    });
  }
  if (spec.file) {
    const st = statSync(spec.file.path, { bigint: true });
    await w.addMappedFile({
      id: 0, devMajor: 0, devMinor: 0, inode: st.ino, size: st.size, mtimeNs: st.mtimeNs, mode: Number(st.mode), flags: 0,
      sha256: undefined, path: spec.file.path, buildId: undefined,
    });
  }
  for (const f of spec.fds ?? [{ fd: 0, path: "/dev/null" }]) {
    const fd: FdRecord = {
      fd: f.fd, kind: "regular", openFlags: 0, fdFlags: 0, mode: 0o100644, pos: f.pos ?? 0n, devMajor: 0, devMinor: 0, inode: 1n,
      rdevMajor: 0, rdevMinor: 0, path: f.path,
    };
    await w.addFd(fd);
  }
  const records: AreaRecord[] = spec.areas.map((a) => ({
    id: a.id, start: a.start, end: a.start + BigInt(a.pages * PAGE), fileOffset: a.fileOffset ?? 0n, devMajor: 0, devMinor: 0,
    inode: 0n, prot: a.prot ?? 3, flags: 0, kind: a.kind ?? "anon", fileId: a.kind === "file" ? 0 : undefined,
    path: a.path ?? (a.kind === "heap" ? "[heap]" : ""), vmflags: "rd wr",
  }));
  for (const r of records) await w.addArea(r);
  for (const [i, a] of spec.areas.entries()) {
    const mem = a.memory ?? new Uint8Array(a.pages * PAGE);
    const omit = a.omit ?? ((_p: number, b: Uint8Array) => b.every((x) => x === 0));
    if (!a.spans) {
      await w.addAreaMemory(records[i], mem, omit);
      continue;
    }
    for (const [first, span] of a.spans) {
      const bitmap = new Uint8Array(Math.ceil(span / 8));
      const kept: Uint8Array[] = [];
      for (let p = first; p < first + span; p++) {
        const bytes = mem.subarray(p * PAGE, (p + 1) * PAGE);
        if (omit(p, bytes)) continue;
        bitmap[(p - first) >> 3] |= 1 << ((p - first) & 7);
        kept.push(bytes);
      }
      if (!kept.length) continue;
      const raw = new Uint8Array(kept.length * PAGE);
      kept.forEach((b, k) => raw.set(b, k * PAGE));
      await w.addPagesChunk(a.id, a.start + BigInt(first * PAGE), span, bitmap, raw);
    }
  }
  await w.finish();
  return path;
}

/** Deterministic non-zero page content. */
function pattern(pages: number, seed = 1): Uint8Array {
  const b = new Uint8Array(pages * PAGE);
  let x = seed * 2654435761;
  for (let i = 0; i < b.length; i += 4) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    b[i] = x & 0xff;
    b[i + 1] = (x >>> 8) & 0xff;
  }
  return b;
}

async function diffPaths(pa: string, pb: string, opts: DiffOptions = {}): Promise<ImageDiff> {
  const a = await openImage(pa);
  const b = await openImage(pb);
  try {
    return await diffImages(a, b, opts);
  } finally {
    await a.close();
    await b.close();
  }
}

const HEAP = 0x555555600000n;
const heapArea = (memory: Uint8Array, extra: Partial<AreaSpec> = {}): AreaSpec => ({ id: 1, start: HEAP, pages: memory.length / PAGE, kind: "heap", memory, ...extra });

// ---------------------------------------------------------------------------------------

describe("diffImages: memory", () => {
  test("an image against itself and against an identical rebuild: same, decided by chunk CRCs alone", async () => {
    const mem = pattern(768);
    const a = await build({ areas: [heapArea(mem)] });
    const b = await build({ areas: [heapArea(mem)] });
    for (const other of [a, b]) {
      const d = await diffPaths(a, other);
      expect(d.same).toBe(true);
      expect(d.memory).toEqual([]);
      expect(d.stats).toMatchObject({ chunksA: 3, chunksB: 3, chunksEqualByCrc: 3, chunksRead: 0, pagesCompared: 0 });
    }
    expect((await run(["diff", a, b])).code).toBe(0);
  });

  test("changed bytes: counted per page, exact ranges, only the changed chunk read", async () => {
    const mem = pattern(768);
    const changed = mem.slice();
    changed[300 * PAGE + 10] ^= 0xff;
    changed[300 * PAGE + 11] ^= 0xff;
    changed[300 * PAGE + 100] ^= 1;
    changed[301 * PAGE + 4095] ^= 1;
    const a = await build({ areas: [heapArea(mem)] });
    const b = await build({ areas: [heapArea(changed)] });
    const d = await diffPaths(a, b);
    expect(d.same).toBe(false);
    expect(d.memory).toHaveLength(1);
    const m = d.memory[0];
    expect(m).toMatchObject({ label: "[heap]", pagesDiffering: 2, pagesUnknown: 0, bytesDiffering: 4, rangesTruncated: false });
    const base = HEAP + BigInt(300 * PAGE);
    expect(m.ranges).toEqual([
      { start: base + 10n, end: base + 12n, symbol: undefined },
      { start: base + 100n, end: base + 101n, symbol: undefined },
      { start: base + BigInt(PAGE + 4095), end: base + BigInt(PAGE + 4096), symbol: undefined },
    ]);
    expect(d.stats).toMatchObject({ chunksEqualByCrc: 2, chunksRead: 2, pagesCompared: 256 });
  });

  test("an incremental image against its parent: the pages that differ, as reading both says, with unchanged pages settled by digest", async () => {
    // The conformance corpus's chain: the child inherits pages 0 and 2, stores 1 and 5, drops 3.
    const conf = join(REPO, "corpus/conformance");
    const parentPath = join(conf, "accept-chain-parent.img"), childPath = join(conf, "accept-chain-child.img");
    const d = await diffPaths(parentPath, childPath);
    // the oracle: every page of the area read through each image's memory API
    const a = await openImage(parentPath), b = await openImage(childPath);
    const differing: bigint[] = [];
    try {
      const area = a.areas.find((x) => x.kind === "anon")!;
      for (let p = area.start; p < area.end; p += BigInt(PAGE)) {
        const [x, y] = [await a.readMemory(p, PAGE), await b.readMemory(p, PAGE)];
        if (!Buffer.from(x).equals(Buffer.from(y))) differing.push(p);
      }
    } finally {
      await a.close();
      await b.close();
    }
    expect(differing.length).toBeGreaterThan(0);
    expect(d.same).toBe(false);
    expect(d.memory).toHaveLength(1);
    expect(d.memory[0].pagesDiffering).toBe(differing.length);
    const pageOf = (x: bigint) => x & ~BigInt(PAGE - 1);
    expect([...new Set(d.memory[0].ranges.map((r) => pageOf(r.start)))]).toEqual(differing);
    expect(d.stats.pagesEqualByDigest).toBeGreaterThan(0);
    // the CLI says the same, exit 1 (it used to fail reading a chain's composed chunk)
    const r = await run(["diff", parentPath, childPath]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(1);
  });

  test("chunk grids that differ fall back to page compare and find the same answer", async () => {
    const mem = pattern(600, 7);
    const changed = mem.slice();
    changed[555 * PAGE + 7] ^= 0x10;
    const a = await build({ areas: [heapArea(mem)] });
    const sameOtherGrid = await build({ areas: [heapArea(mem, { spans: [[0, 100], [100, 500]] })] });
    const changedOtherGrid = await build({ areas: [heapArea(changed, { spans: [[0, 100], [100, 500]] })] });
    const d1 = await diffPaths(a, sameOtherGrid);
    expect(d1.same).toBe(true);
    expect(d1.stats.chunksEqualByCrc).toBe(0);
    expect(d1.stats.pagesCompared).toBe(600);
    const d2 = await diffPaths(a, changedOtherGrid);
    expect(d2.memory.map((m) => [m.pagesDiffering, m.bytesDiffering, m.ranges.map((r) => r.start - HEAP)])).toEqual([[1, 1, [BigInt(555 * PAGE + 7)]]]);
  });

  test("unstored anonymous pages are zero: a stored zero page equals an unstored one, a stored non-zero one does not", async () => {
    const mem = new Uint8Array(8 * PAGE);
    mem[5 * PAGE + 3] = 9;
    const storesZeros = await build({ areas: [heapArea(new Uint8Array(8 * PAGE), { omit: () => false })] });
    const storesNothing = await build({ areas: [heapArea(new Uint8Array(8 * PAGE))] });
    const storesOne = await build({ areas: [heapArea(mem)] });
    expect((await diffPaths(storesZeros, storesNothing)).same).toBe(true);
    const d = await diffPaths(storesNothing, storesOne);
    expect(d.memory[0]).toMatchObject({ pagesDiffering: 1, bytesDiffering: 1 });
    expect(d.memory[0].ranges[0].start).toBe(HEAP + BigInt(5 * PAGE + 3));
    expect((await diffPaths(storesOne, storesZeros)).memory[0].ranges[0].start).toBe(HEAP + BigInt(5 * PAGE + 3));
  });

  test("unstored file-backed pages are the file's bytes", async () => {
    const filePath = join(dir, "mapped.bin");
    const content = pattern(4, 3);
    writeFileSync(filePath, content);
    const fileArea = (memory: Uint8Array, omit: AreaSpec["omit"]): AreaSpec => ({ id: 2, start: 0x7f0000000000n, pages: 4, kind: "file", path: filePath, memory, omit });
    const clean = await build({ file: { path: filePath }, areas: [fileArea(content, () => true)] });
    const storedSame = await build({ file: { path: filePath }, areas: [fileArea(content, () => false)] });
    const dirty = content.slice();
    dirty[2 * PAGE + 0x20] ^= 0x55;
    const storedDirty = await build({ file: { path: filePath }, areas: [fileArea(dirty, (p) => p !== 2)] });
    expect((await diffPaths(clean, storedSame)).same).toBe(true);
    const d = await diffPaths(clean, storedDirty);
    expect(d.memory.map((m) => [m.pagesDiffering, m.ranges.map((r) => r.start)])).toEqual([[1, [0x7f0000000000n + BigInt(2 * PAGE + 0x20)]]]);
  });

  test("property: random byte changes are reported exactly (pages, bytes, ranges)", async () => {
    const mem = pattern(300, 11);
    const a = await build({ areas: [heapArea(mem)] });
    const img: CheckpointImage = await openImage(a);
    try {
      await fc.assert(
        fc.asyncProperty(fc.uniqueArray(fc.tuple(fc.integer({ min: 0, max: 300 * PAGE - 1 }), fc.integer({ min: 1, max: 255 })), { maxLength: 40, selector: ([o]) => o }), async (changes) => {
          const m = mem.slice();
          for (const [o, x] of changes) m[o] ^= x;
          const b = await openImage(await build({ areas: [heapArea(m)] }));
          try {
            const d = await diffImages(img, b, { mergeGap: 0, maxRanges: 1000 });
            const offsets = changes.map(([o]) => o).sort((p, q) => p - q);
            expect(d.same).toBe(changes.length === 0);
            const got: number[] = [];
            for (const r of d.memory[0]?.ranges ?? []) for (let x = r.start; x < r.end; x++) got.push(Number(x - HEAP));
            expect(got).toEqual(offsets);
            expect(d.memory[0]?.bytesDiffering ?? 0).toBe(changes.length);
            expect(d.memory[0]?.pagesDiffering ?? 0).toBe(new Set(offsets.map((o) => Math.floor(o / PAGE))).size);
          } finally {
            await b.close();
          }
        }),
        { numRuns: 15 },
      );
    } finally {
      await img.close();
    }
  });

  test("attribution: a symbolizer names the changed bytes and labels the area", async () => {
    const DATA = 0x7f1000000000n;
    const mem = new Uint8Array(PAGE);
    const changed = mem.slice();
    changed[0x10] = 1; // counter_total+0x0
    changed[0x58] = 1; // g_state+0x18
    changed[0x59] = 2;
    const sym: Symbolizer = (addr) => {
      const off = addr - DATA;
      const base = { module: "/opt/lib/libfoo.so", section: off < 0x40 ? ".data" : ".bss" };
      if (off >= 0x10n && off < 0x18n) return { ...base, symbol: "counter_total", offset: off - 0x10n };
      if (off >= 0x40n && off < 0x80n) return { ...base, symbol: "g_state", offset: off - 0x40n };
      return base;
    };
    const a = await build({ areas: [{ id: 3, start: DATA, pages: 1, memory: mem }] });
    const b = await build({ areas: [{ id: 3, start: DATA, pages: 1, memory: changed }] });
    const d = await diffPaths(a, b, { symbolizeA: sym });
    const m = d.memory[0];
    expect(m.label).toBe("libfoo.so .data,.bss");
    expect(m.symbols.map((s) => [s.name, s.bytes, s.firstOffset])).toEqual([["g_state", 2, 0x18n], ["counter_total", 1, 0n]]);
    expect(m.ranges.map((r) => r.symbol)).toEqual(["counter_total", "g_state+0x18"]);
    expect(diffText(d)).toMatch(/libfoo\.so \.data,\.bss {2}0x7f1000000000-0x7f1000001000 rw-p: 1 page\(s\), 3 byte\(s\): g_state\+0x18, counter_total/);
  });
});

describe("diffImages: map, threads, process, files", () => {
  test("areas added, removed, resized, perms changed, stack grown down", async () => {
    const STACK = 0x7ffe00000000n;
    const a = await build({
      areas: [
        { id: 1, start: HEAP, pages: 4, kind: "heap" },
        { id: 2, start: 0x7f0000000000n, pages: 2, prot: 3 },
        { id: 3, start: 0x7f0000100000n, pages: 1 },
        { id: 4, start: STACK, pages: 4, kind: "stack", path: "[stack]" },
      ],
    });
    const b = await build({
      areas: [
        { id: 1, start: HEAP, pages: 8, kind: "heap" },
        { id: 2, start: 0x7f0000000000n, pages: 2, prot: 1 },
        { id: 5, start: 0x7f0000200000n, pages: 3 },
        { id: 4, start: STACK - 0x2000n, pages: 6, kind: "stack", path: "[stack]" },
      ],
    });
    const d = await diffPaths(a, b);
    expect(d.areas.removed.map((x) => x.start)).toEqual([0x7f0000100000n]);
    expect(d.areas.added.map((x) => x.start)).toEqual([0x7f0000200000n]);
    expect(d.areas.changed.map((c) => [c.a.start, c.changes])).toEqual([
      [HEAP, ["resized"]],
      [0x7f0000000000n, ["perms"]],
      [STACK, ["moved-start", "resized"]],
    ]);
    expect(d.memory).toEqual([]);
    const text = diffText(d);
    expect(text).toContain("  ~ 0x7f0000000000-0x7f0000002000 [anon]: perms rw-p→r--p");
    expect(text).toContain("  + 0x7f0000200000-0x7f0000203000 rw-p [anon]");
  });

  test("an area split in two (mprotect) still has its memory compared across both parts", async () => {
    const mem = pattern(8, 5);
    const changed = mem.slice();
    changed[6 * PAGE + 1] ^= 1;
    const a = await build({ areas: [{ id: 1, start: 0x7f0000000000n, pages: 8, memory: mem }] });
    const b = await build({
      areas: [
        { id: 1, start: 0x7f0000000000n, pages: 4, memory: changed.slice(0, 4 * PAGE) },
        { id: 2, start: 0x7f0000004000n, pages: 4, prot: 1, memory: changed.slice(4 * PAGE) },
      ],
    });
    const d = await diffPaths(a, b);
    expect(d.areas.changed.map((c) => c.changes)).toEqual([["resized"]]);
    expect(d.areas.added.map((x) => x.perms)).toEqual(["r--p"]);
    expect(d.memory.map((m) => [m.area.start, m.areaB?.start, m.ranges.map((r) => r.start)])).toEqual([
      [0x7f0000000000n, 0x7f0000004000n, [0x7f0000000000n + BigInt(6 * PAGE + 1)]],
    ]);
  });

  test("threads: registers with symbolized rip, added and removed; paired in order when no tid is shared", async () => {
    const sym: Symbolizer = (addr) => (addr >= 0x401000n && addr < 0x401100n ? { symbol: "worker_loop", offset: addr - 0x401000n } : undefined);
    const a = await build({ threads: [{ tid: 500, main: true, regs: { rip: 0x401010n } }, { tid: 501 }], areas: [] });
    const b = await build({ threads: [{ tid: 500, main: true, regs: { rip: 0x401020n, rax: 7n } }, { tid: 502 }], areas: [] });
    const d = await diffPaths(a, b, { symbolizeA: sym });
    expect(d.threads.matchedBy).toBe("tid");
    expect(d.threads.removed.map((t) => t.tid)).toEqual([501]);
    expect(d.threads.added.map((t) => t.tid)).toEqual([502]);
    expect(d.threads.changed).toHaveLength(1);
    const c = d.threads.changed[0];
    expect(c.rip).toEqual({ a: 0x401010n, b: 0x401020n, symbolA: "worker_loop+0x10", symbolB: "worker_loop+0x20" });
    expect(c.registers.map((r) => r.name)).toEqual(["rax", "rip"]);
    expect(diffText(d)).toContain("  ~ 500  rip 0x401010 (worker_loop+0x10) → 0x401020 (worker_loop+0x20)");

    const restored = await build({ pid: 900, threads: [{ tid: 900, main: true, regs: { rip: 0x401010n } }, { tid: 901 }], areas: [] });
    const r = await diffPaths(a, restored);
    expect(r.threads).toMatchObject({ matchedBy: "order", added: [], removed: [], changed: [] });
    expect(r.process.map((f) => f.field)).toEqual(["pid", "pgid", "sid"]);
  });

  test("process, argv, environment and files", async () => {
    const a = await build({ env: ["HOME=/root", "LANG=C", "OLD=1"], fds: [{ fd: 0, path: "/dev/null" }, { fd: 3, path: "/var/log/x", pos: 10n }, { fd: 4, path: "/tmp/gone" }], areas: [] });
    const b = await build({ argv: ["/usr/bin/built"], env: ["HOME=/home/u", "LANG=C", "NEW=2"], fds: [{ fd: 0, path: "/dev/null" }, { fd: 3, path: "/var/log/x", pos: 4106n }, { fd: 5, path: "/tmp/new" }], areas: [] });
    const d = await diffPaths(a, b);
    expect(d.argv).toEqual({ a: ["/usr/bin/built", "--flag"], b: ["/usr/bin/built"] });
    expect(d.environ).toEqual({ added: ["NEW=2"], removed: ["OLD=1"], changed: [{ name: "HOME", a: "/root", b: "/home/u" }] });
    expect(d.files.closed.map((f) => f.fd)).toEqual([4]);
    expect(d.files.opened.map((f) => f.fd)).toEqual([5]);
    expect(d.files.changed).toEqual([{ fd: 3, path: "/var/log/x", changes: [{ field: "pos", a: 10n, b: 4106n }] }]);
    const text = diffText(d);
    expect(text).toContain("  ~ fd 3 /var/log/x: pos 10 → 4106");
    expect(text).toContain("  ~ HOME: \"/root\" → \"/home/u\"");
  });
});

describe("diff verb", () => {
  test("exit 1 and JSON with hex addresses when different; 2 on trouble", async () => {
    const mem = pattern(4);
    const changed = mem.slice();
    changed[5] ^= 1;
    const a = await build({ areas: [heapArea(mem)] });
    const b = await build({ areas: [heapArea(changed)] });
    const r = await run(["diff", "--json", a, b]);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.same).toBe(false);
    expect(j.memory[0]).toMatchObject({ area: { start: "0x555555600000", kind: "heap" }, pagesDiffering: 1, ranges: [{ start: "0x555555600005", end: "0x555555600006" }] });
    const text = await run(["diff", a, b]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^memory {2}1 page\(s\) differ in 1 area\(s\)$/m);
    const trouble = await run(["diff", a, "/etc/hostname"]);
    expect(trouble).toMatchObject({ code: 2, stderr: "ckimg: /etc/hostname: not a ckimg image (bad magic) at offset 0\n" });
    expect((await run(["diff", a])).code).toBe(2);
  });

  test.skipIf(!existsSync(join(root, "dist/analysis/index.js")))("examples/diff-images.mjs (against the built dist/)", async () => {
    const a = join(dir, "syn-a.img"), b = join(dir, "syn-b.img");
    await writeSyntheticImage(a, { seed: 4, heapBytes: 1 << 20 });
    await writeSyntheticImage(b, { seed: 4, heapBytes: 2 << 20 });
    const r = spawnSync(process.execPath, [join(root, "examples/diff-images.mjs"), a, b], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(1);
    const out = r.stdout;
    expect(out).toMatch(/^different: /);
    expect(out).toMatch(/memory map: 0 added, 0 removed, 1 changed/);
    expect(out).toMatch(/\[heap\] 0x555555600000-0x555555700000: resized/);
    const same = spawnSync(process.execPath, [join(root, "examples/diff-images.mjs"), a, a], { encoding: "utf8" });
    expect([same.status, same.stdout.split("\n")[0]]).toEqual([0, "same"]);
  });
});

// ---------------------------------------------------------------------------------------
// Real processes

const COUNTER = `
#include <stdio.h>
#include <time.h>
long counter_total = 1000;
static char g_state[64];
int main(void) {
  for (;;) {
    counter_total++;
    g_state[counter_total % 64] ^= 1;
    printf("%ld\\n", counter_total);
    fflush(stdout);
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    nanosleep(&ts, 0);
  }
}
`;

describe.skipIf(!haveCaptureBinary())("diff of real captures", () => {
  test("two captures of a counter: the diff names counter_total; an image against itself is the same", async () => {
    const exe = compileC(COUNTER, "counter", ["-O0"]);
    const a = join(dir, "counter-a.img"), b = join(dir, "counter-b.img");
    await withProcess([exe], async (p) => {
      await p.waitForLine(/^\d+$/);
      await runCapture({ pid: p.pid, output: a });
      const seen = p.lines.length;
      await p.waitForLine(/^\d+$/, { from: seen + 1 }); // the counter moved on since the first capture
      await runCapture({ pid: p.pid, output: b });
    });
    const r = await run(["diff", "--json", a, b]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(1);
    const d = JSON.parse(r.stdout);
    const data = d.memory.find((m: { symbols: { name: string }[] }) => m.symbols.some((s) => s.name === "counter_total"));
    expect(data).toBeDefined();
    expect(data.label).toMatch(/^counter \.(data|bss)/);
    expect(data.area.path).toBe(exe);
    // counter_total is initialised (.data), g_state is not (.bss); both belong to the executable.
    const byName = new Map(data.symbols.map((s: { name: string }) => [s.name, s]));
    expect(byName.get("counter_total")).toMatchObject({ module: exe, section: ".data" });
    expect(byName.get("g_state")).toMatchObject({ module: exe, section: ".bss" });
    const text = await run(["diff", a, b]);
    expect(text.stdout).toMatch(/counter \.data.*counter_total/);
    expect(await run(["diff", a, a])).toMatchObject({ code: 0, stderr: "" });
  });
});

/** Wait (pacing only) until no process has `pid`, so a restore can take it again. */
async function pidFree(pid: number): Promise<void> {
  for (let i = 0; i < 500 && existsSync(`/proc/${pid}`); i++) await sleep(10);
}

const canRestore = haveCaptureBinary() && existsSync(join(REPO, "build/ckimg-restore")) && existsSync(join(REPO, "dist/cli/main.js"));

describe.skipIf(!canRestore)("diff against a restored process", () => {
  test("capture, kill, restore, capture again: same pid and map, the counter moved on", async () => {
    const exe = compileC(COUNTER, "counter-r", ["-O0"]);
    const a = join(dir, "before.img"), b = join(dir, "after.img");
    const p = startProcess([exe]);
    try {
      await p.waitForLine(/^\d+$/);
      await runCapture({ pid: p.pid, output: a });
    } finally {
      await p.kill();
    }
    await pidFree(p.pid);
    const r = startProcess([process.execPath, join(REPO, "bin/ckimg"), "restore", a]);
    try {
      await r.waitForLines(3); // the restored counter prints on
      await runCapture({ pid: p.pid, output: b });
    } finally {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
      await Promise.race([r.exited, sleep(10_000)]);
      await r.kill();
      await pidFree(p.pid);
    }
    const res = await run(["diff", "--json", a, b]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(1);
    const d = JSON.parse(res.stdout);
    expect(d.a.pid).toBe(d.b.pid);
    expect(d.process.map((f: { field: string }) => f.field)).not.toContain("exe");
    expect(d.areas.added.filter((x: { kind: string }) => x.kind === "file")).toEqual([]);
    const data = d.memory.find((m: { symbols: { name: string }[] }) => m.symbols.some((s) => s.name === "counter_total"));
    expect(data?.area.path, res.stdout).toBe(exe);
  });
});
