import { type Readable } from 'node:stream';
import yauzl from 'yauzl';
import { FerryError, unsafePathReason } from '../manifest-schema/index.js';
import {
  checkMetadataEntry,
  collect,
  emptyStream,
  unsafeEntryError,
  type ArchiveReader,
  type IndexedEntry,
  type RawEntry,
} from './reader.js';
import type { BundleSource } from './source.js';

/** yauzl reads the zip through the bundle's source, by range. */
class SourceReader extends yauzl.RandomAccessReader {
  private readonly source: BundleSource;
  constructor(source: BundleSource) {
    super();
    this.source = source;
  }
  override _readStreamForRange(start: number, end: number): Readable {
    return this.source.stream(start, end - start);
  }
  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (error: Error | null) => void,
  ): void {
    this.source.read(buffer.subarray(offset, offset + length), position).then(
      () => callback(null),
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
    throw unsafeEntryError(file, name, 'has a non-ASCII name without the UTF-8 flag');
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

/**
 * A zip read through its central directory; entries are opened one by one
 * and their local headers checked against it.
 */
export async function openZip(source: BundleSource): Promise<ArchiveReader> {
  const file = source.name;
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromRandomAccessReaderPromise(new SourceReader(source), source.size, {
      lazyEntries: true,
      autoClose: false,
      decodeStrings: false,
      validateEntrySizes: true,
    });
  } catch (error) {
    throw error instanceof FerryError ? error : zipCorrupt(file, error);
  }
  const entries: ZipEntryInfo[] = [];
  const names = new Set<string>();
  try {
    for (;;) {
      const entry = await nextEntry(zip);
      if (entry === null) break;
      const raw = zipRaw(entry, file);
      const reason = unsafePathReason(raw.name);
      if (reason !== null) throw unsafeEntryError(file, raw.name, reason);
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
        throw unsafeEntryError(file, raw.name, 'is compressed; Ferry bundles store entries');
      if ((entry.generalPurposeBitFlag & 0x1) !== 0)
        throw unsafeEntryError(file, raw.name, 'is encrypted');
      // A link's target is read into memory; no real one is longer than PATH_MAX.
      if (raw.type === 'symlink' && raw.size > MAX_LINK_TARGET)
        throw unsafeEntryError(file, raw.name, `is a link with a ${raw.size}-byte target`);
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
  let metadataBytes: Buffer;
  try {
    checkMetadataEntry(file, first?.raw ?? null);
    const stream = await openChecked(zip, first as ZipEntryInfo, nextOffset, file);
    metadataBytes = await collect(stream);
  } catch (error) {
    zip.close();
    throw error instanceof FerryError ? error : zipCorrupt(file, error);
  }

  return {
    metadataBytes,
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
    close: () => {
      zip.close();
      return Promise.resolve();
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

function zipCorrupt(file: string, error: unknown): FerryError {
  return new FerryError('E_BUNDLE_CORRUPT', `${file}: ${(error as Error).message}`, {
    file,
    hint: 'the zip is truncated or damaged: copy it again from its source and check its sha256',
    cause: error,
  });
}
