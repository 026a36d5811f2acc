/**
 * UNREADABLE_PAGES from the C capture (format 1.2): pages the capture could not read are listed,
 * their content is unknown (never shown as data), the pages around them read back, and the image
 * keeps every reader rule. The unreadable pages are real: a private mapping of a file truncated
 * after the first capture loses its pages past the new end (SIGBUS), and the incremental capture,
 * which re-reads every page its parent holds, fails to read them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { AREA_UNREADABLE, openImage, verifyImage } from "../../src/format/index.js";
import { runCapture } from "../../src/cli/capture.js";
import { REPO, assertUntraced, compileC, makeTempDir, removeTempDirs, requireBuild, startProcess } from "./helpers.js";

const PS = 4096;
let exe = "";
let tmp = "";

beforeAll(() => {
  requireBuild(["build/ckimg-capture"]);
  exe = compileC(readFileSync(join(REPO, "test/native/unreadable-programs/truncmap.c"), "utf8"), "truncmap");
  tmp = makeTempDir("ckimg-unreadable-");
});
afterAll(() => removeTempDirs());

describe("capture: pages that fail to read", () => {
  it("lists them in UNREADABLE_PAGES; they read as unknown, the rest as written", async () => {
    const file = join(tmp, "mapped.dat");
    const p = startProcess([exe, file]);
    try {
      const addr = BigInt((await p.waitForLine(/^ready /)).split(" ")[1]);
      const full = join(tmp, "full.img"), incr = join(tmp, "incr.img");
      await runCapture({ pid: p.pid, output: full });
      {
        await using img = await openImage(full);
        const area = img.areaAt(addr)!;
        expect(area.flags & AREA_UNREADABLE).toBe(0);
        expect(img.unreadablePages.size).toBe(0);
      }
      truncateSync(file, 2 * PS);
      await runCapture({ pid: p.pid, output: incr, parent: full });
      assertUntraced(p.pid);
      expect(existsSync(`/proc/${p.pid}`)).toBe(true);

      await using img = await openImage(incr);
      const area = img.areaAt(addr)!;
      expect(area.start).toBe(addr);
      expect(area.flags & AREA_UNREADABLE).toBe(AREA_UNREADABLE);
      expect(img.unreadablePages.get(area.id)).toEqual([{ start: addr + BigInt(2 * PS), end: addr + BigInt(8 * PS) }]);
      const read = await img.readMemoryMap(addr, 8 * PS);
      expect(read.unknown.map((u) => [u.start, u.end])).toEqual([[addr + BigInt(2 * PS), addr + BigInt(8 * PS)]]);
      expect(read.bytes.subarray(0, PS).every((b) => b === 0x41)).toBe(true);
      expect(read.bytes.subarray(PS, 2 * PS).every((b) => b === 0x42)).toBe(true);
      await expect(img.readMemory(addr + BigInt(3 * PS), 16)).rejects.toMatchObject({ code: "UNAVAILABLE" });
      const report = await verifyImage(incr, { threads: 1 });
      expect(report.problems).toEqual([]);
    } finally {
      p.child.kill("SIGKILL");
    }
  });
});
