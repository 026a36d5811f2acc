/**
 * Files that appear whole or not at all, private to their owner: written to a temp file
 * (mode 0600) in the target's directory — so the rename stays on one filesystem — fsynced,
 * then renamed over the target. On any failure the temp file is removed. Images, cores and
 * memory dumps hold a process's memory and environment: every writer in ckimg goes through here.
 */
import { open, rename, unlink, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";

/** A fresh temp-file name beside `path` (hidden, unique per process and call). */
export function tempPathBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
}

export interface AtomicWriteOptions {
  /** fsync before the rename (default true) */
  durable?: boolean;
}

/** Create `path` atomically with what `fill` writes into the handle; returns what `fill` returns. */
export async function writeFileAtomically<T>(path: string, fill: (fh: FileHandle) => Promise<T>, opts: AtomicWriteOptions = {}): Promise<T> {
  const temp = tempPathBeside(path);
  const fh = await open(temp, "wx", 0o600);
  try {
    const result = await fill(fh);
    if (opts.durable ?? true) await fh.sync();
    await fh.close();
    await rename(temp, path);
    return result;
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw err;
  }
}
