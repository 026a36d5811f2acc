#!/usr/bin/env node
// What was each thread doing? Symbolize every thread's rip, print its backtrace, and
// symbolize any extra addresses given on the command line.
//
//   node examples/symbolize.mjs proc.img [0x7f12…] …
import { openImage } from "ckimg";
import { backtrace, formatSymbolized, loadModules } from "ckimg/analysis";

const [path, ...addrs] = process.argv.slice(2);
if (!path) {
  console.error("usage: symbolize.mjs IMAGE [ADDRESS…]");
  process.exit(2);
}
const img = await openImage(path);
try {
  // One module map serves every lookup: modules, biases, symbols (from disk when the file is
  // unchanged, else from the image's memory).
  const map = await loadModules(img);
  console.log(`${img.process.comm} (pid ${img.process.pid}): ${map.modules.length} modules`);
  for (const m of map.modules) console.log(`  ${m.start.toString(16).padStart(16, "0")} ${m.kind.padEnd(11)} ${m.name}  [symbols: ${m.source}]`);

  for (const bt of await backtrace(map)) {
    console.log(`\nthread ${bt.tid}${bt.main ? " (main)" : ""}: rip in ${bt.frames[0].text}`);
    for (const f of bt.frames) console.log(`  #${f.index} 0x${f.pc.toString(16)} ${f.text} [${f.method}]`);
  }

  for (const a of addrs) {
    const s = map.symbolize(BigInt(a));
    console.log(`\n${a}: ${formatSymbolized(s)}${s.area ? ` in ${s.area.path || s.area.kind}` : ""}`);
  }
} finally {
  await img.close();
}
