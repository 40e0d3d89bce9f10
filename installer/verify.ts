import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  assertTrusted,
  checkSignatures,
  decodeEnvelope,
  decodeMetadata,
  expectedEntries,
  FerryError,
  ioError,
  readTrustRoot,
  withHashPool,
  type BundleMetadata,
  type Envelope,
  type ExpectedEntry,
  type SignatureStatus,
  type TrustRoot,
} from '../manifest-schema/index.js';
import {
  collect,
  openBundle,
  unsafeEntryError,
  type BundleReader,
  type IndexedEntry,
  type RawEntry,
} from './reader.js';
import { unsafePathReason } from '../manifest-schema/index.js';

export interface OpenedBundle {
  reader: BundleReader;
  envelope: Envelope;
  metadata: BundleMetadata;
  /** Present when a trust root was given. */
  signature?: SignatureStatus;
}

/**
 * Opens a bundle and decodes its metadata, reading nothing else. With a
 * trust root, the signature status is attached; callers that act on the
 * bundle use `openTrusted`, which refuses an untrusted one.
 */
export async function openBundleMetadata(file: string, trust?: TrustRoot): Promise<OpenedBundle> {
  const reader = await openBundle(file);
  try {
    const { envelope, payload } = decodeEnvelope(reader.metadataBytes, file);
    const metadata = decodeMetadata(payload, file);
    const signature = trust ? checkSignatures(envelope, payload, trust) : undefined;
    return { reader, envelope, metadata, ...(signature ? { signature } : {}) };
  } catch (error) {
    await reader.close();
    throw error;
  }
}

/** Like openBundleMetadata, but the signature must meet the trust root before anything else is looked at. */
export async function openTrusted(
  file: string,
  trust: TrustRoot,
): Promise<OpenedBundle & { signature: SignatureStatus }> {
  const reader = await openBundle(file);
  try {
    const { envelope, payload } = decodeEnvelope(reader.metadataBytes, file);
    const signature = checkSignatures(envelope, payload, trust);
    assertTrusted(signature, file);
    const metadata = decodeMetadata(payload, file);
    return { reader, envelope, metadata, signature };
  } catch (error) {
    await reader.close();
    throw error;
  }
}

/**
 * Checks archive entries against the signed metadata as they stream past:
 * every entry listed, once, of the listed type, size and link target, and
 * nothing else. Pure bookkeeping; hashing is done by `hashEntry`.
 */
export class EntryAudit {
  private readonly expected = new Map<string, ExpectedEntry>();
  private readonly seen = new Set<string>();
  private readonly file: string;

  constructor(entries: readonly ExpectedEntry[], file: string) {
    this.file = file;
    for (const entry of entries) this.expected.set(entry.name, entry);
  }

  admit(raw: RawEntry): ExpectedEntry {
    const { file } = this;
    const reason = unsafePathReason(raw.name);
    if (reason !== null) throw unsafeEntryError(file, raw.name, reason);
    if (raw.type === 'other')
      throw unsafeEntryError(
        file,
        raw.name,
        'is a device, FIFO or hard link; bundles hold files, folders and symlinks only',
      );
    if (this.seen.has(raw.name)) {
      throw new FerryError('E_DUPLICATE_ENTRY', `${file}: ${raw.name} appears twice`, {
        file,
        entry: raw.name,
        hint: 'a second copy could replace a checked file; this bundle was crafted or damaged: do not use it',
      });
    }
    this.seen.add(raw.name);
    const expected = this.expected.get(raw.name);
    if (!expected) {
      throw new FerryError(
        'E_UNLISTED_ENTRY',
        `${file}: ${raw.name} is not listed in the signed metadata`,
        {
          file,
          entry: raw.name,
          hint: 'something was added to the bundle after it was signed: do not use it',
        },
      );
    }
    if (expected.type !== raw.type)
      throw unsafeEntryError(
        file,
        raw.name,
        `is a ${raw.type}, but the metadata lists a ${expected.type}`,
      );
    if (raw.type === 'symlink' && raw.target !== undefined && raw.target !== expected.target) {
      throw unsafeEntryError(
        file,
        raw.name,
        `links to ${JSON.stringify(raw.target)}, but the metadata says ${JSON.stringify(expected.target)}`,
      );
    }
    if (raw.type === 'file' && raw.size !== expected.size) {
      throw new FerryError(
        'E_SIZE_MISMATCH',
        `${file}: ${raw.name} is ${raw.size} bytes, but the metadata says ${expected.size}`,
        {
          file,
          entry: raw.name,
          ...(expected.component ? { component: expected.component } : {}),
          hint: 'the bundle was altered or damaged after signing: get it again from its publisher',
        },
      );
    }
    return expected;
  }

  /**
   * Checks a zip's whole central directory before anything is read, so an
   * entry nobody selects is still refused when it should not be there.
   * Link targets are checked when their entries are read.
   */
  static checkListing(reader: BundleReader, entries: readonly ExpectedEntry[]): void {
    const listing = reader.listing();
    if (listing === null) return;
    const audit = new EntryAudit(entries, reader.file);
    for (const raw of listing) audit.admit({ ...raw, target: undefined });
    const missing = audit.missing()[0];
    if (missing !== undefined) {
      throw new FerryError(
        'E_MISSING_ENTRY',
        `${reader.file}: ${missing} is listed in the signed metadata but not in the zip`,
        {
          file: reader.file,
          entry: missing,
          hint: 'the bundle is incomplete: copy it again from its source',
        },
      );
    }
  }

  /** Names listed in the metadata that the archive did not hold, in archive order. */
  missing(): string[] {
    return [...this.expected.keys()].filter((name) => !this.seen.has(name));
  }
}

/** Hashes a stream, failing on the first byte past the declared size and on any difference at the end. */
export async function hashEntry(
  data: Readable,
  expected: ExpectedEntry,
  file: string,
): Promise<void> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of data) {
    size += (chunk as Buffer).length;
    if (size > expected.size) break;
    hash.update(chunk as Buffer);
  }
  if (size !== expected.size) data.destroy();
  checkDigest(file, expected, size, hash.digest('hex'));
}

/**
 * The one verdict on an entry's bytes: the size the signed metadata declares,
 * then its sha256. `bytes` past the declared size count as "more than".
 */
export function checkDigest(
  file: string,
  expected: ExpectedEntry,
  bytes: number,
  sha256: string,
): void {
  const where = {
    file,
    entry: expected.name,
    ...(expected.component ? { component: expected.component } : {}),
  };
  if (bytes !== expected.size) {
    throw new FerryError(
      'E_SIZE_MISMATCH',
      `${file}: ${expected.name} holds ${bytes > expected.size ? 'more than' : 'only'} ${bytes} bytes; the metadata says ${expected.size}`,
      {
        ...where,
        hint: 'it was altered, truncated or damaged: get it again from its publisher',
      },
    );
  }
  if (expected.sha256 !== undefined && sha256 !== expected.sha256) {
    throw new FerryError(
      'E_HASH_MISMATCH',
      `${file}: ${expected.name} does not match its signed sha256`,
      {
        ...where,
        hint: 'it was altered or damaged after signing: get it again from its publisher',
      },
    );
  }
}

/**
 * Checks items on a few lanes at once (the hash pool does the work on every
 * core). After a failure no new item starts; the items before it all finish,
 * so the error thrown is that of the first bad item in the given order,
 * exactly as a sequential check would have reported.
 */
export async function checkInOrder<T>(
  items: readonly T[],
  check: (item: T) => Promise<void>,
  lanes = 6,
): Promise<void> {
  const failures: Array<{ at: number; error: unknown }> = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length && failures.length === 0) {
      const at = next++;
      try {
        await check(items[at] as T);
      } catch (error) {
        failures.push({ at, error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, items.length) }, lane));
  if (failures.length > 0) throw failures.sort((a, b) => a.at - b.at)[0]?.error;
}

export interface VerifyResult {
  file: string;
  format: string;
  product: string;
  release: string;
  kind: string;
  signature: SignatureStatus;
  entries: number;
  bytes: number;
}

/** Signature and threshold, then every entry and every byte against the signed metadata. */
export async function verifyBundle(file: string, trustFile: string): Promise<VerifyResult> {
  const trust = await readTrustRoot(trustFile);
  const opened = await openTrusted(file, trust);
  const { reader, metadata } = opened;
  try {
    const expected = expectedEntries(metadata, reader.metadataBytes.length);
    EntryAudit.checkListing(reader, expected);
    const audit = new EntryAudit(expected, file);
    const index = await reader.index();
    const counted = index
      ? await verifyIndexed(reader, index, audit)
      : await verifyStreaming(reader, audit);
    const missing = audit.missing();
    if (missing.length > 0) {
      throw new FerryError(
        'E_MISSING_ENTRY',
        `${file}: ${missing.length} listed entr${missing.length === 1 ? 'y is' : 'ies are'} missing, the first ${missing[0]}`,
        {
          file,
          entry: missing[0] as string,
          hint: 'the bundle is incomplete: copy it again from its source',
        },
      );
    }
    return {
      file,
      format: reader.format,
      product: metadata.product,
      release: metadata.release.version,
      kind: metadata.kind,
      signature: opened.signature,
      ...counted,
    };
  } finally {
    await reader.close();
  }
}

interface Counted {
  entries: number;
  bytes: number;
}

/** tar.gz and zip: entries in archive order, hashed as they stream past. */
async function verifyStreaming(reader: BundleReader, audit: EntryAudit): Promise<Counted> {
  const counted = { entries: 0, bytes: 0 };
  await reader.visit(async (raw, data) => {
    const expected = audit.admit(raw);
    counted.entries++;
    if (expected.name === 'bundle.json') {
      sameMetadata(reader, await collect(data));
      return;
    }
    if (raw.type !== 'file') {
      data.resume();
      return;
    }
    await hashEntry(data, expected, reader.file);
    counted.bytes += expected.size;
  });
  return counted;
}

/**
 * Plain tar: every header is checked before any data is read, then the files
 * are hashed at their offsets on every core. The verdict is the same as the
 * streaming one, down to which bad entry is named first.
 */
async function verifyIndexed(
  reader: BundleReader,
  index: readonly IndexedEntry[],
  audit: EntryAudit,
): Promise<Counted> {
  const files: Array<{ entry: ExpectedEntry; offset: number }> = [];
  for (const raw of index) {
    const entry = audit.admit(raw);
    if (entry.name === 'bundle.json') {
      sameMetadata(reader, await readAt(reader.file, raw.offset, raw.size));
      reader.countRead(raw.size);
    } else if (entry.type === 'file') files.push({ entry, offset: raw.offset });
  }
  await withHashPool((pool) =>
    checkInOrder(files, async ({ entry, offset }) => {
      const result = await pool
        .run({ segments: [{ path: reader.file, offset, length: entry.size }] })
        .catch((error: unknown) => {
          throw ioError(error, reader.file, 'read');
        });
      reader.countRead(result.bytes);
      checkDigest(reader.file, entry, result.bytes, result.sha256);
    }),
  );
  return { entries: index.length, bytes: files.reduce((sum, { entry }) => sum + entry.size, 0) };
}

function sameMetadata(reader: BundleReader, stored: Buffer): void {
  if (!stored.equals(reader.metadataBytes)) {
    throw new FerryError('E_BUNDLE_CORRUPT', `${reader.file}: bundle.json changed between reads`, {
      file: reader.file,
      entry: 'bundle.json',
      hint: 'the file is being written to, or the medium is failing',
    });
  }
}

async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
