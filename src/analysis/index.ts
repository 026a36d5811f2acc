/**
 * Forensics on checkpoint images: modules and symbols, backtraces, the GOT/PLT hook audit,
 * code-vs-disk verification, and (from the diff/memory/core engineer) image diff, memory
 * dumps, strings and core export. A plain list of re-exports: one line per file.
 *
 * @example
 * ```ts
 * import { openImage } from "ckimg";
 * import { loadModules, auditGot, formatSymbolized } from "ckimg/analysis";
 * const img = await openImage("proc.img");
 * const map = await loadModules(img);
 * console.log(formatSymbolized(map.symbolize(img.threads[0].regs!.rip)));
 * const audit = await auditGot(map);
 * for (const s of audit.suspicious) console.log(s.module, s.symbol, s.target?.text, s.reason);
 * await img.close();
 * ```
 */
export * from "./modules.js";
export * from "./symbolize.js";
export * from "./got.js";
export * from "./ehframe.js";
export * from "./backtrace.js";
export * from "./against-disk.js";
export * from "./diff.js";
export * from "./memory.js";
export * from "./search.js";
export * from "./core.js";
export * from "./diff-state.js";
export * from "./fd-state.js";
export * from "./tree.js";
