/**
 * Code vs disk on real processes: an inline patch in the program's own function and in libc's
 * puts is found, byte-exact and attributed to the function; clean processes (including a
 * whole-memory image where every code page is stored) compare equal; GOT hooks are not code.
 */
import { execFileSync } from "node:child_process";
import { appendFileSync, copyFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openImage } from "../../src/format/index.js";
import { verifyAgainstDisk, againstDiskText } from "../../src/analysis/index.js";
import { main } from "../../src/cli/main.js";
import { tempDir } from "../support/tmp.js";
import { captureProcess, compileC, procImage, startProgram } from "./support/programs.js";

const dir = tempDir("ckimg-disk-");
let bin: string;
const STUB = [0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3];

beforeAll(() => {
  bin = compileC(dir, "patcher", "hook", ["-O2"]);
});

async function captured(args: string[], name: string, how: "capture" | "proc" = "capture", program = bin) {
  const r = await startProgram(program, args);
  try {
    const img = join(dir, `${name}.img`);
    if (how === "proc") await procImage(r.pid, img);
    else await captureProcess(r.pid, img);
    return { img, at: BigInt(r.ready[1] === "(nil)" ? 0 : r.ready[1]) };
  } finally {
    await r.stop();
  }
}

async function check(path: string) {
  const img = await openImage(path);
  try {
    return await verifyAgainstDisk(img);
  } finally {
    await img.close();
  }
}

function cli(args: string[]) {
  let out = "", err = "";
  return main(args, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), stderrIsTty: false }).then((code) => ({ code, out, err }));
}

describe("verify --against-disk", () => {
  it("a clean process matches its files", async () => {
    const { img } = await captured([], "clean");
    const r = await check(img);
    expect(r.ok).toBe(true);
    expect(r.patches).toEqual([]);
    expect(r.areas.length).toBeGreaterThanOrEqual(3);
    const c = await cli(["verify", "--against-disk", img]);
    expect(c.code).toBe(0);
    expect(c.out).toContain("code matches the files on disk");
  });

  it("every stored code page of a whole-memory image equals the disk (libc, ld.so, the program)", async () => {
    const { img } = await captured([], "whole", "proc");
    const r = await check(img);
    expect(r.pagesChecked).toBeGreaterThan(300); // libc's text alone is > 1 MiB
    expect(r.pagesDiffering).toBe(0);
    expect(r.ok).toBe(true);
  });

  it("finds an inline patch in the program's own function", async () => {
    const { img, at } = await captured(["patch"], "patch");
    const r = await check(img);
    expect(r.ok).toBe(false);
    expect(r.patches).toHaveLength(1);
    const p = r.patches[0];
    expect(p.start).toBe(at);
    expect([...p.memory]).toEqual(STUB);
    expect(p.disk).toHaveLength(6);
    expect([...p.disk]).not.toEqual(STUB);
    expect(p.end - p.start).toBeLessThanOrEqual(6n);
    expect(p.symbol).toBe("my_puts");
    expect(p.location).toMatch(/^my_puts\+0x2 \(patcher\)$/);
    const c = await cli(["verify", "--against-disk", img]);
    expect(c.code).toBe(1);
    expect(c.out).toMatch(/PATCHED 0x[0-9a-f]+-0x[0-9a-f]+ \(\d bytes\) in my_puts\+0x2/);
    const j = JSON.parse((await cli(["verify", "--json", "--against-disk", img])).out);
    expect(j.againstDisk.patches[0].start).toBe(`0x${at.toString(16)}`);
  });

  it("finds an inline patch in libc's puts", async () => {
    const { img, at } = await captured(["patch-libc"], "patch-libc");
    const r = await check(img);
    expect(r.patches).toHaveLength(1);
    expect(r.patches[0].module).toBe("libc.so.6");
    expect(r.patches[0].start).toBeGreaterThanOrEqual(at);
    expect(r.patches[0].end).toBeLessThanOrEqual(at + 6n);
    expect(r.patches[0].symbol).toMatch(/puts/);
    expect(againstDiskText(r)).toContain("libc.so.6");
  });

  it("a GOT hook is not a code patch", async () => {
    const { img } = await captured(["hook"], "hook");
    expect((await check(img)).ok).toBe(true);
  });

  it("DT_TEXTREL: bytes ld.so relocated in code are left out; a real patch beside them is still found", async () => {
    const src = (f: string) => fileURLToPath(new URL(`./support/${f}`, import.meta.url));
    const lib = join(dir, "libtextrel.so");
    execFileSync("gcc", ["-O2", "-fno-pic", "-mcmodel=large", "-shared", "-Wl,-z,notext", "-o", lib, src("textrel-lib.c")]);
    const prog = join(dir, "textrel");
    execFileSync("gcc", ["-O2", "-o", prog, src("textrel-main.c"), lib, `-Wl,-rpath,${dir}`]);
    const clean = await captured([], "textrel", "capture", prog);
    const r = await check(clean.img);
    const area = r.areas.find((a) => a.path === lib && a.status === "checked")!;
    expect(area.storedPages).toBeGreaterThanOrEqual(1); // ld.so wrote into the page
    expect(r.relocatedBytesSkipped).toBe(16); // two R_X86_64_64 immediates
    expect(r.patches).toEqual([]);
    expect(r.ok).toBe(true);
    const patched = await captured(["patch"], "textrel-patch", "capture", prog);
    const p = await check(patched.img);
    expect(p.patches).toHaveLength(1);
    expect(p.patches[0]).toMatchObject({ symbol: "bump", module: "libtextrel.so" });
    expect([...p.patches[0].memory]).toEqual([0xcc]);
  });

  it("a program whose file changed on disk is skipped, not compared", async () => {
    const copy = join(dir, "patcher-copy");
    copyFileSync(bin, copy);
    let img = "";
    try {
      ({ img } = await captured(["patch"], "changed", "capture", copy));
    } finally {
      appendFileSync(copy, "x");
    }
    const r = await check(img);
    const mine = r.areas.filter((a) => a.path === copy);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((a) => a.status === "skipped" && /changed on disk/.test(a.reason ?? ""))).toBe(true);
    expect(r.patches.filter((p) => p.path === copy)).toEqual([]);
  });
});
