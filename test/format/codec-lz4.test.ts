/**
 * LZ4 block codec: hand-made vectors, round trips, the reference liblz4 as oracle both ways
 * (through a tiny C program built here, and through the `lz4` CLI's legacy frame), and
 * hostile input.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { CodecError } from "../../src/format/codec-error.js";
import { lz4CompressBlock, lz4CompressBlockInto, lz4CompressBound, lz4DecompressBlock, lz4DecompressBlockInto } from "../../src/format/codec-lz4.js";
import { tempDir } from "../support/tmp.js";
import { concat, structured, anyData, expectSameBytes, noise, realBinary, mutation, mutate, decodeHostile as checkHostileDecode, expectDecodeIntoStaysInBounds, caught } from "../support/codec-data.js";

function decodeHostile(data: Uint8Array, rawSize: number): Uint8Array | CodecError {
  return checkHostileDecode(lz4DecompressBlock, data, rawSize);
}

// ---------------------------------------------------------------------------------------------

describe("LZ4 block: hand-made vectors", () => {
  const text = (s: string) => new TextEncoder().encode(s);
  const bytes = (...parts: (number | string)[]) => concat(parts.map((p) => (typeof p === "number" ? Uint8Array.of(p) : text(p))));

  test("empty block is one zero token", () => {
    expectSameBytes(lz4DecompressBlock(Uint8Array.of(0x00), 0), new Uint8Array(0));
    expectSameBytes(lz4CompressBlock(new Uint8Array(0)), Uint8Array.of(0x00));
  });

  test("literals only", () => {
    expectSameBytes(lz4DecompressBlock(bytes(0x50, "hello"), 5), text("hello"));
    expectSameBytes(lz4CompressBlock(text("hello")), bytes(0x50, "hello"));
    // Under 13 bytes nothing may be matched (end-of-block rules): twelve equal bytes stay literals.
    expectSameBytes(lz4CompressBlock(text("aaaaaaaaaaaa")), bytes(0xc0, "aaaaaaaaaaaa"));
  });

  test("overlapping match repeats the last bytes", () => {
    // "abcd", then 8 bytes from 4 back, then "efghi".
    expectSameBytes(lz4DecompressBlock(bytes(0x44, "abcd", 0x04, 0x00, 0x50, "efghi"), 17), text("abcdabcdabcdefghi"));
    // 'z', then 4 + 15 + 10 = 29 bytes from 1 back.
    expectSameBytes(lz4DecompressBlock(bytes(0x1f, "z", 0x01, 0x00, 10, 0x50, "12345"), 35), text("z".repeat(30) + "12345"));
  });

  test("long non-overlapping and long overlapping matches", () => {
    // 40 literals, then 4 + 15 + 81 = 100 bytes from 40 back (period 40, overlapping).
    const head = noise(40, 7);
    const out = lz4DecompressBlock(concat([Uint8Array.of(0xff, 40 - 15), head, Uint8Array.of(40, 0, 81, 0x00)]), 140);
    const expected = new Uint8Array(140);
    for (let i = 0; i < 140; i++) expected[i] = head[i % 40];
    expectSameBytes(out, expected);
  });

  test("literal length continues through 255 bytes", () => {
    const payload = noise(300, 3);
    expectSameBytes(lz4DecompressBlock(concat([Uint8Array.of(0xf0, 255, 30), payload]), 300), payload);
    const block = lz4CompressBlock(payload);
    expect(Array.from(block.subarray(0, 3))).toEqual([0xf0, 255, 30]);
  });

  test("thirteen zero bytes: the first match the end-of-block rules allow", () => {
    // 1 literal, a 7-byte match at offset 1, then the 5 mandatory last literals.
    expectSameBytes(lz4CompressBlock(new Uint8Array(13)), Uint8Array.of(0x13, 0, 1, 0, 0x50, 0, 0, 0, 0, 0));
  });

  test.each([
    ["empty input", new Uint8Array(0), 0, /empty/, 0],
    ["literals past the end", bytes(0x50, "he"), 5, /literal run of 5 bytes runs past the end/, 1],
    ["literal length past the end", Uint8Array.of(0xf0), 15, /literal length runs past the end/, 1],
    ["offset before the output start", bytes(0x10, "a", 0x05, 0x00, 0x10, "b"), 10, /offset 5 points before the output start/, 2],
    ["offset zero", bytes(0x10, "a", 0x00, 0x00, 0x10, "b"), 10, /offset 0/, 2],
    // The same two, far from the block's end (the decoder's fast path).
    ["offset before the output start, mid-block", concat([bytes(0x10, "a", 0x05, 0x00), new Uint8Array(60)]), 100, /offset 5 points before/, 2],
    ["offset zero, mid-block", concat([bytes(0x10, "a", 0x00, 0x00), new Uint8Array(60)]), 100, /offset 0/, 2],
    ["offset cut off", bytes(0x10, "a", 0x01), 10, /offset cut off/, 2],
    ["block ends with a match", bytes(0x10, "a", 0x01, 0x00), 5, /ends with a match/, 4],
    ["match length past the end", bytes(0x1f, "a", 0x01, 0x00), 50, /match length runs past the end/, 4],
    ["output longer than the raw size", bytes(0x50, "hello"), 4, /overflows the 4-byte output/, 1],
    ["output shorter than the raw size", bytes(0x50, "hello"), 6, /decodes to 5 bytes, expected 6/, 6],
    ["match overflows the output", bytes(0x14, "a", 0x01, 0x00, 0x10, "b"), 5, /match of 8 bytes overflows/, 2],
  ])("%s is a CodecError", (_name, block, rawSize, message, inputOffset) => {
    let caught: unknown;
    try {
      lz4DecompressBlock(block, rawSize);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CodecError);
    expect((caught as CodecError).detail).toMatch(message);
    expect((caught as CodecError).inputOffset).toBe(inputOffset);
  });

  test("bad raw sizes are CodecErrors, not RangeErrors", () => {
    expect(() => lz4DecompressBlock(Uint8Array.of(0), -1)).toThrow(CodecError);
    expect(() => lz4DecompressBlock(Uint8Array.of(0), 1.5)).toThrow(CodecError);
    expect(() => lz4DecompressBlock(Uint8Array.of(0), Number.NaN)).toThrow(CodecError);
  });
});

describe("LZ4 block: round trips", () => {
  test("arbitrary and structured data", () => {
    fc.assert(
      fc.property(anyData, (raw) => {
        const block = lz4CompressBlock(raw);
        expect(block.length).toBeLessThanOrEqual(lz4CompressBound(raw.length));
        expectSameBytes(lz4DecompressBlock(block, raw.length), raw);
      }),
      { numRuns: 300 },
    );
  });

  test("the Into forms agree with the allocating ones", () => {
    fc.assert(
      fc.property(structured, fc.integer({ min: 0, max: 64 }), (raw, slack) => {
        const block = new Uint8Array(lz4CompressBound(raw.length) + slack);
        const blockLength = lz4CompressBlockInto(raw, block);
        expectSameBytes(block.slice(0, blockLength), lz4CompressBlock(raw));
        const out = new Uint8Array(raw.length + slack);
        expect(lz4DecompressBlockInto(block.subarray(0, blockLength), out)).toBe(raw.length);
        expectSameBytes(out.subarray(0, raw.length), raw);
      }),
    );
  });

  test("compressing into less than the bound is refused", () => {
    expect(() => lz4CompressBlockInto(new Uint8Array(100), new Uint8Array(100))).toThrow(CodecError);
  });

  test("matches never reach back more than 65535 bytes", () => {
    const repeated = noise(1000, 11);
    const raw = concat([repeated, noise(70_000, 12), repeated, new Uint8Array(100)]);
    const block = lz4CompressBlock(raw);
    expectSameBytes(lz4DecompressBlock(block, raw.length), raw);
    // The second copy of `repeated` is 71 000 bytes back: it must have gone out as literals.
    expect(block.length).toBeGreaterThan(71_000);
  });

  test("a megabyte of a real binary, of zeros and of noise", () => {
    for (const raw of [realBinary(1 << 20), new Uint8Array(1 << 20), noise(1 << 20, 5)]) {
      expectSameBytes(lz4DecompressBlock(lz4CompressBlock(raw), raw.length), raw);
    }
  });

  test("output is deterministic across calls", () => {
    const raw = realBinary(200_000);
    const first = lz4CompressBlock(raw);
    lz4CompressBlock(noise(50_000, 9)); // leaves other positions in the shared table
    expectSameBytes(lz4CompressBlock(raw), first);
  });
});

// ---------------------------------------------------------------------------------------------
// Oracle 1: liblz4 itself, through a ten-line C program compiled for this run.

const HARNESS_C = `
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* harness c < raw > block            LZ4_compress_default
 * harness d RAWSIZE < block > raw    LZ4_decompress_safe; exit 3 when it refuses the block */
int main(int argc, char **argv) {
  size_t cap = 1 << 16, n = 0, got;
  char *in = malloc(cap);
  while ((got = fread(in + n, 1, cap - n, stdin)) > 0) {
    n += got;
    if (n == cap) in = realloc(in, cap *= 2);
  }
  if (argc == 2 && strcmp(argv[1], "c") == 0) {
    int bound = LZ4_compressBound((int)n);
    char *out = malloc(bound);
    int len = LZ4_compress_default(in, out, (int)n, bound);
    if (len <= 0) return 2;
    fwrite(out, 1, len, stdout);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "d") == 0) {
    int raw = atoi(argv[2]);
    char *out = malloc(raw > 0 ? raw : 1);
    int len = LZ4_decompress_safe(in, out, (int)n, raw);
    if (len < 0) return 3;
    fwrite(out, 1, len, stdout);
    return 0;
  }
  return 1;
}
`;

/** Builds the harness; returns its path, or why it cannot be built here. */
function buildHarness(): { path: string } | { skip: string } {
  if (!existsSync("/usr/include/lz4.h")) return { skip: "liblz4 headers absent (apt-get install liblz4-dev)" };
  const dir = tempDir("ckimg-lz4-");
  const source = join(dir, "harness.c");
  const binary = join(dir, "harness");
  writeFileSync(source, HARNESS_C);
  try {
    execFileSync("gcc", ["-O2", "-o", binary, source, "-llz4"], { stdio: "pipe" });
  } catch (error) {
    const e = error as { code?: string; stderr?: Buffer };
    return { skip: e.code === "ENOENT" ? "no C compiler (gcc)" : `harness does not build: ${String(e.stderr ?? error).split("\n")[0]}` };
  }
  return { path: binary };
}

const harness = buildHarness();
const harnessPath = "path" in harness ? harness.path : "";

function referenceCompress(raw: Uint8Array): Uint8Array {
  const r = spawnSync(harnessPath, ["c"], { input: raw, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`LZ4_compress_default failed (${r.status})`);
  return new Uint8Array(r.stdout);
}

/** LZ4_decompress_safe's output, or undefined when it refuses the block. */
function referenceDecompress(block: Uint8Array, rawSize: number): Uint8Array | undefined {
  const r = spawnSync(harnessPath, ["d", String(rawSize)], { input: block, maxBuffer: 1 << 30 });
  if (r.status === 3) return undefined;
  if (r.status !== 0) throw new Error(`harness failed (${r.status})`);
  return new Uint8Array(r.stdout);
}

describe.skipIf(!("path" in harness))(`LZ4 block against liblz4${"skip" in harness ? ` — skipped: ${harness.skip}` : ""}`, () => {
  test("liblz4 decodes our blocks", () => {
    fc.assert(
      fc.property(anyData, (raw) => {
        expectSameBytes(referenceDecompress(lz4CompressBlock(raw), raw.length), raw);
      }),
      { numRuns: 150 },
    );
  });

  test("we decode liblz4's blocks", () => {
    fc.assert(
      fc.property(anyData, (raw) => {
        expectSameBytes(lz4DecompressBlock(referenceCompress(raw), raw.length), raw);
      }),
      { numRuns: 150 },
    );
  });

  test("the end-of-block rules at every short length", () => {
    // Lengths around the 12/5-byte limits, each filled so that matches are everywhere.
    for (let n = 0; n <= 40; n++) {
      for (const raw of [new Uint8Array(n), noise(n, n + 1).map((b) => b & 1)]) {
        expectSameBytes(referenceDecompress(lz4CompressBlock(raw), n), raw);
      }
    }
  });

  test("a real binary, both ways, with a ratio in the reference's league", () => {
    const raw = realBinary(4 << 20);
    let ours = 0;
    let reference = 0;
    for (let at = 0; at < raw.length; at += 1 << 20) {
      const chunk = raw.subarray(at, at + (1 << 20));
      const block = lz4CompressBlock(chunk);
      expectSameBytes(referenceDecompress(block, chunk.length), chunk);
      const theirs = referenceCompress(chunk);
      expectSameBytes(lz4DecompressBlock(theirs, chunk.length), chunk);
      ours += block.length;
      reference += theirs.length;
    }
    expect(ours).toBeLessThan(reference * 1.1);
  });

  test("where liblz4 accepts a damaged block, we decode the same bytes", () => {
    fc.assert(
      fc.property(structured, fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.integer({ min: -8, max: 8 }), (raw, ops, sizeDelta) => {
        const block = mutate(lz4CompressBlock(raw), ops);
        const rawSize = Math.max(0, raw.length + sizeDelta);
        const theirs = referenceDecompress(block, rawSize);
        const ours = decodeHostile(block, rawSize);
        if (theirs === undefined || theirs.length !== rawSize) return;
        // A match offset of 0 is invalid in the block format; liblz4's decoder does not check
        // it and copies from its own output buffer: we refuse such a block, rightly.
        if (ours instanceof CodecError && /match offset 0 /.test(ours.message)) return;
        expectSameBytes(ours, theirs);
      }),
      { numRuns: 200 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Oracle 2: the `lz4` CLI. Its legacy frame is a magic number and then blocks, each a u32 size
// and one LZ4 block of up to 8 MiB raw: exactly our blocks, with no checksum to compute.

const LEGACY_MAGIC = 0x184c2102;
const lz4Cli = ["/usr/bin/lz4", "/usr/local/bin/lz4"].find((p) => existsSync(p));

describe.skipIf(!lz4Cli)(`LZ4 block against the lz4 CLI (legacy frame)${lz4Cli ? "" : " — skipped: no lz4 binary"}`, () => {
  test("lz4 -d reads our blocks", () => {
    for (const raw of [realBinary(3 << 20), concat([new Uint8Array(100_000), noise(50_000, 1), realBinary(200_000)])]) {
      const block = lz4CompressBlock(raw);
      const frame = new Uint8Array(8 + block.length);
      const view = new DataView(frame.buffer);
      view.setUint32(0, LEGACY_MAGIC, true);
      view.setUint32(4, block.length, true);
      frame.set(block, 8);
      const out = execFileSync(lz4Cli!, ["-d", "-c"], { input: frame, maxBuffer: 1 << 30 });
      expectSameBytes(new Uint8Array(out), raw);
    }
  });

  test("we read lz4 -l's blocks", () => {
    const raw = realBinary(3 << 20);
    const frame = new Uint8Array(execFileSync(lz4Cli!, ["-l", "-1", "-c"], { input: raw, maxBuffer: 1 << 30 }));
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    expect(view.getUint32(0, true)).toBe(LEGACY_MAGIC);
    const blockLength = view.getUint32(4, true);
    const block = frame.subarray(8, 8 + blockLength);
    expectSameBytes(lz4DecompressBlock(block, raw.length), raw);
  });
});

describe("LZ4 block: hostile input", () => {
  test("random bytes decode to exactly rawSize or a CodecError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.integer({ min: 0, max: 1 << 16 }), (block, rawSize) => {
        decodeHostile(block, rawSize);
      }),
      { numRuns: 2000 },
    );
  });

  test("random bytes behind a plausible token decode to exactly rawSize or a CodecError", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 200 }), fc.nat({ max: 5000 }), (token, rest, rawSize) => {
        decodeHostile(concat([Uint8Array.of(token), rest]), rawSize);
      }),
      { numRuns: 2000 },
    );
  });

  test("damaged valid blocks decode to exactly rawSize or a CodecError", () => {
    fc.assert(
      fc.property(anyData, fc.array(mutation, { minLength: 1, maxLength: 6 }), fc.integer({ min: -16, max: 16 }), (raw, ops, sizeDelta) => {
        decodeHostile(mutate(lz4CompressBlock(raw), ops), Math.max(0, raw.length + sizeDelta));
      }),
      { numRuns: 1000 },
    );
  });

  test("a match offset of 0 is refused, naming where (the format calls it invalid)", () => {
    // 1 literal 'a', then a match of length 4 at offset 0 (liblz4's fast decoder would copy
    // from its own output), then the 5 literals every block ends with
    const block = Uint8Array.from([0x10, 0x61, 0x00, 0x00, 0x50, 0x62, 0x62, 0x62, 0x62, 0x62]);
    const err = caught(() => lz4DecompressBlock(block, 1 + 4 + 5));
    expect(err).toBeInstanceOf(CodecError);
    expect((err as CodecError).message).toMatch(/match offset 0 \(compressed input offset 2\)/);
  });

  test("huge claimed lengths fail without allocating them", () => {
    // A literal length of 15 + 255 × 100 000 in a 100 KB block, and a huge match length.
    const longLiterals = concat([Uint8Array.of(0xf0), new Uint8Array(100_000).fill(255), Uint8Array.of(0)]);
    expect(decodeHostile(longLiterals, 1 << 20)).toBeInstanceOf(CodecError);
    const longMatch = concat([Uint8Array.of(0x1f, 0x41, 0x01, 0x00), new Uint8Array(100_000).fill(255), Uint8Array.of(0, 0x00)]);
    expect(decodeHostile(longMatch, 1 << 20)).toBeInstanceOf(CodecError);
  });

  test("the Into form never writes past its buffer", () => {
    fc.assert(
      fc.property(structured, fc.array(mutation, { maxLength: 3 }), fc.nat({ max: 4096 }), (raw, ops, capacity) => {
        expectDecodeIntoStaysInBounds(lz4DecompressBlockInto, mutate(lz4CompressBlock(raw), ops), capacity);
      }),
      { numRuns: 500 },
    );
  });
});
