/**
 * Compare the library's view of one file with readelf/objdump. Each function returns
 * human-readable differences; [] means identical. Known binutils quirks are handled here, each
 * with its reason, so a test that filters them says why.
 */
import { readFileSync } from "node:fs";
import {
  ElfFile, dynamicTagName, flagsText, noteTypeName, pltStubs, relocationTypeName, buildIdOf,
  abiTagOf, gnuPropertiesOf, gnuPropertyText, STRING_TAGS, raw,
} from "../../src/elf/index.js";
import { objdumpPltLabels, readelfDynamic, readelfNotes, readelfRelocs, readelfSymbols, run } from "./oracle.js";

function hexs(v: bigint): string {
  return "0x" + v.toString(16);
}

/**
 * readelf prints control characters as ^X (and DEL as ^?) and other bytes raw; the oracle reads
 * its output as latin1, so compare UTF-8 names as their bytes.
 */
function readelfEscape(name: string): string {
  const s = Buffer.from(name, "utf8").toString("latin1");
  let out = "";
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (c < 0x20) out += "^" + String.fromCharCode(c + 64);
    else if (c === 0x7f) out += "^?";
    else out += ch;
  }
  return out;
}

export function compareSymbols(elf: ElfFile, file: string, limit = 20): string[] {
  const diffs: string[] = [];
  const theirs = readelfSymbols(run("readelf", ["-W", "--syms", "--dyn-syms", file]));
  const ours: { table: string; index: number; line: string }[] = [];
  const tables = elf.symbolTables();
  for (const t of tables) {
    const secName = t.kind === "dynsym" ? elf.sections.find((s) => s.type === raw.SHT_DYNSYM)?.name ?? ".dynsym" : elf.sections.find((s) => s.type === raw.SHT_SYMTAB)?.name ?? ".symtab";
    for (let i = 0; i < t.count; i++) {
      const s = t.symbol(i);
      let name = readelfEscape(s.name);
      // Quirk: readelf -s prints an unnamed STT_SECTION symbol with its section's name.
      if (s.type === "SECTION" && s.name === "" && s.shndx > 0 && s.shndx < elf.numSections) name = elf.sections[s.shndx].name;
      if (s.version !== undefined) {
        const idx = t.versions!.raw(i) & 0x7fff;
        name += s.versionFile !== undefined ? `@${s.version} (${idx})` : s.versionHidden ? `@${s.version}` : `@@${s.version}`;
      }
      const extended = t.rawShndx(i) === raw.SHN_XINDEX;
      const ndx = s.shndx > 0 && (s.shndx < 0xff00 || extended) ? String(s.shndx) : s.section;
      ours.push({ table: secName, index: i, line: `${hexs(s.value)} ${s.size} ${s.type} ${s.bind} ${s.visibility} ${ndx} ${name}` });
    }
  }
  const theirLines = theirs.map((r) => ({ table: r.table, index: r.index, line: `${hexs(r.value)} ${r.size} ${r.type} ${r.bind} ${r.vis} ${r.ndx} ${r.name}` }));
  if (theirLines.length !== ours.length) diffs.push(`symbol count: readelf ${theirLines.length}, ours ${ours.length}`);
  const n = Math.min(theirLines.length, ours.length);
  for (let i = 0; i < n && diffs.length < limit; i++) {
    const a = theirLines[i];
    const b = ours[i];
    if (a.table !== b.table || a.index !== b.index || a.line !== b.line) diffs.push(`${a.table}[${a.index}]: readelf '${a.line}' ours '${b.table}[${b.index}] ${b.line}'`);
  }
  return diffs;
}

export function compareDynamic(elf: ElfFile, file: string): string[] {
  const diffs: string[] = [];
  const theirs = readelfDynamic(run("readelf", ["-W", "-d", file]));
  const d = elf.dynamic;
  const ours = d?.entries ?? [];
  if (theirs.length !== ours.length) {
    diffs.push(`dynamic count: readelf ${theirs.length}, ours ${ours.length}`);
    return diffs;
  }
  const st = d?.strtab;
  for (let i = 0; i < ours.length; i++) {
    const e = ours[i];
    const r = theirs[i];
    if (BigInt.asUintN(64, BigInt(e.tag)) !== r.tag) diffs.push(`[${i}] tag readelf ${r.tag} ours ${e.tag}`);
    if (dynamicTagName(e.tag, elf.machine) !== r.name) diffs.push(`[${i}] tag name readelf '${r.name}' ours '${dynamicTagName(e.tag, elf.machine)}'`);
    // Values: strings in brackets, sizes "N (bytes)", counts decimal, flags as words, else hex.
    const text = r.text;
    let m: RegExpExecArray | null;
    if (STRING_TAGS.has(e.tag) && (m = /\[(.*)\]$/.exec(text))) {
      const s = st ? st.getOr(Number(e.value)) : "";
      if (readelfEscape(s) !== m[1]) diffs.push(`[${i}] ${r.name} string readelf '${m[1]}' ours '${s}'`);
    } else if (e.tag === raw.DT_FLAGS || e.tag === raw.DT_FLAGS_1) {
      const t = text.replace(/^Flags: /, "").trim();
      if (t !== flagsText(e.tag, e.value)) diffs.push(`[${i}] ${r.name} readelf '${t}' ours '${flagsText(e.tag, e.value)}'`);
    } else if (e.tag === raw.DT_PLTREL) {
      const want = e.value === 7n ? "RELA" : e.value === 17n ? "REL" : "";
      if (want && text !== want) diffs.push(`[${i}] PLTREL readelf '${text}' ours '${want}'`);
    } else if ((m = /^0x([0-9a-f]+)$/.exec(text))) {
      if (BigInt("0x" + m[1]) !== e.value) diffs.push(`[${i}] ${r.name} readelf ${text} ours ${hexs(e.value)}`);
    } else if ((m = /^(\d+)(?: \(bytes\))?$/.exec(text))) {
      if (BigInt(m[1]) !== e.value) diffs.push(`[${i}] ${r.name} readelf ${text} ours ${e.value}`);
    }
  }
  return diffs;
}

export function compareRelocs(elf: ElfFile, file: string, limit = 20): string[] {
  const diffs: string[] = [];
  const theirs = readelfRelocs(run("readelf", ["-W", "-r", file]));
  const ours: { section: string; offset: bigint; info: bigint; type: string; symbol: string; addend?: bigint }[] = [];
  const relrCounts = new Map<string, number>();
  for (const r of elf.relocationSections()) {
    if (r.relr) {
      relrCounts.set(r.name, r.relr.length);
      continue;
    }
    const t = r.table!;
    for (let i = 0; i < t.count; i++) {
      const rel = t.get(i);
      let symbol = "";
      if (rel.symbolIndex !== 0 && r.symbols && rel.symbolIndex < r.symbols.count) {
        const s = r.symbols.symbol(rel.symbolIndex);
        // readelf names section symbols by their section, and adds "@VER" (one @) for versioned dynsyms.
        symbol = s.type === "SECTION" ? elf.sectionName(s.shndx) ?? s.name : readelfEscape(s.name);
        if (s.version !== undefined && !(s.versionFile === undefined && !s.versionHidden)) symbol += `@${s.version}`;
        else if (s.version !== undefined) symbol += `@@${s.version}`;
      }
      ours.push({
        section: r.name, offset: rel.offset, info: rel.info,
        type: relocationTypeName(elf.machine, rel.type) ?? `unrecognized: ${rel.type.toString(16)}`,
        symbol, addend: rel.hasAddend ? rel.addend : undefined,
      });
    }
  }
  if (theirs.relocs.length !== ours.length) diffs.push(`relocation count: readelf ${theirs.relocs.length}, ours ${ours.length}`);
  const n = Math.min(theirs.relocs.length, ours.length);
  for (let i = 0; i < n && diffs.length < limit; i++) {
    const a = theirs.relocs[i];
    const b = ours[i];
    const fmt = (x: typeof b) => `${x.section} ${hexs(x.offset)} ${hexs(x.info)} ${x.type} '${x.symbol}' ${x.addend ?? ""}`;
    // readelf omits a zero addend for symbol-less RELA entries only when the symbol value column is absent; compare what both print.
    const aa = { ...a, addend: a.addend };
    if (fmt(aa) !== fmt(b)) diffs.push(`reloc ${i}: readelf ${fmt(aa)} ours ${fmt(b)}`);
  }
  for (const [name, count] of theirs.relr) {
    if (relrCounts.get(name) !== count) diffs.push(`RELR ${name}: readelf ${count} offsets, ours ${relrCounts.get(name)}`);
  }
  return diffs;
}

export function compareNotes(elf: ElfFile, file: string): string[] {
  const diffs: string[] = [];
  const theirs = readelfNotes(run("readelf", ["-W", "-n", file]));
  const ours: { section: string; owner: string; size: number; type: string; description?: string }[] = [];
  for (const g of elf.notes()) {
    for (const n of g.notes) {
      let description: string | undefined;
      if (n.owner === "GNU" && n.type === raw.NT_GNU_BUILD_ID) description = `Build ID: ${buildIdOf(n)}`;
      else if (n.owner === "GNU" && n.type === raw.NT_GNU_ABI_TAG) {
        const a = abiTagOf(n, elf.littleEndian);
        if (a) description = `OS: ${a.os}, ABI: ${a.abi.join(".")}`;
      } else if (n.owner === "GNU" && n.type === raw.NT_GNU_PROPERTY_TYPE_0) {
        description = "Properties: " + gnuPropertiesOf(n, elf.is64, elf.littleEndian, elf.machine).map(gnuPropertyText).join(", ");
      }
      ours.push({ section: g.name, owner: n.owner, size: n.desc.length, type: noteTypeName(n, elf.header.type), description });
    }
  }
  if (theirs.length !== ours.length) diffs.push(`note count: readelf ${theirs.length}, ours ${ours.length}`);
  for (let i = 0; i < Math.min(theirs.length, ours.length); i++) {
    const a = theirs[i];
    const b = ours[i];
    // Quirk: readelf decodes GNU build-attribute (annobin, owner "GA…") names into a display
    // form ("GA$<tool>gcc…", "GA*GOW:0x2052a"); we keep the raw name, so only the prefix compares.
    const owner = b.owner.startsWith("GA") && a.owner.startsWith("GA") ? b.owner : a.owner;
    if (a.section !== b.section || owner !== b.owner || a.size !== b.size || a.type !== b.type) {
      diffs.push(`note ${i}: readelf ${a.section} ${a.owner} ${a.size} '${a.type}' ours ${b.section} ${b.owner} ${b.size} '${b.type}'`);
    } else if (b.description !== undefined && a.description !== b.description) {
      diffs.push(`note ${i} description: readelf '${a.description}' ours '${b.description}'`);
    }
  }
  return diffs;
}

/**
 * PLT labels against objdump -d. Quirk (binutils 2.40 _bfd_x86_elf_get_synthetic_symtab):
 * objdump makes no synthetic `@plt` symbols when the file has no dynamic symbols besides the
 * null one (static and static-pie executables), though the slots are IRELATIVE and we name them
 * `*ABS*+0x…`; for those files we check that objdump printed none.
 */
export function comparePlt(elf: ElfFile, file: string): string[] {
  const diffs: string[] = [];
  const secs = elf.sections.filter((s) => [".plt", ".plt.sec", ".plt.got", ".plt.bnd"].includes(s.name) && s.type !== raw.SHT_NOBITS).map((s) => s.name);
  if (elf.machine !== raw.EM_X86_64 && elf.machine !== raw.EM_386) return diffs;
  const theirs = objdumpPltLabels(file, secs);
  const named = pltStubs(elf).filter((s) => s.name !== undefined);
  const dynCount = elf.dynsym?.count ?? 0;
  if (dynCount <= 1) {
    if (theirs.size !== 0) diffs.push(`objdump labelled ${theirs.size} stubs in a file without dynamic symbols`);
    return diffs;
  }
  const ours = new Map(named.map((s) => [s.address, s.name!]));
  for (const [a, n] of theirs) if (ours.get(a) !== n) diffs.push(`plt ${hexs(a)}: objdump '${n}' ours '${ours.get(a)}'`);
  for (const [a, n] of ours) if (!theirs.has(a)) diffs.push(`plt ${hexs(a)}: objdump none, ours '${n}'`);
  return diffs;
}

export function loadElf(file: string): Uint8Array {
  return readFileSync(file);
}
