/** Trust roots made by hand for tests: real Ed25519 keys, documents built field by field. */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import {
  canonicalJson,
  envelopeBytes,
  keyIdOf,
  publicKeyHex,
  ROOT_PAYLOAD_TYPE,
  signEnvelope,
  type Envelope,
  type RootDocument,
} from '../../manifest-schema/index.js';

export interface TestKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyid: string;
}

export function newKey(): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, keyid: keyIdOf(publicKey) };
}

/** Fresh keys by the names a test gives them. */
export function newKeys<const Name extends string>(...names: Name[]): Record<Name, TestKey> {
  return Object.fromEntries(names.map((name) => [name, newKey()])) as Record<Name, TestKey>;
}

export interface RootParts {
  version: number;
  root: readonly TestKey[];
  rootThreshold: number;
  targets: readonly TestKey[];
  targetsThreshold?: number;
  expires?: string;
}

export const FAR_FUTURE = '2099-01-01T00:00:00Z';

/** A TUF root document; snapshot and timestamp follow targets, as Ferry writes them. */
export function rootDocument(parts: RootParts): RootDocument {
  const keys: RootDocument['keys'] = {};
  for (const key of [...parts.root, ...parts.targets]) {
    keys[key.keyid] = {
      keytype: 'ed25519',
      scheme: 'ed25519',
      keyval: { public: publicKeyHex(key.publicKey) },
    };
  }
  const targets = {
    keyids: parts.targets.map((key) => key.keyid),
    threshold: parts.targetsThreshold ?? 1,
  };
  return {
    _type: 'root',
    spec_version: '1.0.31',
    version: parts.version,
    expires: parts.expires ?? FAR_FUTURE,
    consistent_snapshot: false,
    keys,
    roles: {
      root: { keyids: parts.root.map((key) => key.keyid), threshold: parts.rootThreshold },
      targets,
      snapshot: { ...targets },
      timestamp: { ...targets },
    },
  };
}

/** The DSSE envelope Ferry stores a root in, signed by `signers`. */
export function rootEnvelope(document: RootDocument, signers: readonly TestKey[]): Envelope {
  return signEnvelope(
    Buffer.from(canonicalJson(document)),
    signers.map((key) => key.privateKey),
    ROOT_PAYLOAD_TYPE,
  );
}

export function rootBytes(document: RootDocument, signers: readonly TestKey[]): Buffer {
  return envelopeBytes(rootEnvelope(document, signers));
}
