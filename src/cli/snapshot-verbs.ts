/**
 * The verbs that start from the CLI's V8 snapshot (see snapshot.ts): the reporting ones.
 * scripts/bundle.mjs writes this list into the blob's stamp, where bin/launch.sh reads it, so
 * this is the only place that names them. No imports, no side effects: the bundler loads it.
 */
export const SNAPSHOT_VERBS: readonly string[] = ["inspect", "verify", "diff", "sym", "bt", "got", "mem", "strings", "to-core", "elf", "convert"];

/**
 * V8 flags the blob is built with and started with (a blob only starts under the flags it was
 * built with: V8 compares a hash of them). bundle.mjs writes them on the stamp's second line,
 * bin/launch.sh passes them to node.
 *
 * --interrupt-budget 16x the default (67584): a function is optimised by TurboFan only after
 * 16x as much of its bytecode has run. A reporting verb runs for a fraction of a second and
 * its optimised code would barely be used: `inspect` of a 1 GiB CRIU dump spent ~30 ms of CPU
 * on a TurboFan thread compiling the pagemap decoder (1037 entries) — ~10 % of its CPU. A long
 * verb (mem --search over 1 GiB) still gets its hot loops optimised within its first
 * milliseconds.
 */
export const SNAPSHOT_V8_FLAGS: readonly string[] = ["--interrupt-budget=1081344"];
