/**
 * Backtraces of real captured threads: a program sleeping in pause() inside wait_here, called
 * from level2 ← main, and a second thread ← thread_main; built with and without frame pointers.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openImage } from "../../src/format/index.js";
import { backtrace, formatBacktrace, loadModules, type ThreadBacktrace } from "../../src/analysis/index.js";
import { main } from "../../src/cli/main.js";
import { btJson } from "../../src/cli/symbols.js";
import { tempDir } from "../support/tmp.js";
import { captureProcess, compileC, startProgram } from "./support/programs.js";

const dir = tempDir("ckimg-bt-");
const builds: Record<string, string[]> = {
  O2: ["-O2"],
  "O2-omit-fp": ["-O2", "-fomit-frame-pointer"],
  "O0-fp": ["-O0", "-fno-omit-frame-pointer"],
};
const bins: Record<string, string> = {};
const images: Record<string, string> = {};

async function captureRun(bin: string, args: string[], name: string): Promise<string> {
  const r = await startProgram(bin, args);
  try {
    return await captureProcess(r.pid, join(dir, `${name}.img`));
  } finally {
    await r.stop();
  }
}

beforeAll(async () => {
  for (const [name, flags] of Object.entries(builds)) {
    bins[name] = compileC(dir, `bt-${name}`, "bt", flags);
    images[name] = await captureRun(bins[name], [], name);
  }
  images.spin = await captureRun(bins["O0-fp"], ["spin"], "spin");
  images.signal = await captureRun(bins.O2, ["signal"], "signal");
  images.vdso = await captureRun(bins.O2, ["vdso"], "vdso");
});

function names(bt: ThreadBacktrace): string[] {
  return bt.frames.map((f) => f.location.symbol?.name ?? "?");
}

/** `want` appears in `got` in this order (other frames may sit between). */
function inOrder(got: string[], want: string[]): boolean {
  let i = 0;
  for (const g of got) if (g === want[i]) i++;
  return i === want.length;
}

async function traces(name: string, methods?: ("cfi" | "fp" | "scan")[]) {
  const img = await openImage(images[name]);
  try {
    return await backtrace(img, methods ? { methods } : {});
  } finally {
    await img.close();
  }
}

describe("bt", () => {
  for (const build of Object.keys(builds)) {
    it(`shows pause ← wait_here ← level2 ← main, and thread_main in the other thread (${build})`, async () => {
      const bts = await traces(build);
      expect(bts).toHaveLength(2);
      const mainThread = bts.find((b) => b.main)!;
      const other = bts.find((b) => !b.main)!;
      const got = names(mainThread);
      expect(inOrder(got, ["wait_here", "level2", "main", "__libc_start_main", "_start"])).toBe(true);
      // Frame 0 is where the thread was: in libc's pause, or (caught just before) in wait_here.
      expect(["pause", "wait_here"]).toContain(got[0]);
      expect(mainThread.frames.slice(1).every((f) => f.method === "cfi")).toBe(true);
      expect(mainThread.end).toMatch(/outermost/);
      expect(names(other)).toContain("thread_main");
      expect(formatBacktrace(mainThread)).toMatch(/#\d+ +0x[0-9a-f]{16} in main\+0x[0-9a-f]+ \(bt-/);
    });
  }

  it("walks frame pointers alone (-O0 -fno-omit-frame-pointer, thread spinning in its own code)", async () => {
    const bts = await traces("spin", ["fp"]);
    const got = names(bts.find((b) => b.main)!);
    expect(got.slice(0, 3)).toEqual(["spin_here", "level2", "main"]);
    expect(bts.find((b) => b.main)!.frames.slice(1).every((f) => f.method === "fp")).toBe(true);
  });

  it("unwinds through a signal handler's frame (__restore_rt CFI expressions) back to main", async () => {
    const bts = await traces("signal");
    const t = bts.find((b) => b.main)!;
    expect(inOrder(names(t), ["wait_here", "raise", "level2", "main", "__libc_start_main"])).toBe(true);
    const sig = t.frames.filter((f) => f.signal);
    expect(sig).toHaveLength(1);
    // The trampoline sits between the handler's frames and the interrupted raise().
    const k = sig[0].index;
    expect(names(t).indexOf("wait_here")).toBeLessThan(k);
    expect(names(t).indexOf("raise")).toBeGreaterThan(k);
    expect(formatBacktrace(t)).toContain("<signal handler called>");
  });

  for (const [name, bin, args, want] of [
    ["python3 in time.sleep", "python3", ["-c", "import time; print('ready', flush=True); time.sleep(1000)"], ["clock_nanosleep", "time_sleep", "Py_BytesMain", "__libc_start_main", "_start"]],
    ["perl in sleep", "perl", ["-e", "$| = 1; print qq(ready\\n); sleep 1000"], ["clock_nanosleep", "sleep", "Perl_pp_sleep", "perl_run", "main", "__libc_start_main"]],
  ] as const) {
    it(`unwinds ${name} through stripped, -O2 distribution binaries down to _start`, async () => {
      const img = await captureRun(bin, [...args], name.replace(/\W/g, "_"));
      const image = await openImage(img);
      try {
        const [t] = await backtrace(image);
        expect(inOrder(names(t), [...want])).toBe(true);
        expect(t.end).toMatch(/outermost/);
      } finally {
        await image.close();
      }
    });
  }

  it("unwinds out of the vDSO (CFI from the running kernel's vDSO) to clock_here ← level2 ← main", async () => {
    const t = (await traces("vdso")).find((b) => b.main)!;
    expect(inOrder(names(t), ["clock_here", "level2", "main", "__libc_start_main"])).toBe(true);
    // Wherever the thread was caught (vDSO, libc's clock_gettime, the loop), every frame is CFI's.
    expect(t.frames.slice(1).every((f) => f.method === "cfi")).toBe(true);
  });

  it("finds return addresses by scanning the stack when asked to (marked scan)", async () => {
    const bts = await traces("O2", ["scan"]);
    const t = bts.find((b) => b.main)!;
    expect(inOrder(names(t), ["wait_here", "level2", "main"])).toBe(true);
    expect(t.frames.slice(1).every((f) => f.method === "scan")).toBe(true);
  });

  it("frame addresses symbolize back to the same frames (sym agrees with bt)", async () => {
    const img = await openImage(images.O2);
    try {
      const map = await loadModules(img);
      const [bt] = await backtrace(map, { tid: img.process.pid });
      for (const f of bt.frames) expect(map.symbolize(f.pc).symbol?.name).toBe(f.location.symbol?.name);
      expect(bt.frames[0].pc).toBe(img.threads.find((t) => t.tid === img.process.pid)!.regs!.rip);
    } finally {
      await img.close();
    }
  });
});

describe("separate debug files (by build-id)", () => {
  it("name the functions of a stripped program", async () => {
    const bin = compileC(dir, "bt-stripped", "bt", ["-O2", "-Wl,--build-id"]);
    const id = /Build ID: ([0-9a-f]+)/.exec(execFileSync("readelf", ["-n", bin], { encoding: "utf8" }))![1];
    const dbgDir = join(dir, "debug");
    mkdirSync(join(dbgDir, ".build-id", id.slice(0, 2)), { recursive: true });
    execFileSync("objcopy", ["--only-keep-debug", bin, join(dbgDir, ".build-id", id.slice(0, 2), `${id.slice(2)}.debug`)]);
    execFileSync("strip", ["--strip-all", bin]);
    const path = await captureRun(bin, [], "stripped");
    const img = await openImage(path);
    try {
      const without = await backtrace(await loadModules(img, { debugSymbols: false }));
      expect(names(without.find((b) => b.main)!)).not.toContain("wait_here");
      const map = await loadModules(img, { debugDirs: [dbgDir] });
      expect(map.executable?.debug).toBeDefined();
      const t = (await backtrace(map)).find((b) => b.main)!;
      expect(inOrder(names(t), ["wait_here", "level2", "main"])).toBe(true);
    } finally {
      await img.close();
    }
  });

  const libcDebug = (() => {
    try {
      const id = /Build ID: ([0-9a-f]+)/.exec(execFileSync("readelf", ["-n", "/usr/lib/x86_64-linux-gnu/libc.so.6"], { encoding: "utf8" }))![1];
      return existsSync(`/usr/lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`);
    } catch {
      return false;
    }
  })();
  it.skipIf(!libcDebug)("name libc's local functions when libc6-dbg is installed (start_thread, __libc_start_call_main)", async () => {
    const bts = await traces("O2");
    expect(names(bts.find((b) => b.main)!)).toContain("__libc_start_call_main");
    expect(inOrder(names(bts.find((b) => !b.main)!), ["thread_main", "start_thread", "clone3"])).toBe(true);
  });
});

describe("ckimg bt / sym", () => {
  function cli(args: string[]) {
    let out = "", err = "";
    return main(args, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), stderrIsTty: false }).then((code) => ({ code, out, err }));
  }

  it("prints every thread, or one with --thread; --json has the frames", async () => {
    const all = await cli(["bt", images.O2]);
    expect(all.code).toBe(0);
    expect(all.out.match(/^thread /gm)).toHaveLength(2);
    expect(all.out).toMatch(/in main\+0x/);
    expect(all.out).toMatch(/in wait_here\+0x/);
    const img = await openImage(images.O2);
    const tids = img.threads.map((t) => t.tid);
    await img.close();
    const one = await cli(["bt", "--thread", String(tids[1]), images.O2]);
    expect(one.out.match(/^thread /gm)).toHaveLength(1);
    expect(one.out).toContain(`thread ${tids[1]}`);
    const json = JSON.parse((await cli(["bt", "--json", images.O2])).out) as ReturnType<typeof btJson>;
    expect(json).toHaveLength(2);
    expect(json[0].frames.some((f) => f.symbol?.name === "main")).toBe(true);
    const bad = await cli(["bt", "--thread", "1", images.O2]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/no thread 1/);
  });

  it("sym names the rip of a thread sleeping in pause (libc) and an address in main", async () => {
    const img = await openImage(images.O2);
    const rip = img.threads.find((t) => t.tid === img.process.pid)!.regs!.rip;
    const map = await loadModules(img);
    const mainSym = map.executable!.elf!.symtab!.lookup("main")!;
    const inMain = mainSym.value + map.executable!.bias + 4n;
    await img.close();
    const r = await cli(["sym", images.O2, `0x${rip.toString(16)}`, `0x${inMain.toString(16)}`, "0x10"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/ (pause|wait_here)(@GLIBC_2\.2\.5)?\+0x[0-9a-f]+ in (libc\.so\.6|bt-O2)/);
    expect(r.out).toContain(`0x${inMain.toString(16)}  main+0x4 in bt-O2`);
    expect(r.out).toMatch(/0x10  unmapped/);
    const j = JSON.parse((await cli(["sym", "--json", images.O2, `0x${inMain.toString(16)}`])).out);
    expect(j[0].symbol).toMatchObject({ name: "main", offset: "0x4", type: "FUNC" });
    expect(j[0].module).toMatchObject({ name: "bt-O2", kind: "executable", source: "disk" });
    expect((await cli(["sym", images.O2, "nothex"])).code).toBe(2);
  });
});
