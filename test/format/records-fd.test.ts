/**
 * Format 1.1 fd state records (records-fd.ts): round trips, forward compatibility, and hostile
 * payloads (fast-check): a damaged record is refused with an ImageError naming the offset,
 * never a crash, a hang or an allocation beyond the payload.
 */
import { describe, expect, test } from "vitest";
import fc from "fast-check";
import {
  FD_STATE_CODECS, FdRecordType, ImageError, addrText, encodeFdState, type FdStateRecord, type InetSocketState, type PipeState,
  type TcpStreamState, type UdpQueueState, type UnixFilesState, type UnixSocketState,
} from "../../src/format/index.js";
import { u32, u64 } from "../support/arbitraries.js";

const where = { recordType: "TEST" };

export const arbPipe: fc.Arbitrary<PipeState> = fc.record({
  type: fc.constant("pipe" as const), fd: u32, pipeId: u64, devMajor: u32, devMinor: u32,
  fifo: fc.boolean(), hasReader: fc.boolean(), hasWriter: fc.boolean(),
  pipeSize: fc.constantFrom(4096, 65536, 1 << 20), data: fc.uint8Array({ maxLength: 4096 }),
});

const sunName = fc.uint8Array({ maxLength: 108 });
export const arbUnix: fc.Arbitrary<UnixSocketState> = fc.record({
  type: fc.constant("unix" as const), fd: u32, inode: u64, socketType: fc.constantFrom("stream" as const, "dgram" as const, "seqpacket" as const),
  state: fc.constantFrom(1, 7, 10), peerInode: u64, peerInside: fc.boolean(), shutRd: fc.boolean(), shutWr: fc.boolean(),
  passcred: fc.boolean(), backlog: u32, sndbuf: u32, rcvbuf: u32, pending: u32, name: sunName, peerName: sunName,
  queue: fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
  pendingClosed: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
  inBacklog: fc.option(fc.constant(true), { nil: undefined }),
  passsec: fc.option(fc.constant(true), { nil: undefined }),
  nameGone: fc.option(fc.constant(true), { nil: undefined }),
  socketFile: fc.option(fc.record({ mode: fc.integer({ min: 1, max: 0xffffffff }), uid: u32, gid: u32 }), { nil: undefined }),
  peerCred: fc.option(fc.record({ pid: fc.integer({ min: 1, max: 0xffffffff }), uid: u32, gid: u32 }), { nil: undefined }),
  senders: fc.option(fc.array(sunName, { minLength: 8, maxLength: 8 }), { nil: undefined }),
}).map((u) => (u.pendingClosed !== undefined && u.pendingClosed > u.pending ? { ...u, pending: u.pendingClosed } : u))
  .map((u) => (u.senders ? { ...u, senders: u.senders.slice(0, u.queue.length) } : u));

const u16 = fc.integer({ min: 0, max: 0xffff });
export const arbInet: fc.Arbitrary<InetSocketState> = fc.constantFrom("ipv4" as const, "ipv6" as const).chain((family) => {
  const addr = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => addrText(family === "ipv4" ? Uint8Array.from([...b.subarray(0, 4), ...new Uint8Array(12)]) : b, family));
  return fc.record({
    type: fc.constant("inet" as const), fd: u32, inode: u64, family: fc.constant(family), protocol: fc.constantFrom("tcp" as const, "udp" as const),
    state: fc.constantFrom(1, 7, 10), localAddress: addr, localPort: u16, peerAddress: addr, peerPort: u16,
    reuseAddr: fc.boolean(), reusePort: fc.boolean(), keepAlive: fc.boolean(), noDelay: fc.boolean(), v6Only: fc.boolean(), broadcast: fc.boolean(),
    linger: fc.option(u32, { nil: undefined }), backlog: u32, sndbuf: u32, rcvbuf: u32, keepIdle: u32, keepIntvl: u32, keepCnt: u32,
    priority: fc.option(fc.integer({ min: 1, max: 0xffffffff }), { nil: undefined }), rcvLowat: fc.option(fc.integer({ min: 1, max: 0xffffffff }), { nil: undefined }),
    mark: fc.option(fc.integer({ min: 1, max: 0xffffffff }), { nil: undefined }), dontRoute: fc.option(fc.constant(true), { nil: undefined }),
    noCheck: fc.option(fc.constant(true), { nil: undefined }), oobInline: fc.option(fc.constant(true), { nil: undefined }),
    shutRd: fc.option(fc.constant(true), { nil: undefined }), shutWr: fc.option(fc.constant(true), { nil: undefined }),
    boundDevice: fc.option(fc.stringMatching(/^[a-z][a-z0-9.-]{0,14}$/), { nil: undefined }),
  });
});
export const arbTcp: fc.Arbitrary<TcpStreamState> = fc.record({
  type: fc.constant("tcp" as const), fd: u32, inode: u64, timestamps: fc.boolean(), sack: fc.boolean(), wscale: fc.boolean(),
  sndSeq: u32, rcvSeq: u32, mss: u32, sndWscale: u32, rcvWscale: u32, timestamp: u32, sndWl1: u32, sndWnd: u32, maxWindow: u32,
  rcvWnd: u32, rcvWup: u32, outq: fc.uint8Array({ maxLength: 2000 }), inq: fc.uint8Array({ maxLength: 2000 }), unsent: fc.nat(),
}).map((t) => ({ ...t, unsent: t.unsent % (t.outq.length + 1) }));

export const arbLock = fc.record({
  type: fc.constant("lock" as const), fd: u32, inode: u64, kind: fc.constantFrom("flock" as const, "posix" as const, "ofd" as const, "lease" as const),
  write: fc.boolean(), start: fc.bigInt({ min: 0n, max: 1n << 40n }), len: fc.option(fc.bigInt({ min: 0n, max: 1n << 40n }), { nil: undefined }),
}).map(({ len, ...l }) => ({ ...l, end: len === undefined ? undefined : l.start + len }));

const arbPassed = fc.record({
  message: fc.integer({ min: 0, max: 1000 }), kind: fc.constantFrom("fd" as const, "file" as const, "pipe" as const), fd: u32, openFlags: u32,
  pos: u64, inode: u64, devMajor: u32, devMinor: u32, path: fc.string({ maxLength: 40 }),
}).map((f) => (f.kind === "file" ? { ...f, path: `/${f.path}` } : f));
export const arbScm: fc.Arbitrary<UnixFilesState> = fc.record({
  type: fc.constant("scm" as const), fd: u32, inode: u64, files: fc.array(arbPassed, { minLength: 1, maxLength: 6 }),
}).map((s) => ({ ...s, files: [...s.files].sort((a, b) => a.message - b.message) }));

const arbDatagram = fc.constantFrom("ipv4" as const, "ipv6" as const).chain((family) => fc.record({
  family: fc.constant(family),
  address: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => addrText(family === "ipv4" ? Uint8Array.from([...b.subarray(0, 4), ...new Uint8Array(12)]) : b, family)),
  port: u16, data: fc.uint8Array({ maxLength: 300 }),
}));
export const arbUdpq: fc.Arbitrary<UdpQueueState> = fc.record({
  type: fc.constant("udpq" as const), fd: u32, inode: u64, datagrams: fc.array(arbDatagram, { minLength: 1, maxLength: 6 }),
});

export const arbFdState: fc.Arbitrary<FdStateRecord> = fc.oneof(arbPipe, arbUnix, arbInet, arbTcp, arbLock, arbScm, arbUdpq);

function decode(type: number, payload: Uint8Array, key32: number, key64: bigint): FdStateRecord {
  const codec = FD_STATE_CODECS.get(type);
  if (!codec) throw new Error(`no codec for ${type}`);
  return codec.decode(payload, 1000, where, key32, key64);
}

describe("fd state records", () => {
  test("round trip through encodeFdState and the reader's codec", () => {
    fc.assert(fc.property(arbFdState, (s) => {
      const e = encodeFdState(s);
      expect(decode(e.type, e.payload, e.key32, e.key64)).toEqual(s);
    }));
  });

  test("INET_SOCKET: addresses print as people write them", () => {
    expect(addrText(Uint8Array.from([127, 0, 0, 1, ...new Uint8Array(12)]), "ipv4")).toBe("127.0.0.1");
    expect(addrText(Uint8Array.from([...new Uint8Array(15), 1]), "ipv6")).toBe("::1");
    expect(addrText(Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...new Uint8Array(11), 1]), "ipv6")).toBe("2001:db8::1");
    expect(addrText(new Uint8Array(16), "ipv6")).toBe("::");
  });

  test("UNIX_SOCKET: a queue_count beyond the payload is refused before any allocation", () => {
    const e = encodeFdState({ type: "unix", fd: 3, inode: 5n, socketType: "dgram", state: 7, peerInode: 0n, peerInside: false, shutRd: false, shutWr: false, passcred: false, backlog: 0, sndbuf: 0, rcvbuf: 0, pending: 0, name: new Uint8Array(0), peerName: new Uint8Array(0), queue: [] });
    new DataView(e.payload.buffer).setUint32(44, 0xffffffff, true);
    expect(() => decode(FdRecordType.UNIX_SOCKET, e.payload, 3, 5n)).toThrow(/queue_count/);
  });

  test("INET_SOCKET: 96- and 112-byte records (before the options, before bound_dev) still read; a bound_dev without its NUL is refused", () => {
    const s: InetSocketState = {
      type: "inet", fd: 4, inode: 77n, family: "ipv4", protocol: "tcp", state: 7, localAddress: "0.0.0.0", localPort: 0, peerAddress: "0.0.0.0", peerPort: 0,
      reuseAddr: false, reusePort: false, keepAlive: false, noDelay: false, v6Only: false, broadcast: false, linger: undefined,
      backlog: 0, sndbuf: 0, rcvbuf: 0, keepIdle: 0, keepIntvl: 0, keepCnt: 0, mark: 9, boundDevice: "lo",
    };
    const e = encodeFdState(s);
    expect(e.payload.length).toBe(128);
    const older = (size: number) => {
      const p = e.payload.slice(0, size);
      new DataView(p.buffer).setUint32(0, size, true);
      return decode(FdRecordType.INET_SOCKET, p, 4, 77n) as InetSocketState;
    };
    expect(older(112)).toEqual({ ...s, boundDevice: undefined });
    expect(older(96)).toEqual({ ...s, boundDevice: undefined, mark: undefined });
    const unterminated = e.payload.slice();
    unterminated.fill(0x61, 112, 128);
    expect(() => decode(FdRecordType.INET_SOCKET, unterminated, 4, 77n)).toThrow(/bound_dev is not NUL-terminated/);
  });

  test("a larger fixed_size (fields of a later minor version) is skipped", () => {
    fc.assert(fc.property(arbFdState, fc.uint8Array({ minLength: 1, maxLength: 32 }), (s, extra) => {
      const e = encodeFdState(s);
      const fixed = new DataView(e.payload.buffer).getUint32(0, true);
      const grown = new Uint8Array(e.payload.length + extra.length);
      grown.set(e.payload.subarray(0, fixed));
      grown.set(extra, fixed);
      grown.set(e.payload.subarray(fixed), fixed + extra.length);
      new DataView(grown.buffer).setUint32(0, fixed + extra.length, true);
      expect(decode(e.type, grown, e.key32, e.key64)).toEqual(s);
    }));
  });

  test("hostile payloads: only ImageError (BAD_FIELD or TRUNCATED) with an offset inside the record", () => {
    const types = [...FD_STATE_CODECS.keys()];
    fc.assert(fc.property(fc.constantFrom(...types), fc.uint8Array({ maxLength: 200 }), (type, junk) => {
      try {
        decode(type, junk, 3, 0n);
      } catch (err) {
        expect(err).toBeInstanceOf(ImageError);
        expect(["BAD_FIELD", "TRUNCATED"]).toContain((err as ImageError).code);
        expect((err as ImageError).offset).toBeGreaterThanOrEqual(1000);
        expect((err as ImageError).offset).toBeLessThanOrEqual(1000 + Math.max(junk.length, 4));
      }
    }), { numRuns: 2000 });
  });

  test("mutations of valid records: decoded or refused, never anything else", () => {
    fc.assert(fc.property(arbFdState, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat(), (s, flips, cut) => {
      const e = encodeFdState(s);
      const bad = e.payload.slice(0, e.payload.length - (cut % 8));
      for (const [at, v] of flips) if (bad.length) bad[at % bad.length] = v;
      try {
        decode(e.type, bad, e.key32, e.key64);
      } catch (err) {
        expect(err).toBeInstanceOf(ImageError);
      }
    }), { numRuns: 2000 });
  });

  test("UNIX_SOCKET: a 64-byte record (before the socket file fields) still reads; pending_closed above pending is refused", () => {
    const s: UnixSocketState = { type: "unix", fd: 3, inode: 5n, socketType: "stream", state: 10, peerInode: 0n, peerInside: false, shutRd: false, shutWr: false, passcred: false, backlog: 4, sndbuf: 0, rcvbuf: 0, pending: 2, pendingClosed: 1, name: Uint8Array.of(47, 120), peerName: new Uint8Array(0), queue: [], socketFile: { mode: 0o140640, uid: 7, gid: 8 } };
    const e = encodeFdState(s);
    const old = new Uint8Array(e.payload.length - 32);
    old.set(e.payload.subarray(0, 64));
    old.set(e.payload.subarray(96), 64);
    new DataView(old.buffer).setUint32(0, 64, true);
    const { socketFile: _f, ...rest } = s;
    expect(decode(FdRecordType.UNIX_SOCKET, old, 3, 5n)).toEqual(rest);
    // an 80-byte record (before the peer credentials): the socket file, no peerCred
    const withCred = encodeFdState({ ...s, peerCred: { pid: 77, uid: 1, gid: 2 } });
    expect(decode(FdRecordType.UNIX_SOCKET, withCred.payload, 3, 5n)).toEqual({ ...s, peerCred: { pid: 77, uid: 1, gid: 2 } });
    const mid = new Uint8Array(withCred.payload.length - 16);
    mid.set(withCred.payload.subarray(0, 80));
    mid.set(withCred.payload.subarray(96), 80);
    new DataView(mid.buffer).setUint32(0, 80, true);
    expect(decode(FdRecordType.UNIX_SOCKET, mid, 3, 5n)).toEqual(s);
    new DataView(e.payload.buffer).setUint32(52, 3, true);
    expect(() => decode(FdRecordType.UNIX_SOCKET, e.payload, 3, 5n)).toThrow(/pending_closed 3 exceeds pending/);
  });

  test("UDP_QUEUE: an unknown source family, a datagram past the payload or over 64 KiB, a wrong inode are refused", () => {
    const s: UdpQueueState = { type: "udpq", fd: 5, inode: 9n, datagrams: [{ family: "ipv4", address: "127.0.0.1", port: 4000, data: Uint8Array.of(1, 2, 3) }] };
    const e = encodeFdState(s);
    expect(e.type).toBe(FdRecordType.UDP_QUEUE);
    expect(decode(e.type, e.payload, 5, 9n)).toEqual(s);
    expect(() => decode(e.type, e.payload, 5, 8n)).toThrow(/differs from the index key/);
    const fam = e.payload.slice();
    new DataView(fam.buffer).setUint32(24, 1, true);
    expect(() => decode(e.type, fam, 5, 9n)).toThrow(/source family 1/);
    const long = e.payload.slice();
    new DataView(long.buffer).setUint32(24 + 24, 4, true);
    expect(() => decode(e.type, long, 5, 9n)).toThrow(ImageError);
    new DataView(long.buffer).setUint32(24 + 24, 70000, true);
    expect(() => decode(e.type, long, 5, 9n)).toThrow(/length 70000/);
  });

  test("UNIX_FILES: out-of-order messages, unknown kinds, relative paths, a count beyond the payload and a wrong inode are refused", () => {
    const s: UnixFilesState = { type: "scm", fd: 4, inode: 77n, files: [
      { message: 0, kind: "fd", fd: 9, openFlags: 2, pos: 0n, inode: 5n, devMajor: 0, devMinor: 1, path: "/tmp/a" },
      { message: 2, kind: "file", fd: 0, openFlags: 0, pos: 5n, inode: 6n, devMajor: 0, devMinor: 1, path: "/tmp/b" },
    ] };
    const e = encodeFdState(s);
    expect(e.type).toBe(FdRecordType.UNIX_FILES);
    expect(decode(e.type, e.payload, 4, 77n)).toEqual(s);
    expect(() => decode(e.type, e.payload, 4, 78n)).toThrow(/differs from the index key/);
    const second = 24 + 40 + 4 + 6;          // FIXED, first entry and its path
    const swapped = e.payload.slice();
    new DataView(swapped.buffer).setUint32(24, 3, true);
    expect(() => decode(e.type, swapped, 4, 77n)).toThrow(/message 2 after message 3/);
    const kind = e.payload.slice();
    new DataView(kind.buffer).setUint32(second + 4, 9, true);
    expect(() => decode(e.type, kind, 4, 77n)).toThrow(/kind 9/);
    const rel = e.payload.slice();
    rel[second + 40 + 4] = "x".charCodeAt(0);
    expect(() => decode(e.type, rel, 4, 77n)).toThrow(/absolute path/);
    const many = e.payload.slice();
    new DataView(many.buffer).setUint32(4, 1_000_000, true);
    expect(() => decode(e.type, many, 4, 77n)).toThrow(/count 1000000/);
  });

  test("PIPE: data longer than the pipe is refused naming data_length", () => {
    const e = encodeFdState({ type: "pipe", fd: 3, pipeId: 9n, devMajor: 0, devMinor: 14, fifo: false, hasReader: true, hasWriter: true, pipeSize: 4096, data: new Uint8Array(10) });
    const v = new DataView(e.payload.buffer);
    v.setUint32(16, 0, true);           // pipe_size 0: 10 bytes still fit the 64 KiB default
    expect(() => decode(FdRecordType.PIPE, e.payload, 3, 9n)).not.toThrow();
    v.setUint32(20, 1 << 20, true);     // data_length beyond the payload
    expect(() => decode(FdRecordType.PIPE, e.payload, 3, 9n)).toThrow(/data_length|PIPE data/);
  });
});
