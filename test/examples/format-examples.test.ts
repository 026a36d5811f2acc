/** The library examples in examples/ run as a user would run them (against the built dist/). */
import { describe, expect, test } from "vitest";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

const root = new URL("../../", import.meta.url).pathname;
const built = existsSync(`${root}dist/index.js`);

describe.skipIf(!built)("examples (needs npm run build)", () => {
  test("find-secrets.mjs reports the process and finds a string in its heap", () => {
    const out = execFileSync(process.execPath, [`${root}examples/find-secrets.mjs`, `${root}corpus/images/synthetic-lz4.img`, "quick brown fox"], { encoding: "utf8" });
    expect(out).toMatch(/^pid 4001 \(synthetic-app\) uid 1000 exe \/usr\/bin\/synthetic-app/);
    expect(out).toMatch(/credential-like environment variables: none/);
    expect(out).toMatch(/"quick brown fox" at 0x5555556[0-9a-f]+ in \[heap\]/);
  });
});
