/**
 * CRIU dumps and container archives through every reader path, on the committed fixtures
 * (corpus/criu: the same process state captured by ckimg and dumped by CRIU v4.2), so CI
 * without CRIU tests the reader. Live CRIU runs are in live.test.ts.
 */
import { beforeAll, describe, expect, test } from "vitest";
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { openImage, imageKind } from "../../src/open.js";
import { CriuImage } from "../../src/criu/image.js";
import { backtrace, auditGot, diffImages, searchMemory } from "../../src/analysis/index.js";
import { main } from "../../src/cli/main.js";
import { tempDir } from "../support/tmp.js";
import { CORPUS as corpus, SAME_SOURCES, installFixtureProgram } from "./fixture.js";

beforeAll(installFixtureProgram);
const DIR = join(corpus, "quiet.criu");
const CKIMG = join(corpus, "quiet.ckimg");
const TGZ = join(corpus, "quiet-podman.tar.gz");

export async function run(args: string[]) {
  let stdout = "", stderr = "";
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), stderrIsTty: false });
  return { code, stdout, stderr };
}

function archives(): { tar: string; tgz: string; zst: string | undefined } {
  const dir = tempDir("ckimg-criu-arc-");
  const tar = join(dir, "quiet.tar");
  writeFileSync(tar, gunzipSync(readFileSync(TGZ)));
  let zst: string | undefined = join(dir, "quiet.tar.zst");
  const z = spawnSync("zstd", ["-q", "-f", tar, "-o", zst]);
  if (z.status !== 0) zst = undefined;
  return { tar, tgz: TGZ, zst };
}

describe("CRIU dump as an image", () => {
  test("the opener tells the kinds apart by what the path is", async () => {
    expect(await imageKind(DIR)).toBe("criu-dir");
    expect(await imageKind(CKIMG)).toBe("ckimg");
    expect(await imageKind(TGZ)).toBe("archive");
    const { tar } = archives();
    expect(await imageKind(tar)).toBe("archive");
  });

  test("process, threads, areas, files match the ckimg capture of the same state", async () => {
    const [a, b] = await Promise.all([openImage(CKIMG, SAME_SOURCES), openImage(DIR, SAME_SOURCES)]);
    try {
      expect(b).toBeInstanceOf(CriuImage);
      expect(b.formatVersion).toBe("criu 2");
      for (const k of ["pid", "pgid", "sid", "comm", "exe", "cwd", "personality", "umask", "threadCount"] as const) expect(b.process[k]).toEqual(a.process[k]);
      expect(b.process.uid).toEqual(a.process.uid);
      expect(b.process.mm).toEqual(a.process.mm);
      expect(b.argv).toEqual(a.argv);
      expect(b.environ).toEqual(a.environ);
      expect(b.auxv).toEqual(a.auxv);
      expect(b.rlimits).toEqual(a.rlimits);
      expect(b.threads.map((t) => t.tid)).toEqual(a.threads.map((t) => t.tid));
      for (const [i, t] of b.threads.entries()) {
        const u = a.threads[i];
        expect(t.regs!.rsp).toBe(u.regs!.rsp);
        expect(t.regs!.fs_base).toBe(u.regs!.fs_base);
        expect(t.regs!.orig_rax).toBe(u.regs!.orig_rax);
        // CRIU rewinds the interrupted syscall: ip 2 bytes back, at the `syscall` instruction.
        expect(u.regs!.rip - t.regs!.rip).toBe(2n);
        // main-thread bit; in-syscall needs the code bytes at ip, which SAME_SOURCES keeps off disk
        expect(t.flags & 1).toBe(u.flags & 1);
        expect(t.sigmask).toBe(u.sigmask);
      }
      // The kernel's [vvar] + [vvar_vclock] are one vvar VMA for CRIU (and the committed ckimg
      // capture predates [vvar_vclock] as SPECIAL); everything else is the same map.
      const shape = (img: typeof a) => img.areas.filter((x) => x.kind !== "vvar" && x.path !== "[vvar_vclock]").map((x) => [x.start, x.end, x.prot, x.kind, x.path, x.fileOffset]);
      expect(shape(b)).toEqual(shape(a));
      expect(b.fds.map((f) => [f.fd, f.kind, f.path, f.pos])).toEqual(a.fds.map((f) => [f.fd, f.kind, f.kind === "fifo" || f.kind === "socket" ? f.path : f.path, f.pos]));
      expect(b.sigactions.actions).toEqual(a.sigactions.actions);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test("diff of the two finds the same memory, bar the rseq cpu ids the kernel updates", async () => {
    const [a, b] = await Promise.all([openImage(CKIMG, SAME_SOURCES), openImage(DIR, SAME_SOURCES)]);
    try {
      const d = await diffImages(a, b);
      const differing = d.memory.reduce((n, m) => n + m.bytesDiffering, 0);
      expect(differing).toBeLessThanOrEqual(16);
      for (const m of d.memory) if (m.bytesDiffering) expect(["anon", "stack"]).toContain(m.area.kind);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test("backtraces and the GOT audit answer as on the ckimg capture", async () => {
    const [a, b] = await Promise.all([openImage(CKIMG, SAME_SOURCES), openImage(DIR, SAME_SOURCES)]);
    try {
      // Frame 0 only: CRIU stored a text page of the program that ckimg left to the file, so
      // without disk the stack scan can go further on the CRIU side (live.test.ts compares
      // whole backtraces with the files on disk).
      const names = async (img: typeof a) => (await backtrace(img, SAME_SOURCES)).map((t) => [t.tid, t.frames[0].text.replace(/\+0x[0-9a-f]+|0x[0-9a-f]+/, "")]);
      expect(await names(b)).toEqual(await names(a));
      const [ga, gb] = await Promise.all([auditGot(a, SAME_SOURCES), auditGot(b, SAME_SOURCES)]);
      expect(gb.modules.map((m) => [m.path, m.slots, m.suspicious, m.bindNow])).toEqual(ga.modules.map((m) => [m.path, m.slots, m.suspicious, m.bindNow]));
      expect(gb.suspicious).toEqual([]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test("archives (.tar, .tar.gz, .tar.zst) read in place give the directory's answers", async () => {
    const { tar, tgz, zst } = archives();
    const dir = await openImage(DIR);
    const want = { argv: dir.argv, threads: dir.threads.map((t) => t.regs), areas: dir.areas, search: (await searchMemory(dir, { needle: Buffer.from("CKIMG-CRIU-MARKER") })).matches.map((m) => m.address) };
    await dir.close();
    for (const path of [tar, tgz, ...(zst ? [zst] : [])]) {
      const img = (await openImage(path)) as CriuImage;
      try {
        expect(img.container).toMatchObject({ engine: "Podman", name: "quiet-fixture", image: "localhost/ckimg/quiet:latest", runtime: "crun", archiveKind: "container" });
        expect(img.container!.rootfsDiffSize).toBeGreaterThan(0);
        expect(img.argv).toEqual(want.argv);
        expect(img.threads.map((t) => t.regs)).toEqual(want.threads);
        expect(img.areas).toEqual(want.areas);
        expect((await searchMemory(img, { needle: Buffer.from("CKIMG-CRIU-MARKER") })).matches.map((m) => m.address)).toEqual(want.search);
      } finally {
        await img.close();
      }
    }
  });

  test("a plain .tar whose big entries come first: their data is skipped unread, the entries after them are found at their offsets", async () => {
    const dir = tempDir("ckimg-criu-bigtar-");
    const tree = join(dir, "tree");
    expect(spawnSync("mkdir", ["-p", tree]).status).toBe(0);
    expect(spawnSync("tar", ["-xzf", TGZ, "-C", tree]).status).toBe(0);
    // 2.5 zero pieces and an odd tail (tar pads it to 512), then the same again under checkpoint/:
    // CRIU's images come after both.
    const big = Buffer.alloc(20 * 1024 * 1024 + 1001, 0xa5);
    writeFileSync(join(tree, "aa-big.bin"), big);
    expect(spawnSync("mkdir", ["-p", join(tree, "aa")]).status).toBe(0);
    writeFileSync(join(tree, "aa", "pages-big.bin"), big.subarray(0, 9 * 1024 * 1024 + 7));
    const arc = join(dir, "big-first.tar");
    const names = readdirSync(tree).filter((n) => n !== "aa-big.bin" && n !== "aa").sort();
    expect(spawnSync("tar", ["-C", tree, "-cf", arc, "aa-big.bin", "aa", ...names]).status).toBe(0);
    const d = await openImage(DIR);
    const want = { areas: d.areas, argv: d.argv, search: (await searchMemory(d, { needle: Buffer.from("CKIMG-CRIU-MARKER") })).matches.map((m) => m.address) };
    await d.close();
    const img = (await openImage(arc)) as CriuImage;
    try {
      expect(img.container).toMatchObject({ engine: "Podman", name: "quiet-fixture" });
      expect(img.areas).toEqual(want.areas);
      expect(img.argv).toEqual(want.argv);
      expect((await searchMemory(img, { needle: Buffer.from("CKIMG-CRIU-MARKER") })).matches.map((m) => m.address)).toEqual(want.search);
    } finally {
      await img.close();
    }
    // The skipped entry is still indexed where its bytes are.
    const { CheckpointArchive } = await import("../../src/criu/archive.js");
    const a = await CheckpointArchive.open(arc);
    const e = a.entries.get("aa-big.bin")!;
    expect(e.size).toBe(big.length);
    expect(Buffer.from(await a.readEntry("aa-big.bin", e.size - 5, 5))).toEqual(big.subarray(big.length - 5));
    expect(a.entries.get("aa/pages-big.bin")!.size).toBe(9 * 1024 * 1024 + 7);
    await a.close();
  });
});

describe("rootfs-diff.tar", () => {
  test("a library the container changed is read from the archive's rootfs-diff.tar, not the host", async () => {
    const dir = tempDir("ckimg-criu-rootfs-");
    const tree = join(dir, "tree");
    expect(spawnSync("mkdir", ["-p", tree]).status).toBe(0);
    expect(spawnSync("tar", ["-xzf", TGZ, "-C", tree]).status).toBe(0);
    // The container "changed" libc: its rootfs-diff.tar holds the one the process mapped.
    const libc = "usr/lib/x86_64-linux-gnu/libc.so.6";
    expect(spawnSync("tar", ["-C", "/", "-cf", join(tree, "rootfs-diff.tar"), libc]).status).toBe(0);
    const arc = join(dir, "with-libc.tar");
    expect(spawnSync("tar", ["-C", tree, "-cf", arc, "."]).status).toBe(0);
    // SAME_SOURCES: nothing from the host's disk, so symbols can only come from the archive.
    const [plain, withLibc] = await Promise.all([openImage(DIR, SAME_SOURCES), openImage(arc, SAME_SOURCES)]);
    try {
      const frame0 = async (img: typeof plain) => (await backtrace(img, SAME_SOURCES))[0].frames[0].text;
      expect(await frame0(plain)).not.toMatch(/pause/);
      expect(await frame0(withLibc)).toMatch(/^pause\+0x30 \(libc\.so\.6\)/);
      expect((withLibc as CriuImage).criuGaps.join("\n")).toMatch(/1 mapped file\(s\) read from the archive's rootfs-diff\.tar/);
    } finally {
      await Promise.all([plain.close(), withLibc.close()]);
    }
  });
});

describe("CLI on CRIU dumps and archives", () => {
  test("inspect --json keeps the image shape and adds the tree, files, sockets and container", async () => {
    const r = await run(["inspect", "--json", TGZ]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.process.comm).toBe("quiet");
    expect(j.image.version).toBe("criu 2");
    expect(j.criu.tree).toHaveLength(1);
    expect(j.criu.tree[0].cmdline).toBe("./quiet");
    expect(j.criu.sockets.map((s: { family: string; state: string }) => [s.family, s.state]).sort()).toEqual([["INET", "LISTEN"], ["UNIX", "ESTABLISHED"], ["UNIX", "ESTABLISHED"]]);
    expect(j.criu.container.engine).toBe("Podman");
    const text = await run(["inspect", DIR]);
    expect(text.stdout).toMatch(/ps tree\n\s+\[\d+\]\s+\.\/quiet\s+\(3 threads\)/);
    expect(text.stdout).toMatch(/INET\s+TCP\s+LISTEN\s+127\.0\.0\.1:\d+/);
  });

  test("verify, mem --search/--regex, bt, got, strings, to-core on a CRIU directory", async () => {
    expect((await run(["verify", DIR])).stdout).toMatch(/: ok — \d+ records, \d+ page chunks/);
    const s = await run(["mem", "--search", "heap-note", DIR]);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/\[heap\]\s+.*\[heap-note\]-CKIMG-CRIU-MARK/);
    expect((await run(["mem", "--regex", "in-the-(pipe|socket)", DIR])).stdout).toMatch(/2 match\(es\)/);
    expect((await run(["mem", "--search", "no-such-bytes-anywhere", DIR])).code).toBe(1);
    const bt = (await run(["bt", DIR])).stdout;
    expect(bt).toMatch(/in pause\+0x30 .*\n\s+#1\s+0x[0-9a-f]+ in main\+/);
    // CRIU's rewound syscall is recognised from the `syscall` instruction at ip (read from libc on disk)
    expect(bt).toMatch(/thread \d+ \(main\) state \?, in syscall/);
    expect((await run(["got", DIR])).code).toBe(0);
    expect((await run(["strings", DIR])).stdout).toContain("CKIMG-CRIU-MARKER-quiet");
    const out = join(tempDir("ckimg-criu-core-"), "core");
    expect((await run(["to-core", DIR, "-o", out])).code).toBe(0);
    expect(readFileSync(out).subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  });
});
