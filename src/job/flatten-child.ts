/**
 * A child process of `ckimg run` that flattens one incremental checkpoint for pruning
 * (./run-dir.ts): `node flatten-child.js IMAGE OUTPUT [NICE]` lowers its priority to NICE,
 * writes the standalone image, verifies it
 * and prints `{"bytes":N}`; on failure, one line on stderr and exit 2. Run as its own process so
 * that ckimg run can lower its priority (the job it checkpoints gets the CPU first) without
 * lowering its own: an unprivileged process cannot take a raised nice value back.
 */
import { setPriority } from "node:os";
import { flattenImage } from "../format/flatten.js";
import { verifyImage } from "../format/verify.js";

async function main(argv: string[]): Promise<number> {
  const [input, output, nice] = argv;
  if (!input || !output) {
    process.stderr.write("usage: flatten-child IMAGE OUTPUT [NICE]\n");
    return 2;
  }
  if (nice !== undefined && /^[0-9]+$/.test(nice)) {
    try { setPriority(Math.min(19, Number(nice))); } catch { /* at the parent's priority */ }
  }
  try {
    const r = await flattenImage(input, output);
    const report = await verifyImage(output, { threads: 1 });
    if (!report.ok) throw new Error(`the flattened image did not verify: ${report.problems[0]?.detail ?? "damaged"}`);
    process.stdout.write(JSON.stringify({ bytes: r.bytes }) + "\n");
    return 0;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
