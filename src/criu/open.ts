/**
 * Opening a CRIU dump (a directory, or any DumpSource) as a CheckpointImage.
 */
import { ImageError } from "../format/errors.js";
import { looksLikeCriuDump, readCriuDump, type CriuDump } from "./dump.js";
import { openCriuDump, type CriuImage, type CriuOpenOptions } from "./image.js";
import { DirectorySource, type DumpSource } from "./source.js";

/** Read a dump's metadata (every process) without choosing a process. Closes the source on failure. */
export async function readCriuSource(source: DumpSource): Promise<CriuDump> {
  try {
    if (!(await looksLikeCriuDump(source))) {
      throw new ImageError("NOT_AN_IMAGE", "not a CRIU dump (no inventory.img with CRIU's magic)", { file: source.path });
    }
    return await readCriuDump(source);
  } catch (err) {
    await source.close().catch(() => {});
    throw err;
  }
}

/** A `criu dump -D DIR` directory: one process of it (the root by default) as an image. */
export async function openCriuDirectory(dir: string, opts: CriuOpenOptions = {}): Promise<CriuImage> {
  const dump = await readCriuSource(await DirectorySource.open(dir));
  return openCriuDump(dump, dir, opts);
}

/** Any DumpSource (e.g. a MemorySource) as an image; `placeholder` is a file the image may hold open. */
export async function openCriuSource(source: DumpSource, placeholder: string, opts: CriuOpenOptions = {}): Promise<CriuImage> {
  return openCriuDump(await readCriuSource(source), placeholder, opts);
}
