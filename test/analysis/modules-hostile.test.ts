/**
 * Hostile images: ELF headers, dynamic sections, symbol tables and stacks with random damage,
 * read from the image's memory (the file on disk is unknown). Module loading, symbolization, the
 * GOT audit, backtraces and the disk comparison must answer — with notes, "none" sources or
 * short backtraces — and never throw.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ImageWriter, encodeRegs, openImage, type AreaRecord, type X86Regs, X86_64_REG_NAMES } from "../../src/format/index.js";
import { parseElf } from "../../src/elf/index.js";
import { auditGot, backtrace, loadModules, verifyAgainstDisk } from "../../src/analysis/index.js";
import { tempDir } from "../support/tmp.js";
import { compileC } from "./support/programs.js";

const dir = tempDir("ckimg-hostile-");
let elf: Uint8Array;
const BASE = 0x555555554000n;
const STACK = 0x7ffffffde000n;
const VDSO = 0x7ffff7fc1000n;

beforeAll(() => {
  elf = new Uint8Array(readFileSync(compileC(dir, "victim", "hook", ["-O2"])));
});

/** The file as the loader lays it out: each PT_LOAD's bytes at its vaddr (the bss zero). */
function loadedImage(file: Uint8Array): Uint8Array {
  const loads = parseElf(file).segments.filter((x) => x.type === 1);
  const end = loads.reduce((m, x) => (x.vaddr + x.memsz > m ? x.vaddr + x.memsz : m), 0n);
  const mem = new Uint8Array(Math.ceil(Number(end) / 4096) * 4096);
  for (const x of loads) mem.set(file.subarray(Number(x.offset), Number(x.offset + x.filesz)), Number(x.vaddr));
  return mem;
}

function area(id: number, start: bigint, size: number, kind: AreaRecord["kind"], path: string, fileId?: number): AreaRecord {
  return {
    id, start, end: start + BigInt(size), fileOffset: 0n, devMajor: 0, devMinor: 0, inode: fileId === undefined ? 0n : 99n,
    prot: 7, flags: 0, kind, fileId, path, vmflags: "",
  };
}

async function hostileImage(path: string, mutations: [number, number][], stackWords: bigint[], regs: bigint[]): Promise<void> {
  const mem = loadedImage(elf);
  for (const [o, b] of mutations) mem[o % mem.length] = b;
  const w = await ImageWriter.create(path, { durable: false });
  const r = {} as X86Regs;
  X86_64_REG_NAMES.forEach((n, i) => (r[n] = regs[i % regs.length]));
  r.rsp = STACK + 0x800n;
  r.rip = BASE + (regs[0] % BigInt(mem.length));
  await w.addProcess({
    pid: 42, ppid: 1, pgid: 42, sid: 42, uid: [0, 0, 0, 0], gid: [0, 0, 0, 0], personality: 0, umask: 0o22, threadCount: 1,
    captureNs: 0n, startTime: 0n, flags: 0, comm: "victim", exe: "/nonexistent/victim", cwd: "/", root: "/", kernel: "",
    mm: { startCode: 0n, endCode: 0n, startData: 0n, endData: 0n, startBrk: 0n, brk: 0n, startStack: 0n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n },
  });
  await w.addEnviron(["LD_PRELOAD=/nonexistent/x.so"]);
  await w.addThread({
    tid: 42, flags: 1, state: "S", sigmask: 0n, pending: 0n, clearChildTid: 0n, robustList: 0n, robustListLen: 0n,
    altstack: { sp: 0n, size: 0n, flags: 2 }, regs: r, regsRaw: encodeRegs(r), xstate: new Uint8Array(512),
  });
  await w.addMappedFile({
    id: 0, devMajor: 0, devMinor: 0, inode: 99n, size: BigInt(elf.length), mtimeNs: 1n, mode: 0o100755, flags: 4,
    sha256: undefined, path: "/nonexistent/victim", buildId: undefined,
  });
  const areas = [
    area(0, BASE, mem.length, "file", "/nonexistent/victim", 0),
    area(1, STACK, 0x2000, "stack", "[stack]"),
    area(2, VDSO, mem.length, "vdso", "[vdso]"),
  ];
  for (const a of areas) await w.addArea(a);
  await w.addAreaMemory(areas[0], mem, () => false);
  const stack = new Uint8Array(0x2000);
  const dv = new DataView(stack.buffer);
  stackWords.forEach((v, i) => dv.setBigUint64((i * 8) % 0x1ff8, v, true));
  await w.addAreaMemory(areas[1], stack, () => false);
  await w.addAreaMemory(areas[2], mem, () => false);
  await w.finish();
}

const addr = fc.oneof(
  fc.bigInt({ min: BASE, max: BASE + 0x8000n }),
  fc.bigInt({ min: STACK, max: STACK + 0x2000n }),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
);

/** Offsets that matter most: ELF header, program headers, PT_DYNAMIC, the dynamic tables; or anywhere. */
function hotOffset() {
  const f = parseElf(elf);
  const dyn = f.segments.find((x) => x.type === 2)!;
  const tables = [5, 6, 0x6ffffef5, 23, 7].map((t) => Number(f.dynamic?.get(t) ?? 0n));
  return fc.oneof(
    fc.nat(63),
    fc.integer({ min: 64, max: 64 + f.header.phnum * 56 - 1 }),
    fc.integer({ min: Number(dyn.vaddr), max: Number(dyn.vaddr + dyn.memsz) - 1 }),
    ...tables.map((t) => fc.integer({ min: t, max: t + 255 })),
    fc.nat(16383),
  );
}

describe("hostile images", () => {
  it("the undamaged image parses from memory (the property below starts from a working case)", async () => {
    const p = join(dir, "intact.img");
    await hostileImage(p, [], [], [0n]);
    const img = await openImage(p);
    try {
      const map = await loadModules(img);
      const m = map.moduleAt(BASE)!;
      expect(m.source).toBe("memory");
      expect(m.notes.join(" ")).toMatch(/no longer on disk/);
      expect(map.modules.find((x) => x.kind === "vdso")?.source).toBe("memory");
      expect((await auditGot(map)).slots.length).toBeGreaterThan(0);
    } finally {
      await img.close();
    }
  });

  it("random damage never makes the analyses throw", async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(hotOffset(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 64 }),
        fc.array(addr, { maxLength: 64 }),
        fc.array(addr, { minLength: 1, maxLength: 27 }),
        async (mutations, stackWords, regs) => {
          const p = join(dir, `h${n++}.img`);
          await hostileImage(p, mutations, stackWords, regs);
          const img = await openImage(p);
          try {
            const map = await loadModules(img);
            // Whatever the headers claim, modules stay disjoint and sorted (moduleAt's binary search).
            for (let i = 1; i < map.modules.length; i++) expect(map.modules[i].start >= map.modules[i - 1].end).toBe(true);
            for (const m of map.modules) expect(m.end > m.start).toBe(true);
            for (const a of [...stackWords, ...regs]) map.symbolize(a);
            for (const m of map.modules) map.symbolsOf(m);
            await auditGot(map);
            const [bt] = await backtrace(map, { maxFrames: 16 });
            expect(bt.frames.length).toBeGreaterThanOrEqual(1);
            expect(bt.frames.length).toBeLessThanOrEqual(16);
            await verifyAgainstDisk(map);
          } finally {
            await img.close();
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
