/**
 * corpus/criu/quiet.* were made from a program run at /tmp/ckimg-criu-fixture/quiet
 * (corpus/criu/make-fixtures.sh). Putting the committed binary back there lets the CRIU side
 * resolve the program's symbols from disk on any machine (CRIU matches files by path, size and
 * build-id). The ckimg capture matches by inode and mtime too, so a copy never matches it:
 * tests that compare the two use SAME_SOURCES, which keeps both sides to the images' own bytes.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const CORPUS = new URL("../../corpus/criu/", import.meta.url).pathname;
export const RUNDIR = "/tmp/ckimg-criu-fixture";

export function installFixtureProgram(): void {
  const src = join(CORPUS, "quiet"), dst = join(RUNDIR, "quiet");
  mkdirSync(RUNDIR, { recursive: true });
  if (!existsSync(dst) || statSync(dst).size !== statSync(src).size || !readFileSync(dst).equals(readFileSync(src))) {
    // Test files run in parallel: copy beside, then rename, so nobody sees a half-copied binary.
    const tmp = `${dst}.${process.pid}`;
    copyFileSync(src, tmp);
    renameSync(tmp, dst);
  }
  for (const f of ["out", "err"]) if (!existsSync(join(RUNDIR, f))) writeFileSync(join(RUNDIR, f), "");
}

/** Open options that keep both images to their own bytes (no mapped file read from disk). */
export const SAME_SOURCES = { fileRoot: "/nonexistent-ckimg-root" } as const;
