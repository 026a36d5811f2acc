/**
 * ckimg — capture, restore and understand Linux x86-64 process checkpoint images.
 *
 * The library entry point re-exports the image format (`openImage`, `ImageWriter`,
 * `verifyImage`, …). ELF analysis lives in "ckimg/elf" and image forensics in
 * "ckimg/analysis"; both are re-exported here when they do not clash.
 */
export * from "./format/index.js";
