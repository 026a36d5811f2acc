/**
 * The conformance corpus (corpus/conformance/): the committed files are what the generator
 * writes today (so they cannot drift from the writer or the rules), and our reader reaches the
 * outcome the manifest gives for every one — accept with the expected summary, or refuse with
 * the expected code and rule, at the stage given — and `ckimg verify` names the rule with its
 * record and offset for every refused image.
 */
import { describe, expect, test } from "vitest";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { buildConformanceCorpus, type ConformanceCase, type CorpusManifest } from "../../src/format/conformance.js";
import { ImageError, READER_RULES, openImage, verifyImage, type CheckpointImage, type RuleId } from "../../src/format/index.js";
import { writeFileSync } from "node:fs";
import { main } from "../../src/cli/main.js";
import { tempDir } from "../support/tmp.js";

const dir = new URL("../../corpus/conformance/", import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as CorpusManifest;
const hex = (v: bigint) => "0x" + v.toString(16);

async function cli(args: string[]) {
  let stdout = "", stderr = "";
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), stderrIsTty: false });
  return { code, stdout, stderr };
}

/** What our reader shows of an image, in the manifest's terms. */
async function summary(img: CheckpointImage) {
  const out = [];
  for (const p of img.processes) {
    const areas = [];
    for (const a of p.areas) {
      const read = await p.readMemoryMap(a.start, Number(a.end - a.start));
      const unknown: [string, string][] = [];
      for (const u of read.unknown) {
        const last = unknown[unknown.length - 1];
        if (last && last[1] === hex(u.start)) last[1] = hex(u.end);
        else unknown.push([hex(u.start), hex(u.end)]);
      }
      areas.push({ start: hex(a.start), end: hex(a.end), sha256: createHash("sha256").update(read.bytes).digest("hex"), unknown });
    }
    out.push({ pid: p.process.pid, threads: p.threads.length, fds: p.fds.length, areas });
  }
  return out;
}

/** Decode every page chunk of every process (what a full reader does before trusting pages). */
async function readAllChunks(img: CheckpointImage): Promise<void> {
  for (const p of img.processes) for (const c of p.ownChunks) await p.readChunk(c);
}

async function refusal(fn: () => Promise<unknown>): Promise<ImageError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ImageError) return err;
    throw err;
  }
  throw new Error("accepted");
}

describe("conformance corpus", () => {
  test("the committed corpus is exactly what the generator writes", async () => {
    const built = await buildConformanceCorpus();
    const names = new Set(built.map((b) => b.c.file));
    expect(manifest.cases.map((c) => c.file)).toEqual(built.map((b) => b.c.file));
    expect(manifest.cases).toEqual(built.map((b) => b.c));
    expect(manifest.rules).toEqual(READER_RULES);
    for (const b of built) expect(Buffer.from(b.bytes).equals(readFileSync(join(dir, b.c.file))), b.c.file).toBe(true);
    const extra = readdirSync(dir).filter((n) => !names.has(n) && n !== "manifest.json" && n !== "README.md");
    expect(extra).toEqual([]);
  });

  test("every reader rule has a refused image, every codec an accepted one; files stay small", () => {
    const refused = new Set(manifest.cases.filter((c) => c.outcome === "refuse").map((c) => c.rule));
    const missing = READER_RULES.filter((r) => r.id !== "R7" && !refused.has(r.id as RuleId)).map((r) => r.id);
    expect(missing).toEqual([]);
    for (const c of manifest.cases.filter((x) => x.outcome === "refuse" && x.rule)) {
      expect(READER_RULES.find((r) => r.id === c.rule)?.code, c.file).toBe(c.code);
    }
    for (const codec of ["none", "lz4", "lzf", "deflate"]) expect(existsSync(join(dir, `accept-codec-${codec}.img`))).toBe(true);
    for (const c of manifest.cases) expect(readFileSync(join(dir, c.file)).length, c.file).toBeLessThan(160 * 1024);
  });

  const cases = manifest.cases.filter((c) => !c.large);
  test.each(cases.filter((c) => c.outcome === "accept").map((c) => [c.file, c] as const))("accept %s", async (_name, c: ConformanceCase) => {
    const img = await openImage(join(dir, c.file));
    try {
      expect(await summary(img)).toEqual(c.processes);
    } finally {
      await img.close();
    }
    const report = await verifyImage(join(dir, c.file), { threads: 1 });
    expect(report.problems).toEqual([]);
    const r = await cli(["verify", join(dir, c.file)]);
    expect(r.code).toBe(0);
  });

  test.each(cases.filter((c) => c.outcome === "refuse").map((c) => [c.file, c] as const))("refuse %s", async (_name, c: ConformanceCase) => {
    const path = join(dir, c.file);
    if (c.stage === "open") {
      const err = await refusal(() => openImage(path));
      expect([err.code, err.rule], err.message).toEqual([c.code, c.rule]);
      expect(typeof err.offset, err.message).toBe("number");
    } else {
      const img = await openImage(path);
      try {
        if (c.stage === "read") {
          const err = await refusal(() => readAllChunks(img));
          expect([err.code, err.rule], err.message).toEqual([c.code, c.rule]);
          expect(typeof err.offset).toBe("number");
        } else {
          expect(img.problems.map((p) => [p.code, p.rule])).toContainEqual([c.code, c.rule]);
        }
      } finally {
        await img.close();
      }
    }
    // verify: exit 1 naming the rule, its record and offset; or (nothing to verify: H1-H3) exit 2 with one line naming them.
    const r = await cli(["verify", path]);
    // chain and tree refusals have a code but no rule id; a missing parent has no offset
    const ruleAt = c.rule ? new RegExp(`rule ${c.rule}: .* at offset \\d+`) : new RegExp(c.code!);
    if (r.code === 2) {
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(ruleAt);
      expect(c.rule).toMatch(/^H[1-3]$/);
    } else {
      expect(r.code, r.stdout + r.stderr).toBe(1);
      const line = r.stdout.split("\n").find((l) => ruleAt.test(l) && l.includes(c.code!));
      expect(line, r.stdout).toBeDefined();
      // rules about a record name it (type and sequence number)
      if (c.rule && /^[RPCAGU]/.test(c.rule) && c.rule !== "C1" && c.rule !== "C3") expect(line).toMatch(/ in [A-Za-z_0-9]+ record #\d+/);
    }
  });

  test("R7: a metadata record over 64 MiB is refused (generated, too large to commit)", async () => {
    const big = (await buildConformanceCorpus({ large: true })).find((b) => b.c.rule === "R7")!;
    expect(big.c.large).toBe(true);
    const path = join(tempDir("ckimg-conf-"), big.c.file);
    writeFileSync(path, big.bytes);
    const err = await refusal(() => openImage(path));
    expect([err.code, err.rule]).toEqual(["RECORD_TOO_LARGE", "R7"]);
  });
});
