/**
 * Address → mapping, ELF, symbol + offset, for forensics scripts that hold an image and a few
 * addresses. For many lookups, build the ModuleMap once (`loadModules`) and call its
 * `symbolize`; this module adds the one-call form and a plain-data report of a result.
 */
import type { CheckpointImage } from "../format/index.js";
import { areaPerms } from "../format/index.js";
import { formatSymbolized, loadModules, type LoadModulesOptions, type ModuleMap, type Symbolized } from "./modules.js";

/** Symbolize addresses of an image (loads the module map once for all of them). */
export async function symbolize(source: CheckpointImage | ModuleMap, addresses: readonly bigint[], opts: LoadModulesOptions = {}): Promise<Symbolized[]> {
  const map = "modules" in source ? source : await loadModules(source, opts);
  return addresses.map((a) => map.symbolize(a));
}

/** A Symbolized as plain data (bigints stay bigints; the CLI's toJson turns them into "0x…"). */
export interface SymbolizedReport {
  address: bigint;
  /** "pause+0x13 (libc.so.6)" */
  text: string;
  mapping: { start: bigint; end: bigint; perms: string; kind: string; path: string; fileOffset: bigint | null } | null;
  module: { name: string; path: string; kind: string; base: bigint; bias: bigint; source: string; elfAddress: bigint | null } | null;
  symbol: { name: string; version: string | null; address: bigint; offset: bigint; size: bigint; type: string; table: string } | null;
}

export function symbolizedReport(s: Symbolized): SymbolizedReport {
  return {
    address: s.address,
    text: formatSymbolized(s),
    mapping: s.area
      ? { start: s.area.start, end: s.area.end, perms: areaPerms(s.area), kind: s.area.kind, path: s.area.path, fileOffset: s.fileOffset ?? null }
      : null,
    module: s.module
      ? { name: s.module.name, path: s.module.path, kind: s.module.kind, base: s.module.start, bias: s.module.bias, source: s.module.source, elfAddress: s.elfAddress ?? null }
      : null,
    symbol: s.symbol
      ? { name: s.symbol.name, version: s.symbol.version ?? null, address: s.symbol.address, offset: s.symbol.offset, size: s.symbol.size, type: s.symbol.type, table: s.symbol.table }
      : null,
  };
}

export { formatSymbolized };
