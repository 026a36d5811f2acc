/**
 * `verify` of a CRIU dump or container archive. CRIU's images carry no checksums, so this is a
 * structural check, the strongest one the format allows: every image file whose magic ckimg
 * knows decodes entry by entry, every process of the tree opens as an image (cores, mm, VMAs,
 * pagemaps inside their pages files, fds resolving in files.img), every stored page reads, and
 * each pages file holds exactly the pages its pagemaps name. Same report shape as ckimg's.
 */
import type { VerifyReport, VerifyOptions } from "../format/verify.js";
import { ImageError } from "../format/errors.js";
import type { ImageProblem } from "../format/reader.js";
import type { DescMessage } from "@bufbuild/protobuf";
import { decodeImageFile } from "./image-file.js";
import { openCriuDump } from "./image.js";
import { CRIU_PAGE_SIZE, MAGIC } from "./raw.js";
import type { CriuDump } from "./dump.js";
import { core_entrySchema } from "./gen/core_pb.js";
import { fdinfo_entrySchema, file_entrySchema } from "./gen/fdinfo_pb.js";
import { fs_entrySchema } from "./gen/fs_pb.js";
import { inventory_entrySchema } from "./gen/inventory_pb.js";
import { mm_entrySchema } from "./gen/mm_pb.js";
import { pipe_data_entrySchema } from "./gen/pipe-data_pb.js";
import { pstree_entrySchema } from "./gen/pstree_pb.js";
import { sk_packet_entrySchema } from "./gen/sk-packet_pb.js";
import { task_kobj_ids_entrySchema } from "./gen/core_pb.js";
import { seccomp_entrySchema } from "./gen/seccomp_pb.js";
import { timens_entrySchema } from "./gen/timens_pb.js";

/** Files whose every entry is checked (prefix → magic, schema, trailing-bytes rule). */
const CHECKED: [RegExp, number, DescMessage, ((m: never) => number)?][] = [
  [/^inventory\.img$/, MAGIC.inventory, inventory_entrySchema],
  [/^pstree\.img$/, MAGIC.pstree, pstree_entrySchema],
  [/^core-\d+\.img$/, MAGIC.core, core_entrySchema],
  [/^mm-\d+\.img$/, MAGIC.mm, mm_entrySchema],
  [/^ids-\d+\.img$/, MAGIC.ids, task_kobj_ids_entrySchema],
  [/^fs-\d+\.img$/, MAGIC.fs, fs_entrySchema],
  [/^fdinfo-\d+\.img$/, MAGIC.fdinfo, fdinfo_entrySchema],
  [/^files\.img$/, MAGIC.files, file_entrySchema],
  [/^pipes-data\.img$/, MAGIC.pipesData, pipe_data_entrySchema, (m: { bytes: number }) => m.bytes],
  [/^sk-queues\.img$/, MAGIC.skQueues, sk_packet_entrySchema, (m: { length: number }) => m.length],
  [/^seccomp\.img$/, MAGIC.seccomp, seccomp_entrySchema],
  [/^timens-\d+\.img$/, MAGIC.timens, timens_entrySchema],
];

export async function verifyCriuDump(dump: CriuDump, path: string, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const started = performance.now();
  const problems: ImageProblem[] = [];
  const note = (err: unknown) => {
    if (!(err instanceof ImageError)) throw err;
    problems.push({ code: err.code, detail: err.file ? `${err.file}: ${err.detail}` : err.detail, offset: err.offset, recordType: err.recordType, sequence: err.sequence });
  };
  let records = 0;
  for (const f of dump.images) {
    const rule = CHECKED.find(([re]) => re.test(f.name));
    if (!rule) continue;
    try {
      const bytes = await dump.source.read(f.name);
      records += decodeImageFile(bytes, dump.source.fileName(f.name), rule[1], rule[2], { trailing: rule[3] as never }).length;
    } catch (err) {
      note(err);
    }
  }
  let chunks = 0, damaged = 0, raw = 0, bytesChecked = 0;
  const total = dump.processes.reduce((n, p) => n + (p.pagemap?.storedPages ?? 0) * CRIU_PAGE_SIZE, 0);
  const pagesUsed = new Map<string, number>();
  for (const p of dump.processes) {
    if (p.pagemap) pagesUsed.set(p.pagemap.pagesFile, Math.max(pagesUsed.get(p.pagemap.pagesFile) ?? 0, p.pagemap.storedPages * CRIU_PAGE_SIZE));
    let img;
    try {
      // Each process opens over the same source; only the caller closes it.
      const shared = Object.create(dump.source, { close: { value: async () => {} } }) as typeof dump.source;
      img = await openCriuDump({ ...dump, source: shared }, path, { pid: p.pid });
    } catch (err) {
      note(err);
      continue;
    }
    try {
      problems.push(...img.problems);
      for (const ref of img.chunks) {
        chunks++;
        try {
          const c = await img.readChunk(ref);
          raw += c.raw.length;
          bytesChecked += c.raw.length;
        } catch (err) {
          damaged++;
          note(err);
        }
        opts.onProgress?.(raw, total);
      }
    } finally {
      await img.close();
    }
  }
  for (const [file, used] of pagesUsed) {
    const size = dump.source.size(file) ?? 0;
    if (size !== used) problems.push({ code: "BAD_FIELD", detail: `${dump.source.fileName(file)}: holds ${size} bytes but the pagemaps name ${used}`, offset: undefined, recordType: undefined, sequence: undefined });
  }
  return {
    path, ok: problems.length === 0, recovered: false, records, chunks, damagedChunks: damaged, bytesChecked,
    rawBytesChecked: raw, seconds: (performance.now() - started) / 1000, threads: 1, problems,
  };
}
