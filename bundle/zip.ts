import { type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import yauzl from 'yauzl';
import { FerryError } from '../manifest-schema/index.js';
import { EntryAudit } from './audit.js';
import {
  ZIP_LOCAL_CRC_AT,
  zipCentralRecord,
  zipCrc,
  zipEntrySize,
  zipInlineData,
  zipLocalHeader,
  zipTrailer,
  type PlacedEntry,
} from './layout.js';
import {
  checkMetadataEntry,
  rawOf,
  visitIndexed,
  type ArchiveReader,
  type EntryVisitor,
  type IndexedEntry,
  type RawEntry,
  type Skeleton,
  unsafeEntryError,
} from './reader.js';
import { corruptBundle, type BundleSource } from './source.js';

const S_IFMT = 0o170000;
const ZIP64_EXTRA = 20;
const MAX_LINK_TARGET = 4096;

/**
 * A zip bundle. Opening reads bundle.json from the first local header alone;
 * once the metadata is bound, every local header (CRC-32 aside, which only
 * the data gives), every link target, the central directory, the end
 * records and the file's size must be exactly what Ferry writes, so local
 * and central views cannot disagree, no record can hide or point elsewhere,
 * and nothing follows the end. Entries are then read at known offsets.
 */
export async function openZip(source: BundleSource): Promise<ArchiveReader> {
  const file = source.name;
  const read = async (position: number, length: number): Promise<Buffer> => {
    const bytes = Buffer.alloc(length);
    await source.read(bytes, position);
    return bytes;
  };
  const first = await localEntry(read, 0);
  const compressed = compressedEntry(file, first);
  if (compressed) throw compressed;
  checkMetadataEntry(file, first);
  const metadataBytes = await read(first?.offset ?? 0, first?.size ?? 0);

  let indexed: Promise<IndexedEntry[]> | null = null;
  const index = (skeleton: Skeleton): Promise<IndexedEntry[]> =>
    (indexed ??= checkZip(source, skeleton, metadataBytes, read));
  return {
    metadataBytes,
    forceZip64: first?.zip64 === true,
    index,
    front: (skeleton, visitor) => visitFront(source, skeleton, read, visitor),
    visit: async (skeleton, visitor, select) =>
      visitIndexed(source, await index(skeleton), visitor, select),
    close: () => Promise.resolve(),
  };
}

/** The entry a local header describes, as far as a local header can say (null: no local header there). */
async function localEntry(
  read: (position: number, length: number) => Promise<Buffer>,
  position: number,
): Promise<(IndexedEntry & { zip64: boolean; method: number }) | null> {
  const fixed = await read(position, 30);
  if (fixed.readUInt32LE(0) !== 0x04034b50) return null;
  const nameLength = fixed.readUInt16LE(26);
  const extraLength = fixed.readUInt16LE(28);
  const variable = await read(position + 30, nameLength + extraLength);
  const name = variable.subarray(0, nameLength).toString('utf8');
  const zip64 = extraLength === ZIP64_EXTRA && fixed.readUInt32LE(22) === 0xffffffff;
  return {
    name: name.endsWith('/') ? name.slice(0, -1) : name,
    type: name.endsWith('/') ? 'dir' : 'file',
    size: zip64 ? Number(variable.readBigUInt64LE(nameLength + 4)) : fixed.readUInt32LE(22),
    offset: position + 30 + nameLength + extraLength,
    zip64,
    method: fixed.readUInt16LE(8),
  };
}

/**
 * A zip unpacked and packed again by another tool: Ferry stores every entry,
 * so a compressed one is named as such (its bytes read as stored would be
 * taken for damaged JSON or a garbled link target).
 */
function compressedEntry(
  file: string,
  entry: { name: string; method: number } | null,
): FerryError | null {
  if (entry === null || entry.method === 0) return null;
  return corruptBundle(
    file,
    `${entry.name} is compressed (zip method ${entry.method}); Ferry stores every entry of a zip bundle, so this zip was written again by another tool`,
    { entry: entry.name },
  );
}

/**
 * The front of a zip, before the signature: each local header after
 * bundle.json's must be the one Ferry writes, then its data is handed out.
 * The central directory is not read: it is checked once the metadata is signed.
 */
async function visitFront(
  source: BundleSource,
  skeleton: Skeleton,
  read: (position: number, length: number) => Promise<Buffer>,
  visitor: EntryVisitor,
): Promise<void> {
  const { layout, expected } = skeleton;
  for (const [at, placed] of layout.placed.entries()) {
    if (at === 0) continue;
    if (placed.dataOffset > source.size) throw cutShort(source, placed);
    const local = await read(placed.headerOffset, placed.dataOffset - placed.headerOffset);
    const crc = local.readUInt32LE(ZIP_LOCAL_CRC_AT);
    if (!local.equals(zipLocalHeader(layout, placed, crc))) {
      const found = await localEntry(read, placed.headerOffset);
      throw (
        compressedEntry(source.name, found) ?? EntryAudit.explain(source.name, expected, at, found)
      );
    }
    if (entryEnd(placed) > source.size) throw cutShort(source, placed);
    const data = source.stream(placed.dataOffset, placed.entry.size);
    await visitor(rawOf(placed.entry), data);
    await finished(data);
  }
}

async function checkZip(
  source: BundleSource,
  skeleton: Skeleton,
  metadataBytes: Buffer,
  read: (position: number, length: number) => Promise<Buffer>,
): Promise<IndexedEntry[]> {
  const { name: file } = source;
  const { layout } = skeleton;
  const differs = async (where: string, entry?: string): Promise<FerryError> =>
    (await explainZip(source, skeleton)) ??
    corruptBundle(file, `${where} is not the one Ferry writes`, entry ? { entry } : {});
  // A zip that ends too soon, unless its central directory names what is
  // wrong (a whole zip that lacks an entry is shorter too).
  const cut = async (short: FerryError): Promise<FerryError> => {
    const explained = await explainZip(source, skeleton);
    return explained && explained.code !== 'E_BUNDLE_CORRUPT' ? explained : short;
  };
  const crcs: number[] = [];
  const indexed: IndexedEntry[] = [];
  for (const [at, placed] of layout.placed.entries()) {
    const { entry } = placed;
    // Cut short (a copy that stopped, a full disk) in this entry's header:
    // name the entry it cut, as a plain tar does, unless the central
    // directory says more (a whole zip that lacks the entry).
    if (placed.dataOffset > source.size) throw await cut(cutShort(source, placed));
    const inline = at === 0 ? metadataBytes : zipInlineData(entry);
    const headerLength = placed.dataOffset - placed.headerOffset;
    const whole = entryEnd(placed) <= source.size;
    const bytes = await read(
      placed.headerOffset,
      headerLength + (inline && at > 0 && whole ? inline.length : 0),
    );
    const crc = inline ? zipCrc(inline) : bytes.readUInt32LE(ZIP_LOCAL_CRC_AT);
    const local = bytes.subarray(0, headerLength);
    if (!local.equals(zipLocalHeader(layout, placed, crc)))
      throw (
        compressedEntry(file, await localEntry(read, placed.headerOffset)) ??
        (await differs(`the local header of ${entry.name}`, entry.name))
      );
    // ...or in its data, its header whole.
    if (!whole) throw cutShort(source, placed);
    if (at > 0 && inline && !bytes.subarray(headerLength).equals(inline))
      throw await differs(`the link target of ${entry.name}`, entry.name);
    crcs.push(crc);
    indexed.push({ ...rawOf(entry), offset: placed.dataOffset });
  }
  let position = layout.dataEnd;
  for (const [at, placed] of layout.placed.entries()) {
    const record = zipCentralRecord(layout, placed, crcs[at] as number);
    if (position + record.length > source.size)
      throw await cut(
        corruptBundle(
          file,
          `is cut short in its central directory, at the record of ${placed.entry.name}: it ends at byte ${source.size}`,
          { entry: placed.entry.name },
        ),
      );
    if (!(await read(position, record.length)).equals(record))
      throw await differs(
        `the central directory record of ${placed.entry.name}`,
        placed.entry.name,
      );
    position += record.length;
  }
  const trailer = zipTrailer(layout, position - layout.dataEnd);
  if (position + trailer.length > source.size)
    throw await cut(
      corruptBundle(
        file,
        `is cut short in its end of central directory record: it ends at byte ${source.size}`,
      ),
    );
  if (!(await read(position, trailer.length)).equals(trailer))
    throw await differs('the end of central directory record');
  position += trailer.length;
  if (source.size !== position)
    throw corruptBundle(
      file,
      `holds ${source.size - position} bytes after its end of central directory record; Ferry writes nothing there`,
    );
  return indexed;
}

/** Where `placed`'s data (a link's target, for a link) ends. */
function entryEnd(placed: PlacedEntry): number {
  return placed.dataOffset + zipEntrySize(placed.entry);
}

/** The refusal for a zip that ends before `placed`'s local header and data do. */
function cutShort(source: BundleSource, placed: PlacedEntry): FerryError {
  return corruptBundle(
    source.name,
    `is cut short in ${placed.entry.name}: it ends at byte ${source.size}, and that entry runs to byte ${entryEnd(placed)}`,
    { entry: placed.entry.name },
  );
}

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

/**
 * The most specific refusal for a zip that is not the one Ferry writes,
 * from its central directory as an unzip tool reads it: an unsafe, unlisted
 * or duplicate entry, a device, a wrong size, a missing entry. Reads at most
 * one record more than the metadata lists, however many the zip claims.
 * Null when the directory says nothing more specific.
 */
async function explainZip(source: BundleSource, skeleton: Skeleton): Promise<FerryError | null> {
  const file = source.name;
  const { expected } = skeleton;
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromRandomAccessReaderPromise(new SourceReader(source), source.size, {
      lazyEntries: true,
      autoClose: false,
      decodeStrings: false,
      validateEntrySizes: false,
      strictFileNames: false,
    });
  } catch (error) {
    return error instanceof FerryError ? error : zipCorrupt(file, error);
  }
  try {
    const audit = new EntryAudit(expected, file);
    for (let count = 0; count <= expected.length; count++) {
      const entry = await nextEntry(zip);
      if (entry === null) break;
      audit.admit(await withTarget(zip, source, entry));
    }
    const missing = audit.missing()[0];
    return missing === undefined
      ? null
      : EntryAudit.explain(
          file,
          expected,
          expected.findIndex((e) => e.name === missing),
          null,
        );
  } catch (error) {
    return error instanceof FerryError ? error : zipCorrupt(file, error);
  } finally {
    zip.close();
  }
}

/** A link's target is read into memory to be checked; no real one is longer than PATH_MAX. */
async function withTarget(
  zip: yauzl.ZipFile,
  source: BundleSource,
  entry: yauzl.Entry,
): Promise<RawEntry> {
  const raw = zipRaw(entry);
  if (raw.type !== 'symlink') return raw;
  if (raw.size > MAX_LINK_TARGET)
    throw unsafeEntryError(source.name, raw.name, `is a link with a ${raw.size}-byte target`);
  const local = await zip.readLocalFileHeaderPromise(entry);
  const target = Buffer.alloc(raw.size);
  await source.read(target, local.fileDataStart);
  return { ...raw, target: target.toString('utf8') };
}

function zipRaw(entry: yauzl.Entry): RawEntry {
  const nameBytes = entry.fileName as unknown as Buffer;
  const utf8 = (entry.generalPurposeBitFlag & 0x800) !== 0;
  let name = utf8 ? nameBytes.toString('utf8') : nameBytes.toString('latin1');
  const kind = (entry.externalFileAttributes >>> 16) & 0xffff & S_IFMT;
  let type: RawEntry['type'] = 'file';
  if (name.endsWith('/')) {
    type = 'dir';
    name = name.slice(0, -1);
  } else if (kind === 0o120000) type = 'symlink';
  else if (kind !== 0 && kind !== 0o100000) type = 'other';
  return { name, type, size: entry.uncompressedSize };
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
  return corruptBundle(file, (error as Error).message, { cause: error });
}
