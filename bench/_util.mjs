// Shared helpers for the benchmarks: timing child processes (wall time and peak RSS via
// GNU time), medians, and table printing.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Run a command; returns { seconds, maxRssKiB, status, stdout }. Uses /usr/bin/time for RSS when present. */
export function timeCommand(cmd, args, opts = {}) {
  const haveTime = existsSync("/usr/bin/time");
  const t0 = process.hrtime.bigint();
  const r = haveTime
    ? spawnSync("/usr/bin/time", ["-f", "__RSS__%M", cmd, ...args], { encoding: "buffer", maxBuffer: 1 << 30, ...opts })
    : spawnSync(cmd, args, { encoding: "buffer", maxBuffer: 1 << 30, ...opts });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const stderr = r.stderr?.toString() ?? "";
  const m = /__RSS__(\d+)/.exec(stderr);
  return { seconds, maxRssKiB: m ? Number(m[1]) : undefined, status: r.status, stdout: r.stdout, stderr: stderr.replace(/__RSS__\d+\n?/, "") };
}

export function table(head, rows) {
  const cells = [head, ...rows].map((r) => r.map(String));
  const w = head.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  for (const r of cells) console.log("  " + r.map((c, i) => c.padEnd(w[i])).join("  "));
}

export const fmt = {
  ms: (s) => `${(s * 1000).toFixed(1)} ms`,
  s: (s) => `${s.toFixed(3)} s`,
  mib: (kib) => (kib === undefined ? "?" : `${(kib / 1024).toFixed(0)} MiB`),
  x: (r) => `${r.toFixed(2)}x`,
};
