#!/usr/bin/env node
// What changed between two checkpoint images of one process, as a script sees it:
//   node examples/diff-images.mjs A.img B.img
// Uses the library API: openImage, loadModules + moduleSymbolizer (symbols for changed bytes
// and thread rips), diffImages (typed result). Exit 0 same, 1 different.
import { openImage } from "../dist/index.js";
import { diffImages, loadModules, moduleSymbolizer } from "../dist/analysis/index.js";

const [pathA, pathB] = process.argv.slice(2);
if (!pathA || !pathB) {
  console.error("usage: node examples/diff-images.mjs A.img B.img");
  process.exit(2);
}

const hex = (v) => "0x" + v.toString(16);
const symbolizer = async (img) => {
  try {
    return moduleSymbolizer(await loadModules(img));
  } catch {
    return undefined; // no symbols: the diff still runs, by address
  }
};

const a = await openImage(pathA);
const b = await openImage(pathB);
try {
  const d = await diffImages(a, b, { symbolizeA: await symbolizer(a), symbolizeB: await symbolizer(b) });
  if (d.same) {
    console.log("same");
  } else {
    const pages = d.memory.reduce((n, m) => n + m.pagesDiffering, 0);
    console.log(`different: ${d.process.length} process field(s), ${d.threads.changed.length} thread(s) changed, ${pages} page(s) of memory`);
  }
  const show = (v) => (typeof v === "bigint" ? hex(v) : String(v));
  for (const f of d.process) console.log(`  process ${f.field}: ${show(f.a)} -> ${show(f.b)}`);
  for (const t of d.threads.changed) {
    console.log(`  thread ${t.tidA}: rip ${hex(t.rip.a)} ${t.rip.symbolA ?? ""} -> ${hex(t.rip.b)} ${t.rip.symbolB ?? ""}; ${t.registers.length} register(s) differ`);
  }
  const m = d.areas;
  console.log(`memory map: ${m.added.length} added, ${m.removed.length} removed, ${m.changed.length} changed`);
  for (const c of m.changed) console.log(`  ${c.a.path || c.a.kind} ${hex(c.a.start)}-${hex(c.a.end)}: ${c.changes.join(", ")}`);
  for (const area of d.memory) {
    const names = area.symbols.map((s) => s.name).slice(0, 5).join(", ");
    console.log(`  ${area.label}: ${area.pagesDiffering} page(s), ${area.bytesDiffering} byte(s)${names ? ` in ${names}` : ""}`);
  }
  process.exitCode = d.same ? 0 : 1;
} finally {
  await a.close();
  await b.close();
}
