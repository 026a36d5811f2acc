/**
 * CRIU dump → ckimg image (`ckimg convert CRIU_DIR|ARCHIVE -o IMG`). The CriuImage already
 * holds ckimg's model of one process; this writes it with ImageWriter (pages compressed per
 * chunk) and lists what ckimg's format cannot hold, so nothing is dropped silently.
 */
import { ImageWriter } from "../format/writer.js";
import { CODEC, type CodecId } from "../format/codecs.js";
import { RecordType } from "../format/raw.js";
import { encodeProcess } from "../format/records.js";
import { fd_types } from "./gen/fdinfo_pb.js";
import type { CriuImage } from "./image.js";

export interface ConversionReport {
  output: string;
  bytes: number;
  pages: number;
  /** what the source holds that the target cannot express (one line each) */
  notCarried: string[];
}

export interface ToCkimgOptions {
  codec?: CodecId;
  durable?: boolean;
}

export async function criuToCkimg(img: CriuImage, out: string, opts: ToCkimgOptions = {}): Promise<ConversionReport> {
  const notCarried = lostInCkimg(img);
  const w = await ImageWriter.create(out, { codec: opts.codec ?? CODEC.LZ4, durable: opts.durable ?? true, createdNs: BigInt(Date.now()) * 1_000_000n });
  let pages = 0;
  try {
    // CRIU records no capture time; the image's PROCESS says 0 (unknown) rather than inventing one.
    await w.writeRecord(RecordType.PROCESS, encodeProcess(img.process));
    await w.addArgv(img.argv);
    await w.addEnviron(img.environ);
    await w.addAuxv(img.auxv);
    await w.addRlimits(img.rlimits);
    await w.addSigactions(img.sigactions);
    for (const t of img.threads) await w.addThread({ ...t, state: t.state === "?" ? "S" : t.state });
    for (const f of img.files) await w.addMappedFile(f);
    for (const f of img.fds) await w.addFd(f);
    for (const a of img.areas) await w.addArea(a);
    for (const a of img.areas) {
      for (const ref of img.chunksByArea.get(a.id) ?? []) {
        const { header, raw } = await img.readChunk(ref);
        await w.addPagesChunk(a.id, header.firstPage, header.spanPages, header.bitmap, raw);
        pages += header.storedPages;
      }
    }
    const summary = await w.finish();
    return { output: out, bytes: summary.bytes, pages, notCarried };
  } catch (err) {
    await w.abort();
    throw err;
  }
}

/** What a ckimg 1.0 image of this process cannot hold. */
export function lostInCkimg(img: CriuImage): string[] {
  const lost: string[] = [];
  const dump = img.dump, p = img.criuProcess;
  const others = dump.processes.filter((x) => x.pid !== p.pid);
  if (others.length) lost.push(`${others.length} other process(es) of the tree (${others.map((x) => x.pid).join(", ")}): one image holds one process (convert each with --pid)`);
  for (const fd of p.fds) {
    const f = dump.files.get(fd.id);
    if (fd.type === fd_types.UNIXSK || fd.type === fd_types.INETSK || fd.type === fd_types.PACKETSK || fd.type === fd_types.NETLINKSK) {
      lost.push(`fd ${fd.fd}: socket state (${fd_types[fd.type]}${f?.isk ? ` port ${f.isk.srcPort}` : ""}) — recorded as a socket fd only`);
    } else if (fd.type === fd_types.PIPE) {
      lost.push(`fd ${fd.fd}: pipe ${f?.pipe?.pipeId} (its other end and buffered data) — recorded as a fifo fd only`);
    } else if (fd.type !== fd_types.REG) {
      lost.push(`fd ${fd.fd}: ${fd_types[fd.type] ?? fd.type} object state`);
    }
  }
  if (dump.images.some((f) => f.name === "pipes-data.img" && f.size > 8)) lost.push("buffered pipe data (pipes-data.img)");
  if (dump.images.some((f) => f.name === "sk-queues.img" && f.size > 8)) lost.push("queued socket data (sk-queues.img)");
  const tc = p.core.tc;
  const armed = (t: { isec: bigint; iusec: bigint; vsec: bigint; vusec: bigint } | undefined) => !!t && (t.isec || t.iusec || t.vsec || t.vusec) !== 0n;
  if (tc?.timers && (tc.timers.posix.length || armed(tc.timers.real) || armed(tc.timers.virt) || armed(tc.timers.prof))) lost.push("armed interval or POSIX timers");
  const creds = p.core.threadCore?.creds;
  if (creds && (creds.capEff.length || creds.groups.length)) lost.push("capabilities, securebits and supplementary groups");
  if (p.core.threadCore?.seccompMode) lost.push("seccomp mode and filters");
  if (tc?.childSubreaper) lost.push("child-subreaper flag");
  if (p.ids) lost.push("namespace, cgroup and mount membership (ids, mnts, cgroup images)");
  for (const t of p.threads) {
    const tcore = p.cores.get(t)?.threadCore;
    if (tcore?.rseqEntry?.rseqAbiPointer) {
      lost.push("rseq registrations (the threads re-register on their next glibc call)");
      break;
    }
  }
  return lost;
}
