/**
 * The reader obligations of docs/FORMAT.md ("Reader obligations"), one row per rule: its id,
 * the error code a reader reports when an image breaks it, and what it says. The reader,
 * `verify` and the conformance corpus (corpus/conformance/) all name rules by these ids, so a
 * problem report points at one sentence of the spec. Keep this table and FORMAT.md in step:
 * test/format/rules.test.ts checks that every id here appears there and the other way round.
 */
import type { ImageErrorCode } from "./errors.js";

export interface ReaderRule {
  id: string;
  code: ImageErrorCode;
  text: string;
}

const RULE_LIST = [
  // Header (section 1), checked in this order.
  { id: "H1", code: "NOT_AN_IMAGE", text: "bytes 0..7 are the image magic" },
  { id: "H2", code: "TRUNCATED", text: "the file holds the 64-byte header" },
  { id: "H3", code: "UNSUPPORTED_VERSION", text: "version_major is 1, checked before the header CRC" },
  { id: "H4", code: "BAD_HEADER", text: "header_crc is the CRC-32 of bytes 0..59" },
  { id: "H5", code: "BAD_HEADER", text: "header_size is in [64, 65536]" },
  { id: "H6", code: "BAD_HEADER", text: "page_size is a power of two in [4096, 65536]" },
  { id: "H7", code: "UNSUPPORTED_MACHINE", text: "machine is 62 (EM_X86_64)" },
  // Trailer and index (section 3).
  { id: "T1", code: "TRUNCATED", text: "the file holds header_size bytes, an INDEX record header with a 16-byte payload and the trailer" },
  { id: "T2", code: "BAD_TRAILER", text: "the trailer magic is CKIMGEND and its CRC matches" },
  { id: "T3", code: "BAD_TRAILER", text: "index_offset lies in [header_size, file size - 80]" },
  { id: "I1", code: "BAD_INDEX", text: "the record at index_offset has a valid header and type INDEX" },
  { id: "I2", code: "BAD_INDEX", text: "the INDEX payload ends where the trailer begins" },
  { id: "I3", code: "BAD_CHECKSUM", text: "the INDEX payload CRC matches" },
  { id: "I4", code: "BAD_INDEX", text: "INDEX fixed_size >= 16, entry_size >= 40, fixed_size + entry_count x entry_size = payload_length" },
  { id: "I5", code: "BAD_INDEX", text: "entry_count equals the trailer's record_count and the INDEX record's sequence" },
  { id: "I6", code: "BAD_INDEX", text: "entries lie in [header_size, index_offset), in strictly increasing, non-overlapping order" },
  { id: "I7", code: "BAD_INDEX", text: "no entry has type INDEX" },
  // Records (section 2).
  { id: "R1", code: "BAD_RECORD", text: "each record header has the magic CKR1 and a matching header CRC" },
  { id: "R2", code: "BAD_INDEX", text: "the record header's type, flags and payload_length equal its index entry's" },
  { id: "R3", code: "BAD_RECORD", text: "a record's sequence is its position in the index (0 for the first)" },
  { id: "R4", code: "BAD_CHECKSUM", text: "the payload CRC matches, checked before the payload is decoded" },
  { id: "R5", code: "BAD_RECORD", text: "record types 0x0000 and 0xFFFF do not occur" },
  { id: "R6", code: "UNSUPPORTED_RECORD", text: "an unknown type with MUST_UNDERSTAND is refused; without it, skipped unread" },
  { id: "R7", code: "RECORD_TOO_LARGE", text: "a known metadata payload (all but PAGES and INDEX) is at most 64 MiB" },
  { id: "R8", code: "BAD_INDEX", text: "index keys (key32, key64, aux_a, aux_b) agree with the record they point to" },
  // Payload layout.
  { id: "P1", code: "BAD_FIELD", text: "fixed_size is at least the type's 1.0 FIXED size and at most payload_length" },
  { id: "P2", code: "BAD_FIELD", text: "every VARIABLE field the type defines lies inside the payload" },
  { id: "P3", code: "BAD_FIELD", text: "a field holds a value its section allows" },
  // Counts and identity (section 4).
  { id: "C1", code: "MISSING_RECORD", text: "the image holds a PROCESS record" },
  { id: "C2", code: "DUPLICATE_RECORD", text: "a type marked 0-1 or exactly 1 occurs at most once" },
  { id: "C3", code: "MISSING_RECORD", text: "the image holds at least one THREAD record" },
  { id: "C4", code: "BAD_FIELD", text: "PROCESS thread_count equals the number of THREAD records" },
  { id: "C5", code: "DUPLICATE_RECORD", text: "AREA ids, THREAD tids, FD numbers, MAPPED_FILE ids (and the other keyed ids) are unique" },
  { id: "C6", code: "BAD_FIELD", text: "THREAD regs_size is at least 216" },
  // Memory (4.7-4.9, UNREADABLE_PAGES).
  { id: "A1", code: "BAD_FIELD", text: "AREA start and end are page-aligned and end > start" },
  { id: "A2", code: "BAD_FIELD", text: "areas do not overlap" },
  { id: "A3", code: "BAD_FIELD", text: "an AREA's file_id is 0xFFFFFFFF or names a MAPPED_FILE" },
  { id: "G1", code: "BAD_FIELD", text: "PAGES span_pages is in [1, 1048576]" },
  { id: "G2", code: "BAD_FIELD", text: "PAGES bitmap bits past span_pages are 0 and stored_pages (>= 1) is the number of set bits" },
  { id: "G3", code: "BAD_FIELD", text: "PAGES data_offset >= fixed_size + bitmap, the padding before it is zero and shorter than page_size" },
  { id: "G4", code: "BAD_FIELD", text: "PAGES data_offset + stored_size = payload_length" },
  { id: "G5", code: "CHUNK_TOO_LARGE", text: "PAGES raw size (stored_pages x page_size) is at most 64 MiB" },
  { id: "G6", code: "BAD_FIELD", text: "PAGES stored_size equals the raw size for NONE and does not exceed it for other codecs" },
  { id: "G7", code: "BAD_CODEC", text: "PAGES codec is 0..3 and DATA decodes, consuming exactly stored_size bytes, to exactly the raw size" },
  { id: "G8", code: "BAD_CHECKSUM", text: "the decoded pages match raw_crc" },
  { id: "G9", code: "BAD_FIELD", text: "PAGES area_id names an AREA" },
  { id: "G10", code: "BAD_FIELD", text: "a PAGES span is page-aligned, lies inside its area, and spans of one area do not overlap" },
  { id: "U1", code: "BAD_FIELD", text: "UNREADABLE_PAGES names an AREA flagged UNREADABLE, at most one record per area" },
  { id: "U2", code: "BAD_FIELD", text: "UNREADABLE_PAGES ranges are page-aligned, inside the area, sorted, non-overlapping, and cover no stored page" },
] as const satisfies readonly ReaderRule[];

export type RuleId = (typeof RULE_LIST)[number]["id"];

/** Every reader rule, in the order FORMAT.md lists them (the order a reader checks them). */
export const READER_RULES: readonly ReaderRule[] = RULE_LIST;

const BY_ID = new Map<string, ReaderRule>(RULE_LIST.map((r) => [r.id, r]));

export function readerRule(id: RuleId): ReaderRule {
  return BY_ID.get(id)!;
}
