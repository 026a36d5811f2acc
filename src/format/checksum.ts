/**
 * CRC-32/ISO-HDLC (zlib's crc32). Node's native zlib.crc32 runs ≥ 6 GB/s here; the table
 * fallback only serves runtimes without it (node < 20.15, browsers).
 */
import * as zlib from "node:zlib";

type Crc32Fn = (data: Uint8Array, initial?: number) => number;
const nativeCrc32 = (zlib as unknown as { crc32?: Crc32Fn }).crc32;

let table: Uint32Array | undefined;
function crcTable(): Uint32Array {
  if (table) return table;
  table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

function crc32Portable(data: Uint8Array, initial = 0): number {
  const t = crcTable();
  let crc = ~initial;
  for (let i = 0; i < data.length; i++) crc = t[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** CRC-32 of `data`, continuing from `initial` (the CRC of the bytes before it). */
export const crc32: Crc32Fn = nativeCrc32 ? (d, i = 0) => nativeCrc32(d, i) >>> 0 : crc32Portable;
export { crc32Portable };

// --- crc32Combine: CRC of A‖B from crc(A), crc(B) and |B|, without touching the bytes. -----
// Polynomial arithmetic modulo the CRC polynomial (reflected bit order), as zlib ≥ 1.2.12
// does it: multiply crc(A) by x^(8·|B|) mod P, then add crc(B). Used where one pass over the
// data already produced crc(B) (uncompressed chunks: DATA is the raw pages).
const POLY = 0xedb88320;

function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) mod P. */
const X2N = new Uint32Array(32);
X2N[0] = 0x40000000; // x^1
for (let k = 1; k < 32; k++) X2N[k] = multModP(X2N[k - 1], X2N[k - 1]);

/** x^(n·2^k) mod P */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000; // x^0
  while (n) {
    if (n & 1) p = multModP(X2N[k & 31], p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/** crc32(A‖B) given crc32(A), crc32(B) and the length of B in bytes (any safe integer). */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (multModP(x2nModP(lengthB, 3), crcA >>> 0) ^ crcB) >>> 0;
}
