/**
 * Format 1.2 process trees: TREE record round trips, images with several processes written and
 * read back (each process its own view, readMemory by pid), and hostile trees refused with a
 * typed error naming the record.
 */
import { afterAll, describe, expect, test } from "vitest";
import fc from "fast-check";
import { join } from "node:path";
import { readFileSync, writeFileSync } from "node:fs";
import {
  ImageError, ImageWriter, RecordType, RECORD_FLAG_MUST_UNDERSTAND, decodeSharedPages, decodeTree, encodeSharedPages, encodeTree, formatTree, openImage,
  verifyImage, type TreeRecord,
} from "../../src/format/index.js";
import { arbProcess, arbThread, u32 } from "../support/arbitraries.js";
import { makeTempDir, removeTempDirs } from "../native/helpers.js";

afterAll(removeTempDirs);
const where = { recordType: "TREE" };

/** A random tree: entry i's parent is one of the entries before it. */
const arbTree: fc.Arbitrary<TreeRecord> = fc.array(
  fc.record({ parent: fc.nat(), zombie: fc.boolean(), status: fc.integer({ min: 0, max: 0xffff }), threads: fc.integer({ min: 1, max: 3 }), pgidPick: fc.nat(), sidPick: fc.nat(), shares: fc.subarray(["files", "fs", "sighand"] as const) }),
  { minLength: 1, maxLength: 12 },
).map((list) => {
  const pids = list.map((_, i) => 1000 + i * 7);
  return {
    rootPid: pids[0],
    processes: list.map((e, i) => ({
      pid: pids[i], ppid: i === 0 ? 1 : pids[e.parent % i], pgid: pids[e.pgidPick % (i + 1)], sid: pids[e.sidPick % (i + 1)],
      zombie: i > 0 && e.zombie, exitStatus: i > 0 && e.zombie ? e.status : 0, threadCount: i > 0 && e.zombie ? 0 : e.threads,
      ...(i > 0 && !e.zombie && e.shares.length ? { shares: [...e.shares] } : {}),
    })),
  };
});

describe("TREE record", () => {
  test("round-trips", () => {
    fc.assert(fc.property(arbTree, (t) => {
      expect(decodeTree(encodeTree(t), 0, where)).toEqual(t);
    }));
  });

  test("hostile payloads throw ImageError, never anything else", () => {
    fc.assert(fc.property(arbTree, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(), (t, flips, cut) => {
      const b = encodeTree(t);
      for (const [at, v] of flips) b[at % b.length] = v;
      const bytes = cut % 3 === 0 ? b.subarray(0, cut % (b.length + 1)) : b;
      try {
        decodeTree(bytes, 100, where);
      } catch (err) {
        expect(err).toBeInstanceOf(ImageError);
        expect((err as ImageError).offset).toBeGreaterThanOrEqual(100);
      }
    }));
  });

  test("refuses a child listed before its parent, duplicate pids, a zombie root", () => {
    const ok: TreeRecord = { rootPid: 10, processes: [
      { pid: 10, ppid: 1, pgid: 10, sid: 10, zombie: false, exitStatus: 0, threadCount: 1 },
      { pid: 11, ppid: 10, pgid: 10, sid: 10, zombie: true, exitStatus: 3 << 8, threadCount: 0 },
    ] };
    expect(decodeTree(encodeTree(ok), 0, where)).toEqual(ok);
    const orphan = structuredClone(ok);
    orphan.processes[1].ppid = 99;
    expect(() => decodeTree(encodeTree(orphan), 0, where)).toThrow(/parent 99 is not listed before it/);
    const dup = structuredClone(ok);
    dup.processes[1].pid = 10;
    expect(() => decodeTree(encodeTree(dup), 0, where)).toThrow(/listed twice/);
    const zroot = structuredClone(ok);
    zroot.processes[0].zombie = true;
    expect(() => decodeTree(encodeTree(zroot), 0, where)).toThrow(ImageError);
  });

  test("sharing flags (SHARES_FILES/FS/SIGHAND) are read on children, ignored on the root and on zombies", () => {
    const t: TreeRecord = { rootPid: 10, processes: [
      { pid: 10, ppid: 1, pgid: 10, sid: 10, zombie: false, exitStatus: 0, threadCount: 1 },
      { pid: 11, ppid: 10, pgid: 10, sid: 10, zombie: false, exitStatus: 0, threadCount: 1, shares: ["files", "sighand"] },
      { pid: 12, ppid: 10, pgid: 10, sid: 10, zombie: true, exitStatus: 0, threadCount: 0 },
    ] };
    const b = encodeTree(t);
    const flagsAt = (i: number) => 16 + i * 32 + 16;
    const dv = new DataView(b.buffer, b.byteOffset);
    expect(dv.getUint32(flagsAt(1), true)).toBe(0b1010);
    dv.setUint32(flagsAt(0), 0b1110, true);                 // on the root
    dv.setUint32(flagsAt(2), 0b1111 | 0x100, true);         // on a zombie, and an unknown bit
    expect(decodeTree(b, 0, where)).toEqual(t);
    expect(formatTree(t, () => "p")[1]).toBe("├─p(11) [shares files,sighand]");
  });

  test("is drawn like pstree -p", () => {
    const t: TreeRecord = { rootPid: 1, processes: [
      { pid: 1, ppid: 0, pgid: 1, sid: 1, zombie: false, exitStatus: 0, threadCount: 1 },
      { pid: 2, ppid: 1, pgid: 1, sid: 1, zombie: false, exitStatus: 0, threadCount: 1 },
      { pid: 4, ppid: 2, pgid: 1, sid: 1, zombie: false, exitStatus: 0, threadCount: 1 },
      { pid: 3, ppid: 1, pgid: 1, sid: 1, zombie: true, exitStatus: 0, threadCount: 0 },
    ] };
    expect(formatTree(t, (p) => `p${p.pid}`)).toEqual(["p1(1)", "├─p2(2)", "│ └─p4(4)", "└─p3(3) <defunct>"]);
  });
});

const PAGE = 4096;

/** One tree image: every live process gets PROCESS, its threads and one area whose first page holds its pid. */
async function writeTreeImage(path: string, t: TreeRecord, procs: fc.RecordValue<typeof arbProcess>[], threads: fc.RecordValue<typeof arbThread>[]): Promise<void> {
  const w = await ImageWriter.create(path, { durable: false });
  await w.addTree(t);
  for (const [i, p] of t.processes.entries()) {
    if (p.zombie) continue;
    w.beginProcess(p.pid);
    await w.addProcess({ ...procs[i % procs.length], pid: p.pid, ppid: p.ppid, pgid: p.pgid, sid: p.sid, threadCount: p.threadCount });
    for (let k = 0; k < p.threadCount; k++) await w.addThread({ ...threads[(i + k) % threads.length], tid: k === 0 ? p.pid : p.pid * 100 + k });
    const area = { id: 1, start: 0x10000n, end: 0x12000n, fileOffset: 0n, devMajor: 0, devMinor: 0, inode: 0n, prot: 3, flags: 0, kind: "anon" as const, fileId: undefined, path: "", vmflags: "rd wr" };
    await w.addArea(area);
    const mem = new Uint8Array(2 * PAGE);
    new DataView(mem.buffer).setUint32(0, p.pid, true);
    new DataView(mem.buffer).setUint32(PAGE + 8, p.pid ^ 0xffff, true);
    await w.addAreaMemory(area, mem);
  }
  await w.finish();
}

describe("tree images", () => {
  test("round-trip: every live process is its own view; readMemory by pid; zombies have none", async () => {
    const dir = makeTempDir();
    let n = 0;
    await fc.assert(fc.asyncProperty(arbTree, fc.array(arbProcess, { minLength: 1, maxLength: 3 }), fc.array(arbThread, { minLength: 1, maxLength: 3 }), async (t, procs, threads) => {
      const path = join(dir, `t${n++}.img`);
      await writeTreeImage(path, t, procs, threads);
      const img = await openImage(path);
      const live = t.processes.filter((p) => !p.zombie);
      try {
        expect(img.tree).toEqual(t);
        expect(img.processes.map((p) => p.process.pid)).toEqual(live.map((p) => p.pid));
        expect(img.process.pid).toBe(t.rootPid);
        for (const p of live) {
          const v = img.processImage(p.pid);
          expect(v.threads.map((x) => x.tid)[0]).toBe(p.pid);
          expect(v.threads).toHaveLength(p.threadCount);
          expect(v.treeEntry).toEqual(p);
          const m = await img.readMemory(p.pid, 0x10000n, 4);
          expect(new DataView(m.buffer).getUint32(0, true)).toBe(p.pid);
          const m2 = await img.readMemory(p.pid, 0x11008n, 4);
          expect(new DataView(m2.buffer).getUint32(0, true)).toBe(p.pid ^ 0xffff);
        }
        for (const z of t.processes.filter((p) => p.zombie)) {
          await expect(img.readMemory(z.pid, 0x10000n, 4)).rejects.toMatchObject({ code: "NO_SUCH_PROCESS" });
        }
        await expect(img.readMemory(424242, 0x10000n, 4)).rejects.toMatchObject({ code: "NO_SUCH_PROCESS" });
        // the TREE record is MUST_UNDERSTAND: a 1.1 reader refuses the image instead of misreading it
        const te = img.entries.find((e) => e.type === RecordType.TREE)!;
        expect(te.flags & RECORD_FLAG_MUST_UNDERSTAND).toBe(RECORD_FLAG_MUST_UNDERSTAND);
        expect(img.allChunks).toHaveLength(live.length);
      } finally {
        await img.close();
      }
      const report = await verifyImage(path, { threads: 1 });
      expect(report.problems).toEqual([]);
      expect(report.chunks).toBe(live.length);
    }), { numRuns: 25 });
  });

  test("a single-process image is a tree of one", async () => {
    const dir = makeTempDir();
    const path = join(dir, "one.img");
    const [p] = fc.sample(arbProcess, 1);
    const [th] = fc.sample(arbThread, 1);
    const w = await ImageWriter.create(path, { durable: false });
    await w.addProcess({ ...p, pid: 77, threadCount: 1 });
    await w.addThread({ ...th, tid: 77 });
    await w.finish();
    const img = await openImage(path);
    expect(img.tree).toBeUndefined();
    expect(img.processes).toEqual([img]);
    expect(img.processImage(77)).toBe(img);
    expect(img.treeEntry).toMatchObject({ pid: 77, zombie: false, threadCount: 1 });
    await img.close();
  });

  const base: TreeRecord = { rootPid: 500, processes: [
    { pid: 500, ppid: 1, pgid: 500, sid: 500, zombie: false, exitStatus: 0, threadCount: 1 },
    { pid: 501, ppid: 500, pgid: 500, sid: 500, zombie: false, exitStatus: 0, threadCount: 1 },
  ] };

  test("records owned by a process the TREE does not list are refused", async () => {
    const dir = makeTempDir();
    const path = join(dir, "bad.img");
    const [p] = fc.sample(arbProcess, 1);
    const [th] = fc.sample(arbThread, 1);
    const w = await ImageWriter.create(path, { durable: false });
    await w.addTree({ rootPid: 500, processes: [base.processes[0]] });
    w.beginProcess(500);
    await w.addProcess({ ...p, pid: 500, threadCount: 1 });
    await w.addThread({ ...th, tid: 500 });
    w.beginProcess(501);
    await w.addProcess({ ...p, pid: 501, threadCount: 1 });
    await w.finish();
    await expect(openImage(path)).rejects.toThrow(/owned by process 501, which the TREE does not list/);
    const report = await verifyImage(path, { threads: 1 });
    expect(report.ok).toBe(false);
  });

  test("a live process without records, or with the wrong PROCESS, is refused", async () => {
    const dir = makeTempDir();
    const [p] = fc.sample(arbProcess, 1);
    const [th] = fc.sample(arbThread, 1);
    const missing = join(dir, "missing.img");
    let w = await ImageWriter.create(missing, { durable: false });
    await w.addTree(base);
    w.beginProcess(500);
    await w.addProcess({ ...p, pid: 500, threadCount: 1 });
    await w.addThread({ ...th, tid: 500 });
    await w.finish();
    await expect(openImage(missing)).rejects.toMatchObject({ code: "MISSING_RECORD" });
    const wrong = join(dir, "wrong.img");
    w = await ImageWriter.create(wrong, { durable: false });
    await w.addTree(base);
    for (const pid of [500, 501]) {
      w.beginProcess(pid);
      await w.addProcess({ ...p, pid: pid === 501 ? 777 : pid, threadCount: 1 });
      await w.addThread({ ...th, tid: pid });
    }
    await w.finish();
    await expect(openImage(wrong)).rejects.toThrow(/PROCESS record of pid 777 among the records of process 501/);
  });

  test("an owner pid in the record header that disagrees with the index is refused", async () => {
    const dir = makeTempDir();
    const path = join(dir, "t.img");
    const [p] = fc.sample(arbProcess, 1);
    const [th] = fc.sample(arbThread, 1);
    await writeTreeImage(path, base, [p], [th]);
    const img = await openImage(path);
    const thread = img.entries.find((e) => e.type === RecordType.THREAD && e.ownerPid === 501)!;
    await img.close();
    // rewrite owner_pid in that record header (and its header CRC) only
    const bytes = readFileSync(path);
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    dv.setUint32(thread.offset + 24, 500, true);
    const { crc32 } = await import("../../src/format/index.js");
    dv.setUint32(thread.offset + 28, crc32(bytes.subarray(thread.offset, thread.offset + 28)), true);
    writeFileSync(path, bytes);
    await expect(openImage(path)).rejects.toMatchObject({ code: "BAD_INDEX", recordType: "THREAD" });
  });

  test("an image without TREE whose records name an owner is refused", async () => {
    const dir = makeTempDir();
    const path = join(dir, "t.img");
    const [p] = fc.sample(arbProcess, 1);
    const [th] = fc.sample(arbThread, 1);
    await writeTreeImage(path, { rootPid: 500, processes: [base.processes[0]] }, [p], [th]);
    const img = await openImage(path);
    const tree = img.entries.find((e) => e.type === RecordType.TREE)!;
    await img.close();
    // turn the TREE record's type into an unknown, skippable one (no MUST_UNDERSTAND)
    const bytes = readFileSync(path);
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    const { crc32 } = await import("../../src/format/index.js");
    dv.setUint16(tree.offset + 4, 0x8001, true);
    dv.setUint16(tree.offset + 6, 0, true);
    dv.setUint32(tree.offset + 28, crc32(bytes.subarray(tree.offset, tree.offset + 28)), true);
    // and its index entry (index follows the records; find it by the trailer)
    const indexAt = Number(dv.getBigUint64(bytes.length - 24, true));
    const payloadAt = indexAt + 32;
    const entrySize = dv.getUint32(payloadAt + 4, true);
    const e0 = payloadAt + 16 + tree.sequence * entrySize;
    dv.setUint16(e0, 0x8001, true);
    dv.setUint16(e0 + 2, 0, true);
    const payloadLen = Number(dv.getBigUint64(indexAt + 8, true));
    dv.setUint32(indexAt + 16, crc32(bytes.subarray(payloadAt, payloadAt + payloadLen)), true);
    dv.setUint32(indexAt + 28, crc32(bytes.subarray(indexAt, indexAt + 28)), true);
    writeFileSync(path, bytes);
    await expect(openImage(path)).rejects.toThrow(/owned by process 500 in an image without a TREE record/);
  });
});

describe("SHARED_PAGES", () => {
  const arbShared = fc.array(fc.record({ gap: fc.integer({ min: 0, max: 1000 }), pages: fc.integer({ min: 1, max: 5000 }), areaId: u32 }), { maxLength: 30 })
    .map((list) => {
      let at = 0x10000n;
      const runs = list.map((r) => {
        const start = at + BigInt(r.gap) * 4096n;
        at = start + BigInt(r.pages) * 4096n;
        return { start, pages: r.pages, areaId: r.areaId };
      });
      return { parentPid: 42, runs };
    });
  test("round-trips and refuses runs out of order", () => {
    fc.assert(fc.property(arbShared, (s) => {
      expect(decodeSharedPages(encodeSharedPages(s), 0, where)).toEqual(s);
    }));
    const bad = encodeSharedPages({ parentPid: 1, runs: [{ start: 0x20000n, pages: 2, areaId: 1 }, { start: 0x20000n, pages: 1, areaId: 1 }] });
    expect(() => decodeSharedPages(bad, 0, where)).toThrow(/out of order/);
    fc.assert(fc.property(arbShared, fc.nat(), (s, cut) => {
      const b = encodeSharedPages(s);
      try {
        decodeSharedPages(b.subarray(0, cut % (b.length + 1)), 0, where);
      } catch (err) {
        expect(err).toBeInstanceOf(ImageError);
      }
    }));
  });

  test("a child's shared page reads as its parent's", async () => {
    const dir = makeTempDir();
    const path = join(dir, "cow.img");
    const [p] = fc.sample(arbProcess, 1);
    const [th] = fc.sample(arbThread, 1);
    const t: TreeRecord = { rootPid: 10, processes: [
      { pid: 10, ppid: 1, pgid: 10, sid: 10, zombie: false, exitStatus: 0, threadCount: 1 },
      { pid: 11, ppid: 10, pgid: 10, sid: 10, zombie: false, exitStatus: 0, threadCount: 1 },
    ] };
    const area = { id: 1, start: 0x10000n, end: 0x14000n, fileOffset: 0n, devMajor: 0, devMinor: 0, inode: 0n, prot: 3, flags: 0, kind: "anon" as const, fileId: undefined, path: "", vmflags: "" };
    const parentMem = new Uint8Array(4 * 4096).map((_, i) => (i * 7) & 0xff);
    const w = await ImageWriter.create(path, { durable: false });
    await w.addTree(t);
    for (const pid of [10, 11]) {
      w.beginProcess(pid);
      await w.addProcess({ ...p, pid, ppid: pid === 10 ? 1 : 10, threadCount: 1 });
      await w.addThread({ ...th, tid: pid });
      await w.addArea(area);
      if (pid === 10) await w.addAreaMemory(area, parentMem);
      else {
        // the child wrote page 2; pages 0-1 are still the parent's; page 3 is its own zero
        const mine = new Uint8Array(4 * 4096);
        mine.fill(0xee, 2 * 4096, 3 * 4096);
        await w.addAreaMemory(area, mine);
        await w.addSharedPages({ parentPid: 10, runs: [{ start: 0x10000n, pages: 2, areaId: 1 }] });
      }
    }
    await w.finish();
    const img = await openImage(path);
    try {
      expect(await img.readMemory(11, 0x10000n, 2 * 4096)).toEqual(parentMem.subarray(0, 2 * 4096));
      expect((await img.readMemory(11, 0x12000n, 4096)).every((b) => b === 0xee)).toBe(true);
      expect((await img.readMemory(11, 0x13000n, 4096)).every((b) => b === 0)).toBe(true);
      expect(await img.processImage(11).pageSource(0x10000n)).toBe("image");
    } finally {
      await img.close();
    }
  });
});

