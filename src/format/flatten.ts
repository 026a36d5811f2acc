/**
 * Flattening an incremental image (docs/FORMAT.md "Incremental images"): a standalone image that
 * holds every page the chain gives the image, and no PARENT. Every other record is copied as it
 * is (same payload, flags and index keys, same owner in a tree image); the PAGES records are
 * replaced by the resolved chunks of ./chain.ts (one per PAGE_DIGESTS span, the held pages back
 * to back), and the PAGE_DIGESTS stay: in a standalone image they describe what it stores
 * (held = stored), so the flattened image can be the parent of the next capture.
 *
 * The flattened image keeps the image_id and created_ns of the image it flattens: it is the same
 * snapshot, self-contained, so an image whose PARENT names the original accepts it in its place
 * (`ckimg run` prunes a chain this way: the oldest kept link is flattened over itself before
 * its parents are deleted). Written atomically (temp file 0600, fsync, rename): flattening an
 * image over itself is safe.
 */
import { RECORD_HEADER_SIZE, RecordType } from "./raw.js";
import { openImage, type CheckpointImage, type ChunkRef } from "./reader.js";
import { ImageWriter } from "./writer.js";
import type { CodecId } from "./codecs.js";
import { hexId } from "./chain.js";

export interface FlattenOptions {
  /** codec for the page chunks (default: the writer's, LZ4) */
  codec?: CodecId;
  /** fsync before the rename (default true) */
  durable?: boolean;
}

export interface FlattenReport {
  input: string;
  output: string;
  imageId: string;
  /** the images the pages came from, the input first (1: it was standalone already) */
  chain: string[];
  /** pages held (and now stored) */
  pages: number;
  /** pages of those that came from the input's parents */
  inheritedPages: number;
  bytes: number;
  records: number;
}

/** Flatten the image at `input` (a chain is resolved through its PARENT records) into `output`. */
export async function flattenImage(input: string, output: string, opts: FlattenOptions = {}): Promise<FlattenReport> {
  const image = await openImage(input);
  try {
    return await flattenOpened(image, output, opts);
  } finally {
    await image.close();
  }
}

/** Flatten an opened image (its chain attached, as openImage leaves it). */
export async function flattenOpened(image: CheckpointImage, output: string, opts: FlattenOptions = {}): Promise<FlattenReport> {
  const chained = image.parent !== undefined;
  const w = await ImageWriter.create(output, {
    pageSize: image.pageSize, createdNs: image.header.createdNs, imageId: image.header.imageId,
    versionMinor: image.header.versionMinor, codec: opts.codec, durable: opts.durable,
  });
  let pages = 0;
  let ownPages = 0;
  try {
    // A tree: each process that has a parent gets its resolved pages (under its own owner); a
    // process without one (forked since the parent image) keeps its PAGES as they are.
    const viewOf = (owner: number) => (owner !== 0 && image.processes.length > 1 ? image.processImage(owner) : image);
    const written = new Set<CheckpointImage>();
    const writeResolvedPages = async (view: CheckpointImage, owner: number) => {
      written.add(view);
      if (owner !== 0) w.beginProcess(owner);
      const refs: ChunkRef[] = [];
      for (const list of view.chunksByArea.values()) refs.push(...list);
      refs.sort((a, b) => (a.firstPage < b.firstPage ? -1 : a.firstPage > b.firstPage ? 1 : 0));
      for (const ref of refs) {
        const chunk = await view.readChunk(ref);
        if (!chunk.raw.length) continue;
        await w.addPagesChunk(ref.areaId, ref.firstPage, ref.spanPages, chunk.header.bitmap, chunk.raw);
        pages += chunk.raw.length / image.pageSize;
      }
    };
    for (const e of image.entries) {
      if (e.type === RecordType.INDEX) continue;
      const view = viewOf(e.ownerPid);
      const viewChained = view.parent !== undefined;
      if (viewChained && e.type === RecordType.PARENT) continue;
      if (viewChained && (e.type === RecordType.PAGES || e.type === RecordType.PAGE_DIGESTS)) {
        if (e.type === RecordType.PAGES) {
          ownPages += e.auxB;
          continue;
        }
        if (!written.has(view)) await writeResolvedPages(view, e.ownerPid);
      }
      if (e.type === RecordType.TREE) w.markTree();
      else if (e.ownerPid !== 0) w.beginProcess(e.ownerPid);
      const payload = await image.readAt(e.offset + RECORD_HEADER_SIZE, e.payloadLength);
      if (!viewChained && e.type === RecordType.PAGES) {
        pages += e.auxB;
        ownPages += e.auxB;         // (a process new since the parent: all its own)
      }
      await w.writeRecord(e.type, payload, { flags: e.flags, key32: e.key32, key64: e.key64, auxA: e.auxA, auxB: e.auxB });
    }
    for (const view of image.processes) {
      if (view.parent && !written.has(view)) await writeResolvedPages(view, image.tree ? view.process.pid : 0);
    }
    const summary = await w.finish();
    return {
      input: image.path, output, imageId: hexId(image.header.imageId), chain: image.chain.map((i) => i.path),
      pages, inheritedPages: chained ? pages - ownPages : 0, bytes: summary.bytes, records: summary.records,
    };
  } catch (err) {
    await w.abort();
    throw err;
  }
}
