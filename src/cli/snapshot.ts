/**
 * Builder of the CLI's V8 start-up snapshot (dist/bin/ckimg.blob; scripts/bundle.mjs runs it
 * as `node --build-snapshot`, never at run time).
 *
 * Why: a reporting verb on a small input spends most of its CPU before it reads a byte —
 * Node's own start, evaluating the bundle, booting @bufbuild/protobuf's registry of CRIU's 46
 * .proto files, compiling the functions the verb runs. A snapshot taken after all of that has
 * run once starts with the heap already built: `ckimg inspect` of a 1 GiB CRIU dump needs
 * ~0.28 s of CPU instead of ~0.40 s. bin/launch.sh uses the blob for the reporting verbs only
 * (capture, restore and run start child processes and run for long anyway) and only when the
 * stamp beside it names this node binary and this checkout; otherwise it runs bin/ckimg.
 *
 * Nothing here may read the environment, the clock or the working directory at module level:
 * such values would be frozen into the blob. The verbs read them when they run.
 */
import { startupSnapshot } from "node:v8";
import { main } from "./main.js";
import { VERBS } from "./verbs.js";
import { SNAPSHOT_VERBS } from "./snapshot-verbs.js";
import type { CliContext } from "./common.js";

/**
 * Loads every reporting verb and runs a few on the corpus, so that their modules are evaluated
 * and their hot functions compiled into the blob. Failures are ignored: the warm-up is an
 * optimisation, the blob is correct without it.
 */
async function warmUp(corpus: string): Promise<void> {
  const silent: CliContext = { stdout() {}, stderr() {}, stdoutBytes() {}, stderrIsTty: false };
  for (const verb of SNAPSHOT_VERBS) await VERBS[verb]();
  await import("../criu/archive.js");
  for (const args of [
    ["inspect", `${corpus}/criu/quiet.criu`],
    ["inspect", `${corpus}/criu/quiet-podman.tar.gz`],
    ["inspect", `${corpus}/images/synthetic-lz4.img`],
    ["inspect", "--json", `${corpus}/images/synthetic-lzf.img`],
  ]) {
    await main(args, silent).catch(() => {});
  }
}

async function buildSnapshot(): Promise<void> {
  // bundle.mjs passes the corpus folder as the builder's argument
  const corpus = process.argv[2];
  if (corpus) await warmUp(corpus);
  startupSnapshot.setDeserializeMainFunction(async () => {
    // `ckimg inspect IMG | head` closes the pipe early: that is not an error (as in bin/ckimg)
    process.stdout.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
      throw err;
    });
    process.exitCode = await main(process.argv.slice(1));
  });
}

if (startupSnapshot.isBuildingSnapshot()) void buildSnapshot();
