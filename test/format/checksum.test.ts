/** CRC-32 against known answers, the portable table version, and crc32Combine against concatenation. */
import { expect, test } from "vitest";
import fc from "fast-check";
import { crc32, crc32Combine, crc32Portable } from "../../src/format/checksum.js";

test("known answer: crc32('123456789') = 0xCBF43926", () => {
  const data = new TextEncoder().encode("123456789");
  expect(crc32(data)).toBe(0xcbf43926);
  expect(crc32Portable(data)).toBe(0xcbf43926);
  expect(crc32(new Uint8Array(0))).toBe(0);
});

test("native and portable agree, also when continued", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 3000 }), fc.uint8Array({ maxLength: 300 }), (a, b) => {
    expect(crc32Portable(a)).toBe(crc32(a));
    expect(crc32(b, crc32(a))).toBe(crc32Portable(b, crc32Portable(a)));
  }));
});

test("crc32Combine(crc(A), crc(B), |B|) = crc(A‖B)", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), fc.uint8Array({ maxLength: 5000 }), (a, b) => {
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(crc32(both));
  }));
  // Long B: a 4 MiB zero block (exercises high bits of the length).
  const zeros = new Uint8Array(4 << 20);
  const head = Uint8Array.of(1, 2, 3);
  const both = new Uint8Array(head.length + zeros.length);
  both.set(head);
  expect(crc32Combine(crc32(head), crc32(zeros), zeros.length)).toBe(crc32(both));
});
