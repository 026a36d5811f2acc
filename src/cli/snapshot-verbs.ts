/**
 * The verbs that start from the CLI's V8 snapshot (see snapshot.ts): the reporting ones.
 * scripts/bundle.mjs writes this list into the blob's stamp, where bin/launch.sh reads it, so
 * this is the only place that names them. No imports, no side effects: the bundler loads it.
 */
export const SNAPSHOT_VERBS: readonly string[] = ["inspect", "verify", "diff", "sym", "bt", "got", "mem", "strings", "to-core", "elf", "convert"];
