/**
 * The runnable example in src/elf/index.ts's doc comment runs, against the built library
 * (dist/, as `npm run build` leaves it), and prints what it promises.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

const root = join(__dirname, "../..");
const dist = join(root, "dist/elf/index.js");

describe.skipIf(!existsSync(dist) || !existsSync("/bin/true"))("src/elf/index.ts example", () => {
  it("runs and prints the file type, PLT stubs and the entry point's symbol", () => {
    const src = readFileSync(join(root, "src/elf/index.ts"), "utf8");
    const block = /```ts\n([\s\S]*?)```/.exec(src)![1].replace(/^ \* ?/gm, "");
    const code = block.replace(`from "ckimg/elf"`, `from ${JSON.stringify(pathToFileURL(dist).href)}`);
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8" });
    expect(out).toMatch(/^(DYN|EXEC) /);
    expect(out).toMatch(/[0-9a-f]+ \S+\n/);
  });
});
