/**
 * Making and signing trust roots: what the root key holders run, offline.
 * A root is drafted (version 1, or version N+1 from N), then each holder
 * adds a signature with their own key, on their own machine if they like;
 * it counts once a threshold of root N's root keys and of its own signed it.
 */
import type { KeyObject } from 'node:crypto';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  canonicalJson,
  decodeRoot,
  envelopeBytes,
  FerryError,
  ioError,
  isStrictVersion,
  keyIdOf,
  keyLabel,
  MAX_ROOT_BYTES,
  MAX_ROOT_STEPS,
  pae,
  parseRootFile,
  parseTrustedRoot,
  publicKeyHex,
  readTrustedRoot,
  ROOT_PAYLOAD_TYPE,
  rootFileText,
  rootSigners,
  signEnvelope,
  TUF_SPEC_VERSION,
  tufTime,
  walkRootChain,
  withSignatures,
  writeFileAtomic,
  type ChainWalk,
  type RoleKeys,
  type RootCandidate,
  type RootDocument,
  type Signer,
  type TrustedKey,
  type TrustedRoot,
} from '../manifest-schema/index.js';
import {
  makeParent,
  readPublicKey,
  readSigners,
  refuseExisting,
  type SigningOptions,
} from './signing.js';

export interface NamedKey {
  key: KeyObject;
  name?: string;
}

export interface RoleSpec {
  keys: readonly NamedKey[];
  threshold: number;
}

export interface FirstRootSpec {
  /** The offline keys that sign the next trust root. */
  root: RoleSpec;
  /** The keys (CI's) that sign bundles. */
  targets: RoleSpec;
  expires: Date;
}

/** Version 1 of a chain of trust roots, unsigned. */
export function firstRoot(spec: FirstRootSpec): RootDocument {
  const keys = new Map<string, TrustedKey>();
  const role = (name: string, { keys: given, threshold }: RoleSpec): RoleKeys => {
    const keyids: string[] = [];
    for (const named of given) addKey(keys, keyids, name, named);
    return { keyids, threshold };
  };
  return rootDocument({
    version: 1,
    expires: spec.expires,
    keys,
    root: role('root', spec.root),
    targets: role('targets', spec.targets),
    consistentSnapshot: false,
  });
}

export interface RootChanges {
  addRoot?: readonly NamedKey[];
  /** Key ids or names of root keys to take out of the root role. */
  revokeRoot?: readonly string[];
  addTargets?: readonly NamedKey[];
  /** Key ids or names of targets keys to revoke: bundles they sign are refused from then on. */
  revokeTargets?: readonly string[];
  rootThreshold?: number;
  targetsThreshold?: number;
  /** Every version carries its own expiry: the appliance checks only the newest root's. */
  expires: Date;
  /** Appliances that walk to this root lower their highest release committed to this one. */
  resetHighestRelease?: string;
}

/** Version N+1 from version N (in either form), unsigned. */
export function nextRoot(previous: TrustedRoot, changes: RootChanges): RootDocument {
  const keys = new Map(Object.entries(previous.keys));
  const role = (
    name: keyof TrustedRoot['roles'],
    add: readonly NamedKey[] = [],
    revoke: readonly string[] = [],
    threshold = previous.roles[name].threshold,
  ): RoleKeys => {
    const gone = new Set(revoke.map((ref) => resolveKey(previous, name, ref)));
    const keyids = previous.roles[name].keyids.filter((keyid) => !gone.has(keyid));
    for (const named of add) addKey(keys, keyids, name, named);
    return { keyids, threshold };
  };
  return rootDocument({
    version: previous.version + 1,
    expires: changes.expires,
    keys,
    root: role('root', changes.addRoot, changes.revokeRoot, changes.rootThreshold),
    targets: role('targets', changes.addTargets, changes.revokeTargets, changes.targetsThreshold),
    consistentSnapshot: previous.signed?.document.consistent_snapshot ?? false,
    ...(changes.resetHighestRelease !== undefined
      ? { resetHighestRelease: changes.resetHighestRelease }
      : {}),
  });
}

function addKey(
  keys: Map<string, TrustedKey>,
  keyids: string[],
  role: string,
  { key, name }: NamedKey,
): void {
  const keyid = keyIdOf(key);
  if (keyids.includes(keyid)) {
    throw new FerryError('E_USAGE', `key ${name ?? keyid} is in the ${role} role already`, {
      hint: 'pass each key once',
    });
  }
  const known = keys.get(keyid);
  const label = name ?? known?.name;
  keys.set(keyid, { keyid, public: publicKeyHex(key), ...(label ? { name: label } : {}) });
  keyids.push(keyid);
}

/** A role's key by its key id or name. */
function resolveKey(root: TrustedRoot, role: keyof TrustedRoot['roles'], ref: string): string {
  const members = root.roles[role].keyids;
  const matches = members.filter((keyid) => keyid === ref || root.keys[keyid]?.name === ref);
  const only = matches[0];
  if (only === undefined || matches.length > 1) {
    throw new FerryError(
      'E_USAGE',
      `${matches.length > 1 ? 'several keys are' : 'no key is'} "${ref}" in the ${role} role of trust root version ${root.version}`,
      {
        hint: `name the key by its key id; the role holds ${members.map((keyid) => keyLabel(root, keyid)).join(', ')}`,
      },
    );
  }
  return only;
}

function rootDocument(parts: {
  version: number;
  expires: Date;
  keys: ReadonlyMap<string, TrustedKey>;
  root: RoleKeys;
  targets: RoleKeys;
  consistentSnapshot: boolean;
  resetHighestRelease?: string;
}): RootDocument {
  for (const [name, role] of [
    ['root', parts.root],
    ['targets', parts.targets],
  ] as const) {
    if (role.keyids.length === 0) {
      throw new FerryError('E_USAGE', `the ${name} role would have no keys`, {
        hint: `a trust root needs at least one ${name} key`,
      });
    }
    if (!Number.isInteger(role.threshold) || role.threshold < 1) {
      throw new FerryError(
        'E_USAGE',
        `the ${name} threshold ${role.threshold} is not a whole number from 1`,
        {
          hint: `the threshold is how many ${name} keys must sign`,
        },
      );
    }
    if (role.threshold > role.keyids.length) {
      throw new FerryError(
        'E_USAGE',
        `the ${name} threshold ${role.threshold} is more than the role's ${role.keyids.length} keys`,
        { hint: `lower the ${name} threshold or add ${name} keys` },
      );
    }
  }
  if (parts.resetHighestRelease !== undefined && !isStrictVersion(parts.resetHighestRelease)) {
    throw new FerryError(
      'E_USAGE',
      `the highest release to reset to, "${parts.resetHighestRelease}", is not a version`,
      { hint: 'give a release version, for example 1.2.0' },
    );
  }
  if (Number.isNaN(parts.expires.getTime())) {
    throw new FerryError('E_USAGE', 'the expiry is not a date', {
      hint: 'give it as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ',
    });
  }
  const used = [...new Set([...parts.root.keyids, ...parts.targets.keyids])].sort();
  const keys: RootDocument['keys'] = {};
  const names: Record<string, string> = {};
  for (const keyid of used) {
    const key = parts.keys.get(keyid) as TrustedKey;
    keys[keyid] = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: key.public } };
    if (key.name) names[keyid] = key.name;
  }
  // Ferry has no use for snapshot and timestamp; TUF requires them, so they follow targets.
  return {
    _type: 'root',
    spec_version: TUF_SPEC_VERSION,
    version: parts.version,
    expires: tufTime(parts.expires),
    consistent_snapshot: parts.consistentSnapshot,
    keys,
    roles: {
      root: parts.root,
      targets: parts.targets,
      snapshot: { ...parts.targets },
      timestamp: { ...parts.targets },
    },
    ...xFerry(names, parts.resetHighestRelease),
  };
}

function xFerry(
  names: Record<string, string>,
  resetHighestRelease: string | undefined,
): Pick<RootDocument, 'x-ferry'> {
  const fields = {
    ...(Object.keys(names).length > 0 ? { names } : {}),
    ...(resetHighestRelease !== undefined ? { resetHighestRelease } : {}),
  };
  return Object.keys(fields).length > 0 ? { 'x-ferry': fields } : {};
}

/** A document in an envelope with no signatures yet, checked as any reader checks it. */
export function unsignedRoot(document: RootDocument): TrustedRoot {
  const envelope = signEnvelope(Buffer.from(canonicalJson(document)), [], ROOT_PAYLOAD_TYPE);
  return decodeRoot(envelopeBytes(envelope), { file: `root-${document.version}.json` });
}

/**
 * Adds a signature to a drafted root, made by a key Ferry holds or by a
 * --signer program; signing twice changes nothing. The key must be a root
 * key of the draft, or of `previous` (root N, which a rotated-out holder
 * needs to sign N+1 with).
 */
export async function signRoot(
  draft: TrustedRoot,
  signer: Signer,
  previous?: TrustedRoot,
): Promise<TrustedRoot> {
  if (!draft.signed) {
    throw new FerryError('E_USAGE', 'a trust root of the first format carries no signatures', {
      hint: 'make version 2 from it with `ferry trust sign-next`, then sign that',
    });
  }
  if (previous && previous.version !== draft.version - 1) {
    throw new FerryError(
      'E_USAGE',
      `the previous trust root is version ${previous.version}, not ${draft.version - 1}`,
      { hint: `pass root-${draft.version - 1}.json as the previous root` },
    );
  }
  const { keyid } = signer;
  const roots = [draft, ...(previous ? [previous] : [])];
  if (!roots.some((root) => root.roles.root.keyids.includes(keyid))) {
    throw new FerryError(
      'E_ROOT_KEY_UNKNOWN',
      `key ${keyid.slice(0, 16)}… is not a root key of trust root version ${draft.version}${previous ? ` or ${previous.version}` : ''}`,
      {
        hint:
          previous || draft.version === 1
            ? 'sign with a private key whose public key is in the root role'
            : `a root key of version ${draft.version - 1} signs with that root given as the previous one`,
      },
    );
  }
  const { envelope, payload } = draft.signed;
  const sig = (await signer.sign(pae(envelope.payloadType, payload))).toString('base64');
  const signed = withSignatures(envelope, [
    ...envelope.signatures.filter((s) => s.keyid !== keyid),
    { keyid, sig },
  ]);
  return { ...draft, signed: { ...draft.signed, envelope: signed } };
}

export interface KeySummary {
  keyid: string;
  name?: string;
}

export interface ThresholdSummary {
  /** The version whose root keys are counted. */
  version: number;
  threshold: number;
  signed: KeySummary[];
  missing: KeySummary[];
  met: boolean;
}

export interface RootSummary {
  version: number;
  /** Null for the first format, which never expires. */
  expires: string | null;
  format: 'tuf' | 'first';
  roles: Record<keyof TrustedRoot['roles'], { threshold: number; keys: KeySummary[] }>;
  /** The highest release appliances reset to when they walk to this root. */
  resetHighestRelease?: string;
  /** Its own root keys' signatures and, given the previous root, that root's: both thresholds must be met. */
  signatures: ThresholdSummary[];
}

export function summariseRoot(root: TrustedRoot, previous?: TrustedRoot): RootSummary {
  const key = (from: TrustedRoot, keyid: string): KeySummary => {
    const name = from.keys[keyid]?.name;
    return { keyid, ...(name ? { name } : {}) };
  };
  const role = (name: keyof TrustedRoot['roles']) => ({
    threshold: root.roles[name].threshold,
    keys: root.roles[name].keyids.map((keyid) => key(root, keyid)),
  });
  const reset = root.signed?.document['x-ferry']?.resetHighestRelease;
  const counted = (signer: TrustedRoot): ThresholdSummary => {
    const signed = rootSigners(root, signer);
    const { keyids, threshold } = signer.roles.root;
    return {
      version: signer.version,
      threshold,
      signed: keyids.filter((keyid) => signed.has(keyid)).map((keyid) => key(signer, keyid)),
      missing: keyids.filter((keyid) => !signed.has(keyid)).map((keyid) => key(signer, keyid)),
      met: signed.size >= threshold,
    };
  };
  return {
    version: root.version,
    expires: root.expires,
    format: root.signed ? 'tuf' : 'first',
    roles: { root: role('root'), targets: role('targets') },
    ...(reset !== undefined ? { resetHighestRelease: reset } : {}),
    signatures: root.signed ? [root, ...(previous ? [previous] : [])].map(counted) : [],
  };
}

// ---------------------------------------------------------------- files

/** Reads at most MAX_ROOT_BYTES + 1 bytes: enough to refuse a larger file without reading it. */
async function readRootBytes(file: string): Promise<Buffer> {
  try {
    const handle = await open(file, 'r');
    try {
      const buffer = Buffer.alloc(MAX_ROOT_BYTES + 1);
      let length = 0;
      while (length < buffer.length) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
      return buffer.subarray(0, length);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw ioError(error, file, 'read');
  }
}

async function writeRoot(file: string, root: TrustedRoot, replace: boolean): Promise<void> {
  if (!replace) {
    await refuseExisting(file, 'a trust root is never overwritten: choose another --out');
    await makeParent(file);
  }
  await writeFileAtomic(file, rootFileText(root));
}

async function namedKeys(files: readonly string[] = []): Promise<NamedKey[]> {
  return Promise.all(
    files.map(async (file) => {
      const { key, name } = await readPublicKey(file);
      return { key, name };
    }),
  );
}

async function signAll(
  draft: TrustedRoot,
  keyFiles: readonly string[] = [],
  previous?: TrustedRoot,
): Promise<TrustedRoot> {
  let root = draft;
  if (keyFiles.length === 0) return root;
  // As every signing command: stdin once, each key once, all read before anything is signed.
  for (const signer of await readSigners({ keys: keyFiles, keyOption: '--sign-with' }))
    root = await signRoot(root, signer, previous);
  return root;
}

export interface TrustRootInitOptions {
  rootKeys: readonly string[];
  rootThreshold: number;
  targetsKeys: readonly string[];
  targetsThreshold: number;
  expires: Date;
  /** Private root keys to sign it with at once; the others sign later with `trustSign`. */
  signWith?: readonly string[];
  out: string;
}

/** Writes version 1 of a chain of trust roots. */
export async function trustRootInit(options: TrustRootInitOptions): Promise<RootSummary> {
  const document = firstRoot({
    root: { keys: await namedKeys(options.rootKeys), threshold: options.rootThreshold },
    targets: { keys: await namedKeys(options.targetsKeys), threshold: options.targetsThreshold },
    expires: options.expires,
  });
  const root = await signAll(unsignedRoot(document), options.signWith);
  await writeRoot(options.out, root, false);
  return summariseRoot(root);
}

export interface TrustSignNextOptions extends Omit<RootChanges, 'addRoot' | 'addTargets'> {
  /** Root N: a trust root file in either form, fully signed. */
  previous: string;
  /** Public key files. */
  addRoot?: readonly string[];
  addTargets?: readonly string[];
  signWith?: readonly string[];
  out: string;
}

/** Writes version N+1 from root N, signed by `signWith` (root keys of N or N+1), or by nobody yet. */
export async function trustSignNext(options: TrustSignNextOptions): Promise<RootSummary> {
  const previous = await readTrustedRoot(options.previous);
  const document = nextRoot(previous, {
    ...options,
    addRoot: await namedKeys(options.addRoot),
    addTargets: await namedKeys(options.addTargets),
  });
  const root = await signAll(unsignedRoot(document), options.signWith, previous);
  await writeRoot(options.out, root, false);
  return summariseRoot(root, previous);
}

/** Adds signatures to a root file in place; `previous` (root N) lets its root keys sign N+1. */
export async function trustSign(
  file: string,
  signing: SigningOptions,
  previousFile?: string,
): Promise<RootSummary> {
  const draft = parseRootFile(await readRootBytes(file), file);
  const previous = previousFile === undefined ? undefined : await readTrustedRoot(previousFile);
  let root = draft;
  for (const signer of await readSigners(signing)) root = await signRoot(root, signer, previous);
  await writeRoot(file, root, true);
  return summariseRoot(root, previous);
}

export async function trustShow(file: string, previousFile?: string): Promise<RootSummary> {
  const root = parseRootFile(await readRootBytes(file), file);
  const previous = previousFile === undefined ? undefined : await readTrustedRoot(previousFile);
  return summariseRoot(root, previous);
}

/**
 * Walks the `root-N.json` files of a folder, in the order of N, from the
 * trusted root, as an appliance would: the verdict and the version reached.
 */
export async function verifyChain(dir: string, trustedFile: string, now: Date): Promise<ChainWalk> {
  const trusted = await readTrustedRoot(trustedFile);
  return walkRootChain(trusted, await readChainDir(dir), now);
}

/** The `root-N.json` files of a folder, in the order of N, each read up to the size limit. */
export async function readChainDir(
  dir: string,
): Promise<Array<RootCandidate & { version: number }>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    throw ioError(error, dir, 'list');
  }
  const numbered = names
    .map((name) => ({ name, version: Number(/^root-([1-9][0-9]{0,14})\.json$/.exec(name)?.[1]) }))
    .filter((entry) => !Number.isNaN(entry.version))
    .sort((a, b) => a.version - b.version);
  if (numbered.length > MAX_ROOT_STEPS) {
    throw new FerryError(
      'E_ROOT_CHAIN_TOO_LONG',
      `${dir} holds ${numbered.length} trust roots, more than the ${MAX_ROOT_STEPS} a bundle carries`,
      {
        file: dir,
        hint: 'carry the newest roots only: appliances older than them update through an earlier bundle first',
      },
    );
  }
  const candidates: Array<RootCandidate & { version: number }> = [];
  for (const { name, version } of numbered) {
    const file = join(dir, name);
    candidates.push({ file, version, bytes: await readRootBytes(file) });
  }
  return candidates;
}

/**
 * The chain a bundle will carry, checked as an appliance at its first
 * version would walk it, at `now`: consecutive versions, every threshold met,
 * the newest root not expired. Returns the newest root.
 */
export function checkChainToCarry(
  dir: string,
  chain: ReadonlyArray<RootCandidate & { version: number }>,
  now: Date,
): TrustedRoot {
  const [first, ...rest] = chain;
  if (!first) {
    throw new FerryError('E_USAGE', `${dir} holds no root-N.json`, {
      file: dir,
      hint: 'the folder of a chain holds root-1.json, root-2.json, … as `ferry trust` wrote them',
    });
  }
  const walk = walkRootChain(parseTrustedRoot(first.bytes, first.file), rest, now);
  if (walk.refusal) throw walk.refusal;
  // Appliances skip the roots they passed by the entry's name: it must be the version inside.
  const named = chain.find((candidate, index) => walk.versions[index] !== candidate.version);
  if (named) {
    throw new FerryError('E_ROOT_VERSION', `${named.file} is not the version its name says`, {
      file: named.file,
      hint: 'name each root root-N.json after its version, as `ferry trust` writes them',
    });
  }
  return walk.root;
}
