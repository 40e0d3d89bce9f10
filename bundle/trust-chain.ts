import { createHash } from 'node:crypto';
import {
  decodeMetadata,
  FerryError,
  MAX_ROOT_BYTES,
  MAX_ROOT_STEPS,
  walkRootChain,
  type BundleMetadata,
  type RootCandidate,
  type TrustedRoot,
} from '../manifest-schema/index.js';
import { unlistedEntryError } from './audit.js';
import { collect, type BundleReader } from './reader.js';

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
): Promise<{ root: TrustedRoot; carried: CarriedRoot[] }> {
  // The payload is not verified yet: its bytes only say whether to look, and
  // they are the very bytes the signature is checked over next.
  if (!payload.includes('"trustChain":')) return { root: trusted, carried: [] };
  const listed = provisional(payload, reader.file);
  const last = listed?.trustChain?.at(-1);
  // Nothing a reader could walk: the signature (or the metadata check after it) refuses the bundle.
  if (!listed || !last) return { root: trusted, carried: [] };
  // The archive's layout is bound from the unverified metadata only to read the
  // roots through the byte-exact readers; the signed bytes are bound again after
  // the signature, and `checkCarriedChain` ties the roots to their signed hashes.
  reader.expect(listed);
  const carried: CarriedRoot[] = [];
  const candidates: Array<RootCandidate | undefined> = [];
  await reader.visit(
    async (raw, data) => {
      const version = ENTRY.exec(raw.name)?.[1];
      if (version === undefined || raw.type !== 'file') {
        data.resume();
        throw unlistedEntryError(reader.file, raw.name);
      }
      const slot = carried.length;
      if (slot === MAX_ROOT_STEPS) throw tooLong(reader.file, raw.name);
      if (raw.size > MAX_ROOT_BYTES) {
        throw new FerryError(
          'E_ROOT_TOO_LARGE',
          `${reader.file}: ${raw.name} is ${raw.size} bytes`,
          {
            file: reader.file,
            entry: raw.name,
            hint: `a trust root is limited to ${MAX_ROOT_BYTES} bytes; this bundle was not built by Ferry`,
          },
        );
      }
      carried.push({ name: raw.name, size: raw.size, sha256: '' });
      const bytes = await collect(data);
      (carried[slot] as CarriedRoot).sha256 = createHash('sha256').update(bytes).digest('hex');
      // Roots the appliance already passed need no walking: only their hash is kept.
      if (Number(version) > trusted.version)
        candidates[slot] = { file: reader.file, entry: raw.name, bytes };
    },
    (name) => name.startsWith('trust/'),
    last.path,
  );
  const walk = walkRootChain(
    trusted,
    candidates.filter((c): c is RootCandidate => c !== undefined),
    now,
  );
  if (walk.refusal) throw walk.refusal;
  return { root: walk.root, carried };
}

/** The metadata as it claims to be, before its signature is checked; null when it is not even that. */
function provisional(payload: Buffer, file: string): BundleMetadata | null {
  try {
    return decodeMetadata(payload, file);
  } catch {
    return null;
  }
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

function tooLong(file: string, entry: string): FerryError {
  return new FerryError(
    'E_ROOT_CHAIN_TOO_LONG',
    `${file}: the bundle carries more than ${MAX_ROOT_STEPS} trust roots`,
    {
      file,
      entry,
      hint: `a bundle carries at most ${MAX_ROOT_STEPS} trust roots; this one was not built by Ferry`,
    },
  );
}
