/**
 * binary-parser (named by the user) as an independent oracle for the byte layouts of
 * docs/FORMAT.md: the header, trailer, index and record headers, and the FIXED parts of AREA
 * and THREAD, are declared here straight from the spec's tables and parsed from real images
 * (synthetic and C-written); our reader must agree field for field.
 */
import { expect, test } from "vitest";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { openImage, RecordType } from "../../src/format/index.js";

const { Parser } = createRequire(import.meta.url)("binary-parser") as { Parser: any };
const le = () => new Parser().endianness("little");

const HEADER = le().buffer("magic", { length: 8 }).uint16("versionMajor").uint16("versionMinor").uint32("headerSize")
  .uint32("flags").uint32("pageSize").uint16("machine").uint16("r0").uint32("r1").uint64("createdNs")
  .buffer("imageId", { length: 16 }).uint32("r2").uint32("crc");
const RECORD_HEADER = le().string("magic", { length: 4, encoding: "latin1" }).uint16("type").uint16("flags")
  .uint64("payloadLength").uint32("payloadCrc").uint32("sequence").uint32("reserved").uint32("crc");
const TRAILER = le().string("magic", { length: 8, encoding: "latin1" }).uint64("indexOffset").uint64("recordCount").uint32("flags").uint32("crc");
const INDEX = le().uint32("fixedSize").uint32("entrySize").uint64("entryCount").array("entries", {
  type: le().uint16("type").uint16("flags").uint32("key32").uint64("offset").uint64("payloadLength").uint64("key64").uint32("auxA").uint32("auxB"),
  length: "entryCount",
});
const STR = le().uint32("len").string("s", { length: "len", encoding: "utf8" });
const AREA = le().uint32("fixedSize").uint32("areaId").uint64("start").uint64("end").uint64("fileOffset").uint32("devMajor")
  .uint32("devMinor").uint64("inode").uint32("prot").uint32("flags").uint32("kind").uint32("fileId").nest("path", { type: STR });
const THREAD = le().uint32("fixedSize").uint32("tid").uint32("flags").uint32("state").uint64("sigmask").uint64("pending")
  .uint64("clearChildTid").uint64("robustList").uint64("robustListLen").uint64("altSp").uint64("altSize").uint32("altFlags")
  .uint32("regsSize").uint32("xstateSize").uint32("reserved").array("regs", { type: le().uint64("v"), length: 27 });

const images = ["synthetic-lzf.img", "captured-counter-lz4.img"].map((n) => new URL(`../../corpus/images/${n}`, import.meta.url).pathname);

test.each(images)("%s: spec layouts parsed by binary-parser agree with the reader", async (path) => {
  const file = readFileSync(path);
  const img = await openImage(path);
  try {
    const h = HEADER.parse(file.subarray(0, 64));
    expect([h.versionMajor, h.versionMinor, h.headerSize, h.pageSize, h.machine]).toEqual([1, img.header.versionMinor, 64, img.pageSize, 62]);
    expect(h.createdNs).toBe(img.header.createdNs);

    const t = TRAILER.parse(file.subarray(file.length - 32));
    expect(t.magic).toBe("CKIMGEND");
    expect(Number(t.recordCount)).toBe(img.entries.length);
    const ih = RECORD_HEADER.parse(file.subarray(Number(t.indexOffset), Number(t.indexOffset) + 32));
    expect([ih.magic, ih.type]).toEqual(["CKR1", RecordType.INDEX]);
    const index = INDEX.parse(file.subarray(Number(t.indexOffset) + 32, file.length - 32));
    expect(index.entries.map((e: any) => [e.type, Number(e.offset), Number(e.payloadLength)])).toEqual(
      img.entries.map((e) => [e.type, e.offset, e.payloadLength]),
    );

    for (const e of img.entries) {
      const rh = RECORD_HEADER.parse(file.subarray(e.offset, e.offset + 32));
      expect([rh.magic, rh.type, Number(rh.payloadLength), rh.sequence]).toEqual(["CKR1", e.type, e.payloadLength, e.sequence]);
      const payload = file.subarray(e.offset + 32, e.offset + 32 + e.payloadLength);
      if (e.type === RecordType.AREA) {
        const a = AREA.parse(payload);
        const ours = img.area(a.areaId)!;
        expect([a.start, a.end, a.fileOffset, a.inode, a.path.s]).toEqual([ours.start, ours.end, ours.fileOffset, ours.inode, ours.path]);
      }
      if (e.type === RecordType.THREAD) {
        const th = THREAD.parse(payload);
        const ours = img.threads.find((x) => x.tid === th.tid)!;
        expect(th.regs[16].v).toBe(ours.regs!.rip); // rip is the 17th register of user_regs_struct
        expect(th.regs[21].v).toBe(ours.regs!.fs_base);
        expect([th.sigmask, th.xstateSize]).toEqual([ours.sigmask, ours.xstate.length]);
      }
    }
  } finally {
    await img.close();
  }
});
