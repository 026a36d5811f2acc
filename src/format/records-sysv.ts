/**
 * Format 1.2 SysV IPC objects (docs/FORMAT.md "SysV IPC"): SYSV_SHM (a shared memory segment a
 * process attaches; its bytes are the pages of the SHMEM areas whose inode is the shmid),
 * SYSV_SEM (a semaphore set and its values), SYSV_MSG (a message queue and its messages).
 * Written by the root of a tree (they belong to the IPC namespace). Decoders check the whole
 * shape (hostile input); encoders write it.
 */
import { ByteReader, ByteWriter } from "./bytes.js";
import type { ImageErrorWhere } from "./errors.js";

export const SYSV_SHM_FIXED_SIZE = 48;
export const SYSV_SEM_FIXED_SIZE = 40;
export const SYSV_MSG_FIXED_SIZE = 48;
/** SYSV_SHM flags: IPC_RMID was done; the segment goes with its last detach */
export const SYSV_REMOVED = 1 << 0;
/** The kernel's SEMMSL ceiling (semaphores per set) */
export const SYSV_MAX_SEMS = 32000;

export interface SysvPerm {
  id: number;
  /** 0: IPC_PRIVATE */
  key: number;
  /** permission bits (0o777) */
  mode: number;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
}

export interface SysvShmRecord extends SysvPerm {
  size: bigint;
  removed: boolean;
}

export interface SysvSemRecord extends SysvPerm {
  /** per semaphore: its value and the pid of the last operation on it */
  sems: { value: number; pid: number }[];
}

export interface SysvMsgRecord extends SysvPerm {
  /** msg_qbytes: the queue's byte limit */
  qbytes: bigint;
  /** oldest first */
  messages: { type: bigint; data: Uint8Array }[];
}

export interface SysvObjects {
  shm: SysvShmRecord[];
  sem: SysvSemRecord[];
  msg: SysvMsgRecord[];
}

function perm(r: ByteReader): SysvPerm {
  r.pos = 4;
  const id = r.u32(), key = r.u32(), mode = r.u32() & 0o777, uid = r.u32(), gid = r.u32(), cuid = r.u32(), cgid = r.u32();
  if (id > 0x7fffffff) r.fail("BAD_FIELD", `SysV id ${id} out of range`, 4);
  return { id, key, mode, uid, gid, cuid, cgid };
}

function putPerm(w: ByteWriter, fixed: number, p: SysvPerm): void {
  w.u32(fixed).u32(p.id).u32(p.key).u32(p.mode).u32(p.uid).u32(p.gid).u32(p.cuid).u32(p.cgid);
}

export function decodeSysvShm(payload: Uint8Array, base: number, where: ImageErrorWhere): SysvShmRecord {
  const r = new ByteReader(payload, base, where);
  r.fixedSize(SYSV_SHM_FIXED_SIZE, "SYSV_SHM");
  const p = perm(r);
  const size = r.u64At(32);
  if (size === 0n || size > 1n << 48n) r.fail("BAD_FIELD", `SYSV_SHM ${p.id}: size ${size} out of range`, 32);
  return { ...p, size, removed: (r.u32At(40) & SYSV_REMOVED) !== 0 };
}

export function encodeSysvShm(s: SysvShmRecord): Uint8Array {
  const w = new ByteWriter();
  putPerm(w, SYSV_SHM_FIXED_SIZE, s);
  return w.u64(s.size).u32(s.removed ? SYSV_REMOVED : 0).u32(0).finish();
}

export function decodeSysvSem(payload: Uint8Array, base: number, where: ImageErrorWhere): SysvSemRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(SYSV_SEM_FIXED_SIZE, "SYSV_SEM");
  const p = perm(r);
  const n = r.u32At(32);
  if (n === 0 || n > SYSV_MAX_SEMS || n * 8 !== payload.length - fixed) {
    r.fail("BAD_FIELD", `SYSV_SEM ${p.id}: ${n} semaphores in ${payload.length - fixed} bytes`, 32);
  }
  r.pos = fixed;
  const sems: SysvSemRecord["sems"] = [];
  for (let i = 0; i < n; i++) {
    const value = r.u16();
    r.u16();
    sems.push({ value, pid: r.u32() });
  }
  return { ...p, sems };
}

export function encodeSysvSem(s: SysvSemRecord): Uint8Array {
  const w = new ByteWriter();
  putPerm(w, SYSV_SEM_FIXED_SIZE, s);
  w.u32(s.sems.length).u32(0);
  for (const x of s.sems) w.u16(x.value).u16(0).u32(x.pid);
  return w.finish();
}

export function decodeSysvMsg(payload: Uint8Array, base: number, where: ImageErrorWhere): SysvMsgRecord {
  const r = new ByteReader(payload, base, where);
  const fixed = r.fixedSize(SYSV_MSG_FIXED_SIZE, "SYSV_MSG");
  const p = perm(r);
  const qbytes = r.u64At(32);
  const count = r.u32At(40);
  if (count * 12 > payload.length - fixed) r.fail("BAD_FIELD", `SYSV_MSG ${p.id}: count ${count} exceeds the payload`, 40, "P2");
  r.pos = fixed;
  const messages: SysvMsgRecord["messages"] = [];
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    r.need(8, "mtype");
    const type = r.view.getBigInt64(r.pos, true);
    r.pos += 8;
    if (type <= 0n) r.fail("BAD_FIELD", `SYSV_MSG ${p.id}: message ${i} has type ${type} (must be > 0)`, at);
    const len = r.u32();
    messages.push({ type, data: r.bytesView(len, `message ${i}`) });
  }
  if (r.pos !== payload.length) r.fail("BAD_FIELD", `SYSV_MSG ${p.id}: ${payload.length - r.pos} bytes after the last message`, r.pos);
  return { ...p, qbytes, messages };
}

export function encodeSysvMsg(s: SysvMsgRecord): Uint8Array {
  const w = new ByteWriter();
  putPerm(w, SYSV_MSG_FIXED_SIZE, s);
  w.u64(s.qbytes).u32(s.messages.length).u32(0);
  for (const m of s.messages) {
    const t = new Uint8Array(8);
    new DataView(t.buffer).setBigInt64(0, m.type, true);
    w.bytes(t).u32(m.data.length).bytes(m.data);
  }
  return w.finish();
}
