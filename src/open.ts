/**
 * The package's one opener: a ckimg image file, a CRIU dump directory or a container
 * checkpoint archive (.tar, .tar.gz, .tar.zst), told apart by what the path is and by its
 * first bytes, never by its name. `src/format` and `src/analysis` do not know the foreign
 * readers; they see a CheckpointImage.
 */
import { open, stat } from "node:fs/promises";
import { ImageError } from "./format/errors.js";
import { openImage as openCkimgImage, type CheckpointImage } from "./format/reader.js";
import { IMAGE_MAGIC } from "./format/raw.js";
import { defaultProcess } from "./open-defaults.js";
import { verifyImage, type VerifyOptions, type VerifyReport } from "./format/verify.js";
// Type-only: the CRIU reader (and its generated protobuf descriptors, ~0.1 s to build) loads
// only when a path turns out to be a CRIU dump or an archive.
import type { CriuDump } from "./criu/dump.js";
import type { CriuOpenOptions } from "./criu/image.js";

export type AnyOpenOptions = CriuOpenOptions;

export type ImageKind = "ckimg" | "criu-dir" | "archive" | "unknown";

/** What the path holds, from its type and first bytes. */
export async function imageKind(path: string): Promise<ImageKind> {
  let st;
  try {
    st = await stat(path);
  } catch {
    return "unknown";
  }
  if (st.isDirectory()) return "criu-dir";
  if (!st.isFile()) return "unknown";
  const head = new Uint8Array(512);
  const fh = await open(path, "r");
  let n = 0;
  try {
    n = (await fh.read(head, 0, 512, 0)).bytesRead;
  } finally {
    await fh.close();
  }
  if (n >= IMAGE_MAGIC.length && IMAGE_MAGIC.every((b, i) => head[i] === b)) return "ckimg";
  if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "archive";
  if (n >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "archive";
  if (n >= 262 && String.fromCharCode(...head.subarray(257, 262)) === "ustar") return "archive";
  return "unknown";
}

export { setDefaultProcess } from "./open-defaults.js";

/** Is this image read from a CRIU dump or archive? (without loading the CRIU reader) */
export function isCriuImage(img: CheckpointImage): img is import("./criu/image.js").CriuImage {
  return "criuProcess" in img;
}

/**
 * Open a checkpoint of any kind ckimg reads. For CRIU dumps and archives, `pid` picks the
 * process of the tree (default: the root).
 */
export async function openImage(path: string, opts: AnyOpenOptions = {}): Promise<CheckpointImage> {
  if (opts.pid === undefined && defaultProcess() !== undefined) opts = { ...opts, pid: defaultProcess() };
  switch (await imageKind(path)) {
    case "criu-dir": {
      const { openCriuDirectory } = await import("./criu/open.js");
      return openCriuDirectory(path, opts);
    }
    case "archive": {
      const { openCheckpointArchive } = await import("./criu/archive.js");
      return openCheckpointArchive(path, opts);
    }
    default: {
      // ckimg images and everything unknown: the format reader gives the precise error.
      const img = await openCkimgImage(path, opts);
      if (opts.pid !== undefined && opts.pid !== img.process.pid && img.tree) {
        try {
          return img.processImage(opts.pid);      // a process of a tree image (format 1.2)
        } catch (err) {
          await img.close();
          throw err;
        }
      }
      if (opts.pid !== undefined && opts.pid !== img.process.pid) {
        await img.close();
        throw new ImageError("MISSING_RECORD", `process ${opts.pid} is not in the image (it holds ${img.process.pid})`, { file: path });
      }
      return img;
    }
  }
}

/** The decoded metadata of a CRIU directory or archive (every process of the tree). */
export async function readCriuDumpAt(path: string): Promise<CriuDump> {
  const kind = await imageKind(path);
  if (kind === "criu-dir" || kind === "archive") {
    const { readCriuSource } = await import("./criu/open.js");
    if (kind === "criu-dir") {
      const { DirectorySource } = await import("./criu/source.js");
      return readCriuSource(await DirectorySource.open(path));
    }
    const { CheckpointArchive } = await import("./criu/archive.js");
    return readCriuSource((await CheckpointArchive.open(path)).checkpointSource());
  }
  throw new ImageError("NOT_AN_IMAGE", "neither a CRIU dump directory nor a container checkpoint archive", { file: path });
}

/** verify for every kind: checksums for ckimg images, structure and page reads for CRIU dumps. */
export async function verifyAnyImage(path: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const kind = await imageKind(path);
  if (kind !== "criu-dir" && kind !== "archive") return verifyImage(path, opts);
  const { verifyCriuDump } = await import("./criu/verify.js");
  const dump = await readCriuDumpAt(path);
  try {
    return await verifyCriuDump(dump, path, opts);
  } finally {
    await dump.source.close();
  }
}

export { ImageError };
