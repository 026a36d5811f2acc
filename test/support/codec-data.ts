/**
 * Shared test data for the codec suites: arbitrary bytes and memory-like structure (zeros,
 * runs, repeated words, random, copies of earlier output), a real binary, deterministic noise,
 * and mutations for hostile-input tests.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { expect } from "vitest";
import { CodecError } from "../../src/format/codec-error.js";

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const segment = fc.oneof(
  fc.integer({ min: 1, max: 4096 }).map((n) => new Uint8Array(n)),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 3000 })).map(([b, n]) => new Uint8Array(n).fill(b)),
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 24 }), fc.integer({ min: 1, max: 200 })).map(([w, n]) => concat(Array(n).fill(w))),
  fc.uint8Array({ maxLength: 1500 }),
);

/** Segments, some followed by a copy of earlier output (matches at every distance). */
export const structured = fc
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

export const anyData = fc.oneof(fc.uint8Array({ maxLength: 3000 }), structured);

/** Byte equality through Buffer.compare: vitest's deep equality is slow on megabytes. */
export function expectSameBytes(actual: unknown, expected: Uint8Array): void {
  expect(actual).toBeInstanceOf(Uint8Array);
  const a = actual as Uint8Array;
  if (Buffer.compare(a, expected) === 0) return;
  let i = 0;
  while (i < a.length && i < expected.length && a[i] === expected[i]) i++;
  expect.fail(`bytes differ at offset ${i} (lengths ${a.length} and ${expected.length})`);
}

/** A deterministic pseudo-random buffer (xorshift32), for inputs fast-check need not shrink. */
export function noise(length: number, seed: number): Uint8Array {
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
export function realBinary(length: number): Uint8Array {
  return new Uint8Array(readFileSync(process.execPath).subarray(0, length));
}

// Hostile-input helpers.

export const mutation = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x0f, 0xf0, 0xff, 0x7f, 0x80) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
);
export type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

export function mutate(data: Uint8Array, ops: Mutation[]): Uint8Array {
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

/**
 * Decoding hostile input gives exactly rawSize bytes or a CodecError (with a sane inputOffset)
 * — nothing else. Returns what the decoder produced.
 */
export function decodeHostile(decode: (data: Uint8Array, rawSize: number) => Uint8Array, data: Uint8Array, rawSize: number): Uint8Array | CodecError {
  try {
    const out = decode(data, rawSize);
    expect(out.length).toBe(rawSize);
    return out;
  } catch (error) {
    if (error instanceof CodecError) {
      expect(error.code).toBe("BAD_CODEC");
      if (error.inputOffset !== undefined) expect(error.inputOffset).toBeGreaterThanOrEqual(0);
      return error;
    }
    throw error;
  }
}

export function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

/**
 * Decode `data` with an `Into` decoder into a window of `capacity` bytes fenced by guard bytes
 * on both sides: it returns at most `capacity` or throws CodecError, and never touches a guard.
 */
export function expectDecodeIntoStaysInBounds(decodeInto: (src: Uint8Array, dst: Uint8Array) => number, data: Uint8Array, capacity: number): void {
  const backing = new Uint8Array(capacity + 64).fill(0xa5);
  const window = backing.subarray(32, 32 + capacity);
  try {
    expect(decodeInto(data, window)).toBeLessThanOrEqual(capacity);
  } catch (error) {
    if (!(error instanceof CodecError)) throw error;
  }
  expect(backing.subarray(0, 32).every((b) => b === 0xa5)).toBe(true);
  expect(backing.subarray(32 + capacity).every((b) => b === 0xa5)).toBe(true);
}
