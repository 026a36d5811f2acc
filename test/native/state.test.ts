/**
 * Per-process and per-thread state (format 1.1 records 0x0007–0x000F, 0x0011–0x0017) on real
 * processes, zdtm style: each program in test/native/state-programs sets up its state, prints
 * "ready", is captured with --kill and restored, then — on a line from us — checks by itself
 * that the state is what it was and prints PASS or FAIL. The restored process reads and writes
 * the restorer's stdio (its own fds 0-2 were pipes to this test).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, compileC, makeTempDir, removeTempDirs, runCli, sleep, startProcess, type Started } from "./helpers.js";

const SP = join(REPO, "test/native/state-programs");
const CLI = join(REPO, "bin/ckimg");
const harness = readFileSync(join(SP, "zdtm.h"), "utf8");
const prog = (name: string, flags: string[] = []) =>
  compileC(readFileSync(join(SP, `${name}.c`), "utf8").replace('#include "zdtm.h"', harness), name, ["-D_GNU_SOURCE", ...flags]);

let tmp = "";
beforeAll(() => {
  for (const b of ["build/ckimg-restore", "build/ckimg-capture", "dist/cli/main.js"])
    if (!existsSync(join(REPO, b))) throw new Error(`${b} missing: run npm run build first`);
  tmp = makeTempDir("ckimg-state-");
});
afterAll(() => removeTempDirs());

async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 500 && existsSync(`/proc/${pid}`); i++) await sleep(20);
  if (existsSync(`/proc/${pid}`)) throw new Error(`process ${pid} did not go away`);
}

export interface StateRun {
  img: string;
  capture: { status: number | null; stdout: string; stderr: string };
  restored: Started;
  pid: number;
}

/**
 * Start the program, wait for "ready", capture --kill, restore (not detached), send "check",
 * and return its verdict line. The restored process and the restorer are always reaped.
 */
export async function zdtmRoundTrip(
  argv: string[],
  opts: { codec?: string; restoreArgs?: string[]; beforeCheckMs?: number; onRestored?: (r: StateRun) => Promise<void> } = {},
): Promise<{ verdict: string; run: StateRun }> {
  const img = join(tmp, `st-${Math.random().toString(36).slice(2)}.img`);
  const p = startProcess(argv, { cwd: tmp });
  let cap;
  try {
    await p.waitForLine(/^ready$/);
    cap = runCli(["capture", String(p.pid), "-o", img, "--compress", opts.codec ?? "lz4", "--kill"]);
    if (cap.status !== 0) throw new Error(`capture failed (${cap.status}): ${cap.stderr}`);
  } finally {
    await p.kill();
    await gone(p.pid);
  }
  const r = startProcess([process.execPath, CLI, "restore", img, ...(opts.restoreArgs ?? [])], { cwd: tmp });
  const run: StateRun = { img, capture: cap, restored: r, pid: p.pid };
  try {
    if (opts.beforeCheckMs) await sleep(opts.beforeCheckMs);
    if (opts.onRestored) await opts.onRestored(run);
    r.write("check\n");
    const verdict = await r.waitForLine(/^(PASS|FAIL)/, { timeoutMs: 20_000 });
    return { verdict: [verdict, ...r.lines.filter((l) => l.startsWith("FAIL") && l !== verdict)].join(" | "), run };
  } finally {
    try { process.kill(p.pid, "SIGKILL"); } catch { /* gone */ }
    await Promise.race([r.exited, sleep(10_000)]);
    await r.kill();
    await gone(p.pid);
  }
}

describe("signals: capture leaves them as they were", () => {
  it("a SIGTRAP handler survives (zdtm sigtrap01)", async () => {
    const { verdict } = await zdtmRoundTrip([prog("sigtrap")]);
    expect(verdict).toBe("PASS");
  });
});

describe("timers", () => {
  it("itimers and POSIX timers come back with their ids, clocks, values and target thread", async () => {
    const { verdict, run } = await zdtmRoundTrip([prog("timers", ["-lrt"])]);
    expect(verdict).toBe("PASS");
    expect(run.capture.stderr).toBe("");
  });
});

describe("memory areas", () => {
  for (const restoreArgs of [[], ["--lazy"]]) {
    it(`madvise and mapping flags of every area come back (zdtm maps02)${restoreArgs.length ? " with --lazy" : ""}`, async () => {
      const { verdict } = await zdtmRoundTrip([prog("madvise")], { codec: restoreArgs.length ? "none" : "lz4", restoreArgs });
      expect(verdict).toBe("PASS");
    });
  }
});

describe("credentials and prctl state", () => {
  for (const mode of ["root", "nonroot"]) {
    it(`groups, capabilities, securebits, scheduler, timer slack, no_new_privs, pdeathsig, subreaper, THP-disable, dumpable, oom_score_adj (${mode})`, async () => {
      const { verdict } = await zdtmRoundTrip([prog("creds"), mode]);
      expect(verdict).toBe("PASS");
    });
  }
});

describe("rseq and seccomp", () => {
  it("every thread's rseq registration comes back and the kernel keeps cpu_id current (zdtm rseq00)", async () => {
    const { verdict } = await zdtmRoundTrip([prog("rseq")]);
    expect(verdict).toBe("PASS");
  });

  it("seccomp filters per thread (stacked and inherited), strict mode and no_new_privs come back", async () => {
    const { verdict } = await zdtmRoundTrip([prog("seccomp")]);
    expect(verdict).toBe("PASS");
  });
});
