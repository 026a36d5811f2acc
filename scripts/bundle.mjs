#!/usr/bin/env node
/**
 * Bundles the CLI (dist/cli/main.js, compiled by tsc) into dist/bin/ for bin/ckimg.
 *
 * Why: Node 20 has no compile cache, and loading the CLI as ~150 separate ES modules (our own
 * plus @bufbuild/protobuf, tar-stream …) cost more than the work of most verbs — `ckimg
 * inspect` of a 1 GiB CRIU dump spent 0.24 s of its 0.38 s importing. One bundle, split per
 * verb so each verb still loads only what it uses, starts in about 0.3 of that.
 *
 * dist/bin is two levels below the repository like dist/cli, so the paths the CLI computes
 * from import.meta.url (build/ckimg-capture, build/ckimg-restore) stay true; the verify worker
 * is an entry of its own beside the chunks that start it. The library (dist/index.js …) is
 * not bundled: scripts import it module by module as before.
 */
import { build } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
await build({
  absWorkingDir: repo,
  entryPoints: { main: "dist/cli/main.js", "verify-worker": "dist/format/verify-worker.js" },
  outdir: "dist/bin",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // CommonJS dependencies (tar-stream and its helpers) call require(): give ESM chunks one
  banner: { js: "import { createRequire as __ckimgCreateRequire } from 'node:module'; const require = __ckimgCreateRequire(import.meta.url);" },
  sourcemap: "linked",
  logLevel: "warning",
});
