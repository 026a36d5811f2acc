/**
 * The codec table: ids and names as docs/FORMAT.md §4.8 fixes them, compressChunk's fallback
 * to NONE, decompressChunk's size and codec checks, and every codec on the same data.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { CodecError } from "../../src/format/codec-error.js";
import { CODEC, CODEC_NAMES, codecIdFromName, compressChunk, decompressChunk, type CodecId } from "../../src/format/codecs.js";
import { structured, anyData, expectSameBytes, noise, realBinary, mutation, mutate, caught } from "../support/codec-data.js";

const ALL: CodecId[] = [CODEC.NONE, CODEC.LZ4, CODEC.LZF, CODEC.DEFLATE];

describe("codec ids and names", () => {
  test("ids are the PAGES record's codec byte", () => {
    expect(CODEC).toEqual({ NONE: 0, LZ4: 1, LZF: 2, DEFLATE: 3 });
    expect(CODEC_NAMES).toEqual(["none", "lz4", "lzf", "deflate"]);
  });

  test("names map to ids, with gzip and zlib for deflate", () => {
    CODEC_NAMES.forEach((name, id) => expect(codecIdFromName(name)).toBe(id));
    expect(codecIdFromName("gzip")).toBe(CODEC.DEFLATE);
    expect(codecIdFromName("zlib")).toBe(CODEC.DEFLATE);
    expect(codecIdFromName("LZ4")).toBe(CODEC.LZ4);
    expect(codecIdFromName("lz4hc")).toBeUndefined();
    expect(codecIdFromName("")).toBeUndefined();
  });
});

describe("compressChunk / decompressChunk", () => {
  test("every codec round-trips arbitrary and structured data", () => {
    fc.assert(
      fc.property(anyData, fc.constantFrom(...ALL), (raw, codec) => {
        const packed = compressChunk(codec, raw);
        expect([codec, CODEC.NONE]).toContain(packed.codec);
        if (packed.codec !== CODEC.NONE) expect(packed.data.length).toBeLessThan(raw.length);
        expectSameBytes(decompressChunk(packed.codec, packed.data, raw.length), raw);
      }),
      { numRuns: 400 },
    );
  });

  test("what does not shrink is stored as NONE", () => {
    for (const codec of ALL) {
      for (const raw of [new Uint8Array(0), Uint8Array.of(1), noise(4096, codec + 1)]) {
        const packed = compressChunk(codec, raw);
        expect(packed.codec).toBe(CODEC.NONE);
        expect(packed.data).toBe(raw);
      }
    }
  });

  test("a page of zeros shrinks with every codec", () => {
    for (const codec of [CODEC.LZ4, CODEC.LZF, CODEC.DEFLATE] as const) {
      const packed = compressChunk(codec, new Uint8Array(4096));
      expect(packed.codec).toBe(codec);
      expect(packed.data.length).toBeLessThan(100);
    }
  });

  test("a real binary's first megabyte: every codec shrinks it by a tenth at least", () => {
    const raw = realBinary(1 << 20);
    for (const codec of [CODEC.LZ4, CODEC.LZF, CODEC.DEFLATE] as const) {
      const packed = compressChunk(codec, raw);
      expect(packed.codec).toBe(codec);
      expect(raw.length / packed.data.length).toBeGreaterThan(1.1);
      expectSameBytes(decompressChunk(codec, packed.data, raw.length), raw);
    }
  });

  test("NONE must hold exactly the raw size", () => {
    const data = Uint8Array.of(1, 2, 3);
    expect(decompressChunk(CODEC.NONE, data, 3)).toBe(data);
    expect(caught(() => decompressChunk(CODEC.NONE, data, 4))).toBeInstanceOf(CodecError);
    expect(caught(() => decompressChunk(CODEC.NONE, data, 2))).toBeInstanceOf(CodecError);
  });

  test.each([4, 5, 127, 255, -1, 1.5, Number.NaN])("codec %s is unknown: CodecError", (codec) => {
    const error = caught(() => decompressChunk(codec, Uint8Array.of(0), 0));
    expect(error).toBeInstanceOf(CodecError);
    expect((error as CodecError).detail).toMatch(/unknown codec/);
    expect(caught(() => compressChunk(codec as CodecId, Uint8Array.of(0)))).toBeInstanceOf(CodecError);
  });

  test("hostile chunks: exactly rawSize or a CodecError, for every codec byte", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 1000 }), fc.nat({ max: 1 << 16 })),
          fc.tuple(fc.constantFrom(...ALL), structured, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([codec, raw, ops]) => {
            const packed = compressChunk(codec, raw);
            return [packed.codec, mutate(packed.data, ops), raw.length] as [number, Uint8Array, number];
          }),
        ),
        ([codec, data, rawSize]) => {
          try {
            expect(decompressChunk(codec, data, rawSize).length).toBe(rawSize);
          } catch (error) {
            if (!(error instanceof CodecError)) throw error;
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
