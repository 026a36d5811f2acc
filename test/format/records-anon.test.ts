/**
 * Anon-inode fd records (EVENTFD, TIMERFD, SIGNALFD, EPOLL, INOTIFY; format 1.1): round trips through
 * encodeFdState / FD_STATE_CODECS, and hostile payloads give a record or an ImageError only.
 */
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { FD_STATE_CODECS, ImageError, encodeFdState, type AnonFdState } from "../../src/format/index.js";
import { u32, u64 } from "../support/arbitraries.js";

const where = { recordType: "TEST" };
const ns = fc.bigInt({ min: 0n, max: 1n << 62n });
const fd = fc.integer({ min: 0, max: 1 << 20 });
const arbAnon: fc.Arbitrary<AnonFdState> = fc.oneof(
  fc.record({ type: fc.constant("eventfd" as const), fd, count: fc.bigInt({ min: 0n, max: (1n << 64n) - 2n }), semaphore: fc.boolean(), id: u64 }),
  fc.record({ type: fc.constant("timerfd" as const), fd, clockId: fc.constantFrom(0, 1, 7, 8, 9), settimeFlags: fc.integer({ min: 0, max: 3 }), ticks: u64, valueNs: ns, intervalNs: ns }),
  fc.record({ type: fc.constant("signalfd" as const), fd, sigmask: u64 }),
  fc.record({ type: fc.constant("epoll" as const), fd, watches: fc.array(fc.record({ tfd: u32, events: u32, data: u64, inode: u64, viaFd: u32 }), { maxLength: 20 }) }),
  fc.record({
    type: fc.constant("inotify" as const), fd,
    watches: fc.uniqueArray(fc.integer({ min: 1, max: 1 << 20 }), { maxLength: 12 }).chain((wds) => fc.tuple(...[...wds].sort((a, b) => a - b).map((wd) =>
      fc.record({ wd: fc.constant(wd), mask: u32, ignoredMask: u32, dev: u32, inode: u64, path: fc.string({ minLength: 1, maxLength: 60, unit: "grapheme-ascii" }) })))),
  }),
);

describe("anon-inode fd records", () => {
  test("round trip", () => {
    fc.assert(fc.property(arbAnon, (s) => {
      const e = encodeFdState(s);
      expect(e.key32).toBe(s.fd);
      expect(FD_STATE_CODECS.get(e.type)!.decode(e.payload, 0, where, e.key32, e.key64)).toEqual(s);
    }));
  });
  test("random and damaged payloads decode or throw ImageError", () => {
    const types = [0x50, 0x51, 0x52, 0x53, 0x54];
    fc.assert(fc.property(fc.constantFrom(...types), fc.uint8Array({ maxLength: 200 }), (t, b) => {
      try {
        FD_STATE_CODECS.get(t)!.decode(b, 0, where, 3, 0n);
      } catch (e) {
        expect(e).toBeInstanceOf(ImageError);
      }
    }), { numRuns: 3000 });
    fc.assert(fc.property(arbAnon, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.nat(), (s, at, x, cut) => {
      const e = encodeFdState(s);
      const b = e.payload;
      b[at % b.length] ^= x;
      for (const p of [b, b.subarray(0, cut % (b.length + 1))]) {
        try {
          FD_STATE_CODECS.get(e.type)!.decode(p, 0, where, e.key32, 0n);
        } catch (err) {
          expect(err).toBeInstanceOf(ImageError);
        }
      }
    }), { numRuns: 2000 });
  });
  test("a 1.1 epoll entry (24 bytes, no via_fd) reads as watched through its own number", () => {
    const p = new Uint8Array(16 + 24);
    const v = new DataView(p.buffer);
    v.setUint32(0, 16, true); v.setUint32(4, 1, true); v.setUint32(8, 24, true);
    v.setUint32(16, 9, true); v.setUint32(20, 1, true); v.setBigUint64(24, 0x55n, true); v.setBigUint64(32, 77n, true);
    const s = FD_STATE_CODECS.get(0x0053)!.decode(p, 0, where, 7, 0n);
    expect(s).toEqual({ type: "epoll", fd: 7, watches: [{ tfd: 9, events: 1, data: 0x55n, inode: 77n, viaFd: 9 }] });
  });
  test("an epoll count beyond the payload is refused before reading", () => {
    const e = encodeFdState({ type: "epoll", fd: 7, watches: [] });
    new DataView(e.payload.buffer).setUint32(4, 0x7fffffff, true);
    expect(() => FD_STATE_CODECS.get(e.type)!.decode(e.payload, 100, where, 7, 0n)).toThrow(/EPOLL count 2147483647 exceeds the payload/);
  });
});
