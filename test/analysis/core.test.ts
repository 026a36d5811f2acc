/**
 * `to-core`: the core file read back with ckimg's ELF reader (notes decoded by its core-note
 * helpers, PT_LOAD contents against the image), readelf as a second reader, and gdb on cores of
 * real captured processes: `gdb -batch -ex bt EXE core` shows the frames `gdb -p` shows live.
 */
import { afterAll, describe, expect, test } from "vitest";
import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { ImageWriter, X86_64_REG_NAMES, encodeRegs, openImage, writeSyntheticImage, type AreaRecord, type X86Regs } from "../../src/format/index.js";
import { auxvOf, mappedFilesOf, parseElf, prpsinfoOf, prstatusOf, raw, xstateOf, type ElfNote } from "../../src/elf/index.js";
import { writeCore } from "../../src/analysis/core.js";
import { main } from "../../src/cli/main.js";
import { runCapture } from "../../src/cli/capture.js";
import { tempDir } from "../support/tmp.js";
import { compileC, haveCaptureBinary, removeTempDirs, withProcess } from "../native/helpers.js";

const dir = tempDir("ckimg-core-test-");
afterAll(removeTempDirs);

async function run(args: string[]) {
  let stdout = "", stderr = "";
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), stderrIsTty: false });
  return { code, stdout, stderr };
}

function have(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

describe("writeCore on a synthetic image", () => {
  const imgPath = join(dir, "syn.img");
  const corePath = join(dir, "syn.core");
  const ready = writeSyntheticImage(imgPath, { seed: 9, heapBytes: 3 << 20 });

  test("ELF core header, notes and PT_LOADs agree with the image", async () => {
    await ready;
    const img = await openImage(imgPath);
    try {
      const summary = await writeCore(img, corePath, { durable: false });
      const st = statSync(corePath);
      expect(st.mode & 0o777).toBe(0o600);
      expect(st.size).toBe(summary.bytes);
      const coreBytes = readFileSync(corePath);
      const elf = parseElf(new Uint8Array(coreBytes), { file: corePath });
      expect(elf.header.type).toBe(raw.ET_CORE);
      expect(elf.machine).toBe(raw.EM_X86_64);

      const notes: ElfNote[] = elf.notes().flatMap((g) => g.notes);
      expect(notes.map((n) => `${n.owner}:${n.type}`)).toEqual([
        `CORE:${raw.NT_PRSTATUS}`, `CORE:${raw.NT_PRPSINFO}`, `CORE:${raw.NT_AUXV}`, `CORE:${raw.NT_FILE}`, `CORE:${raw.NT_FPREGSET}`, `LINUX:${raw.NT_X86_XSTATE}`,
        `CORE:${raw.NT_PRSTATUS}`, `CORE:${raw.NT_FPREGSET}`, `LINUX:${raw.NT_X86_XSTATE}`,
      ]);
      const status = notes.filter((n) => n.type === raw.NT_PRSTATUS).map((n) => prstatusOf(n, raw.EM_X86_64)!);
      expect(status.map((s) => s.pid)).toEqual(img.threads.map((t) => t.tid));
      status.forEach((s, i) => {
        const t = img.threads[i];
        expect(s.regs).toEqual(t.regs);
        expect([s.sighold, s.ppid, s.pgrp, s.sid, s.fpvalid, s.cursig]).toEqual([t.sigmask, 1, img.process.pgid, img.process.sid, 1, 0]);
      });
      const ps = prpsinfoOf(notes.find((n) => n.type === raw.NT_PRPSINFO)!, raw.EM_X86_64)!;
      expect(ps).toMatchObject({ fname: "synthetic-app", psargs: "/usr/bin/synthetic-app --seed 9 arg with spaces", pid: 4009, uid: 1000, sname: "S" });
      const auxv = auxvOf(notes.find((n) => n.type === raw.NT_AUXV)!, true);
      expect(auxv.map((e) => [BigInt(e.type), e.value])).toEqual([...img.auxv.map((e) => [e.type, e.value]), [0n, 0n]]);
      const files = mappedFilesOf(notes.find((n) => n.type === raw.NT_FILE)!, true);
      expect(files).toEqual(img.areas.filter((a) => a.kind === "file").map((a) => ({ start: a.start, end: a.end, offset: a.fileOffset, path: a.path })));
      const xs = notes.filter((n) => n.type === raw.NT_X86_XSTATE);
      expect(xs.map((n) => xstateOf(n)?.size)).toEqual(img.threads.map((t) => t.xstate.length));
      expect(notes.find((n) => n.type === raw.NT_FPREGSET)!.desc).toEqual(img.threads[0].xstate.subarray(0, 512));

      const loads = elf.segments.filter((s) => s.type === raw.PT_LOAD);
      expect(loads.map((s) => [s.vaddr, s.memsz])).toEqual(img.areas.map((a) => [a.start, a.end - a.start]));
      for (const [i, a] of img.areas.entries()) {
        const s = loads[i];
        expect(s.flags).toBe((a.prot & 1 ? raw.PF_R : 0) | (a.prot & 2 ? raw.PF_W : 0) | (a.prot & 4 ? raw.PF_X : 0));
        expect(Number(s.offset) % 4096).toBe(0);
        // The vdso is not in the image and the synthetic kernel is not this one: no content.
        if (a.kind === "vdso") expect(s.filesz).toBe(0n);
        else expect(s.filesz).toBe(a.end - a.start);
        // Every stored page is in the core at its place.
        for await (const page of img.pages(a)) {
          const at = Number(s.offset + (page.address - a.start));
          expect(Buffer.compare(coreBytes.subarray(at, at + 4096), Buffer.from(page.data))).toBe(0);
        }
      }
      // The synthetic exe is not on disk: its text pages cannot be supplied, and the summary says so.
      expect(summary.unavailablePages).toBe(3);
      expect(summary.vdso).toBe(false);
      expect(summary.zero).toBeGreaterThan(60 << 20); // the sparse 64 MiB area is (mostly) holes
      expect(summary.fromImage).toBe(img.areas.reduce((n, a) => n + img.storedPages(a.id) * 4096, 0));
    } finally {
      await img.close();
    }
  });

  test.skipIf(!have("readelf"))("readelf reads it as a core with the same notes and segments", async () => {
    await ready;
    await run(["to-core", imgPath, "-o", corePath]);
    const notes = spawnSync("readelf", ["-n", "-W", corePath], { encoding: "utf8", maxBuffer: 64 << 20 });
    const owners = notes.stdout.split("\n").filter((l) => /^\s+(CORE|LINUX)\s+0x/.test(l)).map((l) => l.trim().split(/\s+/)[0] + " " + /\((\w+)/.exec(l)![1]);
    expect(owners.slice(0, 6)).toEqual(["CORE prstatus", "CORE prpsinfo", "CORE auxiliary", "CORE mapped", "CORE floating", "LINUX x86"]);
    const head = spawnSync("readelf", ["-h", "-l", "-W", corePath], { encoding: "utf8" });
    expect(head.stdout).toMatch(/Type:\s+CORE \(Core file\)/);
    expect(head.stdout.match(/^\s+LOAD\s/gm)?.length).toBe(7);
  });

  test("to-core verb: summary text, --json, usage errors, trouble", async () => {
    await ready;
    const out = join(dir, "verb.core");
    const r = await run(["to-core", imgPath, "-o", out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*verb\.core: [\d.]+ MiB \(2 thread\(s\), 7 PT_LOAD, 9 notes\)/);
    expect(r.stdout).toMatch(/warning: 3 page\(s\) of mapped files missing or changed on disk were written as zero/);
    expect(r.stdout).toMatch(/open it with: gdb \/usr\/bin\/synthetic-app .*verb\.core\n$/);
    const j = JSON.parse((await run(["to-core", "--json", imgPath, "-o", out])).stdout);
    expect(j).toMatchObject({ threads: 2, loadSegments: 7, unavailablePages: 3, vdso: false });
    expect((await run(["to-core", imgPath])).stderr.split("\n")[0]).toBe("ckimg: to-core needs -o CORE");
    expect((await run(["to-core", "/nonexistent.img", "-o", out])).stderr).toBe("ckimg: /nonexistent.img: cannot open: no such file\n");
  });
});

describe("writeCore property", () => {
  test("every PT_LOAD holds exactly the area's memory as the image defines it (stored, zero, holes)", async () => {
    let round = 0;
    const arbArea = fc.record({
      pages: fc.integer({ min: 1, max: 700 }),
      kind: fc.constantFrom("anon", "heap", "stack", "shmem") as fc.Arbitrary<AreaRecord["kind"]>,
      prot: fc.integer({ min: 0, max: 7 }),
      // stored pages: index → fill byte
      stored: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 12 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(arbArea, { minLength: 1, maxLength: 5 }), async (specs) => {
        const path = join(dir, `prop-${round}.img`), core = join(dir, `prop-${round++}.core`);
        const w = await ImageWriter.create(path, { durable: false });
        const regs = Object.fromEntries(X86_64_REG_NAMES.map((n) => [n, 1n])) as X86Regs;
        await w.addProcess({
          pid: 1, ppid: 0, pgid: 1, sid: 1, uid: [0, 0, 0, 0], gid: [0, 0, 0, 0], personality: 0, umask: 0, threadCount: 1, captureNs: 0n, startTime: 0n, flags: 0,
          comm: "p", exe: "/p", cwd: "/", root: "/", kernel: "k",
          mm: { startCode: 0n, endCode: 0n, startData: 0n, endData: 0n, startBrk: 0n, brk: 0n, startStack: 0n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n },
        });
        await w.addThread({
          tid: 1, flags: 1, state: "R", sigmask: 0n, pending: 0n, clearChildTid: 0n, robustList: 0n, robustListLen: 0n, altstack: { sp: 0n, size: 0n, flags: 2 },
          regs, regsRaw: encodeRegs(regs), xstate: new Uint8Array(512),
        });
        let start = 0x100000000n;
        const areas: AreaRecord[] = [];
        const mems: Uint8Array[] = [];
        for (const [i, sp] of specs.entries()) {
          const a: AreaRecord = {
            id: i, start, end: start + BigInt(sp.pages * 4096), fileOffset: 0n, devMajor: 0, devMinor: 0, inode: 0n, prot: sp.prot, flags: 0,
            kind: sp.kind, fileId: undefined, path: "", vmflags: "",
          };
          const mem = new Uint8Array(sp.pages * 4096);
          for (const [k, fill] of sp.stored) mem.fill(fill, (k % sp.pages) * 4096 + 100, (k % sp.pages) * 4096 + 300);
          areas.push(a);
          mems.push(mem);
          start = a.end + 0x10000n;
          await w.addArea(a);
        }
        for (const [i, a] of areas.entries()) await w.addAreaMemory(a, mems[i]);
        await w.finish();
        const img = await openImage(path);
        try {
          await writeCore(img, core, { durable: false });
          const bytes = readFileSync(core);
          const loads = parseElf(new Uint8Array(bytes)).segments.filter((x) => x.type === raw.PT_LOAD);
          expect(loads.length).toBe(areas.length);
          for (const [i, a] of areas.entries()) {
            const seg = loads[i];
            expect([seg.vaddr, seg.memsz]).toEqual([a.start, a.end - a.start]);
            if (!(a.prot & 1)) {
              expect(seg.filesz).toBe(0n); // PROT_NONE: no content, as the kernel writes it
              continue;
            }
            const o = Number(seg.offset);
            expect(Buffer.compare(bytes.subarray(o, o + mems[i].length), Buffer.from(mems[i]))).toBe(0);
          }
        } finally {
          await img.close();
        }
      }),
      { numRuns: 15 },
    );
  });
});

// ---------------------------------------------------------------------------------------
// gdb on cores of real processes

const SLEEPER = `
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
volatile int marker;
__attribute__((noinline)) void worker_waits_here(void) { for (;;) pause(); }
static void *worker(void *arg) { (void)arg; worker_waits_here(); return 0; }
__attribute__((noinline)) void waiting_in_known_function(int n) {
  marker = n;
  printf("ready\\n");
  fflush(stdout);
  for (;;) pause();
}
int main(int argc, char **argv) {
  (void)argv;
  pthread_t t;
  if (argc > 1) pthread_create(&t, 0, worker, 0);
  waiting_in_known_function(7);
  return 0;
}
`;

/**
 * Function names of the frames gdb -batch prints ("#1  0x… in NAME (" or "#0  NAME (" lines).
 * gdb prints frame #0 once more when it loads a core: with `last`, only the last backtrace counts.
 */
function gdbFrames(args: string[], last = false): { frames: string[]; out: string } {
  const r = spawnSync("gdb", ["-nx", "-batch", ...args], { encoding: "utf8", timeout: 120_000 });
  const out = r.stdout + r.stderr;
  const text = last ? out.slice(out.lastIndexOf("\n#0 ") + 1) : out;
  const frames = [...text.matchAll(/^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+) \(/gm)].map((m) => m[1]);
  return { frames, out };
}

describe.skipIf(!haveCaptureBinary() || !have("gdb"))("gdb on to-core output of real captures", () => {
  test("bt on the core shows the frames gdb -p shows live: main and the function it sleeps in", async () => {
    const exe = compileC(SLEEPER, "sleeper", ["-O0"]);
    const image = join(dir, "sleeper.img");
    const core = join(dir, "sleeper.core");
    let live: string[] = [];
    await withProcess([exe], async (p) => {
      await p.waitForLine(/^ready$/);
      live = gdbFrames(["-ex", "bt", "-p", String(p.pid)], true).frames;
      await runCapture({ pid: p.pid, output: image });
    });
    expect((await run(["to-core", image, "-o", core])).code).toBe(0);
    const { frames, out } = gdbFrames(["-ex", "bt", exe, core], true);
    expect(frames, out).toContain("main");
    expect(frames, out).toContain("waiting_in_known_function");
    expect(frames).toEqual(live);
  });

  test("every thread of a two-thread process is in the core with its own stack", async () => {
    const exe = compileC(SLEEPER, "sleeper2", ["-O0"]);
    const image = join(dir, "sleeper2.img");
    const core = join(dir, "sleeper2.core");
    await withProcess([exe, "threads"], async (p) => {
      await p.waitForLine(/^ready$/);
      await runCapture({ pid: p.pid, output: image });
    });
    expect((await run(["to-core", image, "-o", core])).code).toBe(0);
    const { frames, out } = gdbFrames(["-ex", "thread apply all bt", exe, core]);
    expect(frames, out).toContain("worker_waits_here");
    expect(frames, out).toContain("waiting_in_known_function");
    expect(frames, out).toContain("main");
    expect(out.match(/^Thread \d+ \(/gm)?.length, out).toBe(2);
  });
});
