// Open a container checkpoint archive (or a CRIU image directory) like any ckimg image:
// container metadata, the process, its threads' innermost frames, and a memory search.
//   node examples/criu-archive.mjs corpus/criu/quiet-podman.tar.gz CKIMG-CRIU
import { openImage, backtrace, searchMemory } from "../dist/index.js";

const [path, needle = "password"] = process.argv.slice(2);
const img = await openImage(path);                 // .tar / .tar.gz / .tar.zst / CRIU dir / ckimg image
try {
  if (img.container) {
    const c = img.container;
    console.log(`container ${c.name} (${c.engine}, image ${c.image}, runtime ${c.runtime}), checkpoint ${c.checkpointSize} bytes`);
  }
  console.log(`pid ${img.process.pid} (${img.process.comm}) ${img.formatVersion}: ${img.threads.length} threads, argv ${JSON.stringify(img.argv)}`);
  for (const t of await backtrace(img)) console.log(`  thread ${t.tid}: ${t.frames.slice(0, 2).map((f) => f.text).join(" <- ")}`);
  const found = await searchMemory(img, { needle: new TextEncoder().encode(needle) });
  for (const m of found.matches) console.log(`"${needle}" at 0x${m.address.toString(16)} in ${m.areaPath}`);
} finally {
  await img.close();
}
