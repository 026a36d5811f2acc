/**
 * Address → symbol: nearest preceding, size-aware, best alias per address; checked against a
 * brute-force reference on random symbol sets and on a real library.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildSymbolIndex, parseElf, type ElfSymbol } from "../../src/elf/index.js";

function sym(name: string, value: bigint, size: bigint, type = 2, bind = 1, shndx = 1): ElfSymbol {
  return {
    table: "symtab", index: 0, name, value, size, type: "FUNC", bind: "GLOBAL", visibility: "DEFAULT",
    info: (bind << 4) | type, other: 0, shndx, section: ".text",
  };
}

/** Reference: among symbols starting at or below addr, the highest start; sized ones must contain addr. */
function reference(syms: ElfSymbol[], addr: bigint, bias = 0n): string | undefined {
  const starts = syms.filter((s) => s.value + bias <= addr).map((s) => s.value + bias);
  if (!starts.length) return undefined;
  const top = starts.reduce((a, b) => (a > b ? a : b));
  const at = syms.filter((s) => s.value + bias === top);
  const best = at.sort((a, b) => rankOf(b) - rankOf(a) || syms.indexOf(a) - syms.indexOf(b))[0];
  if (best.size === 0n || addr < top + best.size) return best.name;
  return "outside";
}
function rankOf(s: ElfSymbol): number {
  const t = s.info & 0xf;
  const b = s.info >> 4;
  let u = 0;
  while (s.name[u] === "_") u++;
  return (t === 2 ? 3 : t === 1 ? 2 : 1) * 1000 + (b === 1 ? 3 : b === 2 ? 2 : 1) * 100 + (s.size > 0n ? 10 : 0) + (9 - Math.min(u, 9));
}

describe("buildSymbolIndex", () => {
  it("finds the nearest preceding symbol with its offset, and respects sizes", () => {
    const idx = buildSymbolIndex([sym("a", 0x1000n, 0x10n), sym("b", 0x1020n, 0n), sym("c", 0x1040n, 0x20n)]);
    expect(idx.lookup(0xfffn)).toBeUndefined();
    expect(idx.lookup(0x1000n)).toMatchObject({ symbol: { name: "a" }, offset: 0n });
    expect(idx.lookup(0x100fn)).toMatchObject({ symbol: { name: "a" }, offset: 0xfn });
    expect(idx.lookup(0x1010n)).toBeUndefined(); // past a's end, before b
    expect(idx.lookup(0x1030n)).toMatchObject({ symbol: { name: "b" }, offset: 0x10n }); // unsized reaches on
    expect(idx.lookup(0x105fn)?.symbol.name).toBe("c");
    expect(idx.lookup(0x1060n)).toBeUndefined();
  });

  it("prefers global functions over local/untyped aliases at one address", () => {
    const idx = buildSymbolIndex([
      sym("local_label", 0x2000n, 0n, 0, 0),
      sym("__weak_alias", 0x2000n, 0x40n, 2, 2),
      sym("object", 0x2000n, 0x40n, 1, 1),
      sym("real_function", 0x2000n, 0x40n, 2, 1),
    ]);
    expect(idx.lookup(0x2010n)?.symbol.name).toBe("real_function");
  });

  it("a label inside a sized function does not hide the function after the label's reach", () => {
    const idx = buildSymbolIndex([sym("outer", 0x3000n, 0x100n), sym("inner", 0x3010n, 0x8n)]);
    expect(idx.lookup(0x3014n)?.symbol.name).toBe("inner");
    expect(idx.lookup(0x3020n)).toMatchObject({ symbol: { name: "outer" }, offset: 0x20n });
  });

  it("adds the load bias and skips undefined, section, file and TLS symbols", () => {
    const syms = [sym("f", 0x100n, 0x10n), sym("undef", 0x0n, 0n, 2, 1, 0), sym("sect", 0x100n, 0n, 3, 0), sym("tls", 0x100n, 8n, 6)];
    const idx = buildSymbolIndex(syms, 0x7f0000000000n);
    expect(idx.size).toBe(1);
    expect(idx.lookup(0x7f0000000105n)).toMatchObject({ symbol: { name: "f" }, offset: 5n });
    expect(idx.lookupNumber(0x7f0000000105)).toMatchObject({ symbol: { name: "f" }, offset: 5n });
  });

  it("agrees with a brute-force reference on random symbol sets", () => {
    const symArb = fc.record({
      value: fc.bigInt({ min: 0n, max: 0x400n }),
      size: fc.constantFrom(0n, 1n, 8n, 0x40n),
      type: fc.constantFrom(0, 1, 2),
      bind: fc.constantFrom(0, 1, 2),
    });
    fc.assert(
      fc.property(fc.array(symArb, { minLength: 1, maxLength: 30 }), fc.array(fc.bigInt({ min: 0n, max: 0x480n }), { maxLength: 30 }), (raw, addrs) => {
        const syms = raw.map((r, i) => sym(`s${i}`, r.value, r.size, r.type, r.bind));
        const idx = buildSymbolIndex(syms, 0n, { lookback: 1000 });
        for (const a of addrs) {
          const want = reference(syms, a);
          const got = idx.lookup(a);
          if (want === "outside") {
            // Past the nearest sized symbol: only an enclosing sized symbol may answer.
            if (got) expect(got.symbol.value + got.symbol.size > a).toBe(true);
          } else expect(got?.symbol.name).toBe(want);
        }
      }),
      { numRuns: 300, seed: 7 },
    );
  });

  it("on a real library: every defined function maps to itself at start and inside", () => {
    const file = join(__dirname, "../../corpus/elf/ckimg-libv.so");
    const elf = parseElf(new Uint8Array(readFileSync(file)));
    const all = [...elf.symtab!, ...elf.dynsym!];
    const idx = buildSymbolIndex(all);
    for (const s of all) {
      if ((s.info & 0xf) !== 2 || s.shndx === 0 || s.size === 0n) continue;
      const hit = idx.lookup(s.value + s.size - 1n)!;
      expect(hit.symbol.value).toBe(s.value);
      expect(hit.offset).toBe(s.size - 1n);
    }
  });

  it("built from whole tables (no symbol objects) it answers exactly as from materialized symbols", () => {
    for (const f of ["ckimg-libv.so", "ckimg-ibt-now-relr", "ckimg-m32-pie", "pyelftools-aarch64_be_gnu_hash.so.elf"]) {
      const elf = parseElf(new Uint8Array(readFileSync(join(__dirname, "../../corpus/elf", f))));
      const tables = elf.symbolTables();
      const bias = elf.header.type === 3 ? 0x7f0000000000n : 0n;
      const a = buildSymbolIndex(tables, bias);
      const b = buildSymbolIndex(tables.flatMap((t) => t.symbols()), bias);
      expect(a.size).toBe(b.size);
      const text = elf.sectionByName(".text")!;
      for (let x = text.addr - 16n; x < text.addr + text.size + 16n; x += 3n) {
        const ha = a.lookup(x + bias);
        const hb = b.lookup(x + bias);
        expect(ha?.symbol.name).toBe(hb?.symbol.name);
        expect(ha?.offset).toBe(hb?.offset);
      }
    }
  });
});

