/**
 * Process trees on real processes (format 1.2): a C program with children of every kind (a
 * pipe reader, a zombie, a session leader, a process group with a grandchild) and a shell
 * pipeline are captured with `ckimg capture` (the whole tree, --kill), restored with
 * `ckimg restore --detach` and checked: same PIDs, parents, groups and sessions, the zombie still
 * a zombie that its parent reaps with the recorded status, and the pipes between processes
 * still flowing (the pipeline's checksum equals an uninterrupted run's).
 * Originals and restored trees run under a child subreaper (test/native/restore-programs/
 * subreaper.c): PID 1 does not reap orphans here.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { connect, createServer } from "node:net";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openImage, type UnixSocketState } from "../../src/format/index.js";
import { REPO, compileC, makeTempDir, removeTempDirs, requireBuild, runCli, sleep, startProcess, type Started } from "./helpers.js";
import { captureTree, childrenOf, cleanup, gone, prog, stat } from "./tree-helpers.js";

const CLI = join(REPO, "bin/ckimg");
const TP = join(REPO, "test/native/tree-programs");

let tmp = "";
let reaper = "";
beforeAll(() => {
  requireBuild();
  tmp = makeTempDir("ckimg-tree-");
  reaper = prog(join(REPO, "test/native/restore-programs"), "subreaper");
});
afterAll(() => removeTempDirs());

/** Each of tree-programs/cow's processes checksums its memory on SIGUSR1 ("sum PID SUM", read from p). */
async function cowSums(p: Started, pids: number[]): Promise<Map<number, string>> {
  for (const pid of pids) process.kill(pid, "SIGUSR1");
  const got = new Map<number, string>();
  for (const pid of pids) got.set(pid, (await p.waitForLine(new RegExp(`^sum ${pid} `), { from: 0 })).split(" ")[2]);
  return got;
}

describe("a process tree", () => {
  it("comes back with its PIDs, relations, zombie and the pipe between parent and child", async () => {
    const exe = prog(TP, "family");
    const img = join(tmp, "family.img");
    const orig = startProcess([reaper, exe]);
    let ids: Record<string, number> = {};
    let lastGot = 0;
    try {
      const ready = await orig.waitForLine(/^ready /);
      const m = /^ready (\d+) reader=(\d+) zombie=(\d+) leader=(\d+) grouper=(\d+) grandchild=(\d+)$/.exec(ready)!;
      ids = { root: +m[1], reader: +m[2], zombie: +m[3], leader: +m[4], grouper: +m[5], gc: +m[6] };
      await orig.waitForLine(/^got 5$/);
      const before = Object.fromEntries(Object.entries(ids).map(([k, p]) => [k, stat(p)]));
      const summary = captureTree(ids.root, img);
      expect(summary).toMatchObject({ processes: 5, zombies: 1, killed: true });
      await Promise.race([orig.exited, sleep(10_000)]);   // (its last lines are in orig.lines by then)
      lastGot = Math.max(...orig.lines.filter((l) => l.startsWith("got ")).map((l) => Number(l.slice(4))));
      await gone(Object.values(ids));

      // the library sees the tree
      const image = await openImage(img);
      try {
        expect(image.tree?.processes.map((p) => p.pid)).toEqual([ids.root, ids.reader, ids.zombie, ids.leader, ids.grouper, ids.gc]);
        expect(image.processes.map((p) => p.process.pid)).toEqual([ids.root, ids.reader, ids.leader, ids.grouper, ids.gc]);
        expect(image.tree?.processes[2]).toMatchObject({ zombie: true, exitStatus: 7 << 8, ppid: ids.root });
        for (const [k, p] of Object.entries(ids)) {
          if (k === "zombie") continue;
          expect(image.processImage(p).process).toMatchObject({ ppid: before[k].ppid, pgid: before[k].pgid, sid: before[k].sid });
        }
        // the pipe between root and reader is one object: one end in each
        const rootPipes = image.processImage(ids.root).fds.filter((f) => f.path.startsWith("pipe:") && (f.openFlags & 3) === 1);
        const readerPipes = image.processImage(ids.reader).fds.filter((f) => f.path.startsWith("pipe:") && (f.openFlags & 3) === 0);
        const rootReads = image.processImage(ids.root).fds.filter((f) => f.path.startsWith("pipe:") && (f.openFlags & 3) === 0);
        const shared = rootPipes.filter((w) => readerPipes.some((r) => r.inode === w.inode) && !rootReads.some((r) => r.inode === w.inode));
        expect(shared).toHaveLength(1);
        expect(shared[0].state ?? 0).toBe(0); // not PEER_OUTSIDE
      } finally {
        await image.close();
      }
      // the CLI: inspect draws the tree and --pid picks a process; diff pairs processes by PID
      const ins = runCli(["inspect", img]);
      expect(ins.status).toBe(0);
      expect(ins.stdout).toContain(`tree     5 processes and 1 zombie, root ${ids.root}`);
      expect(ins.stdout).toContain(`  family(${ids.root})\n  ├─family(${ids.reader})\n  ├─?(${ids.zombie}) <defunct>`);
      expect(ins.stdout).toContain(`  └─family(${ids.grouper})\n    └─family(${ids.gc})`);
      expect(runCli(["inspect", "--pid", String(ids.gc), img]).stdout).toContain(`process  pid ${ids.gc} (family)  ppid ${ids.grouper}`);
      const z = runCli(["inspect", "--pid", String(ids.zombie), img]);
      expect(z.status).toBe(2);
      expect(z.stderr).toMatch(new RegExp(`process ${ids.zombie} is a zombie`));
      const copy = join(tmp, "family-copy.img");
      copyFileSync(img, copy);
      const d = runCli(["diff", "--json", img, copy]);
      expect(d.status).toBe(0);
      expect(JSON.parse(d.stdout)).toMatchObject({ same: true, onlyInA: [], onlyInB: [] });
      expect(JSON.parse(d.stdout).processes.map((p: { pid: number }) => p.pid)).toEqual([ids.root, ids.reader, ids.leader, ids.grouper, ids.gc]);
    } finally {
      await cleanup(orig, Object.values(ids));
    }

    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img]);
    try {
      await s.waitForLine(new RegExp(`^${ids.root}$`), { timeoutMs: 60_000 });
      // the root's writes reach the reader through the restored pipe
      await s.waitForLine(new RegExp(`^got ${lastGot + 3}$`), { timeoutMs: 60_000 });
      // nothing lost, nothing repeated: the bytes in the pipe and the reader's buffer came back
      expect(s.lines.find((l) => l.startsWith("got "))).toBe(`got ${lastGot + 1}`);
      const now = Object.fromEntries(Object.entries(ids).map(([k, p]) => [k, stat(p)]));
      expect(now.root.ppid).toBe(s.pid);
      for (const k of ["reader", "zombie", "leader", "grouper"]) expect(now[k].ppid).toBe(ids.root);
      expect(now.gc.ppid).toBe(ids.grouper);
      expect(now.zombie.state).toBe("Z");
      expect(now.leader).toMatchObject({ sid: ids.leader, pgid: ids.leader });
      expect(now.grouper.pgid).toBe(ids.grouper);
      expect(now.gc.pgid).toBe(ids.grouper);
      expect(now.reader.pgid).toBe(now.root.pgid);
      expect(childrenOf(ids.root).sort()).toEqual([ids.reader, ids.zombie, ids.leader, ids.grouper].sort());
      // the parent still reaps its zombie, with the recorded status
      process.kill(ids.root, "SIGUSR1");
      await s.waitForLine(new RegExp(`^reaped ${ids.zombie} status 7$`), { timeoutMs: 30_000 });
    } finally {
      await cleanup(s, Object.values(ids));
    }
  }, 120_000);

  it("a shell pipeline captured mid-run finishes with the checksum of an uninterrupted run", async () => {
    const bytes = 1_000_000_000;
    const out = join(tmp, "pipeline.md5");
    const img = join(tmp, "pipeline.img");
    const script = `yes | tr y n | head -c ${bytes} | md5sum > ${out}; echo finished`;
    const orig = startProcess([reaper, "/bin/sh", "-c", script]);
    let pids: number[] = [];
    try {
      for (let i = 0; i < 500 && childrenOf(orig.pid).length === 0; i++) await sleep(10);
      const sh = childrenOf(orig.pid)[0];
      for (let i = 0; i < 500 && childrenOf(sh).length < 4; i++) await sleep(10);
      await sleep(300);
      pids = [sh, ...childrenOf(sh)];
      const summary = captureTree(sh, img);
      expect(summary.processes).toBe(5);
      await Promise.race([orig.exited, sleep(10_000)]);
      await gone(pids);
    } finally {
      await cleanup(orig, pids);
    }
    expect(existsSync(out) ? readFileSync(out, "utf8") : "").toBe("");   // it did not finish before the capture

    const expected = createHash("md5");
    const block = Buffer.alloc(1 << 20, "n\n");
    for (let done = 0; done < bytes; done += block.length) expected.update(block.subarray(0, Math.min(block.length, bytes - done)));
    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img]);
    try {
      await s.waitForLine(/^finished$/, { timeoutMs: 120_000 });
      expect(readFileSync(out, "utf8")).toBe(`${expected.digest("hex")}  -\n`);
    } finally {
      await cleanup(s, pids);
    }
  }, 240_000);

  it("unix socket pairs split between parent and child (stream, dgram, seqpacket) are one pair again, with their queues both ways", async () => {
    const exe = prog(TP, "sockpair");
    const img = join(tmp, "sockpair.img");
    const orig = startProcess([reaper, exe]);
    let pids: number[] = [];
    try {
      pids = (await orig.waitForLine(/^ready /)).split(" ").slice(1).map(Number);
      expect(captureTree(pids[0], img)).toMatchObject({ processes: 2, killed: true });
      await Promise.race([orig.exited, sleep(10_000)]);
      await gone(pids);
    } finally {
      await cleanup(orig, pids);
    }
    const image = await openImage(img);
    try {
      // each process holds one end of each pair, the other end is the other process's
      const unix = pids.map((p) => image.processImage(p).fdState.filter((st): st is UnixSocketState => st.type === "unix"));
      const paired = (mine: UnixSocketState[], theirs: UnixSocketState[]) =>
        mine.filter((a) => a.peerInside && theirs.some((b) => b.inode === a.peerInode && b.peerInode === a.inode));
      expect(paired(unix[0], unix[1]).map((u) => u.socketType).sort()).toEqual(["dgram", "seqpacket", "stream"]);
      expect(paired(unix[1], unix[0])).toHaveLength(3);
    } finally {
      await image.close();
    }
    const s = startProcess([reaper, process.execPath, CLI, "restore", img]);
    try {
      s.write("check\n");   // (read by the restored parent from the restore's stdin)
      await s.waitForLine(/^(ok|FAIL)/, { timeoutMs: 60_000 });
      await sleep(100);
      expect(s.lines.filter((l) => /^(ok|FAIL|child ok)/.test(l)).sort()).toEqual(["child ok", "ok"]);
    } finally {
      await cleanup(s, pids);
    }
  }, 120_000);

  it("a pre-fork server: master and workers share one listening socket again and answer", async () => {
    const exe = prog(TP, "prefork");
    const img = join(tmp, "prefork.img");
    const ask = (port: number) => new Promise<string>((res, rej) => {
      const c = connect(port, "127.0.0.1");
      let got = "";
      c.on("data", (d) => (got += d.toString()));
      c.on("end", () => res(got.trim()));
      c.on("error", rej);
    });
    const orig = startProcess([reaper, exe]);
    let port = 0, pids: number[] = [];
    const before = new Map<number, number>();
    try {
      const [, p, a, b] = (await orig.waitForLine(/^ready /)).split(" ").map(Number);
      port = p;
      const master = childrenOf(orig.pid)[0];
      pids = [master, a, b];
      for (let i = 0; i < 6; i++) {
        const [, pid, n] = (await ask(port)).split(" ").map(Number);
        before.set(pid, n);
      }
      expect(captureTree(master, img)).toMatchObject({ processes: 3, zombies: 0 });
      await Promise.race([orig.exited, sleep(10_000)]);
      await gone(pids);
      const image = await openImage(img);
      try {
        // the listening socket is one open file description in all three
        const ids = image.processes.map((v) => v.fds.find((f) => f.path.startsWith("socket:"))?.fileId);
        expect(ids[0]).toBeDefined();
        expect(new Set(ids).size).toBe(1);
      } finally {
        await image.close();
      }
    } finally {
      await cleanup(orig, pids);
    }
    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img]);
    try {
      await s.waitForLine(new RegExp(`^${pids[0]}$`), { timeoutMs: 60_000 });
      const after = new Map<number, number>();
      for (let i = 0; i < 8; i++) {
        const [word, pid, n] = (await ask(port)).split(" ");
        expect(word).toBe("worker");
        expect(pids.slice(1)).toContain(Number(pid));
        // each worker's count goes on from where it was
        const prev = after.get(Number(pid)) ?? before.get(Number(pid)) ?? 0;
        expect(Number(n)).toBe(prev + 1);
        after.set(Number(pid), Number(n));
      }
      expect(stat(pids[1]).ppid).toBe(pids[0]);
      expect(stat(pids[2]).ppid).toBe(pids[0]);
    } finally {
      await cleanup(s, pids);
    }
  }, 120_000);

  it("memory a parent shares copy-on-write with 4 forked children is stored once, and reads the same after restore", async () => {
    const exe = prog(TP, "cow");
    const img = join(tmp, "cow.img");
    const mib = 64;
    const orig = startProcess([reaper, exe, String(mib), "4"]);
    let pids: number[] = [];
    let before = new Map<number, string>();
    try {
      pids = (await orig.waitForLine(/^ready /)).split(" ").slice(1).map(Number);
      before = await cowSums(orig, pids);
      const r = runCli(["capture", String(pids[0]), "-o", img, "--kill", "--json"]);
      expect(r.status, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout);
      expect(summary.processes).toBe(5);
      // one copy of the 64 MiB, not five (each child wrote one page of its own)
      const pagesOfBuffer = (mib << 20) / 4096;
      expect(summary.storedPages).toBeLessThan(pagesOfBuffer * 1.25);
      expect(summary.imageBytes).toBeLessThan((mib << 20) * 1.3);
      const image = await openImage(img);
      try {
        for (const pid of pids.slice(1)) expect(image.processImage(pid).sharedPages?.parentPid).toBe(pids[0]);
      } finally {
        await image.close();
      }
      await Promise.race([orig.exited, sleep(10_000)]);
      await gone(pids);
    } finally {
      await cleanup(orig, pids);
    }
    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img]);
    try {
      await s.waitForLine(new RegExp(`^${pids[0]}$`), { timeoutMs: 60_000 });
      expect(await cowSums(s, pids)).toEqual(before);
      // shared again after restore: the tree's memory (sum of Pss) is about one copy, not five
      const pss = pids.reduce((n, p) => n + Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, "utf8"))![1]), 0);
      expect(pss * 1024).toBeLessThan((mib << 20) * 1.5);
    } finally {
      await cleanup(s, pids);
    }
  }, 120_000);
  it("copy-on-write (the default): one twin per process, the tree runs on at once, nothing of it left; shared pages still stored once; the restore reads the same", async () => {
    const exe = prog(TP, "cow");
    const img = join(tmp, "cow-twins.img");
    const mib = 32;
    const orig = startProcess([reaper, exe, String(mib), "3"]);
    let pids: number[] = [];
    const traced = (pid: number) => /^TracerPid:\s+0$/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
    let before = new Map<number, string>();
    try {
      pids = (await orig.waitForLine(/^ready /)).split(" ").slice(1).map(Number);
      before = await cowSums(orig, pids);
      const kids = pids.map(childrenOf);
      // under a child subreaper of the tree (here its root), no twin: it could be re-parented
      // to that subreaper, which could wait for it; the tree is captured stop-and-copy
      const under = spawnSync(join(REPO, "build/ckimg-capture"), [String(orig.pid), "-o", join(tmp, "reaper.img")], { encoding: "utf8" });
      expect(under.status, under.stderr).toBe(0);
      const u = JSON.parse(under.stdout.trim().split("\n").pop()!);
      expect({ processes: u.processes, twins: u.cow_processes }).toEqual({ processes: 5, twins: 0 });
      const r = spawnSync(join(REPO, "build/ckimg-capture"), [String(pids[0]), "-o", img], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout.trim().split("\n").pop()!);
      expect({ processes: summary.processes, cow: summary.cow, twins: summary.cow_processes }).toEqual({ processes: 4, cow: true, twins: 4 });
      expect(summary.stored_pages).toBeLessThan(((mib << 20) / 4096) * 1.25);   // shared: once
      // untouched: same children, untraced, running; the twins are gone
      expect(pids.map(childrenOf)).toEqual(kids);
      for (const pid of pids) expect({ pid, untraced: traced(pid), state: stat(pid).state }).toEqual({ pid, untraced: true, state: "S" });
      expect(childrenOf(orig.pid).filter((c) => !pids.includes(c))).toEqual([]);
      expect(existsSync(`/proc/${summary.twin_pid}`) && stat(summary.twin_pid).state !== "Z").toBe(false);
      const image = await openImage(img);
      try {
        for (const pid of pids.slice(1)) expect(image.processImage(pid).sharedPages?.parentPid).toBe(pids[0]);
      } finally {
        await image.close();
      }
    } finally {
      await cleanup(orig, pids);
    }
    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img]);
    try {
      await s.waitForLine(new RegExp(`^${pids[0]}$`), { timeoutMs: 60_000 });
      expect(await cowSums(s, pids)).toEqual(before);
    } finally {
      await cleanup(s, pids);
    }
  }, 120_000);

  it("MAP_SHARED|MAP_ANONYMOUS, /dev/zero and memfd memory is one object again: stored once, written by both after restore", async () => {
    const exe = prog(TP, "shmem");
    const img = join(tmp, "shmem.img");
    const orig = startProcess([reaper, exe]);
    let pids: number[] = [];
    let lastPing = 0;
    try {
      const m = /^ready (\d+) child=(\d+) a=0x([0-9a-f]+) z=0x([0-9a-f]+) m=0x([0-9a-f]+)$/.exec(await orig.waitForLine(/^ready /))!;
      pids = [Number(m[1]), Number(m[2])];
      const aAddr = BigInt(`0x${m[3]}`), zAddr = BigInt(`0x${m[4]}`);
      await orig.waitForLine(/^ping 21$/);
      expect(captureTree(pids[0], img)).toMatchObject({ processes: 2, zombies: 0 });
      await Promise.race([orig.exited, sleep(10_000)]);
      lastPing = Math.max(...orig.lines.filter((l) => l.startsWith("ping ")).map((l) => Number(l.slice(5))));
      await gone(pids);
      const image = await openImage(img);
      try {
        const [parent, child] = pids.map((p) => image.processImage(p));
        for (const at of [aAddr, zAddr]) {
          const pa = parent.areas.find((x) => x.start === at)!, ca = child.areas.find((x) => x.start === at)!;
          expect(pa.kind).toBe("shmem");
          expect(ca).toMatchObject({ kind: "shmem", inode: pa.inode, devMinor: pa.devMinor });
          // one object: its pages are stored by the first process only
          let inChild = 0;
          for await (const _ of child.pages(ca)) inChild++;
          expect(inChild).toBe(0);
        }
        // the child's view has what the child wrote (stored in the parent's area) and the parent's fill
        expect(Buffer.from(await image.readMemory(pids[1], aAddr + 4096n, 16)).toString()).toBe("child wrote this");
        expect([...await image.readMemory(pids[1], aAddr + 8n * 4096n, 8)]).toEqual(Array(8).fill(0xab));
        expect(await child.pageSource(aAddr + 4096n)).toBe("image");
      } finally {
        await image.close();
      }
    } finally {
      await cleanup(orig, pids);
    }
    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img]);
    try {
      await s.waitForLine(new RegExp(`^${pids[0]}$`), { timeoutMs: 60_000 });
      // the ping-pong goes on only if all three areas are one memory for parent and child
      await s.waitForLine(new RegExp(`^ping ${lastPing + 20}$`), { timeoutMs: 30_000 });
      expect(s.lines.filter((l) => l.startsWith("bad"))).toEqual([]);
      expect(s.lines.find((l) => l.startsWith("ping "))).toBe(`ping ${lastPing + 2}`);
      // still shared anonymous memory (a later capture sees it as such)
      for (const p of pids) expect(readFileSync(`/proc/${p}/maps`, "utf8")).toMatch(/ \/dev\/zero \(deleted\)\n/);
      // and the memfd is one file: the same inode in both
      const memfdIno = pids.map((p) => /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s+\/memfd:shared-note/m.exec(readFileSync(`/proc/${p}/maps`, "utf8"))?.[1]);
      expect(memfdIno[0]).toBeDefined();
      expect(memfdIno[1]).toBe(memfdIno[0]);
    } finally {
      await cleanup(s, pids);
    }
  }, 120_000);
  it("SysV shm, semaphores and a message queue between two processes come back with their ids, values and messages", async () => {
    const exe = prog(TP, "sysv");
    const img = join(tmp, "sysv.img");
    const orig = startProcess([reaper, exe]);
    let pids: number[] = [];
    let ids = { shm: -1, sem: -1, msg: -1 };
    let lastPing = 0;
    const ipcrm = () => {
      for (const [flag, id] of [["-s", ids.sem], ["-q", ids.msg]] as const) if (id >= 0) spawnSync("ipcrm", [flag, String(id)]);
    };
    const listed = (what: string, id: number) => readFileSync(`/proc/sysvipc/${what}`, "utf8").split("\n").slice(1).some((l) => l.trim().split(/\s+/)[1] === String(id));
    try {
      const m = /^ready (\d+) child=(\d+) shm=(\d+) sem=(\d+) msg=(\d+)$/.exec(await orig.waitForLine(/^ready /))!;
      pids = [Number(m[1]), Number(m[2])];
      ids = { shm: Number(m[3]), sem: Number(m[4]), msg: Number(m[5]) };
      await orig.waitForLine(/^ping 21$/);
      expect(captureTree(pids[0], img)).toMatchObject({ processes: 2 });
      await Promise.race([orig.exited, sleep(10_000)]);
      lastPing = Math.max(...orig.lines.filter((l) => l.startsWith("ping ")).map((l) => Number(l.slice(5))));
      await gone(pids);
      const image = await openImage(img);
      try {
        expect(image.sysv.shm).toMatchObject([{ id: ids.shm, key: 0, mode: 0o600, size: 3n * 4096n, removed: true }]);
        expect(image.sysv.sem).toHaveLength(1);
        expect(image.sysv.sem[0]).toMatchObject({ id: ids.sem, mode: 0o600 });
        // the parent is between pings: exactly one of the two turns is open, or none (one is taken)
        expect(image.sysv.sem[0].sems.map((x) => x.value).reduce((a, b) => a + b)).toBeLessThanOrEqual(1);
        expect(image.sysv.msg).toHaveLength(1);
        expect(image.sysv.msg[0].messages.map((x) => [x.type, Buffer.from(x.data).toString()])).toEqual([[7n, "first\0"], [9n, "second\0"]]);
        // the segment's bytes are one object: the child's area reads what the parent stored
        const seg = image.processImage(pids[1]).areas.find((a) => a.path.startsWith("/SYSV"))!;
        expect(Buffer.from(await image.readMemory(pids[1], seg.start + 8192n, 23)).toString()).toBe("written before the fork");
      } finally {
        await image.close();
      }
      expect(runCli(["inspect", img]).stdout).toContain(`sysv     sem ${ids.sem} (private, mode 0600): values `);
    } finally {
      await cleanup(orig, pids);
    }
    try {
      // the semaphore set and the queue outlive their processes; another object with the set's id
      // (another size) is never taken over
      expect(listed("sem", ids.sem) && listed("msg", ids.msg)).toBe(true);
      expect(listed("shm", ids.shm)).toBe(false);     // removed: it went with its processes
      spawnSync("ipcrm", ["-s", String(ids.sem)]);
      const mksem = compileC(`#include <stdio.h>
#include <stdlib.h>
#include <sys/sem.h>
int main(int c, char **v) { FILE *f = fopen("/proc/sys/kernel/sem_next_id", "w"); fprintf(f, "%s", v[1]); fclose(f);
  printf("%d\\n", semget(IPC_PRIVATE, 3, IPC_CREAT | 0600)); return 0; }`, "mksem");
      expect(spawnSync(mksem, [String(ids.sem)], { encoding: "utf8" }).stdout.trim()).toBe(String(ids.sem));
      const refused = runCli(["restore", "--detach", img]);
      expect(refused.status).toBe(2);
      expect(refused.stderr).toContain(`SysV sem id ${ids.sem} is in use by another object`);
      expect(refused.stderr).toContain(`ipcrm -s ${ids.sem}`);
      spawnSync("ipcrm", ["-s", String(ids.sem)]);
      // the captured queue, still there, is made again from the image
      const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img]);
      try {
        await s.waitForLine(new RegExp(`^${pids[0]}$`), { timeoutMs: 60_000 });
        expect(s.stderr()).toContain(`SysV msg ${ids.msg}: the captured object is still there`);
        // the ping-pong goes on: semaphore values and the counter in the segment are shared again
        await s.waitForLine(new RegExp(`^ping ${lastPing + 40}$`), { timeoutMs: 30_000 });
        expect(s.lines.filter((l) => l.startsWith("bad"))).toEqual([]);
        expect(listed("sem", ids.sem) && listed("msg", ids.msg) && listed("shm", ids.shm)).toBe(true);
        // removed again: the segment's key is private and it is marked to go (mode 01600)
        const shmLine = readFileSync("/proc/sysvipc/shm", "utf8").split("\n").find((l) => l.trim().split(/\s+/)[1] === String(ids.shm))!;
        expect(shmLine.trim().split(/\s+/)[2]).toBe("1600");
        process.kill(pids[0], "SIGUSR1");
        await s.waitForLine(/^msg 9 second/, { timeoutMs: 30_000 });
        expect(s.lines.filter((l) => l.startsWith("msg "))).toEqual(["msg 7 first", "msg 9 second"]);
      } finally {
        await cleanup(s, pids);
      }
      await sleep(100);
      expect(listed("shm", ids.shm)).toBe(false);   // it went with its last detach
    } finally {
      ipcrm();
    }
  }, 120_000);
  it("a Python multiprocessing.Pool captured mid-run finishes with the result of an uninterrupted run", async () => {
    const img = join(tmp, "pool.img");
    const n = 400;
    const orig = startProcess([reaper, "python3", join(TP, "pool.py"), String(n)]);
    let pids: number[] = [];
    try {
      await orig.waitForLine(/^progress 100$/, { timeoutMs: 60_000 });
      const py = childrenOf(orig.pid)[0];
      pids = [py, ...childrenOf(py)];
      expect(pids.length).toBeGreaterThanOrEqual(3);
      expect(captureTree(py, img).processes).toBe(pids.length);
      await Promise.race([orig.exited, sleep(10_000)]);
      await gone(pids);
    } finally {
      await cleanup(orig, pids);
    }
    expect(orig.lines.some((l) => l.startsWith("result"))).toBe(false);   // captured mid-run
    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img]);
    try {
      const want = Array.from({ length: n }, (_, i) => i * i).reduce((a, b) => a + b);
      await s.waitForLine(new RegExp(`^result ${want}$`), { timeoutMs: 60_000 });
    } finally {
      await cleanup(s, pids);
    }
  }, 120_000);
  it("make -j2 captured mid-build completes with the outputs of an uninterrupted build", async () => {
    const dir = join(tmp, "make-project");
    const img = join(tmp, "make.img");
    const n = 16;
    mkdirSync(dir, { recursive: true });
    for (let i = 1; i <= n; i++) writeFileSync(join(dir, `f${i}.c`), `int f${i}(int x) { int s = 0; for (int i = 0; i < x; i++) s += i * ${i}; return s; }\n`);
    const fs = Array.from({ length: n }, (_, i) => `f${i + 1}`);
    writeFileSync(join(dir, "main.c"), `#include <stdio.h>\n${fs.map((f) => `int ${f}(int);`).join("\n")}\nint main(void) { long t = 0;\n${fs.map((f) => `t += ${f}(100);`).join("\n")}\nprintf("%ld\\n", t); return 0; }\n`);
    // each step waits a little so that the capture falls in the middle of the build
    writeFileSync(join(dir, "Makefile"), "OBJS := $(patsubst %.c,%.o,$(wildcard *.c))\nprog: $(OBJS)\n\tsleep 0.2\n\tgcc -o $@ $(OBJS)\n" +
      "%.o: %.c\n\tsleep 0.3\n\tgcc -O2 -c -o $@ $<\nclean:\n\trm -f *.o prog\n");
    const outputs = () => [...fs, "main"].map((f) => `${f}.o`).concat("prog").map((f) => createHash("sha256").update(readFileSync(join(dir, f))).digest("hex"));
    expect(spawnSync("make", ["-s", "-j2"], { cwd: dir }).status).toBe(0);
    const want = outputs();
    expect(spawnSync("make", ["-s", "clean"], { cwd: dir }).status).toBe(0);

    const orig = startProcess([reaper, "make", "-j2"], { cwd: dir });
    let pids: number[] = [];
    try {
      await orig.waitForLine(/^gcc -O2 -c -o f4\.o/, { timeoutMs: 60_000 });
      const make = childrenOf(orig.pid)[0];
      pids = [make, ...childrenOf(make)];
      expect(captureTree(make, img).processes).toBeGreaterThanOrEqual(2);
      await Promise.race([orig.exited, sleep(10_000)]);
      await gone([make]);
    } finally {
      await cleanup(orig, pids);
    }
    expect(existsSync(join(dir, "prog"))).toBe(false);
    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img], { cwd: dir });
    try {
      await s.waitForLine(/^gcc -o prog /, { timeoutMs: 60_000 });
      await gone([pids[0]]);
      expect(outputs()).toEqual(want);
      expect(spawnSync(join(dir, "prog"), { encoding: "utf8" }).stdout.trim()).toBe(String(Array.from({ length: n }, (_, i) => 4950 * (i + 1)).reduce((a, b) => a + b)));
    } finally {
      await cleanup(s, pids);
    }
  }, 180_000);
  it("nginx (master + 2 workers) answers on its loopback port after restore, and reloads", async () => {
    const dir = join(tmp, "nginx");
    const img = join(tmp, "nginx.img");
    mkdirSync(dir, { recursive: true });
    const port = await new Promise<number>((res) => {
      const srv = createServer();
      srv.listen(0, "127.0.0.1", () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => res(p));
      });
    });
    const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((k) => `  ${k}_temp_path ${dir}/${k};`).join("\n");
    writeFileSync(join(dir, "nginx.conf"), `daemon off;\nworker_processes 2;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\n` +
      `events { worker_connections 64; }\nhttp {\n  access_log off;\n${temp}\n` +
      `  server { listen 127.0.0.1:${port}; location / { return 200 "hello from $pid\\n"; } }\n}\n`);
    const get = () => new Promise<number>((res, rej) => {
      const c = connect(port, "127.0.0.1");
      let got = "";
      c.on("connect", () => c.write(`GET / HTTP/1.0\r\nHost: x\r\n\r\n`));
      c.on("data", (d) => (got += d.toString()));
      c.on("end", () => {
        const m = /hello from (\d+)/.exec(got);
        if (m) res(Number(m[1]));
        else rej(new Error(`unexpected answer: ${got}`));
      });
      c.on("error", rej);
    });
    const answering = async () => {
      for (let i = 0; ; i++) {
        try {
          return await get();
        } catch (err) {
          if (i > 200) throw err;
          await sleep(50);
        }
      }
    };
    const orig = startProcess([reaper, "nginx", "-c", join(dir, "nginx.conf"), "-p", dir]);
    let pids: number[] = [];
    try {
      await answering();
      const master = childrenOf(orig.pid)[0];
      pids = [master, ...childrenOf(master)];
      expect(pids).toHaveLength(3);
      for (let i = 0; i < 4; i++) expect(pids.slice(1)).toContain(await get());
      expect(captureTree(master, img)).toMatchObject({ processes: 3, zombies: 0 });
      await Promise.race([orig.exited, sleep(10_000)]);
      await gone(pids);
      await expect(get()).rejects.toThrow();   // nobody listens any more
    } finally {
      await cleanup(orig, pids);
    }
    const s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", img]);
    const all = [...pids];
    try {
      await s.waitForLine(new RegExp(`^${pids[0]}$`), { timeoutMs: 60_000 });
      for (let i = 0; i < 8; i++) expect(pids.slice(1)).toContain(await get());
      expect(stat(pids[1]).ppid).toBe(pids[0]);
      expect(stat(pids[2]).ppid).toBe(pids[0]);
      expect(s.stderr()).not.toMatch(/RLIMITS/);
      // a reload: the master starts new workers and tells the old ones to go (its channels to
      // them are socketpairs split across the processes)
      process.kill(pids[0], "SIGHUP");
      for (let i = 0; i < 200 && childrenOf(pids[0]).some((p) => pids.includes(p)); i++) await sleep(50);
      const fresh = childrenOf(pids[0]);
      all.push(...fresh);
      expect(fresh.filter((p) => pids.includes(p))).toEqual([]);
      expect(fresh).toHaveLength(2);
      expect(fresh).toContain(await answering());
    } finally {
      await cleanup(s, all);
    }
  }, 120_000);
  it("--new-pid restores a copy of a tree beside the running original: fresh PIDs, the same shape", async () => {
    const exe = prog(TP, "family");
    const img = join(tmp, "family-newpid.img");
    const orig = startProcess([reaper, exe]);
    let ids: Record<string, number> = {};
    const copies: number[] = [];
    let s: Started | undefined;
    try {
      const m = /^ready (\d+) reader=(\d+) zombie=(\d+) leader=(\d+) grouper=(\d+) grandchild=(\d+)$/.exec(await orig.waitForLine(/^ready /))!;
      ids = { root: +m[1], reader: +m[2], zombie: +m[3], leader: +m[4], grouper: +m[5], gc: +m[6] };
      await orig.waitForLine(/^got 5$/);
      const r = runCli(["capture", String(ids.root), "-o", img, "--json"]);   // the original runs on
      expect(r.status, r.stderr).toBe(0);
      // the original PIDs are all taken: without --new-pid the restore is refused
      const taken = runCli(["restore", "--detach", img]);
      expect(taken.status).toBe(2);
      expect(taken.stderr).toMatch(new RegExp(`PID ${ids.root} is taken: process ${ids.root} \\(\\w+\\) runs; .*--new-pid`));
      s = startProcess([reaper, process.execPath, CLI, "restore", "--detach", "--new-pid", img]);
      const root = Number(await s.waitForLine(/^\d+$/, { timeoutMs: 60_000 }));
      expect(Object.values(ids)).not.toContain(root);
      const kids = childrenOf(root);
      copies.push(root, ...kids);
      expect(kids).toHaveLength(4);
      for (const k of kids) expect(Object.values(ids)).not.toContain(k);
      const st = kids.map((k) => ({ pid: k, ...stat(k) }));
      // the zombie is still one; one child leads its own session, one its own group with a grandchild in it
      expect(st.filter((x) => x.state === "Z")).toHaveLength(1);
      const leader = st.find((x) => x.sid === x.pid)!;
      const grouper = st.find((x) => x.pgid === x.pid && x.sid !== x.pid)!;
      expect(leader).toBeDefined();
      expect(grouper).toBeDefined();
      const gcs = childrenOf(grouper.pid);
      copies.push(...gcs);
      expect(gcs).toHaveLength(1);
      expect(stat(gcs[0]).pgid).toBe(grouper.pid);
      // the copy's pipe flows: its reader prints what its root writes
      await s.waitForLine(/^got \d+$/, { timeoutMs: 30_000 });
    } finally {
      await cleanup(orig, Object.values(ids));
      if (s) await cleanup(s, copies);
    }
  }, 120_000);
});

