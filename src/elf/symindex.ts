/**
 * Address → symbol: the nearest preceding symbol, size-aware, built once over sorted typed
 * arrays and answered by binary search (no allocation but the result).
 */
import type { ElfSymbol, SymbolTable } from "./symbol.js";
import { SHN_ABS, SHN_UNDEF, STT_FILE, STT_SECTION, STT_TLS } from "./raw.js";

export interface SymbolHit {
  symbol: ElfSymbol;
  /** addr − symbol start (symbol value + load bias). */
  offset: bigint;
}

export interface SymbolIndex {
  readonly size: number;
  lookup(addr: bigint): SymbolHit | undefined;
  /** The same for a JS number address (no bigint on the hot path). */
  lookupNumber(addr: number): SymbolHit | undefined;
}

export interface SymbolIndexOptions {
  /** How far back to look for a sized symbol that contains the address (nested/overlapping symbols). */
  lookback?: number;
}

/**
 * Rank of a symbol among aliases at one address: functions over objects over untyped labels,
 * global over weak over local, sized over unsized, fewer leading underscores, then first seen.
 */
function rank(s: ElfSymbol): number {
  const t = s.info & 0xf;
  const b = s.info >> 4;
  const typeRank = t === 2 || t === 10 ? 3 : t === 1 ? 2 : 1;
  const bindRank = b === 1 || b === 10 ? 3 : b === 2 ? 2 : 1;
  let u = 0;
  while (u < s.name.length && s.name.charCodeAt(u) === 95) u++;
  return typeRank * 1000 + bindRank * 100 + (s.size > 0n ? 10 : 0) + (9 - Math.min(u, 9));
}

/** Symbols that name code or data addresses (not sections, files, TLS offsets, undefined or absolute 0s). */
function addressable(s: ElfSymbol): boolean {
  const t = s.info & 0xf;
  if (t === STT_SECTION || t === STT_FILE || t === STT_TLS) return false;
  if (s.shndx === SHN_UNDEF) return false;
  if (s.shndx === SHN_ABS && t !== 1 && t !== 2) return false;
  return s.name !== "";
}

/** Candidates gathered from either input form, as parallel arrays (no object per symbol). */
interface Candidates {
  rel: number[];
  size: number[];
  rank: number[];
  /** The symbol behind each candidate: an ElfSymbol, or (table, index) materialized on first hit. */
  get(i: number): ElfSymbol;
  base: bigint;
}

function fromSymbols(symbols: Iterable<ElfSymbol>, loadBias: bigint): Candidates {
  const cand: ElfSymbol[] = [];
  for (const s of symbols) if (addressable(s)) cand.push(s);
  let base = 0n;
  if (cand.length) {
    base = cand[0].value + loadBias;
    for (const s of cand) if (s.value + loadBias < base) base = s.value + loadBias;
  }
  // Addresses relative to the lowest one fit a double exactly (an object spans < 2^53 bytes).
  return {
    rel: cand.map((s) => Number(s.value + loadBias - base)),
    size: cand.map((s) => Number(s.size)),
    rank: cand.map(rank),
    get: (i) => cand[i],
    base,
  };
}

/**
 * Straight from the tables' bytes: only the symbols an answer names are ever materialized.
 * Returns undefined when a value does not fit a double exactly (kernel-half addresses), for
 * the bigint path to take over.
 */
function fromTables(tables: SymbolTable[], loadBias: bigint): Candidates | undefined {
  if (loadBias > 0x1fffffffffffffn) return undefined;
  const bias = Number(loadBias);
  const val: number[] = [];
  const size: number[] = [];
  const rk: number[] = [];
  const tab: number[] = [];
  const idx: number[] = [];
  for (let ti = 0; ti < tables.length; ti++) {
    const t = tables[ti];
    const v = t.view;
    const dv = v.dv;
    const le = v.le;
    const F = t.fieldOffsets;
    const str = t.strtab.bytes;
    for (let i = 0; i < t.count; i++) {
      const e = t.offset + i * t.entsize;
      const info = v.bytes[e + F.info];
      const type = info & 0xf;
      if (type === STT_SECTION || type === STT_FILE || type === STT_TLS) continue;
      const shndx = t.shndx(i);
      if (shndx === SHN_UNDEF || (shndx === SHN_ABS && type !== 1 && type !== 2)) continue;
      const no = dv.getUint32(e + F.name, le);
      if (no >= str.length || str[no] === 0) continue;
      let value: number;
      let sz: number;
      if (v.is64) {
        const hi = dv.getUint32(e + F.value + (le ? 4 : 0), le);
        if (hi >= 0x200000) return undefined;
        value = hi * 4294967296 + dv.getUint32(e + F.value + (le ? 0 : 4), le);
        const shi = dv.getUint32(e + F.size_ + (le ? 4 : 0), le);
        sz = shi * 4294967296 + dv.getUint32(e + F.size_ + (le ? 0 : 4), le);
      } else {
        value = dv.getUint32(e + F.value, le);
        sz = dv.getUint32(e + F.size_, le);
      }
      let u = 0;
      while (u < 9 && no + u < str.length && str[no + u] === 95) u++;
      const bind = info >> 4;
      rk.push((type === 2 || type === 10 ? 3 : type === 1 ? 2 : 1) * 1000 + (bind === 1 || bind === 10 ? 3 : bind === 2 ? 2 : 1) * 100 + (sz > 0 ? 10 : 0) + (9 - u));
      val.push(value + bias);
      size.push(sz);
      tab.push(ti);
      idx.push(i);
    }
  }
  let min = Infinity;
  for (const x of val) if (x < min) min = x;
  if (!(min <= 0x1fffffffffffff) || val.some((x) => x > 0x1fffffffffffff)) {
    if (val.length) return undefined;
    min = 0;
  }
  const cache = new Map<number, ElfSymbol>();
  return {
    rel: val.map((x) => x - min),
    size,
    rank: rk,
    get(i) {
      let s = cache.get(i);
      if (!s) {
        s = tables[tab[i]].symbol(idx[i]);
        cache.set(i, s);
      }
      return s;
    },
    base: BigInt(min),
  };
}

function isTable(x: unknown): x is SymbolTable {
  return typeof x === "object" && x !== null && "fieldOffsets" in x && "strtab" in x;
}

/**
 * Build the index, adding `loadBias` to every value (0 for file addresses; the mapping base
 * of an ET_DYN object in a process). `source` is any iterable of symbols (any mix of tables),
 * or whole SymbolTables: then it reads the tables' bytes directly and materializes only the
 * symbols that lookups return (much less memory for a process's worth of libraries).
 */
export function buildSymbolIndex(source: Iterable<ElfSymbol> | SymbolTable | SymbolTable[], loadBias = 0n, opts: SymbolIndexOptions = {}): SymbolIndex {
  const tables = isTable(source) ? [source] : Array.isArray(source) && source.length > 0 && source.every(isTable) ? (source as SymbolTable[]) : undefined;
  let c: Candidates | undefined = tables ? fromTables(tables, loadBias) : undefined;
  if (!c) {
    const all: Iterable<ElfSymbol> = tables ? tables.flatMap((t) => t.symbols()) : (source as Iterable<ElfSymbol>);
    c = fromSymbols(all, loadBias);
  }
  const { rel, size, rank: ranks, base } = c;
  const get = c.get;
  const order = rel.map((_, i) => i);
  order.sort((a, b) => rel[a] - rel[b] || ranks[b] - ranks[a] || a - b);
  // Keep the best symbol per address.
  const keep: number[] = [];
  for (const i of order) {
    if (keep.length && rel[keep[keep.length - 1]] === rel[i]) continue;
    keep.push(i);
  }
  const n = keep.length;
  const starts = new Float64Array(n);
  const ends = new Float64Array(n);
  const which = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const i = keep[k];
    starts[k] = rel[i];
    // Unsized symbols reach to the next symbol: end -1 marks them.
    ends[k] = size[i] > 0 ? rel[i] + size[i] : -1;
    which[k] = i;
  }
  const lookback = opts.lookback ?? 16;

  function find(x: number): number {
    let lo = 0;
    let hi = n - 1;
    if (n === 0 || x < starts[0]) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid] <= x) lo = mid;
      else hi = mid - 1;
    }
    const e = ends[lo];
    if (e < 0 || x < e) return lo;
    // Past the end of a sized symbol: an enclosing sized symbol may still contain it.
    for (let k = lo - 1, j = 0; k >= 0 && j < lookback; k--, j++) {
      if (ends[k] > x) return k;
    }
    return -1;
  }

  function hit(k: number, x: number): SymbolHit | undefined {
    if (k < 0) return undefined;
    return { symbol: get(which[k]), offset: BigInt(x - starts[k]) };
  }

  const baseNum = Number(base);
  return {
    size: n,
    lookup(addr: bigint): SymbolHit | undefined {
      const d = addr - base;
      if (d < 0n || d > 0x1fffffffffffffn) return undefined;
      const x = Number(d);
      return hit(find(x), x);
    },
    lookupNumber(addr: number): SymbolHit | undefined {
      const x = addr - baseNum;
      return hit(find(x), x);
    },
  };
}
