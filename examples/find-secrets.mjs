#!/usr/bin/env node
// A forensics script over a checkpoint image: who was the process, which environment
// variables look like credentials, and where in its writable memory a given string occurs.
//   node examples/find-secrets.mjs IMG [NEEDLE]
import { openImage, areaPerms } from "../dist/index.js";

const [path, needle = "PASSWORD"] = process.argv.slice(2);
if (!path) {
  console.error("usage: node examples/find-secrets.mjs IMG [NEEDLE]");
  process.exit(2);
}

const img = await openImage(path);
try {
  const p = img.process;
  console.log(`pid ${p.pid} (${p.comm}) uid ${p.uid[1]} exe ${p.exe} cwd ${p.cwd}`);
  console.log(`captured ${new Date(Number(p.captureNs / 1_000_000n)).toISOString()}, ${img.threads.length} thread(s)`);

  const suspicious = img.environ.filter((e) => /(PASS|SECRET|TOKEN|KEY)[^=]*=/i.test(e));
  console.log(`credential-like environment variables: ${suspicious.length ? suspicious.map((e) => e.split("=")[0]).join(", ") : "none"}`);

  // Search the stored pages of writable areas; page contents stream chunk by chunk.
  const pattern = Buffer.from(needle);
  let hits = 0;
  for (const area of img.areas) {
    if (!areaPerms(area).includes("w")) continue;
    for await (const page of img.pages(area)) {
      let at = Buffer.from(page.data.buffer, page.data.byteOffset, page.data.byteLength).indexOf(pattern);
      while (at >= 0 && hits < 20) {
        console.log(`  "${needle}" at 0x${(page.address + BigInt(at)).toString(16)} in ${area.path || area.kind}`);
        hits++;
        at = Buffer.from(page.data).indexOf(pattern, at + 1);
      }
    }
  }
  console.log(`${hits} occurrence(s) of "${needle}" in writable memory (matches across page boundaries are not counted)`);
} finally {
  await img.close();
}
