/**
 * ckimg image format v1 (docs/FORMAT.md): read, write and verify checkpoint images.
 *
 * @example
 * ```ts
 * import { openImage } from "ckimg";
 * const img = await openImage("counter.img");
 * console.log(img.process.pid, img.process.comm, img.threads.length);
 * for (const area of img.areas) console.log(area.start.toString(16), area.path, img.storedPages(area.id));
 * const bytes = await img.readMemory(img.threads[0].regs!.rsp, 64);
 * await img.close();
 * ```
 */
export * from "./errors.js";
export * from "./raw.js";
export * from "./records.js";
export * from "./records-state.js";
export * from "./records-fd.js";
export * from "./records-anon.js";
export * from "./raw-files.js";
export * from "./records-files.js";
export * from "./records-chain.js";
export { checkInheritedDigests, parentCandidates, hexId, type ChainProblem } from "./chain.js";
export * from "./records-tree.js";
export * from "./records-sysv.js";
export * from "./reader.js";
export * from "./writer.js";
export * from "./flatten.js";
export * from "./verify.js";
export * from "./rules.js";
export * from "./records-unreadable.js";
export * from "./file-identity.js";
export { crc32 } from "./checksum.js";
export * from "./codecs.js";
export { CodecError } from "./codec-error.js";
export * from "./synthetic.js";
export * from "./atomic.js";
