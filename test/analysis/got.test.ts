/**
 * GOT audit on real processes: a program that hooks its own GOT slot for puts (three ways) must
 * be flagged with the slot and the target; the same program clean (lazy, -z now, IBT, non-PIE,
 * static-pie) and python3/bash/perl must give no flag at all.
 */
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openImage } from "../../src/format/index.js";
import { auditGot, loadModules, preloadList } from "../../src/analysis/index.js";
import { main } from "../../src/cli/main.js";
import { gotReportJson } from "../../src/cli/got.js";
import { tempDir } from "../support/tmp.js";
import { captureProcess, compileC, procImage, startProgram } from "./support/programs.js";

const dir = tempDir("ckimg-got-");
const VARIANTS: Record<string, string[]> = {
  lazy: ["-O2"],
  now: ["-O2", "-Wl,-z,now"],
  ibt: ["-O2", "-fcf-protection=full"],
  nopie: ["-O2", "-no-pie"],
  static: ["-O2", "-static-pie"],
};
const bins: Record<string, string> = {};

beforeAll(() => {
  for (const [name, flags] of Object.entries(VARIANTS)) bins[name] = compileC(dir, `hook-${name}`, "hook", flags);
});

/** Run, capture, stop; returns the image path and the program's "ready SLOT TARGET" words. */
async function captured(bin: string, args: string[], tag: string, how: "capture" | "proc" = "capture") {
  const r = await startProgram(bin, args);
  try {
    const img = join(dir, `${tag}.img`);
    if (how === "proc") await procImage(r.pid, img);
    else await captureProcess(r.pid, img);
    return { img, slot: BigInt(r.ready[1] === "(nil)" ? 0 : r.ready[1]), target: BigInt(r.ready[2] === "(nil)" ? 0 : r.ready[2]) };
  } finally {
    await r.stop();
  }
}

async function audit(path: string, memoryOnly = false) {
  const img = await openImage(path);
  try {
    return await auditGot(img, { memoryOnly });
  } finally {
    await img.close();
  }
}

function cli(args: string[]) {
  let out = "", err = "";
  return main(args, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), stderrIsTty: false }).then((code) => ({ code, out, err }));
}

describe("clean programs: no suspicious slot", () => {
  for (const name of Object.keys(VARIANTS)) {
    it(`hook.c built ${name} (${VARIANTS[name].join(" ")})`, async () => {
      const { img } = await captured(bins[name], [], `clean-${name}`);
      const a = await audit(img);
      expect(a.suspicious).toEqual([]);
      expect(a.slots.length).toBeGreaterThan(0);
      const exe = a.slots.filter((s) => s.modulePath === bins[name]);
      if (name === "static") {
        // static-pie: only IRELATIVE slots, each resolved to an IFUNC variant inside the executable.
        expect(a.modules).toHaveLength(1);
        expect(exe.length).toBeGreaterThan(0);
        expect(exe.every((s) => s.kind === "irelative" && s.status === "ifunc")).toBe(true);
      } else {
        const puts = exe.find((s) => s.symbol === "puts");
        expect(puts?.status).toBe("ok");
        expect(puts?.target?.module).toBe("libc.so.6");
      }
      if (name === "now") expect(exe.some((s) => s.status === "lazy")).toBe(false);
      if (name === "lazy" || name === "ibt" || name === "nopie") {
        // Functions the clean run never calls (mmap, mprotect, dlsym …) keep their lazy PLT address.
        expect(exe.some((s) => s.status === "lazy")).toBe(true);
      }
      expect((await cli(["got", img])).code).toBe(0);
    });
  }
});

describe("a program that hooks its own GOT slot for puts", () => {
  for (const name of ["lazy", "now", "ibt", "nopie"]) {
    it(`is flagged with the slot and the target (${name})`, async () => {
      const { img, slot, target } = await captured(bins[name], ["hook"], `hook-${name}`);
      expect(slot).not.toBe(0n);
      const a = await audit(img);
      expect(a.suspicious).toHaveLength(1);
      const s = a.suspicious[0];
      expect(s.slot).toBe(slot);
      expect(s.value).toBe(target);
      expect(s.symbol).toBe("puts");
      expect(s.version).toBe("GLIBC_2.2.5");
      expect(s.target?.module).toBe(`hook-${name}`);
      expect(s.target?.symbol).toBe("my_puts");
      expect(s.reason).toMatch(/does not export/);
      const r = await cli(["got", img]);
      expect(r.code).toBe(1);
      expect(r.out).toContain(`0x${slot.toString(16)}`);
      expect(r.out).toContain("my_puts");
      const json = JSON.parse((await cli(["got", "--json", img])).out) as ReturnType<typeof gotReportJson>;
      expect(json.suspicious).toBe(1);
      expect(json.slots[0]).toMatchObject({ slot: `0x${slot.toString(16)}`, value: `0x${target.toString(16)}`, symbol: "puts", status: "suspicious" });
    });
  }

  it("into libc, but not to puts: flagged as not the definition", async () => {
    const { img, slot } = await captured(bins.lazy, ["hook-libc"], "hook-libc");
    const a = await audit(img);
    expect(a.suspicious.map((s) => s.slot)).toEqual([slot]);
    expect(a.suspicious[0].target?.module).toBe("libc.so.6");
    expect(a.suspicious[0].target?.symbol).toBe("printf");
    expect(a.suspicious[0].reason).toMatch(/not to its definition/);
  });

  it("into anonymous executable memory: flagged as outside every module", async () => {
    const { img, slot, target } = await captured(bins.now, ["hook-anon"], "hook-anon");
    const a = await audit(img);
    expect(a.suspicious).toHaveLength(1);
    expect(a.suspicious[0]).toMatchObject({ slot, value: target, status: "suspicious" });
    expect(a.suspicious[0].target?.module).toBeUndefined();
    expect(a.suspicious[0].reason).toMatch(/outside every module.*anon memory \(executable\)/);
  });

  it("is flagged from the image's memory alone (no files read, PT_DYNAMIC relocated by ld.so)", async () => {
    const { img, slot } = await captured(bins.lazy, ["hook"], "hook-proc", "proc");
    const a = await audit(img, true);
    expect(a.modules.find((m) => m.name === "libc.so.6")?.source).toBe("memory");
    expect(a.suspicious.map((s) => [s.slot, s.symbol])).toEqual([[slot, "puts"]]);
    const clean = await captured(bins.lazy, [], "clean-proc", "proc");
    expect((await audit(clean.img, true)).suspicious).toEqual([]);
  });
});

describe("real programs: no false positives", () => {
  const python = `
import importlib, time
mods = """_ssl _hashlib _ctypes _sqlite3 _decimal _bz2 _lzma zlib _json _pickle _datetime _elementtree pyexpat
_csv _struct array math cmath _random _bisect _heapq select mmap _socket binascii unicodedata _multiprocessing
_posixsubprocess fcntl grp termios resource _queue _asyncio _contextvars _uuid _statistics _zoneinfo _blake2
_sha512 _sha256 _sha1 _md5 _sha3 _crypt _curses readline _dbm _lsprof _codecs_cn _codecs_jp _codecs_kr
_codecs_tw _codecs_hk _codecs_iso2022 _multibytecodec""".split()
n = 0
for m in mods:
    try:
        importlib.import_module(m); n += 1
    except Exception:
        pass
print("ready", n, flush=True)
time.sleep(1000)
`;
  const programs: [string, string, string[]][] = [
    ["python3", "python3", ["-c", python]],
    ["bash", "bash", ["-c", "echo ready; read -r line; echo $line"]],
    ["perl", "perl", ["-MPOSIX", "-MSocket", "-MStorable", "-MList::Util", "-MData::Dumper", "-e", "$| = 1; print qq(ready\\n); my $x = <STDIN>;"]],
  ];
  for (const [name, bin, args] of programs) {
    it(name, async () => {
      const r = await startProgram(bin, args);
      const img = join(dir, `${name}.img`);
      try {
        await captureProcess(r.pid, img);
      } finally {
        await r.stop();
      }
      const a = await audit(img);
      expect(a.suspicious).toEqual([]);
      if (name === "python3") expect(a.modules.length).toBeGreaterThan(50);
      expect(a.slots.filter((s) => s.status === "ok").length).toBeGreaterThan(50);
    });
  }
});

describe("scope", () => {
  it("LD_PRELOAD entries are read from the environment", () => {
    expect(preloadList(["A=1", "LD_PRELOAD=/x/libhook.so libother.so:libthird.so"])).toEqual(["/x/libhook.so", "libother.so", "libthird.so"]);
    expect(preloadList(["A=1"])).toEqual([]);
  });

  it("a library preloaded with LD_PRELOAD that interposes puts is legal", async () => {
    // A preloaded interposer (the supported way to hook puts) must not be flagged.
    const { writeFileSync } = await import("node:fs");
    const { execFileSync } = await import("node:child_process");
    const src = join(dir, "interpose.c");
    writeFileSync(src, "#include <stdio.h>\nint puts(const char *s) { fputs(s, stdout); return putchar(10); }\n");
    const so = join(dir, "libinterpose.so");
    execFileSync("gcc", ["-O2", "-shared", "-fPIC", "-o", so, src]);
    const r = await startProgram(bins.now, [], { ...process.env, LD_PRELOAD: so });
    const img = join(dir, "preload.img");
    try {
      await captureProcess(r.pid, img);
    } finally {
      await r.stop();
    }
    const a = await audit(img);
    expect(a.preload).toEqual([so]);
    expect(a.suspicious).toEqual([]);
    const puts = a.slots.find((s) => s.modulePath === bins.now && s.symbol === "puts");
    expect(puts?.target?.module).toBe("libinterpose.so");
    expect(puts?.status).toBe("ok");
    // Without the environment entry the same image's puts slot would be out of scope: check the rule bites.
    const image = await openImage(img);
    try {
      image.environ = image.environ.filter((e) => !e.startsWith("LD_PRELOAD="));
      const map = await loadModules(image);
      const b = await auditGot(map);
      expect(b.suspicious.some((s) => s.symbol === "puts" && /lookup scope/.test(s.reason ?? ""))).toBe(true);
    } finally {
      await image.close();
    }
  });
});
