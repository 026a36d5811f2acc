/**
 * The codec table: ids and names as docs/FORMAT.md §4.8 fixes them, compressChunk's fallback
 * to NONE, decompressChunk's size and codec checks, and every codec on the same data.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { CodecError } from "../../src/format/codec-error.js";
import { CODEC, CODEC_NAMES, codecIdFromName, compressChunk, decompressChunk, type CodecId } from "../../src/format/codecs.js";

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const segment = fc.oneof(
  fc.integer({ min: 1, max: 4096 }).map((n) => new Uint8Array(n)),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 3000 })).map(([b, n]) => new Uint8Array(n).fill(b)),
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 24 }), fc.integer({ min: 1, max: 200 })).map(([w, n]) => concat(Array(n).fill(w))),
  fc.uint8Array({ maxLength: 1500 }),
);

/** Segments, some followed by a copy of earlier output (matches at every distance). */
const structured = fc
  .array(fc.tuple(segment, fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 600 })), { nil: undefined })), { maxLength: 20 })
  .map((items) => {
    const parts: Uint8Array[] = [];
    for (const [seg, copy] of items) {
      parts.push(seg);
      if (copy) {
        const sofar = concat(parts);
        const from = copy[0] % Math.max(1, sofar.length);
        parts.push(sofar.slice(from, from + copy[1]));
      }
    }
    return concat(parts);
  });

const anyData = fc.oneof(fc.uint8Array({ maxLength: 3000 }), structured);

/** Byte equality through Buffer.compare: vitest's deep equality is slow on megabytes. */
function expectSameBytes(actual: unknown, expected: Uint8Array): void {
  expect(actual).toBeInstanceOf(Uint8Array);
  const a = actual as Uint8Array;
  if (Buffer.compare(a, expected) === 0) return;
  let i = 0;
  while (i < a.length && i < expected.length && a[i] === expected[i]) i++;
  expect.fail(`bytes differ at offset ${i} (lengths ${a.length} and ${expected.length})`);
}

/** A deterministic pseudo-random buffer (xorshift32), for inputs fast-check need not shrink. */
function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

/** The start of a real binary: code, tables and strings, as pages of a process would hold. */
function realBinary(length: number): Uint8Array {
  return new Uint8Array(readFileSync(process.execPath).subarray(0, length));
}

// ---------------------------------------------------------------------------------------------
// Hostile-input helpers.

const mutation = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x0f, 0xf0, 0xff, 0x7f, 0x80) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(data: Uint8Array, ops: Mutation[]): Uint8Array {
  let out = data.slice();
  for (const op of ops) {
    const at = out.length === 0 ? 0 : op.at % out.length;
    if (op.kind === "flip" && out.length > 0) out[at] ^= 1 << op.bit;
    else if (op.kind === "set" && out.length > 0) out[at] = op.value;
    else if (op.kind === "truncate") out = out.slice(0, at);
    else if (op.kind === "insert") out = concat([out.subarray(0, at), op.bytes, out.subarray(at)]);
    else if (op.kind === "delete") out = concat([out.subarray(0, at), out.subarray(at + op.count)]);
  }
  return out;
}

const ALL: CodecId[] = [CODEC.NONE, CODEC.LZ4, CODEC.LZF, CODEC.DEFLATE];

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

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
