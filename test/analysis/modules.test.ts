/**
 * The module map of real processes: modules and biases against /proc/PID/maps, symbols from disk
 * (identity checked), from the image's memory alone (PT_DYNAMIC, no section headers), the vDSO,
 * and a file that changed on disk after the capture.
 */
import { appendFileSync, copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openImage, type CheckpointImage } from "../../src/format/index.js";
import { auditGot, loadModules, symbolize, symbolizedReport, type ModuleMap } from "../../src/analysis/index.js";
import { tempDir } from "../support/tmp.js";
import { captureProcess, compileC, procImage, startProgram } from "./support/programs.js";

const dir = tempDir("ckimg-modules-");
let pie: string, nopie: string;

interface Captured { img: string; maps: string[] }

async function run(bin: string, name: string, how: "capture" | "proc" = "capture", after?: () => void, args: string[] = []): Promise<Captured> {
  const r = await startProgram(bin, args);
  try {
    const maps = readFileSync(`/proc/${r.pid}/maps`, "utf8").trim().split("\n");
    const img = join(dir, `${name}.img`);
    if (how === "proc") await procImage(r.pid, img);
    else await captureProcess(r.pid, img);
    return { img, maps };
  } finally {
    await r.stop();
    // A running executable cannot be written (ETXTBSY): change files only once it is gone.
    after?.();
  }
}

/** First mapping start of a path in a maps listing. */
function firstMapping(maps: string[], path: string): bigint {
  const line = maps.find((l) => l.endsWith(` ${path}`))!;
  return BigInt("0x" + line.split("-")[0]);
}

async function withMap<T>(path: string, f: (map: ModuleMap, img: CheckpointImage) => Promise<T> | T, memoryOnly = false): Promise<T> {
  const img = await openImage(path);
  try {
    return await f(await loadModules(img, { memoryOnly }), img);
  } finally {
    await img.close();
  }
}

const LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6";

beforeAll(() => {
  pie = compileC(dir, "prog-pie", "hook", ["-O2"]);
  nopie = compileC(dir, "prog-nopie", "hook", ["-O2", "-no-pie"]);
});

describe("modules", () => {
  it("finds the executable, ld.so, libc and the vDSO with the biases the kernel chose", async () => {
    const { img, maps } = await run(pie, "pie");
    await withMap(img, (map) => {
      const exe = map.executable!;
      expect(exe.path).toBe(pie);
      expect(exe.source).toBe("disk");
      expect(exe.bias).toBe(firstMapping(maps, pie));
      expect(exe.needed).toContain("libc.so.6");
      const libc = map.byName("libc.so.6")[0];
      expect(libc.kind).toBe("library");
      expect(libc.bias).toBe(firstMapping(maps, LIBC));
      expect(map.interpreter?.name).toBe("ld-linux-x86-64.so.2");
      // The capturer does not store the vDSO; the running kernel is the captured one, so its
      // vDSO stands in (symbols and CFI).
      const vdso = map.modules.find((m) => m.kind === "vdso")!;
      expect(vdso.source).toBe("kernel");
      expect(vdso.notes[0]).toMatch(/not stored in the image: symbols and CFI from the running kernel/);
      const cg = map.symbolsOf(vdso).find((x) => x.name === "__vdso_clock_gettime")!;
      expect(map.symbolize(cg.value + vdso.bias + 1n).symbol).toMatchObject({ name: "__vdso_clock_gettime", offset: 1n });
      // Modules are disjoint and sorted; moduleAt answers at both edges.
      for (let i = 1; i < map.modules.length; i++) expect(map.modules[i].start).toBeGreaterThanOrEqual(map.modules[i - 1].end);
      for (const m of map.modules) {
        expect(map.moduleAt(m.start)).toBe(m);
        expect(map.moduleAt(m.end - 1n)).toBe(m);
        expect(map.moduleAt(m.end)).not.toBe(m);
      }
    });
  });

  it("an image from another kernel gets no vDSO symbols", async () => {
    const { img } = await run(pie, "other-kernel");
    const image = await openImage(img);
    try {
      image.process.kernel = "0.0.0-elsewhere";
      const vdso = (await loadModules(image)).modules.find((m) => m.kind === "vdso")!;
      expect(vdso.source).toBe("none");
      expect(vdso.notes[0]).toMatch(/not stored in the image \(kernel-provided\)/);
    } finally {
      await image.close();
    }
  });

  it("non-PIE executable: bias 0", async () => {
    const { img } = await run(nopie, "nopie");
    await withMap(img, (map) => {
      expect(map.executable!.bias).toBe(0n);
      expect(map.executable!.start).toBe(0x400000n);
    });
  });

  it("symbolizes functions, PLT stubs and data, and says when there is no symbol", async () => {
    const { img } = await run(pie, "pie-sym");
    await withMap(img, async (map) => {
      const exe = map.executable!;
      const mine = exe.elf!.symtab!.lookup("my_puts")!;
      const s = map.symbolize(mine.value + exe.bias + 3n);
      expect(s.symbol).toMatchObject({ name: "my_puts", offset: 3n, table: "symtab", type: "FUNC" });
      expect(s.elfAddress).toBe(mine.value + 3n);
      expect(s.fileOffset).toBe(BigInt(exe.elf!.vaddrToOffset(mine.value + 3n)!));
      const libc = map.byName("libc.so.6")[0];
      const pause = libc.elf!.dynsym!.lookup("pause")!;
      const p = map.symbolize(pause.value + libc.bias);
      expect(p.symbol?.address).toBe(pause.value + libc.bias);
      expect(p.symbol?.offset).toBe(0n);
      expect(p.module?.name).toBe("libc.so.6");
      const stub = map.symbolsOf(exe).find((x) => x.name === "write@plt")!;
      expect(map.symbolize(stub.value + exe.bias + 4n).symbol).toMatchObject({ name: "write@plt", table: "plt", offset: 4n });
      const stack = map.image.areas.find((a) => a.kind === "stack")!;
      const st = map.symbolize(stack.start + 8n);
      expect(st.module).toBeUndefined();
      expect(st.symbol).toBeUndefined();
      expect(symbolizedReport(st).text).toMatch(/\(\[stack\]\)$/);
      const [again] = await symbolize(map.image, [mine.value + exe.bias]);
      expect(again.symbol?.name).toBe("my_puts");
    });
  });

  it("parses every module from the image's memory alone, vDSO included, with the same dynamic symbols", async () => {
    const { img } = await run(pie, "proc", "proc");
    const fromDisk = await withMap(img, (map) => {
      const libc = map.byName("libc.so.6")[0];
      return ["pause", "puts", "malloc", "clock_gettime"].map((n) => libc.elf!.dynsym!.lookup(n)!.value + libc.bias);
    });
    await withMap(img, (map) => {
      const libc = map.byName("libc.so.6")[0];
      expect(libc.source).toBe("memory");
      expect(libc.elf).toBeUndefined();
      expect(libc.loaded?.needed).toContain("ld-linux-x86-64.so.2");
      for (const a of fromDisk) {
        const s = map.symbolize(a);
        expect(s.symbol?.offset).toBe(0n);
        expect(s.symbol?.table).toBe("dynsym");
      }
      expect(map.symbolize(fromDisk[0]).symbol?.name).toMatch(/pause/);
      const vdso = map.modules.find((m) => m.kind === "vdso")!;
      expect(vdso.source).toBe("memory");
      const names = map.symbolsOf(vdso).map((s) => s.name);
      expect(names).toContain("__vdso_clock_gettime");
      const cg = map.symbolsOf(vdso).find((s) => s.name === "__vdso_clock_gettime")!;
      expect(map.symbolize(cg.value + vdso.bias).symbol?.name).toMatch(/clock_gettime/);
      expect(map.executable?.source).toBe("memory");
    }, true);
  });

  it("a file changed on disk after the capture is not trusted", async () => {
    const copy = join(dir, "prog-copy");
    copyFileSync(pie, copy);
    const { img } = await run(copy, "changed", "capture", () => appendFileSync(copy, "x"));
    await withMap(img, (map) => {
      const exe = map.executable ?? map.modules.find((m) => m.path === copy)!;
      expect(exe.source).not.toBe("disk");
      expect(exe.notes.join(" ")).toMatch(/changed on disk \(size/);
      // libc is unchanged: still from disk.
      expect(map.byName("libc.so.6")[0].source).toBe("disk");
    });
    // patch-libc calls dlsym, which binds ld.so's own PLT slots into libc: with the executable's
    // DT_NEEDED unknown, the GOT audit must widen the scope rather than flag them.
    const copy2 = join(dir, "prog-copy2");
    copyFileSync(pie, copy2);
    const r = await run(copy2, "changed-dlsym", "capture", () => appendFileSync(copy2, "x"), ["patch-libc"]);
    await withMap(r.img, async (map) => {
      const audit = await auditGot(map);
      expect(audit.scopeWidened).toBe(true);
      expect(audit.suspicious).toEqual([]);
    });
  });

  it("parsed files are cached by path and identity", async () => {
    const { img } = await run(pie, "cache");
    const a = await withMap(img, (m) => m.byName("libc.so.6")[0].elf);
    const b = await withMap(img, (m) => m.byName("libc.so.6")[0].elf);
    expect(a).toBeDefined();
    expect(b).toBe(a);
  });
});
