/**
 * Container checkpoint archives (Podman `container checkpoint --export`, CRI-O / Kubernetes
 * forensic checkpoints), read in place: `.tar`, `.tar.gz` or `.tar.zst`, never unpacked to disk.
 *
 * Layout (docs/CRIU.md, after checkpointctl's lib/metadata.go and Podman's exportCheckpoint):
 *
 *     checkpoint/          CRIU's image directory (inventory.img, pstree.img, pages-*.img …)
 *     config.dump          engine's container config (JSON: id, name, rootfsImageName, runtime, createdTime)
 *     spec.dump            the OCI runtime spec (JSON; annotations name the engine)
 *     network.status       CNI/netavark result (JSON)
 *     stats-dump           CRIU's dump statistics (also inside checkpoint/ for CRI-O)
 *     rootfs-diff.tar      files the container changed in its root fs
 *     deleted.files        files the container deleted (JSON list)
 *     devshm-checkpoint.tar, bind.mounts, dump.log, pod.dump, pod.options (pod archives)
 *
 * One streaming pass with tar-stream builds the index: every entry's name, size and data offset
 * in the decompressed stream, and the bytes of the small metadata files. Page files are read
 * later by range: straight from the file for an uncompressed tar, through a re-positionable
 * decompressing cursor plus a block cache for compressed ones.
 */
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { Readable, Transform } from "node:stream";
import { createGunzip } from "node:zlib";
import { Decompress as ZstdDecompress } from "fzstd";
import tar from "tar-stream";
import { ImageError } from "../format/errors.js";
import { MAX_METADATA_FILE } from "./raw.js";
import { openCriuDump, type CriuImage, type CriuOpenOptions } from "./image.js";
import { readCriuSource } from "./open.js";
import type { DumpSource } from "./source.js";

export type Compression = "none" | "gzip" | "zstd";

export interface ArchiveEntry {
  name: string;
  size: number;
  /** offset of the data in the decompressed stream */
  dataOffset: number;
  type: string;
}

/** What checkpointctl shows of a container checkpoint, from config.dump and spec.dump. */
export interface ContainerInfo {
  /** container, pod or kubelet archive (checkpointctl's DetectCheckpointArchiveType) */
  archiveKind: "container" | "pod" | "kubelet" | "unknown";
  engine: string;
  name: string;
  id: string;
  image: string;
  runtime: string;
  created: string;
  namespace: string;
  pod: string;
  ip: string;
  /** bytes of checkpoint/ (CRIU's images), of its pages files, and of rootfs-diff.tar */
  checkpointSize: number;
  pagesSize: number;
  rootfsDiffSize: number;
  /** the archive's compression */
  compression: Compression;
  /** entries skipped because their names are unsafe (absolute, "..") */
  rejectedEntries: string[];
}

const METADATA_FILES = new Set(["config.dump", "spec.dump", "network.status", "stats-dump", "deleted.files", "pod.dump", "pod.options", "checkpointed.pods"]);
const BLOCK = 1 << 20;
const BLOCK_CACHE = 64;

export function compressionOf(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  return "none";
}

/** fzstd's streaming decoder as a Node Transform. */
function zstdStream(): Transform {
  let out: Transform;
  const dec = new ZstdDecompress((chunk) => out.push(chunk));
  out = new Transform({
    transform(chunk: Buffer, _enc, done) {
      try {
        dec.push(chunk);
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done) {
      try {
        dec.push(new Uint8Array(0), true);
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
  return out;
}

function decompressedStream(path: string, compression: Compression): Readable {
  const file = createReadStream(path, { highWaterMark: 1 << 20 });
  if (compression === "none") return file;
  const dec = compression === "gzip" ? createGunzip({ chunkSize: 1 << 20 }) : zstdStream();
  file.on("error", (err) => dec.destroy(err));
  return file.pipe(dec);
}

/**
 * Zeros standing in for skipped entry data, 8 MiB per piece: the parser only slices them
 * (tar-stream hands entry data on as subarrays) and the entry discards them, so a 1 GiB page
 * file goes through the parser as 128 pieces instead of 1024. Not bigger: V8 answers 64 MiB of
 * fresh external memory with a full garbage collection (~30 ms, more than the pieces save).
 */
const ZERO_PIECE = 8 << 20;
let zeros: Buffer | undefined;

/**
 * Reads of a plain tar while indexing: headers and metadata files are small, and what a read
 * takes past them is the head of a page file, read and parsed for nothing before the skip
 * starts (with 1 MiB reads, most of the 2 MiB an `inspect` of a .tar read).
 */
const TAR_READ = 64 << 10;

/** The bytes of a plain tar, except that ranges before `skip.until` come as zeros unread. */
function plainTarInput(path: string, size: number, skip: { until: number }): Readable {
  return Readable.from((async function* () {
    const fh = await open(path, "r");
    try {
      for (let pos = 0; pos < size;) {
        if (skip.until > pos) {
          const n = Math.min(ZERO_PIECE, skip.until - pos);
          pos += n;
          zeros ??= Buffer.alloc(ZERO_PIECE);
          yield zeros.subarray(0, n);
          continue;
        }
        const buf = Buffer.allocUnsafe(Math.min(TAR_READ, size - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  })(), { objectMode: false });
}

/** Names are data, not paths: refuse absolute names and ".." components (never written anyway). */
/** "" for the archive's root entry ("./"), undefined for an unsafe name. */
function safeName(raw: string): string | undefined {
  const name = raw.replace(/^(\.\/)+/, "");
  if (name === "" || name === ".") return "";
  if (name.startsWith("/") || name.split("/").some((c) => c === "..") || name.includes("\0")) return undefined;
  return name.replace(/\/+$/, "");
}

function archiveError(path: string, err: unknown): ImageError {
  if (err instanceof ImageError) return err;
  const msg = (err as Error)?.message ?? String(err);
  const truncated = /unexpected end|premature|truncated|end of data/i.test(msg);
  return new ImageError(truncated ? "TRUNCATED" : "BAD_RECORD", `damaged archive: ${msg}`, { file: path });
}

export class CheckpointArchive {
  readonly entries = new Map<string, ArchiveEntry>();
  /** small metadata files kept from the indexing pass */
  readonly metadata = new Map<string, Uint8Array>();
  readonly rejected: string[] = [];
  size = 0;
  compression: Compression = "none";

  private constructor(readonly path: string) {}

  /** Index the archive in one streaming pass. */
  static async open(path: string): Promise<CheckpointArchive> {
    const a = new CheckpointArchive(path);
    const fh = await open(path, "r").catch((err) => {
      throw new ImageError("IO", `cannot open: ${(err as Error).message}`, { file: path });
    });
    try {
      const head = new Uint8Array(4);
      await fh.read(head, 0, 4, 0);
      a.compression = compressionOf(head);
      a.size = (await fh.stat()).size;
    } finally {
      await fh.close();
    }
    await a.index();
    return a;
  }

  private async index(): Promise<void> {
    const extract = tar.extract();
    // A plain .tar need not be read through: once an entry's header is seen, its data (the
    // page files are nearly all of an archive) is fed to the parser as zeros it discards, and
    // reading resumes after it. Compressed archives must be decompressed through anyway.
    const skip = { until: 0 };
    const input = this.compression === "none" ? plainTarInput(this.path, this.size, skip) : decompressedStream(this.path, this.compression);
    input.on("error", (err) => extract.destroy(err));
    input.pipe(extract as unknown as NodeJS.WritableStream);
    try {
      for await (const entry of extract) {
        const header = entry.header as tar.Header & { byteOffset?: number };
        const name = safeName(header.name);
        if (name === "") {
          entry.resume();
          continue;
        }
        if (name === undefined) {
          this.rejected.push(header.name);
          entry.resume();
          continue;
        }
        if (header.type !== "file" && header.type !== "contiguous-file") {
          entry.resume();
          continue;
        }
        if (typeof header.byteOffset !== "number") throw new ImageError("BAD_RECORD", "tar reader gave no data offset", { file: this.path });
        this.entries.set(name, { name, size: header.size ?? 0, dataOffset: header.byteOffset, type: header.type });
        const base = name.startsWith("checkpoint/") ? name.slice("checkpoint/".length) : undefined;
        const keep = (METADATA_FILES.has(name) || (base !== undefined && !base.startsWith("pages-") && !base.includes("/"))) && (header.size ?? 0) <= MAX_METADATA_FILE;
        if (keep) {
          const parts: Buffer[] = [];
          for await (const chunk of entry) parts.push(chunk as Buffer);
          this.metadata.set(name, new Uint8Array(Buffer.concat(parts)));
        } else {
          if (header.size > BLOCK) skip.until = Math.min(header.byteOffset + header.size, this.size);
          entry.resume();
          await new Promise<void>((resolve, reject) => {
            entry.on("end", resolve);
            entry.on("error", reject);
          });
        }
      }
    } catch (err) {
      input.destroy();
      throw archiveError(this.path, err);
    }
  }

  private rootfs: Map<string, { offset: number; size: number }> | undefined;

  /**
   * The regular files of rootfs-diff.tar (the files the container changed), by absolute path,
   * indexed on first use by streaming the inner tar; their bytes are read by range.
   */
  async rootfsFiles(): Promise<Map<string, { offset: number; size: number }>> {
    if (this.rootfs) return this.rootfs;
    const files = new Map<string, { offset: number; size: number }>();
    const e = this.entries.get("rootfs-diff.tar");
    if (e) {
      const extract = tar.extract();
      const self = this;
      const input = Readable.from((async function* () {
        for (let o = 0; o < e.size; o += BLOCK) yield Buffer.from(await self.readEntry("rootfs-diff.tar", o, Math.min(BLOCK, e.size - o)));
      })(), { objectMode: false });
      input.on("error", (err) => extract.destroy(err));
      input.pipe(extract as unknown as NodeJS.WritableStream);
      try {
        for await (const entry of extract) {
          const h = entry.header as tar.Header & { byteOffset?: number };
          const name = safeName(h.name);
          if (name && (h.type === "file" || h.type === "contiguous-file") && typeof h.byteOffset === "number") files.set("/" + name, { offset: h.byteOffset, size: h.size ?? 0 });
          entry.resume();
        }
      } catch (err) {
        input.destroy();
        throw archiveError(`${this.path}:rootfs-diff.tar`, err);
      }
    }
    this.rootfs = files;
    return files;
  }

  /** The CRIU images of `checkpoint/` as a DumpSource. */
  checkpointSource(): ArchiveDumpSource {
    return new ArchiveDumpSource(this, "checkpoint/");
  }

  json(name: string): unknown {
    const bytes = this.metadata.get(name);
    if (!bytes) return undefined;
    try {
      return JSON.parse(Buffer.from(bytes).toString("utf8"));
    } catch {
      throw new ImageError("BAD_RECORD", `${name} is not valid JSON`, { file: `${this.path}:${name}` });
    }
  }

  containerInfo(): ContainerInfo {
    const config = (this.json("config.dump") ?? {}) as Record<string, unknown>;
    const spec = (this.json("spec.dump") ?? {}) as { annotations?: Record<string, string> };
    const ann = spec.annotations ?? {};
    const str = (v: unknown) => (typeof v === "string" ? v : "");
    let sizes = { checkpoint: 0, pages: 0, rootfs: 0 };
    for (const e of this.entries.values()) {
      if (e.name.startsWith("checkpoint/")) {
        sizes.checkpoint += e.size;
        if (e.name.startsWith("checkpoint/pages-")) sizes.pages += e.size;
      } else if (e.name === "rootfs-diff.tar") sizes.rootfs = e.size;
    }
    const has = (n: string) => this.entries.has(n);
    const archiveKind = has("checkpointed.pods") ? "kubelet" : has("pod.dump") && !has("config.dump") ? "pod" : has("config.dump") ? "container" : "unknown";
    const info: ContainerInfo = {
      archiveKind, engine: "", name: str(config.name), id: str(config.id), image: str(config.rootfsImageName),
      runtime: str(config.runtime), created: str(config.createdTime), namespace: "", pod: "", ip: "",
      checkpointSize: sizes.checkpoint, pagesSize: sizes.pages, rootfsDiffSize: sizes.rootfs,
      compression: this.compression, rejectedEntries: this.rejected,
    };
    // The engine is named by the spec's annotations, as checkpointctl's getContainerInfo reads them.
    switch (ann["io.container.manager"]) {
      case "libpod":
        info.engine = "Podman";
        break;
      case "cri-o": {
        info.engine = "CRI-O";
        try {
          info.name = str((JSON.parse(ann["io.kubernetes.cri-o.Metadata"] ?? "{}") as { name?: unknown }).name) || info.name;
        } catch {
          // a damaged annotation leaves the name from config.dump
        }
        info.created = ann["io.kubernetes.cri-o.Created"] ?? info.created;
        info.ip = ann["io.kubernetes.cri-o.IP.0"] ?? "";
        info.namespace = ann["io.kubernetes.pod.namespace"] ?? "";
        info.pod = ann["io.kubernetes.pod.name"] ?? "";
        break;
      }
      default:
        if (ann["io.kubernetes.cri.container-name"]) {
          info.engine = "containerd";
          info.name = ann["io.kubernetes.cri.container-name"];
          info.namespace = ann["io.kubernetes.cri.sandbox-namespace"] ?? "";
          info.pod = ann["io.kubernetes.cri.sandbox-name"] ?? "";
        } else info.engine = archiveKind === "unknown" ? "" : "unknown";
    }
    return info;
  }

  // ---------------------------------------------------------------------------------------
  // Random access to entry data

  private handle: import("node:fs/promises").FileHandle | undefined;
  private readonly blocks = new Map<string, Uint8Array>();
  private cursor: DataCursor | undefined;

  /** `length` bytes at `offset` of entry `name`. */
  async readEntry(name: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const e = this.entries.get(name);
    if (!e) throw new ImageError("MISSING_RECORD", "no such entry in the archive", { file: `${this.path}:${name}` });
    if (offset < 0 || length < 0 || offset + length > e.size) {
      throw new ImageError("TRUNCATED", `read of ${length} bytes runs past the end of the ${e.size}-byte entry`, { file: `${this.path}:${name}`, offset });
    }
    const kept = this.metadata.get(name);
    if (kept) return kept.slice(offset, offset + length);
    if (this.compression === "none") return this.readPlain(e.dataOffset + offset, length, into);
    const out = into ? into.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const at = e.dataOffset + offset + done;
      const blockStart = at - (at % BLOCK);
      const block = await this.block(blockStart);
      const from = at - blockStart;
      const n = Math.min(length - done, block.length - from);
      if (n <= 0) throw new ImageError("TRUNCATED", "archive ended inside an entry", { file: `${this.path}:${name}`, offset: offset + done });
      out.set(block.subarray(from, from + n), done);
      done += n;
    }
    return out;
  }

  private async readPlain(at: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    this.handle ??= await open(this.path, "r");
    const buf = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.handle.read(buf, got, length - got, at + got);
      if (bytesRead === 0) throw new ImageError("TRUNCATED", "archive shrank while reading", { file: this.path, offset: at + got });
      got += bytesRead;
    }
    return buf;
  }

  /** One BLOCK of the decompressed stream, from the cache or the cursor (restarted when behind). */
  private async block(start: number): Promise<Uint8Array> {
    const key = String(start);
    const hit = this.blocks.get(key);
    if (hit) {
      this.blocks.delete(key);
      this.blocks.set(key, hit);
      return hit;
    }
    if (!this.cursor || this.cursor.position > start) {
      this.cursor?.close();
      this.cursor = new DataCursor(decompressedStream(this.path, this.compression));
    }
    await this.cursor.skipTo(start);
    // Reuse the evicted block's memory: fresh pages cost a fault each on first touch.
    let reuse: Uint8Array | undefined;
    if (this.blocks.size >= BLOCK_CACHE) {
      const oldest = this.blocks.keys().next().value as string;
      reuse = this.blocks.get(oldest);
      this.blocks.delete(oldest);
    }
    // Whole blocks (fewer bytes only at the stream's end): a block serves every entry it overlaps.
    const block = await this.cursor.take(BLOCK, reuse && reuse.buffer.byteLength - reuse.byteOffset >= BLOCK ? new Uint8Array(reuse.buffer, reuse.byteOffset, BLOCK) : undefined);
    this.blocks.set(key, block);
    return block;
  }

  async close(): Promise<void> {
    this.cursor?.close();
    this.cursor = undefined;
    this.blocks.clear();
    await this.handle?.close().catch(() => {});
    this.handle = undefined;
  }
}

/** Sequential reader over a decompressed stream with a position; skipping reads and drops. */
class DataCursor {
  position = 0;
  private readonly it: AsyncIterator<Buffer>;
  private pending: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(private readonly stream: Readable) {
    this.it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    this.pending = this.pending.length ? Buffer.concat([this.pending, r.value]) : r.value;
    return true;
  }

  async skipTo(offset: number): Promise<void> {
    while (this.position < offset) {
      if (!this.pending.length && !(await this.fill())) return;
      const n = Math.min(this.pending.length, offset - this.position);
      this.pending = this.pending.subarray(n);
      this.position += n;
    }
  }

  /** Up to `n` bytes (fewer only at the end of the stream), into `into` when given. */
  async take(n: number, into?: Uint8Array): Promise<Uint8Array> {
    while (this.pending.length < n && (await this.fill()));
    const got = this.pending.subarray(0, n);
    const out = into ? into.subarray(0, got.length) : new Uint8Array(got.length);
    out.set(got);
    this.pending = this.pending.subarray(out.length);
    this.position += out.length;
    return out;
  }

  close(): void {
    this.stream.destroy();
  }
}

/** `checkpoint/` of an archive as a DumpSource. */
export class ArchiveDumpSource implements DumpSource {
  readonly path: string;

  constructor(readonly archive: CheckpointArchive, private readonly prefix: string) {
    this.path = `${archive.path}:${prefix}`;
  }

  names(): string[] {
    const out: string[] = [];
    for (const name of this.archive.entries.keys()) {
      if (name.startsWith(this.prefix) && !name.slice(this.prefix.length).includes("/")) out.push(name.slice(this.prefix.length));
    }
    return out;
  }

  size(name: string): number | undefined {
    return this.archive.entries.get(this.prefix + name)?.size;
  }

  fileName(name: string): string {
    return `${this.archive.path}:${this.prefix}${name}`;
  }

  async read(name: string): Promise<Uint8Array> {
    const size = this.size(name);
    if (size === undefined) throw new ImageError("MISSING_RECORD", "file is missing from the archive's checkpoint/", { file: this.fileName(name) });
    if (size > MAX_METADATA_FILE) throw new ImageError("RECORD_TOO_LARGE", `metadata file of ${size} bytes exceeds the limit`, { file: this.fileName(name) });
    return this.archive.readEntry(this.prefix + name, 0, size);
  }

  readAt(name: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    return this.archive.readEntry(this.prefix + name, offset, length, into);
  }

  close(): Promise<void> {
    return this.archive.close();
  }
}

/** A container checkpoint archive: the process of its dump (the container's init by default). */
export async function openCheckpointArchive(path: string, opts: CriuOpenOptions = {}): Promise<CriuImage> {
  await stat(path);
  const archive = await CheckpointArchive.open(path);
  if (![...archive.entries.keys()].some((n) => n.startsWith("checkpoint/"))) {
    await archive.close();
    throw new ImageError("NOT_AN_IMAGE", "not a container checkpoint archive (no checkpoint/ folder)", { file: path });
  }
  const dump = await readCriuSource(archive.checkpointSource());
  const img = await openCriuDump(dump, path, opts);
  try {
    img.container = archive.containerInfo();
    await img.useRootfsDiff(archive);
  } catch (err) {
    await img.close();
    throw err;
  }
  return img;
}
