/**
 * DEFLATE codec (raw RFC 1951 through node:zlib): hand-made streams, round trips at every
 * level, fflate as oracle both ways, size bounds, async forms, hostile input.
 */
import { readFileSync } from "node:fs";
import * as zlib from "node:zlib";
import fc from "fast-check";
import { deflateSync as fflateDeflate, inflateSync as fflateInflate } from "fflate";
import { describe, expect, test } from "vitest";
import { CodecError } from "../../src/format/codec-error.js";
import { deflateRawAsync, deflateRawSync, inflateRawAsync, inflateRawSync } from "../../src/format/codec-deflate.js";
import { structured, anyData, expectSameBytes, noise, realBinary, mutation, mutate, decodeHostile as checkHostileDecode, caught } from "../support/codec-data.js";

function decodeHostile(data: Uint8Array, rawSize: number): Uint8Array | CodecError {
  return checkHostileDecode(inflateRawSync, data, rawSize);
}

async function decodeHostileAsync(data: Uint8Array, rawSize: number): Promise<Uint8Array | CodecError> {
  try {
    const out = await inflateRawAsync(data, rawSize);
    expect(out.length).toBe(rawSize);
    return out;
  } catch (error) {
    if (error instanceof CodecError) return error;
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------

describe("DEFLATE: hand-made streams", () => {
  test("a final stored block", () => {
    // BFINAL=1 BTYPE=00, LEN=2, NLEN=~2, "hi".
    expectSameBytes(inflateRawSync(Uint8Array.of(0x01, 0x02, 0x00, 0xfd, 0xff, 0x68, 0x69), 2), new TextEncoder().encode("hi"));
  });

  test("an empty fixed-Huffman block", () => {
    expectSameBytes(inflateRawSync(Uint8Array.of(0x03, 0x00), 0), new Uint8Array(0));
    expectSameBytes(inflateRawSync(deflateRawSync(new Uint8Array(0)), 0), new Uint8Array(0));
  });

  test.each([
    ["a reserved block type", Uint8Array.of(0x07), 4, /invalid/],
    ["a stored block with a bad NLEN", Uint8Array.of(0x01, 0x02, 0x00, 0x00, 0x00, 0x68, 0x69), 2, /invalid/],
    ["a truncated stream", Uint8Array.of(0x01, 0x02, 0x00, 0xfd, 0xff, 0x68), 2, /invalid/],
    ["an empty input", new Uint8Array(0), 0, /invalid/],
    ["output past the raw size", Uint8Array.of(0x01, 0x02, 0x00, 0xfd, 0xff, 0x68, 0x69), 1, /more than 1 bytes/],
    ["output short of the raw size", Uint8Array.of(0x01, 0x02, 0x00, 0xfd, 0xff, 0x68, 0x69), 3, /decodes to 2 bytes, expected 3/],
    ["bytes after the final block", Uint8Array.of(0x01, 0x02, 0x00, 0xfd, 0xff, 0x68, 0x69, 0x00), 2, /1 bytes follow the end/],
  ])("%s is a CodecError", async (_name, data, rawSize, message) => {
    const error = caught(() => inflateRawSync(data, rawSize));
    expect(error).toBeInstanceOf(CodecError);
    expect((error as CodecError).detail).toMatch(message);
    const asyncError = await inflateRawAsync(data, rawSize).then(() => undefined, (e: unknown) => e);
    expect(asyncError).toBeInstanceOf(CodecError);
    expect((asyncError as CodecError).detail).toBe((error as CodecError).detail);
  });

  test("bad levels and raw sizes are CodecErrors", () => {
    expect(caught(() => deflateRawSync(new Uint8Array(1), 10))).toBeInstanceOf(CodecError);
    expect(caught(() => deflateRawSync(new Uint8Array(1), -1))).toBeInstanceOf(CodecError);
    expect(caught(() => inflateRawSync(Uint8Array.of(0x03, 0x00), -1))).toBeInstanceOf(CodecError);
    expect(caught(() => inflateRawSync(Uint8Array.of(0x03, 0x00), 2 ** 60))).toBeInstanceOf(CodecError);
  });

  test("output is raw DEFLATE: no zlib or gzip header", () => {
    const raw = realBinary(10_000);
    expectSameBytes(deflateRawSync(raw, 6), new Uint8Array(zlib.deflateRawSync(raw, { level: 6 })));
    expectSameBytes(new Uint8Array(zlib.inflateRawSync(deflateRawSync(raw))), raw);
  });
});

describe("DEFLATE: round trips", () => {
  test("arbitrary and structured data at every level", () => {
    fc.assert(
      fc.property(anyData, fc.integer({ min: 0, max: 9 }), (raw, level) => {
        expectSameBytes(inflateRawSync(deflateRawSync(raw, level), raw.length), raw);
      }),
      { numRuns: 200 },
    );
  });

  test("async forms agree with the sync ones", async () => {
    await fc.assert(
      fc.asyncProperty(structured, async (raw) => {
        const packed = await deflateRawAsync(raw);
        expectSameBytes(packed, deflateRawSync(raw));
        expectSameBytes(await inflateRawAsync(packed, raw.length), raw);
      }),
      { numRuns: 50 },
    );
  });

  test("a megabyte of a real binary, of zeros and of noise", () => {
    for (const raw of [realBinary(1 << 20), new Uint8Array(1 << 20), noise(1 << 20, 5)]) {
      expectSameBytes(inflateRawSync(deflateRawSync(raw), raw.length), raw);
    }
  });
});

describe("DEFLATE against fflate", () => {
  test("fflate inflates what we deflate", () => {
    fc.assert(
      fc.property(anyData, fc.integer({ min: 0, max: 9 }), (raw, level) => {
        expectSameBytes(fflateInflate(deflateRawSync(raw, level)), raw);
      }),
      { numRuns: 200 },
    );
  });

  test("we inflate what fflate deflates", () => {
    fc.assert(
      fc.property(anyData, fc.integer({ min: 0, max: 9 }), (raw, level) => {
        expectSameBytes(inflateRawSync(fflateDeflate(raw, { level: level as 0 }), raw.length), raw);
      }),
      { numRuns: 200 },
    );
  });

  test("a real binary both ways", () => {
    const raw = realBinary(2 << 20);
    expectSameBytes(fflateInflate(deflateRawSync(raw)), raw);
    expectSameBytes(inflateRawSync(fflateDeflate(raw, { level: 1 }), raw.length), raw);
  });
});

describe("DEFLATE: hostile input", () => {
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
        decodeHostile(mutate(deflateRawSync(raw), ops), Math.max(0, raw.length + sizeDelta));
      }),
      { numRuns: 1000 },
    );
  });

  test("damaged valid streams, async", async () => {
    await fc.assert(
      fc.asyncProperty(structured, fc.array(mutation, { minLength: 1, maxLength: 4 }), async (raw, ops) => {
        await decodeHostileAsync(mutate(deflateRawSync(raw), ops), raw.length);
      }),
      { numRuns: 200 },
    );
  });

  test("a bomb stops at the raw size", () => {
    // 64 MiB of zeros in ~64 KiB; asked for 1 MiB it must stop, not inflate it all.
    const bomb = deflateRawSync(new Uint8Array(64 << 20), 9);
    expect(bomb.length).toBeLessThan(100_000);
    const error = caught(() => inflateRawSync(bomb, 1 << 20));
    expect(error).toBeInstanceOf(CodecError);
    expect((error as CodecError).detail).toMatch(/more than 1048576 bytes/);
  });
});
