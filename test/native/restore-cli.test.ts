/** `ckimg restore` verb: argument vector and exit-status mapping (pure functions). */
import { describe, expect, it } from "vitest";
import { restoreArgv, restoreExitCode } from "../../src/cli/restore.js";
import { main } from "../../src/cli/main.js";

describe("ckimg restore (CLI)", () => {
  it("passes options to the native restorer and reports on fds 3/4", () => {
    expect(restoreArgv("a.img", {})).toEqual(["a.img", "--pid-fd", "3", "--msg-fd", "4"]);
    expect(restoreArgv("a.img", { detach: true, force: true, newPid: true, lazy: true, thp: true, noVerify: true }))
      .toEqual(["a.img", "--detach", "--force", "--new-pid", "--lazy", "--thp", "--no-verify", "--pid-fd", "3", "--msg-fd", "4"]);
  });

  it("exit status: the restored process's once it ran, 2 when the restore failed", () => {
    expect(restoreExitCode(0, null, true)).toBe(0);
    expect(restoreExitCode(3, null, true)).toBe(3);
    expect(restoreExitCode(137, null, true)).toBe(137);
    expect(restoreExitCode(2, null, false)).toBe(2);
    expect(restoreExitCode(1, null, false)).toBe(2);
    expect(restoreExitCode(null, "SIGKILL", false)).toBe(2);
  });

  it("usage errors exit 2 with the usage line", async () => {
    const err: string[] = [];
    const ctx = { stdout: () => {}, stderr: (s: string) => void err.push(s), stderrIsTty: false };
    expect(await main(["restore"], ctx)).toBe(2);
    expect(err.join("")).toMatch(/restore takes exactly one image/);
    expect(err.join("")).toMatch(/usage: ckimg restore IMG/);
  });

  it("a damaged image is refused with one line naming the record", async () => {
    const err: string[] = [];
    const ctx = { stdout: () => {}, stderr: (s: string) => void err.push(s), stderrIsTty: false };
    expect(await main(["restore", "corpus/images/truncated.img"], ctx)).toBe(2);
    expect(err.join("")).toMatch(/^ckimg: corpus\/images\/truncated\.img: BAD_TRAILER: .*\n$/);
  });
});
