/**
 * CRIU images and container checkpoint archives, read into ckimg's image model.
 *
 * @example
 * ```ts
 * import { openImage } from "ckimg";            // picks the reader by what the path is
 * const img = await openImage("/var/lib/criu/dump");   // a `criu dump -D` directory
 * console.log(img.process.comm, img.threads.length, img.formatVersion); // "criu 2"
 * await img.close();
 * ```
 */
export * from "./raw.js";
export * from "./image-file.js";
export * from "./source.js";
export * from "./dump.js";
export * from "./image.js";
export * from "./open.js";
export * from "./archive.js";
