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
