import {
  expectedEntries,
  FerryError,
  withHashPool,
  type ExpectedEntry,
  type ReadResult,
  type SignatureStatus,
} from '../manifest-schema/index.js';
import { checkDigest, checkInOrder, EntryAudit, hashEntry, hashEntryAt } from './audit.js';
import { blamePart, mediaOf, type PartsSource } from './media.js';
import { openTrusted, type TrustContext } from './open.js';
import { collect, type BundleReader, type IndexedEntry } from './reader.js';

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

/** Bytes of payload checked so far, of the total; called as each entry is done. */
export type OnProgress = (bytes: number, total: number) => void;

/** Signature and threshold, then every entry and every byte against the signed metadata. */
export async function verifyBundle(
  file: string,
  trust: TrustContext,
  onProgress: OnProgress = () => undefined,
): Promise<VerifyResult> {
  const opened = await openTrusted(file, trust);
  const { reader } = opened;
  try {
    return await checkEntries(opened, file, onProgress);
  } catch (error) {
    // A damaged part is named by part and volume, whatever it broke first.
    throw await blamePart(reader.source, error);
  } finally {
    await reader.close();
  }
}

async function checkEntries(
  opened: Awaited<ReturnType<typeof openTrusted>>,
  file: string,
  onProgress: OnProgress,
): Promise<VerifyResult> {
  const { reader, metadata } = opened;
  const media = mediaOf(reader.source);
  const index = await reader.index();
  // A plain tar's one read on media checks every part too; a stream's parts are checked first.
  if (media && !index) await media.checkParts(true);
  const expected = expectedEntries(metadata, reader.metadataBytes.length);
  const audit = new EntryAudit(expected, file);
  const total = expected.reduce(
    (sum, e) => sum + (e.type === 'file' && e.name !== 'bundle.json' ? e.size : 0),
    0,
  );
  let done = 0;
  const checked = (bytes: number) => onProgress((done += bytes), total);
  const counted = index
    ? await verifyIndexed(reader, index, audit, checked, media)
    : await verifyStreaming(reader, audit, checked);
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
}

interface Counted {
  entries: number;
  bytes: number;
}

/** tar.gz: entries in archive order, hashed as they stream past. */
async function verifyStreaming(
  reader: BundleReader,
  audit: EntryAudit,
  checked: (bytes: number) => void,
): Promise<Counted> {
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
    checked(expected.size);
  });
  return counted;
}

/**
 * Plain tar and zip: every byte but the payload is checked before any payload is read, then the files
 * are hashed at their offsets on every core. The verdict is the same as the
 * streaming one, down to which bad entry is named first.
 */
async function verifyIndexed(
  reader: BundleReader,
  index: readonly IndexedEntry[],
  audit: EntryAudit,
  checked: (bytes: number) => void,
  media: PartsSource | null,
): Promise<Counted> {
  const files: Array<{ entry: ExpectedEntry; offset: number }> = [];
  for (const raw of index) {
    const entry = audit.admit(raw);
    if (entry.name === 'bundle.json') {
      const stored = Buffer.alloc(raw.size);
      await reader.source.read(stored, raw.offset);
      sameMetadata(reader, stored);
    } else if (entry.type === 'file') files.push({ entry, offset: raw.offset });
  }
  const counted = { entries: index.length, bytes: files.reduce((sum, f) => sum + f.entry.size, 0) };
  if (media) {
    const results = await media.readThrough(
      files.map(({ entry, offset }) => ({ offset, size: entry.size })),
      (at) => checked((files[at] as { entry: ExpectedEntry }).entry.size),
    );
    for (const [at, { entry }] of files.entries()) {
      const result = results[at] as ReadResult;
      checkDigest(reader.file, entry, result.bytes, result.sha256);
    }
    return counted;
  }
  await withHashPool((pool) =>
    checkInOrder(files, async ({ entry, offset }) => {
      await hashEntryAt(pool, reader.source, entry, offset);
      checked(entry.size);
    }),
  );
  return counted;
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
