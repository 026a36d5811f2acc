/**
 * Format 1.2 SysV IPC records (SYSV_SHM, SYSV_SEM, SYSV_MSG): round trips, hostile payloads
 * (truncated, bytes flipped) refused with a typed error or read as something valid, never a
 * crash; an image carrying them read back; shared memory of a tree read through the area that
 * stores it.
 */
import { afterAll, describe, expect, test } from "vitest";
import fc from "fast-check";
import { join } from "node:path";
import {
  ImageError, ImageWriter, decodeSysvMsg, decodeSysvSem, decodeSysvShm, encodeSysvMsg, encodeSysvSem, encodeSysvShm, openImage,
  verifyImage, type SysvMsgRecord, type SysvSemRecord, type SysvShmRecord, type TreeRecord,
} from "../../src/format/index.js";
import { arbProcess, arbThread } from "../support/arbitraries.js";
import { makeTempDir, removeTempDirs } from "../native/helpers.js";

afterAll(removeTempDirs);
const where = { recordType: "SYSV" };
const u32 = fc.nat({ max: 0xffffffff });
const arbPerm = fc.record({
  id: fc.nat({ max: 0x7fffffff }), key: u32, mode: fc.nat({ max: 0o777 }), uid: u32, gid: u32, cuid: u32, cgid: u32,
});
const arbShm: fc.Arbitrary<SysvShmRecord> = fc.tuple(arbPerm, fc.bigInt({ min: 1n, max: 1n << 40n }), fc.boolean())
  .map(([p, size, removed]) => ({ ...p, size, removed }));
const arbSem: fc.Arbitrary<SysvSemRecord> = fc.tuple(arbPerm, fc.array(fc.record({ value: fc.nat({ max: 0xffff }), pid: u32 }), { minLength: 1, maxLength: 40 }))
  .map(([p, sems]) => ({ ...p, sems }));
const arbMsg: fc.Arbitrary<SysvMsgRecord> = fc.tuple(arbPerm, fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.array(fc.record({ type: fc.bigInt({ min: 1n, max: (1n << 63n) - 1n }), data: fc.uint8Array({ maxLength: 64 }) }), { maxLength: 8 }))
  .map(([p, qbytes, messages]) => ({ ...p, qbytes, messages }));

/** Decoding damaged bytes either throws an ImageError or yields a record (never another error). */
function hostile<T>(enc: Uint8Array, dec: (b: Uint8Array, base: number, w: typeof where) => T, flips: [number, number][], cut: number): void {
  const b = enc.slice(0, cut % (enc.length + 1));
  for (const [at, v] of flips) if (b.length) b[at % b.length] = v;
  try {
    dec(b, 0, where);
  } catch (err) {
    expect(err).toBeInstanceOf(ImageError);
  }
}
const arbFlips = fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 6 });

describe("SysV records", () => {
  test("round-trip", () => {
    fc.assert(fc.property(arbShm, (x) => { expect(decodeSysvShm(encodeSysvShm(x), 0, where)).toEqual(x); }));
    fc.assert(fc.property(arbSem, (x) => { expect(decodeSysvSem(encodeSysvSem(x), 0, where)).toEqual(x); }));
    fc.assert(fc.property(arbMsg, (x) => { expect(decodeSysvMsg(encodeSysvMsg(x), 0, where)).toEqual(x); }));
  });

  test("hostile bytes: a typed error or a valid record", () => {
    fc.assert(fc.property(arbShm, arbFlips, fc.nat(), (x, f, c) => hostile(encodeSysvShm(x), decodeSysvShm, f, c)));
    fc.assert(fc.property(arbSem, arbFlips, fc.nat(), (x, f, c) => hostile(encodeSysvSem(x), decodeSysvSem, f, c)));
    fc.assert(fc.property(arbMsg, arbFlips, fc.nat(), (x, f, c) => hostile(encodeSysvMsg(x), decodeSysvMsg, f, c)));
  });

  test("specific refusals name the field", () => {
    const sem = encodeSysvSem({ id: 3, key: 0, mode: 0o600, uid: 0, gid: 0, cuid: 0, cgid: 0, sems: [{ value: 1, pid: 5 }] });
    new DataView(sem.buffer).setUint32(32, 2, true);
    expect(() => decodeSysvSem(sem, 100, where)).toThrow(/2 semaphores in 8 bytes/);
    const msg = encodeSysvMsg({ id: 4, key: 0, mode: 0o600, uid: 0, gid: 0, cuid: 0, cgid: 0, qbytes: 16384n, messages: [{ type: 1n, data: new Uint8Array(3) }] });
    new DataView(msg.buffer).setBigInt64(48, 0n, true);
    expect(() => decodeSysvMsg(msg, 0, where)).toThrow(/type 0/);
    const trailing = new Uint8Array([...encodeSysvMsg({ id: 4, key: 0, mode: 0, uid: 0, gid: 0, cuid: 0, cgid: 0, qbytes: 1n, messages: [] }), 1]);
    expect(() => decodeSysvMsg(trailing, 0, where)).toThrow(/1 bytes after the last message/);
  });
});

describe("images with SysV objects and shared memory", () => {
  test("a tree: SysV records are the root's; a sharer's unstored SHMEM page reads from the area that stores it", async () => {
    const dir = makeTempDir();
    const path = join(dir, "sysv.img");
    const [p] = fc.sample(arbProcess, 1);
    const [th] = fc.sample(arbThread, 1);
    const t: TreeRecord = { rootPid: 10, processes: [
      { pid: 10, ppid: 1, pgid: 10, sid: 10, zombie: false, exitStatus: 0, threadCount: 1 },
      { pid: 11, ppid: 10, pgid: 10, sid: 10, zombie: false, exitStatus: 0, threadCount: 1 },
    ] };
    const shm: SysvShmRecord = { id: 7, key: 0x1234, mode: 0o640, uid: 1, gid: 2, cuid: 0, cgid: 0, size: 8192n, removed: true };
    const sem: SysvSemRecord = { id: 8, key: 0, mode: 0o600, uid: 0, gid: 0, cuid: 0, cgid: 0, sems: [{ value: 1, pid: 10 }, { value: 0, pid: 11 }] };
    const msg: SysvMsgRecord = { id: 9, key: 0, mode: 0o600, uid: 0, gid: 0, cuid: 0, cgid: 0, qbytes: 16384n, messages: [{ type: 7n, data: new TextEncoder().encode("first") }] };
    const w = await ImageWriter.create(path, { durable: false });
    await w.addTree(t);
    for (const pid of [10, 11]) {
      w.beginProcess(pid);
      await w.addProcess({ ...p, pid, ppid: pid === 10 ? 1 : 10, pgid: 10, sid: 10, threadCount: 1 });
      await w.addThread({ ...th, tid: pid });
      // the same shared object (dev 0:1, inode 555), mapped at different addresses; the child maps it from offset 4096
      const area = pid === 10
        ? { id: 1, start: 0x10000n, end: 0x12000n, fileOffset: 0n }
        : { id: 1, start: 0x40000n, end: 0x41000n, fileOffset: 4096n };
      const full = { ...area, devMajor: 0, devMinor: 1, inode: 555n, prot: 3, flags: 1, kind: "shmem" as const, fileId: undefined, path: "/dev/zero", vmflags: "rd wr sh" };
      await w.addArea(full);
      if (pid === 10) {
        const mem = new Uint8Array(2 * 4096);
        mem.fill(0x5a, 4096);
        await w.addAreaMemory(full, mem);
        await w.addSysvShm(shm);
        await w.addSysvSem(sem);
        await w.addSysvMsg(msg);
      }
    }
    await w.finish();
    const img = await openImage(path);
    try {
      expect(img.sysv).toEqual({ shm: [shm], sem: [sem], msg: [msg] });
      expect(img.processImage(11).sysv).toEqual({ shm: [], sem: [], msg: [] });
      // object offset 4096 is the parent's second page
      expect([...await img.readMemory(11, 0x40000n, 4)]).toEqual([0x5a, 0x5a, 0x5a, 0x5a]);
      expect(await img.processImage(11).pageSource(0x40000n)).toBe("image");
      expect([...await img.readMemory(10, 0x10000n, 2)]).toEqual([0, 0]);
    } finally {
      await img.close();
    }
    expect((await verifyImage(path)).ok).toBe(true);
  });
});
