/**
 * Reading an image's memory for people: regions with their unavailable parts marked, an
 * xxd-style hexdump at the process's own addresses, and printable strings of the stored pages
 * (ASCII, optionally UTF-16LE) with the address each one sits at.
 *
 * @example
 * ```ts
 * import { openImage } from "ckimg";
 * import { readRegion, hexdump, readStrings } from "ckimg/analysis";
 * const img = await openImage("counter.img");
 * const region = await readRegion(img, img.threads[0].regs!.rsp, 64);
 * process.stdout.write(hexdump(region));
 * for await (const s of readStrings(img, { areas: ["heap"], minLength: 8 })) console.log(s.address, s.text);
 * await img.close();
 * ```
 */
import { AREA_KINDS, ImageError, type AreaRecord, type CheckpointImage } from "../format/index.js";

/** A run of addresses whose content the image cannot supply, and why. */
export interface UnknownRange {
  start: bigint;
  end: bigint;
  why?: string;
}

/** A run of addresses whose bytes came from a file on disk, not from the image. */
export interface DiskRange {
  start: bigint;
  end: bigint;
  path: string;
  /** "sha256": the file's digest matched the image's; "stat": only inode, size and mtime did */
  evidence?: "sha256" | "stat";
}

/**
 * Bytes of process memory; `unavailable` lists the [start, end) address ranges the image cannot
 * supply (their bytes are `fill`, not data), `fromDisk` the ranges read from mapped files.
 */
export interface MemoryRegion {
  address: bigint;
  bytes: Uint8Array;
  unavailable: UnknownRange[];
  /** absent: none */
  fromDisk?: DiskRange[];
}

/** Upper bound of one readRegion call (the reader refuses more than 1 GiB at once too). */
export const MAX_REGION_BYTES = 1 << 30;

/**
 * Read `length` bytes at `address`: pages the image cannot supply (vdso, unreadable pages, a
 * mapped file changed or gone) are listed in `unavailable` and hold `fill` (default 0), so
 * one missing page does not hide the rest; bytes taken from files on disk are listed in
 * `fromDisk`. An unmapped address is an error (ImageError NOT_MAPPED).
 */
export async function readRegion(image: CheckpointImage, address: bigint, length: number, opts: { fill?: number } = {}): Promise<MemoryRegion> {
  if (!Number.isSafeInteger(length) || length < 0 || length > MAX_REGION_BYTES) {
    throw new ImageError("BAD_FIELD", `length ${length} is outside 0..${MAX_REGION_BYTES}`, { file: image.path });
  }
  const read = await image.readMemoryMap(address, length, opts);
  return {
    address,
    bytes: read.bytes,
    unavailable: read.unknown.map((u) => ({ start: u.start, end: u.end, why: u.why })),
    fromDisk: read.spans.filter((x) => x.source === "file").map((x) => ({ start: x.start, end: x.end, path: x.path ?? "", evidence: x.evidence })),
  };
}

export interface HexdumpOptions {
  /** bytes per line (default 16, like xxd) */
  width?: number;
  /** bytes per group of hex digits (default 2, like xxd) */
  group?: number;
  /** hex digits of the address column (default: enough for the region's last address, at least 8) */
  addressWidth?: number;
}

/**
 * xxd's layout with the process's addresses: `addr: 4865 6c6c 6f0a ...  Hello.`.
 * Unavailable bytes print as `--` in the hex column and a space in the text column.
 * Addresses are zero-padded to one width for the whole dump so columns line up.
 */
export function hexdump(region: MemoryRegion, opts: HexdumpOptions = {}): string {
  const width = opts.width ?? 16;
  const group = opts.group ?? 2;
  const { address, bytes } = region;
  const missing = (i: number) => {
    const a = address + BigInt(i);
    return region.unavailable.some((r) => a >= r.start && a < r.end);
  };
  const lastAddr = address + BigInt(Math.max(0, bytes.length - 1));
  const addrWidth = opts.addressWidth ?? Math.max(8, lastAddr.toString(16).length);
  const hexWidth = width * 2 + Math.ceil(width / group) - 1;
  const lines: string[] = [];
  for (let off = 0; off < bytes.length; off += width) {
    let hexPart = "";
    let text = "";
    const n = Math.min(width, bytes.length - off);
    for (let i = 0; i < n; i++) {
      if (i > 0 && i % group === 0) hexPart += " ";
      if (missing(off + i)) {
        hexPart += "--";
        text += " ";
      } else {
        const b = bytes[off + i];
        hexPart += (b < 16 ? "0" : "") + b.toString(16);
        text += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".";
      }
    }
    lines.push(`${(address + BigInt(off)).toString(16).padStart(addrWidth, "0")}: ${hexPart.padEnd(hexWidth)}  ${text}`);
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}

// ---------------------------------------------------------------------------------------
// Areas by selector

/**
 * Select areas by "0xADDR" (the area containing it), a kind ("heap", "stack", "anon", …), or a
 * path (exact, or its last component: "libc.so.6"). No selector: every area.
 */
export function selectAreas(image: CheckpointImage, selectors: readonly string[] | undefined): AreaRecord[] {
  if (!selectors || selectors.length === 0) return image.areas;
  const picked = new Set<AreaRecord>();
  for (const sel of selectors) {
    let matched: AreaRecord[];
    if (/^0x[0-9a-fA-F]+$/.test(sel)) {
      const a = image.areaAt(BigInt(sel));
      matched = a ? [a] : [];
    } else if ((AREA_KINDS as readonly string[]).includes(sel)) {
      matched = image.areas.filter((a) => a.kind === sel);
    } else {
      matched = image.areas.filter((a) => a.path === sel || (a.path !== "" && a.path.endsWith("/" + sel)));
    }
    if (matched.length === 0) throw new ImageError("NOT_MAPPED", `no area matches '${sel}'`, { file: image.path });
    for (const a of matched) picked.add(a);
  }
  return image.areas.filter((a) => picked.has(a));
}

// ---------------------------------------------------------------------------------------
// Strings

export type StringEncoding = "ascii" | "utf16le";

export interface FoundString {
  /** process address of the first byte */
  address: bigint;
  areaId: number;
  encoding: StringEncoding;
  text: string;
}

export interface StringsOptions {
  /** area selectors (see selectAreas); default all areas */
  areas?: readonly string[];
  /** minimum length in characters (default 4, like strings(1)) */
  minLength?: number;
  /** default ["ascii"] */
  encodings?: readonly StringEncoding[];
  /** longest string kept whole; longer runs are cut into pieces of this length (default 4096) */
  maxLength?: number;
}

/** strings(1)'s "printable": graphic ASCII, space and tab. A table, built once: the scan is the hot loop. */
const PRINTABLE = new Uint8Array(256);
for (let b = 0x20; b < 0x7f; b++) PRINTABLE[b] = 1;
PRINTABLE[0x09] = 1;

function printable(b: number): boolean {
  return PRINTABLE[b] === 1;
}

function latin1(data: Uint8Array, start: number, end: number): string {
  return Buffer.from(data.buffer, data.byteOffset + start, end - start).toString("latin1");
}

/**
 * Incremental scanner for one encoding: fed pages in address order, it carries a partial run
 * across contiguous pages and ends it at a gap.
 */
class RunScanner {
  /** the run so far (ASCII: text carried over from earlier pages) */
  private start = 0n;
  private text = "";
  /** utf16le: characters of the current run */
  private chars: number[] = [];
  /** utf16le: a low byte waiting for its high byte */
  private pendingLow = -1;
  private next = -1n;

  constructor(
    private readonly encoding: StringEncoding,
    private readonly minLength: number,
    private readonly maxLength: number,
    private readonly areaId: number,
    private readonly out: FoundString[],
  ) {}

  feed(address: bigint, data: Uint8Array): void {
    if (address !== this.next) this.flush();
    if (this.encoding === "ascii") this.feedAscii(address, data);
    else this.feedUtf16(address, data);
    this.next = address + BigInt(data.length);
  }

  flush(): void {
    if (this.chars.length) this.text = String.fromCharCode(...this.chars);
    this.emit(this.start, this.text);
    this.text = "";
    this.chars = [];
    this.pendingLow = -1;
  }

  /** Report `text` at `at` if long enough, cut into pieces of maxLength. */
  private emit(at: bigint, text: string): void {
    if (text.length < this.minLength) return;
    const step = this.encoding === "ascii" ? 1n : 2n;
    for (let i = 0; i < text.length; i += this.maxLength) {
      const piece = text.slice(i, i + this.maxLength);
      if (piece.length >= this.minLength) this.out.push({ address: at + BigInt(i) * step, areaId: this.areaId, encoding: this.encoding, text: piece });
    }
  }

  private feedAscii(address: bigint, data: Uint8Array): void {
    const n = data.length;
    let i = 0;
    if (this.text.length) {
      // A run carried from the page before continues here until its first unprintable byte.
      while (i < n && PRINTABLE[data[i]] === 1) i++;
      this.text += latin1(data, 0, i);
      if (i === n) return this.trimCarry();
      this.emit(this.start, this.text);
      this.text = "";
    }
    while (i < n) {
      while (i < n && PRINTABLE[data[i]] !== 1) i++;
      const s = i;
      while (i < n && PRINTABLE[data[i]] === 1) i++;
      if (i === s) break;
      if (i === n) {
        // Runs into the next page: carry it.
        this.start = address + BigInt(s);
        this.text = latin1(data, s, n);
        return this.trimCarry();
      }
      if (i - s >= this.minLength) this.emit(address + BigInt(s), latin1(data, s, i));
    }
  }

  /** Bound the carried text: emit whole maxLength pieces of it, keep the rest. */
  private trimCarry(): void {
    if (this.text.length < this.maxLength) return;
    const whole = this.text.length - (this.text.length % this.maxLength);
    this.emit(this.start, this.text.slice(0, whole));
    this.start += BigInt(whole);
    this.text = this.text.slice(whole);
  }

  private push(at: bigint, c: number): void {
    if (this.chars.length === 0) this.start = at;
    this.chars.push(c);
    if (this.chars.length >= this.maxLength) this.flush();
  }

  /** UTF-16LE restricted to the printable ASCII range (what `strings -e l` finds), at even addresses. */
  private feedUtf16(address: bigint, data: Uint8Array): void {
    let i = 0;
    if (this.pendingLow >= 0 && data.length) {
      const low = this.pendingLow;
      this.pendingLow = -1;
      if (data[0] === 0) this.push(address - 1n, low);
      else this.flush();
      i = 1;
    }
    // Pages start at even addresses, so pairs start at even offsets.
    for (; i + 1 < data.length; i += 2) {
      const lo = data[i], hi = data[i + 1];
      if (hi === 0 && printable(lo)) this.push(address + BigInt(i), lo);
      else if (this.chars.length) this.flush();
    }
    if (i < data.length) {
      if (printable(data[i])) this.pendingLow = data[i];
      else this.flush();
    }
  }
}

/**
 * Printable strings in the stored pages of the selected areas, in address order within each
 * encoding (with several encodings, batches may interleave). Unstored pages
 * (zero or file content by definition) are not scanned: the strings there are the file's own.
 * Yields area by area so a caller can stop early; memory stays bounded by one chunk.
 */
export async function* readStrings(image: CheckpointImage, opts: StringsOptions = {}): AsyncGenerator<FoundString> {
  for await (const batch of readStringBatches(image, opts)) yield* batch;
}

/**
 * readStrings in batches (each in address order): one await per batch instead of per string,
 * for callers that print or count hundreds of thousands of strings.
 */
export async function* readStringBatches(image: CheckpointImage, opts: StringsOptions = {}): AsyncGenerator<FoundString[]> {
  const minLength = Math.max(1, opts.minLength ?? 4);
  const maxLength = Math.max(minLength, opts.maxLength ?? 4096);
  const encodings = opts.encodings?.length ? opts.encodings : (["ascii"] as const);
  for (const area of selectAreas(image, opts.areas)) {
    const found: FoundString[] = [];
    const scanners = encodings.map((e) => new RunScanner(e, minLength, maxLength, area.id, found));
    for await (const page of image.pages(area)) {
      for (const s of scanners) s.feed(page.address, page.data);
      if (found.length > 4096) yield drain(found);
    }
    for (const s of scanners) s.flush();
    if (found.length) yield drain(found);
  }
}

function drain(found: FoundString[]): FoundString[] {
  const batch = found.splice(0, found.length);
  // One encoding's scanner emits in address order already; sort only when several interleave.
  if (batch.some((f) => f.encoding !== batch[0].encoding)) batch.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  return batch;
}
