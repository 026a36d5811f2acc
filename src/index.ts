/**
 * ckimg — capture, restore and understand Linux x86-64 process checkpoint images.
 *
 * The main entry re-exports the image format (`openImage`, `ImageWriter`, `verifyImage`, …)
 * and image forensics (`loadModules`, `auditGot`, `diffImages`, `backtrace`, `writeCore`, …).
 * The ELF reader is the `elf` namespace here and the "ckimg/elf" entry point
 * (`import { parseElf } from "ckimg/elf"`), because some of its names (e.g. `AuxvEntry` of
 * core notes) differ from the image's.
 */
export * from "./format/index.js";
export * from "./analysis/index.js";
export * as elf from "./elf/index.js";
// One opener for every kind ckimg reads (ckimg images, CRIU dumps, container archives);
// it shadows the format's own openImage, which stays reachable as "ckimg/format". The CRIU
// reader itself is the "ckimg/criu" entry point (its protobuf descriptors load only there).
export { openImage, imageKind, type AnyOpenOptions, type ImageKind } from "./open.js";
