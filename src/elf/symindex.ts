/**
 * Address → symbol: the nearest preceding symbol, size-aware, built once over sorted typed
 * arrays and answered by binary search (no allocation but the result).
 */
import type { ElfSymbol } from "./symbol.js";
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

/**
 * Build the index over `symbols` (any mix of tables), adding `loadBias` to every value (0 for
 * file addresses; the mapping base of an ET_DYN object in a process).
 */
export function buildSymbolIndex(symbols: Iterable<ElfSymbol>, loadBias = 0n, opts: SymbolIndexOptions = {}): SymbolIndex {
  const cand: ElfSymbol[] = [];
  for (const s of symbols) if (addressable(s)) cand.push(s);
  let base = 0n;
  if (cand.length) {
    base = cand[0].value + loadBias;
    for (const s of cand) if (s.value + loadBias < base) base = s.value + loadBias;
  }
  // Addresses relative to the lowest one fit a double exactly (an object spans < 2^53 bytes).
  const rel = cand.map((s) => Number(s.value + loadBias - base));
  const ranks = cand.map(rank);
  const order = cand.map((_, i) => i);
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
  const syms: ElfSymbol[] = new Array(n);
  for (let k = 0; k < n; k++) {
    const i = keep[k];
    starts[k] = rel[i];
    // Unsized symbols reach to the next symbol: end -1 marks them.
    ends[k] = cand[i].size > 0n ? rel[i] + Number(cand[i].size) : -1;
    syms[k] = cand[i];
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
    return { symbol: syms[k], offset: BigInt(x - starts[k]) };
  }

  return {
    size: n,
    lookup(addr: bigint): SymbolHit | undefined {
      const d = addr - base;
      if (d < 0n || d > 0x1fffffffffffffn) return undefined;
      const x = Number(d);
      return hit(find(x), x);
    },
    lookupNumber(addr: number): SymbolHit | undefined {
      const x = addr - Number(base);
      return hit(find(x), x);
    },
  };
}
