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
 *
 * Then a V8 start-up snapshot of the reporting verbs (dist/bin/ckimg.blob, see
 * src/cli/snapshot.ts) with a stamp naming the node binary and this checkout; bin/launch.sh
 * uses the blob only when the stamp still holds. A failed snapshot build is a warning: the
 * CLI works without it, only slower to start.
 */
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { realpathSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
await build({
  absWorkingDir: repo,
  entryPoints: { main: "dist/cli/main.js", "verify-worker": "dist/format/verify-worker.js", "flatten-child": "dist/job/flatten-child.js" },
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

await buildStartupSnapshot();

async function buildStartupSnapshot() {
  const bin = join(repo, "dist/bin");
  const blob = join(bin, "ckimg.blob");
  rmSync(blob, { force: true });
  rmSync(`${blob}.stamp`, { force: true });
  // One CommonJS file (a snapshot builder cannot load modules); import.meta.url is where the
  // ESM bundle lives, so paths computed from it (build/ckimg-*, verify-worker.js) stay true.
  await build({
    absWorkingDir: repo,
    entryPoints: ["dist/cli/snapshot.js"],
    outfile: join(bin, "snapshot.cjs"),
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node20",
    define: { "import.meta.url": JSON.stringify(pathToFileURL(join(bin, "main.js")).href) },
    // The blob holds every function's source: without the whitespace it is 1.3 MB smaller
    // (9.6 → 8.3 MB), and reading and deserialising it is most of a short verb's CPU
    // (`inspect` of a 1 GiB CRIU dump: ~0.44 → ~0.37 s median at load 6 on 2 cores).
    // Names stay (stack traces still say which function).
    minifyWhitespace: true,
    logLevel: "warning",
  });
  // The blob starts only under the V8 flags it was built with (see SNAPSHOT_V8_FLAGS)
  const { SNAPSHOT_VERBS, SNAPSHOT_V8_FLAGS } = await import(pathToFileURL(join(repo, "dist/cli/snapshot-verbs.js")).href);
  const r = spawnSync(process.execPath, [...SNAPSHOT_V8_FLAGS, "--snapshot-blob", blob, "--build-snapshot", join(bin, "snapshot.cjs"), join(repo, "corpus")], { encoding: "utf8" });
  if (r.status !== 0) {
    rmSync(blob, { force: true });
    console.warn(`bundle: no start-up snapshot (the CLI works without it): ${(r.stderr || r.error?.message || "").trim().split("\n").pop()}`);
    return;
  }
  // bin/launch.sh: the node that built the blob, the folder of bin/ckimg, the verbs it serves;
  // then the V8 flags to start it with
  writeFileSync(`${blob}.stamp`, `${realpathSync(process.execPath)} ${realpathSync(join(repo, "bin"))} ${SNAPSHOT_VERBS.join(" ")}\n${SNAPSHOT_V8_FLAGS.join(" ")}\n`);
}
