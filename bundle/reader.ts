import { PassThrough, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import {
  BUNDLE_METADATA_ENTRY,
  FerryError,
  MAX_METADATA_BYTES,
  type ArtifactRef,
  type BundleMetadata,
  type ExpectedEntry,
} from '../manifest-schema/index.js';
import type { ArchiveEntry, ArchiveLayout } from './layout.js';
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

/** Called for each entry in archive order; the data stream must be consumed (or resumed) before it resolves. */
export type EntryVisitor = (entry: RawEntry, data: Readable) => Promise<void>;

/** What an archive must be, byte for byte: the layout the signed metadata gives, and its entries. */
export interface Skeleton {
  layout: ArchiveLayout;
  expected: readonly ExpectedEntry[];
}

/**
 * A bundle archive opened for reading. Opening reads only bundle.json; once
 * the signed metadata is bound (`expect`), the archive must be exactly the
 * one Ferry writes for it: `index` and `visit` check every header, padding
 * and end byte and the file's size against the layout, and refuse the first
 * difference. Payload is read only by `visit` or at the offsets `index` gives.
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
  /**
   * Before the signature: streams the trust roots right after bundle.json as
   * `chain` (the unverified metadata's listing) lays them out. Each header
   * must be the one Ferry writes for it; nothing past the last root is read,
   * and nothing is bound.
   */
  visitChain(chain: ChainListing, visitor: EntryVisitor): Promise<void>;
  /** Binds the signed metadata, which says what every other byte must be. Reads nothing. */
  expect(metadata: BundleMetadata): void;
  /**
   * For a plain tar or a zip: every entry with where its data starts, after
   * checking the whole archive but the payload bytes (by range, so entries
   * can be copied and hashed in parallel). Null for tar.gz, which must stream.
   */
  index(): Promise<IndexedEntry[] | null>;
  /**
   * Streams entries in archive order, only those `select` accepts (a tar.gz
   * is still read and checked to its last byte, whatever is selected).
   * `upTo` stops a stream after that entry: only for a caller that visits
   * again, to the end, before acting on it (install stages its artifacts
   * from the front, runs them, then stages payload to the end blocks). A
   * streamed archive then goes on from where it stopped, so a tar.gz is
   * inflated once; entries before that point are not visited again.
   */
  visit(visitor: EntryVisitor, select?: (name: string) => boolean, upTo?: string): Promise<void>;
  /** Closes the source too. */
  close(): Promise<void>;
}

/** The little of the unverified metadata that locates the trust roots: their list and the entries' mtime. */
export interface ChainListing {
  createdAt: string;
  roots: readonly ArtifactRef[];
}

/** What the tar and zip readers give; `openBundle` adds the source around it. */
export interface ArchiveReader {
  metadataBytes: Buffer;
  /** Streams the entries after bundle.json of a skeleton that lays out only the front of the archive. */
  front(skeleton: Skeleton, visitor: EntryVisitor): Promise<void>;
  /** A zip written with zip64 records throughout (`--force-zip64`); the layout depends on it. */
  forceZip64?: boolean;
  index(skeleton: Skeleton): Promise<IndexedEntry[] | null>;
  visit(
    skeleton: Skeleton,
    visitor: EntryVisitor,
    select?: (name: string) => boolean,
    upTo?: string,
  ): Promise<void>;
  close(): Promise<void>;
}

/** The entry an archive reader hands out for a layout entry it has checked. */
export function rawOf(entry: ArchiveEntry): RawEntry {
  return {
    name: entry.name,
    type: entry.type,
    size: entry.type === 'file' ? entry.size : 0,
    ...(entry.target !== undefined ? { target: entry.target } : {}),
  };
}

/**
 * Visits indexed entries (plain tar, zip) by range: entries not selected are
 * never read, since the index already checked every byte around them.
 */
export async function visitIndexed(
  source: BundleSource,
  index: readonly IndexedEntry[],
  visitor: EntryVisitor,
  select?: (name: string) => boolean,
): Promise<void> {
  for (const entry of index) {
    if (select && !select(entry.name)) continue;
    const data = entry.type === 'file' ? source.stream(entry.offset, entry.size) : emptyStream();
    await visitor(entry, data);
    await finished(data);
  }
}

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
