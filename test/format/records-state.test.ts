/**
 * Format 1.1 state records (TIMERS, PROCESS_STATE, SECCOMP, THREAD_STATE): round trips,
 * forward compatibility, and hostile payloads — any bytes give a record or an ImageError,
 * never another exception, and counts are checked before anything is allocated. Then a whole
 * image with the records, written and opened again, and a 1.0-style reader's view.
 */
import { afterAll, describe, expect, test } from "vitest";
import fc from "fast-check";
import { join } from "node:path";
import { readFileSync, writeFileSync } from "node:fs";
import {
  ImageError, ImageWriter, NO_FILTER, VERSION_MINOR, decodeProcessState, decodeSeccomp, decodeSigqueue, decodeThreadState, decodeTimers,
  encodeProcessState, encodeSeccomp, encodeSigqueue, encodeThreadState, encodeTimers, makeSiginfo, openImage, RecordType,
  type PendingSignal, type PosixTimer, type SeccompFilter, type ThreadStateRecord, type TimersRecord,
} from "../../src/format/index.js";
import { diffImages } from "../../src/analysis/index.js";
import { arbProcess, arbThread, u32, u64 } from "../support/arbitraries.js";
import { makeTempDir, removeTempDirs } from "../native/helpers.js";

const where = { recordType: "TEST" };
const i32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const ns = fc.bigInt({ min: 0n, max: (1n << 62n) });
const itimer = fc.record({ intervalNs: ns, valueNs: ns });
const arbPosixTimer: fc.Arbitrary<PosixTimer> = fc.record({
  id: u32, clockId: i32, notify: fc.constantFrom(0, 1, 4), signo: fc.integer({ min: 1, max: 64 }), notifyTid: u32,
  overrun: u32, sival: u64, intervalNs: ns, valueNs: ns,
});
const arbTimers: fc.Arbitrary<TimersRecord> = fc.record({
  real: itimer, virtual: itimer, prof: itimer,
  posix: fc.uniqueArray(arbPosixTimer, { selector: (t) => t.id, maxLength: 12 }),
});
const arbProcessState = fc.record({
  valid: fc.integer({ min: 0, max: 15 }), oomScoreAdj: fc.integer({ min: -1000, max: 1000 }), dumpable: fc.integer({ min: 0, max: 2 }),
  childSubreaper: fc.boolean(), thpDisable: fc.boolean(), groups: fc.array(u32, { maxLength: 40 }),
  membarrier: fc.constantFrom(0, 1 << 4, (1 << 2) | (1 << 4) | (1 << 8)),
});
const arbFilters: fc.Arbitrary<SeccompFilter[]> = fc.array(
  fc.record({ parentPick: fc.nat(), hasParent: fc.boolean(), flags: u32, insns: fc.integer({ min: 1, max: 64 }).chain((n) => fc.uint8Array({ minLength: n * 8, maxLength: n * 8 })) }),
  { maxLength: 8 },
).map((list) => list.map((f, i) => ({ parent: f.hasParent && i > 0 ? f.parentPick % i : undefined, flags: f.flags, insns: f.insns })));
const arbThreadState: fc.Arbitrary<ThreadStateRecord> = fc.record({
  tid: u32, valid: fc.integer({ min: 0, max: 31 }), flags: fc.integer({ min: 0, max: 1 }),
  rseq: fc.record({ addr: u64, len: u32, sig: u32 }),
  sched: fc.record({ policy: u32, priority: u32, nice: fc.integer({ min: -20, max: 19 }), dlRuntime: u64, dlDeadline: u64, dlPeriod: u64 }),
  pdeathsig: u32, timerSlackNs: u64,
  caps: fc.record({ inheritable: u64, permitted: u64, effective: u64, bounding: u64, ambient: u64 }),
  securebits: u32, seccompMode: fc.integer({ min: 0, max: 2 }),
  seccompFilter: fc.option(fc.integer({ min: 0, max: 0xfffffffe }), { nil: undefined }),
});

/** A pending signal from arbitrary siginfo bytes (si_signo made valid), its fields read the way the spec places them. */
const arbPendingSignal: fc.Arbitrary<PendingSignal> = fc.record({
  tid: u32, signo: fc.integer({ min: 1, max: 64 }).filter((n) => n !== 9 && n !== 19), rest: fc.uint8Array({ minLength: 128, maxLength: 128 }),
}).map(({ tid, signo, rest }) => {
  const siginfo = rest.slice();
  const v = new DataView(siginfo.buffer);
  v.setInt32(0, signo, true);
  return { tid, signo, errno: v.getInt32(4, true), code: v.getInt32(8, true), pid: v.getInt32(16, true), uid: v.getUint32(20, true), value: v.getBigUint64(24, true), siginfo };
});
const arbSigqueue = fc.array(arbPendingSignal, { maxLength: 10 });

const codecs = [
  { name: "SIGQUEUE", arb: arbSigqueue, enc: encodeSigqueue, dec: decodeSigqueue },
  { name: "TIMERS", arb: arbTimers, enc: encodeTimers, dec: decodeTimers },
  { name: "PROCESS_STATE", arb: arbProcessState, enc: encodeProcessState, dec: decodeProcessState },
  { name: "SECCOMP", arb: arbFilters, enc: encodeSeccomp, dec: decodeSeccomp },
  { name: "THREAD_STATE", arb: arbThreadState, enc: encodeThreadState, dec: decodeThreadState },
] as const;

afterAll(() => removeTempDirs());

describe("state record round trips", () => {
  for (const c of codecs) {
    test(c.name, () => {
      fc.assert(fc.property(c.arb as fc.Arbitrary<never>, (v) => {
        expect((c.dec as (p: Uint8Array, b: number, w: typeof where) => unknown)((c.enc as (x: never) => Uint8Array)(v), 0, where)).toEqual(v);
      }));
    });
  }
});

describe("state records are hostile input", () => {
  for (const c of codecs) {
    const dec = c.dec as (p: Uint8Array, b: number, w: typeof where) => unknown;
    const enc = c.enc as (x: never) => Uint8Array;
    test(`${c.name}: random bytes decode or throw ImageError`, () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        try {
          dec(b, 0, where);
        } catch (e) {
          expect(e).toBeInstanceOf(ImageError);
        }
      }), { numRuns: 2000 });
    });
    test(`${c.name}: valid records with bytes flipped or cut decode or throw ImageError`, () => {
      fc.assert(fc.property(c.arb as fc.Arbitrary<never>, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.nat(), (v, at, x, cut) => {
        const b = enc(v);
        b[at % b.length] ^= x;
        for (const p of [b, b.subarray(0, cut % (b.length + 1))]) {
          try {
            dec(p, 0, where);
          } catch (e) {
            expect(e).toBeInstanceOf(ImageError);
          }
        }
      }), { numRuns: 1000 });
    });
  }
  test("a huge count is refused before anything is allocated", () => {
    const t = encodeTimers({ real: { intervalNs: 0n, valueNs: 0n }, virtual: { intervalNs: 0n, valueNs: 0n }, prof: { intervalNs: 0n, valueNs: 0n }, posix: [] });
    new DataView(t.buffer).setUint32(4, 0xffffffff, true);
    expect(() => decodeTimers(t, 500, where)).toThrow(/count 4294967295 exceeds the payload/);
    const s = encodeSeccomp([]);
    new DataView(s.buffer).setUint32(4, 0x10000000, true);
    expect(() => decodeSeccomp(s, 0, where)).toThrow(ImageError);
  });
  test("a seccomp filter whose parent is not an earlier filter (a cycle) is refused", () => {
    const s = encodeSeccomp([{ parent: undefined, flags: 0, insns: new Uint8Array(8) }, { parent: 0, flags: 0, insns: new Uint8Array(8) }]);
    new DataView(s.buffer).setUint32(8, 1, true); // filter 0's parent := 1
    expect(() => decodeSeccomp(s, 0, where)).toThrow(/parent 1 is not an earlier filter/);
  });
  test("fields appended by a later minor version are skipped", () => {
    fc.assert(fc.property(arbThreadState, fc.uint8Array({ maxLength: 40 }), (t, extra) => {
      const e = encodeThreadState(t);
      const grown = new Uint8Array(e.length + extra.length);
      grown.set(e);
      grown.set(extra, e.length);
      new DataView(grown.buffer).setUint32(0, grown.length, true);
      expect(decodeThreadState(grown, 0, where)).toEqual(t);
    }));
  });
});

describe("SIGQUEUE", () => {
  test("signal numbers outside 1..64, SIGKILL and SIGSTOP are refused; a huge count before allocating", () => {
    for (const bad of [0, 9, 19, 65, -1]) {
      const p = encodeSigqueue([{ tid: 0, siginfo: makeSiginfo(10, 0) }]);
      new DataView(p.buffer).setInt32(16 + 8, bad, true);
      expect(() => decodeSigqueue(p, 0, where)).toThrow(new RegExp(`signal ${bad}`));
    }
    const p = encodeSigqueue([]);
    new DataView(p.buffer).setUint32(4, 0xffffffff, true);
    expect(() => decodeSigqueue(p, 0, where)).toThrow(/count 4294967295 exceeds the payload/);
  });
  async function write(path: string, queue: { tid: number; siginfo: Uint8Array }[]) {
    const w = await ImageWriter.create(path, { durable: false });
    const proc = fc.sample(arbProcess, { seed: 1, numRuns: 1 })[0];
    await w.addProcess({ ...proc, pid: 100, threadCount: 1 });
    await w.addThread({ ...fc.sample(arbThread, { seed: 2, numRuns: 1 })[0], tid: 100 });
    await w.addSigqueue(queue);
    await w.finish();
  }
  test("an image keeps each queue in order; diff names a changed queue; an entry of no thread is refused", async () => {
    const dir = makeTempDir();
    const a = join(dir, "a.img"), b = join(dir, "b.img"), c = join(dir, "c.img");
    const rt = (n: number) => ({ tid: 0, siginfo: makeSiginfo(34, -1, 100, 0, BigInt(n)) });
    await write(a, [rt(1), rt(2), { tid: 100, siginfo: makeSiginfo(17, 1, 4321, 0, 5n) }]);
    await write(b, [rt(1), { tid: 100, siginfo: makeSiginfo(17, 1, 4321, 0, 5n) }]);
    await write(c, [{ tid: 101, siginfo: makeSiginfo(10, 0) }]);
    const [x, y] = await Promise.all([openImage(a), openImage(b)]);
    try {
      expect(x.pendingSignals.map((s) => [s.tid, s.signo, s.code, s.pid, s.value])).toEqual([[0, 34, -1, 100, 1n], [0, 34, -1, 100, 2n], [100, 17, 1, 4321, 5n]]);
      const d = await diffImages(x, y);
      expect(d.state).toEqual([{ field: "pending signals (process)", a: "34/-1 34/-1", b: "34/-1" }]);
    } finally {
      await Promise.all([x.close(), y.close()]);
    }
    await expect(openImage(c)).rejects.toThrow(/SIGQUEUE entry for tid 101, which names no THREAD/);
  });
});

describe("an image with state records", () => {
  const sample = (tid: number): ThreadStateRecord => ({
    tid, valid: 31, flags: 1, rseq: { addr: 0x7f0000001000n, len: 32, sig: 0x53053053 },
    sched: { policy: 3, priority: 0, nice: 5, dlRuntime: 0n, dlDeadline: 0n, dlPeriod: 0n }, pdeathsig: 12, timerSlackNs: 50000n,
    caps: { inheritable: 0n, permitted: 0x1ffn, effective: 0x1ffn, bounding: 0x1ffffffffffn, ambient: 0n }, securebits: 0,
    seccompMode: 2, seccompFilter: 0,
  });
  async function write(path: string, slack: bigint, timerClock: number) {
    const w = await ImageWriter.create(path, { durable: false });
    const proc = fc.sample(arbProcess, { seed: 1, numRuns: 1 })[0];
    await w.addProcess({ ...proc, pid: 100, threadCount: 1 });
    await w.addThread({ ...fc.sample(arbThread, { seed: 2, numRuns: 1 })[0], tid: 100 });
    await w.addTimers({
      real: { intervalNs: 0n, valueNs: 5_000_000_000n }, virtual: { intervalNs: 0n, valueNs: 0n }, prof: { intervalNs: 0n, valueNs: 0n },
      posix: [{ id: 3, clockId: timerClock, notify: 4, signo: 40, notifyTid: 100, overrun: 0, sival: 0x1234n, intervalNs: 500_000_000n, valueNs: 1n }],
    });
    await w.addProcessState({ valid: 7, oomScoreAdj: 321, dumpable: 1, childSubreaper: true, thpDisable: false, groups: [42, 1234], membarrier: 0 });
    await w.addSeccomp([{ parent: undefined, flags: 0, insns: new Uint8Array(32).fill(6) }]);
    await w.addThreadState({ ...sample(100), timerSlackNs: slack });
    await w.finish();
  }
  test("is read back whole, and diff names what changed", async () => {
    const dir = makeTempDir();
    const a = join(dir, "a.img"), b = join(dir, "b.img");
    await write(a, 50000n, 1);
    await write(b, 77777n, 7);
    const [x, y] = await Promise.all([openImage(a), openImage(b)]);
    try {
      expect(x.header.versionMinor).toBe(VERSION_MINOR);
      expect(x.timers?.posix[0]).toMatchObject({ id: 3, notify: 4, notifyTid: 100, signo: 40 });
      expect(x.processState?.groups).toEqual([42, 1234]);
      expect(x.seccompFilters).toHaveLength(1);
      expect(x.threadStates[0].seccompFilter).toBe(0);
      expect(x.threadStates[0].seccompFilter).not.toBe(NO_FILTER);
      const d = await diffImages(x, y);
      expect(d.same).toBe(false);
      expect(d.state.map((c) => c.field).sort()).toEqual(["thread 100 timer slack", "timer 3"]);
      expect((await diffImages(x, x)).state).toEqual([]);
    } finally {
      await Promise.all([x.close(), y.close()]);
    }
  });
  test("a state record of an unknown later layout is skipped by type, a damaged one is named", async () => {
    const dir = makeTempDir();
    const p = join(dir, "c.img");
    await write(p, 1n, 1);
    const img = await openImage(p);
    const e = img.entries.find((x) => x.type === RecordType.THREAD_STATE)!;
    await img.close();
    const buf = readFileSync(p);
    buf[e.offset + 32 + 100] = 7; // seccomp mode 7: refused by the decoder (payload CRC now wrong too)
    writeFileSync(p, buf);
    await expect(openImage(p)).rejects.toThrow(ImageError);
    const tolerant = await openImage(p, { tolerant: true });
    expect(tolerant.problems.some((pr) => pr.recordType === "THREAD_STATE")).toBe(true);
    await tolerant.close();
  });
});
