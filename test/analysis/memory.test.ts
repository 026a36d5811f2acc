/** `mem` / `strings`: readRegion, hexdump, readStrings, selectAreas, and the two verbs through main(). */
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ImageError, ImageWriter, encodeRegs, openImage, writeSyntheticImage, X86_64_REG_NAMES, type AreaRecord, type X86Regs } from "../../src/format/index.js";
import { hexdump, readRegion, readStrings, selectAreas, type FoundString } from "../../src/analysis/memory.js";
import { main } from "../../src/cli/main.js";
import { tempDir } from "../support/tmp.js";

const dir = tempDir("ckimg-mem-test-");
const root = new URL("../../", import.meta.url).pathname;
const PAGE = 4096;

async function run(args: string[]) {
  let stdout = "", stderr = "";
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), stderrIsTty: false });
  return { code, stdout, stderr };
}

const synthetic = join(dir, "synthetic.img");
const ready = writeSyntheticImage(synthetic, { seed: 3, heapBytes: 256 << 10 });
// Synthetic layout (src/format/synthetic.ts): exe data page, heap, vdso.
const DATA = 0x555555557000n;
const VDSO = 0x7ffff7fc1000n;

/** A one-area anonymous image whose pages are `pages` (undefined = not stored). */
async function anonImage(path: string, pages: (Uint8Array | undefined)[]): Promise<bigint> {
  const start = 0x7f0000000000n;
  const w = await ImageWriter.create(path, { durable: false });
  const regs = Object.fromEntries(X86_64_REG_NAMES.map((n) => [n, 0n])) as X86Regs;
  await w.addProcess({
    pid: 77, ppid: 1, pgid: 77, sid: 77, uid: [0, 0, 0, 0], gid: [0, 0, 0, 0], personality: 0, umask: 0o22, threadCount: 1,
    captureNs: 0n, startTime: 0n, flags: 0, comm: "mini", exe: "/mini", cwd: "/", root: "/", kernel: "test",
    mm: { startCode: 0n, endCode: 0n, startData: 0n, endData: 0n, startBrk: 0n, brk: 0n, startStack: 0n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n },
  });
  await w.addThread({
    tid: 77, flags: 1, state: "S", sigmask: 0n, pending: 0n, clearChildTid: 0n, robustList: 0n, robustListLen: 0n,
    altstack: { sp: 0n, size: 0n, flags: 2 }, regs, regsRaw: encodeRegs(regs), xstate: new Uint8Array(512),
  });
  const area: AreaRecord = {
    id: 1, start, end: start + BigInt(pages.length * PAGE), fileOffset: 0n, devMajor: 0, devMinor: 0, inode: 0n, prot: 3, flags: 0,
    kind: "anon", fileId: undefined, path: "", vmflags: "rd wr",
  };
  await w.addArea(area);
  const mem = new Uint8Array(pages.length * PAGE);
  pages.forEach((p, i) => p && mem.set(p, i * PAGE));
  await w.addAreaMemory(area, mem, (i) => pages[i] === undefined);
  await w.finish();
  return start;
}

function page(fill: (b: Uint8Array) => void): Uint8Array {
  const b = new Uint8Array(PAGE);
  fill(b);
  return b;
}

const ascii = (s: string) => new TextEncoder().encode(s);

describe("hexdump", () => {
  test("xxd layout at the process's addresses, unavailable bytes as --", () => {
    const bytes = new Uint8Array(20);
    bytes.set(ascii("Hello, world!\n"));
    const text = hexdump({ address: 0x7f0000001000n, bytes, unavailable: [{ start: 0x7f0000001012n, end: 0x7f0000001014n }] });
    expect(text).toBe(
      "7f0000001000: 4865 6c6c 6f2c 2077 6f72 6c64 210a 0000  Hello, world!...\n" +
      "7f0000001010: 0000 ----                                ..  \n",
    );
  });

  test("addresses are padded to one width; empty region prints nothing", () => {
    expect(hexdump({ address: 0x10n, bytes: new Uint8Array(1), unavailable: [] })).toBe("00000010: 00" + " ".repeat(37) + "  .\n");
    expect(hexdump({ address: 0n, bytes: new Uint8Array(0), unavailable: [] })).toBe("");
  });
});

describe("readRegion", () => {
  test("reads stored pages and marks what the image cannot supply", async () => {
    await ready;
    const img = await openImage(synthetic);
    try {
      const r = await readRegion(img, DATA + 0x10n, 33);
      expect(new TextDecoder().decode(r.bytes)).toBe("synthetic .data: counter_total=42");
      expect(r.unavailable).toEqual([]);
      const v = await readRegion(img, VDSO + 0xff0n, 0x20);
      expect(v.unavailable).toMatchObject([{ start: VDSO + 0xff0n, end: VDSO + 0x1010n }]);
      await expect(readRegion(img, 0x1000n, 16)).rejects.toMatchObject({ code: "NOT_MAPPED" });
      await expect(readRegion(img, DATA, -1)).rejects.toBeInstanceOf(ImageError);
    } finally {
      await img.close();
    }
  });
});

describe("selectAreas", () => {
  test("by address, kind and path (whole or last component)", async () => {
    await ready;
    const img = await openImage(synthetic);
    try {
      expect(selectAreas(img, [`0x${(DATA + 5n).toString(16)}`]).map((a) => a.start)).toEqual([DATA]);
      expect(selectAreas(img, ["heap"]).map((a) => a.kind)).toEqual(["heap"]);
      expect(selectAreas(img, ["synthetic-app"]).length).toBe(3);
      expect(selectAreas(img, ["/usr/bin/synthetic-app", "stack"]).length).toBe(4);
      expect(selectAreas(img, undefined)).toBe(img.areas);
      expect(() => selectAreas(img, ["libnothing.so"])).toThrow(/no area matches 'libnothing.so'/);
    } finally {
      await img.close();
    }
  });
});

describe("readStrings", () => {
  test("finds the data-page string at its address; every hit is really there", async () => {
    await ready;
    const img = await openImage(synthetic);
    try {
      const found: FoundString[] = [];
      for await (const s of readStrings(img, { minLength: 6 })) found.push(s);
      expect(found).toContainEqual({ address: DATA + 0x10n, areaId: 2, encoding: "ascii", text: "synthetic .data: counter_total=42" });
      expect(found.some((s) => s.text.includes("quick brown fox"))).toBe(true);
      for (const s of found.slice(0, 200)) {
        expect(s.text.length).toBeGreaterThanOrEqual(6);
        const bytes = await img.readMemory(s.address, s.text.length);
        expect(new TextDecoder("latin1").decode(bytes)).toBe(s.text);
        // maximal: the byte before is not printable (or the page before is not stored)
      }
      const heapOnly: FoundString[] = [];
      for await (const s of readStrings(img, { areas: ["heap"], minLength: 6 })) heapOnly.push(s);
      const heap = img.areas.find((a) => a.kind === "heap")!;
      expect(heapOnly.length).toBeGreaterThan(0);
      expect(heapOnly.every((s) => s.address >= heap.start && s.address < heap.end)).toBe(true);
    } finally {
      await img.close();
    }
  });

  test("runs continue across stored neighbouring pages, stop at unstored ones; UTF-16LE", async () => {
    const path = join(dir, "strings.img");
    const start = await anonImage(path, [
      page((b) => b.set(ascii("HEL"), PAGE - 3)),
      page((b) => {
        b.set(ascii("LO-WORLD"), 0);
        b.set(ascii("ABCD"), PAGE - 4);
      }),
      undefined,
      page((b) => {
        b.set(ascii("EFGH"), 0);
        const wide = "Wide string";
        for (let i = 0; i < wide.length; i++) b[0x100 + 2 * i] = wide.charCodeAt(i);
      }),
    ]);
    const img = await openImage(path);
    try {
      const all: FoundString[] = [];
      for await (const s of readStrings(img, { encodings: ["ascii", "utf16le"] })) all.push(s);
      const asciiHits = all.filter((s) => s.encoding === "ascii").map((s) => [s.address - start, s.text]);
      expect(asciiHits).toEqual([
        [BigInt(PAGE - 3), "HELLO-WORLD"],
        [BigInt(2 * PAGE - 4), "ABCD"],
        [BigInt(3 * PAGE), "EFGH"],
      ]);
      const wide = all.filter((s) => s.encoding === "utf16le").map((s) => [s.address - start, s.text]);
      expect(wide).toEqual([[BigInt(3 * PAGE + 0x100), "Wide string"]]);
    } finally {
      await img.close();
    }
  });

  test("property: every ASCII run of printable bytes ≥ n in stored pages is found, nothing else", async () => {
    let round = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 600 }),
        fc.integer({ min: 1, max: 8 }),
        async (data, n) => {
          const path = join(dir, `prop-${round++}.img`);
          // Place the data at the end of page 0 running into page 1 (both stored).
          const mem = new Uint8Array(2 * PAGE);
          mem.fill(1);
          mem.set(data, PAGE - Math.floor(data.length / 2));
          const start = await anonImage(path, [mem.subarray(0, PAGE), mem.subarray(PAGE)]);
          const img = await openImage(path);
          try {
            const got: [number, string][] = [];
            for await (const s of readStrings(img, { minLength: n })) got.push([Number(s.address - start), s.text]);
            const want: [number, string][] = [];
            const text = new TextDecoder("latin1").decode(mem);
            for (const m of text.matchAll(/[\x20-\x7e\t]+/g)) if (m[0].length >= n) want.push([m.index!, m[0]]);
            expect(got).toEqual(want);
          } finally {
            await img.close();
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe("mem and strings verbs", () => {
  test("mem: hexdump, --json, --out (raw bytes, 0600), errors", async () => {
    await ready;
    const addr = `0x${(DATA + 0x10n).toString(16)}`;
    const dump = await run(["mem", synthetic, addr, "33"]);
    expect(dump.code).toBe(0);
    expect(dump.stdout.split("\n")[0]).toBe("555555557010: 7379 6e74 6865 7469 6320 2e64 6174 613a  synthetic .data:");
    expect(dump.stdout.split("\n").length).toBe(4);
    const json = JSON.parse((await run(["mem", "--json", synthetic, addr, "0x8"])).stdout);
    expect(json).toEqual({ address: addr, length: 8, hex: "73796e7468657469", unavailable: [] });
    const out = join(dir, "dump.bin");
    const raw = await run(["mem", synthetic, addr, "33", "--out", out]);
    expect(raw).toMatchObject({ code: 0, stdout: "", stderr: "" });
    expect(readFileSync(out, "latin1")).toBe("synthetic .data: counter_total=42");
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const unmapped = await run(["mem", synthetic, "0x1000", "16"]);
    expect(unmapped.code).toBe(2);
    expect(unmapped.stderr).toBe("ckimg: " + synthetic + ": address 0x1000 is not mapped in the image\n");
    expect((await run(["mem", synthetic, "zz", "16"])).stderr.split("\n")[0]).toBe("ckimg: not an address: 'zz'");
    expect((await run(["mem", synthetic, addr])).code).toBe(2);
  });

  test("strings: text and --json, --area, -n, bad selectors", async () => {
    await ready;
    const text = await run(["strings", synthetic, "--area", "0x555555557000", "-n", "8"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toBe("0x555555557010  synthetic .data: counter_total=42\n");
    const json = JSON.parse((await run(["strings", "--json", synthetic, "--area", "synthetic-app"])).stdout);
    expect(json).toEqual([{ address: "0x555555557010", area: 2, encoding: "ascii", text: "synthetic .data: counter_total=42" }]);
    const bad = await run(["strings", synthetic, "--area", "nosuch"]);
    expect(bad).toMatchObject({ code: 2, stderr: `ckimg: ${synthetic}: no area matches 'nosuch'\n` });
    expect((await run(["strings", synthetic, "-n", "0"])).code).toBe(2);
    expect((await run(["strings", synthetic, "--encoding", "ebcdic"])).code).toBe(2);
  });
});

describe("mem over many pieces", () => {
  test("a long hexdump and --out stream piece by piece and equal one readMemory", async () => {
    const big = join(dir, "big.img");
    await writeSyntheticImage(big, { seed: 5, heapBytes: 3 << 20 });
    const img = await openImage(big);
    const heap = img.areas.find((a) => a.kind === "heap")!;
    const len = Number(heap.end - heap.start);
    const whole = await img.readMemory(heap.start, len);
    await img.close();
    expect(len).toBeGreaterThan(1 << 20); // more than one piece
    const out = join(dir, "heap.bin");
    const r = await run(["mem", big, `0x${heap.start.toString(16)}`, String(len), "-o", out]);
    expect(r.code).toBe(0);
    expect(Buffer.compare(readFileSync(out), Buffer.from(whole))).toBe(0);
    const dump = await run(["mem", big, `0x${heap.start.toString(16)}`, String(len)]);
    const lines = dump.stdout.split("\n").filter(Boolean);
    expect(lines.length).toBe(len / 16);
    const k = (1 << 20) / 16; // first line of the second piece
    expect(lines[k].slice(0, 14)).toBe(`${(heap.start + (1n << 20n)).toString(16)}: `);
    expect(lines[k]).toBe(hexdump({ address: heap.start + (1n << 20n), bytes: whole.subarray(1 << 20, (1 << 20) + 16), unavailable: [] }).trimEnd());
  });
});

describe.skipIf(!existsSync(join(root, "dist/analysis/index.js")))("examples (against the built dist/)", () => {
  test("strings-in-area.mjs counts strings per area and dumps the first match", async () => {
    await ready;
    const r = spawnSync(process.execPath, [join(root, "examples/strings-in-area.mjs"), synthetic, "synthetic-app", "counter_total"], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\s+1 strings in \/usr\/bin\/synthetic-app 0x555555557000-0x555555558000\n/);
    expect(r.stdout).toContain('first with "counter_total": 0x555555557010 (ascii) "synthetic .data: counter_total=42"');
    expect(r.stdout).toContain("555555557010: 7379 6e74 6865 7469 6320 2e64 6174 613a  synthetic .data:");
  });
});
