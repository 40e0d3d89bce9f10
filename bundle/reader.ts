import { PassThrough, type Readable } from 'node:stream';
import { BUNDLE_METADATA_ENTRY, FerryError, MAX_METADATA_BYTES } from '../manifest-schema/index.js';
import type { BundleSource } from './source.js';

export type ReaderFormat = 'tar' | 'tar.gz' | 'zip';

/** One archive entry as the archive itself describes it (not yet checked against the metadata). */
export interface RawEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** What the archive says the entry's size is. */
  size: number;
  target?: string;
}

export interface IndexedEntry extends RawEntry {
  /** Where the entry's data starts in the bundle. */
  offset: number;
}

/** Returns 'stop' to end the visit early (the rest of the archive is not read). */
export type EntryVisitor = (entry: RawEntry, data: Readable) => Promise<void | 'stop'>;

/**
 * A bundle archive opened for reading. Opening reads only bundle.json (the
 * first tar entry, or the zip central directory and that one entry); payload
 * is read only by `visit`, and with zip only the entries selected.
 */
export interface BundleReader {
  readonly source: BundleSource;
  /** The source's name, for messages. */
  readonly file: string;
  readonly format: ReaderFormat;
  readonly size: number;
  /** bundle.json's bytes exactly as stored. */
  readonly metadataBytes: Buffer;
  /** Bytes read from the bundle so far. */
  bytesRead(): number;
  /** The zip central directory as entries (symlink targets unread); null for tar, which has no index. */
  listing(): RawEntry[] | null;
  /**
   * For a plain tar or a zip: every entry with where its data starts, found
   * by reading (and checking) the headers alone, so entries can be copied and
   * hashed in parallel at known offsets. Null for tar.gz, which must stream.
   */
  index(): Promise<IndexedEntry[] | null>;
  /** Streams entries in archive order; with zip, only those `select` accepts. Each data stream must be consumed. */
  visit(visitor: EntryVisitor, select?: (name: string) => boolean): Promise<void>;
  /** Closes the source too. */
  close(): Promise<void>;
}

/** What the tar and zip readers give; `openBundle` adds the source around it. */
export type ArchiveReader = Pick<
  BundleReader,
  'metadataBytes' | 'listing' | 'index' | 'visit' | 'close'
>;

/** Refuses a first entry that is not a bundle.json of a plausible size (`null`: the archive is empty). */
export function checkMetadataEntry(file: string, first: RawEntry | null): void {
  if (first === null || first.name !== BUNDLE_METADATA_ENTRY || first.type !== 'file') {
    throw new FerryError(
      'E_METADATA_INVALID',
      first === null
        ? `${file} holds no bundle.json`
        : `${file}: the first entry is ${first.name}, not bundle.json`,
      {
        file,
        entry: BUNDLE_METADATA_ENTRY,
        hint: 'a Ferry bundle starts with bundle.json; this is not one, or it was repacked',
      },
    );
  }
  if (first.size > MAX_METADATA_BYTES) {
    throw new FerryError('E_METADATA_TOO_LARGE', `${file}: bundle.json is ${first.size} bytes`, {
      file,
      entry: BUNDLE_METADATA_ENTRY,
      hint: `metadata is limited to ${MAX_METADATA_BYTES} bytes; this is not a bundle Ferry built`,
    });
  }
}

export function unsafeEntryError(file: string, name: string, reason: string): FerryError {
  return new FerryError('E_UNSAFE_ENTRY', `${file}: entry ${JSON.stringify(name)} ${reason}`, {
    file,
    entry: name,
    hint: 'nothing was written; this bundle was crafted or damaged: do not use it',
  });
}

export function emptyStream(): Readable {
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
