/**
 * What `inspect` says about an incremental image (format 1.2): the parent it names, where it
 * was found, and how many of the pages it holds it stores itself or takes from the chain.
 */
import { hexId, type CheckpointImage } from "../format/index.js";

export function parentReport(img: CheckpointImage) {
  const rec = img.parentRecord;
  if (!rec) return null;
  let held = 0, own = 0;
  for (const a of img.areas) {
    held += img.storedPages(a.id);
    own += img.ownStoredPages(a.id);
  }
  return {
    imageId: hexId(rec.parentImageId),
    pathHint: rec.pathHint,
    /** the file the chain resolved to (null: not found or not checked) */
    path: img.parent?.path ?? null,
    depth: rec.depth,
    chain: img.chain.map((i) => i.path),
    pagesStoredHere: own,
    pagesInherited: img.parent ? held - own : null,
  };
}

export type ParentReport = NonNullable<ReturnType<typeof parentReport>>;

export function parentText(p: ParentReport): string {
  const where = p.path ?? `${p.pathHint} (NOT FOUND)`;
  const pages = p.pagesInherited === null ? `${p.pagesStoredHere} pages stored here` : `${p.pagesStoredHere} pages stored here, ${p.pagesInherited} inherited`;
  return `parent   ${where}  image ${p.imageId}, chain of ${p.depth + 1}; ${pages}`;
}
