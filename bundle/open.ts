import {
  assertTrusted,
  checkSignatures,
  decodeEnvelope,
  decodeMetadata,
  expectedEntries,
  FerryError,
  frontEntries,
  type BundleMetadata,
  type Envelope,
  type SignatureStatus,
  type TrustedRoot,
} from '../manifest-schema/index.js';
import { archiveTime, bundleLayout, layoutArchive, toArchiveEntries } from './layout.js';
import { isMediaFolder, mediaOf, PartsSource, type MediaOptions } from './media.js';
import type { BundleReader, ReaderFormat, Skeleton } from './reader.js';
import { openFileSource, type BundleSource } from './source.js';
import { openTar } from './tar.js';
import type { ChainWalk } from '../manifest-schema/chain.js';
import { checkCarriedChain, walkCarriedChain } from './trust-chain.js';
import { openZip } from './zip.js';

/**
 * Opens a bundle file, or the volumes `ferry media` wrote, and reads its
 * bundle.json (and, for a zip, its central directory). On media, the parts
 * index is checked against `media.trust` before any part is read.
 */
export async function openBundle(file: string, media: MediaOptions = {}): Promise<BundleReader> {
  const source = (await isMediaFolder(file))
    ? await PartsSource.open(file, media)
    : await openFileSource(file);
  try {
    const reader = await readBundle(source);
    mediaOf(source)?.checkMetadata(reader.metadataBytes, reader.format);
    return reader;
  } catch (error) {
    await source.close().catch(() => undefined);
    throw error;
  }
}

/** Reads a bundle from any source, which the reader then owns: closing the reader closes it. */
export async function readBundle(source: BundleSource): Promise<BundleReader> {
  const head = Buffer.alloc(Math.min(512, source.size));
  await source.read(head, 0);
  const format = sniff(head);
  if (format === null) {
    throw new FerryError('E_BUNDLE_FORMAT', `${source.name} is not a tar, tar.gz or zip archive`, {
      file: source.name,
      hint: 'pass a bundle written by `ferry build`; it may have been truncated or damaged in transfer',
    });
  }
  const archive = format === 'zip' ? await openZip(source) : await openTar(source, format);
  let skeleton: Skeleton | null = null;
  const bound = (): Skeleton => {
    if (skeleton === null)
      throw new FerryError('E_INTERNAL', 'the bundle was read before its metadata was bound');
    return skeleton;
  };
  return {
    source,
    file: source.name,
    format,
    size: source.size,
    metadataBytes: archive.metadataBytes,
    bytesRead: () => source.bytesRead(),
    visitChain: (chain, visitor) => {
      const expected = frontEntries(chain.roots, archive.metadataBytes.length);
      const layout = layoutArchive(
        format === 'zip' ? 'zip' : 'tar',
        toArchiveEntries(expected),
        archiveTime({ release: chain }),
        archive.forceZip64,
      );
      return archive.front({ layout, expected }, visitor);
    },
    expect: (metadata) => {
      const size = archive.metadataBytes.length;
      skeleton = {
        layout: bundleLayout(format === 'zip' ? 'zip' : 'tar', metadata, size, archive.forceZip64),
        expected: expectedEntries(metadata, size),
      };
    },
    index: () => archive.index(bound()),
    visit: (visitor, select, upTo) => archive.visit(bound(), visitor, select, upTo),
    close: async () => {
      await archive.close();
      await source.close();
    },
  };
}

function sniff(head: Buffer): ReaderFormat | null {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'zip';
  if (head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar') return 'tar';
  return null;
}

export interface OpenedBundle {
  reader: BundleReader;
  envelope: Envelope;
  metadata: BundleMetadata;
  /** Present when a trust root was given. */
  signature?: SignatureStatus;
  /** The trust root the signature was checked against: the given one, walked along the bundle's chain. */
  root?: TrustedRoot;
  /** The roots that walk passed, past the given one, as the bundle carries them (a repository keeps them). */
  walked?: ChainWalk['accepted'];
}

/** What a bundle is checked against: a trust root, and the time (the later of the clock and the appliance's floor). */
export interface TrustContext {
  root: TrustedRoot;
  now: Date;
}

/**
 * Opens a bundle and decodes its metadata, reading nothing else but the
 * trust roots it carries. The signature comes first, before the metadata is
 * acted on: with a trust context, the carried chain is walked from the
 * appliance's root and the signature must meet the root it ends at; without
 * one (inspect) an envelope that carries no signature is still refused, so
 * every command gives the same first verdict. On media, the parts index is
 * checked against that same walked root: after a rotation the appliance's
 * own root does not know the key that signed it.
 */
export async function openBundleMetadata(
  file: string,
  trust?: TrustContext,
  media: MediaOptions = {},
): Promise<OpenedBundle> {
  const { trust: _mediaTrust, ...mediaRest } = media;
  const reader = await openBundle(file, trust ? mediaRest : media);
  try {
    const { envelope, payload } = decodeEnvelope(reader.metadataBytes, file);
    const walked = trust ? await walkCarriedChain(reader, payload, trust.root, trust.now) : null;
    if (walked) mediaOf(reader.source)?.checkSigned(walked.root);
    const signature = walked
      ? checkSignatures(envelope, payload, walked.root)
      : unchecked(envelope);
    assertTrusted(signature, file);
    const metadata = decodeMetadata(payload, file);
    reader.expect(metadata);
    if (!walked) return { reader, envelope, metadata };
    checkCarriedChain(metadata, walked.carried, file);
    return { reader, envelope, metadata, signature, root: walked.root, walked: walked.walked };
  } catch (error) {
    await reader.close();
    throw error;
  }
}

/** Without a trust root only one thing is known: whether anyone signed at all. */
function unchecked(envelope: Envelope): SignatureStatus {
  const signed = envelope.signatures.length > 0;
  return {
    valid: signed,
    keyids: [],
    threshold: 1,
    revoked: [],
    problems: signed ? [] : ['the bundle carries no signature'],
  };
}

/**
 * Like openBundleMetadata, with the signature status that met the walked
 * root; then the bundle must not have expired.
 */
export async function openTrusted(
  file: string,
  trust: TrustContext,
  media: MediaOptions = {},
): Promise<OpenedBundle & { signature: SignatureStatus; root: TrustedRoot }> {
  const opened = (await openBundleMetadata(file, trust, media)) as OpenedBundle & {
    signature: SignatureStatus;
    root: TrustedRoot;
  };
  try {
    checkExpiry(opened.metadata, trust.now, file);
  } catch (error) {
    await opened.reader.close();
    throw error;
  }
  return opened;
}

function checkExpiry(metadata: BundleMetadata, now: Date, file: string): void {
  if (metadata.expires === undefined || now.getTime() < Date.parse(metadata.expires)) return;
  throw new FerryError(
    'E_BUNDLE_EXPIRED',
    `${file}: ${metadata.product} ${metadata.release.version} expired at ${metadata.expires} (it is now ${now.toISOString()})`,
    {
      file,
      entry: 'bundle.json',
      field: '/expires',
      hint: 'ask its publisher for a newer bundle; if the appliance clock is wrong, set it (a clock before the newest installed bundle is never believed)',
    },
  );
}
