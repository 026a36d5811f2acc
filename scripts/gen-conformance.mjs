#!/usr/bin/env node
// Regenerates the conformance corpus (corpus/conformance/: images + manifest.json) from
// src/format/conformance.ts, byte for byte the same every run. Run after `npm run build`:
//   node scripts/gen-conformance.mjs [outdir] [--large]
// --large also writes the cases too big to commit (R7: a 64 MiB metadata record).
import { mkdirSync } from "node:fs";
import { writeConformanceCorpus } from "../dist/format/conformance.js";

const args = process.argv.slice(2);
const large = args.includes("--large");
const out = args.find((a) => !a.startsWith("--")) ?? new URL("../corpus/conformance/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });
const manifest = await writeConformanceCorpus(out, { large });
const n = (o) => manifest.cases.filter((c) => c.outcome === o).length;
console.log(`${manifest.cases.length} conformance images (${n("accept")} accept, ${n("refuse")} refuse) written to ${out}`);
