#!/usr/bin/env node
/**
 * ELF reader benchmarks (run after `npm run build`; imports from dist/).
 *
 * 1. Whole process: `ckimg elf syms FILE --json > /dev/null` against `readelf -Ws`,
 *    `eu-readelf -Ws` and `llvm-readelf -Ws` (those installed), median of ROUNDS alternating
 *    rounds, with ratios. FILE defaults to /usr/bin/node (override: CKIMG_BENCH_ELF or argv[2]).
 * 2. In process: read + parse + build the syms JSON (no node startup).
 * 3. Address → symbol lookups per second over all symbols of FILE, after the index is built.
 *
 * Standalone: `node bench/elf.mjs [FILE]`; or `import { run } from "./bench/elf.mjs"`.
 */
import { spawnSync } from "node:child_process";
import { openSync, closeSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const ROUNDS = Number(process.env.CKIMG_BENCH_ROUNDS ?? 7);

function which(cmd) {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function timeOnce(argv, devnull) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ["ignore", devnull, "ignore"] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(" ")} exited ${r.status}`);
  return ms;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function run(file = process.env.CKIMG_BENCH_ELF ?? "/usr/bin/node", log = console.log) {
  if (!existsSync(file)) {
    log(`elf bench: ${file} not found, skipped`);
    return {};
  }
  const contenders = [["ckimg", [process.execPath, join(root, "bin/ckimg"), "elf", "syms", file, "--json"]]];
  for (const [name, cmd] of [["readelf", "readelf"], ["eu-readelf", "eu-readelf"], ["llvm-readelf", "llvm-readelf"]]) {
    const p = which(cmd);
    if (p) contenders.push([name, [p, "-Ws", file]]);
  }
  const devnull = openSync("/dev/null", "w");
  const times = Object.fromEntries(contenders.map(([n]) => [n, []]));
  try {
    for (const [, argv] of contenders) timeOnce(argv, devnull); // warm the page cache
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 ? [...contenders].reverse() : contenders;
      for (const [n, argv] of order) times[n].push(timeOnce(argv, devnull));
    }
  } finally {
    closeSync(devnull);
  }
  const med = Object.fromEntries(Object.entries(times).map(([n, t]) => [n, median(t)]));
  log(`elf syms --json of ${file}: median of ${ROUNDS} alternating rounds (whole process, output to /dev/null)`);
  for (const [n, m] of Object.entries(med)) {
    const ratio = n === "ckimg" ? "" : `   ckimg is ${(m / med.ckimg).toFixed(2)}x ${m >= med.ckimg ? "faster" : "slower"}`;
    log(`  ${n.padEnd(13)} ${m.toFixed(1).padStart(8)} ms${ratio}`);
  }

  // In process: the library and the JSON writer without node's startup.
  const elfMod = await import(pathToFileURL(join(root, "dist/elf/index.js")).href);
  const cli = await import(pathToFileURL(join(root, "dist/cli/elf.js")).href);
  const inproc = [];
  let bytes = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    const elf = elfMod.parseElf(cli.readForSymbols(file));
    bytes = cli.symbolsJson(elf).length;
    inproc.push(performance.now() - t0);
  }
  log(`  in process: read+parse+JSON ${median(inproc).toFixed(1)} ms median (${(bytes / 1e6).toFixed(1)} MB of JSON)`);

  // Address → symbol.
  const { readFileSync } = await import("node:fs");
  const elf = elfMod.parseElf(new Uint8Array(readFileSync(file)));
  const t0 = performance.now();
  const tables = elf.symbolTables();
  const t1 = performance.now();
  // Built straight from the tables' bytes: symbols are materialized only when a lookup returns them.
  const index = elfMod.buildSymbolIndex(tables);
  const t2 = performance.now();
  const syms = { length: tables.reduce((n, t) => n + t.count, 0) };
  const text = elf.sections.find((s) => s.name === ".text") ?? elf.sections.find((s) => s.size > 0n);
  const N = 1_000_000;
  const addrs = new Array(N);
  let seed = 12345;
  for (let i = 0; i < N; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    addrs[i] = text.addr + BigInt(Math.floor((seed / 4294967296) * Number(text.size)));
  }
  let found = 0;
  const rates = [];
  for (let r = 0; r < 5; r++) {
    const s = performance.now();
    for (let i = 0; i < N; i++) if (index.lookup(addrs[i])) found++;
    rates.push(N / ((performance.now() - s) / 1000));
  }
  const rate = median(rates);
  log(`  symbol index: ${syms.length} symbols (tables opened in ${(t1 - t0).toFixed(0)} ms), index of ${index.size} addresses built in ${(t2 - t1).toFixed(0)} ms`);
  log(`  address→symbol: ${(rate / 1e6).toFixed(2)} M lookups/s (median of 5 × 1M random .text addresses, ${((found / (5 * N)) * 100).toFixed(0)}% hit)`);
  return { medians: med, inProcessMs: median(inproc), lookupsPerSecond: rate };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await run(process.argv[2]);
}
