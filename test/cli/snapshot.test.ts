/**
 * The CLI's start-up snapshot (src/cli/snapshot.ts, bin/launch.sh): the build makes it, the
 * launcher uses it for the reporting verbs, and a command started from it answers exactly as
 * the same command run as a plain Node script — output, errors and exit code.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, test } from "vitest";
import { SNAPSHOT_V8_FLAGS, SNAPSHOT_VERBS } from "../../src/cli/snapshot-verbs.js";


const REPO = join(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = join(REPO, "bin/ckimg");
const BLOB = join(REPO, "dist/bin/ckimg.blob");
const CRIU = join(REPO, "corpus/criu");
const IMAGES = join(REPO, "corpus/images");
const tmp = mkdtempSync(join(tmpdir(), "ckimg-snapshot-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(argv: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", env, cwd: REPO, maxBuffer: 64 << 20 });
  // verify reports how long it took: the one thing two runs may not agree on
  const untimed = (s: string) => s.replace(/"seconds": [\d.e+-]+/g, '"seconds": T').replace(/ in [\d.]+ s \([^)]*\)/g, " in T");
  return { status: r.status, stdout: untimed(r.stdout), stderr: untimed(r.stderr) };
}

describe("start-up snapshot", () => {
  test("the build made the blob, stamped with this node, this checkout, the verbs it serves and its V8 flags", () => {
    expect(existsSync(BLOB)).toBe(true);
    const [first, flags, ...rest] = readFileSync(`${BLOB}.stamp`, "utf8").split("\n");
    expect(flags).toBe(SNAPSHOT_V8_FLAGS.join(" "));
    expect(rest).toEqual([""]);
    const [node, bin, ...verbs] = first.split(" ");
    expect(existsSync(node)).toBe(true);
    expect(bin).toBe(join(REPO, "bin"));
    expect(verbs).toEqual([...SNAPSHOT_VERBS]);
    expect(verbs).toContain("inspect");
    expect(verbs).not.toContain("restore");
  });

  test("the launcher starts reporting verbs from the blob and the others as a script", () => {
    const traced = (verb: string) => spawnSync("sh", ["-x", BIN, verb, "--help"], { encoding: "utf8", cwd: REPO }).stderr;
    expect(traced("inspect")).toContain(` ${SNAPSHOT_V8_FLAGS.join(" ")} --snapshot-blob `);
    expect(traced("inspect")).toMatch(/exec \S*node (--\S+ )*--snapshot-blob \S*ckimg\.blob inspect --help/);
    expect(traced("restore")).not.toMatch(/--snapshot-blob/);
    // NODE_OPTIONS may change V8's flags, which a snapshot cannot take: plain start then
    const withOptions = spawnSync("sh", ["-x", BIN, "inspect", "--help"], { encoding: "utf8", env: { ...process.env, NODE_OPTIONS: "--max-old-space-size=512" } });
    expect(withOptions.stderr).not.toMatch(/--snapshot-blob/);
    expect(withOptions.status).toBe(0);
  });

  test("a reporting verb does not load NODE_EXTRA_CA_CERTS (it opens no TLS connection); other verbs still do", () => {
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: join(tmp, "no-such-bundle.pem") };
    // node warns on stderr when it cannot load the file: that it tried
    const reporting = spawnSync(BIN, ["inspect", join(IMAGES, "synthetic-lz4.img")], { encoding: "utf8", env });
    expect(reporting.status).toBe(0);
    expect(reporting.stderr).not.toMatch(/extra certs/i);
    const plain = spawnSync(BIN, ["restore", "--help"], { encoding: "utf8", env });
    expect(plain.stderr).toMatch(/extra certs/i);
  });

  // Each: the same output, errors and exit code from the snapshot and from `node bin/ckimg`.
  const cases: [string, string[]][] = [
    ["inspect", ["inspect", join(IMAGES, "synthetic-lz4.img")]],
    ["inspect --json", ["inspect", "--json", join(IMAGES, "synthetic-deflate.img")]],
    ["inspect a CRIU dump", ["inspect", join(CRIU, "quiet.criu")]],
    ["inspect a container archive", ["inspect", "--json", join(CRIU, "quiet-podman.tar.gz")]],
    ["verify intact", ["verify", join(IMAGES, "synthetic-lzf.img")]],
    ["verify a damaged chunk (exit 1)", ["verify", "--json", join(IMAGES, "damaged-chunk.img")]],
    ["inspect a truncated image (exit 2)", ["inspect", join(IMAGES, "truncated.img")]],
    ["a missing file (exit 2)", ["inspect", join(tmp, "missing.img")]],
    ["diff", ["diff", join(IMAGES, "synthetic-lz4.img"), join(IMAGES, "synthetic-none.img")]],
    ["bt", ["bt", join(CRIU, "quiet.ckimg")]],
    ["got --json", ["got", "--json", join(CRIU, "quiet.criu")]],
    ["mem --search", ["mem", "--search", "IMG-CRIU-MARKER", join(CRIU, "quiet.criu")]],
    ["strings", ["strings", join(CRIU, "quiet.ckimg")]],
    ["elf", ["elf", "syms", join(REPO, "corpus/elf/ckimg-libv.so")]],
    ["an unknown option (exit 2)", ["inspect", "--frobnicate", join(IMAGES, "synthetic-lz4.img")]],
  ];
  test.each(cases)("%s: as a plain script", (_name, args) => {
    const fromBlob = run([BIN, ...args]);
    const plain = run([process.execPath, BIN, ...args]);
    expect(fromBlob).toEqual(plain);
  });

  test("to-core writes the same core file both ways", () => {
    const a = join(tmp, "a.core"), b = join(tmp, "b.core");
    expect(run([BIN, "to-core", join(CRIU, "quiet.ckimg"), "-o", a]).status).toBe(0);
    expect(run([process.execPath, BIN, "to-core", join(CRIU, "quiet.ckimg"), "-o", b]).status).toBe(0);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
  });

  test("started through a symlink (npm's .bin), it finds its blob", () => {
    const link = join(tmp, "ckimg");
    symlinkSync(BIN, link);
    const traced = spawnSync("sh", ["-x", link, "inspect", join(IMAGES, "synthetic-lz4.img")], { encoding: "utf8" });
    expect(traced.status).toBe(0);
    expect(traced.stderr).toMatch(/--snapshot-blob/);
    expect(traced.stdout).toContain("synthetic-app");
  });
});
