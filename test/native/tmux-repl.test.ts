/**
 * The terminal acceptance test: a Python REPL (python3 -i, readline) in one tmux pane is
 * captured with `ckimg capture PID --kill` typed into a second pane, restored with
 * `ckimg restore IMG` typed there too, and used: an expression typed into that pane (tmux
 * send-keys) is answered (capture-pane), and a variable defined before the capture is still
 * there. tmux runs on its own socket under a child subreaper (its server daemonizes; PID 1 here
 * does not reap), and is stopped with kill-server on that socket.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { openImage } from "../../src/format/index.js";
import { REPO, compileC, makeTempDir, removeTempDirs, sleep, startProcess, until as waitUntil, type Started } from "./helpers.js";

const CLI = join(REPO, "bin/ckimg");
const haveTmux = spawnSync("tmux", ["-V"]).status === 0;

let tmp = "";
let sock = "";
let reaper: Started | undefined;

function tmux(...args: string[]): string {
  const r = spawnSync("tmux", ["-S", sock, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tmux ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const pane = (n: number) => `ck:0.${n}`;
const screen = (n: number) => tmux("capture-pane", "-p", "-t", pane(n));

/** (20 s unless told: each step of a tmux session is quick) */
const until = <T,>(what: string, f: () => T | undefined | false, ms = 20_000): Promise<T> => waitUntil(what, f, ms);

const children = (pid: number): number[] => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
};

beforeAll(() => {
  if (!haveTmux) return;
  tmp = makeTempDir("ckimg-tmux-");
  sock = join(tmp, "sock");
  const sub = compileC(readFileSync(join(REPO, "test/native/restore-programs/subreaper.c"), "utf8"), "subreaper");
  // a clean shell in a known-size window; TERM for tmux's own client-less start
  reaper = startProcess([sub, "tmux", "-S", sock, "-f", "/dev/null", "new-session", "-d", "-s", "ck", "-x", "100", "-y", "30",
    "env", "-i", `PATH=${process.env.PATH}`, "TERM=tmux-256color", `HOME=${tmp}`, "PS1=$ ", "bash", "--norc", "--noprofile"],
  { env: { ...process.env, TERM: "xterm" } });
});

afterAll(async () => {
  if (haveTmux && sock) {
    spawnSync("tmux", ["-S", sock, "kill-server"]);
    if (reaper) await Promise.race([reaper.exited, sleep(10_000)]);
    await reaper?.kill();
  }
  removeTempDirs();
});

describe.skipIf(!haveTmux)("a Python REPL in tmux", () => {
  it("captured in one pane, restored in another, answers there with its variables", async () => {
    await until("the tmux session", () => existsSync(sock) && spawnSync("tmux", ["-S", sock, "has-session", "-t", "ck"]).status === 0);
    tmux("send-keys", "-t", pane(0), "python3 -i -q", "Enter");
    await until("the python prompt", () => /^>>>/m.test(screen(0)));
    tmux("send-keys", "-t", pane(0), "answer = 6 * 7", "Enter");
    tmux("send-keys", "-t", pane(0), "import readline; readline.get_line_buffer() == ''", "Enter");
    await until("True", () => screen(0).includes("True"));
    const shell0 = Number(tmux("display", "-p", "-t", pane(0), "#{pane_pid}").trim());
    const py = await until("python's pid", () => children(shell0)[0]);
    expect(readFileSync(`/proc/${py}/comm`, "utf8").trim()).toMatch(/^python3/);

    tmux("split-window", "-t", pane(0), "-v", "env", "-i", `PATH=${process.env.PATH}`, "TERM=tmux-256color", `HOME=${tmp}`, "PS1=$ ", "bash", "--norc", "--noprofile");
    await until("the second pane", () => tmux("list-panes", "-t", "ck").trim().split("\n").length === 2);
    const img = join(tmp, "repl.img");
    tmux("send-keys", "-t", pane(1), `${process.execPath} ${CLI} capture ${py} -o ${img} --kill; echo capture-rc=$?`, "Enter");
    await until("the capture", () => screen(1).includes("capture-rc=0") || screen(1).match(/capture-rc=[1-9]/), 60_000);
    expect(screen(1)).toContain("capture-rc=0");
    await until("the original REPL to be gone", () => !existsSync(`/proc/${py}`));
    await until("pane 0's shell prompt", () => /^\$\s*$/m.test(screen(0).trimEnd().split("\n").pop()!));

    const im = await openImage(img);
    const tty = [...im.ttys.values()].find((t) => t.flags & 1);
    expect(tty?.flags).toBeDefined();
    expect(tty!.flags & 0x80).toBe(0x80); // the REPL was the foreground job
    expect(tty!.termios.lflag & 0o2).toBe(0); // readline had turned canonical mode off
    await im.close();

    tmux("send-keys", "-t", pane(1), "clear", "Enter");
    tmux("send-keys", "-t", pane(1), `${process.execPath} ${CLI} restore ${img}; echo restore-rc=$?`, "Enter");
    await until("the restored REPL", () => {
      try {
        const st = readFileSync(`/proc/${py}/status`, "utf8");
        return /TracerPid:\s+0\n/.test(st) && readFileSync(`/proc/${py}/comm`, "utf8").startsWith("python3");
      } catch {
        return false;
      }
    }, 60_000);
    tmux("send-keys", "-t", pane(1), "answer + 1", "Enter");
    await until("the answer 43 in pane 1", () => screen(1).includes("43"));
    tmux("send-keys", "-t", pane(1), "print('twice', answer * 2)", "Enter");
    await until("twice 84", () => screen(1).includes("twice 84"));
    // it is the foreground job of pane 1's terminal, and its terminal is pane 1's
    const ttyOf = (pid: number) => readdirSync(`/proc/${pid}/fd`).length && spawnSync("readlink", [`/proc/${pid}/fd/0`], { encoding: "utf8" }).stdout.trim();
    expect(ttyOf(py)).toBe(tmux("display", "-p", "-t", pane(1), "#{pane_tty}").trim());
    const stat = readFileSync(`/proc/${py}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    expect(Number(f[5])).toBe(Number(f[2])); // tpgid == pgrp: foreground
    tmux("send-keys", "-t", pane(1), "exit()", "Enter");
    await until("restore-rc", () => screen(1).match(/restore-rc=\d+/), 20_000);
    expect(screen(1)).toContain("restore-rc=0");
  });
});
