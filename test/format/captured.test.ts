/** The TypeScript reader on an image written by the C capture binary (committed corpus image). */
import { expect, test } from "vitest";
import { openImage, verifyImage } from "../../src/format/index.js";

const path = new URL("../../corpus/images/captured-counter-lz4.img", import.meta.url).pathname;

test("a real capture reads and verifies cleanly", async () => {
  const img = await openImage(path);
  try {
    expect(img.process.comm).toBe("counter2");
    expect(img.process.exe).toBe("/tmp/cc/counter2");
    expect(img.argv).toEqual(["/tmp/cc/counter2"]);
    expect(img.environ).toEqual(["PATH=/usr/bin:/bin", "HOME=/nonexistent", "LANG=C"]);
    expect(img.threads).toHaveLength(2);
    expect(img.threads[0].tid).toBe(img.process.pid);
    for (const t of img.threads) {
      expect(t.regs).toBeDefined();
      expect(t.regs!.fs_base).not.toBe(0n);
      expect(t.xstate.length).toBeGreaterThanOrEqual(512);
    }
    expect(img.sigactions.actions.map((a) => a.signo)).toContain(10);
    const kinds = new Set(img.areas.map((a) => a.kind));
    for (const k of ["file", "stack", "vdso"]) expect(kinds.has(k as never)).toBe(true);
    expect(img.areas.some((a) => a.path.endsWith("/libc.so.6"))).toBe(true);
    // Every stack page the image stores reads back; the top of the main thread's stack is stored.
    const rsp = img.threads[0].regs!.rsp;
    expect((await img.readMemory(rsp, 64)).length).toBe(64);
    expect(img.fds.map((f) => f.fd)).toEqual(expect.arrayContaining([0, 1, 2]));
  } finally {
    await img.close();
  }
  expect((await verifyImage(path)).ok).toBe(true);
});
