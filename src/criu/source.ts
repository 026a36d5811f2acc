/**
 * Where a CRIU dump's files come from: a directory (`criu dump -D DIR`) or the `checkpoint/`
 * folder inside a container checkpoint archive (archive.ts). Metadata files are read whole
 * (bounded by MAX_METADATA_FILE); page files only by range.
 */
import { open, readdir, stat, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { ImageError } from "../format/errors.js";
import { MAX_METADATA_FILE } from "./raw.js";

export interface DumpSource {
  /** what to name in messages: the directory, or `archive.tar:checkpoint/` */
  readonly path: string;
  /** file names of the dump (no directories) */
  names(): string[];
  /** a file's size, undefined when absent */
  size(name: string): number | undefined;
  /** a whole metadata file */
  read(name: string): Promise<Uint8Array>;
  /** `length` bytes at `offset` of a (page) file; into `into` (≥ length bytes) when given */
  readAt(name: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /** the file a message should name (`DIR/pages-1.img`) */
  fileName(name: string): string;
  close(): Promise<void>;
}

export class DirectorySource implements DumpSource {
  private readonly sizes = new Map<string, number>();
  private readonly handles = new Map<string, FileHandle>();

  private constructor(readonly path: string) {}

  static async open(dir: string): Promise<DirectorySource> {
    const src = new DirectorySource(dir);
    // Look for the inventory before listing: a big directory that is no dump costs one stat.
    const inv = await stat(join(dir, "inventory.img")).catch(() => undefined);
    if (!inv?.isFile()) throw new ImageError("NOT_AN_IMAGE", "is a directory, not an image (and no CRIU dump: no inventory.img)", { file: dir });
    let list;
    try {
      list = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw new ImageError("IO", `cannot read the directory: ${(err as Error).message}`, { file: dir });
    }
    for (const d of list) {
      if (!d.isFile()) continue;
      src.sizes.set(d.name, (await stat(join(dir, d.name))).size);
    }
    return src;
  }

  names(): string[] {
    return [...this.sizes.keys()];
  }

  size(name: string): number | undefined {
    return this.sizes.get(name);
  }

  fileName(name: string): string {
    return join(this.path, name);
  }

  async read(name: string): Promise<Uint8Array> {
    const size = this.sizes.get(name);
    if (size === undefined) throw new ImageError("MISSING_RECORD", "file is missing from the CRIU dump", { file: this.fileName(name) });
    if (size > MAX_METADATA_FILE) throw new ImageError("RECORD_TOO_LARGE", `metadata file of ${size} bytes exceeds the ${MAX_METADATA_FILE >> 20} MiB limit`, { file: this.fileName(name) });
    return this.readAt(name, 0, size);
  }

  async readAt(name: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const size = this.sizes.get(name);
    const file = this.fileName(name);
    if (size === undefined) throw new ImageError("MISSING_RECORD", "file is missing from the CRIU dump", { file });
    if (offset < 0 || length < 0 || offset + length > size) {
      throw new ImageError("TRUNCATED", `read of ${length} bytes runs past the end of the ${size}-byte file`, { file, offset });
    }
    let h = this.handles.get(name);
    if (!h) {
      h = await open(file, "r");
      this.handles.set(name, h);
    }
    // Every byte is read below (or the read throws): no zero-fill; a caller's buffer is reused
    // as is (fresh memory costs a page fault per page here, more than the copy).
    const buf = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await h.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) throw new ImageError("TRUNCATED", "file shrank while reading", { file, offset: offset + got });
      got += bytesRead;
    }
    return buf;
  }

  async close(): Promise<void> {
    for (const h of this.handles.values()) await h.close().catch(() => {});
    this.handles.clear();
  }
}

/** A dump held in memory (tests, and dumps assembled by a program). */
export class MemorySource implements DumpSource {
  constructor(readonly path: string, private readonly files: Map<string, Uint8Array>) {}

  names(): string[] {
    return [...this.files.keys()];
  }

  size(name: string): number | undefined {
    return this.files.get(name)?.length;
  }

  fileName(name: string): string {
    return `${this.path}/${name}`;
  }

  async read(name: string): Promise<Uint8Array> {
    const f = this.files.get(name);
    if (!f) throw new ImageError("MISSING_RECORD", "file is missing from the CRIU dump", { file: this.fileName(name) });
    if (f.length > MAX_METADATA_FILE) throw new ImageError("RECORD_TOO_LARGE", `metadata file of ${f.length} bytes exceeds the limit`, { file: this.fileName(name) });
    return f;
  }

  async readAt(name: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const f = this.files.get(name);
    if (!f) throw new ImageError("MISSING_RECORD", "file is missing from the CRIU dump", { file: this.fileName(name) });
    if (offset < 0 || length < 0 || offset + length > f.length) {
      throw new ImageError("TRUNCATED", `read of ${length} bytes runs past the end of the ${f.length}-byte file`, { file: this.fileName(name), offset });
    }
    if (into) {
      into.set(f.subarray(offset, offset + length));
      return into.subarray(0, length);
    }
    return f.slice(offset, offset + length);
  }

  async close(): Promise<void> {}
}
