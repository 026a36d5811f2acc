/**
 * The client side of build/ckimg-guard (src/native/guard): starts the job under the guard —
 * launched, or rebuilt by ckimg-restore and adopted — and speaks its line protocol over fd 3.
 * The job gets our stdin/stdout/stderr.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";

/** How the job's main process ended. */
export type JobEnd = { code: number; signal?: undefined } | { signal: number; code?: undefined };

export class GuardError extends Error {
  override name = "GuardError";
}

/** build/ckimg-guard of this package, or $CKIMG_GUARD_BIN. */
export function guardBinary(): string {
  return process.env.CKIMG_GUARD_BIN ?? fileURLToPath(new URL("../../build/ckimg-guard", import.meta.url));
}

export interface GuardHandlers {
  /** A signal meant for a job process was held back: deliver it (deliver()) or let it go. */
  onHeld(signal: number, pid: number): void;
}

export class JobGuard {
  /** The job's main PID once it runs. */
  readonly running: Promise<number>;
  /** Resolves when the job's main process has ended. */
  readonly ended: Promise<JobEnd>;
  private readonly ctl: Duplex;
  private readonly waiters: { word: string; resolve: () => void }[] = [];
  private buf = "";
  private closed = false;

  private constructor(private readonly child: ChildProcess, handlers: GuardHandlers) {
    this.ctl = child.stdio[3] as Duplex;
    let onRunning!: (pid: number) => void;
    let onFailed!: (e: Error) => void;
    let onEnded!: (e: JobEnd) => void;
    this.running = new Promise((res, rej) => { onRunning = res; onFailed = rej; });
    this.ended = new Promise((res) => { onEnded = res; });
    this.running.catch(() => {});
    let end: JobEnd | undefined;
    let errorText: string | undefined;
    this.ctl.setEncoding("utf8");
    this.ctl.on("data", (text: string) => {
      this.buf += text;
      let nl: number;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const [word, a, b] = line.split(" ");
        if (word === "running") onRunning(Number(a));
        else if (word === "held") handlers.onHeld(Number(a), Number(b));
        else if (word === "exit" || word === "signal") {
          end = word === "exit" ? { code: Number(a) } : { signal: Number(a) };
          this.hangUp();
        } else if (word === "error") errorText = line.slice(6);
        else this.waiters.splice(this.waiters.findIndex((w) => w.word === word) >>> 0, 1)[0]?.resolve();
      }
    });
    this.ctl.on("error", () => {});
    child.on("close", (code, signal) => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w.resolve();
      const why = errorText ?? (signal ? `the guard was killed by ${signal}` : `the guard exited with ${code}`);
      onFailed(new GuardError(why));
      onEnded(end ?? { code: 2 });
    });
  }

  /**
   * The job has ended: no more commands (each would be answered by nobody; a pending one is
   * answered now) and hang up, which lets the guard exit — it waits for that, so that its end
   * line is never lost to a command written while it was leaving.
   */
  private hangUp(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.resolve();
    this.ctl.end();
  }

  private static start(args: string[], hold: number[], handlers: GuardHandlers): JobGuard {
    const bin = guardBinary();
    if (!existsSync(bin)) throw new GuardError(`${bin} is missing: run npm run build`);
    const argv = hold.length ? ["--hold", hold.join(","), ...args] : args;
    const child = spawn(bin, argv, { stdio: ["inherit", "inherit", "inherit", "pipe"] });
    return new JobGuard(child, handlers);
  }

  /** Start PROGRAM ARGS… as a new job. */
  static launch(argv: string[], hold: number[], handlers: GuardHandlers): JobGuard {
    return JobGuard.start(["launch", "--", ...argv], hold, handlers);
  }

  /** Rebuild the job from an image with `restorer IMG …` and adopt it. */
  static restore(restorer: string, image: string, restoreArgs: string[], hold: number[], handlers: GuardHandlers): JobGuard {
    return JobGuard.start(["restore", "--", restorer, image, ...restoreArgs], hold, handlers);
  }

  private request(command: string, answer: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ word: answer, resolve });
      this.ctl.write(command + "\n");
    });
  }

  /** Detach from every job thread (the job runs on, untraced) — before a capture. */
  release(): Promise<void> {
    return this.request("release", "released");
  }

  /** Trace the job again after a capture that let it run on. */
  attach(): Promise<void> {
    return this.request("attach", "attached");
  }

  /**
   * After release(): capturer `pid` will seize the job and let it run on; the guard traces the
   * job again as soon as the capturer has let it go (not only at attach(), after the capture),
   * and lowers the capturer's priority to `nice` for the rest of its work (0: unchanged).
   */
  watch(pid: number, nice = 0): void {
    if (!this.closed) this.ctl.write(`watch ${pid} ${nice}\n`);
  }

  /** Send a signal to a job process, past the guard. */
  deliver(signal: number, pid: number): void {
    if (!this.closed) this.ctl.write(`deliver ${signal} ${pid}\n`);
  }

  kill(): void {
    if (!this.closed) this.ctl.write("kill\n");
  }
}
