/**
 * The guard's end line reaches `ckimg run` however busy the control socket is: a job that ends
 * while ckimg run writes a command (a capture's `watch`, a `release`) still reports its own
 * exit status, not the "guard gone without a word" fallback. (Seen in CI: a periodic
 * checkpoint racing the job's end made the run exit 2 instead of the job's 0.)
 */
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { JobGuard, guardBinary } from "../../src/job/guard.js";

describe.skipIf(!existsSync(guardBinary()))("ckimg-guard control socket", () => {
  it("a job that ends while commands are being written reports its own exit status", async () => {
    for (let round = 0; round < 20; round++) {
      const g = JobGuard.launch(["/bin/sh", "-c", "exit 7"], [], { onHeld: () => {} });
      await g.running;
      let done = false;
      void g.ended.then(() => { done = true; });
      // watch of a PID that does not exist: a no-op for the guard, a write for the socket
      while (!done) {
        g.watch(0x3fffff);
        await new Promise((r) => setImmediate(r));
      }
      expect(await g.ended, `round ${round}`).toEqual({ code: 7 });
    }
  });

  it("release and attach after the job's end answer at once", async () => {
    const g = JobGuard.launch(["/bin/true"], [], { onHeld: () => {} });
    await g.running;
    expect(await g.ended).toEqual({ code: 0 });
    await g.release();
    await g.attach();
  });
});
