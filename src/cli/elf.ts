/**
 * `ckimg elf`: read an ELF file and print its summary, symbols, PLT stubs, dynamic entries,
 * relocations or notes. Output comes from pure functions (exported for tests); `run` only reads
 * the file and writes. `syms --json` builds its bytes directly (no object graph, no
 * JSON.stringify) because it runs over 100k+ symbols.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { isAscii } from "node:buffer";
import {
  ElfError, ElfFile, SymbolTable, buildIdOf, abiTagOf, dynamicTagName, flagsText, gnuPropertiesOf,
  gnuPropertyText, noteTypeName, parseElf, pltStubs, relocationTypeName, STRING_TAGS, raw,
} from "../elf/index.js";
import { EXIT_OK, UsageError, hex, parseVerbArgs, toJson, type CliContext, type Verb } from "./common.js";

const USAGE = "[syms|plt|dynamic|relocs|notes] FILE [--json]";
const SUBVERBS = new Set(["syms", "plt", "dynamic", "relocs", "notes"]);

// ---- Reading -------------------------------------------------------------------------------

/**
 * Read only what a symbol listing needs (headers, symbol/string/version sections) into a
 * buffer the size of the file: the rest stays untouched zero pages, so a 100 MB binary costs
 * a few MB of reads. Falls back to a full read when there are no section headers.
 */
export function readForSymbols(path: string): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const buf = new Uint8Array(size);
    const fill = (off: number, len: number): void => {
      const end = Math.min(size, off + len);
      let p = off;
      while (p < end) {
        const n = readSync(fd, buf, p, end - p, p);
        if (n <= 0) break;
        p += n;
      }
    };
    fill(0, 64);
    const is64 = buf[4] === 2;
    const le = buf[5] !== 2;
    if (buf[0] !== 0x7f || size < 64) return readFileSync(path);
    const dv = new DataView(buf.buffer);
    const w = (o: number) => (is64 ? Number(dv.getBigUint64(o, le)) : dv.getUint32(o, le));
    const phoff = w(is64 ? 32 : 28);
    const shoff = w(is64 ? 40 : 32);
    const phentsize = dv.getUint16(is64 ? 54 : 42, le);
    const phnum = dv.getUint16(is64 ? 56 : 44, le);
    const shentsize = dv.getUint16(is64 ? 58 : 46, le);
    let shnum = dv.getUint16(is64 ? 60 : 48, le);
    if (phoff > 0) fill(phoff, phentsize * phnum);
    if (shoff === 0 || shoff >= size) return readFileSync(path);
    if (shnum === 0) {
      fill(shoff, shentsize);
      shnum = w(shoff + (is64 ? 32 : 20));
    }
    if (shnum * shentsize > size) return readFileSync(path);
    fill(shoff, shnum * shentsize);
    const want = new Set([raw.SHT_SYMTAB, raw.SHT_DYNSYM, raw.SHT_STRTAB, raw.SHT_GNU_VERSYM, raw.SHT_GNU_VERDEF, raw.SHT_GNU_VERNEED, raw.SHT_SYMTAB_SHNDX, raw.SHT_GNU_HASH, raw.SHT_HASH, raw.SHT_DYNAMIC]);
    for (let i = 0; i < shnum; i++) {
      const h = shoff + i * shentsize;
      if (h + shentsize > size) break;
      const type = dv.getUint32(h + 4, le);
      if (!want.has(type)) continue;
      const off = w(h + (is64 ? 24 : 16));
      const len = w(h + (is64 ? 32 : 20));
      if (off < size) fill(off, Math.min(len, size - off));
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

function readWhole(path: string): Uint8Array {
  return readFileSync(path);
}

// ---- Symbols as JSON, built as bytes --------------------------------------------------------

class ByteSink {
  buf: Uint8Array;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(Math.max(1024, size));
  }
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  ascii(s: string): void {
    this.reserve(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.pos++] = s.charCodeAt(i);
  }
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

const enc = new TextEncoder();
const HEX = enc.encode("0123456789abcdef");

/** JSON string literal bytes (with quotes) for any JS string. */
function jsonBytes(s: string): Uint8Array {
  return enc.encode(JSON.stringify(s));
}

/**
 * All symbols of all tables as the `syms --json` array, one object per line:
 * {table, name, version?, value:"0x…", size, type, bind, visibility, section}.
 */
export function symbolsJson(elf: ElfFile): Uint8Array {
  const tables = elf.symbolTables();
  let est = 16;
  for (const t of tables) est += t.count * 160 + t.strtab.size;
  const out = new ByteSink(est);
  out.ascii("[");
  let first = true;
  for (const t of tables) first = writeTable(out, t, first);
  out.ascii(first ? "]\n" : "\n]\n");
  return out.finish();
}

/** Copy small constant byte strings without TypedArray#set's per-call overhead. */
function put(b: Uint8Array, p: number, src: Uint8Array): number {
  for (let k = 0; k < src.length; k++) b[p + k] = src[k];
  return p + src.length;
}

/**
 * One table's symbols. A hot loop over the raw entries: name bytes are copied straight from
 * the string table, and every other field's JSON text is cached per distinct value (st_info ×
 * visibility, section index, versym), so a symbol costs a few dozen byte stores.
 */
function writeTable(out: ByteSink, t: SymbolTable, first: boolean): boolean {
  const v = t.view;
  const dv = v.dv;
  const bytes = v.bytes;
  const le = v.le;
  const is64 = v.is64;
  const F = t.fieldOffsets;
  const str = t.strtab.bytes;
  const strLen = str.length;
  const headFirst = enc.encode(`\n{"table":"${t.kind}","name":"`);
  const headNext = enc.encode(`,\n{"table":"${t.kind}","name":"`);
  const tailCache = new Map<number, Uint8Array>();
  const verCache = new Map<number, Uint8Array>();
  const NONE: Uint8Array = new Uint8Array(0);
  const VALUE = enc.encode(`","value":"0x`);
  const VALUE_NOVER = VALUE;
  const SIZE = enc.encode(`","size":`);
  const versions = t.versions;
  const versymView = versions?.versym;
  const versymOff = versions?.versymOffset ?? 0;
  const versymCount = versions?.versymCount ?? 0;
  const valueLo = F.value + (is64 && !le ? 4 : 0);
  const valueHi = F.value + (le ? 4 : 0);
  const sizeLo = F.size_ + (is64 && !le ? 4 : 0);
  const sizeHi = F.size_ + (le ? 4 : 0);
  const count = t.count;
  const entsize = t.entsize;
  let e = t.offset - entsize;
  for (let i = 0; i < count; i++) {
    e += entsize;
    if (out.pos + 1024 > out.buf.length) out.reserve(1024);
    let b = out.buf;
    const hd = first ? headFirst : headNext;
    b.set(hd, out.pos);
    let p = out.pos + hd.length;
    first = false;
    // Name: copy bytes from the string table, escaping what JSON requires.
    const nameOff = dv.getUint32(e + F.name, le);
    let slow = nameOff >= strLen && nameOff !== 0;
    if (!slow) {
      const start = p;
      const room = b.length - 512;
      for (let q = nameOff; q < strLen; q++) {
        const c = str[q];
        if (c === 0) break;
        if (c < 0x20 || c === 34 || c === 92 || c >= 0x80 || p >= room) {
          slow = true;
          break;
        }
        b[p++] = c;
      }
      if (slow) p = start;
    }
    if (slow) {
      const j = jsonBytes(t.name(i));
      out.pos = p;
      out.bytes(j.subarray(1, j.length - 1));
      out.reserve(1024);
      b = out.buf;
      p = out.pos;
    }
    // Version: by versym value and defined-ness; the symbol naming its own version has none.
    let shndx = dv.getUint16(e + F.shndx, le);
    const extended = shndx === 0xffff;
    if (extended) shndx = t.shndx(i);
    let vb: Uint8Array = NONE;
    if (versymView !== undefined && i < versymCount) {
      const rawVer = versymView.dv.getUint16(versymOff + 2 * i, le);
      if (rawVer > 1) {
        const key = rawVer * 2 + (shndx !== 0 ? 1 : 0);
        let c = verCache.get(key);
        if (c === undefined) {
          const ver = versions!.resolve(i, shndx, -1);
          c = ver ? enc.encode(`","version":${JSON.stringify(ver.name).slice(0, -1)}`) : NONE;
          verCache.set(key, c);
        }
        vb = c;
        if (c !== NONE && shndx !== 0) {
          const def = versions!.definition(rawVer & 0x7fff);
          if (def && def.nameOffset === nameOff && rawVer !== 0x8001) vb = NONE;
        }
      }
    }
    if (vb.length) {
      b.set(vb, p);
      p += vb.length;
    }
    p = put(b, p, vb.length ? VALUE : VALUE_NOVER);
    // Value as hex without leading zeros.
    const lo = dv.getUint32(e + valueLo, le);
    const hi = is64 ? dv.getUint32(e + valueHi, le) : 0;
    p = writeHex64(b, p, hi, lo);
    p = put(b, p, SIZE);
    const slo = dv.getUint32(e + sizeLo, le);
    const shi = is64 ? dv.getUint32(e + sizeHi, le) : 0;
    if (shi === 0) p = writeDec(b, p, slo);
    else {
      const s = (BigInt(shi) * 4294967296n + BigInt(slo)).toString();
      for (let k = 0; k < s.length; k++) b[p++] = s.charCodeAt(k);
    }
    // type/bind/visibility: cached per (st_info, visibility).
    // type/bind/visibility/section: one cached tail per (st_info, visibility, section index).
    const key = (bytes[e + F.info] * 4 + (bytes[e + F.other] & 3)) * 65536 + (shndx & 0xffff);
    let tail = extended ? undefined : tailCache.get(key);
    if (tail === undefined) {
      const sym = t.symbol(i);
      tail = enc.encode(`,"type":${JSON.stringify(sym.type)},"bind":${JSON.stringify(sym.bind)},"visibility":${JSON.stringify(sym.visibility)},"section":${JSON.stringify(t.sectionText(shndx, extended))}}`);
      if (!extended) tailCache.set(key, tail);
    }
    // TypedArray#set (a memcpy) beats a JS byte loop for pieces this long.
    b.set(tail, p);
    out.pos = p + tail.length;
  }
  return first;
}

function writeHex64(b: Uint8Array, p: number, hi: number, lo: number): number {
  // Digits needed, then written from the right: no per-nibble branching.
  let n = hi !== 0 ? 8 + ((39 - Math.clz32(hi)) >> 2) : Math.max(1, (35 - Math.clz32(lo)) >> 2);
  const end = p + n;
  let q = end;
  let x = lo;
  const lowDigits = n > 8 ? 8 : n;
  for (let k = 0; k < lowDigits; k++) {
    b[--q] = HEX[x & 15];
    x >>>= 4;
  }
  x = hi;
  for (n -= lowDigits; n > 0; n--) {
    b[--q] = HEX[x & 15];
    x >>>= 4;
  }
  return end;
}

function writeDec(b: Uint8Array, p: number, n: number): number {
  if (n < 10) {
    b[p++] = 48 + n;
    return p;
  }
  let digits = 0;
  for (let x = n; x > 0; x = Math.floor(x / 10)) digits++;
  let q = p + digits;
  for (let x = n; x > 0; x = Math.floor(x / 10)) b[--q] = 48 + (x % 10);
  return p + digits;
}

// ---- Other views -------------------------------------------------------------------------

export interface SymbolRow {
  table: "symtab" | "dynsym";
  name: string;
  version?: string;
  value: string;
  size: number;
  type: string;
  bind: string;
  visibility: string;
  section: string;
}

/** The same rows as objects (for tests and small files). */
export function symbolRows(elf: ElfFile): SymbolRow[] {
  const rows: SymbolRow[] = [];
  for (const t of elf.symbolTables()) {
    for (let i = 0; i < t.count; i++) {
      const s = t.symbol(i);
      const r: SymbolRow = { table: s.table, name: s.name, value: hex(s.value), size: Number(s.size), type: s.type, bind: s.bind, visibility: s.visibility, section: s.section };
      if (s.version !== undefined) {
        const { table, name } = r;
        rows.push({ table, name, version: s.version, value: r.value, size: r.size, type: r.type, bind: r.bind, visibility: r.visibility, section: r.section });
        continue;
      }
      rows.push(r);
    }
  }
  return rows;
}

export function symbolsText(elf: ElfFile): string {
  const lines: string[] = [];
  for (const t of elf.symbolTables()) {
    lines.push(`${t.kind} (${t.count} symbols):`);
    for (let i = 0; i < t.count; i++) {
      const s = t.symbol(i);
      const ver = s.version === undefined ? "" : s.versionFile !== undefined ? `@${s.version}` : s.versionHidden ? `@${s.version}` : `@@${s.version}`;
      lines.push(`${s.value.toString(16).padStart(elf.is64 ? 16 : 8, "0")} ${String(s.size).padStart(6)} ${s.type.padEnd(7)} ${s.bind.padEnd(6)} ${s.visibility.padEnd(9)} ${s.section.padEnd(10)} ${s.name}${ver}`);
    }
  }
  return lines.join("\n") + "\n";
}

export interface PltRow {
  address: string;
  name: string;
  got: string;
}

/** PLT stubs objdump would label, as `{address, name, got}` (name without "@plt"). */
export function pltRows(elf: ElfFile): PltRow[] {
  return pltStubs(elf)
    .filter((s) => s.name !== undefined)
    .map((s) => ({ address: hex(s.address), name: s.name!, got: hex(s.got) }));
}

export interface DynamicRow {
  tag: string;
  value: string;
  /** Strings for string tags, flag names for DT_FLAGS/DT_FLAGS_1. */
  text?: string;
}

export function dynamicRows(elf: ElfFile): DynamicRow[] {
  const d = elf.dynamic;
  if (!d) return [];
  const st = d.strtab;
  return d.entries.map((e) => {
    const row: DynamicRow = { tag: dynamicTagName(e.tag, elf.machine), value: hex(e.value) };
    if (STRING_TAGS.has(e.tag) && st) row.text = st.getOr(e.value > 0xffffffffn ? -1 : Number(e.value));
    else if (e.tag === raw.DT_FLAGS || e.tag === raw.DT_FLAGS_1) row.text = flagsText(e.tag, e.value);
    return row;
  });
}

export interface RelocRow {
  section: string;
  offset: string;
  type: string;
  symbol?: string;
  version?: string;
  addend?: string;
}

function signedHex(v: bigint): string {
  return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
}

export function relocRows(elf: ElfFile): RelocRow[] {
  const rows: RelocRow[] = [];
  for (const r of elf.relocationSections()) {
    if (r.relr) {
      for (const a of r.relr) rows.push({ section: r.name, offset: hex(a), type: "RELR" });
      continue;
    }
    const t = r.table!;
    for (let i = 0; i < t.count; i++) {
      const rel = t.get(i);
      const row: RelocRow = { section: r.name, offset: hex(rel.offset), type: relocationTypeName(elf.machine, rel.type) ?? `R_${rel.type}` };
      if (rel.symbolIndex !== 0 && r.symbols && rel.symbolIndex < r.symbols.count) {
        const s = r.symbols.symbol(rel.symbolIndex);
        row.symbol = s.type === "SECTION" && s.name === "" ? elf.sectionName(s.shndx) ?? "" : s.name;
        if (s.version !== undefined) row.version = s.version;
      }
      if (rel.hasAddend) row.addend = signedHex(rel.addend);
      rows.push(row);
    }
  }
  return rows;
}

export interface NoteRow {
  section: string;
  owner: string;
  size: number;
  type: string;
  description?: string;
}

export function noteRows(elf: ElfFile): NoteRow[] {
  const rows: NoteRow[] = [];
  for (const g of elf.notes()) {
    for (const n of g.notes) {
      const row: NoteRow = { section: g.name, owner: n.owner, size: n.desc.length, type: noteTypeName(n, elf.header.type) };
      if (n.owner === "GNU" && n.type === raw.NT_GNU_BUILD_ID) row.description = `Build ID: ${buildIdOf(n)}`;
      else if (n.owner === "GNU" && n.type === raw.NT_GNU_ABI_TAG) {
        const a = abiTagOf(n, elf.littleEndian);
        if (a) row.description = `OS: ${a.os}, ABI: ${a.abi.join(".")}`;
      } else if (n.owner === "GNU" && n.type === raw.NT_GNU_PROPERTY_TYPE_0) {
        row.description = "Properties: " + gnuPropertiesOf(n, elf.is64, elf.littleEndian, elf.machine).map(gnuPropertyText).join(", ");
      }
      rows.push(row);
    }
  }
  return rows;
}

export function summaryText(elf: ElfFile, path: string): string {
  const h = elf.header;
  const lines = [
    `${path}: ELF${h.class} ${h.littleEndian ? "little" : "big"}-endian ${elf.typeName}, ${elf.machineName}`,
    `  entry:      ${hex(h.entry)}`,
    `  sections:   ${elf.numSections}   segments: ${elf.segments.length}`,
  ];
  const interp = elf.interp;
  if (interp) lines.push(`  interp:     ${interp}`);
  if (elf.soname) lines.push(`  soname:     ${elf.soname}`);
  if (elf.needed.length) lines.push(`  needed:     ${elf.needed.join(", ")}`);
  if (elf.dynamic) lines.push(`  bind now:   ${elf.bindNow ? "yes" : "no"}`);
  const id = elf.buildId;
  if (id) lines.push(`  build-id:   ${id}`);
  const dl = elf.debugLink;
  if (dl) lines.push(`  debuglink:  ${dl.file} (crc 0x${dl.crc.toString(16).padStart(8, "0")})`);
  const cet = elf.cet;
  if (cet.ibt || cet.shstk) lines.push(`  cet:        ${[cet.ibt ? "IBT" : "", cet.shstk ? "SHSTK" : ""].filter(Boolean).join(", ")}`);
  for (const t of elf.symbolTables()) lines.push(`  ${t.kind.padEnd(10)}  ${t.count} symbols`);
  const plt = pltRows(elf).length;
  if (plt) lines.push(`  plt stubs:  ${plt}`);
  return lines.join("\n") + "\n";
}

function table(rows: object[], cols: string[]): string {
  return rows.map((r) => cols.map((c) => String((r as Record<string, unknown>)[c] ?? "")).join("\t")).join("\n") + (rows.length ? "\n" : "");
}

/** The whole command as a pure function of (sub-verb, parsed file, json flag). */
export function renderElf(sub: string | undefined, elf: ElfFile, path: string, json: boolean): string | Uint8Array {
  switch (sub) {
    case undefined:
      if (!json) return summaryText(elf, path);
      return toJson({
        file: path, class: elf.header.class, endian: elf.littleEndian ? "little" : "big", type: elf.typeName,
        machine: elf.machineName, entry: elf.header.entry, interp: elf.interp, soname: elf.soname,
        needed: elf.needed, bindNow: elf.bindNow, buildId: elf.buildId, debugLink: elf.debugLink, cet: elf.cet,
        sections: elf.numSections, segments: elf.segments.length,
      });
    case "syms":
      return json ? symbolsJson(elf) : symbolsText(elf);
    case "plt": {
      const rows = pltRows(elf);
      return json ? toJson(rows) : rows.map((r) => `${r.address} ${r.name}@plt\t${r.got}`).join("\n") + (rows.length ? "\n" : "");
    }
    case "dynamic": {
      const rows = dynamicRows(elf);
      return json ? toJson(rows) : table(rows, ["tag", "value", "text"]);
    }
    case "relocs": {
      const rows = relocRows(elf);
      return json ? toJson(rows) : table(rows, ["section", "offset", "type", "symbol", "version", "addend"]);
    }
    case "notes": {
      const rows = noteRows(elf);
      return json ? toJson(rows) : table(rows, ["section", "owner", "size", "type", "description"]);
    }
  }
  throw new UsageError(`unknown elf sub-verb '${sub}'`);
}

export const ELF_VERB: Verb = {
  summary: "read an ELF file: summary, symbols, PLT, dynamic, relocations, notes",
  usage: USAGE,
  async run(args: string[], ctx: CliContext): Promise<number> {
    const { values, positionals } = parseVerbArgs(args, { json: { type: "boolean" } });
    let sub: string | undefined;
    let path: string | undefined;
    if (positionals.length === 2 && SUBVERBS.has(positionals[0])) [sub, path] = positionals;
    else if (positionals.length === 1) path = positionals[0];
    else throw new UsageError("expected [syms|plt|dynamic|relocs|notes] FILE");
    const data = sub === "syms" ? readForSymbols(path!) : readWhole(path!);
    let out: string | Uint8Array;
    try {
      out = renderElf(sub, parseElf(data, { file: path }), path!, values.json === true);
    } catch (e) {
      if (e instanceof ElfError && e.file === undefined) e.file = path;
      throw e;
    }
    if (typeof out === "string") ctx.stdout(out);
    else writeBytes(ctx, out);
    return EXIT_OK;
  },
};

/** Bytes go straight to fd 1 when writing to the real stdout; tests' contexts get a string. */
function writeBytes(ctx: CliContext, b: Uint8Array): void {
  if (ctx.stdoutBytes) ctx.stdoutBytes(b);
  else {
    // ASCII output (the usual case) becomes a one-byte string by memcpy; UTF-8 needs decoding.
    const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    ctx.stdout(isAscii(buf) ? buf.toString("latin1") : buf.toString("utf8"));
  }
}
