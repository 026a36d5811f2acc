/**
 * File identity (docs/FORMAT.md 4.9, rules F1-F4): is the file on disk the one a MAPPED_FILE
 * describes, so that its bytes may stand in for pages the image did not store?
 *
 * With a SHA-256 in the record, only the digest decides: a file overwritten with its mtime put
 * back is caught, a file touched without a byte changed still matches. Digests are cached by
 * what a stat says (path, dev, inode, size, mtime, ctime), as capture's hash cache does, so a
 * library is hashed once per process however many images name it. Without a SHA-256 the
 * weaker stat identity (inode, size, mtime) is all there is, and the caller is told so.
 */
import { createHash } from "node:crypto";
import { open, stat, type FileHandle } from "node:fs/promises";
import { MFILE_DELETED } from "./raw.js";
import type { MappedFileRecord } from "./records.js";

export type IdentityEvidence = "sha256" | "stat";

export interface VerifiedFile {
  handle: FileHandle;
  /** the path opened (fileRoot + MAPPED_FILE.path) */
  path: string;
  size: number;
  /** sha256: the content's digest matched; stat: only inode, size and mtime did (no digest recorded) */
  evidence: IdentityEvidence;
}

/** Why a file's bytes cannot be used (one sentence naming the path). */
export interface IdentityMismatch {
  why: string;
}

const DIGEST_CACHE_LIMIT = 4096;
const digestCache = new Map<string, string>();

/** Drop the cached digests (tests that rewrite a file within one clock tick). */
export function clearDigestCache(): void {
  digestCache.clear();
}

/** SHA-256 of a whole file, cached by its stat identity. */
export async function fileSha256(path: string): Promise<{ hex: string; size: bigint } | undefined> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, "r");
    const st = await handle.stat({ bigint: true });
    if (!st.isFile()) return undefined;
    const key = `${path}\0${st.dev}\0${st.ino}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}`;
    const hit = digestCache.get(key);
    if (hit) return { hex: hit, size: st.size };
    const hash = createHash("sha256");
    const buf = new Uint8Array(1 << 20);
    for (let at = 0; ; ) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, at);
      if (!bytesRead) break;
      hash.update(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
    const hex = hash.digest("hex");
    if (digestCache.size >= DIGEST_CACHE_LIMIT) digestCache.delete(digestCache.keys().next().value as string);
    digestCache.set(key, hex);
    return { hex, size: st.size };
  } catch {
    return undefined;
  } finally {
    await handle?.close().catch(() => {});
  }
}

/**
 * Open the file a MAPPED_FILE names (F2: `fileRoot` + MAPPED_FILE.path, never the AREA's path)
 * if it still is that file (F1); else say why. A file deleted at capture time is never opened
 * by path (F3): whatever has that name now is another file.
 */
export async function openVerifiedFile(file: MappedFileRecord, fileRoot = ""): Promise<VerifiedFile | IdentityMismatch> {
  const path = fileRoot + file.path;
  if (file.flags & MFILE_DELETED) return { why: `${file.path} was deleted when the image was taken; its name now belongs to another file or none` };
  let st;
  try {
    st = await stat(path, { bigint: true });
  } catch (err) {
    return { why: `${path}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no longer on disk" : "cannot be read"}` };
  }
  if (!st.isFile()) return { why: `${path} is not a regular file` };
  if (st.size !== file.size) return { why: `${path} changed on disk (size ${st.size}, image recorded ${file.size})` };
  let evidence: IdentityEvidence;
  if (file.sha256) {
    const digest = await fileSha256(path);
    if (!digest) return { why: `${path} cannot be read` };
    if (digest.hex !== Buffer.from(file.sha256).toString("hex")) return { why: `${path} changed on disk (SHA-256 differs from the image's)` };
    evidence = "sha256";
  } else {
    if (st.ino !== file.inode || st.mtimeNs !== file.mtimeNs) return { why: `${path} changed on disk (inode or mtime differs, and the image holds no SHA-256)` };
    evidence = "stat";
  }
  try {
    const handle = await open(path, "r");
    // The file may have been replaced between the check and the open: compare what we opened.
    const again = await handle.stat({ bigint: true });
    if (again.ino !== st.ino || again.dev !== st.dev || again.size !== st.size || again.mtimeNs !== st.mtimeNs) {
      await handle.close();
      return { why: `${path} changed while it was being checked` };
    }
    return { handle, path, size: Number(st.size), evidence };
  } catch {
    return { why: `${path} cannot be opened` };
  }
}
