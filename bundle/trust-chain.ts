import { createHash } from 'node:crypto';
import {
  BUNDLE_METADATA_ENTRY,
  FerryError,
  frontEntries,
  isFerryError,
  MAX_ROOT_BYTES,
  MAX_ROOT_STEPS,
  parseJsonLimited,
  walkRootChain,
  type ArtifactRef,
  type BundleMetadata,
  type ChainWalk,
  type RootCandidate,
  type TrustedRoot,
} from '../manifest-schema/index.js';
import { EntryAudit, unlistedEntryError } from './audit.js';
import { collect, type BundleReader, type ChainListing } from './reader.js';

const ENTRY = /^trust\/root-([1-9][0-9]{0,14})\.json$/;

interface CarriedRoot {
  name: string;
  size: number;
  sha256: string;
}

/**
 * The trust roots a bundle carries (`trust/root-N.json`, right after
 * bundle.json), walked from the one the appliance trusts: the root its
 * signature is then checked against. Read before the signature is checked,
 * as TUF does: each root proves itself by its predecessor's signatures.
 */
export async function walkCarriedChain(
  reader: BundleReader,
  payload: Buffer,
  trusted: TrustedRoot,
  now: Date,
): Promise<{ root: TrustedRoot; carried: CarriedRoot[]; walked: ChainWalk['accepted'] }> {
  const listing = chainListing(payload, reader.file);
  // Nothing a reader could walk: the signature (or the metadata check after it) refuses the bundle,
  // or it needs no walk; either way the newest root, the trusted one, must not have expired.
  if (!listing) {
    const walk = walkRootChain(trusted, [], now);
    if (walk.refusal) throw walk.refusal;
    return { root: walk.root, carried: [], walked: [] };
  }
  const carried: CarriedRoot[] = [];
  const candidates: RootCandidate[] = [];
  try {
    await reader.visitChain(listing, async (raw, data) => {
      // Bounded: the header matched the listing, whose sizes are capped.
      const bytes = await collect(data);
      carried.push({
        name: raw.name,
        size: raw.size,
        sha256: createHash('sha256').update(bytes).digest('hex'),
      });
      // Roots the appliance already passed need no walking: only their hash is kept.
      if (Number(ENTRY.exec(raw.name)?.[1]) > trusted.version)
        candidates.push({ file: reader.file, entry: raw.name, bytes });
    });
  } catch (error) {
    // Only the roots are known yet: any other entry where a root belongs means that root is missing.
    if (
      isFerryError(error) &&
      error.code === 'E_UNLISTED_ENTRY' &&
      !ENTRY.test(error.details.entry ?? '')
    )
      throw EntryAudit.explain(
        reader.file,
        frontEntries(listing.roots, reader.metadataBytes.length),
        carried.length + 1,
        null,
      );
    throw error;
  }
  const walk = walkRootChain(trusted, candidates, now);
  if (walk.refusal) throw walk.refusal;
  return { root: walk.root, carried, walked: walk.accepted };
}

/**
 * Where the unverified metadata says the trust roots are, and nothing more:
 * its `trustChain` list and the creation time its entries' headers carry.
 * The rest of the metadata is not looked at before the signature. Null when
 * the payload lists no chain a reader could walk (the signature check then
 * refuses it, or it needs no walk); a chain past the caps is refused here,
 * before a byte of it is read.
 */
function chainListing(payload: Buffer, file: string): ChainListing | null {
  // The payload is not verified yet: its bytes only say whether to look, and
  // they are the very bytes the signature is checked over next.
  if (!payload.includes('"trustChain":')) return null;
  let raw: unknown;
  try {
    raw = parseJsonLimited(payload.toString('utf8'), file, BUNDLE_METADATA_ENTRY);
  } catch {
    return null;
  }
  const { release, trustChain } = (raw ?? {}) as { release?: unknown; trustChain?: unknown };
  const createdAt = (release as { createdAt?: unknown } | null)?.createdAt;
  if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt))) return null;
  if (!Array.isArray(trustChain) || trustChain.length === 0) return null;
  if (trustChain.length > MAX_ROOT_STEPS) {
    throw tooLong(file, (trustChain[MAX_ROOT_STEPS] as { path?: unknown } | null)?.path);
  }
  const roots: ArtifactRef[] = [];
  for (const ref of trustChain as unknown[]) {
    const { path, size, sha256 } = (ref ?? {}) as Record<string, unknown>;
    if (typeof path !== 'string' || !ENTRY.test(path)) return null;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return null;
    if (typeof sha256 !== 'string') return null;
    if (size > MAX_ROOT_BYTES) {
      throw new FerryError('E_ROOT_TOO_LARGE', `${file}: ${path} is ${size} bytes`, {
        file,
        entry: path,
        hint: `a trust root is limited to ${MAX_ROOT_BYTES} bytes; this bundle was not built by Ferry`,
      });
    }
    roots.push({ path, size, sha256 });
  }
  return { createdAt, roots };
}

/**
 * After the signature: the roots walked are exactly those the signed
 * metadata lists, so a chain cannot be swapped under a signed bundle.
 */
export function checkCarriedChain(
  metadata: BundleMetadata,
  carried: readonly CarriedRoot[],
  file: string,
): void {
  const listed = metadata.trustChain ?? [];
  for (const [index, ref] of listed.entries()) {
    const found = carried[index];
    if (
      !found ||
      found.name !== ref.path ||
      found.size !== ref.size ||
      found.sha256 !== ref.sha256
    ) {
      throw new FerryError(
        found?.name === ref.path ? 'E_HASH_MISMATCH' : 'E_MISSING_ENTRY',
        `${file}: ${ref.path} ${found?.name === ref.path ? 'does not match the sha256 signed for it' : 'is not where the signed metadata puts it'}`,
        {
          file,
          entry: ref.path,
          hint: 'the trust chain was changed after the bundle was signed: get the bundle again from its publisher',
        },
      );
    }
  }
  const extra = carried[listed.length];
  if (extra) throw unlistedEntryError(file, extra.name);
}

function tooLong(file: string, entry: unknown): FerryError {
  return new FerryError(
    'E_ROOT_CHAIN_TOO_LONG',
    `${file}: the bundle carries more than ${MAX_ROOT_STEPS} trust roots`,
    {
      file,
      ...(typeof entry === 'string' ? { entry } : {}),
      hint: `a bundle carries at most ${MAX_ROOT_STEPS} trust roots; this one was not built by Ferry`,
    },
  );
}
