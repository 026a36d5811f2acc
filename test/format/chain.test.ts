/**
 * Incremental chains in the TypeScript reader (format 1.2): random chains of small images read
 * back as the model says (each page from the newest image that stores it), and chains with a
 * missing, swapped, foreign or looping parent are refused with MISSING_PARENT / BAD_PARENT.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { copyFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  CODEC, ImageWriter, RECORD_FLAG_MUST_UNDERSTAND, RecordType, encodePageDigests, encodeParent, openImage,
  pageDigest, verifyImage, type AreaRecord, encodeRegs, X86_64_REG_NAMES, type X86Regs,
} from "../../src/format/index.js";
import { tempDir } from "../support/tmp.js";

const PS = 4096;
const BASE = 0x10000000n;
const SPAN = 16;                       // pages in the one area
const dir = tempDir("ckimg-chain-");

interface Member {
  id: number;                          // image_id byte 0
  pid: number;
  /** page index -> fill byte (held pages); which of them this image stores */
  held: Map<number, number>;
  stored: Set<number>;
  parent?: { id: number; hint: string; depth: number; pid: number };
}

const idOf = (n: number) => Uint8Array.from({ length: 16 }, (_, i) => (i === 0 ? n : 0x5a));

async function writeMember(path: string, m: Member): Promise<void> {
  const w = await ImageWriter.create(path, { imageId: idOf(m.id), codec: CODEC.NONE, durable: false });
  await w.addProcess({
    pid: m.pid, ppid: 1, pgid: m.pid, sid: m.pid, uid: [0, 0, 0, 0], gid: [0, 0, 0, 0], personality: 0, umask: 0o22,
    threadCount: 1, captureNs: 1n, startTime: 777n, flags: 0, comm: "t", exe: "/t", cwd: "/", root: "/", kernel: "k",
    mm: { startCode: 0n, endCode: 0n, startData: 0n, endData: 0n, startBrk: 0n, brk: 0n, startStack: 0n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n },
  });
  const regs = {} as X86Regs;
  for (const n of X86_64_REG_NAMES) regs[n] = 0n;
  await w.addThread({
    tid: m.pid, flags: 1, state: "S", sigmask: 0n, pending: 0n, clearChildTid: 0n, robustList: 0n, robustListLen: 0n,
    altstack: { sp: 0n, size: 0n, flags: 2 }, regs, regsRaw: encodeRegs(regs), xstate: new Uint8Array(512),
  });
  if (m.parent) {
    await w.writeRecord(RecordType.PARENT, encodeParent({
      depth: m.parent.depth, parentImageId: idOf(m.parent.id), parentPid: m.parent.pid, parentStartTime: 777n,
      parentCreatedNs: 0n, pathHint: m.parent.hint,
    }), { flags: RECORD_FLAG_MUST_UNDERSTAND });
  }
  const area: AreaRecord = {
    id: 1, start: BASE, end: BASE + BigInt(SPAN * PS), fileOffset: 0n, devMajor: 0, devMinor: 0, inode: 0n,
    prot: 3, flags: 0, kind: "anon", fileId: undefined, path: "", vmflags: "rd wr",
  };
  await w.addArea(area);
  const page = (fill: number) => new Uint8Array(PS).fill(fill);
  const stored = [...m.stored].sort((a, b) => a - b);
  if (stored.length) {
    const bitmap = new Uint8Array(SPAN / 8);
    for (const p of stored) bitmap[p >> 3] |= 1 << (p & 7);
    const raw = new Uint8Array(stored.length * PS);
    stored.forEach((p, i) => raw.set(page(m.held.get(p)!), i * PS));
    await w.addPagesChunk(1, BASE, SPAN, bitmap, raw);
  }
  const held = [...m.held.keys()].sort((a, b) => a - b);
  if (held.length) {
    const bitmap = new Uint8Array(SPAN / 8);
    const digests = new Uint32Array(held.length * 2);
    held.forEach((p, i) => {
      bitmap[p >> 3] |= 1 << (p & 7);
      [digests[2 * i], digests[2 * i + 1]] = pageDigest(page(m.held.get(p)!));
    });
    await w.writeRecord(RecordType.PAGE_DIGESTS, encodePageDigests({ areaId: 1, firstPage: BASE, spanPages: SPAN, bitmap, digests }), {
      key32: 1, key64: BASE, auxA: SPAN, auxB: held.length,
    });
  }
  await w.finish();
}

/** A consistent chain: each member holds what its parent held plus some pages, stores the changes. */
const chainArb = fc.array(fc.array(fc.tuple(fc.integer({ min: 0, max: SPAN - 1 }), fc.integer({ min: 1, max: 255 })), { maxLength: 6 }), { minLength: 1, maxLength: 5 });

async function writeChain(tag: string, edits: [number, number][][]): Promise<{ paths: string[]; model: Map<number, number> }> {
  const paths: string[] = [];
  let held = new Map<number, number>();
  for (let k = 0; k < edits.length; k++) {
    const next = new Map(held);
    const stored = new Set<number>();
    for (const [p, v] of edits[k]) {
      next.set(p, v);
      stored.add(p);
    }
    if (k === 0) for (const p of next.keys()) stored.add(p);
    const path = join(dir, `${tag}-${k}.img`);
    await writeMember(path, {
      id: k + 1, pid: 4242, held: next, stored,
      parent: k ? { id: k, hint: `${tag}-${k - 1}.img`, depth: k, pid: 4242 } : undefined,
    });
    paths.push(path);
    held = next;
  }
  return { paths, model: held };
}

async function pageFill(path: string, p: number): Promise<number> {
  const img = await openImage(path);
  try {
    return (await img.readMemory(BASE + BigInt(p * PS), 1))[0];
  } finally {
    await img.close();
  }
}

describe("chains of incremental images", () => {
  it("read back as the model: each page from the newest image that stores it", async () => {
    let run = 0;
    await fc.assert(fc.asyncProperty(chainArb, async (edits) => {
      const { paths, model } = await writeChain(`ok${run++}`, edits);
      const last = paths[paths.length - 1];
      const img = await openImage(last);
      try {
        expect(img.chain.length).toBe(paths.length);
        const mem = await img.readMemory(BASE, SPAN * PS);
        for (let p = 0; p < SPAN; p++) expect(mem[p * PS]).toBe(model.get(p) ?? 0);
      } finally {
        await img.close();
      }
      expect((await verifyImage(last, { threads: 1 })).problems).toEqual([]);
      for (const p of paths) rmSync(p);
    }), { numRuns: 25 });
  });

  it("refuse missing, swapped and foreign parents", async () => {
    let run = 0;
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 3, max: 5 }), fc.constantFrom("missing", "swapped", "foreign"), fc.nat(),
      async (n, how, pick) => {
        const tag = `bad${run++}`;
        const { paths } = await writeChain(tag, Array.from({ length: n }, (_, k) => [[k % SPAN, k + 1]]));
        const victim = pick % (n - 1);                 // an ancestor of the last image
        if (how === "missing") rmSync(paths[victim]);
        else if (how === "swapped") copyFileSync(paths[(victim + 1) % (n - 1)], paths[victim]);
        else {
          await writeMember(paths[victim], { id: 200, pid: 9999, held: new Map([[0, 1]]), stored: new Set([0]) });
        }
        const last = paths[n - 1];
        await expect(openImage(last)).rejects.toMatchObject({ code: how === "missing" ? "MISSING_PARENT" : "BAD_PARENT" });
        const v = await verifyImage(last, { threads: 1 });
        expect(v.ok).toBe(false);
        expect(v.problems.map((p) => p.code)).toContain(how === "missing" ? "MISSING_PARENT" : "BAD_PARENT");
        for (const p of paths) rmSync(p, { force: true });
      },
    ), { numRuns: 12 });
  });

  it("refuse a loop and an inherited page the parent does not hold", async () => {
    // x names y as parent, y names x: a loop
    const x = join(dir, "loop-x.img"), y = join(dir, "loop-y.img");
    await writeMember(x, { id: 50, pid: 1, held: new Map([[0, 1]]), stored: new Set(), parent: { id: 51, hint: "loop-y.img", depth: 1, pid: 1 } });
    await writeMember(y, { id: 51, pid: 1, held: new Map([[0, 1]]), stored: new Set(), parent: { id: 50, hint: "loop-x.img", depth: 1, pid: 1 } });
    await expect(openImage(x)).rejects.toMatchObject({ code: "BAD_PARENT", detail: expect.stringMatching(/loops/) });
    // z inherits page 3, its parent holds only page 0
    const p = join(dir, "hole-p.img"), z = join(dir, "hole-z.img");
    await writeMember(p, { id: 60, pid: 1, held: new Map([[0, 9]]), stored: new Set([0]) });
    await writeMember(z, { id: 61, pid: 1, held: new Map([[0, 9], [3, 4]]), stored: new Set(), parent: { id: 60, hint: "hole-p.img", depth: 1, pid: 1 } });
    await expect(pageFill(z, 3)).rejects.toMatchObject({ code: "BAD_PARENT", detail: expect.stringMatching(/0x10003000 is inherited/) });
    const v = await verifyImage(z, { threads: 1 });
    expect(v.problems.map((q) => q.code)).toContain("BAD_PARENT");
  });
});
