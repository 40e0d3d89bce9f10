import {
  assertTrusted,
  checkSignatures,
  decodeEnvelope,
  decodeMetadata,
  expectedEntries,
  FerryError,
  type BundleMetadata,
  type Envelope,
  type SignatureStatus,
  type TrustRoot,
} from '../manifest-schema/index.js';
import { bundleLayout } from './layout.js';
import { isMediaFolder, mediaOf, PartsSource, type MediaOptions } from './media.js';
import type { BundleReader, ReaderFormat, Skeleton } from './reader.js';
import { openFileSource, type BundleSource } from './source.js';
import { openTar } from './tar.js';
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
}

/**
 * Opens a bundle and decodes its metadata, reading nothing else. The
 * signature comes first, before the metadata is parsed at all: with a trust
 * root it must meet it, and without one (inspect) an envelope that carries no
 * signature is still refused, so every command gives the same first verdict.
 */
export async function openBundleMetadata(
  file: string,
  trust?: TrustRoot,
  media: MediaOptions = {},
): Promise<OpenedBundle> {
  const reader = await openBundle(file, { ...media, ...(trust ? { trust } : {}) });
  try {
    const { envelope, payload } = decodeEnvelope(reader.metadataBytes, file);
    const signature = trust ? checkSignatures(envelope, payload, trust) : unchecked(envelope);
    assertTrusted(signature, file);
    const metadata = decodeMetadata(payload, file);
    reader.expect(metadata);
    return { reader, envelope, metadata, ...(trust ? { signature } : {}) };
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

/** Like openBundleMetadata, with the signature status that met the trust root. */
export async function openTrusted(
  file: string,
  trust: TrustRoot,
  media: MediaOptions = {},
): Promise<OpenedBundle & { signature: SignatureStatus }> {
  return (await openBundleMetadata(file, trust, media)) as OpenedBundle & {
    signature: SignatureStatus;
  };
}
