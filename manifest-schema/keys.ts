import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { FerryError } from './errors.js';

/** Key id: hex sha256 of the public key's SPKI DER. */
export function keyIdOf(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

export interface GeneratedKeyPair {
  privatePem: string;
  publicPem: string;
  keyid: string;
}

export function generateEd25519(): GeneratedKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyid: keyIdOf(publicKey),
  };
}

export function parsePrivateKey(pem: string, file: string): KeyObject {
  if (pem.includes('ENCRYPTED PRIVATE KEY') || pem.includes('Proc-Type: 4,ENCRYPTED'))
    throw new FerryError(
      'E_KEY_INVALID',
      `${file} is an encrypted private key, and Ferry asks for no passphrase`,
      {
        file,
        hint: 'keep the key unencrypted in the CI secret store (`openssl pkey -in KEY -out PLAIN`), or sign through --signer',
      },
    );
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (cause) {
    throw new FerryError('E_KEY_INVALID', `${file} is not a PEM private key`, {
      file,
      hint: 'pass the .key file that `ferry keygen` wrote, not the .pub file',
      cause,
    });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new FerryError(
      'E_KEY_INVALID',
      `${file} is a ${key.asymmetricKeyType} key; Ferry signs with Ed25519`,
      {
        file,
        hint: 'make a key with `ferry keygen`',
      },
    );
  }
  return key;
}

export function parsePublicKey(pem: string, file: string): KeyObject {
  if (pem.includes('PRIVATE KEY')) {
    throw new FerryError(
      'E_KEY_INVALID',
      `${file} is a private key; a trust root holds public keys only`,
      {
        file,
        hint: 'pass the .pub file that `ferry keygen` wrote, and keep the .key file off the appliance',
      },
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (cause) {
    throw new FerryError('E_KEY_INVALID', `${file} is not a PEM public key`, {
      file,
      hint: 'pass the .pub file that `ferry keygen` wrote',
      cause,
    });
  }
  if (key.type !== 'public' || key.asymmetricKeyType !== 'ed25519') {
    throw new FerryError('E_KEY_INVALID', `${file} is not an Ed25519 public key`, {
      file,
      hint: 'pass the .pub file that `ferry keygen` wrote',
    });
  }
  return key;
}

/** The raw 32-byte Ed25519 public key in hex: how a TUF root writes `keyval.public`. */
export function publicKeyHex(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const { x } = publicKey.export({ format: 'jwk' });
  return Buffer.from(x ?? '', 'base64url').toString('hex');
}

/** The Ed25519 public key of a TUF root's `keyval.public`; undefined when it is not one. */
export function publicKeyFromHex(hex: string): KeyObject | undefined {
  if (!/^[0-9a-f]{64}$/.test(hex)) return undefined;
  try {
    const x = Buffer.from(hex, 'hex').toString('base64url');
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  } catch {
    return undefined;
  }
}
