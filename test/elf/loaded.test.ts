/**
 * parseLoadedElf against a real process: read libc and the main executable out of
 * /proc/PID/mem of a running child (its dynamic section as ld.so relocated it) and compare
 * with the files on disk.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildSymbolIndex, gotSlots, parseElf, parseLoadedElf, type MemoryReader } from "../../src/elf/index.js";

function memReader(pid: number): { read: MemoryReader; close(): void } {
  const fd = openSync(`/proc/${pid}/mem`, "r");
  return {
    read(vaddr, len) {
      const b = new Uint8Array(len);
      try {
        // /proc/PID/mem is addressed by virtual address; user-space addresses fit a double.
        const n = readSync(fd, b, 0, len, Number(vaddr));
        return n === len ? b : undefined;
      } catch {
        return undefined;
      }
    },
    close: () => closeSync(fd),
  };
}

/** First mapping (offset 0) of each file in /proc/PID/maps: path → start address. */
function mappings(pid: number): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of readFileSync(`/proc/${pid}/maps`, "utf8").split("\n")) {
    const m = /^([0-9a-f]+)-[0-9a-f]+ \S+ ([0-9a-f]+) \S+ \d+ +(\/.*)$/.exec(line);
    if (m && BigInt("0x" + m[2]) === 0n && !out.has(m[3])) out.set(m[3], BigInt("0x" + m[1]));
  }
  return out;
}

describe.skipIf(process.platform !== "linux")("images read from a live process", () => {
  it("libc and the executable read from /proc/PID/mem match their files", async (ctx) => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      await new Promise((r) => setTimeout(r, 300));
      let mem: ReturnType<typeof memReader>;
      try {
        mem = memReader(child.pid!);
      } catch {
        ctx.skip(); // /proc/PID/mem not readable here
        return;
      }
      try {
        const maps = mappings(child.pid!);
        const libcPath = [...maps.keys()].find((p) => /\/libc\.so\.6$|\/libc-[\d.]+\.so$/.test(p));
        expect(libcPath).toBeDefined();
        for (const path of [libcPath!, [...maps.keys()].find((p) => p.endsWith("/sleep"))!]) {
          const base = maps.get(path)!;
          const file = parseElf(new Uint8Array(readFileSync(path)), { file: path });
          const img = parseLoadedElf(mem.read, base);
          if (mem.read(base, 16) === undefined) {
            ctx.skip();
            return;
          }
          expect(img.needed).toEqual(file.needed);
          expect(img.soname).toBe(file.soname);
          expect(img.bindNow).toBe(file.bindNow);
          const strip = (s: { section: string }) => ({ ...s, section: "" });
          expect(img.dynsym!.symbols().map(strip)).toEqual(file.dynsym!.symbols().map(strip));
          const slots = (x: ReturnType<typeof gotSlots>) => x.map((s) => `${s.address} ${s.typeName} ${s.symbol} ${s.version} ${s.addend}`).sort();
          expect(slots(gotSlots(img))).toEqual(slots(gotSlots(file)));
          // Hash lookup through the relocated DT_GNU_HASH, and naming a run-time address.
          const sym = file.dynsym!.symbols().find((s) => s.shndx !== 0 && s.type === "FUNC" && s.size > 4n);
          if (sym) {
            expect(img.dynsym!.lookup(sym.name, sym.version)?.value).toBe(sym.value);
            const hit = buildSymbolIndex(img.dynsym!, img.bias).lookup(img.bias + sym.value + 2n);
            expect(hit?.symbol.value).toBe(sym.value);
            expect(hit?.offset).toBe(2n);
          }
        }
      } finally {
        mem.close();
      }
    } finally {
      child.kill();
    }
  });
});
