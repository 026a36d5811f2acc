/**
 * The verb table: one line per verb, handlers one file per verb family.
 * Keep this file a plain table so adding a verb touches one line here.
 */
import type { Verb } from "./common.js";
import { CAPTURE_VERB } from "./capture.js";
import { TO_CORE_VERB } from "./core.js";
import { DIFF_VERB } from "./diff.js";
import { ELF_VERB } from "./elf.js";
import { GOT_VERB } from "./got.js";
import { BT_VERB, SYM_VERB } from "./symbols.js";
import { INSPECT_VERB, VERIFY_VERB } from "./image.js";
import { MEM_VERB, STRINGS_VERB } from "./memory.js";
import { RESTORE_VERB } from "./restore.js";

export const VERBS: Record<string, Verb> = {
  capture: CAPTURE_VERB,
  elf: ELF_VERB,
  inspect: INSPECT_VERB,
  verify: VERIFY_VERB,
  restore: RESTORE_VERB,
  diff: DIFF_VERB,
  mem: MEM_VERB,
  strings: STRINGS_VERB,
  "to-core": TO_CORE_VERB,
  got: GOT_VERB,
  sym: SYM_VERB,
  bt: BT_VERB,
};
