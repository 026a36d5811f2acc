/**
 * The one error type of the format library. Every failure names what was wrong (`detail`),
 * where (`file`, `offset`, and for records their type and sequence number) and carries a
 * stable `code` (docs/FORMAT.md section 6) that scripts can switch on.
 */

export type ImageErrorCode =
  | "NOT_AN_IMAGE"
  | "UNSUPPORTED_VERSION"
  | "BAD_HEADER"
  | "TRUNCATED"
  | "BAD_TRAILER"
  | "BAD_INDEX"
  | "BAD_RECORD"
  | "BAD_CHECKSUM"
  | "BAD_FIELD"
  | "RECORD_TOO_LARGE"
  | "CHUNK_TOO_LARGE"
  | "UNSUPPORTED_RECORD"
  | "DUPLICATE_RECORD"
  | "MISSING_RECORD"
  | "BAD_CODEC"
  | "NOT_MAPPED"
  | "UNAVAILABLE"
  | "IO"
  | "MISSING_PARENT"
  | "BAD_PARENT"
  | "NO_SUCH_PROCESS"
  // format 1.2
  | "UNSUPPORTED_MACHINE";

export interface ImageErrorWhere {
  file?: string;
  offset?: number;
  recordType?: string;
  sequence?: number;
  /** the reader rule broken (docs/FORMAT.md "Reader obligations", src/format/rules.ts) */
  rule?: string;
}

export class ImageError extends Error {
  override name = "ImageError";
  readonly code: ImageErrorCode;
  /** What was wrong, without the location (the CLI composes `file: detail at offset n`). */
  readonly detail: string;
  file: string | undefined;
  readonly offset: number | undefined;
  readonly recordType: string | undefined;
  readonly sequence: number | undefined;
  /** the reader rule broken, e.g. "R8" (docs/FORMAT.md "Reader obligations") */
  rule: string | undefined;

  constructor(code: ImageErrorCode, detail: string, where: ImageErrorWhere = {}) {
    const rec = where.recordType ? ` in ${where.recordType} record${where.sequence !== undefined ? ` #${where.sequence}` : ""}` : "";
    const fullDetail = detail + rec;
    super(
      (where.file ? `${where.file}: ` : "") + fullDetail + (where.offset !== undefined ? ` at offset ${where.offset}` : ""),
    );
    this.code = code;
    this.detail = fullDetail;
    this.file = where.file;
    this.offset = where.offset;
    this.recordType = where.recordType;
    this.sequence = where.sequence;
    this.rule = where.rule;
  }
}

export function isImageError(err: unknown): err is ImageError {
  return err instanceof ImageError;
}
