/**
 * libckimg: a program checkpoints itself with ckimg_checkpoint(). The examples in
 * examples/libckimg (C, static and shared library; Python ctypes) are built and run; the
 * restored process sees 1 and carries on from the iteration it checkpointed in.
 */
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openImage } from "../../src/format/reader.js";
import { verifyImage } from "../../src/format/verify.js";
import { REPO, compileC, makeTempDir, removeTempDirs } from "../native/helpers.js";

const BUILD = join(REPO, "build");
const EXAMPLE = join(REPO, "examples/libckimg");

afterAll(() => removeTempDirs());

function build(linkage: "static" | "shared"): string {
  const dir = makeTempDir("ckimg-lib-");
  const exe = join(dir, `counter-${linkage}`);
  const lib = linkage === "static" ? [join(BUILD, "libckimg.a")] : [`-L${BUILD}`, "-lckimg", `-Wl,-rpath,${BUILD}`];
  const r = spawnSync("gcc", ["-O1", "-g", `-I${join(BUILD, "include")}`, "-o", exe, join(EXAMPLE, "counter.c"), ...lib], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gcc: ${r.stderr}`);
  return exe;
}

/** The sum counter.c prints for LIMIT steps (the loop without checkpoints). */
function expectedSum(limit: number): string {
  let sum = 0n;
  for (let i = 0n; i < BigInt(limit); i++) sum = (sum * 31n + i) & ((1n << 64n) - 1n);
  return sum.toString();
}

function restore(image: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO, "bin/ckimg"), "restore", image], { encoding: "utf8", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("libckimg", () => {
  for (const linkage of ["static", "shared"] as const) {
    it(`ckimg_checkpoint returns 0, then 1 in the restored process, which carries on from that iteration (${linkage})`, async () => {
      const exe = build(linkage);
      const image = join(makeTempDir("ckimg-lib-"), "counter.img");
      const first = spawnSync(exe, [image, "40", "120"], { encoding: "utf8", timeout: 60_000 });
      expect(first.status, first.stderr).toBe(0);
      expect(first.stdout).toBe(`checkpoint written at step 40\nsum ${expectedSum(120)}\n`);
      expect(statSync(image).mode & 0o777).toBe(0o600);
      expect((await verifyImage(image, { threads: 1 })).ok).toBe(true);
      const again = restore(image);
      expect(again.status, again.stderr).toBe(0);
      expect(again.stdout).toBe(`restored at step 40\nsum ${expectedSum(120)}\n`);
    });
  }

  it("CKIMG_EXIT: the image is written and the process ends (exit 0); the restore finishes the loop", () => {
    const exe = build("static");
    const image = join(makeTempDir("ckimg-lib-"), "exit.img");
    const first = spawnSync(exe, [image, "25", "90", "exit"], { encoding: "utf8", timeout: 60_000 });
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toBe("");
    expect(existsSync(image)).toBe(true);
    const again = restore(image);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toBe(`restored at step 25\nsum ${expectedSum(90)}\n`);
  });

  it("fails with -1 and errno when the image cannot be written, and the process runs on", () => {
    const exe = build("static");
    const r = spawnSync(exe, ["/nonexistent-dir/x.img", "5", "20"], { encoding: "utf8", timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/ckimg_checkpoint: Input\/output error/);
    expect(r.stderr).toMatch(/ckimg-capture: /);
  });

  it("works from a second thread: every thread is captured and both go on after the restore", async () => {
    const exe = compileC(`
#include <ckimg.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static volatile long ticks;
static void *worker(void *path) {
  int r = ckimg_checkpoint(path, 0);
  printf("worker: %d\\n", r);
  fflush(stdout);
  return (void *)(long)r;
}
int main(int argc, char **argv) {
  pthread_t t; void *r;
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_create(&t, NULL, worker, argv[1]);
  pthread_join(t, &r);
  for (int i = 0; i < 20; i++) { ticks++; usleep(1000); }
  printf("main: ticks %ld after %ld\\n", ticks, (long)r);
  return 0;
}`, "threaded", [`-I${join(BUILD, "include")}`, join(BUILD, "libckimg.a")]);
    const image = join(makeTempDir("ckimg-lib-"), "threads.img");
    const first = spawnSync(exe, [image], { encoding: "utf8", timeout: 60_000 });
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toBe("worker: 0\nmain: ticks 20 after 0\n");
    const again = restore(image);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toBe("worker: 1\nmain: ticks 20 after 1\n");
  });

  // A job with a worker process: the worker keeps a running hash of the steps the parent sends
  // it over a pipe and returns each new value; the parent checkpoints every EVERY steps (image
  // IMG.STEP) — the worker is in every image with its state — and at the end prints the last
  // hash and the worker's exit status (a function of its hash: its state survived too).
  const TREE_SRC = `
#include <ckimg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long every = atol(argv[2]), limit = atol(argv[3]);
  unsigned flags = argc > 4 ? CKIMG_EXIT : 0;
  unsigned long long h = 0;
  int down[2], up[2], st;
  char image[4096];
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (pipe(down) || pipe(up)) return 3;
  pid_t w = fork();
  if (w == 0) {
    unsigned long long wh = 1469598103934665603ull;
    long v;
    close(down[1]); close(up[0]);
    while (read(down[0], &v, sizeof(v)) == sizeof(v)) {
      wh = (wh ^ (unsigned long long)v) * 1099511628211ull;
      if (write(up[1], &wh, sizeof(wh)) != sizeof(wh)) _exit(99);
    }
    _exit((int)(wh % 200));
  }
  close(down[0]); close(up[1]);
  printf("worker %d\\n", (int)w);
  for (long i = 0; i < limit; i++) {
    if (every > 0 && i > 0 && i % every == 0) {
      snprintf(image, sizeof(image), "%s.%ld", argv[1], i);
      int r = ckimg_checkpoint(image, flags);
      if (r < 0) { perror("ckimg_checkpoint"); return 1; }
      printf("checkpoint %ld: %d\\n", i, r);
    }
    if (write(down[1], &i, sizeof(i)) != sizeof(i) || read(up[0], &h, sizeof(h)) != sizeof(h)) return 4;
    usleep(1000);
  }
  close(down[1]);
  if (waitpid(w, &st, 0) != w) return 5;
  printf("hash %llx worker exit %d\\n", h, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  return 0;
}`;

  it("takes the caller's process tree: a forked worker is in the image, and after a restore both go on from that step", async () => {
    const exe = compileC(TREE_SRC, "tree", [`-I${join(BUILD, "include")}`, join(BUILD, "libckimg.a")]);
    const base = join(makeTempDir("ckimg-lib-"), "tree.img");
    const reference = spawnSync(exe, [base, "0", "60"], { encoding: "utf8", timeout: 60_000 });
    expect(reference.status, reference.stderr).toBe(0);
    const result = reference.stdout.split("\n").find((l) => l.startsWith("hash "));
    expect(result).toMatch(/^hash [0-9a-f]+ worker exit \d+$/);
    const first = spawnSync(exe, [base, "20", "60"], { encoding: "utf8", timeout: 60_000 });
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout.split("\n").slice(1).join("\n")).toBe(`checkpoint 20: 0\ncheckpoint 40: 0\n${result}\n`);
    const worker = Number(/^worker (\d+)$/m.exec(first.stdout)?.[1]);
    for (const step of [20, 40]) {
      expect((await verifyImage(`${base}.${step}`, { threads: 1 })).ok).toBe(true);
      const image = await openImage(`${base}.${step}`);
      try {
        expect(image.processes.map((p) => p.process.pid), `image of step ${step}: the caller and its worker`).toEqual([first.pid, worker]);
      } finally {
        await image.close();
      }
    }
    // from step 20: the restored caller sees 1, checkpoints again at 40 (0: it is the original
    // of that one), and the restored worker's state gives the uninterrupted run's result
    const again = restore(`${base}.20`);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toBe(`checkpoint 20: 1\ncheckpoint 40: 0\n${result}\n`);
  });

  it("CKIMG_EXIT with a worker: the image holds both, both end (exit 0, worker reaped); the restore finishes the run", () => {
    const exe = compileC(TREE_SRC, "tree-exit", [`-I${join(BUILD, "include")}`, join(BUILD, "libckimg.a")]);
    const base = join(makeTempDir("ckimg-lib-"), "tree-exit.img");
    const reference = spawnSync(exe, [base, "0", "50"], { encoding: "utf8", timeout: 60_000 });
    const result = reference.stdout.split("\n").find((l) => l.startsWith("hash "));
    expect(result).toMatch(/^hash /);
    const first = spawnSync(exe, [base, "30", "50", "exit"], { encoding: "utf8", timeout: 60_000 });
    expect(first.status, first.stderr).toBe(0);
    const worker = Number(/^worker (\d+)$/m.exec(first.stdout)?.[1]);
    expect(first.stdout).toBe(`worker ${worker}\n`);
    expect(existsSync(`/proc/${worker}`), "the worker ended with the caller").toBe(false);
    const again = restore(`${base}.30`);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toBe(`checkpoint 30: 1\n${result}\n`);
  });

  it("from Python through ctypes (examples/libckimg/counter.py)", () => {
    const image = join(makeTempDir("ckimg-lib-"), "py.img");
    const first = spawnSync("python3", [join(EXAMPLE, "counter.py"), image, "30", "100"], { encoding: "utf8", timeout: 60_000 });
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toBe(`checkpoint written at step 30\nsum ${expectedSum(100)}\n`);
    const again = restore(image);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toBe(`restored at step 30\nsum ${expectedSum(100)}\n`);
  });
});
