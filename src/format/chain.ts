/**
 * Resolving an incremental image's chain (docs/FORMAT.md "Incremental images"). An image with a
 * PARENT record holds the pages its PAGE_DIGESTS list; those its own PAGES do not store come from
 * the parent, which may itself have a parent. After `attachChain` the image's `chunksByArea`
 * describe what the image holds, one resolved chunk per digest span, so every verb that reads
 * pages works on the child as on a standalone image; `ownChunksByArea` keeps the PAGES records
 * of the file itself (verify checks those).
 *
 * The parent is found by the PARENT path hint (relative to the child's directory), then by its
 * base name next to the child, and accepted only when its image_id, pid and start time are the
 * ones the PARENT record names. Loops and chains deeper than MAX_CHAIN_DEPTH are refused.
 */
import { stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join } from "node:path";
import { crc32Combine } from "./checksum.js";
import { ImageError } from "./errors.js";
import type { CheckpointImage, ChunkRef, DecodedChunk, OpenOptions } from "./reader.js";
import { CHAIN_RECORD_TYPES, MAX_CHAIN_DEPTH, heldIndex, type PageDigestsRecord } from "./records-chain.js";
import { popcount8, spanAt } from "./records.js";
import { sharedRunAt } from "./records-tree.js";

export function hexId(id: Uint8Array): string {
  return Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Where to look for the parent, in order. */
export function parentCandidates(childPath: string, hint: string): string[] {
  const dir = dirname(childPath);
  const out = [isAbsolute(hint) ? hint : join(dir, hint), join(dir, basename(hint))];
  return [...new Set(out)];
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** Chain state passed down while opening parents (image ids seen, to refuse loops). */
export interface ChainContext {
  seen: string[];
}

type Opener = (path: string, opts: OpenOptions, ctx: ChainContext) => Promise<CheckpointImage>;

/**
 * Open the parent of `image` (recursively), check it is the one PARENT names, and switch the
 * image's chunks to the resolved view. Strict images throw; tolerant ones (verify) note the
 * problem and stay as they are (their own pages only).
 *
 * A tree image (FORMAT.md "Incremental images", trees): each process with a PARENT is a delta
 * of the process with that pid (and start time) in the one parent image every PARENT names;
 * a process without one (forked since) is standalone; the root has one when any process has.
 */
export async function attachChain(image: CheckpointImage, opts: OpenOptions, ctx: ChainContext, open: Opener): Promise<void> {
  const views = image.processes.filter((v) => v.parentRecord);
  if (!views.length) return;
  const rec = views[0].parentRecord!;
  const pe = views[0].entries.find((e) => e.type === CHAIN_RECORD_TYPES.PARENT);
  const where = { file: image.path, recordType: "PARENT", offset: pe?.offset, sequence: pe?.sequence };
  const myId = hexId(image.header.imageId);
  const wantId = hexId(rec.parentImageId);
  try {
    for (const v of views) {
      const other = hexId(v.parentRecord!.parentImageId);
      if (other !== wantId) throw new ImageError("BAD_PARENT", `the processes of the tree name different parent images (${wantId} for pid ${views[0].process.pid}, ${other} for pid ${v.process.pid})`, where);
    }
    if (!image.parentRecord) throw new ImageError("BAD_PARENT", `the root process ${image.process.pid} has no PARENT while other processes of the tree have one`, where);
    if (ctx.seen.includes(wantId) || wantId === myId) {
      throw new ImageError("BAD_PARENT", `the chain loops: parent image ${wantId} is already part of it`, where);
    }
    if (ctx.seen.length + 1 >= MAX_CHAIN_DEPTH) {
      throw new ImageError("BAD_PARENT", `chain longer than ${MAX_CHAIN_DEPTH} images`, where);
    }
    const candidates = parentCandidates(image.path, rec.pathHint);
    let parent: CheckpointImage | undefined;
    let mismatch: string | undefined;
    for (const path of candidates) {
      if (!(await isFile(path))) continue;
      const p = await open(path, { ...opts, tolerant: false }, { seen: [...ctx.seen, myId] });
      const problem = hexId(p.header.imageId) !== wantId
        ? `${path} has image_id ${hexId(p.header.imageId)}, PARENT names ${wantId}`
        : views.map((v) => processMismatch(v, p, path)).find((x) => x !== undefined);
      if (!problem) {
        parent = p;
        break;
      }
      mismatch ??= problem;
      await p.close();
    }
    if (!parent) {
      if (mismatch) throw new ImageError("BAD_PARENT", `wrong parent: ${mismatch}`, where);
      throw new ImageError("MISSING_PARENT", `parent image ${wantId} not found (looked for ${candidates.join(", ")})`, where);
    }
    let resolved;
    try {
      resolved = views.map((v) => {
        const up = parentProcess(parent!, v.parentRecord!.parentPid)!;
        return { v, up, chunks: resolvedChunks(v, up) };
      });
    } catch (err) {
      await parent.close();
      throw err;
    }
    // the root first: its parent is the one closing the image closes (the others are views of it)
    for (const { v, up, chunks } of resolved) v.attachParent(up, chunks);
  } catch (err) {
    if (!(err instanceof ImageError) || !opts.tolerant) throw err;
    image.problems.push({ code: err.code, detail: err.detail, offset: err.offset, recordType: err.recordType ?? "PARENT", sequence: err.sequence });
  }
}

/** The live process `pid` of an image (its only process when it is no tree), or undefined. */
function parentProcess(parent: CheckpointImage, pid: number): CheckpointImage | undefined {
  return parent.processes.find((x) => x.process?.pid === pid);
}

/** Why `parent` is not the image the PARENT of process view `v` names, or undefined. */
function processMismatch(v: CheckpointImage, parent: CheckpointImage, path: string): string | undefined {
  const rec = v.parentRecord!;
  const up = parentProcess(parent, rec.parentPid);
  if (!up) {
    return parent.tree
      ? `${path} is a capture of another process tree: it holds no process ${rec.parentPid} (it holds ${parent.processes.map((x) => x.process.pid).join(", ")})`
      : `${path} is a capture of pid ${parent.process.pid} (start time ${parent.process.startTime}), PARENT names pid ${rec.parentPid} (start time ${rec.parentStartTime})`;
  }
  if (up.process.startTime !== rec.parentStartTime) {
    return `${path} is a capture of pid ${up.process.pid} (start time ${up.process.startTime}), PARENT names pid ${rec.parentPid} (start time ${rec.parentStartTime})`;
  }
  if (up.process.pid !== v.process.pid || up.process.startTime !== v.process.startTime) {
    return `${path} is a capture of another process than this image${v.root.tree ? `'s process ${v.process.pid}` : ""}`;
  }
  return undefined;
}

/** One resolved chunk per PAGE_DIGESTS span; own PAGES outside every span stay as they are. */
function resolvedChunks(image: CheckpointImage, parent: CheckpointImage): Map<number, ChunkRef[]> {
  const ps = BigInt(image.pageSize);
  const out = new Map<number, ChunkRef[]>();
  const byCell = new Map<string, ChunkRef>();
  for (const list of image.ownChunksByArea.values()) for (const c of list) byCell.set(`${c.areaId}:${c.firstPage}`, c);
  let synthetic = -1;
  for (const d of image.pageDigests) {
    const own = byCell.get(`${d.areaId}:${d.firstPage}`);
    const where = { file: image.path, recordType: "PAGE_DIGESTS", sequence: d.sequence };
    if (!image.area(d.areaId)) throw new ImageError("BAD_FIELD", `PAGE_DIGESTS names unknown area ${d.areaId}`, where);
    if (image.sharedPages) {
      for (let i = 0; i < d.spanPages; i++) {
        if (!((d.bitmap[i >> 3] >> (i & 7)) & 1)) continue;
        const addr = d.firstPage + BigInt(i * image.pageSize);
        if (sharedRunAt(image.sharedPages, addr, image.pageSize)) throw new ImageError("BAD_FIELD", `page 0x${addr.toString(16)} is both held (PAGE_DIGESTS) and shared with the parent process (SHARED_PAGES)`, where);
      }
    }
    if (own) {
      byCell.delete(`${d.areaId}:${d.firstPage}`);
      if (own.spanPages !== d.spanPages) throw new ImageError("BAD_FIELD", `PAGES span at 0x${d.firstPage.toString(16)} differs from its PAGE_DIGESTS span`, where);
    }
    const ref: ChunkRef = {
      sequence: own?.sequence ?? d.sequence, areaId: d.areaId, firstPage: d.firstPage, spanPages: d.spanPages,
      storedPages: d.heldPages, offset: synthetic--, payloadLength: 0,
      resolved: { rawCrc: digestsCrc(d, image.pageSize), bitmap: d.bitmap, read: () => composeChunk(image, parent, d, own) },
    };
    let list = out.get(d.areaId);
    if (!list) out.set(d.areaId, (list = []));
    list.push(ref);
  }
  for (const c of byCell.values()) {
    // PAGES without digests: held = stored (a writer that writes no digests for a span)
    let list = out.get(c.areaId);
    if (!list) out.set(c.areaId, (list = []));
    list.push(c);
  }
  for (const list of out.values()) {
    list.sort((a, b) => (a.firstPage < b.firstPage ? -1 : a.firstPage > b.firstPage ? 1 : 0));
    for (let i = 1; i < list.length; i++) {
      if (list[i].firstPage < list[i - 1].firstPage + BigInt(list[i - 1].spanPages) * ps) {
        throw new ImageError("BAD_FIELD", `page spans overlap at 0x${list[i].firstPage.toString(16)}`, { file: image.path, recordType: "PAGE_DIGESTS" });
      }
    }
  }
  return out;
}

/** CRC-32 of the held pages back to back, from their digests (no page read). */
function digestsCrc(d: PageDigestsRecord, pageSize: number): number {
  let crc = 0;
  for (let i = 0; i < d.heldPages; i++) crc = i ? crc32Combine(crc, d.digests[2 * i], pageSize) : d.digests[0];
  return crc;
}

/** The held pages of one span: stored ones from the image, the rest from the parent. */
async function composeChunk(image: CheckpointImage, parent: CheckpointImage, d: PageDigestsRecord, own: ChunkRef | undefined): Promise<DecodedChunk> {
  const ps = image.pageSize;
  const raw = new Uint8Array(d.heldPages * ps);
  const mine = own ? await image.readChunk(own) : undefined;
  const where = { file: image.path, recordType: "PAGE_DIGESTS", sequence: d.sequence };
  let k = 0, j = 0;
  for (let i = 0; i < d.spanPages; i++) {
    const held = (d.bitmap[i >> 3] >> (i & 7)) & 1;
    const stored = mine ? (mine.header.bitmap[i >> 3] >> (i & 7)) & 1 : 0;
    if (stored && !held) throw new ImageError("BAD_FIELD", `page 0x${(d.firstPage + BigInt(i * ps)).toString(16)} is stored but not held`, where);
    if (!held) continue;
    if (stored) {
      raw.set(mine!.raw.subarray(j * ps, (j + 1) * ps), k * ps);
      j++;
    } else {
      const addr = d.firstPage + BigInt(i * ps);
      const page = await parent.heldPage(addr);
      if (!page) throw new ImageError("BAD_PARENT", `page 0x${addr.toString(16)} is inherited but the parent ${parent.path} does not hold it`, where);
      raw.set(page, k * ps);
    }
    k++;
  }
  const bitmapLen = Math.ceil(d.spanPages / 8);
  let set = 0;
  for (let i = 0; i < bitmapLen; i++) set += popcount8(d.bitmap[i]);
  return {
    header: {
      areaId: d.areaId, firstPage: d.firstPage, spanPages: d.spanPages, storedPages: set, codec: 0,
      storedSize: raw.length, rawCrc: digestsCrc(d, ps), dataOffset: 0, bitmap: d.bitmap,
    },
    raw,
  };
}

/** A problem verify reports about a chain (each inherited page's digest against the parent's). */
export interface ChainProblem {
  detail: string;
  sequence: number;
}

/**
 * Every page the image inherits must be held by its parent with the same digest (digests only,
 * no page data: cheap). Returns the first few mismatches.
 */
export async function checkInheritedDigests(image: CheckpointImage, limit = 20): Promise<ChainProblem[]> {
  const parent = image.parent;
  if (!parent) return [];
  const ps = image.pageSize;
  const problems: ChainProblem[] = [];
  const own = new Map<string, ChunkRef>();
  for (const list of image.ownChunksByArea.values()) for (const c of list) own.set(`${c.areaId}:${c.firstPage}`, c);
  for (const d of image.pageDigests) {
    const ownRef = own.get(`${d.areaId}:${d.firstPage}`);
    const storedBits = ownRef ? (await image.readChunk(ownRef)).header.bitmap : undefined;
    let k = 0;
    for (let i = 0; i < d.spanPages && problems.length < limit; i++) {
      if (!((d.bitmap[i >> 3] >> (i & 7)) & 1)) continue;
      const stored = storedBits ? (storedBits[i >> 3] >> (i & 7)) & 1 : 0;
      if (!stored) {
        const addr = d.firstPage + BigInt(i * ps);
        const pd = parent.digestOf(addr);
        if (!pd) problems.push({ sequence: d.sequence, detail: `page 0x${addr.toString(16)} is inherited but ${parent.path} does not hold it` });
        else if (pd[0] !== d.digests[2 * k] || pd[1] !== d.digests[2 * k + 1]) {
          problems.push({ sequence: d.sequence, detail: `page 0x${addr.toString(16)} is inherited but its digest differs from the one in ${parent.path}` });
        }
      }
      k++;
    }
  }
  return problems;
}

/** The digest of the page at addr from a list of PAGE_DIGESTS sorted by first page. */
export function digestIn(sorted: PageDigestsRecord[], addr: bigint, pageSize: number): [number, number] | undefined {
  const at = spanAt(sorted, addr, pageSize);
  const k = at && heldIndex(at.span, at.bit);
  return k === undefined ? undefined : [at!.span.digests[2 * k], at!.span.digests[2 * k + 1]];
}
