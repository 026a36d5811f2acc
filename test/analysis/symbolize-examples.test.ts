/**
 * The runnable examples (examples/symbolize.mjs, examples/got-audit.mjs) run with node against
 * the built package ("ckimg", "ckimg/analysis" resolve to dist/ through package.json exports)
 * on real captures.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../support/tmp.js";
import { captureProcess, compileC, startProgram } from "./support/programs.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dir = tempDir("ckimg-examples-");
let btImage: string, hookedImage: string, cleanImage: string;

async function capture(bin: string, args: string[], name: string): Promise<string> {
  const r = await startProgram(bin, args);
  try {
    return await captureProcess(r.pid, join(dir, `${name}.img`));
  } finally {
    await r.stop();
  }
}

function example(name: string, args: string[]) {
  const r = spawnSync(process.execPath, [join(root, "examples", name), ...args], { cwd: root, encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

beforeAll(async () => {
  // The examples import the compiled library: build it (type errors elsewhere do not stop emit).
  try {
    execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.json")], { stdio: "pipe" });
  } catch {
    // tsc exits non-zero on a type error in any file but still writes dist/
  }
  const bt = compileC(dir, "bt", "bt", ["-O2"]);
  const hook = compileC(dir, "hook", "hook", ["-O2"]);
  btImage = await capture(bt, [], "bt");
  hookedImage = await capture(hook, ["hook"], "hooked");
  cleanImage = await capture(hook, [], "clean");
});

describe("examples", () => {
  it("symbolize.mjs prints modules, each thread's backtrace and the addresses asked for", () => {
    const r = example("symbolize.mjs", [btImage, "0x10"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/executable +bt +\[symbols: disk\]/);
    expect(r.out).toMatch(/thread \d+ \(main\): rip in (pause|wait_here)\+0x/);
    expect(r.out).toMatch(/#\d+ 0x[0-9a-f]+ main\+0x[0-9a-f]+ \(bt\) \[cfi\]/);
    expect(r.out).toMatch(/0x10: 0x10 \(unmapped\)/);
  });

  it("got-audit.mjs flags the hooked slot (exit 1) and passes the clean process (exit 0)", () => {
    const bad = example("got-audit.mjs", [hookedImage]);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/SUSPICIOUS hook: puts slot 0x[0-9a-f]+ = 0x[0-9a-f]+ -> my_puts \(hook\)/);
    const good = example("got-audit.mjs", [cleanImage]);
    expect(good.code).toBe(0);
    expect(good.out).not.toContain("SUSPICIOUS");
  });
});
