import {
  assertTrusted,
  checkSignatures,
  decodeEnvelope,
  decodeMetadata,
  FerryError,
  type BundleMetadata,
  type Envelope,
  type SignatureStatus,
  type TrustedRoot,
} from '../manifest-schema/index.js';
import type { BundleReader, ReaderFormat } from './reader.js';
import { openFileSource, type BundleSource } from './source.js';
import { openTar } from './tar.js';
import { checkCarriedChain, walkCarriedChain } from './trust-chain.js';
import { openZip } from './zip.js';

/** Opens a bundle file and reads its bundle.json (and, for a zip, its central directory). */
export async function openBundle(file: string): Promise<BundleReader> {
  const source = await openFileSource(file);
  try {
    return await readBundle(source);
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
  /** The trust root the signature was checked against: the given one, walked along the bundle's chain. */
  root?: TrustedRoot;
}

/** What a bundle is checked against: a trust root, and the time (the later of the clock and the appliance's floor). */
export interface TrustContext {
  root: TrustedRoot;
  now: Date;
}

/**
 * Opens a bundle and decodes its metadata, reading nothing else but the
 * trust roots it carries. With a trust root, the chain is walked and the
 * signature status attached; callers that act on the bundle use
 * `openTrusted`, which refuses an untrusted one.
 */
export async function openBundleMetadata(
  file: string,
  trust?: TrustContext,
): Promise<OpenedBundle> {
  const reader = await openBundle(file);
  try {
    const { envelope, payload } = decodeEnvelope(reader.metadataBytes, file);
    if (!trust) return { reader, envelope, metadata: decodeMetadata(payload, file) };
    const { root, carried } = await walkCarriedChain(reader, payload, trust.root, trust.now);
    const signature = checkSignatures(envelope, payload, root);
    const metadata = decodeMetadata(payload, file);
    if (signature.valid) checkCarriedChain(metadata, carried, file);
    return { reader, envelope, metadata, signature, root };
  } catch (error) {
    await reader.close();
    throw error;
  }
}

/**
 * Like openBundleMetadata, but the chain is walked and the signature must
 * meet the final root before anything else is looked at; then the bundle
 * must not have expired.
 */
export async function openTrusted(
  file: string,
  trust: TrustContext,
): Promise<OpenedBundle & { signature: SignatureStatus; root: TrustedRoot }> {
  const reader = await openBundle(file);
  try {
    const { envelope, payload } = decodeEnvelope(reader.metadataBytes, file);
    const { root, carried } = await walkCarriedChain(reader, payload, trust.root, trust.now);
    const signature = checkSignatures(envelope, payload, root);
    assertTrusted(signature, file);
    const metadata = decodeMetadata(payload, file);
    checkCarriedChain(metadata, carried, file);
    checkExpiry(metadata, trust.now, file);
    return { reader, envelope, metadata, signature, root };
  } catch (error) {
    await reader.close();
    throw error;
  }
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
