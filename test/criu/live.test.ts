/**
 * Live CRIU: real dumps made here (a threaded C program with pipes and sockets, python3),
 * compared with ckimg captures of the same process state, and the round trips both ways:
 * ckimg capture → convert --to criu → `criu restore` carries on; `criu dump` → convert →
 * `ckimg restore` carries on. Needs root and CRIU v4.2 (env CRIU, or /work/tools/criu/criu/criu);
 * without them the suite is skipped and says why. The fixture tests (reader.test.ts) run anyway.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, closeSync, constants, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openImage } from "../../src/open.js";
import { backtrace, auditGot, diffImages, searchMemory } from "../../src/analysis/index.js";
import { compileC, makeTempDir, removeTempDirs, REPO } from "../native/helpers.js";

function findCriu(): string | undefined {
  for (const p of [process.env.CRIU, "/work/tools/criu/criu/criu"]) {
    if (!p) continue;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // try the next
    }
  }
  return undefined;
}

const CRIU = findCriu();
const ROOT = process.getuid?.() === 0;
const SKIP = !CRIU ? "CRIU not found (set CRIU=path to a CRIU v4.2 binary)" : !ROOT ? "CRIU needs root" : "";
const CLI = join(REPO, "bin/ckimg");

interface Running {
  pid: number;
  child: ChildProcess;
  out: string;
  exited: Promise<void>;
}

/** Start argv in its own session (CRIU wants a session leader) with stdout/stderr to a file; node reaps it. */
function startDetached(argv: string[], out: string): Running {
  const fd = openSync(out, "a", 0o600);
  const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ["ignore", fd, fd], env: { PATH: "/usr/bin:/bin", LANG: "C" } });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return { pid: child.pid!, child, out, exited };
}

async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const text = (path: string) => (existsSync(path) ? readFileSync(path, "utf8") : "");

function criu(args: string[], dir: string): void {
  const r = spawnSync(CRIU!, [...args, "-D", dir, "-o", "criu.log"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`criu ${args[0]} failed (${r.status}):\n${text(join(dir, "criu.log")).split("\n").filter((l) => /Error/.test(l)).join("\n")}`);
}

function ckimg(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ckimg ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/**
 * A CRIU dump directory packed as a container checkpoint archive in Podman's layout
 * (docs/CRIU.md: checkpoint/ holds CRIU's images, stats-dump beside it, config.dump and
 * spec.dump saying which engine and container; hand-written here, not made by Podman).
 */
function podmanArchive(dir: string, name: string, compress: "none" | "gzip"): string {
  const tree = join(dir, "..", `${name}.arc`);
  mkdirSync(join(tree, "checkpoint"), { recursive: true });
  for (const f of readdirSync(dir)) copyFileSync(join(dir, f), join(tree, "checkpoint", f));
  if (existsSync(join(dir, "stats-dump"))) copyFileSync(join(dir, "stats-dump"), join(tree, "stats-dump"));
  writeFileSync(join(tree, "config.dump"), JSON.stringify({ id: `${name}-id`, name, rootfsImageName: `localhost/ckimg/${name}:latest`, runtime: "crun", createdTime: "2026-12-02T08:00:00Z" }));
  writeFileSync(join(tree, "spec.dump"), JSON.stringify({ annotations: { "io.container.manager": "libpod" } }));
  writeFileSync(join(tree, "network.status"), "[]");
  const arc = join(dir, "..", `${name}${compress === "gzip" ? ".tar.gz" : ".tar"}`);
  const r = spawnSync("tar", ["-C", tree, compress === "gzip" ? "-czf" : "-cf", arc, "."], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr}`);
  return arc;
}

/** `ckimg ARGS` with its exit code and output (exit 1 is an answer for diff/got/mem). */
function ckimgRun(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
}

/**
 * Every verb on container archives of a CRIU dump (.tar and/or .tar.gz): the same output as on
 * the dump directory (bar the path it names and the container block), and the same answers as
 * on the ckimg capture of the same process state where CRIU records what ckimg does.
 */
function everyVerbOnArchives(img: string, dir: string, name: string, needle: string, kinds: ("none" | "gzip")[] = ["none", "gzip"]): void {
  const outDir = join(dir, "..");
  // the directory's and the capture's answers are the same for both archives: asked once
  const asked = new Map<string, ReturnType<typeof ckimgRun>>();
  const once = (args: string[]) => {
    const key = JSON.stringify(args);
    if (!asked.has(key)) asked.set(key, ckimgRun(args));
    return asked.get(key)!;
  };
  const ok = (args: string[]) => {
    const r = once(args);
    if (r.status !== 0) throw new Error(`ckimg ${args.join(" ")} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  };
  // the path the output names (an archive is named as ARCHIVE:checkpoint/ or as itself), and
  // verify's timing: the two things two runs may not agree on
  const samePath = (text: string, ...from: string[]) =>
    from.reduce((t, f) => t.split(f).join("IMAGE"), text).replace(/ in [\d.]+ s \([^)]*\)/g, " in T");
  const core = (p: string) => {
    const out = join(outDir, `${name}-${p === dir ? "dir" : "arc"}.core`);
    expect(ckimgRun(["to-core", p, "-o", out]).status).toBe(0);
    return readFileSync(out);
  };
  const converted = (p: string) => {
    const out = join(outDir, `${name}-${p === dir ? "dir" : "arc"}.img`);
    expect(ckimgRun(["convert", p, "-o", out]).status).toBe(0);
    const j = JSON.parse(ckimg(["inspect", "--json", out]));
    return { process: j.process, argv: j.argv, threads: j.threads, memory: j.memory };
  };
  let dirCore: Buffer | undefined, dirConverted: ReturnType<typeof converted> | undefined;
  for (const arc of kinds.map((k) => podmanArchive(dir, name, k))) {
    const at = `${arc}:checkpoint/`;
    const both = (args: (p: string) => string[]) => {
      const d = once(args(dir)), a = ckimgRun(args(arc));
      expect({ status: a.status, stdout: samePath(a.stdout, at, arc), stderr: samePath(a.stderr, at, arc) }, `${args("IMG").join(" ")} on ${arc}`)
        .toEqual({ status: d.status, stdout: samePath(d.stdout, dir), stderr: samePath(d.stderr, dir) });
      return a;
    };
    // inspect: the directory's report plus the container block
    const ij = JSON.parse(ckimgRun(["inspect", "--json", arc]).stdout);
    const dj = JSON.parse(ok(["inspect", "--json", dir]));
    expect(ij.criu.container).toMatchObject({ engine: "Podman", name, runtime: "crun", archiveKind: "container" });
    delete ij.criu.container;
    ij.image.path = dj.image.path;
    expect(ij).toEqual(dj);
    // the text report: every line of the directory's but the first (path and size), in order, and the container's
    // (blank lines aside: the container block brings its own)
    const arcText = ckimgRun(["inspect", arc]).stdout.split("\n").filter((l) => l !== "");
    const dirLines = ok(["inspect", dir]).split("\n").slice(1).filter((l) => l !== "");
    expect(arcText.filter((l) => dirLines.includes(l))).toEqual(dirLines);
    expect(arcText.join("\n")).toMatch(/Podman/);
    // ... and the capture's process, threads and map
    const cj = JSON.parse(ok(["inspect", "--json", img]));
    expect(ij.process).toMatchObject({ pid: cj.process.pid, comm: cj.process.comm, exe: cj.process.exe, cwd: cj.process.cwd });
    expect(ij.argv).toEqual(cj.argv);
    expect(ij.threads.map((t: { tid: number }) => t.tid)).toEqual(cj.threads.map((t: { tid: number }) => t.tid));
    const map = (j: { memory: { start: string; end: string; perms: string; kind: string; path: string }[] }) => j.memory.map((x) => [x.start, x.end, x.perms, x.kind, x.path]);
    expect(map(ij)).toEqual(map(cj));

    expect(both((p) => ["verify", p]).stdout).toMatch(/: ok — /);
    const search = both((p) => ["mem", "--json", "--search", needle, p]);
    const addresses = (out: string) => JSON.parse(out).matches.map((m: { address: string }) => m.address);
    expect(addresses(search.stdout).length).toBeGreaterThan(0);
    expect(addresses(search.stdout)).toEqual(addresses(ok(["mem", "--json", "--search", needle, img])));
    const bt = both((p) => ["bt", "--json", p]);
    const frames = (out: string) => JSON.parse(out).map((t: { frames: { text: string }[] }) => t.frames.map((f) => f.text.replace(/\+0x[0-9a-f]+/, "")));
    expect(frames(bt.stdout)).toEqual(frames(ok(["bt", "--json", img])));
    const got = both((p) => ["got", "--json", p]);
    const slots = (out: string) => JSON.parse(out).modules.map((m: { path: string; slots: number }) => [m.path, m.slots]);
    expect(slots(got.stdout)).toEqual(slots(once(["got", "--json", img]).stdout));
    const rip = JSON.parse(bt.stdout)[0].frames[0].pc as string;
    const sym = both((p) => ["sym", "--json", p, rip]);
    expect(JSON.parse(sym.stdout)[0].text).toBe(JSON.parse(ok(["sym", "--json", img, rip]))[0].text);
    expect(both((p) => ["strings", p]).stdout).toContain(needle);
    // diff against the capture: the archive differs from it exactly as the directory does
    const diff = (p: string) => ckimgRun(["diff", "--json", img, p]);
    // (bar how long each took: the "seconds" of its statistics)
    const untimed = (out: string) => JSON.parse(out, (k, v) => (k === "seconds" ? undefined : v));
    const da = untimed(diff(arc).stdout), dd = untimed(once(["diff", "--json", img, dir]).stdout);
    delete da.b.path;
    delete dd.b.path;
    expect(da).toEqual(dd);
    expect(da.memory.reduce((n: number, m: { bytesDiffering: number }) => n + m.bytesDiffering, 0)).toBeLessThanOrEqual(64);
    // to-core and convert write the same files from either
    expect(core(arc).equals(dirCore ??= core(dir))).toBe(true);
    expect(converted(arc)).toEqual(dirConverted ??= converted(dir));
  }
}

const QUIET = readFileSync(join(REPO, "test/criu/programs/quiet.c"), "utf8");
const TICK = `#include <stdio.h>
#include <unistd.h>
int main(void) { for (long i = 0;; i++) { printf("tick %ld\\n", i); fflush(stdout); usleep(50000); } }
`;

describe.skipIf(SKIP !== "")(`live CRIU v4.2 dumps${SKIP ? ` — skipped: ${SKIP}` : ""}`, () => {
  let tmp: string;
  const started: Running[] = [];
  beforeAll(() => {
    for (const b of ["build/ckimg-restore", "build/ckimg-capture", "dist/cli/main.js"]) if (!existsSync(join(REPO, b))) throw new Error(`${b} missing: npm run build`);
    tmp = makeTempDir("ckimg-criu-live-");
  });
  afterAll(async () => {
    for (const r of started) {
      try {
        process.kill(r.pid, "SIGKILL");
      } catch {
        // already gone
      }
      await r.exited;
    }
    removeTempDirs();
  });

  const run = (argv: string[], name: string) => {
    const r = startDetached(argv, join(tmp, `${name}.out`));
    started.push(r);
    return r;
  };

  test("a threaded program with pipes and sockets: the CRIU dump answers as the ckimg capture", async () => {
    const exe = compileC(QUIET, "quiet");
    const p = run([exe], "quiet");
    await waitFor("ready", () => /^ready /m.test(text(p.out)));
    const img = join(tmp, "quiet.img"), dir = join(tmp, "quiet.criu");
    ckimg(["capture", String(p.pid), "-o", img]);
    mkdirSync(dir);
    criu(["dump", "-t", String(p.pid), "--leave-running"], dir);
    const [a, b] = await Promise.all([openImage(img), openImage(dir)]);
    try {
      expect(b.process).toMatchObject({ pid: a.process.pid, comm: "quiet", exe: a.process.exe, cwd: a.process.cwd });
      expect(b.threads.map((t) => t.tid)).toEqual(a.threads.map((t) => t.tid));
      expect(b.areas.map((x) => [x.start, x.end, x.prot, x.kind, x.path])).toEqual(a.areas.map((x) => [x.start, x.end, x.prot, x.kind, x.path]));
      expect(b.fds.map((f) => [f.fd, f.kind])).toEqual(a.fds.map((f) => [f.fd, f.kind]));
      const d = await diffImages(a, b);
      expect(d.memory.reduce((n, m) => n + m.bytesDiffering, 0)).toBeLessThanOrEqual(16);
      const names = async (img: typeof a) => (await backtrace(img)).map((t) => t.frames.map((f) => f.text.replace(/\+0x[0-9a-f]+/, "")));
      expect(await names(b)).toEqual(await names(a));
      expect((await auditGot(b)).modules.map((m) => [m.path, m.slots])).toEqual((await auditGot(a)).modules.map((m) => [m.path, m.slots]));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
    const inspect = JSON.parse(ckimg(["inspect", "--json", dir]));
    expect(inspect.criu.sockets.map((s: { family: string }) => s.family).sort()).toEqual(["INET", "UNIX", "UNIX"]);
    everyVerbOnArchives(img, dir, "quiet", "CKIMG-CRIU-MARKER");
  }, 300_000); // every verb twice on each of two archives: ~40 ckimg runs

  test("a process tree: inspect shows both, --pid picks the child for any verb", async () => {
    // SIGCHLD ignored: the child is reaped by the kernel when the test kills it (PID 1 here reaps nothing).
    const exe = compileC(`#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static char who[32] = "TREE-PARENT";
int main(void) {
  signal(SIGCHLD, SIG_IGN);
  pid_t c = fork();
  if (c == 0) { snprintf(who, sizeof(who), "TREE-CHILD-%d", getpid()); for (;;) pause(); }
  printf("ready %d %d\\n", getpid(), c); fflush(stdout);
  for (;;) pause();
}
`, "tree");
    const p = run([exe], "tree");
    await waitFor("ready", () => /^ready /m.test(text(p.out)));
    const child = Number(/^ready \d+ (\d+)/m.exec(text(p.out))![1]);
    const dir = join(tmp, "tree.criu");
    mkdirSync(dir);
    criu(["dump", "-t", String(p.pid), "--leave-running"], dir);
    const j = JSON.parse(ckimg(["inspect", "--json", dir]));
    expect(j.criu.tree.map((t: { pid: number; ppid: number }) => [t.pid, t.ppid])).toEqual([[p.pid, 0], [child, p.pid]]);
    expect(ckimg(["mem", "--search", `TREE-CHILD-${child}`, "--pid", String(child), dir])).toMatch(/^1 match\(es\)/m);
    expect(JSON.parse(ckimg(["inspect", "--json", "--pid", String(child), dir])).process.pid).toBe(child);
    const img = join(tmp, "tree-child.img");
    ckimg(["convert", "--pid", String(child), dir, "-o", img]);
    expect(JSON.parse(ckimg(["inspect", "--json", img])).process).toMatchObject({ pid: child, ppid: p.pid });
    try {
      process.kill(child, "SIGKILL");
    } catch {
      // gone with the parent
    }
  });

  test("python3: argv, environment and the interpreter's heap read from the CRIU dump", async () => {
    const p = run(["python3", "-c", "import time\nmarker = 'PY-CRIU-' * 64\nprint('ready', flush=True)\ntime.sleep(1000)"], "py");
    await waitFor("ready", () => /^ready/m.test(text(p.out)));
    const img = join(tmp, "py.img"), dir = join(tmp, "py.criu");
    ckimg(["capture", String(p.pid), "-o", img]);
    mkdirSync(dir);
    criu(["dump", "-t", String(p.pid), "--leave-running"], dir);
    const [a, b] = await Promise.all([openImage(img), openImage(dir)]);
    try {
      expect(b.argv).toEqual(a.argv);
      expect(b.environ).toEqual(a.environ);
      expect(b.process.comm).toBe("python3");
      const found = await searchMemory(b, { needle: Buffer.from("PY-CRIU-PY-CRIU-") });
      expect(found.matches.length).toBeGreaterThan(0);
      expect(found.matches.map((m) => m.address)).toEqual((await searchMemory(a, { needle: Buffer.from("PY-CRIU-PY-CRIU-") })).matches.map((m) => m.address));
      const bt = await backtrace(b);
      expect(bt[0].frames.length).toBeGreaterThan(1);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
    // .tar.gz only: the threaded program's test covers both kinds of archive
    everyVerbOnArchives(img, dir, "python3", "PY-CRIU-PY-CRIU-", ["gzip"]);
  }, 300_000);

  test("ckimg capture → convert --to criu → criu restore: the program carries on", async () => {
    const exe = compileC(TICK, "tick");
    const p = run([exe], "tick1");
    await waitFor("ticks", () => text(p.out).split("\n").length > 3);
    const img = join(tmp, "tick1.img"), dir = join(tmp, "tick1.criu");
    ckimg(["capture", String(p.pid), "-o", img, "--kill"]);
    await p.exited;
    const last = Number(/tick (\d+)\n$/.exec(text(p.out))![1]);
    const report = JSON.parse(ckimg(["convert", "--json", "--to", "criu", img, "-o", dir]));
    expect(report.pages).toBeGreaterThan(0);
    expect(report.notCarried.join("\n")).toMatch(/capabilities/);
    // criu restore stays the restored task's parent (no -d), so the test reaps both.
    const r = spawn(CRIU!, ["restore", "-D", dir, "-o", "restore.log"], { stdio: "ignore" });
    const restoreExit = new Promise<number | null>((resolve) => r.once("exit", (c) => resolve(c)));
    try {
      await waitFor("ticks after restore", () => Number(/tick (\d+)\n$/.exec(text(p.out))?.[1] ?? 0) > last + 3, 15_000);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${text(join(dir, "restore.log")).split("\n").filter((l) => /Error/.test(l)).join("\n")}`);
    } finally {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // not restored
      }
      await restoreExit;
    }
  });

  test("criu dump → convert → ckimg restore: the program carries on", async () => {
    const exe = compileC(TICK, "tick");
    const p = run([exe], "tick2");
    await waitFor("ticks", () => text(p.out).split("\n").length > 3);
    const dir = join(tmp, "tick2.criu"), img = join(tmp, "tick2.img");
    mkdirSync(dir);
    criu(["dump", "-t", String(p.pid)], dir);
    await p.exited;
    const last = Number(/tick (\d+)\n$/.exec(text(p.out))![1]);
    expect(ckimg(["convert", dir, "-o", img])).toMatch(/not carried over/);
    const r = spawn(process.execPath, [CLI, "restore", img], { stdio: "ignore" });
    const restoreExit = new Promise<void>((resolve) => r.once("exit", () => resolve()));
    try {
      await waitFor("ticks after restore", () => Number(/tick (\d+)\n$/.exec(text(p.out))?.[1] ?? 0) > last + 3, 15_000);
    } finally {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // not restored
      }
      r.kill("SIGKILL");
      await restoreExit;
    }
  });
});
