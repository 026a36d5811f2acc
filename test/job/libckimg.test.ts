/**
 * libckimg: a program checkpoints itself with ckimg_checkpoint(). The examples in
 * examples/libckimg (C, static and shared library; Python ctypes) are built and run; the
 * restored process sees 1 and carries on from the iteration it checkpointed in.
 */
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
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
