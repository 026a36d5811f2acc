/**
 * Hostile images against the C restorer: a deterministic mutation campaign (seeded PRNG,
 * test/native/image-mutate.ts) over the conformance corpus's accepted images and fresh captures
 * of programs holding pipes, unix sockets with queued data and anon-inode fds. Each mutation
 * damages one record (bits, length and count fields set to edge values, truncated or extended
 * payloads, dropped or duplicated records, index keys, record types) and fixes up the CRCs so the
 * damage reaches the decoders.
 *
 * `ckimg-restore --check` must never die by a signal, hang, or exit with anything but 0 or 2;
 * on 2 it prints one `ckimg: IMG: ...` line (warnings, which name themselves, may come first).
 * A real restore of images damaged in their fd/resource records either runs the process or
 * refuses, and a refusal leaves no process with the image's PID behind, even when the damage is
 * only found while the process is being rebuilt.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FD_RESOURCE_TYPES, RECORD, Rng, buildImage, mutate, parseImage } from "./image-mutate.js";
import { REPO, compileC, makeTempDir, removeTempDirs, requireBuild, runCli, sleep, startProcess } from "./helpers.js";

const RESTORE = join(REPO, "build/ckimg-restore");
const CORPUS = join(REPO, "corpus/conformance");
const CHECK_TIMEOUT_MS = 5_000;

let tmp = "";
/** captured images of live programs: path and the PID they hold */
const captures: { name: string; img: string; pid: number }[] = [];

async function captureProgram(name: string, file: string, includeDir: string): Promise<void> {
  const exe = compileC(readFileSync(file, "utf8"), name, ["-I", includeDir]);
  const scratch = makeTempDir(`ckimg-fuzz-${name}-`);
  const p = startProcess([exe, scratch]);
  try {
    await p.waitForLine(/^ready/);
    const img = join(tmp, `${name}.img`);
    const r = runCli(["capture", String(p.pid), "-o", img, "--kill"]);
    if (r.status !== 0) throw new Error(`capture of ${name} failed (${r.status}): ${r.stderr}`);
    await p.exited;
    for (let i = 0; i < 500 && existsSync(`/proc/${p.pid}`); i++) await sleep(20);
    captures.push({ name, img, pid: p.pid });
  } finally {
    await p.kill();
  }
}

beforeAll(async () => {
  requireBuild();
  tmp = makeTempDir("ckimg-fuzz-");
  const fp = join(REPO, "test/native/fd-programs"), sp = join(REPO, "test/native/state-programs");
  await captureProgram("pipes", join(fp, "pipes.c"), fp);
  await captureProgram("unix", join(fp, "unix.c"), fp);
  await captureProgram("anonfds", join(sp, "anonfds.c"), sp);
  await captureProgram("timers", join(sp, "timers.c"), sp);      // two threads
}, 120_000);
afterAll(() => removeTempDirs());

/** What is wrong with a refusal's stderr, or "" (warnings first, then exactly one error line). */
function badRefusal(stderr: string, img: string): string {
  const lines = stderr.trimEnd().split("\n").filter((l) => !l.startsWith(`ckimg: ${img}: warning: `));
  if (lines.length !== 1) return `${lines.length} error lines: ${JSON.stringify(stderr.slice(0, 600))}`;
  if (!lines[0].startsWith(`ckimg: ${img}: `)) return `unexpected line ${JSON.stringify(lines[0].slice(0, 300))}`;
  return "";
}

describe("mutated images against ckimg-restore --check", () => {
  it("never crash, hang or leave more than one error line (seeded campaign)", () => {
    const seeds = [
      ...readdirSync(CORPUS).filter((f) => f.startsWith("accept-") && f.endsWith(".img")).sort().map((f) => join(CORPUS, f)),
      ...captures.map((c) => c.img),
    ];
    const perSeed = 18;
    const failures: string[] = [];
    const outcomes = { ok: 0, refused: 0 };
    const path = join(tmp, "case.img");
    seeds.forEach((seed, si) => {
      const original = readFileSync(seed);
      const parsed = parseImage(original);
      const rng = new Rng(0x5eed + si);
      for (let i = 0; i < perSeed; i++) {
        const m = mutate(original, parsed, rng);
        writeFileSync(path, m.image);
        const r = spawnSync(RESTORE, ["--check", path], { encoding: "utf8", timeout: CHECK_TIMEOUT_MS, killSignal: "SIGKILL" });
        const where = `${seed.split("/").pop()} case ${i} (${m.what})`;
        if (r.error || r.signal) failures.push(`${where}: ${r.signal ? `killed by ${r.signal}` : ""} ${r.error?.message ?? ""}`);
        else if (r.status === 0) outcomes.ok++;
        else if (r.status !== 2) failures.push(`${where}: exit ${r.status}: ${r.stderr.slice(0, 300)}`);
        else {
          outcomes.refused++;
          const why = badRefusal(r.stderr, path);
          if (why) failures.push(`${where}: ${why}`);
          if (r.stdout !== "") failures.push(`${where}: stdout on refusal: ${r.stdout.slice(0, 200)}`);
        }
      }
    });
    expect(failures).toEqual([]);
    expect(outcomes.ok + outcomes.refused).toBe(seeds.length * perSeed);
    // the fix-ups make most damage reach the decoders, and some damage (page bytes) is harmless
    expect(outcomes.refused).toBeGreaterThan(outcomes.ok);
    expect(outcomes.ok).toBeGreaterThan(0);
  }, 120_000);

  it("a path holding a newline is still refused on one line", () => {
    const parsed = parseImage(readFileSync(captures[0].img));
    const file = parsed.records.find((r) => r.type === RECORD.MAPPED_FILE)!;
    const fixed = file.payload.readUInt32LE(0), length = file.payload.readUInt32LE(fixed);
    file.payload[fixed + 4 + length - 2] = 0x0a;        // the path now names a file that is not there
    const path = join(tmp, "newline.img");
    writeFileSync(path, buildImage(parsed));
    const r = spawnSync(RESTORE, ["--check", path], { encoding: "utf8", timeout: CHECK_TIMEOUT_MS });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^ckimg: ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: MAPPED_FILE record #\\d+: .*\\?.*\\n$`));
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  });
});

/** Run a real restore; kill the process if it comes up; report how it ended. */
function realRestore(img: string, pid: number): Promise<{ code: number | null; signal: string | null; ran: boolean; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(RESTORE, [img, "--pid-fd", "3"], { stdio: ["ignore", "ignore", "pipe", "pipe"] });
    let stderr = "", pidText = "";
    c.stderr!.setEncoding("utf8").on("data", (s: string) => (stderr += s));
    (c.stdio[3] as NodeJS.ReadableStream).setEncoding("utf8");
    (c.stdio[3] as NodeJS.ReadableStream).on("data", (s: string) => {
      pidText += s;
      // it runs: the damage was harmless to it; end it (the restorer waits for it and exits)
      try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
    });
    const hang = setTimeout(() => c.kill("SIGKILL"), 30_000);
    c.on("close", (code, signal) => {
      clearTimeout(hang);
      resolve({ code, signal, ran: pidText !== "", stderr });
    });
  });
}

describe("mutated fd/resource records against a real restore", () => {
  it("refuse with one line and leave no process behind", async () => {
    const failures: string[] = [];
    let refused = 0, ran = 0;
    for (const cap of captures) {
      const original = readFileSync(cap.img);
      const parsed = parseImage(original);
      const rng = new Rng(0xfd00 + cap.name.length);
      const cases = [];
      // damage every kind of fd/resource record the capture holds, one case per kind and a few more
      const kinds = [...new Set(parsed.records.map((r) => r.type).filter((t) => FD_RESOURCE_TYPES.has(t)))];
      for (const t of kinds) cases.push(mutate(original, parsed, rng, { types: new Set([t]), mutators: ["u32", "fixedSize", "truncate", "bitflip"] }));
      for (let i = 0; i < 4; i++) cases.push(mutate(original, parsed, rng, { types: FD_RESOURCE_TYPES, mutators: ["drop", "duplicate", "u64", "indexKey"] }));
      // an FD record dropped: what refers to it (an epoll watch, a shared description) is found missing
      // only once the process is being built
      const fdRecords = parsed.records.filter((r) => r.type === RECORD.FD);
      const dropped = { ...parsed, records: parsed.records.filter((r) => r !== fdRecords[fdRecords.length - 1]) };
      cases.push({ what: "last FD record dropped", image: buildImage(dropped) });
      for (const [i, m] of cases.entries()) {
        const path = join(tmp, `${cap.name}-real-${i}.img`);
        writeFileSync(path, m.image);
        const r = await realRestore(path, cap.pid);
        const where = `${cap.name} case ${i} (${m.what})`;
        for (let k = 0; k < 100 && existsSync(`/proc/${cap.pid}`); k++) await sleep(20);
        if (existsSync(`/proc/${cap.pid}`)) {
          failures.push(`${where}: process ${cap.pid} left behind (exit ${r.code ?? r.signal})`);
          try { process.kill(cap.pid, "SIGKILL"); } catch { /* gone */ }
        }
        if (r.signal) failures.push(`${where}: restorer ${r.signal === "SIGKILL" ? "hung" : `killed by ${r.signal}`}`);
        else if (r.ran) ran++;
        else if (r.code !== 2) failures.push(`${where}: exit ${r.code} before the process ran: ${r.stderr.slice(0, 300)}`);
        else {
          refused++;
          const why = badRefusal(r.stderr, path);
          if (why) failures.push(`${where}: ${why}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(refused).toBeGreaterThan(ran);
  }, 240_000);
});

describe("a restored process that ends at once", () => {
  it("is waited for, however its threads' detach and its exit interleave (no hang)", async () => {
    const cap = captures.find((c) => c.name === "timers")!;
    for (let i = 0; i < 6; i++) {
      // stdin at EOF: the program (two threads) exits as soon as it runs, racing the restorer's detach
      const r = spawnSync(RESTORE, [cap.img], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8", timeout: 20_000, killSignal: "SIGKILL" });
      expect(r.signal, `run ${i}: the restorer hung`).toBeNull();
      expect(r.status, r.stderr).not.toBe(2);
      for (let k = 0; k < 100 && existsSync(`/proc/${cap.pid}`); k++) await sleep(20);
      expect(existsSync(`/proc/${cap.pid}`)).toBe(false);
    }
  }, 180_000);
});
