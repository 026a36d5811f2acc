/** `ckimg inspect` / `verify` through main(): output, JSON shape, exit codes, error lines. */
import { describe, expect, test } from "vitest";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { main } from "../../src/cli/main.js";
import { writeSyntheticImage, CODEC } from "../../src/format/index.js";
import { tempDir } from "../support/tmp.js";

const corpus = new URL("../../corpus/images/", import.meta.url).pathname;

export async function run(args: string[]) {
  let stdout = "", stderr = "";
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), stderrIsTty: false });
  return { code, stdout, stderr };
}

describe("inspect", () => {
  test("text summary names the process, threads, areas, files and handlers", async () => {
    const r = await run(["inspect", join(corpus, "synthetic-lz4.img")]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/process\s+pid 4001 \(synthetic-app\)/);
    expect(r.stdout).toMatch(/0x555555600000\s+0x555555630000\s+rw-p\s+heap/);
    expect(r.stdout).toMatch(/SIGALRM \(14\)\s+0x555555555280/);
    expect(r.stdout).toMatch(/3\s+regular\s+02002,cloexec\s+4096\s+\/home\/user\/data.log/);
  });

  test("--json has the documented shape with hex-string addresses", async () => {
    const r = await run(["inspect", "--json", join(corpus, "synthetic-lzf.img")]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.process).toMatchObject({ pid: 4001, comm: "synthetic-app", exe: "/usr/bin/synthetic-app" });
    expect(j.threads.map((t: { tid: number }) => t.tid)).toEqual([4001, 4002]);
    expect(j.threads[0].regs.rip).toBe("0x555555555100");
    for (const a of j.memory) {
      expect(a.start).toMatch(/^0x[0-9a-f]+$/);
      expect(a.end).toMatch(/^0x[0-9a-f]+$/);
      expect(a.perms).toMatch(/^[r-][w-][x-][ps]$/);
      expect(typeof a.path).toBe("string");
    }
    expect(j.files.map((f: { fd: number }) => f.fd)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(j.signals.find((s: { signo: number }) => s.signo === 10).handler).toBe("SIG_IGN");
  });

  test("trouble: one line on stderr with file and offset, exit 2", async () => {
    const notImage = await run(["inspect", "/etc/hostname"]);
    expect(notImage.code).toBe(2);
    expect(notImage.stderr).toBe("ckimg: /etc/hostname: not a ckimg image (bad magic) at offset 0\n");
    const truncated = await run(["inspect", join(corpus, "truncated.img")]);
    expect(truncated.code).toBe(2);
    expect(truncated.stderr).toMatch(/^ckimg: .*truncated\.img: no trailer \(file truncated or not finished\) at offset \d+\n$/);
    const missing = await run(["inspect", "/nonexistent.img"]);
    expect(missing).toMatchObject({ code: 2, stderr: "ckimg: /nonexistent.img: cannot open: no such file\n" });
    const directory = await run(["verify", "/tmp"]);
    expect(directory).toMatchObject({ code: 2, stderr: "ckimg: /tmp: is a directory, not an image (and no CRIU dump: no inventory.img)\n" });
    const usage = await run(["inspect", "--frobnicate", "x"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr.split("\n")[0]).toBe("ckimg: Unknown option '--frobnicate'");
  });

  test("--recover opens a truncated image and says so", async () => {
    const r = await run(["inspect", "--recover", join(corpus, "truncated.img")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/RECOVERED/);
    expect(r.stdout).toMatch(/synthetic-app/);
  });
});

describe("verify", () => {
  test("intact images: exit 0", async () => {
    for (const name of ["synthetic-none.img", "synthetic-lz4.img", "synthetic-lzf.img", "synthetic-deflate.img"]) {
      const r = await run(["verify", join(corpus, name)]);
      expect(r.code, name).toBe(0);
      expect(r.stdout).toMatch(/: ok — /);
    }
  });

  test("a damaged chunk: exit 1, the chunk named with its offset", async () => {
    const r = await run(["verify", "--json", join(corpus, "damaged-chunk.img")]);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.ok).toBe(false);
    expect(j.damagedChunks).toBe(1);
    expect(j.problems[0]).toMatchObject({ code: "BAD_CHECKSUM", recordType: "PAGES" });
    expect(typeof j.problems[0].offset).toBe("number");
  });
});

describe("corpus", () => {
  test("committed synthetic images match the generator byte for byte", async () => {
    const dir = tempDir();
    for (const name of readdirSync(corpus).filter((n) => n.startsWith("synthetic-"))) {
      const codec = { "synthetic-none.img": CODEC.NONE, "synthetic-lz4.img": CODEC.LZ4, "synthetic-lzf.img": CODEC.LZF, "synthetic-deflate.img": CODEC.DEFLATE }[name];
      if (codec === undefined) continue;
      const path = join(dir, name);
      await writeSyntheticImage(path, { codec, seed: 1, heapBytes: 192 << 10 });
      expect(readFileSync(path).equals(readFileSync(join(corpus, name))), name).toBe(true);
    }
  });
});
