/**
 * CRIU dumps and archives are hostile input: damaged protobuf entries, truncated page files,
 * pagemaps pointing past their pages file, hostile tar headers. A result or an ImageError,
 * never another exception, a hang or a huge allocation.
 */
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { readFileSync, readdirSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import tar from "tar-stream";
import { ImageError } from "../../src/format/errors.js";
import { MemorySource } from "../../src/criu/source.js";
import { openCriuSource } from "../../src/criu/open.js";
import { openImage } from "../../src/open.js";
import { searchMemory } from "../../src/analysis/search.js";
import { tempDir } from "../support/tmp.js";

const DIR = new URL("../../corpus/criu/quiet.criu/", import.meta.url).pathname;
const TGZ = new URL("../../corpus/criu/quiet-podman.tar.gz", import.meta.url).pathname;
const original = new Map(readdirSync(DIR).map((n) => [n, new Uint8Array(readFileSync(join(DIR, n)))]));
const metadataFiles = [...original.keys()].filter((n) => !n.startsWith("pages-")).sort();

/** Open the mutated dump and use it the way the verbs do; only ImageError may escape. */
async function exercise(files: Map<string, Uint8Array>): Promise<"ok" | ImageError> {
  try {
    const img = await openCriuSource(new MemorySource("mutated", files), DIR);
    try {
      for (const a of img.areas.slice(0, 8)) await img.readMemory(a.start, Math.min(8192, Number(a.end - a.start)), { unavailable: "zero" }).catch((e) => {
        if (!(e instanceof ImageError)) throw e;
      });
      await searchMemory(img, { needle: Buffer.from("CKIMG") });
    } finally {
      await img.close();
    }
    return "ok";
  } catch (err) {
    if (err instanceof ImageError) return err;
    throw err;
  }
}

describe("hostile CRIU images", () => {
  test("the fixture itself opens", async () => {
    expect(await exercise(new Map(original))).toBe("ok");
  });

  test("flipped, cut and inserted bytes in any metadata file: an ImageError or a result", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...metadataFiles),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.option(fc.nat(), { nil: undefined }),
        async (name, flips, cut) => {
          const files = new Map(original);
          let bytes = new Uint8Array(original.get(name)!);
          for (const [at, v] of flips) if (bytes.length) bytes[at % bytes.length] ^= v || 1;
          if (cut !== undefined && bytes.length) bytes = bytes.subarray(0, cut % bytes.length);
          files.set(name, bytes);
          await exercise(files);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("an entry size larger than the file is a TRUNCATED error naming the file and offset", async () => {
    const files = new Map(original);
    const core = [...files.keys()].find((n) => n.startsWith("core-"))!;
    const b = new Uint8Array(files.get(core)!);
    new DataView(b.buffer).setUint32(8, 0x7fffffff, true);
    files.set(core, b);
    const err = await exercise(files);
    expect(err).toBeInstanceOf(ImageError);
    expect((err as ImageError).code).toBe("RECORD_TOO_LARGE");
    expect((err as ImageError).file).toContain(core);
    expect((err as ImageError).offset).toBe(8);
  });

  test("a truncated pages file: the pagemap points past it", async () => {
    const files = new Map(original);
    files.set("pages-1.img", original.get("pages-1.img")!.subarray(0, 8192));
    const err = await exercise(files);
    expect(err).toBeInstanceOf(ImageError);
    expect((err as ImageError).code).toBe("TRUNCATED");
    expect((err as ImageError).message).toMatch(/points past the end of pages-1\.img/);
  });

  test("a missing core or pages file names the file", async () => {
    for (const gone of ["pages-1.img", [...original.keys()].find((n) => n.startsWith("core-"))!, "pstree.img"]) {
      const files = new Map(original);
      files.delete(gone);
      const err = await exercise(files);
      expect(err).toBeInstanceOf(ImageError);
      expect((err as ImageError).message).toContain(gone);
    }
  });
});

async function tarOf(entries: { name: string; data?: Uint8Array; size?: number; type?: "symlink" | "link"; linkname?: string }[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise((r) => pack.on("end", r));
  for (const e of entries) {
    const header = e.type ? { name: e.name, type: e.type, linkname: e.linkname } : { name: e.name };
    await new Promise<void>((resolve, reject) => pack.entry(header, e.type ? undefined : Buffer.from(e.data ?? []), (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

describe("hostile container archives", () => {
  const dir = tempDir("ckimg-criu-hostile-");
  const checkpoint = [...original].map(([name, data]) => ({ name: `checkpoint/${name}`, data }));

  test("path traversal and absolute names are listed as rejected, never used", async () => {
    const path = join(dir, "traversal.tar");
    writeFileSync(path, await tarOf([{ name: "../../etc/evil", data: Buffer.from("x") }, { name: "/abs/checkpoint/inventory.img", data: Buffer.from("y") }, { name: "checkpoint/../../x", data: Buffer.from("z") }, ...checkpoint]));
    const img = await openImage(path);
    try {
      expect((img as unknown as { container: { rejectedEntries: string[] } }).container.rejectedEntries).toEqual(["../../etc/evil", "/abs/checkpoint/inventory.img", "checkpoint/../../x"]);
      expect(img.process.comm).toBe("quiet");
    } finally {
      await img.close();
    }
  });

  test("a header announcing more data than the archive holds is TRUNCATED", async () => {
    const good = await tarOf(checkpoint.slice(0, 3));
    // Rewrite the first header's size field (octal, offset 124) to ~8 GiB and fix its checksum.
    const bad = Buffer.from(good);
    bad.write("77777777777\0", 124, "latin1");
    bad.write("        ", 148, "latin1");
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += bad[i];
    bad.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
    const path = join(dir, "huge.tar");
    writeFileSync(path, bad);
    await expect(openImage(path)).rejects.toMatchObject({ name: "ImageError", code: "TRUNCATED" });
  });

  /** Sets the size field of the tar header at `at` (octal, or GNU base-256 when `binary`) and fixes its checksum. */
  function setSize(b: Buffer, at: number, size: bigint, binary: boolean): void {
    if (binary) {
      b[at + 124] = 0x80;
      for (let i = 0; i < 11; i++) b[at + 124 + 11 - i] = Number((size >> BigInt(8 * i)) & 0xffn);
    } else {
      b.write(size.toString(8).padStart(11, "0") + "\0", at + 124, "latin1");
    }
    b.write("        ", at + 148, "latin1");
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += b[at + i];
    b.write(sum.toString(8).padStart(6, "0") + "\0 ", at + 148, "latin1");
  }

  test("huge sizes: an octal or base-256 size past the archive, in a .tar or a .tar.gz, is TRUNCATED", async () => {
    const good = await tarOf(checkpoint.slice(0, 3));
    for (const [size, binary] of [[0o77777777777n, false], [1n << 40n, true], [(1n << 63n) - 1n, true]] as const) {
      const bad = Buffer.from(good);
      setSize(bad, 0, size, binary);
      for (const gz of [false, true]) {
        const path = join(dir, `huge-${size}-${gz}.tar${gz ? ".gz" : ""}`);
        writeFileSync(path, gz ? gzipSync(bad) : bad);
        await expect(openImage(path), path).rejects.toMatchObject({ name: "ImageError", code: "TRUNCATED" });
      }
    }
  });

  test("a metadata entry bigger than the limit (a sparse 300 MiB files.img) is RECORD_TOO_LARGE, not read", async () => {
    // The big entry last, its data a hole: the test writes ~200 KiB, the archive says 300 MiB.
    const head = await tarOf(checkpoint.filter((e) => e.name !== "checkpoint/files.img"));
    const body = head.subarray(0, head.length - 1024); // without the two end-of-archive blocks
    const hdr = Buffer.from((await tarOf([{ name: "checkpoint/files.img", data: Buffer.alloc(1) }])).subarray(0, 512));
    const big = 300n << 20n;
    setSize(hdr, 0, big, false);
    const path = join(dir, "big-files.tar");
    writeFileSync(path, Buffer.concat([body, hdr]));
    truncateSync(path, body.length + 512 + Number(big) + 1024);
    const err = await openImage(path).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect(err).toMatchObject({ code: "RECORD_TOO_LARGE" });
    expect((err as ImageError).file).toBe(`${path}:checkpoint/files.img`);
  });

  test("links are never followed: a symlink or hard link in place of an image file is as good as absent", async () => {
    const pages = checkpoint.find((e) => e.name.startsWith("checkpoint/pages-"))!.name;
    const core = checkpoint.find((e) => e.name.startsWith("checkpoint/core-"))!.name;
    for (const [name, link] of [[pages, { type: "symlink", linkname: "/proc/self/mem" }], [core, { type: "link", linkname: "/etc/passwd" }]] as const) {
      const path = join(dir, `link-${name.split("/")[1]}.tar`);
      writeFileSync(path, await tarOf([...checkpoint.filter((e) => e.name !== name), { name, ...link }]));
      const err = await openImage(path).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ImageError);
      expect(err).toMatchObject({ code: "MISSING_RECORD" });
      expect((err as ImageError).message + (err as ImageError).file).toContain(name.split("/")[1]);
    }
  });

  test("truncated pages in an archive: a short pages entry, or the archive cut inside it, is TRUNCATED", async () => {
    const pagesName = checkpoint.find((e) => e.name.startsWith("checkpoint/pages-"))!.name;
    const short = checkpoint.map((e) => (e.name === pagesName ? { name: e.name, data: e.data.subarray(0, 8192) } : e));
    for (const gz of [false, true]) {
      const t = await tarOf(short);
      const path = join(dir, `short-pages.tar${gz ? ".gz" : ""}`);
      writeFileSync(path, gz ? gzipSync(t) : t);
      const err = await openImage(path).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ImageError);
      expect(err).toMatchObject({ code: "TRUNCATED" });
      expect((err as ImageError).message).toMatch(/points past the end of pages-1\.img/);
    }
    // pages last, the archive cut in the middle of them
    const full = await tarOf([...checkpoint.filter((e) => e.name !== pagesName), checkpoint.find((e) => e.name === pagesName)!]);
    const cutAt = full.length - 1024 - 40000;
    for (const gz of [false, true]) {
      const path = join(dir, `cut-pages.tar${gz ? ".gz" : ""}`);
      writeFileSync(path, gz ? gzipSync(full.subarray(0, cutAt)) : full.subarray(0, cutAt));
      await expect(openImage(path), path).rejects.toMatchObject({ name: "ImageError", code: "TRUNCATED" });
    }
  });

  test("random damage to a .tar.gz or a .tar: an ImageError or a result", async () => {
    const tgz = readFileSync(TGZ);
    const plain = gunzipSync(tgz);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 6 }), async (gz, flips) => {
        const b = Buffer.from(gz ? tgz : plain);
        for (const [at, v] of flips) b[at % b.length] ^= v;
        const path = join(dir, `damaged-${n++}.${gz ? "tar.gz" : "tar"}`);
        writeFileSync(path, b);
        try {
          const img = await openImage(path);
          await searchMemory(img, { needle: Buffer.from("CKIMG") }).catch((e) => {
            if (!(e instanceof ImageError)) throw e;
          });
          await img.close();
        } catch (err) {
          if (!(err instanceof ImageError)) throw err;
        }
      }),
      { numRuns: 60 },
    );
  });
});
