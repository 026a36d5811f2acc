#!/usr/bin/env node
// Was a GOT slot hooked? Audit every GOT slot of every ELF in the image; print the suspicious
// ones with the slot, the value and where it points. Exit 1 when something is suspicious.
//
//   node examples/got-audit.mjs proc.img
import { openImage } from "ckimg";
import { auditGot } from "ckimg/analysis";

const path = process.argv[2];
if (!path) {
  console.error("usage: got-audit.mjs IMAGE");
  process.exit(2);
}
const img = await openImage(path);
try {
  const audit = await auditGot(img);
  const counts = {};
  for (const s of audit.slots) counts[s.status] = (counts[s.status] ?? 0) + 1;
  console.log(`${audit.modules.length} modules, ${audit.slots.length} slots`, counts);
  for (const s of audit.suspicious) {
    console.log(`SUSPICIOUS ${s.module}: ${s.symbol || "(IFUNC)"} slot 0x${s.slot.toString(16)} = 0x${s.value?.toString(16)} -> ${s.target?.text}`);
    console.log(`  ${s.reason}`);
  }
  process.exitCode = audit.suspicious.length ? 1 : 0;
} finally {
  await img.close();
}
