/** Round-trip property tests: every record type, encoded then decoded, is what went in. */
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { arbArea, arbFd, arbMappedFile, arbProcess, arbThread, bytes, text, u32, u64 } from "../support/arbitraries.js";
import {
  decodeArea, decodeAuxv, decodeFd, decodeMappedFile, decodeProcess, decodeRlimits, decodeSigactions,
  decodeStringList, decodeThread, encodeArea, encodeAuxv, encodeFd, encodeMappedFile, encodeProcess,
  encodeRlimits, encodeSigactions, encodeStringList, encodeThread, ImageError,
} from "../../src/format/index.js";

const where = { recordType: "TEST" };

describe("record round trips", () => {
  test("PROCESS", () => {
    fc.assert(fc.property(arbProcess, (p) => {
      expect(decodeProcess(encodeProcess(p), 0, where)).toEqual(p);
    }));
  });
  test("ARGV/ENVIRON", () => {
    fc.assert(fc.property(fc.array(text, { maxLength: 30 }), (list) => {
      expect(decodeStringList(encodeStringList(list), 0, where, "ARGV")).toEqual(list);
    }));
  });
  test("AUXV", () => {
    fc.assert(fc.property(fc.array(fc.record({ type: u64, value: u64 }), { maxLength: 40 }), (a) => {
      expect(decodeAuxv(encodeAuxv(a), 0, where)).toEqual(a);
    }));
  });
  test("RLIMITS", () => {
    fc.assert(fc.property(fc.array(fc.record({ resource: u32, cur: u64, max: u64 }), { maxLength: 16 }), (r) => {
      expect(decodeRlimits(encodeRlimits(r), 0, where)).toEqual(r);
    }));
  });
  test("SIGACTIONS", () => {
    const action = fc.record({ signo: u32, handler: u64, flags: u64, restorer: u64, mask: u64 });
    fc.assert(fc.property(fc.record({ sharedPending: u64, actions: fc.array(action, { maxLength: 64 }) }), (s) => {
      expect(decodeSigactions(encodeSigactions(s), 0, where)).toEqual(s);
    }));
  });
  test("THREAD", () => {
    fc.assert(fc.property(arbThread, (t) => {
      expect(decodeThread(encodeThread(t), 0, where)).toEqual(t);
    }));
  });
  test("AREA", () => {
    fc.assert(fc.property(arbArea, (a) => {
      expect(decodeArea(encodeArea(a), 0, where)).toEqual(a);
    }));
  });
  test("MAPPED_FILE", () => {
    fc.assert(fc.property(arbMappedFile, (f) => {
      const got = decodeMappedFile(encodeMappedFile(f), 0, where);
      expect(got).toEqual({ ...f, flags: got.flags });
      expect(got.flags & ~3).toBe(f.flags & ~3);
    }));
  });
  test("FD", () => {
    fc.assert(fc.property(arbFd, (f) => {
      expect(decodeFd(encodeFd(f), 0, where)).toEqual(f);
    }));
  });
});

describe("forward compatibility of payloads", () => {
  test("a larger fixed_size (fields appended by a later minor version) is skipped", () => {
    fc.assert(fc.property(arbFd, bytes(64), (f, extra) => {
      const enc = encodeFd(f);
      const fixed = new DataView(enc.buffer).getUint32(0, true);
      const grown = new Uint8Array(enc.length + extra.length);
      grown.set(enc.subarray(0, fixed));
      grown.set(extra, fixed);
      grown.set(enc.subarray(fixed), fixed + extra.length);
      new DataView(grown.buffer).setUint32(0, fixed + extra.length, true);
      expect(decodeFd(grown, 0, where)).toEqual(f);
    }));
  });
  test("trailing bytes after the known variable fields are ignored", () => {
    fc.assert(fc.property(arbProcess, bytes(32), (p, extra) => {
      const enc = encodeProcess(p);
      const grown = new Uint8Array(enc.length + extra.length);
      grown.set(enc);
      grown.set(extra, enc.length);
      expect(decodeProcess(grown, 0, where)).toEqual(p);
    }));
  });
  test("a fixed_size below the 1.0 size is refused with BAD_FIELD naming the offset", () => {
    const enc = encodeFd({ fd: 1, kind: "tty", openFlags: 2, fdFlags: 0, mode: 0, pos: 0n, devMajor: 0, devMinor: 0, inode: 0n, rdevMajor: 0, rdevMinor: 0, path: "/dev/pts/1" });
    new DataView(enc.buffer).setUint32(0, 40, true);
    expect(() => decodeFd(enc, 1000, where)).toThrow(ImageError);
    try {
      decodeFd(enc, 1000, where);
    } catch (e) {
      expect((e as ImageError).code).toBe("BAD_FIELD");
      expect((e as ImageError).offset).toBe(1000);
    }
  });
});
