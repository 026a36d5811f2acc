#!/usr/bin/env node
// Printable strings of a captured process, with where they live, and a hexdump around one:
//   node examples/strings-in-area.mjs IMG [AREA] [NEEDLE]
// AREA selects areas as `ckimg strings --area` does: an address (0x…), a kind (heap, stack,
// anon…) or a path / file name. Uses readStrings, readRegion and hexdump from the library.
import { openImage } from "../dist/index.js";
import { hexdump, readRegion, readStrings } from "../dist/analysis/index.js";

const [path, area, needle] = process.argv.slice(2);
if (!path) {
  console.error("usage: node examples/strings-in-area.mjs IMG [AREA] [NEEDLE]");
  process.exit(2);
}

const img = await openImage(path);
try {
  const perArea = new Map();
  let hit;
  for await (const s of readStrings(img, { areas: area ? [area] : undefined, minLength: 6, encodings: ["ascii", "utf16le"] })) {
    perArea.set(s.areaId, (perArea.get(s.areaId) ?? 0) + 1);
    if (!hit && (!needle || s.text.includes(needle))) hit = s;
  }
  for (const [id, n] of perArea) {
    const a = img.area(id);
    console.log(`${String(n).padStart(6)} strings in ${a.path || `[${a.kind}]`} 0x${a.start.toString(16)}-0x${a.end.toString(16)}`);
  }
  if (hit) {
    console.log(`first${needle ? ` with "${needle}"` : ""}: 0x${hit.address.toString(16)} (${hit.encoding}) ${JSON.stringify(hit.text.slice(0, 60))}`);
    const start = hit.address - (hit.address % 16n);
    process.stdout.write(hexdump(await readRegion(img, start, 48)));
  } else {
    console.log(`no string${needle ? ` contains "${needle}"` : " found"}`);
  }
} finally {
  await img.close();
}
