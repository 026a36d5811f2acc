/**
 * LZF codec: hand-made vectors in liblzf's format, round trips, lzfjs (the user's library) as
 * oracle both ways and as a differential decoder on arbitrary bytes, and hostile input.
 */
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { CodecError } from "../../src/format/codec-error.js";
import { lzfCompress, lzfCompressInto, lzfDecompress, lzfDecompressInto } from "../../src/format/codec-lzf.js";
import { concat, structured, anyData, expectSameBytes, noise, realBinary, mutation, mutate, decodeHostile as checkHostileDecode, expectDecodeIntoStaysInBounds } from "../support/codec-data.js";

/** lzfjs 1.0.1 (CommonJS, untyped): compress/decompress take and return bytes. */
const lzfjs = createRequire(import.meta.url)("lzfjs") as {
  compress(data: Uint8Array): Uint8Array;
  decompress(data: Uint8Array): Uint8Array;
};

function decodeHostile(data: Uint8Array, rawSize: number): Uint8Array | CodecError {
  return checkHostileDecode(lzfDecompress, data, rawSize);
}

/** Our compressor with room for any output, so that it never declines. */
function compressAlways(raw: Uint8Array): Uint8Array {
  const dst = new Uint8Array(raw.length + Math.ceil(raw.length / 32) + 1);
  const length = lzfCompressInto(raw, dst);
  expect(length > 0 || raw.length === 0).toBe(true);
  return dst.slice(0, length);
}

/** lzfjs's output, or undefined when it throws on the input. */
function lzfjsDecompress(data: Uint8Array): Uint8Array | undefined {
  try {
    return new Uint8Array(lzfjs.decompress(data));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------

const text = (s: string) => new TextEncoder().encode(s);
const bytes = (...parts: (number | string)[]) => concat(parts.map((p) => (typeof p === "number" ? Uint8Array.of(p) : text(p))));

describe("LZF: hand-made vectors", () => {
  test("a literal run", () => {
    expectSameBytes(lzfDecompress(bytes(0x02, "abc"), 3), text("abc"));
    expectSameBytes(lzfDecompress(new Uint8Array(0), 0), new Uint8Array(0));
  });

  test("a back-reference overlapping its output", () => {
    // "abc", then (4 + 2) bytes from 3 back.
    expectSameBytes(lzfDecompress(bytes(0x02, "abc", 0x80, 0x02), 9), text("abcabcabc"));
    expectSameBytes(compressAlways(text("abcabcabc")), bytes(0x02, "abc", 0x80, 0x02));
    expectSameBytes(lzfCompress(text("abcabcabc")), bytes(0x02, "abc", 0x80, 0x02));
  });

  test("an extended length: 7 in the control byte plus the next byte", () => {
    // 'a', then 7 + 91 + 2 = 100 bytes from 1 back.
    expectSameBytes(lzfDecompress(bytes(0x00, "a", 0xe0, 91, 0x00), 101), new Uint8Array(101).fill(0x61));
  });

  test("the longest distance, 8192", () => {
    const head = noise(8192, 4);
    const out = lzfDecompress(concat([...chunks(head, 32).flatMap((c) => [Uint8Array.of(c.length - 1), c]), Uint8Array.of(0x3f, 0xff)]), 8195);
    expectSameBytes(out.subarray(8192), head.subarray(0, 3));
  });

  test("a 32-byte literal run is the longest", () => {
    const raw = noise(33, 8);
    expectSameBytes(compressAlways(raw), concat([Uint8Array.of(31), raw.subarray(0, 32), Uint8Array.of(0), raw.subarray(32)]));
  });

  test("lzfCompress declines what does not shrink, as lzf_compress returns 0", () => {
    expect(lzfCompress(new Uint8Array(0))).toBeUndefined();
    expect(lzfCompress(Uint8Array.of(7))).toBeUndefined();
    expect(lzfCompress(noise(1000, 2))).toBeUndefined();
    expect(lzfCompressInto(noise(1000, 2), new Uint8Array(999))).toBe(0);
    expect(lzfCompress(new Uint8Array(1000))?.length).toBeLessThan(20);
  });

  test.each([
    ["a literal run past the end", bytes(0x05, "a"), 6, /literal run of 6 bytes runs past the end/, 0],
    ["a back-reference offset cut off", bytes(0x00, "a", 0x20), 5, /offset cut off/, 2],
    ["a back-reference length cut off", bytes(0x00, "a", 0xe0), 5, /length cut off/, 2],
    ["a distance before the output start", bytes(0x00, "a", 0x20, 0x01), 5, /distance 2 points before the output start/, 2],
    ["a literal run past the raw size", bytes(0x02, "abc"), 2, /overflows the 2-byte output/, 0],
    ["a back-reference past the raw size", bytes(0x00, "a", 0x20, 0x00), 3, /back-reference of 3 bytes overflows/, 2],
    ["output shorter than the raw size", bytes(0x02, "abc"), 4, /decodes to 3 bytes, expected 4/, 4],
    ["empty input for a non-empty raw size", new Uint8Array(0), 5, /decodes to 0 bytes, expected 5/, 0],
  ])("%s is a CodecError", (_name, data, rawSize, message, inputOffset) => {
    let caught: unknown;
    try {
      lzfDecompress(data, rawSize);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CodecError);
    expect((caught as CodecError).detail).toMatch(message);
    expect((caught as CodecError).inputOffset).toBe(inputOffset);
  });

  test("bad raw sizes are CodecErrors, not RangeErrors", () => {
    expect(() => lzfDecompress(Uint8Array.of(0, 1), -1)).toThrow(CodecError);
    expect(() => lzfDecompress(Uint8Array.of(0, 1), 0.5)).toThrow(CodecError);
  });
});

function chunks(data: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += size) out.push(data.subarray(at, at + size));
  return out;
}

describe("LZF: round trips", () => {
  test("arbitrary and structured data", () => {
    fc.assert(
      fc.property(anyData, (raw) => {
        expectSameBytes(lzfDecompress(compressAlways(raw), raw.length), raw);
        const packed = lzfCompress(raw);
        if (packed !== undefined) {
          expect(packed.length).toBeLessThan(raw.length);
          expectSameBytes(lzfDecompress(packed, raw.length), raw);
        }
      }),
      { numRuns: 300 },
    );
  });

  test("the Into forms: exact-fit output, any larger decode buffer", () => {
    fc.assert(
      fc.property(structured, fc.integer({ min: 0, max: 64 }), (raw, slack) => {
        const packed = compressAlways(raw);
        if (raw.length > 0) {
          expect(lzfCompressInto(raw, new Uint8Array(packed.length))).toBe(packed.length);
          if (packed.length > 0) expect(lzfCompressInto(raw, new Uint8Array(packed.length - 1))).toBe(0);
        }
        const out = new Uint8Array(raw.length + slack);
        expect(lzfDecompressInto(packed, out)).toBe(raw.length);
        expectSameBytes(out.subarray(0, raw.length), raw);
      }),
    );
  });

  test("back-references never reach more than 8192 bytes back", () => {
    const repeated = noise(300, 11);
    const raw = concat([repeated, noise(9000, 12), repeated]);
    expectSameBytes(lzfDecompress(compressAlways(raw), raw.length), raw);
    expect(compressAlways(raw).length).toBeGreaterThan(9300);
  });

  test("a megabyte of a real binary, of zeros and of noise", () => {
    for (const raw of [realBinary(1 << 20), new Uint8Array(1 << 20), noise(1 << 20, 5)]) {
      expectSameBytes(lzfDecompress(compressAlways(raw), raw.length), raw);
    }
  });
});

describe("LZF against lzfjs", () => {
  test("lzfjs decodes what we encode", () => {
    fc.assert(
      fc.property(anyData.filter((d) => d.length > 0), (raw) => {
        expectSameBytes(lzfjsDecompress(compressAlways(raw)), raw);
      }),
      { numRuns: 300 },
    );
  });

  test("we decode what lzfjs encodes", () => {
    fc.assert(
      fc.property(anyData.filter((d) => d.length > 0), (raw) => {
        expectSameBytes(lzfDecompress(new Uint8Array(lzfjs.compress(raw)), raw.length), raw);
      }),
      { numRuns: 300 },
    );
  });

  test("a real binary both ways, with a ratio at least lzfjs's", () => {
    const raw = realBinary(1 << 20);
    const ours = compressAlways(raw);
    expectSameBytes(lzfjsDecompress(ours), raw);
    const theirs = new Uint8Array(lzfjs.compress(raw));
    expectSameBytes(lzfDecompress(theirs, raw.length), raw);
    expect(ours.length).toBeLessThan(theirs.length * 1.02);
  });

  test("on arbitrary bytes we decode exactly what lzfjs decodes, and refuse what it refuses", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 400 }), anyData.filter((d) => d.length > 0).map(compressAlways)), fc.array(mutation, { maxLength: 4 }), (data, ops) => {
        const input = mutate(data, ops);
        if (input.length === 0) return;
        const theirs = lzfjsDecompress(input);
        if (theirs === undefined) {
          expect(decodeHostile(input, 1 << 20)).toBeInstanceOf(CodecError);
        } else {
          expectSameBytes(decodeHostile(input, theirs.length), theirs);
          if (theirs.length > 0) expect(decodeHostile(input, theirs.length - 1)).toBeInstanceOf(CodecError);
          expect(decodeHostile(input, theirs.length + 1)).toBeInstanceOf(CodecError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe("LZF: hostile input", () => {
  test("random bytes decode to exactly rawSize or a CodecError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.integer({ min: 0, max: 1 << 16 }), (data, rawSize) => {
        decodeHostile(data, rawSize);
      }),
      { numRuns: 2000 },
    );
  });

  test("damaged valid streams decode to exactly rawSize or a CodecError", () => {
    fc.assert(
      fc.property(anyData, fc.array(mutation, { minLength: 1, maxLength: 6 }), fc.integer({ min: -16, max: 16 }), (raw, ops, sizeDelta) => {
        decodeHostile(mutate(compressAlways(raw), ops), Math.max(0, raw.length + sizeDelta));
      }),
      { numRuns: 1000 },
    );
  });

  test("the Into form never writes past its buffer", () => {
    fc.assert(
      fc.property(structured, fc.array(mutation, { maxLength: 3 }), fc.nat({ max: 4096 }), (raw, ops, capacity) => {
        expectDecodeIntoStaysInBounds(lzfDecompressInto, mutate(compressAlways(raw), ops), capacity);
      }),
      { numRuns: 500 },
    );
  });
});
