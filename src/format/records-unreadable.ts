/**
 * UNREADABLE_PAGES (0x0022, format 1.2; docs/FORMAT.md "Unreadable pages"): the pages of an
 * UNREADABLE area that the writer tried and failed to read. With it, an unstored page of such
 * an area that is not listed has its ordinary content (4.7), and only the listed ones are
 * unknown; without it (1.0/1.1 images, or whole areas like VM_IO mappings) every unstored page
 * of an UNREADABLE area is unknown.
 */
import { ByteReader, ByteWriter } from "./bytes.js";
import type { ImageErrorWhere } from "./errors.js";

export const UNREADABLE_FIXED_SIZE = 24;
export const UNREADABLE_RANGE_SIZE = 16;
/** FIXED offsets. */
export const UNR = { areaId: 4, count: 8, entrySize: 12, reserved: 16 } as const;

/** [start, end) page-aligned addresses. */
export interface AddressRange {
  start: bigint;
  end: bigint;
}

export interface UnreadablePagesRecord {
  areaId: number;
  ranges: AddressRange[];
}

export function decodeUnreadablePages(payload: Uint8Array, base: number, where: ImageErrorWhere): UnreadablePagesRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(UNREADABLE_FIXED_SIZE, "UNREADABLE_PAGES");
  const areaId = r.u32At(UNR.areaId);
  const count = r.u32At(UNR.count);
  const entrySize = r.u32At(UNR.entrySize);
  if (entrySize < UNREADABLE_RANGE_SIZE) r.fail("BAD_FIELD", `UNREADABLE_PAGES entry_size ${entrySize} is below ${UNREADABLE_RANGE_SIZE}`, UNR.entrySize);
  if (count * entrySize > payload.length - fixed) r.fail("BAD_FIELD", `UNREADABLE_PAGES ${count} ranges exceed the payload`, UNR.count, "P2");
  const ranges: AddressRange[] = [];
  for (let i = 0; i < count; i++) {
    const at = fixed + i * entrySize;
    ranges.push({ start: r.u64At(at), end: r.u64At(at + 8) });
  }
  return { areaId, ranges };
}

export function encodeUnreadablePages(rec: UnreadablePagesRecord): Uint8Array {
  const w = new ByteWriter().u32(UNREADABLE_FIXED_SIZE).u32(rec.areaId).u32(rec.ranges.length).u32(UNREADABLE_RANGE_SIZE).u64(0n);
  for (const x of rec.ranges) w.u64(x.start).u64(x.end);
  return w.finish();
}
