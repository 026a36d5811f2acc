/** examples/criu-archive.mjs runs as a user would run it (against the built dist/). */
import { beforeAll, describe, expect, test } from "vitest";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { installFixtureProgram } from "../criu/fixture.js";

const root = new URL("../../", import.meta.url).pathname;
const built = existsSync(`${root}dist/criu/index.js`);
beforeAll(installFixtureProgram);

describe.skipIf(!built)("CRIU example (needs npm run build)", () => {
  test("criu-archive.mjs shows the container, the process, backtraces and a memory match", () => {
    const out = execFileSync(process.execPath, [`${root}examples/criu-archive.mjs`, `${root}corpus/criu/quiet-podman.tar.gz`, "CKIMG-CRIU"], { encoding: "utf8" });
    expect(out).toMatch(/^container quiet-fixture \(Podman, image localhost\/ckimg\/quiet:latest, runtime crun\)/);
    expect(out).toMatch(/pid \d+ \(quiet\) criu 2: 3 threads, argv \["\.\/quiet"\]/);
    expect(out).toMatch(/thread \d+: pause\+0x30 \(libc\.so\.6\) <- main\+/);
    expect(out).toMatch(/"CKIMG-CRIU" at 0x[0-9a-f]+ in \[heap\]/);
  });
});
