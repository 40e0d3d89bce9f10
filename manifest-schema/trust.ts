import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { canonicalJson, jsonDepth } from './canonical.js';
import { parseValidated } from './documents.js';
import {
  decodeEnvelope,
  MAX_METADATA_DEPTH,
  parseJsonLimited,
  verifiedKeys,
  type EnvelopeKind,
} from './envelope.js';
import { FerryError, ioError, type ErrorCode } from './errors.js';
import { keyIdOf, parsePublicKey, publicKeyFromHex, publicKeyHex } from './keys.js';
import {
  RootDocumentSchema,
  TrustRootSchema,
  type Envelope,
  type RootDocument,
  type TrustRoot,
} from './schemas.js';
import { validate } from './validate.js';

/** The DSSE payload type of a trust root: a TUF root document. */
export const ROOT_PAYLOAD_TYPE = 'application/vnd.tuf+json';
/** The TUF specification version Ferry writes into root documents. */
export const TUF_SPEC_VERSION = '1.0.31';
/** A root document is about 2 KB; anything past this is refused before it is parsed. */
export const MAX_ROOT_BYTES = 64 * 1024;

export interface RoleKeys {
  keyids: string[];
  threshold: number;
}

export interface TrustedKey {
  keyid: string;
  /** The raw Ed25519 public key in hex. */
  public: string;
  name?: string;
}

export interface RevokedKey extends TrustedKey {
  /** The first root version whose targets role no longer held the key. */
  revokedIn: number;
}

/**
 * A trust root as Ferry uses it, whichever form it was read from: a TUF root
 * in a DSSE envelope, or the first format (`ferry trust init` before roots
 * were TUF documents), read as version 1 whose root and targets roles are
 * its keys and threshold and which never expires.
 */
export interface TrustedRoot {
  version: number;
  /** `YYYY-MM-DDTHH:MM:SSZ`; null for the first format, which never expires. */
  expires: string | null;
  keys: Record<string, TrustedKey>;
  /** The `root` role signs the next trust root; the `targets` role signs bundles. */
  roles: { root: RoleKeys; targets: RoleKeys };
  /**
   * Keys that were targets keys in an earlier root of a walked chain and are
   * not in this one's targets role: their bundles are refused with E_KEY_REVOKED.
   */
  revoked: Record<string, RevokedKey>;
  /** The TUF document, its envelope and the signed bytes; null for the first format. */
  signed: SignedRoot | null;
  /**
   * Set by a chain walk when a root it accepted past the trusted one (the
   * newest such) resets the highest release committed.
   */
  resetHighestRelease?: { release: string; version: number };
}

export interface SignedRoot {
  document: RootDocument;
  envelope: Envelope;
  /** The signed bytes: the canonical JSON of the document. */
  payload: Buffer;
}

/** Where a root document was found, for messages: a file, or an entry inside one. */
export interface RootSource {
  file: string;
  entry?: string;
}

/** The codes a root document's own flaws get: E_TRUST_INVALID on the appliance, E_ROOT_* in a chain. */
export interface RootCodes {
  tooLarge: ErrorCode;
  invalid: ErrorCode;
}

export const CHAIN_ROOT: RootCodes = { tooLarge: 'E_ROOT_TOO_LARGE', invalid: 'E_ROOT_INVALID' };
const TRUSTED_ROOT: RootCodes = { tooLarge: 'E_TRUST_INVALID', invalid: 'E_TRUST_INVALID' };

export function describeSource(source: RootSource): string {
  return source.entry === undefined ? source.file : `${source.file}: ${source.entry}`;
}

function envelopeKind(source: RootSource, codes: RootCodes): EnvelopeKind {
  return {
    payloadType: ROOT_PAYLOAD_TYPE,
    entry: source.entry ?? 'trust root',
    maxBytes: MAX_ROOT_BYTES,
    what: 'a trust root Ferry made',
    ...codes,
  };
}

/**
 * Decodes a root envelope and checks everything but its signatures: the
 * schema, key ids, role members, thresholds, the expiry date, and that the
 * payload is the canonical JSON of the document (what TUF signs), so Ferry
 * and any TUF client judge the same bytes.
 */
export function decodeRoot(
  bytes: Buffer,
  source: RootSource,
  codes: RootCodes = CHAIN_ROOT,
): TrustedRoot {
  const kind = envelopeKind(source, codes);
  const { envelope, payload } = decodeEnvelope(bytes, source.file, kind);
  const where = describeSource(source);
  const fail = (field: string, sentence: string): FerryError =>
    new FerryError(codes.invalid, `${where}: ${sentence}`, {
      file: source.file,
      ...(source.entry === undefined ? {} : { entry: source.entry }),
      field,
      hint: 'this trust root is damaged or was not made by `ferry trust`: get the chain again from its publisher',
    });
  const text = payload.toString('utf8');
  const raw = parseJsonLimited(text, source.file, kind.entry, kind);
  const checked = validate(RootDocumentSchema, raw);
  if (!checked.ok) {
    const first = checked.errors[0];
    throw fail(
      first?.path || '/',
      checked.errors.map((e) => `${e.path || '/'} ${e.message}`).join('; '),
    );
  }
  const document = checked.value;
  if (canonicalJson(document) !== text) {
    throw fail(
      '/',
      'the document is not in canonical JSON form (sorted keys, no spaces), which TUF signs',
    );
  }
  const problem = rootProblem(document);
  if (problem) throw fail(problem.field, `${problem.field} ${problem.message}`);
  return fromDocument({ document, envelope, payload });
}

/** What the schema cannot say about a root document, or undefined when it is sound. */
function rootProblem(document: RootDocument): { field: string; message: string } | undefined {
  for (const [keyid, key] of Object.entries(document.keys)) {
    const publicKey = publicKeyFromHex(key.keyval.public);
    if (!publicKey) return { field: `/keys/${keyid}`, message: 'is not an Ed25519 public key' };
    const actual = keyIdOf(publicKey);
    if (actual !== keyid) {
      return {
        field: `/keys/${keyid}`,
        message: `is listed under the wrong key id: the key's id (sha256 of its SPKI DER) is ${actual}`,
      };
    }
  }
  for (const [name, role] of Object.entries(document.roles)) {
    const unknown = role.keyids.find((keyid) => document.keys[keyid] === undefined);
    if (unknown !== undefined) {
      return { field: `/roles/${name}/keyids`, message: `names key ${unknown}, not in /keys` };
    }
    if (role.threshold > role.keyids.length) {
      return {
        field: `/roles/${name}/threshold`,
        message: `${role.threshold} is more than the role's ${role.keyids.length} keys`,
      };
    }
  }
  const expires = new Date(document.expires);
  if (Number.isNaN(expires.getTime()) || tufTime(expires) !== document.expires) {
    return { field: '/expires', message: `"${document.expires}" is not a date` };
  }
  const named = Object.keys(document['x-ferry']?.names ?? {});
  const stray = named.find((keyid) => document.keys[keyid] === undefined);
  if (stray !== undefined) {
    return { field: `/x-ferry/names/${stray}`, message: 'names a key that is not in /keys' };
  }
  return undefined;
}

/** A time as TUF writes it: UTC, whole seconds. */
export function tufTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function fromDocument(signed: SignedRoot): TrustedRoot {
  const { document } = signed;
  const names = document['x-ferry']?.names ?? {};
  const keys = Object.fromEntries(
    Object.entries(document.keys).map(([keyid, key]) => {
      const name = names[keyid];
      return [keyid, { keyid, public: key.keyval.public, ...(name ? { name } : {}) }];
    }),
  );
  const role = ({ keyids, threshold }: RoleKeys): RoleKeys => ({ keyids: [...keyids], threshold });
  return {
    version: document.version,
    expires: document.expires,
    keys,
    roles: { root: role(document.roles.root), targets: role(document.roles.targets) },
    revoked: {},
    signed,
  };
}

/** A trust root of the first format as version 1: its keys and threshold are both roles. */
export function fromFirstFormat(trust: TrustRoot): TrustedRoot {
  const keys = Object.fromEntries(
    trust.keys.map((key) => {
      const hex = publicKeyHex(parsePublicKey(key.publicKey, key.keyid));
      return [
        key.keyid,
        { keyid: key.keyid, public: hex, ...(key.name ? { name: key.name } : {}) },
      ];
    }),
  );
  const role = { keyids: trust.keys.map((key) => key.keyid), threshold: trust.threshold };
  return {
    version: 1,
    expires: null,
    keys,
    roles: { root: role, targets: { ...role, keyids: [...role.keyids] } },
    revoked: {},
    signed: null,
  };
}

/** The public keys of a role, by key id. */
export function roleKeys(
  root: TrustedRoot,
  role: keyof TrustedRoot['roles'],
): Map<string, KeyObject> {
  return keyObjects(root.roles[role].keyids.map((keyid) => root.keys[keyid]));
}

function keyObjects(keys: ReadonlyArray<TrustedKey | undefined>): Map<string, KeyObject> {
  const objects = new Map<string, KeyObject>();
  for (const key of keys) {
    const publicKey = key && publicKeyFromHex(key.public);
    if (key && publicKey) objects.set(key.keyid, publicKey);
  }
  return objects;
}

/** A key for messages: its name when the root gives one, and the start of its id. */
export function keyLabel(root: TrustedRoot, keyid: string): string {
  const name = (root.keys[keyid] ?? root.revoked[keyid])?.name;
  return name ? `${name} (${keyid.slice(0, 16)}…)` : `${keyid.slice(0, 16)}…`;
}

/** A trust root file in either form, its signatures not yet looked at. */
export function parseRootFile(bytes: Buffer, file: string): TrustedRoot {
  if (bytes.length > MAX_ROOT_BYTES) {
    throw new FerryError('E_TRUST_INVALID', `${file} is ${bytes.length} bytes`, {
      file,
      hint: `a trust root is limited to ${MAX_ROOT_BYTES} bytes`,
    });
  }
  const text = bytes.toString('utf8');
  if (isEnvelopeText(text)) return decodeRoot(bytes, { file }, TRUSTED_ROOT);
  const { value, lineOf } = parseValidated(
    file,
    text,
    TrustRootSchema,
    'E_TRUST_INVALID',
    'trust root',
  );
  return fromFirstFormat(checkTrustRoot(value, file, lineOf));
}

/**
 * The trust root an appliance holds, in either form, from its bytes. A TUF
 * root must carry its own root threshold of signatures, as TUF clients
 * require of the root they start from.
 */
export function parseTrustedRoot(bytes: Buffer, file: string): TrustedRoot {
  const root = parseRootFile(bytes, file);
  const signed = rootSigners(root, root);
  if (root.signed && signed.size < root.roles.root.threshold) {
    throw new FerryError(
      'E_TRUST_INVALID',
      `${file}: trust root version ${root.version} ${shortfall(root, 'root', signed)}`,
      {
        file,
        hint: 'a trust root is used only once its root key holders have signed it: `ferry trust sign`',
      },
    );
  }
  return root;
}

/** The root keys of `signer` whose signatures on `root` verify (none for the first format). */
export function rootSigners(root: TrustedRoot, signer: TrustedRoot): Set<string> {
  if (!root.signed) return new Set();
  const { envelope, payload } = root.signed;
  return verifiedKeys(envelope, payload, roleKeys(signer, 'root')).keyids;
}

/** Whether a trust root's text is a DSSE envelope rather than the first format. */
function isEnvelopeText(text: string): boolean {
  if (jsonDepth(text) > MAX_METADATA_DEPTH) return false;
  try {
    const raw = JSON.parse(text) as unknown;
    return typeof raw === 'object' && raw !== null && 'payloadType' in raw;
  } catch {
    return false;
  }
}

/** A trust root as its file holds it: a TUF root's envelope, or the first format's document. */
export function rootFileValue(root: TrustedRoot): Envelope | TrustRoot {
  if (root.signed) return root.signed.envelope;
  return {
    formatVersion: 1,
    threshold: root.roles.targets.threshold,
    keys: root.roles.targets.keyids.map((keyid) => {
      const key = root.keys[keyid];
      const pem = publicKeyFromHex(key?.public ?? '')?.export({ type: 'spki', format: 'pem' });
      return { keyid, ...(key?.name ? { name: key.name } : {}), publicKey: String(pem) };
    }),
  };
}

/** A TUF root as its file holds it: the envelope, indented. */
export function rootFileText(root: TrustedRoot): string {
  if (!root.signed) throw new Error('rootFileText: a trust root of the first format');
  return `${JSON.stringify(root.signed.envelope, null, 2)}\n`;
}

/** Reads the appliance's trust root, in either form. */
export async function readTrustedRoot(file: string): Promise<TrustedRoot> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw ioError(error, file, 'read');
  }
  return parseTrustedRoot(bytes, file);
}

/**
 * How far a role's signatures fall short, naming the keys:
 * "is signed by 1 of the 2 root keys of version 2 it needs: by alice (…); not by bob (…), carol (…)".
 */
export function shortfall(
  signer: TrustedRoot,
  role: keyof TrustedRoot['roles'],
  signed: ReadonlySet<string>,
): string {
  const { keyids, threshold } = signer.roles[role];
  const present = keyids.filter((keyid) => signed.has(keyid));
  const missing = keyids.filter((keyid) => !signed.has(keyid));
  const list = (ids: string[]) => ids.map((keyid) => keyLabel(signer, keyid)).join(', ');
  return (
    `is signed by ${present.length} of the ${threshold} ${role} keys of version ${signer.version} it needs` +
    (present.length > 0 ? `: by ${list(present)}` : '') +
    (missing.length > 0 ? `; not by ${list(missing)}` : '')
  );
}

/** Key ids match their keys, no key twice, and the threshold is reachable. */
function checkTrustRoot(
  value: TrustRoot,
  file: string,
  lineOf: (pointer: string) => number | undefined = () => undefined,
): TrustRoot {
  const seen = new Set<string>();
  for (const [index, key] of value.keys.entries()) {
    const field = `/keys/${index}`;
    const line = lineOf(field);
    const where = { file, field, ...(line ? { line } : {}) };
    const actual = keyIdOf(parsePublicKey(key.publicKey, `${file}${field}`));
    if (actual !== key.keyid) {
      throw new FerryError(
        'E_TRUST_INVALID',
        `${file}: key ${index} has key id ${key.keyid} but its public key's id is ${actual}`,
        {
          ...where,
          hint: 'rewrite the trust root with `ferry trust init`',
        },
      );
    }
    if (seen.has(actual)) {
      throw new FerryError('E_TRUST_INVALID', `${file}: key ${actual} is listed twice`, {
        ...where,
        hint: 'list each key once',
      });
    }
    seen.add(actual);
  }
  if (value.threshold > value.keys.length) {
    throw new FerryError(
      'E_TRUST_INVALID',
      `${file}: threshold ${value.threshold} is more than its ${value.keys.length} keys`,
      {
        file,
        field: '/threshold',
        hint: 'lower the threshold or add keys',
      },
    );
  }
  return value;
}

export interface SignatureStatus {
  /** True when at least `threshold` distinct keys of the targets role made valid signatures. */
  valid: boolean;
  /** Key ids of the targets keys whose signatures verified. */
  keyids: string[];
  threshold: number;
  /** Key ids of revoked targets keys whose signatures verified: they never count. */
  revoked: string[];
  /** Why signatures did not count, one line each. */
  problems: string[];
}

/**
 * Checks a bundle's signatures against the trust root's `targets` role (for
 * the first format: its keys and threshold). Signatures by revoked keys are
 * verified too, so that a bundle signed by one is told apart from one signed
 * by a key the appliance never knew.
 */
export function checkSignatures(
  envelope: Envelope,
  payload: Buffer,
  trust: TrustRoot | TrustedRoot,
): SignatureStatus {
  const root = 'roles' in trust ? trust : fromFirstFormat(trust);
  const targets = roleKeys(root, 'targets');
  const good = verifiedKeys(envelope, payload, targets);
  const revoked = verifiedKeys(envelope, payload, keyObjects(Object.values(root.revoked)));
  const problems = [...good.problems];
  for (const keyid of revoked.keyids) {
    const revokedIn = root.revoked[keyid]?.revokedIn;
    problems.push(
      `signature by key ${keyLabel(root, keyid)} no longer counts: trust root version ${revokedIn} revoked it`,
    );
  }
  for (const { keyid } of envelope.signatures) {
    if (!targets.has(keyid) && root.revoked[keyid] === undefined)
      problems.push(`signature by key ${keyid.slice(0, 16)}… is not from a trusted key`);
  }
  if (envelope.signatures.length === 0) problems.push('the bundle carries no signature');
  const threshold = root.roles.targets.threshold;
  return {
    valid: good.keyids.size >= threshold,
    keyids: [...good.keyids].sort(),
    threshold,
    revoked: [...revoked.keyids].sort(),
    problems,
  };
}

/** Throws E_KEY_REVOKED, E_THRESHOLD or E_SIGNATURE unless the status is valid. */
export function assertTrusted(status: SignatureStatus, file: string, entry = 'bundle.json'): void {
  if (status.valid) return;
  const code =
    status.revoked.length > 0
      ? 'E_KEY_REVOKED'
      : status.keyids.length > 0
        ? 'E_THRESHOLD'
        : 'E_SIGNATURE';
  const detail = status.problems.length > 0 ? `: ${status.problems.join('; ')}` : '';
  throw new FerryError(
    code,
    `${file}: ${status.keyids.length} of the ${status.threshold} required trusted signatures verified${detail}`,
    {
      file,
      entry,
      hint:
        code === 'E_KEY_REVOKED'
          ? 'the bundle was signed with a key the key holders revoked: it may have leaked. Use a bundle signed by a current targets key'
          : 'the bundle was not signed by keys this trust root accepts, or it was changed after signing: get it again from its publisher',
    },
  );
}
