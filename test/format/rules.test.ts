/** The rule table and FORMAT.md's "Reader obligations" stay in step; errors carry rule ids. */
import { describe, expect, test } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { READER_RULES, openImage, writeSyntheticImage } from "../../src/format/index.js";
import { tempDir } from "../support/tmp.js";

const dir = tempDir("ckimg-rules-");

describe("reader rules", () => {
  test("every rule of src/format/rules.ts is a row of FORMAT.md with the same code, and back", () => {
    const spec = readFileSync(new URL("../../docs/FORMAT.md", import.meta.url), "utf8");
    const section = spec.slice(spec.indexOf("## Reader obligations"), spec.indexOf("## 5. Limits"));
    const rows = [...section.matchAll(/^\| ([A-Z][0-9]+) \| `([A-Z_]+)` \|/gm)].map((m) => [m[1], m[2]]);
    expect(rows).toEqual(READER_RULES.map((r) => [r.id, r.code]));
    expect(new Set(READER_RULES.map((r) => r.id)).size).toBe(READER_RULES.length);
  });

  test("a damaged header names its rule (H4); the version is checked before the CRC (H3)", async () => {
    const path = join(dir, "s.img");
    await writeSyntheticImage(path, { heapBytes: 8192 });
    const bytes = readFileSync(path);
    const crcBad = Buffer.from(bytes);
    crcBad[61] ^= 1;
    writeFileSync(join(dir, "crc.img"), crcBad);
    await expect(openImage(join(dir, "crc.img"))).rejects.toMatchObject({ code: "BAD_HEADER", rule: "H4", offset: 60 });
    const v2 = Buffer.from(bytes);
    v2[8] = 2;
    writeFileSync(join(dir, "v2.img"), v2);
    // version before CRC: a 2.x header may lay itself out differently
    await expect(openImage(join(dir, "v2.img"))).rejects.toMatchObject({ code: "UNSUPPORTED_VERSION", rule: "H3" });
  });
});
