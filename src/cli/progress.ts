/**
 * Progress on stderr for long work, only when a person is watching (stderr is a tty):
 * bytes done / total and throughput, redrawn at most ~10 times a second.
 */
import type { CliContext } from "./common.js";

export interface Progress {
  update(done: number, total: number): void;
  done(): void;
}

export function progressPrinter(ctx: CliContext, label: string): Progress {
  if (!ctx.stderrIsTty) return { update() {}, done() {} };
  const started = performance.now();
  let last = 0;
  let shown = false;
  return {
    update(done, total) {
      const now = performance.now();
      if (now - last < 100 && done < total) return;
      last = now;
      shown = true;
      const mb = done / 1e6;
      const rate = mb / Math.max((now - started) / 1000, 1e-3);
      const pct = total ? ((100 * done) / total).toFixed(0) : "?";
      ctx.stderr(`\r${label}: ${mb.toFixed(0)} / ${(total / 1e6).toFixed(0)} MB (${pct}%), ${rate.toFixed(0)} MB/s   `);
    },
    done() {
      if (shown) ctx.stderr("\n");
    },
  };
}
