import {
  assertTrusted,
  checkSignatures,
  decodeEnvelope,
  decodeMetadata,
  FerryError,
  type BundleMetadata,
  type Envelope,
  type SignatureStatus,
  type TrustRoot,
} from '../manifest-schema/index.js';
import { isMediaFolder, mediaOf, PartsSource, type MediaOptions } from './media.js';
import type { BundleReader, ReaderFormat } from './reader.js';
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
  return {
    ...archive,
    source,
    file: source.name,
    format,
    size: source.size,
    bytesRead: () => source.bytesRead(),
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
 * Opens a bundle and decodes its metadata, reading nothing else. With a
 * trust root, the signature status is attached; callers that act on the
 * bundle use `openTrusted`, which refuses an untrusted one.
 */
export async function openBundleMetadata(
  file: string,
  trust?: TrustRoot,
  media: MediaOptions = {},
): Promise<OpenedBundle> {
  const reader = await openBundle(file, { ...media, ...(trust ? { trust } : {}) });
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
  media: MediaOptions = {},
): Promise<OpenedBundle & { signature: SignatureStatus }> {
  const reader = await openBundle(file, { ...media, trust });
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
