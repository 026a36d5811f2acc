/**
 * Format 1.1 file and terminal records (FILE_CONTENT, FILE_DATA, FD_FILE, TTY): round trips,
 * hostile payloads (random bytes and mutations give a record or an ImageError, nothing else),
 * and an image that holds a sparse deleted file read back through the reader.
 */
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bytes, text, u32, u64 } from "../support/arbitraries.js";
import {
  CODEC, ImageError, ImageWriter, decodeFdFile, decodeFileContent, decodeFileDataHeader, decodeTty, encodeFdFile,
  encodeFileContent, encodeFileData, encodeTty, openImage, termiosMode, ttySummary, writeSyntheticImage,
  type FileContentRecord, type TtyRecord,
} from "../../src/format/index.js";
import { tempDir } from "../support/tmp.js";

const where = { recordType: "TEST" };
const u16 = fc.integer({ min: 0, max: 0xffff });

const arbContent = fc.record({
  id: fc.integer({ min: 1, max: 0xffffffff }),
  kind: fc.constantFrom("deleted" as const, "memfd" as const),
  flags: u32, devMajor: u32, devMinor: u32, inode: u64, size: u64, mtimeNs: u64, mode: u32, seals: u32,
  dataBytes: u64, runCount: u32, path: text,
  uid: fc.option(fc.integer({ min: 0, max: 0xfffffffe }), { nil: undefined }),
  gid: fc.option(fc.integer({ min: 0, max: 0xfffffffe }), { nil: undefined }),
});
const arbFdFile = fc.record({
  fd: u32, contentId: fc.option(fc.integer({ min: 1, max: 0xffffffff }), { nil: undefined }), flags: u32,
  size: u64, mtimeNs: u64, ctimeNs: u64,
});
const arbTty = fc.record({
  fd: u32, flags: u32, index: fc.option(fc.integer({ min: 0, max: 0xfffffffe }), { nil: undefined }), sid: u32, fgPgrp: u32,
  termios: fc.record({
    iflag: u32, oflag: u32, cflag: u32, lflag: u32, line: fc.integer({ min: 0, max: 255 }),
    cc: fc.uint8Array({ minLength: 19, maxLength: 19 }), ispeed: u32, ospeed: u32,
  }),
  winsize: fc.record({ rows: u16, cols: u16, xpixel: u16, ypixel: u16 }),
  inQueued: u32, outQueued: u32, peerFd: fc.option(fc.integer({ min: 0, max: 0xfffffffe }), { nil: undefined }),
  name: text, data: bytes(64),
  uid: fc.option(fc.integer({ min: 0, max: 0xfffffffe }), { nil: undefined }),
  gid: fc.option(fc.integer({ min: 0, max: 0xfffffffe }), { nil: undefined }),
  mode: fc.option(fc.integer({ min: 0, max: 0o7777 }), { nil: undefined }),
});

/** Decoding must give a value or an ImageError (TRUNCATED/BAD_FIELD): never another exception. */
function decodesOrImageError(f: () => unknown): void {
  try {
    f();
  } catch (err) {
    if (!(err instanceof ImageError)) throw err;
    expect(["TRUNCATED", "BAD_FIELD"]).toContain(err.code);
  }
}

describe("file and terminal records round trip", () => {
  test("FILE_CONTENT", () => {
    fc.assert(fc.property(arbContent, (c) => { expect(decodeFileContent(encodeFileContent(c), 0, where)).toEqual(c); }));
  });
  test("FD_FILE", () => {
    fc.assert(fc.property(arbFdFile, (f) => { expect(decodeFdFile(encodeFdFile(f), 0, where)).toEqual(f); }));
  });
  test("TTY", () => {
    fc.assert(fc.property(arbTty, (t) => { expect(decodeTty(encodeTty(t), 0, where)).toEqual(t); }));
  });
  test("FILE_DATA header", () => {
    fc.assert(fc.property(u32, u64, fc.integer({ min: 1, max: 16 << 20 }), u32, bytes(100), (id, off, len, crc, data) => {
      const h = decodeFileDataHeader(encodeFileData({ contentId: id, offset: off, length: len, codec: 0, storedSize: data.length, rawCrc: crc }, data), 0, where);
      expect(h).toEqual({ contentId: id, offset: off, length: len, codec: 0, storedSize: data.length, rawCrc: crc, dataOffset: 40 });
    }));
  });
  test("a larger fixed_size (a later minor version) is skipped", () => {
    fc.assert(fc.property(arbTty, bytes(40), (t, extra) => {
      const enc = encodeTty(t);
      const grown = new Uint8Array(enc.length + extra.length);
      grown.set(enc.subarray(0, 112));
      grown.set(extra, 112);
      grown.set(enc.subarray(112), 112 + extra.length);
      new DataView(grown.buffer).setUint32(0, 112 + extra.length, true);
      expect(decodeTty(grown, 0, where)).toEqual(t);
    }));
  });
});

describe("hostile file and terminal payloads", () => {
  const decoders = [decodeFileContent, decodeFdFile, decodeTty, decodeFileDataHeader];
  test("random bytes", () => {
    fc.assert(fc.property(bytes(200), fc.constantFrom(...decoders), (b, dec) => decodesOrImageError(() => dec(b, 0, where))), { numRuns: 2000 });
  });
  test("mutated valid payloads (bit flips, truncation, huge lengths)", () => {
    const valid = fc.oneof(arbContent.map(encodeFileContent), arbTty.map(encodeTty), arbFdFile.map(encodeFdFile));
    fc.assert(fc.property(valid, fc.nat(), fc.nat(), fc.integer({ min: 0, max: 2 }), fc.constantFrom(...decoders), (enc, at, bit, how, dec) => {
      const b = enc.slice();
      if (how === 0) b[at % b.length] ^= 1 << (bit % 8);
      else if (how === 1) new DataView(b.buffer).setUint32((at % Math.max(1, b.length - 3)) & ~3, 0xfffffff0, true);
      const cut = how === 2 ? b.subarray(0, at % b.length) : b;
      decodesOrImageError(() => dec(cut, 0, where));
    }), { numRuns: 3000 });
  });
  test("FILE_CONTENT owner: 80 bytes carry uid/gid, a 72-byte record (early 1.1) has none", () => {
    const c: FileContentRecord = { id: 1, kind: "deleted", flags: 0, devMajor: 0, devMinor: 1, inode: 5n, size: 10n, mtimeNs: 0n, mode: 0o100600, seals: 0, dataBytes: 0n, runCount: 0, path: "/tmp/x", uid: 1000, gid: 100 };
    const enc = encodeFileContent(c);
    expect(new DataView(enc.buffer).getUint32(0, true)).toBe(80);
    expect(decodeFileContent(enc, 0, where)).toMatchObject({ uid: 1000, gid: 100 });
    // the same record as a 72-byte FIXED part: path follows at 72
    const old = new Uint8Array(enc.length - 8);
    old.set(enc.subarray(0, 72));
    old.set(enc.subarray(80), 72);
    new DataView(old.buffer).setUint32(0, 72, true);
    const d = decodeFileContent(old, 0, where);
    expect(d.uid).toBeUndefined();
    expect(d.gid).toBeUndefined();
    expect(d.path).toBe("/tmp/x");
  });
  test("TTY owner: 112 bytes carry the slave's uid/gid/mode, a 96-byte record (early 1.1) has none", () => {
    const t: TtyRecord = {
      fd: 4, flags: 4, index: 3, sid: 0, fgPgrp: 0,
      termios: { iflag: 0, oflag: 0, cflag: 0, lflag: 0, line: 0, cc: new Uint8Array(19), ispeed: 38400, ospeed: 38400 },
      winsize: { rows: 24, cols: 80, xpixel: 0, ypixel: 0 }, inQueued: 0, outQueued: 0, peerFd: 5,
      name: "/dev/pts/3", data: Uint8Array.of(1, 2), uid: 13333, gid: 44444, mode: 0o620,
    };
    const enc = encodeTty(t);
    expect(new DataView(enc.buffer).getUint32(0, true)).toBe(112);
    expect(decodeTty(enc, 0, where)).toEqual(t);
    // the same record as a 96-byte FIXED part: name and data follow at 96
    const old = new Uint8Array(enc.length - 16);
    old.set(enc.subarray(0, 96));
    old.set(enc.subarray(112), 96);
    new DataView(old.buffer).setUint32(0, 96, true);
    const d = decodeTty(old, 0, where);
    expect([d.uid, d.gid, d.mode]).toEqual([undefined, undefined, undefined]);
    expect(d.name).toBe("/dev/pts/3");
    expect([...d.data]).toEqual([1, 2]);
  });
  test("content id 0 and a FILE_DATA whose DATA does not fill the payload are refused", () => {
    const c: FileContentRecord = { id: 1, kind: "memfd", flags: 0, devMajor: 0, devMinor: 1, inode: 5n, size: 10n, mtimeNs: 0n, mode: 0o100600, seals: 0, dataBytes: 0n, runCount: 0, path: "x" };
    const enc = encodeFileContent(c);
    new DataView(enc.buffer).setUint32(4, 0, true);
    expect(() => decodeFileContent(enc, 0, where)).toThrow(/content_id 0/);
    const d = encodeFileData({ contentId: 1, offset: 0n, length: 4, codec: 0, storedSize: 4, rawCrc: 0 }, Uint8Array.of(1, 2, 3, 4));
    expect(() => decodeFileDataHeader(d.subarray(0, d.length - 1), 0, where)).toThrow(ImageError);
  });
});

describe("an image holding a sparse file", () => {
  const dir = tempDir();
  const content: FileContentRecord = {
    id: 7, kind: "deleted", flags: 0, devMajor: 8, devMinor: 1, inode: 4242n, size: (64n << 20n) + 10n, mtimeNs: 1n, mode: 0o100644,
    seals: 0, dataBytes: 8192n + 10n, runCount: 2, path: "/tmp/gone.dat",
  };
  const head = new Uint8Array(8192).map((_, i) => (i * 7) & 0xff);
  const tail = new TextEncoder().encode("the end!!\n");

  async function build(codec: 0 | 1 | 2 | 3): Promise<string> {
    const path = join(dir, `sparse-${codec}.img`);
    await writeSyntheticImage(path, { codec, heapBytes: 8192, seed: 5 });
    // the synthetic image plus our records: rewrite it with them appended through the writer
    const src = await openImage(path);
    const out = join(dir, `files-${codec}.img`);
    const w = await ImageWriter.create(out, { codec, durable: false });
    await w.addProcess(src.process);
    for (const t of src.threads) await w.addThread(t);
    await w.addFileContent(content);
    await w.addFileData(7, 0n, head);
    await w.addFileData(7, content.size - 10n, tail);
    await w.addFdFile({ fd: 3, contentId: 7, flags: 1, size: content.size, mtimeNs: 1n, ctimeNs: 2n });
    const tty: TtyRecord = {
      fd: 0, flags: 1 | 4 | 128, index: 3, sid: 100, fgPgrp: 101,
      termios: { iflag: 0, oflag: 5, cflag: 0o277, lflag: 0, line: 0, cc: new Uint8Array(19), ispeed: 38400, ospeed: 38400 },
      winsize: { rows: 24, cols: 80, xpixel: 0, ypixel: 0 }, inQueued: 0, outQueued: 0, peerFd: undefined, name: "/dev/pts/3", data: new Uint8Array(0),
    };
    await w.addTty(tty);
    await w.finish();
    await src.close();
    return out;
  }

  test.each([CODEC.NONE, CODEC.LZ4, CODEC.LZF, CODEC.DEFLATE] as const)("codec %i: runs, holes and the tty come back", async (codec) => {
    const img = await openImage(await build(codec));
    expect(img.fileContents).toEqual([content]);
    expect(img.fileRunsByContent.get(7)!.map((r) => [r.fileOffset, r.length])).toEqual([[0n, 8192], [content.size - 10n, 10]]);
    expect(await img.readFileContent(7, 0n, 8192)).toEqual(head);
    expect(await img.readFileContent(7, 4096n, 8192)).toEqual(Uint8Array.from([...head.subarray(4096), ...new Uint8Array(4096)]));
    expect(await img.readFileContent(7, content.size - 12n)).toEqual(Uint8Array.from([0, 0, ...tail]));
    expect(img.fdFiles.get(3)!.contentId).toBe(7);
    const t = img.ttys.get(0)!;
    expect(termiosMode(t.termios)).toBe("raw");
    expect(ttySummary(t)).toBe("/dev/pts/3 raw 24x80 controlling pty-slave foreground");
    await img.close();
  });

  test("a damaged run is an ImageError naming FILE_DATA; other records still read", async () => {
    const path = await build(CODEC.NONE);
    const b = new Uint8Array(readFileSync(path));
    const at = Buffer.from(b).indexOf(Buffer.from(head.subarray(100, 140)));
    b[at] ^= 0xff;
    const bad = join(dir, "bad-run.img");
    writeFileSync(bad, b);
    const img = await openImage(bad);
    expect(img.fileContents.length).toBe(1);
    await expect(img.readFileContent(7)).rejects.toMatchObject({ code: "BAD_CHECKSUM", recordType: "FILE_DATA" });
    await img.close();
  });

  test("runs past the file size or of an unknown content are refused when the image opens", async () => {
    const out = join(dir, "bad-size.img");
    const src = await openImage(await build(CODEC.NONE));
    const w = await ImageWriter.create(out, { durable: false });
    await w.addProcess(src.process);
    await w.addFileContent({ ...content, size: 100n });
    await w.addFileData(7, 0n, head);
    await w.finish();
    await src.close();
    await expect(openImage(out)).rejects.toMatchObject({ code: "BAD_FIELD", recordType: "FILE_DATA" });
    const tolerant = await openImage(out, { tolerant: true });
    expect(tolerant.fileRunsByContent.get(7)).toEqual([]);
    expect(tolerant.problems.length).toBeGreaterThan(0);
    await tolerant.close();
  });
});

describe("an image written by the C capture (corpus/images/captured-files-lz4.img)", () => {
  const path = new URL("../../corpus/images/captured-files-lz4.img", import.meta.url).pathname;
  test("its files and terminal read back as the program left them", async () => {
    const img = await openImage(path);
    const file = img.fileContents.find((c) => c.kind === "deleted")!;
    expect(file).toMatchObject({ path: "/tmp/ckimg-corpus/unlinked.dat", size: (1n << 20n) + 4096n, dataBytes: 8192n, runCount: 2, mode: 0o100640 });
    // unlinked.c: pattern(a, 4096, 1) at 0 with byte 10 written through a shared mapping, pattern(b, 4096, 2) at 1 MiB
    const head = await img.readFileContent(file.id, 0n, 16);
    expect([...head.subarray(0, 4)]).toEqual([1, 32, 63, 94]);
    expect(head[10]).toBe(0x5a);
    expect(await img.readFileContent(file.id, 4096n, 4096)).toEqual(new Uint8Array(4096)); // the hole
    expect((await img.readFileContent(file.id, 1n << 20n, 2))[1]).toBe(33);
    const memfd = img.fileContents.find((c) => c.kind === "memfd")!;
    expect(memfd).toMatchObject({ path: "ckimg-memfd", size: 8192n, seals: 6 });
    expect((await img.readFileContent(memfd.id, 100n, 1))[0]).toBe(0xab);
    expect(img.fdFiles.get(3)?.contentId).toBe(file.id);
    expect(img.fdFiles.get(4)?.contentId).toBe(memfd.id);
    const t = img.ttys.get(0)!;
    expect(ttySummary(t)).toBe("/dev/pts/0 cooked 24x80 controlling pty-slave foreground");
    // the mapped memfd and the mapped file are backed by their stored content, no pages twice
    const areas = img.areas.filter((a) => a.path.startsWith("/memfd:") || a.path.includes("unlinked.dat"));
    expect(areas.length).toBe(3);
    for (const a of areas.filter((x) => x.flags & 1)) expect(img.storedPages(a.id)).toBe(0);
    await img.close();
  });
});
