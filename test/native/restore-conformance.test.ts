/**
 * The C restorer against the conformance corpus (corpus/conformance/): every image the manifest
 * says a reader refuses, ckimg-restore refuses too — exit 2 and one line on stderr naming the
 * error code the manifest gives — before it makes any process (`--check` and a real restore).
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { CorpusManifest } from "../../src/format/conformance.js";
import { REPO } from "./helpers.js";

const RESTORE = join(REPO, "build/ckimg-restore");
const dir = join(REPO, "corpus/conformance");
const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as CorpusManifest;
const refused = manifest.cases.filter((c) => c.outcome === "refuse" && !c.large);

describe("ckimg-restore refuses every refused image of the conformance corpus", () => {
  it.each(refused.map((c) => [c.file, c] as const))("%s", (_name, c) => {
    if (!existsSync(RESTORE)) throw new Error("build/ckimg-restore missing: run npm run build first");
    const path = join(dir, c.file);
    // Chunk content ("read" stage) is checked by the page workers while the process is rebuilt
    // (it never runs): --check reads every chunk up front.
    for (const args of c.stage === "read" ? [[path, "--check"]] : [[path, "--check"], [path, "--detach"]]) {
      const r = spawnSync(RESTORE, args, { encoding: "utf8", timeout: 30_000 });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stdout).toBe("");                       // --detach prints a pid only once a process runs
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^ckimg: ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: ${c.code}: `));
    }
  });
});
