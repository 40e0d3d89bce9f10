/**
 * The walk along a chain of trust roots, as TUF's client workflow does it
 * (specification §5.3): root N+1 is accepted when a threshold of root N's
 * root keys and a threshold of its own root keys signed it and its version
 * is exactly N+1; only the final root's expiry counts, so an appliance that
 * was offline for years still walks from the root it holds to today's.
 * Pure: the bytes and the time are handed in.
 */
import { isFerryError, FerryError } from './errors.js';
import {
  CHAIN_ROOT,
  decodeRoot,
  describeSource,
  rootSigners,
  shortfall,
  type RevokedKey,
  type RootSource,
  type TrustedRoot,
} from './trust.js';

/** Steps past the trusted root a chain may take: a rotation a week for twenty years. */
export const MAX_ROOT_STEPS = 1024;

export interface RootCandidate extends RootSource {
  /** The envelope's bytes as carried; refused unread past MAX_ROOT_BYTES. */
  bytes: Buffer;
}

interface Candidate {
  root: TrustedRoot;
  source: RootSource;
}

export interface ChainWalk {
  /**
   * The newest root the walk accepted, with the keys the chain revoked: the
   * final root when there is no refusal, the trusted one when nothing was.
   */
  root: TrustedRoot;
  /** The versions walked, the trusted one first. */
  versions: number[];
  /** The roots accepted past the trusted one, in order, with the bytes each was decoded from. */
  accepted: Array<{ root: TrustedRoot; bytes: Buffer }>;
  /** Why the chain was refused; absent when it was accepted. */
  refusal?: FerryError;
}

/**
 * Walks from `trusted` along `candidates`: those at or below the trusted
 * version are skipped (a bundle carries the chain from version 1), the rest
 * must be trusted+1, trusted+2, … in the order given.
 */
export function walkRootChain(
  trusted: TrustedRoot,
  candidates: readonly RootCandidate[],
  now: Date,
): ChainWalk {
  const path: TrustedRoot[] = [trusted];
  const accepted: ChainWalk['accepted'] = [];
  const result = (refusal?: FerryError): ChainWalk => ({
    root: withRevocations(path),
    versions: path.map((root) => root.version),
    accepted,
    ...(refusal ? { refusal } : {}),
  });
  // A chain from version 1 holds the trusted version's predecessors too: more
  // candidates than those and the steps allowed is refused before any is read.
  const past = candidates[trusted.version + MAX_ROOT_STEPS];
  if (past) return result(tooLong(trusted, past));
  // One root at a time: a root is decoded only once its predecessor was accepted,
  // so nothing of a root past the first refusal is ever looked at.
  let newest: Candidate | undefined;
  let steps = 0;
  for (const { bytes, ...source } of candidates) {
    let root: TrustedRoot;
    try {
      root = decodeRoot(bytes, source, CHAIN_ROOT);
    } catch (error) {
      if (isFerryError(error)) return result(error);
      throw error;
    }
    if (root.version <= trusted.version) continue;
    if (++steps > MAX_ROOT_STEPS) return result(tooLong(trusted, source));
    const next = { root, source };
    const refusal = stepRefusal(path.at(-1) ?? trusted, next);
    if (refusal) return result(refusal);
    path.push(root);
    accepted.push({ root, bytes });
    newest = next;
  }
  const final = path.at(-1) ?? trusted;
  if (final.expires !== null && now.getTime() >= Date.parse(final.expires)) {
    const where = newest ? describeSource(newest.source) : 'the trusted root';
    return result(
      new FerryError(
        'E_ROOT_EXPIRED',
        `${where}: trust root version ${final.version}, the newest, expired at ${final.expires} (it is now ${now.toISOString()})`,
        {
          ...(newest ? sourceDetails(newest.source) : {}),
          hint: 'the root key holders must sign a newer trust root and ship it in a bundle; if the appliance clock is wrong, set it (a clock before the newest installed bundle is never believed)',
        },
      ),
    );
  }
  return result();
}

function tooLong(trusted: TrustedRoot, { file, entry }: RootSource): FerryError {
  const source = { file, ...(entry === undefined ? {} : { entry }) };
  return new FerryError(
    'E_ROOT_CHAIN_TOO_LONG',
    `${describeSource(source)}: the chain has more than ${MAX_ROOT_STEPS} trust roots past the trusted version ${trusted.version}`,
    {
      ...sourceDetails(source),
      hint: `a chain walks at most ${MAX_ROOT_STEPS} steps at once: update the appliance with a bundle from an earlier rotation first`,
    },
  );
}

/** Why `next` may not follow `current`, or undefined when it may. */
function stepRefusal(current: TrustedRoot, next: Candidate): FerryError | undefined {
  const where = describeSource(next.source);
  const details = sourceDetails(next.source);
  const expected = current.version + 1;
  if (next.root.version !== expected) {
    return new FerryError(
      'E_ROOT_VERSION',
      `${where}: trust root version ${next.root.version} follows version ${current.version}; the chain needs version ${expected} there`,
      {
        ...details,
        field: '/version',
        hint: 'a chain carries every trust root from the trusted one on, each version once and in order',
      },
    );
  }
  for (const [signer, code] of [
    [current, 'E_ROOT_THRESHOLD_OLD'],
    [next.root, 'E_ROOT_THRESHOLD_NEW'],
  ] as const) {
    const signed = rootSigners(next.root, signer);
    if (signed.size < signer.roles.root.threshold) {
      return new FerryError(
        code,
        `${where}: trust root version ${next.root.version} ${shortfall(signer, 'root', signed)}`,
        {
          ...details,
          hint: `the missing root key holders of version ${signer.version} must sign it (\`ferry trust sign\`) before it is shipped`,
        },
      );
    }
  }
  return undefined;
}

function sourceDetails(source: RootSource): { file: string; entry?: string } {
  return source.entry === undefined ? { file: source.file } : { ...source };
}

/**
 * `path`'s last root, with every key that was a targets key in an earlier
 * root of the path (or revoked before it) and is not in the last root's
 * targets role.
 */
export function withRevocations(path: readonly TrustedRoot[]): TrustedRoot {
  const first = path[0];
  const last = path.at(-1);
  if (!first || !last) throw new Error('withRevocations: an empty path');
  const reset = path
    .slice(1)
    .findLast((root) => root.signed?.document['x-ferry']?.resetHighestRelease !== undefined);
  const release = reset?.signed?.document['x-ferry']?.resetHighestRelease;
  const revoked = new Map<string, RevokedKey>(Object.entries(first.revoked));
  for (const [index, after] of path.entries()) {
    const before = path[index - 1];
    if (!before) continue;
    for (const keyid of before.roles.targets.keyids) {
      const key = before.keys[keyid];
      if (key && !after.roles.targets.keyids.includes(keyid))
        revoked.set(keyid, { ...key, revokedIn: after.version });
    }
  }
  for (const keyid of last.roles.targets.keyids) revoked.delete(keyid);
  // A reset counts once, on the walk that passes it: never again from the root it ended at.
  const { resetHighestRelease: _passed, ...root } = last;
  return {
    ...root,
    revoked: Object.fromEntries(revoked),
    ...(reset && release !== undefined
      ? { resetHighestRelease: { release, version: reset.version } }
      : {}),
  };
}
