import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import {
  canonicalJson,
  envelopeBytes,
  FerryError,
  FORMAT_VERSION,
  generateEd25519,
  ioError,
  keyIdOf,
  NAME_PATTERN,
  parsePrivateKey,
  parsePublicKey,
  signEnvelope,
  writeFileAtomic,
  type BundleMetadata,
  type TrustRoot,
} from '../manifest-schema/index.js';

// Keys: made by `keygen`, trusted by `trust init`, read once and signing bundle.json in `build`.

export interface KeygenResult {
  keyid: string;
  privateKey: string;
  publicKey: string;
}

/** Writes NAME.key (0600) and NAME.pub; refuses to overwrite a key. */
export async function keygen(outDir: string, name = 'ferry'): Promise<KeygenResult> {
  if (!new RegExp(NAME_PATTERN).test(name)) {
    throw new FerryError('E_USAGE', `key name "${name}" is not a valid name`, {
      hint: 'use lower-case letters, digits, . _ -',
    });
  }
  await mkdir(outDir, { recursive: true }).catch((error: unknown) => {
    throw ioError(error, outDir, 'create');
  });
  const privateKey = join(outDir, `${name}.key`);
  const publicKey = join(outDir, `${name}.pub`);
  for (const file of [privateKey, publicKey])
    await refuseExisting(file, 'a key is never overwritten: choose another --name or folder');
  const pair = generateEd25519();
  try {
    await writeFile(privateKey, pair.privatePem, { mode: 0o600, flag: 'wx' });
    await writeFile(publicKey, pair.publicPem, { mode: 0o644, flag: 'wx' });
  } catch (error) {
    throw ioError(error, outDir, 'write keys into');
  }
  return { keyid: pair.keyid, privateKey, publicKey };
}

/** A trust root of the given public keys, needing `threshold` of them to sign. */
export async function trustInit(
  publicKeys: readonly string[],
  threshold: number,
  out: string,
): Promise<TrustRoot> {
  if (publicKeys.length === 0) {
    throw new FerryError('E_USAGE', 'a trust root needs at least one key', {
      hint: 'pass --key KEY.pub (repeat it for several keys)',
    });
  }
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > publicKeys.length) {
    throw new FerryError(
      'E_USAGE',
      `threshold ${threshold} must be a whole number from 1 to ${publicKeys.length}`,
      {
        hint: 'the threshold is how many of the keys must sign a bundle',
      },
    );
  }
  const keys: TrustRoot['keys'] = [];
  for (const file of publicKeys) {
    const { keyid, name, pem } = await readPublicKey(file);
    if (keys.some((k) => k.keyid === keyid)) throw sameKeyTwice(file);
    keys.push({ keyid, name, publicKey: pem });
  }
  const root: TrustRoot = { formatVersion: FORMAT_VERSION, threshold, keys };
  await writeFileAtomic(out, `${JSON.stringify(root, null, 2)}\n`);
  return root;
}

/** The private keys a bundle is signed with, each given once. */
export async function readSigningKeys(files: readonly string[]): Promise<KeyObject[]> {
  if (files.length === 0) {
    throw new FerryError('E_USAGE', 'a bundle needs at least one signing key', {
      hint: 'pass --key KEY (repeat it for several keys)',
    });
  }
  const keys: KeyObject[] = [];
  for (const file of files) {
    const key = await readPrivateKey(file);
    if (keys.some((earlier) => keyIdOf(earlier) === keyIdOf(key))) throw sameKeyTwice(file);
    keys.push(key);
  }
  return keys;
}

/** bundle.json's bytes: the metadata's canonical JSON in an envelope signed by every key. */
export function signedMetadata(metadata: BundleMetadata, keys: readonly KeyObject[]): Buffer {
  return envelopeBytes(signEnvelope(Buffer.from(canonicalJson(metadata)), keys));
}

/** The same key twice is a mistake, not a second signature. */
function sameKeyTwice(file: string): FerryError {
  return new FerryError('E_USAGE', `${file} is the same key as an earlier --key`, {
    file,
    hint: 'pass each key once',
  });
}

/** Throws E_EXISTS when `file` exists: keys and trust roots are never overwritten. */
export async function refuseExisting(file: string, hint: string): Promise<void> {
  const exists = await access(file).then(
    () => true,
    () => false,
  );
  if (exists) throw new FerryError('E_EXISTS', `${file} already exists`, { file, hint });
}

export interface PublicKeyFile {
  key: KeyObject;
  keyid: string;
  /** The file's name without `.pub`: what messages and `ferry trust show` call the key. */
  name: string;
  pem: string;
}

/** Reads a public key that `ferry keygen` wrote. */
export async function readPublicKey(file: string): Promise<PublicKeyFile> {
  const pem = await readKeyFile(file);
  const key = parsePublicKey(pem, file);
  return { key, keyid: keyIdOf(key), name: basename(file).replace(/\.pub$/, ''), pem };
}

/** Reads a private key that `ferry keygen` wrote. */
export async function readPrivateKey(file: string): Promise<KeyObject> {
  return parsePrivateKey(await readKeyFile(file), file);
}

async function readKeyFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw ioError(error, file, 'read');
  }
}
