import type { KeyObject } from 'node:crypto';
import { walkRootChain, type RootCandidate } from '../manifest-schema/chain.js';
import { canonicalJson } from '../manifest-schema/canonical.js';
import { FerryError } from '../manifest-schema/errors.js';
import type { TrustedRoot } from '../manifest-schema/trust.js';
import { documentKeys, type RepoConfig, type TrustDoc } from './documents.js';

/**
 * Which keys sign a repository's documents, as its trust root rotates. A
 * repository takes a newer trust root only from a bundle published to it
 * whose chain walks there (as an appliance does); from that event on, the
 * new root's release keys (and the repository keys) sign, and a key the
 * new root dropped signs nothing more. What was written before stays
 * readable: each event is checked against the root it was written under
 * (the chain of event digests pins the older ones to the newest, which a
 * current key signed), and the channel and policy documents that stood at
 * the rotation are pinned by digest in the trust document.
 */

export interface Era {
  /** The first event written under it. */
  from: number;
  version: number;
  keys: Map<string, KeyObject>;
  /** The digest of the event before `from`, as the trust document pins it (none for the first era). */
  prev?: string;
}

export interface FollowedTrust {
  /** The newest root the repository follows: what bundles are checked against. */
  root: TrustedRoot;
  /** Oldest first; the first is the config's root, from event 1. */
  eras: Era[];
  /** Every root the repository holds, by version: the config's and the trust document's. */
  roots: ReadonlyMap<number, TrustedRoot>;
  /** The roots before the config's that the first bundle carried (see RepoConfig.chain). */
  before: RootCandidate[];
  pinned: ReadonlySet<string>;
}

/** The trust document as read: its value (unverified until followTrust), digest and bytes. */
export interface TrustRead {
  value: TrustDoc;
  digest: string;
  manifest: string;
}

/**
 * The eras a repository followed: from the config's root (`configRoot`),
 * along the roots its trust document holds. The trust document must be
 * signed by a release key of the newest root, hold a chain that walks, and
 * name the config it was written over.
 */
export function followTrust(
  repo: string,
  config: RepoConfig,
  configDigest: string,
  configRoot: TrustedRoot,
  read: TrustRead | undefined,
  verify: (keys: ReadonlyMap<string, KeyObject>) => void,
): FollowedTrust {
  const first: Era = {
    from: 1,
    version: configRoot.version,
    keys: documentKeys(configRoot, config.keys),
  };
  const roots = new Map([[configRoot.version, configRoot]]);
  const before = (config.chain ?? []).map((text, index) => ({
    file: `${repo}: the repository config`,
    entry: `chain[${index}]`,
    bytes: Buffer.from(text, 'base64'),
  }));
  if (!read) return { root: configRoot, eras: [first], roots, before, pinned: new Set() };
  const where = `${repo}: the trust document`;
  const doc = read.value;
  if (!isTrustDoc(doc))
    throw untrusted(
      where,
      'is not { formatVersion, config, roots, eras: [{ version, seq, prev }], pinned } as Ferry writes it',
    );
  const candidates: RootCandidate[] = doc.roots.map((text, index) => ({
    file: where,
    entry: `roots[${index}]`,
    bytes: Buffer.from(text, 'base64'),
  }));
  const walk = walkRootChain(configRoot, candidates, new Date());
  // Its documents stay readable after the newest root expired; bundles are checked against the expiry.
  if (walk.refusal && walk.refusal.code !== 'E_ROOT_EXPIRED')
    throw untrusted(
      where,
      `holds a chain that does not walk from the config's root: ${walk.refusal.message}`,
    );
  for (const { root } of walk.accepted) roots.set(root.version, root);
  const eras = [first];
  for (const { version, seq, prev } of doc.eras) {
    const before = eras.at(-1) as Era;
    const root = roots.get(version);
    if (!root || version <= before.version || seq <= before.from)
      throw untrusted(
        where,
        `lists trust root version ${version} from event ${seq}, out of order or not in its chain`,
      );
    eras.push({ from: seq, version, keys: documentKeys(root, config.keys), prev });
  }
  const newest = eras.at(-1) as Era;
  if (newest.version !== walk.root.version)
    throw untrusted(
      where,
      `holds trust roots up to version ${walk.root.version} but follows version ${newest.version}`,
    );
  // A release key of the newest root, not a repository key: the config names those, and the
  // trust document is what vouches for the config (its digest) once the repository rotated.
  try {
    verify(documentKeys(roots.get(newest.version) as TrustedRoot));
  } catch (error) {
    if (!(error instanceof FerryError)) throw error;
    const prefix = `${where} `;
    throw untrusted(
      where,
      error.message.startsWith(prefix)
        ? error.message.slice(prefix.length)
        : `does not hold: ${error.message}`,
    );
  }
  if (doc.config !== configDigest)
    throw untrusted(
      where,
      `was written over the config ${doc.config}, but the config is ${configDigest}: the config was replaced`,
    );
  return { root: walk.root, eras, roots, before, pinned: new Set(doc.pinned) };
}

/**
 * A trust document that does not hold: every command refuses the repository (the
 * keys it signs with are unknown), history --verify included, so the hint cannot
 * send the reader there.
 */
function untrusted(where: string, what: string): FerryError {
  return new FerryError('E_REPO_INVALID', `${where} ${what}`, {
    reference: 'ferry.trust',
    hint: 'the trust document (ferry/trust.json, tag ferry.trust) was replaced or edited behind Ferry’s back, or signed by a key its newest trust root does not list: nothing can be read or written until it is restored from a backup',
  });
}

function isTrustDoc(value: unknown): value is TrustDoc {
  const doc = value as Partial<TrustDoc> | null;
  const strings = (list: unknown) =>
    Array.isArray(list) && list.every((s) => typeof s === 'string');
  return (
    typeof doc === 'object' &&
    doc !== null &&
    doc.formatVersion === 1 &&
    typeof doc.config === 'string' &&
    strings(doc.roots) &&
    strings(doc.pinned) &&
    Array.isArray(doc.eras) &&
    doc.eras.every(
      (era: unknown) =>
        typeof era === 'object' &&
        era !== null &&
        Number.isSafeInteger((era as { version?: unknown }).version) &&
        Number.isSafeInteger((era as { seq?: unknown }).seq) &&
        typeof (era as { prev?: unknown }).prev === 'string',
    )
  );
}

/** The keys that sign event `seq`: its era's. */
export function keysAt(eras: readonly Era[], seq: number): Map<string, KeyObject> {
  return (eras.findLast((era) => era.from <= seq) ?? eras[0])?.keys ?? new Map<string, KeyObject>();
}

/**
 * The era taken right after event `seq` when that event is not the one it was
 * taken over (`digest` is another than the trust document pins), else undefined:
 * an event of an older era rewritten with a key the newer root dropped.
 */
export function eraNotAfter(eras: readonly Era[], seq: number, digest: string): Era | undefined {
  return eras.find((era) => era.from === seq + 1 && era.prev !== undefined && era.prev !== digest);
}

/** Every key that signed in any era: approvals count only as the log records them. */
export function everyKey(eras: readonly Era[]): Map<string, KeyObject> {
  return new Map(eras.flatMap((era) => [...era.keys]));
}

export function sameRoot(a: TrustedRoot, b: TrustedRoot): boolean {
  const core = (root: TrustedRoot) =>
    canonicalJson({
      version: root.version,
      expires: root.expires,
      keys: root.keys,
      roles: root.roles,
    });
  return core(a) === core(b);
}

/**
 * Where a trust root given with --trust stands to the repository's chain:
 * `on` it (the repository followed it, or has gone past it), or `ahead` (a
 * newer root the repository has not taken yet: only a publish of a bundle
 * that carries it may go on). Anything else is refused: a root older than
 * the one the repository was made with, or one its chain does not hold.
 */
export function anchorStanding(
  repo: string,
  followed: FollowedTrust,
  anchor: TrustedRoot,
  file: string,
): 'on' | 'ahead' {
  if (anchor.version > followed.root.version) return 'ahead';
  const held = followed.roots.get(anchor.version);
  if (held && sameRoot(held, anchor)) return 'on';
  const first = followed.eras[0] as Era;
  // Older than the root the repository was made with: on its chain when the roots the
  // first bundle carried walk from it to that one.
  const made = followed.roots.get(first.version);
  if (!held && made) {
    const walk = walkRootChain(anchor, followed.before, new Date());
    if (
      (!walk.refusal || walk.refusal.code === 'E_ROOT_EXPIRED') &&
      walk.root.version === made.version &&
      sameRoot(walk.root, made)
    )
      return 'on';
  }
  throw new FerryError(
    'E_REPO_TRUST',
    held
      ? `${repo} holds another trust root version ${anchor.version} than ${file}: its chain is not the one your appliances hold`
      : `${repo} was made with trust root version ${first.version}; ${file} is version ${anchor.version}, older`,
    {
      file,
      hint: held
        ? 'check that --trust names the trust root of this product; a repository whose chain forks from it is not this product’s'
        : `pass the trust root version ${first.version} or later (the repository follows version ${followed.root.version})`,
    },
  );
}

export function aheadOf(
  repo: string,
  followed: FollowedTrust,
  anchor: TrustedRoot,
  file: string,
): FerryError {
  return new FerryError(
    'E_REPO_TRUST',
    `${repo} follows trust root version ${followed.root.version}; ${file} is version ${anchor.version}, which it has not taken`,
    {
      file,
      hint: `publish a bundle that carries trust root version ${anchor.version} to it (\`ferry publish\`): the repository takes it from the bundle`,
    },
  );
}
