import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { PassThrough, Readable, Transform } from 'node:stream';
import { Header, Parser, Pax, type ReadEntry } from 'tar';
import yauzl from 'yauzl';
import {
  BUNDLE_METADATA_ENTRY,
  FerryError,
  ioError,
  MAX_METADATA_BYTES,
  unsafePathReason,
} from '../manifest-schema/index.js';

export type ReaderFormat = 'tar' | 'tar.gz' | 'zip';

/** One archive entry as the archive itself describes it (not yet checked against the metadata). */
export interface RawEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** What the archive says the entry's size is. */
  size: number;
  target?: string;
}

/** Returns 'stop' to end the visit early (the rest of the archive is not read). */
export interface IndexedEntry extends RawEntry {
  /** Where the entry's data starts in the bundle file. */
  offset: number;
}

export type EntryVisitor = (entry: RawEntry, data: Readable) => Promise<void | 'stop'>;

/**
 * A bundle archive opened for reading. Opening reads only bundle.json (the
 * first tar entry, or the zip central directory and that one entry); payload
 * is read only by `visit`, and with zip only the entries selected.
 */
export interface BundleReader {
  readonly file: string;
  readonly format: ReaderFormat;
  readonly size: number;
  /** bundle.json's bytes exactly as stored. */
  readonly metadataBytes: Buffer;
  /** Bytes read from the bundle file so far. */
  bytesRead(): number;
  /** The zip central directory as entries (symlink targets unread); null for tar, which has no index. */
  listing(): RawEntry[] | null;
  /**
   * For a plain tar or a zip: every entry with where its data starts, found
   * by reading (and checking) the headers alone, so entries can be copied and
   * hashed in parallel at known offsets. Null for tar.gz, which must stream.
   */
  index(): Promise<IndexedEntry[] | null>;
  /** Counts bytes read from the bundle on the reader's behalf (by hash workers). */
  countRead(bytes: number): void;
  /** Streams entries in archive order; with zip, only those `select` accepts. Each data stream must be consumed. */
  visit(visitor: EntryVisitor, select?: (name: string) => boolean): Promise<void>;
  close(): Promise<void>;
}

const TAR_HIGH_WATER = 16 * 1024;

export async function openBundle(file: string): Promise<BundleReader> {
  let size: number;
  let handle: FileHandle;
  try {
    const stats = await stat(file);
    if (stats.isDirectory()) {
      throw new FerryError('E_BUNDLE_FORMAT', `${file} is a folder, not a bundle file`, {
        file,
        hint: 'pass the .tar, .tar.gz or .zip bundle file',
      });
    }
    size = stats.size;
    handle = await open(file, 'r');
  } catch (error) {
    if (error instanceof FerryError) throw error;
    throw ioError(error, file, 'open');
  }
  try {
    const head = Buffer.alloc(Math.min(512, size));
    await handle.read(head, 0, head.length, 0);
    const format = sniff(head);
    if (format === null) {
      throw new FerryError('E_BUNDLE_FORMAT', `${file} is not a tar, tar.gz or zip archive`, {
        file,
        hint: 'pass a bundle written by `ferry build`; it may have been truncated or damaged in transfer',
      });
    }
    if (format === 'zip') return await openZip(file, handle, size, head.length);
    await handle.close();
    return await openTar(file, format, size);
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

function sniff(head: Buffer): ReaderFormat | null {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'zip';
  if (head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar') return 'tar';
  return null;
}

// ------------------------------------------------------------------ tar

function rawTarEntry(entry: ReadEntry): RawEntry {
  const type =
    entry.type === 'File' || entry.type === 'OldFile'
      ? 'file'
      : entry.type === 'Directory'
        ? 'dir'
        : entry.type === 'SymbolicLink'
          ? 'symlink'
          : 'other';
  const name = type === 'dir' && entry.path.endsWith('/') ? entry.path.slice(0, -1) : entry.path;
  return {
    name,
    type,
    size: entry.size ?? 0,
    ...(entry.linkpath !== undefined ? { target: entry.linkpath } : {}),
  };
}

function tarError(error: unknown, file: string): FerryError {
  if (error instanceof FerryError) return error;
  const code = (error as { code?: string }).code;
  if (
    code === 'TAR_BAD_ARCHIVE' ||
    code === 'TAR_ENTRY_INVALID' ||
    code === 'TAR_ABORT' ||
    code === 'Z_DATA_ERROR' ||
    code === 'Z_BUF_ERROR'
  ) {
    return new FerryError('E_BUNDLE_CORRUPT', `${file}: ${(error as Error).message}`, {
      file,
      hint: 'the bundle is truncated or damaged: copy it again from its source and check its sha256',
      cause: error,
    });
  }
  return ioError(error, file, 'read');
}

async function openTar(
  file: string,
  format: 'tar' | 'tar.gz',
  size: number,
): Promise<BundleReader> {
  let bytesRead = 0;
  const metadataBytes = await new Promise<Buffer>((resolve, reject) => {
    const source = createReadStream(file, { highWaterMark: TAR_HIGH_WATER });
    const parser = new Parser({ strict: true });
    let settled = false;
    const finish = (error: FerryError | null, value?: Buffer): void => {
      if (settled) return;
      settled = true;
      bytesRead = source.bytesRead;
      source.unpipe(parser);
      source.destroy();
      if (error) reject(error);
      else resolve(value as Buffer);
    };
    parser.on('entry', (entry: ReadEntry) => {
      if (settled) {
        entry.resume();
        return;
      }
      const raw = rawTarEntry(entry);
      if (raw.name !== BUNDLE_METADATA_ENTRY || raw.type !== 'file') {
        entry.resume();
        finish(metadataMissing(file, raw.name));
        return;
      }
      if (raw.size > MAX_METADATA_BYTES) {
        entry.resume();
        finish(tooLarge(file, raw.size));
        return;
      }
      const chunks: Buffer[] = [];
      entry.on('data', (chunk: Buffer) => chunks.push(chunk));
      entry.on('end', () => finish(null, Buffer.concat(chunks)));
    });
    parser.on('error', (error: unknown) => finish(tarError(error, file)));
    parser.on('end', () => finish(metadataMissing(file, null)));
    source.on('error', (error) => finish(ioError(error, file, 'read')));
    source.pipe(parser);
  });

  return {
    file,
    format,
    size,
    metadataBytes,
    bytesRead: () => bytesRead,
    listing: () => null,
    index: async () => {
      if (format !== 'tar') return null;
      return indexTar(file, size, (n) => (bytesRead += n));
    },
    countRead: (n) => {
      bytesRead += n;
    },
    visit: (visitor) =>
      new Promise<void>((resolve, reject) => {
        const source = createReadStream(file, { highWaterMark: 256 * 1024 });
        const parser = new Parser({ strict: true });
        // Visitors run while later entries stream in, but the source is held
        // once more than two are unfinished: memory stays bounded by a chunk
        // and the streams' buffers, whatever the archive holds.
        const running = new Set<Promise<void>>();
        let held: Array<() => void> = [];
        let failed = false;
        let stopAt: number | null = null;
        let counter = 0;
        const streams = new Map<PassThrough, number>();
        const jobs = new Map<Promise<void>, number>();
        const release = (): void => {
          if (running.size > 2) return;
          const waiting = held;
          held = [];
          for (const go of waiting) go();
        };
        const gate = new Transform({
          transform(chunk: Buffer, _encoding, done) {
            bytesRead += chunk.length;
            if (running.size > 2) held.push(() => done(null, chunk));
            else done(null, chunk);
          },
        });
        const fail = (error: unknown): void => {
          if (failed) return;
          failed = true;
          source.destroy();
          gate.destroy();
          reject(tarError(error, file));
        };
        parser.on('entry', (entry: ReadEntry) => {
          if (failed || stopAt !== null) {
            entry.resume();
            return;
          }
          const data = new PassThrough({ highWaterMark: 1 << 20 });
          entry.pipe(data);
          const index = counter++;
          streams.set(data, index);
          data.on('close', () => streams.delete(data));
          const job: Promise<void> = visitor(rawTarEntry(entry), data)
            .then((verdict) => {
              if (verdict !== 'stop' || failed || stopAt !== null) return;
              stopAt = index;
              source.destroy();
              // Entries after this one will get no more data; those before it finish as they are.
              for (const [stream, at] of streams) if (at > index) stream.destroy();
              const before = [...jobs].filter(([, at]) => at < index).map(([other]) => other);
              void Promise.all(before).then(() => {
                if (!failed) resolve();
              });
            })
            .catch((error: unknown) => {
              if (stopAt === null || index <= stopAt) fail(error);
            })
            .finally(() => {
              running.delete(job);
              jobs.delete(job);
              release();
            });
          jobs.set(job, index);
          running.add(job);
        });
        parser.on('error', fail);
        source.on('error', fail);
        gate.on('error', fail);
        parser.on('end', () => {
          void Promise.all(running).then(() => {
            if (!failed && stopAt === null) resolve();
          });
        });
        source.pipe(gate).pipe(parser);
      }),
    close: () => Promise.resolve(),
  };
}

const MAX_EXTENDED_HEADER = 1024 * 1024;

/** Reads a plain tar's headers (and PAX headers) only, skipping every entry's data. */
async function indexTar(
  file: string,
  size: number,
  count: (n: number) => void,
): Promise<IndexedEntry[]> {
  const corrupt = (why: string): FerryError =>
    new FerryError('E_BUNDLE_CORRUPT', `${file}: ${why}`, {
      file,
      hint: 'the bundle is truncated or damaged: copy it again from its source and check its sha256',
    });
  const handle = await open(file, 'r');
  const entries: IndexedEntry[] = [];
  const block = Buffer.alloc(512);
  let position = 0;
  let extended: Record<string, unknown> = {};
  try {
    const readAt = async (buffer: Buffer, at: number): Promise<void> => {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, at);
      count(bytesRead);
      if (bytesRead < buffer.length) throw corrupt(`truncated at byte ${at + bytesRead}`);
    };
    for (;;) {
      if (position + 512 > size) throw corrupt('ends without the end-of-archive blocks');
      await readAt(block, position);
      if (block.every((byte) => byte === 0)) break;
      const header = new Header(block);
      if (!header.cksumValid) throw corrupt(`the header at byte ${position} fails its checksum`);
      // A PAX size overrides the header's, as in every tar reader (it is how sizes past 8 GiB are written).
      const length =
        header.type !== 'ExtendedHeader' &&
        header.type !== 'GlobalExtendedHeader' &&
        typeof extended.size === 'number'
          ? extended.size
          : (header.size ?? 0);
      const offset = position + 512;
      const next = offset + Math.ceil(length / 512) * 512;
      if (offset + length > size)
        throw corrupt(`${header.path ?? 'an entry'} runs past the end of the file`);
      if (header.type === 'ExtendedHeader' || header.type === 'GlobalExtendedHeader') {
        if (length > MAX_EXTENDED_HEADER) throw corrupt(`an extended header of ${length} bytes`);
        const body = Buffer.alloc(length);
        await readAt(body, offset);
        if (header.type === 'ExtendedHeader')
          extended = { ...Pax.parse(body.toString('utf8'), {}) };
        position = next;
        continue;
      }
      const path = typeof extended.path === 'string' ? extended.path : (header.path ?? '');
      const linkpath = typeof extended.linkpath === 'string' ? extended.linkpath : header.linkpath;
      const type =
        header.type === 'File' || header.type === 'OldFile'
          ? 'file'
          : header.type === 'Directory'
            ? 'dir'
            : header.type === 'SymbolicLink'
              ? 'symlink'
              : 'other';
      const name = type === 'dir' && path.endsWith('/') ? path.slice(0, -1) : path;
      entries.push({ name, type, size: length, offset, ...(linkpath ? { target: linkpath } : {}) });
      extended = {};
      position = next;
    }
  } finally {
    await handle.close();
  }
  return entries;
}

// ------------------------------------------------------------------ zip

class CountingReader extends yauzl.RandomAccessReader {
  count = 0;
  private readonly handle: FileHandle;
  constructor(handle: FileHandle) {
    super();
    this.handle = handle;
  }
  /** Reads through the FileHandle (no stream per entry holding the descriptor), counting bytes. */
  override _readStreamForRange(start: number, end: number): Readable {
    const handle = this.handle;
    let position = start;
    const onBytes = (n: number): void => {
      this.count += n;
    };
    return new Readable({
      highWaterMark: 1 << 20,
      read(size) {
        const length = Math.min(size, end - position);
        if (length <= 0) {
          this.push(null);
          return;
        }
        const buffer = Buffer.allocUnsafe(length);
        handle.read(buffer, 0, length, position).then(
          ({ bytesRead }) => {
            if (bytesRead === 0) {
              this.destroy(new Error('unexpected end of file'));
              return;
            }
            position += bytesRead;
            onBytes(bytesRead);
            this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead));
          },
          (error: Error) => this.destroy(error),
        );
      },
    });
  }
  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (error: Error | null) => void,
  ): void {
    this.handle.read(buffer, offset, length, position).then(
      ({ bytesRead }) => {
        this.count += bytesRead;
        callback(bytesRead < length ? new Error('unexpected end of file') : null);
      },
      (error: Error) => callback(error),
    );
  }
  override close(callback: (error: Error | null) => void): void {
    callback(null);
  }
}

interface ZipEntryInfo {
  entry: yauzl.Entry;
  raw: RawEntry;
}

const S_IFMT = 0o170000;
const MAX_LINK_TARGET = 4096;

function zipRaw(entry: yauzl.Entry, file: string): RawEntry {
  const nameBytes = entry.fileName as unknown as Buffer;
  const utf8 = (entry.generalPurposeBitFlag & 0x800) !== 0;
  let name = utf8 ? nameBytes.toString('utf8') : nameBytes.toString('latin1');
  if (!utf8 && /[^\x20-\x7e]/.test(name)) {
    throw unsafe(file, name, 'has a non-ASCII name without the UTF-8 flag');
  }
  const mode = (entry.externalFileAttributes >>> 16) & 0xffff;
  const kind = mode & S_IFMT;
  let type: RawEntry['type'] = 'file';
  if (name.endsWith('/')) {
    type = 'dir';
    name = name.slice(0, -1);
  } else if (kind === 0o120000) type = 'symlink';
  else if (kind !== 0 && kind !== 0o100000) type = 'other';
  return { name, type, size: entry.uncompressedSize };
}

async function openZip(
  file: string,
  handle: FileHandle,
  size: number,
  headBytes: number,
): Promise<BundleReader> {
  const reader = new CountingReader(handle);
  reader.count = headBytes;
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromRandomAccessReaderPromise(reader, size, {
      lazyEntries: true,
      autoClose: false,
      decodeStrings: false,
      validateEntrySizes: true,
    });
  } catch (error) {
    throw zipCorrupt(file, error);
  }
  const entries: ZipEntryInfo[] = [];
  const names = new Set<string>();
  try {
    for (;;) {
      const entry = await nextEntry(zip);
      if (entry === null) break;
      const raw = zipRaw(entry, file);
      const reason = unsafePathReason(raw.name);
      if (reason !== null) throw unsafe(file, raw.name, reason);
      if (names.has(raw.name)) {
        throw new FerryError(
          'E_DUPLICATE_ENTRY',
          `${file}: ${raw.name} appears twice in the zip's central directory`,
          {
            file,
            entry: raw.name,
            hint: 'the bundle was crafted or damaged; get it again from its publisher',
          },
        );
      }
      names.add(raw.name);
      if (entry.compressionMethod !== 0)
        throw unsafe(file, raw.name, 'is compressed; Ferry bundles store entries');
      if ((entry.generalPurposeBitFlag & 0x1) !== 0) throw unsafe(file, raw.name, 'is encrypted');
      // A link's target is read into memory; no real one is longer than PATH_MAX.
      if (raw.type === 'symlink' && raw.size > MAX_LINK_TARGET)
        throw unsafe(file, raw.name, `is a link with a ${raw.size}-byte target`);
      entries.push({ entry, raw });
    }
  } catch (error) {
    zip.close();
    throw error instanceof FerryError ? error : zipCorrupt(file, error);
  }
  const byOffset = [...entries].sort(
    (a, b) => a.entry.relativeOffsetOfLocalHeader - b.entry.relativeOffsetOfLocalHeader,
  );
  const nextOffset = new Map<yauzl.Entry, number>();
  for (const [index, info] of byOffset.entries()) {
    nextOffset.set(
      info.entry,
      byOffset[index + 1]?.entry.relativeOffsetOfLocalHeader ?? zipCentralStart(zip),
    );
  }

  const first = entries[0];
  if (!first || first.raw.name !== BUNDLE_METADATA_ENTRY || first.raw.type !== 'file') {
    zip.close();
    throw metadataMissing(file, first?.raw.name ?? null);
  }
  if (first.raw.size > MAX_METADATA_BYTES) {
    zip.close();
    throw tooLarge(file, first.raw.size);
  }
  let metadataBytes: Buffer;
  try {
    const stream = await openChecked(zip, first, nextOffset, file);
    metadataBytes = await collect(stream);
  } catch (error) {
    zip.close();
    throw error instanceof FerryError ? error : zipCorrupt(file, error);
  }

  return {
    file,
    format: 'zip',
    size,
    metadataBytes,
    bytesRead: () => reader.count,
    listing: () => entries.map((info) => info.raw),
    index: async () => {
      // Ferry's zips are stored, so each entry's bytes sit at a known offset:
      // every local header is checked first, then the data can be hashed in parallel.
      const indexed: IndexedEntry[] = [];
      try {
        for (const info of entries) {
          if (info.raw.type === 'dir') {
            indexed.push({ ...info.raw, offset: 0 });
            continue;
          }
          const offset = await checkedDataStart(zip, info, nextOffset, file);
          const target =
            info.raw.type === 'symlink'
              ? (await collect(await openAt(zip, info.entry, offset))).toString('utf8')
              : undefined;
          indexed.push({ ...info.raw, offset, ...(target !== undefined ? { target } : {}) });
        }
      } catch (error) {
        throw error instanceof FerryError ? error : zipCorrupt(file, error);
      }
      return indexed;
    },
    countRead: (n) => {
      reader.count += n;
    },
    visit: async (visitor, select) => {
      for (const info of entries) {
        if (select && !select(info.raw.name)) continue;
        let stream: Readable;
        try {
          stream =
            info.raw.type === 'dir'
              ? emptyStream()
              : await openChecked(zip, info, nextOffset, file);
        } catch (error) {
          throw error instanceof FerryError ? error : zipCorrupt(file, error);
        }
        const raw =
          info.raw.type === 'symlink'
            ? { ...info.raw, target: (await collect(stream)).toString('utf8') }
            : info.raw;
        try {
          const verdict = await visitor(raw, info.raw.type === 'symlink' ? emptyStream() : stream);
          if (verdict === 'stop') return;
        } catch (error) {
          stream.destroy();
          throw error instanceof FerryError ? error : zipCorrupt(file, error);
        }
      }
    },
    close: async () => {
      zip.close();
      await handle.close();
    },
  };
}

function zipCentralStart(zip: yauzl.ZipFile): number {
  return (zip as unknown as { centralDirectoryOffset: number }).centralDirectoryOffset;
}

/**
 * Where an entry's data starts, after checking what yauzl leaves to us: the
 * local header names the same file with the same sizes as the central
 * directory, and its data ends before the next entry begins (no overlapping
 * entries).
 */
async function checkedDataStart(
  zip: yauzl.ZipFile,
  info: ZipEntryInfo,
  nextOffset: Map<yauzl.Entry, number>,
  file: string,
): Promise<number> {
  const { entry, raw } = info;
  const local = await zip.readLocalFileHeaderPromise(entry);
  const centralName = entry.fileName as unknown as Buffer;
  const disagree = (what: string): FerryError =>
    new FerryError(
      'E_BUNDLE_CORRUPT',
      `${file}: ${raw.name}'s local header disagrees with the central directory (${what})`,
      {
        file,
        entry: raw.name,
        hint: 'the zip was crafted or damaged; get the bundle again from its publisher',
      },
    );
  if (!Buffer.from(local.fileName).equals(centralName)) throw disagree('name');
  if (local.compressionMethod !== entry.compressionMethod) throw disagree('compression');
  if ((local.generalPurposeBitFlag & 0x8) !== 0) throw disagree('data descriptor');
  if (local.compressedSize !== 0xffffffff && local.compressedSize !== entry.compressedSize)
    throw disagree('size');
  if (local.uncompressedSize !== 0xffffffff && local.uncompressedSize !== entry.uncompressedSize)
    throw disagree('size');
  if (local.crc32 !== entry.crc32) throw disagree('CRC-32');
  const end = local.fileDataStart + entry.compressedSize;
  if (end > (nextOffset.get(entry) ?? Infinity)) {
    throw new FerryError('E_BUNDLE_CORRUPT', `${file}: ${raw.name} overlaps the next entry`, {
      file,
      entry: raw.name,
      hint: 'overlapping entries are a zip-bomb trick; this bundle was crafted',
    });
  }
  return local.fileDataStart;
}

function openAt(zip: yauzl.ZipFile, entry: yauzl.Entry, dataStart: number): Promise<Readable> {
  // yauzl 3.4's openReadStreamLowLevelPromise calls the wrong method, so the callback form it is.
  return new Promise((resolve, reject) => {
    zip.openReadStreamLowLevel(
      dataStart,
      entry.compressedSize,
      0,
      entry.compressedSize,
      false,
      entry.uncompressedSize,
      (error, stream) => {
        if (error) reject(error);
        else resolve(stream);
      },
    );
  });
}

async function openChecked(
  zip: yauzl.ZipFile,
  info: ZipEntryInfo,
  nextOffset: Map<yauzl.Entry, number>,
  file: string,
): Promise<Readable> {
  return openAt(zip, info.entry, await checkedDataStart(zip, info, nextOffset, file));
}

function nextEntry(zip: yauzl.ZipFile): Promise<yauzl.Entry | null> {
  return new Promise((resolve, reject) => {
    const onEntry = (entry: yauzl.Entry): void => {
      cleanup();
      resolve(entry);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(null);
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const cleanup = (): void => {
      zip.off('entry', onEntry);
      zip.off('end', onEnd);
      zip.off('error', onError);
    };
    zip.on('entry', onEntry);
    zip.on('end', onEnd);
    zip.on('error', onError);
    zip.readEntry();
  });
}

// ------------------------------------------------------------------ shared

function emptyStream(): Readable {
  const stream = new PassThrough();
  stream.end();
  return stream;
}

/** Reads a small stream (bundle.json, a link target) whole. */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function zipCorrupt(file: string, error: unknown): FerryError {
  return new FerryError('E_BUNDLE_CORRUPT', `${file}: ${(error as Error).message}`, {
    file,
    hint: 'the zip is truncated or damaged: copy it again from its source and check its sha256',
    cause: error,
  });
}

function unsafe(file: string, name: string, reason: string): FerryError {
  return new FerryError('E_UNSAFE_ENTRY', `${file}: entry ${JSON.stringify(name)} ${reason}`, {
    file,
    entry: name,
    hint: 'nothing was written; this bundle was crafted or damaged: do not use it',
  });
}

function metadataMissing(file: string, firstEntry: string | null): FerryError {
  return new FerryError(
    'E_METADATA_INVALID',
    firstEntry === null
      ? `${file} holds no bundle.json`
      : `${file}: the first entry is ${firstEntry}, not bundle.json`,
    {
      file,
      entry: BUNDLE_METADATA_ENTRY,
      hint: 'a Ferry bundle starts with bundle.json; this is not one, or it was repacked',
    },
  );
}

function tooLarge(file: string, size: number): FerryError {
  return new FerryError('E_METADATA_TOO_LARGE', `${file}: bundle.json is ${size} bytes`, {
    file,
    entry: BUNDLE_METADATA_ENTRY,
    hint: `metadata is limited to ${MAX_METADATA_BYTES} bytes; this is not a bundle Ferry built`,
  });
}

export { unsafe as unsafeEntryError };
