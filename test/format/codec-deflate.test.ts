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

/** Decoding hostile input gives exactly rawSize bytes or a CodecError — nothing else. */
function decodeHostile(data: Uint8Array, rawSize: number): Uint8Array | CodecError {
  try {
    const out = inflateRawSync(data, rawSize);
    expect(out.length).toBe(rawSize);
    return out;
  } catch (error) {
    if (error instanceof CodecError) return error;
    throw error;
  }
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

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
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
