/**
 * The verb table: one line per verb, handlers one file per verb family. Each verb's module
 * is imported only when that verb runs, so `ckimg inspect` does not pay for loading the ELF,
 * analysis and native-launcher code (start-up is most of a small command's time).
 */
import type { Verb } from "./common.js";

export const VERBS: Record<string, () => Promise<Verb>> = {
  capture: async () => (await import("./capture.js")).CAPTURE_VERB,
  restore: async () => (await import("./restore.js")).RESTORE_VERB,
  inspect: async () => (await import("./image.js")).INSPECT_VERB,
  verify: async () => (await import("./image.js")).VERIFY_VERB,
  diff: async () => (await import("./diff.js")).DIFF_VERB,
  elf: async () => (await import("./elf.js")).ELF_VERB,
  sym: async () => (await import("./symbols.js")).SYM_VERB,
  bt: async () => (await import("./symbols.js")).BT_VERB,
  got: async () => (await import("./got.js")).GOT_VERB,
  mem: async () => (await import("./memory.js")).MEM_VERB,
  strings: async () => (await import("./memory.js")).STRINGS_VERB,
  "to-core": async () => (await import("./core.js")).TO_CORE_VERB,
  flatten: async () => (await import("./flatten.js")).FLATTEN_VERB,
  convert: async () => (await import("./convert.js")).CONVERT_VERB,
  run: async () => (await import("./run.js")).RUN_VERB,
};
