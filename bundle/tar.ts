import { Readable, Transform, type TransformCallback } from 'node:stream';
import { finished } from 'node:stream/promises';
import { crc32, createInflateRaw, type ZlibOptions } from 'node:zlib';
import { Header, Pax } from 'tar';
import { BUNDLE_METADATA_ENTRY, FerryError, ioError } from '../manifest-schema/index.js';
import { EntryAudit } from './audit.js';
import { roundUp512, TAR_END_BLOCKS, tarDataSize, tarHeader, type PlacedEntry } from './layout.js';
import {
  checkMetadataEntry,
  rawOf,
  visitIndexed,
  type ArchiveReader,
  type EntryVisitor,
  type IndexedEntry,
  type RawEntry,
  type Skeleton,
} from './reader.js';
import { corruptBundle, type BundleSource } from './source.js';

/** Small reads while looking for bundle.json, so planning reads a few KiB of a large bundle. */
const METADATA_HIGH_WATER = 16 * 1024;
const VISIT_HIGH_WATER = 256 * 1024;
const MAX_EXTENDED_HEADER = 1024 * 1024;

/**
 * A tar or tar.gz bundle. Its layout is known from the signed metadata, so
 * it is not parsed as tar at all: each header is compared, as it is reached,
 * with the bytes Ferry writes there, then the entry's data is handed out,
 * then its padding and, after the last entry, the end blocks must be zero
 * and the file (or the gzip stream) must end. Global or unknown headers,
 * sparse entries, data after the end, a zip in disguise: all differ from
 * the layout somewhere. Only when a header differs is it parsed, to name the
 * most specific refusal.
 */
export async function openTar(
  source: BundleSource,
  format: 'tar' | 'tar.gz',
): Promise<ArchiveReader> {
  const metadataBytes = await readMetadata(source, format);
  const held: Held = { paused: null };
  let indexed: Promise<IndexedEntry[]> | null = null;
  const index = (skeleton: Skeleton): Promise<IndexedEntry[]> =>
    (indexed ??= checkTar(source, skeleton));
  return {
    metadataBytes,
    // Volumes asked for one at a time are read once, in order: no index, no random reads.
    index: (skeleton) =>
      format === 'tar' && !source.sequential ? index(skeleton) : Promise.resolve(null),
    front: (skeleton, visitor) =>
      streamTar(
        source,
        format,
        skeleton,
        visitor,
        (name) => name !== BUNDLE_METADATA_ENTRY,
        skeleton.layout.placed.at(-1)?.entry.name,
      ),
    visit: async (skeleton, visitor, select, upTo) =>
      format === 'tar' && !source.sequential
        ? visitIndexed(source, await index(skeleton), visitor, select)
        : streamTar(source, format, skeleton, visitor, select, upTo, held),
    close: () => {
      held.paused?.stream.close();
      held.paused = null;
      return Promise.resolve();
    },
  };
}

/** bundle.json, the first entry: its header is parsed, since nothing is known yet; the layout check compares it later. */
async function readMetadata(source: BundleSource, format: 'tar' | 'tar.gz'): Promise<Buffer> {
  if (format === 'tar') {
    const block = Buffer.alloc(512);
    await source.read(block, 0);
    const size = metadataSize(source.name, block);
    const bytes = Buffer.alloc(size);
    await source.read(bytes, 512);
    return bytes;
  }
  const stream = gunzipped(source, METADATA_HIGH_WATER);
  const bytes = new StreamBytes(stream.output, source.name, stream.seen);
  bytes.entry = BUNDLE_METADATA_ENTRY;
  try {
    const size = metadataSize(source.name, await bytes.take(512));
    return await bytes.take(size);
  } finally {
    stream.close();
  }
}

function metadataSize(file: string, block: Buffer): number {
  const header = parseHeader(file, block, 0);
  checkMetadataEntry(file, block.every((byte) => byte === 0) ? null : entryOf(header, {}));
  return header.size as number;
}

/** A header block as node-tar reads it, refused unless its checksum holds and its size is a plain number. */
function parseHeader(file: string, block: Buffer, position: number): Header {
  let header: Header;
  try {
    header = new Header(block);
  } catch (cause) {
    // node-tar throws on a base-256 size out of range
    throw corruptBundle(file, `the header at byte ${position} does not parse`, { cause });
  }
  if (block.every((byte) => byte === 0)) return header;
  if (!header.cksumValid)
    throw corruptBundle(file, `the header at byte ${position} fails its checksum`);
  const size = header.size;
  if (size === undefined || !Number.isSafeInteger(size) || size < 0)
    throw corruptBundle(file, `the header at byte ${position} has no valid size`);
  return header;
}

function entryOf(header: Header, pax: Record<string, unknown>): RawEntry {
  const type =
    header.type === 'File' || header.type === 'OldFile'
      ? 'file'
      : header.type === 'Directory'
        ? 'dir'
        : header.type === 'SymbolicLink'
          ? 'symlink'
          : 'other';
  const path = typeof pax.path === 'string' ? pax.path : (header.path ?? '');
  const linkpath = typeof pax.linkpath === 'string' ? pax.linkpath : header.linkpath;
  return {
    name: type === 'dir' && path.endsWith('/') ? path.slice(0, -1) : path,
    type,
    // A PAX size overrides the header's, as in every tar reader.
    size: typeof pax.size === 'number' ? pax.size : (header.size ?? 0),
    ...(linkpath ? { target: linkpath } : {}),
  };
}

/**
 * The refusal for the entry whose header starts where `skeleton.expected[at]`
 * should (`at` past the last entry: where the end blocks should be). `next`
 * reads the archive onward from that header.
 */
async function explainTar(
  file: string,
  skeleton: Skeleton,
  at: number,
  position: number,
  next: (length: number) => Promise<Buffer>,
): Promise<FerryError> {
  let header = parseHeader(file, await next(512), position);
  if (header.nullBlock || header.cksum === undefined)
    return EntryAudit.explain(file, skeleton.expected, at, null);
  let pax: Record<string, unknown> = {};
  if (header.type === 'GlobalExtendedHeader')
    return corruptBundle(file, `a global PAX header at byte ${position}; Ferry writes none`);
  if (header.type === 'ExtendedHeader') {
    const length = header.size as number;
    if (length > MAX_EXTENDED_HEADER)
      return corruptBundle(file, `an extended header of ${length} bytes at byte ${position}`);
    const body = await next(roundUp512(length));
    pax = { ...Pax.parse(body.subarray(0, length).toString('utf8'), {}) };
    header = parseHeader(file, await next(512), position + 512 + body.length);
  }
  return EntryAudit.explain(file, skeleton.expected, at, entryOf(header, pax));
}

function cutShort(file: string, placed: PlacedEntry, size: number): FerryError {
  return corruptBundle(
    file,
    `is cut short in ${placed.entry.name}: it ends at byte ${size}, and that entry runs to byte ${placed.dataOffset + tarDataSize(placed.entry)}`,
    { entry: placed.entry.name },
  );
}

function isZero(bytes: Buffer): boolean {
  for (const byte of bytes) if (byte !== 0) return false;
  return true;
}

function paddingError(file: string, placed: PlacedEntry | undefined): FerryError {
  return corruptBundle(
    file,
    `the bytes after ${placed ? `${placed.entry.name}'s data` : 'the first header'} are not the zero padding Ferry writes`,
    placed ? { entry: placed.entry.name } : {},
  );
}

/**
 * A plain tar checked by range, one read per entry (its predecessor's
 * padding and its header), then the end blocks and the file's size. Bounded
 * by the metadata's entry count, whatever the file holds.
 */
async function checkTar(source: BundleSource, skeleton: Skeleton): Promise<IndexedEntry[]> {
  const { name: file } = source;
  const { layout } = skeleton;
  const read = async (position: number, length: number): Promise<Buffer> => {
    const bytes = Buffer.alloc(length);
    await source.read(bytes, position);
    return bytes;
  };
  const reader = (from: number) => {
    let position = from;
    return async (length: number): Promise<Buffer> => {
      const bytes = await read(position, length);
      position += length;
      return bytes;
    };
  };
  const indexed: IndexedEntry[] = [];
  let position = 0;
  for (const [at, placed] of layout.placed.entries()) {
    // Cut short (a copy that stopped, a full disk) in this entry's header:
    // name the entry it cut.
    if (position < source.size && placed.dataOffset > source.size)
      throw cutShort(file, placed, source.size);
    const lead = await read(position, placed.dataOffset - position);
    const padding = placed.headerOffset - position;
    if (!isZero(lead.subarray(0, padding))) throw paddingError(file, layout.placed[at - 1]);
    if (!lead.subarray(padding).equals(tarHeader(placed.entry, layout.mtime)))
      throw await explainTar(file, skeleton, at, placed.headerOffset, reader(placed.headerOffset));
    // ...or in its data, its header whole.
    if (placed.dataOffset + tarDataSize(placed.entry) > source.size)
      throw cutShort(file, placed, source.size);
    indexed.push({ ...rawOf(placed.entry), offset: placed.dataOffset });
    position = placed.dataOffset + tarDataSize(placed.entry);
  }
  const padding = await read(position, layout.dataEnd - position);
  if (!isZero(padding)) throw paddingError(file, layout.placed.at(-1));
  if (source.size < layout.dataEnd + TAR_END_BLOCKS)
    throw corruptBundle(file, 'ends without the end-of-archive blocks');
  if (!isZero(await read(layout.dataEnd, TAR_END_BLOCKS)))
    throw await explainTar(
      file,
      skeleton,
      layout.placed.length,
      layout.dataEnd,
      reader(layout.dataEnd),
    );
  checkEnd(file, source.size - layout.dataEnd - TAR_END_BLOCKS);
  return indexed;
}

function checkEnd(file: string, extra: number): void {
  if (extra !== 0)
    throw corruptBundle(
      file,
      `holds ${extra} bytes after its end-of-archive blocks; Ferry writes nothing there`,
    );
}

/** A stream stopped after an `upTo` entry, for the next visit to go on from. */
interface Paused {
  skeleton: Skeleton;
  stream: Inflow;
  bytes: StreamBytes;
  /** The layout index of the next entry, and where its padding starts. */
  next: number;
  position: number;
}

interface Held {
  paused: Paused | null;
}

/**
 * A tar.gz (or a plain tar on volumes read in order) streamed once, start to
 * end: each header is compared as it arrives, each entry's data is handed to
 * the visitor (or skipped), and after the end blocks neither the tar nor the
 * gzip stream may hold another byte, so no bomb after the end is ever
 * inflated beyond one chunk. A visit that stops after `upTo` leaves the
 * stream paused there (`held`), and the next visit that selects nothing
 * before that point goes on from it: install stages its artifacts, runs
 * them, then stages payload from one inflation of the bundle.
 */
async function streamTar(
  source: BundleSource,
  format: 'tar' | 'tar.gz',
  skeleton: Skeleton,
  visitor: EntryVisitor,
  select?: (name: string) => boolean,
  upTo?: string,
  held?: Held,
): Promise<void> {
  const { name: file } = source;
  const { layout } = skeleton;
  const paused = held ? resumable(held, skeleton, select) : null;
  const stream =
    paused?.stream ??
    (format === 'tar.gz' ? gunzipped(source, VISIT_HIGH_WATER) : plain(source, VISIT_HIGH_WATER));
  const bytes = paused?.bytes ?? new StreamBytes(stream.output, file, stream.seen);
  let pausing = false;
  try {
    let position = paused?.position ?? 0;
    for (let at = paused?.next ?? 0; at < layout.placed.length; at++) {
      const placed = layout.placed[at] as PlacedEntry;
      bytes.entry = placed.entry.name;
      const lead = await bytes.take(placed.dataOffset - position);
      const padding = placed.headerOffset - position;
      if (!isZero(lead.subarray(0, padding))) throw paddingError(file, layout.placed[at - 1]);
      const header = lead.subarray(padding);
      if (!header.equals(tarHeader(placed.entry, layout.mtime))) {
        bytes.unshift(header);
        throw await explainTar(file, skeleton, at, placed.headerOffset, (n) => bytes.take(n));
      }
      const size = tarDataSize(placed.entry);
      if (select && !select(placed.entry.name)) await bytes.skip(size);
      else {
        const data = Readable.from(bytes.data(size), { objectMode: false });
        await visitor(rawOf(placed.entry), data);
        await finished(data);
      }
      position = placed.dataOffset + size;
      if (placed.entry.name === upTo) {
        if (held) held.paused = { skeleton, stream, bytes, next: at + 1, position };
        pausing = held !== undefined;
        return;
      }
    }
    bytes.entry = undefined;
    if (!isZero(await bytes.take(layout.dataEnd - position)))
      throw paddingError(file, layout.placed.at(-1));
    const end = await bytes.take(TAR_END_BLOCKS);
    if (!isZero(end)) {
      bytes.unshift(end);
      throw await explainTar(file, skeleton, layout.placed.length, layout.dataEnd, (n) =>
        bytes.take(n),
      );
    }
    checkEnd(file, await bytes.remaining());
    await stream.done;
    stream.trailer?.();
  } finally {
    if (!pausing) stream.close();
  }
}

/** The paused stream, when this visit may go on from it (same layout, nothing wanted before it); else it is closed. */
function resumable(
  held: Held,
  skeleton: Skeleton,
  select?: (name: string) => boolean,
): Paused | null {
  const { paused } = held;
  held.paused = null;
  if (!paused) return null;
  const passed = skeleton.layout.placed.slice(0, paused.next);
  if (paused.skeleton === skeleton && select && !passed.some((p) => select(p.entry.name)))
    return paused;
  paused.stream.close();
  return null;
}

interface Inflow {
  output: Readable;
  /** Settles when the whole source has been read (or fails). */
  done: Promise<void>;
  close(): void;
  /** For a tar.gz: each chunk read from `output`, for the trailer's CRC-32. */
  seen?: (chunk: Buffer) => void;
  /** For a tar.gz, once `done`: checks the gzip trailer against the data inflated. */
  trailer?: () => void;
}

function plain(source: BundleSource, highWaterMark: number): Inflow {
  const output = source.stream(0, source.size, highWaterMark);
  const done = finished(output).catch((error: unknown) => {
    throw error instanceof FerryError ? error : ioError(error, source.name, 'reading');
  });
  done.catch(() => undefined);
  return { output, done, close: () => output.destroy() };
}

const GZIP_HEADER = 10;
const GZIP_TRAILER = 8;

/**
 * A tar.gz is one gzip member exactly as Ferry writes it: a 10-byte header
 * with no optional fields, one deflate stream, the 8-byte trailer, nothing
 * else. zlib's gunzip would also take further members (an empty one
 * inflates to nothing) and header fields (a name, a comment, an extra field
 * of 64 KiB): bytes no tar reader sees, where unzip finds a zip's end record
 * and reads a different archive. So the member is framed here and only the
 * deflate stream goes to zlib; its end must be where the trailer starts.
 */
function gunzipped(source: BundleSource, highWaterMark: number): Inflow {
  const file = source.name;
  const body = Math.max(0, source.size - GZIP_TRAILER);
  // Read through in one stream, trailer included: on volumes read in order, a
  // read of the trailer apart would ask again for a volume already taken out.
  const input = source.stream(0, source.size, highWaterMark);
  const header = new GzipMember(file, body);
  // Its buffers as small as the input's (zlib takes a stream's options, though its
  // types do not say so): with Node 22's 64 KiB default, a loaded machine read
  // 48 KiB more of a tar.gz to find bundle.json than a quiet one.
  const streamOptions: ZlibOptions & { highWaterMark: number } = { highWaterMark };
  const output = createInflateRaw(streamOptions);
  let crc = 0;
  let inflated = 0;
  const fail = (error: Error): void => {
    output.destroy(error);
  };
  input.on('error', fail);
  header.on('error', fail);
  // Before the pipe's own listener ends the output: the deflate stream ended
  // before the trailer's place, so more follows it (a second member, garbage).
  input.pipe(header).pipe(output);
  const done = new Promise<void>((resolve, reject) => {
    output.on('error', reject);
    output.on('end', resolve);
  }).catch((error: unknown) => {
    throw gzipError(error, file);
  });
  // Awaited only once the whole stream is read; a failure before then is reported by the read.
  done.catch(() => undefined);
  return {
    output,
    done,
    close: () => {
      input.destroy();
      header.destroy();
      output.destroy();
    },
    seen: (chunk) => {
      crc = crc32(chunk, crc);
      inflated += chunk.length;
    },
    trailer: () => {
      // The deflate stream ended before the trailer's place: more follows it (a second member, garbage).
      const member = GZIP_HEADER + output.bytesWritten;
      if (member < body)
        throw corruptBundle(
          file,
          `holds ${source.size - member - GZIP_TRAILER} bytes after its gzip member; Ferry writes one member and nothing after it`,
        );
      const trailer = header.trailer;
      const stored = { crc: trailer.readUInt32LE(0), size: trailer.readUInt32LE(4) };
      const actual = { crc: crc >>> 0, size: inflated % 2 ** 32 };
      if (stored.crc !== actual.crc || stored.size !== actual.size)
        throw corruptBundle(
          file,
          `its gzip trailer says CRC-32 ${hex(stored.crc)} and size ${stored.size}, and its data inflates to CRC-32 ${hex(actual.crc)} and size ${actual.size}`,
        );
    },
  };
}

function hex(value: number): string {
  return value.toString(16).padStart(8, '0');
}

/**
 * Splits a gzip member as it streams past: checks and drops its header
 * (deflate, and no flags, so no optional fields), passes the deflate stream
 * on, and keeps the 8-byte trailer that starts at `body`.
 */
class GzipMember extends Transform {
  private readonly file: string;
  private readonly body: number;
  private head: Buffer | null = Buffer.alloc(0);
  private position = 0;
  readonly trailer = Buffer.alloc(GZIP_TRAILER);

  constructor(file: string, body: number) {
    super();
    this.file = file;
    this.body = body;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const start = this.position;
    this.position += chunk.length;
    const tail = Math.max(0, Math.min(chunk.length, this.position - this.body));
    chunk.copy(this.trailer, Math.max(0, start - this.body), chunk.length - tail);
    let data = chunk.subarray(0, chunk.length - tail);
    if (this.head !== null) {
      const head = Buffer.concat([this.head, data]);
      if (head.length < GZIP_HEADER) {
        this.head = head;
        callback();
        return;
      }
      this.head = null;
      const problem = this.headerProblem(head);
      if (problem) {
        callback(problem);
        return;
      }
      data = head.subarray(GZIP_HEADER);
    }
    callback(null, data);
  }

  private headerProblem(head: Buffer): FerryError | null {
    const method = head[2] as number;
    const flags = head[3] as number;
    if (head[0] === 0x1f && head[1] === 0x8b && method === 8 && flags === 0) return null;
    return corruptBundle(
      this.file,
      `its gzip header (method ${method}, flags 0x${flags.toString(16).padStart(2, '0')}) is not the one Ferry writes: Ferry writes deflate and no name, comment, extra field or header CRC`,
    );
  }

  override _flush(callback: TransformCallback): void {
    // A file under 18 bytes also put its last 8 (or fewer) aside as the trailer:
    // the header's length alone would say it ends sooner than it does.
    callback(
      this.head === null
        ? null
        : corruptBundle(
            this.file,
            `is cut short: ${this.position} bytes, fewer than the ${GZIP_HEADER + GZIP_TRAILER} of a gzip header and trailer`,
          ),
    );
  }
}

function gzipError(error: unknown, file: string): FerryError {
  if (error instanceof FerryError) return error;
  const code = (error as { code?: string }).code;
  if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR')
    return corruptBundle(file, (error as Error).message, { cause: error });
  return ioError(error, file, 'read');
}

/**
 * Exact reads from a stream: `take` n bytes, hand out n bytes as chunks,
 * skip n. The stream ending early is a truncated bundle.
 */
class StreamBytes {
  private readonly iterator: AsyncIterator<Buffer>;
  private readonly file: string;
  private chunks: Buffer[] = [];
  private buffered = 0;

  private readonly seen: ((chunk: Buffer) => void) | undefined;

  constructor(stream: Readable, file: string, seen?: (chunk: Buffer) => void) {
    this.iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.file = file;
    this.seen = seen;
  }

  /**
   * The entry being read (its padding and header, then its data), which a
   * stream that ends too soon is cut short in.
   */
  entry: string | undefined;

  private async fill(): Promise<boolean> {
    let next: IteratorResult<Buffer>;
    try {
      next = await this.iterator.next();
    } catch (error) {
      // zlib's "unexpected end of file": the gzip stream was cut short.
      if ((error as { code?: string }).code === 'Z_BUF_ERROR') throw this.truncated(error);
      throw gzipError(error, this.file);
    }
    if (next.done) return false;
    this.seen?.(next.value);
    this.chunks.push(next.value);
    this.buffered += next.value.length;
    return true;
  }

  private truncated(cause?: unknown): FerryError {
    const details = cause === undefined ? {} : { cause };
    return this.entry === undefined
      ? corruptBundle(this.file, 'ends without the end-of-archive blocks', details)
      : corruptBundle(
          this.file,
          `is cut short in ${this.entry}: it ends before that entry's data does`,
          { entry: this.entry, ...details },
        );
  }

  unshift(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.chunks.unshift(bytes);
    this.buffered += bytes.length;
  }

  /** Up to `limit` bytes of what is buffered (filling first when nothing is). */
  private async piece(limit: number): Promise<Buffer> {
    if (this.buffered === 0 && !(await this.fill())) throw this.truncated();
    const first = this.chunks[0] as Buffer;
    const piece = first.length <= limit ? first : first.subarray(0, limit);
    if (piece === first) this.chunks.shift();
    else this.chunks[0] = first.subarray(limit);
    this.buffered -= piece.length;
    return piece;
  }

  async take(length: number): Promise<Buffer> {
    const pieces: Buffer[] = [];
    let got = 0;
    while (got < length) {
      const piece = await this.piece(length - got);
      pieces.push(piece);
      got += piece.length;
    }
    return pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces, length);
  }

  async *data(length: number): AsyncGenerator<Buffer> {
    let left = length;
    while (left > 0) {
      const piece = await this.piece(left);
      left -= piece.length;
      yield piece;
    }
  }

  async skip(length: number): Promise<void> {
    let left = length;
    while (left > 0) left -= (await this.piece(left)).length;
  }

  /** How many bytes follow (0 when the stream ends here); stops counting after the first chunk. */
  async remaining(): Promise<number> {
    if (this.buffered === 0) await this.fill();
    return this.buffered;
  }
}
