/**
 * The verb table: one line per verb, handlers one file per verb family.
 * Keep this file a plain table so adding a verb touches one line here.
 */
import type { Verb } from "./common.js";

export const VERBS: Record<string, Verb> = {};
