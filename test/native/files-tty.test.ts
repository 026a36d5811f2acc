/**
 * Files and terminals through capture → kill → restore, checked by the programs themselves
 * (CRIU zdtm style): an open unlinked sparse file and a sealed memfd with a shared mapping
 * (test/native/restore-programs/unlinked.c), for each codec and with --lazy; --deleted-dir;
 * a program whose executable was deleted while it ran; a file changed on disk since the capture (warning, --strict refuses); a damaged FILE_DATA
 * (refused, nothing left behind); a program on a terminal in raw mode with a pty pair of its
 * own, restored on another terminal of another size (ttyraw.c under ptyrun.py).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, readFileSync, readdirSync, readlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openImage } from "../../src/format/index.js";
import { REPO, compileC, makeTempDir, removeTempDirs, requireBuild, runCli, sleep, startProcess, type Started } from "./helpers.js";

const RP = join(REPO, "test/native/restore-programs");
const CLI = join(REPO, "bin/ckimg");
const PTYRUN = join(REPO, "test/native/ptyrun.py");
const prog = (name: string) => compileC(readFileSync(join(RP, `${name}.c`), "utf8"), name);
const TICKER = `#include <stdio.h>
#include <time.h>
int main(void) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\\n");
	for (long i = 0;; i++) {
		struct timespec ts = { 0, 50000000 };
		nanosleep(&ts, NULL);
		printf("tick %ld\\n", i);
	}
}
`;

let tmp = "";
let unlinked = "";
beforeAll(() => {
  requireBuild();
  tmp = makeTempDir("ckimg-files-");
  unlinked = prog("unlinked");
});
afterAll(() => removeTempDirs());

async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 500 && existsSync(`/proc/${pid}`); i++) await sleep(20);
  if (existsSync(`/proc/${pid}`)) throw new Error(`process ${pid} did not go away`);
}

function capture(pid: number, img: string, extra: string[] = []): void {
  const r = runCli(["capture", String(pid), "-o", img, ...extra]);
  if (r.status !== 0) throw new Error(`capture failed (${r.status}): ${r.stderr}`);
}

/** Start, wait for "ready", capture --kill, wait until the PID is free. */
async function captureKilled(argv: string[], img: string, extra: string[] = []): Promise<Started> {
  const p = startProcess(argv, { cwd: tmp });
  try {
    await p.waitForLine(/^ready/);
    capture(p.pid, img, ["--kill", ...extra]);
  } finally {
    await p.kill();
    await gone(p.pid);
  }
  return p;
}

/** Wait until the restore command's relayed stderr matches (the CLI passes it on asynchronously). */
async function stderrMatching(r: Started, re: RegExp): Promise<string> {
  for (let i = 0; i < 250 && !re.test(r.stderr()); i++) await sleep(20);
  return r.stderr();
}

/** Wait until the restored process runs on its own: no longer ckimg-restore's code, no tracer. */
async function running(pid: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    try {
      const st = readFileSync(`/proc/${pid}/status`, "utf8");
      const exe = readlinkSync(`/proc/${pid}/exe`);
      if (/TracerPid:\s+0\n/.test(st) && !/State:\s+t/.test(st) && !exe.endsWith("ckimg-restore")) return;
    } catch {
      /* not there yet */
    }
    await sleep(20);
  }
  throw new Error(`restored process ${pid} did not start running`);
}

async function stop(pid: number, r: Started): Promise<void> {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* already gone */
  }
  await Promise.race([r.exited, sleep(10_000)]);
  await r.kill();
  await gone(pid);
}

describe("deleted files and memfds", () => {
  const cases: [string, string[], string[]][] = [
    ["lz4", ["--compress", "lz4"], []],
    ["none + --lazy", ["--compress", "none"], ["--lazy"]],
    ["lzf", ["--compress", "lzf"], []],
    ["gzip", ["--compress", "gzip"], []],
  ];
  it.each(cases)("%s: the unlinked file and the sealed, mapped memfd come back as they were", async (_name, cap, rest) => {
    const dir = makeTempDir("ckimg-unl-");
    const img = join(tmp, `unl-${Math.random().toString(36).slice(2)}.img`);
    const p = await captureKilled([unlinked, dir], img, cap);
    // the image holds the file sparse: 8 KiB of data for a 1 MiB + 4 KiB file, and the memfd
    const im = await openImage(img);
    const file = im.fileContents.find((c) => c.kind === "deleted")!;
    expect(file).toMatchObject({ size: (1n << 20n) + 4096n, dataBytes: 8192n, runCount: 2, path: join(dir, "unlinked.dat") });
    const memfd = im.fileContents.find((c) => c.kind === "memfd")!;
    expect(memfd).toMatchObject({ path: "ckimg-memfd", size: 8192n, seals: 0x2 | 0x4 });
    expect(memfd.flags & 3).toBe(3); // mapped, shared and writable
    await im.close();

    const r = startProcess([process.execPath, CLI, "restore", img, ...rest]);
    try {
      await running(p.pid);
      expect(readlinkSync(`/proc/${p.pid}/fd/3`)).toBe(`${join(dir, "unlinked.dat")} (deleted)`);
      expect(readlinkSync(`/proc/${p.pid}/fd/4`)).toBe("/memfd:ckimg-memfd (deleted)");
      expect(readdirSync(dir)).toEqual([]); // re-created and unlinked again
      process.kill(p.pid, "SIGUSR1");
      await r.waitForLine(/^done/);
      expect(r.lines.filter((l) => l.startsWith("FAIL"))).toEqual([]);
      expect(r.lines).toContain("ok unlinked");
      expect(r.lines).toContain("ok memfd");
      expect((await r.exited).code).toBe(0);
    } finally {
      await stop(p.pid, r);
    }
  });

  it("a program whose executable was deleted while it ran (an upgrade) comes back running it, /proc/PID/exe 'PATH (deleted)'", async () => {
    const dir = makeTempDir("ckimg-exe-");
    const exe = join(dir, "ticker");
    copyFileSync(compileC(TICKER, "ticker"), exe);
    const p = startProcess([exe], { cwd: dir });
    const img = join(tmp, "deleted-exe.img");
    try {
      await p.waitForLine(/^ready/);
      unlinkSync(exe);
      expect(readlinkSync(`/proc/${p.pid}/exe`)).toBe(`${exe} (deleted)`);
      capture(p.pid, img, ["--kill"]);
    } finally {
      await p.kill();
      await gone(p.pid);
    }
    const r = startProcess([process.execPath, CLI, "restore", img]);
    try {
      await running(p.pid);
      expect(readlinkSync(`/proc/${p.pid}/exe`)).toBe(`${exe} (deleted)`);
      expect(readdirSync(dir)).toEqual([]);
      const last = Number(p.lines.filter((l) => l.startsWith("tick ")).pop()?.slice(5) ?? -1);
      await r.waitForLine(new RegExp(`^tick ${last + 2}$`));
      expect(r.stderr()).not.toContain("/proc/PID/exe could not be set");
    } finally {
      await stop(p.pid, r);
    }
  });

  it("--deleted-dir: the file is re-created there, kept, and the process writes into it", async () => {
    const dir = makeTempDir("ckimg-unl-");
    const keep = makeTempDir("ckimg-keep-");
    const img = join(tmp, "unl-keep.img");
    const p = await captureKilled([unlinked, dir], img);
    const r = startProcess([process.execPath, CLI, "restore", img, "--deleted-dir", keep]);
    try {
      await running(p.pid);
      expect(readlinkSync(`/proc/${p.pid}/fd/3`)).toBe(join(keep, "unlinked.dat"));
      process.kill(p.pid, "SIGUSR1");
      await r.waitForLine(/^done/);
      // the check that needs nlink 0 fails here (the file is kept): everything else holds
      expect(r.lines.filter((l) => l.startsWith("FAIL"))).toEqual(["FAIL unlinked: nlink 1", "FAIL unlinked: link " + join(keep, "unlinked.dat")]);
      expect(r.lines).toContain("ok memfd");
      expect(await stderrMatching(r, /re-created as/)).toContain(`re-created as ${join(keep, "unlinked.dat")}`);
      const kept = readFileSync(join(keep, "unlinked.dat"));
      expect(kept.length).toBe((1 << 20) + 4096);
      expect(kept.subarray(1234, 1239).toString()).toBe("hello"); // the restored process wrote it
    } finally {
      await stop(p.pid, r);
    }
  });

  it("a damaged FILE_DATA run is refused with one line and no process is left", async () => {
    const dir = makeTempDir("ckimg-unl-");
    const img = join(tmp, "unl-bad.img");
    const p = await captureKilled([unlinked, dir], img, ["--compress", "none"]);
    const im = await openImage(img);
    const run = im.fileRunsByContent.get(im.fileContents.find((c) => c.kind === "deleted")!.id)![0];
    await im.close();
    const bytes = readFileSync(img);
    bytes[run.offset + 32 + 40 + 100] ^= 0x55; // inside DATA
    const bad = join(tmp, "unl-bad2.img");
    writeFileSync(bad, bytes, { mode: 0o600 });
    const r = runCli(["restore", bad]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n").filter((l) => !l.includes(": warning: "))).toHaveLength(1); // other kinds may warn first (pipes to this test)
    expect(r.stderr).toMatch(/FILE_DATA record #\d+ .*CRC mismatch/);
    expect(existsSync(`/proc/${p.pid}`)).toBe(false);
    expect(readdirSync(dir)).toEqual([]); // nothing re-created and left behind
    expect(runCli(["restore", "--check", bad]).status).toBe(2);
  });

  it("a restore that fails after the files were re-created leaves none of them in --deleted-dir", async () => {
    const dir = makeTempDir("ckimg-unl-");
    const keep = makeTempDir("ckimg-keep-");
    const img = join(tmp, "unl-badpages.img");
    const p = await captureKilled([unlinked, dir], img, ["--compress", "none"]);
    const im = await openImage(img);
    const chunk = im.chunks[im.chunks.length - 1];
    await im.close();
    const bytes = readFileSync(img);
    bytes[chunk.offset + chunk.payloadLength + 32 - 10] ^= 0x55; // inside the last chunk's pages
    const bad = join(tmp, "unl-badpages2.img");
    writeFileSync(bad, bytes, { mode: 0o600 });
    const r = runCli(["restore", bad, "--deleted-dir", keep]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/PAGES record/);
    expect(existsSync(`/proc/${p.pid}`)).toBe(false);
    expect(readdirSync(keep)).toEqual([]);
  });
});

describe("files changed on disk since the capture", () => {
  const holder = () => compileC(`
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static volatile sig_atomic_t go;
static void on(int s) { (void)s; go = 1; }
int main(int argc, char **argv) {
  signal(SIGUSR1, on);
  int fd = open(argv[1], O_RDONLY);
  char b[16];
  if (fd < 0 || read(fd, b, 4) != 4) return 2;
  printf("ready\\n"); fflush(stdout);
  while (!go) usleep(10000);
  printf("pos %ld\\n", (long)lseek(fd, 0, SEEK_CUR)); fflush(stdout);
  return 0;
}`, "holder");

  it("restore warns once per changed file (size, mtime); --strict refuses with one line", async () => {
    const exe = holder();
    const data = join(tmp, "held.txt");
    writeFileSync(data, "0123456789");
    const img = join(tmp, "held.img");
    const p = await captureKilled([exe, data], img);
    appendFileSync(data, "more");
    const strict = runCli(["restore", img, "--strict"]);
    expect(strict.status).toBe(2);
    expect(strict.stderr.trim().split("\n").filter((l) => !l.includes(": warning: "))).toHaveLength(1); // other kinds may warn first (pipes to this test)
    expect(strict.stderr).toMatch(new RegExp(`FD_FILE record #\\d+: fd 3 \\(${data}\\) changed since the capture: size 14 \\(was 10\\).*--strict`));
    expect(existsSync(`/proc/${p.pid}`)).toBe(false);

    const r = startProcess([process.execPath, CLI, "restore", img]);
    try {
      await running(p.pid);
      process.kill(p.pid, "SIGUSR1");
      await r.waitForLine(/^pos 4$/);
      expect((await r.exited).code).toBe(0); // the holder ends after printing; its warnings are all in
      expect(r.stderr()).toMatch(new RegExp(`warning: fd 3 \\(${data}\\) changed since the capture: size 14 \\(was 10\\)`));
      expect(r.stderr().match(/changed since the capture/g)).toHaveLength(1);
    } finally {
      await stop(p.pid, r);
    }
  });
});

describe("terminals", () => {
  for (const [rows, cols, how] of [[40, 120, "of another size"], [30, 100, "of the same size (it still gets SIGWINCH to redraw)"]] as const) {
    it(`a raw-mode program with a pty pair, restored on another terminal ${how}`, async () => {
      const exe = prog("ttyraw");
      const img = join(tmp, `tty-${rows}.img`);
      const orig = startProcess(["python3", PTYRUN, "30", "100", exe], { cwd: tmp });
      let pid = 0;
      try {
        const ready = await orig.waitForLine(/^ready/);
        pid = Number(ready.split(/\s+/)[1]);
        capture(pid, img, ["--kill"]);
      } finally {
        await orig.kill();
        if (pid) await gone(pid);
      }
      const im = await openImage(img);
      const ctl = [...im.ttys.values()].find((t) => t.flags & 1)!;
      expect(ctl.winsize).toMatchObject({ rows: 30, cols: 100 });
      expect(ctl.termios.lflag & 0o12).toBe(0); // -icanon -echo
      expect([...im.ttys.values()].filter((t) => t.flags & 8)).toHaveLength(2); // the pair
      await im.close();
      const shown = runCli(["inspect", img]);
      expect(shown.stdout).toMatch(/\/dev\/pts\/\d+\s+raw 30x100 controlling foreground owner \d+:\d+ mode 06[0-7]0\n/);
      expect(shown.stdout).toMatch(/\/dev\/ptmx\s+icanon -echo isig 10x20 paired\(fd \d+\) ptmx #\d+\n/);
      const json = JSON.parse(runCli(["inspect", "--json", img]).stdout);
      const fd0 = json.files.find((f: { fd: number }) => f.fd === 0);
      expect(fd0.tty).toMatchObject({ mode: "raw", rows: 30, cols: 100, flags: ["controlling", "pty_slave", "foreground"] });

      const r = startProcess(["python3", PTYRUN, String(rows), String(cols), process.execPath, CLI, "restore", img], { cwd: tmp });
      try {
        await running(pid);
        process.kill(pid, "SIGUSR1");
        await r.waitForLine(/^done/);
        const lines = r.lines.map((l) => l.replace(/\r$/, ""));
        expect(lines.filter((l) => l.startsWith("FAIL"))).toEqual([]);
        expect(lines).toContain(`ok terminal ${rows}x${cols} winch 1`);
        expect(lines).toContain("ok pty");
      } finally {
        await stop(pid, r);
      }
    });
  }
});

describe("what cannot come back", () => {
  it("a pty master whose slave the process did not hold: refused with one line, --force gives a new pty", async () => {
    const exe = compileC(`
#define _XOPEN_SOURCE 600
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(void) {
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || grantpt(m) || unlockpt(m)) return 2;
  printf("ready %d\\n", m); fflush(stdout);
  for (;;) usleep(10000);
}`, "ptmaster");
    const img = join(tmp, "ptmaster.img");
    const p = await captureKilled([exe], img);
    const r = runCli(["restore", img]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n").filter((l) => !l.includes(": warning: "))).toHaveLength(1); // other kinds may warn first (pipes to this test)
    expect(r.stderr).toMatch(/TTY record #\d+: fd 3 is a pty master \(pty \d+\) whose slave the process did not hold.*--force/);
    expect(existsSync(`/proc/${p.pid}`)).toBe(false);
    const f = startProcess([process.execPath, CLI, "restore", img, "--force"]);
    try {
      await running(p.pid);
      expect(readlinkSync(`/proc/${p.pid}/fd/3`)).toMatch(/ptmx$/);
      expect(await stderrMatching(f, /gets a new pty/)).toMatch(/gets a new pty/);
    } finally {
      await stop(p.pid, f);
    }
  });
});

describe("hostile file and terminal records reach the C restorer", () => {
  it("mutated FILE_CONTENT/FILE_DATA/FD_FILE/TTY payloads (CRCs fixed up) give a restore or one line, never a crash", async () => {
    const { crc32 } = await import("../../src/format/index.js");
    const dir = makeTempDir("ckimg-unl-");
    const img = join(tmp, "hostile-base.img");
    await captureKilled([unlinked, dir], img, ["--compress", "none"]);
    const im = await openImage(img);
    const targets = im.entries.filter((e) => [0x31, 0x32, 0x33, 0x58].includes(e.type));
    await im.close();
    expect(targets.length).toBeGreaterThanOrEqual(5);
    const base = readFileSync(img);
    let seed = 12345;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 120; i++) {
      const b = Buffer.from(base);
      const e = targets[rnd(targets.length)];
      const p0 = e.offset + 32;
      const len = Math.min(e.payloadLength, 128);
      const at = p0 + rnd(len);
      if (rnd(2)) b[at] ^= 1 << rnd(8);
      else b.writeUInt32LE([0, 1, 0xffffffff, 0x7fffffff, 4096, rnd(1 << 24)][rnd(6)], p0 + (rnd(Math.max(1, len - 4)) & ~3));
      b.writeUInt32LE(crc32(b.subarray(p0, p0 + e.payloadLength)), e.offset + 16);
      b.writeUInt32LE(crc32(b.subarray(e.offset, e.offset + 28)), e.offset + 28);
      const bad = join(tmp, `hostile-${i}.img`);
      writeFileSync(bad, b, { mode: 0o600 });
      const c = spawnSync(join(REPO, "build/ckimg-restore"), [bad, "--check"], { encoding: "utf8" });
      const r = { status: c.status, stderr: c.stderr };
      expect(r.status === 0 || r.status === 2, `exit ${r.status} ${r.stderr}`).toBe(true);
      if (r.status === 2) {
        expect(r.stderr.trim().split("\n").filter((l) => !l.includes(": warning: "))).toHaveLength(1); // other kinds may warn first (pipes to this test)
        expect(r.stderr).toMatch(/^ckimg: /);
      }
      const key = r.status === 0 ? "ok" : r.stderr.replace(/^.*?: (\w+).*\n?$/s, "$1");
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    expect(outcomes.size).toBeGreaterThan(1); // the mutations did reach the checks
  });
});
