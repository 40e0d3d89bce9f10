import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  checkSignatures,
  decodeEnvelope,
  envelopeBytes,
  ERROR_CODES,
  FerryError,
  jsonDepth,
  keyIdOf,
  pae,
  signEnvelope,
  type TrustRoot,
} from '../../manifest-schema/index.js';

function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey,
    publicKey,
    keyid: keyIdOf(publicKey),
    pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

function trustOf(threshold: number, ...keys: Array<ReturnType<typeof keyPair>>): TrustRoot {
  return {
    formatVersion: 1,
    threshold,
    keys: keys.map((k) => ({ keyid: k.keyid, publicKey: k.pem })),
  };
}

describe('canonical JSON', () => {
  it('sorts keys at every depth and drops nothing but undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: null, y: 'x' }], c: true }, u: undefined })).toBe(
      '{"a":{"c":true,"d":[3,{"y":"x","z":null}]},"b":1}',
    );
  });
  it('refuses numbers that do not round-trip', () => {
    expect(() => canonicalJson({ a: 1.5 })).toThrow(/\/a/);
    expect(() => canonicalJson({ a: Number.MAX_SAFE_INTEGER + 2 })).toThrow();
  });
  it('measures depth without parsing, ignoring brackets in strings', () => {
    expect(jsonDepth('{"a":[[1]],"s":"[[[[{{"}')).toBe(3);
    expect(jsonDepth('[]')).toBe(1);
  });
});

describe('DSSE envelope', () => {
  it('uses the DSSE pre-authentication encoding', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe(
      'DSSEv1 29 http://example.com/HelloWorld 11 hello world',
    );
  });

  it('verifies a signature from a trusted key and counts distinct keys against the threshold', () => {
    const a = keyPair();
    const b = keyPair();
    const payload = Buffer.from(canonicalJson({ hello: 'world' }));
    const one = signEnvelope(payload, [a.privateKey]);
    expect(checkSignatures(one, payload, trustOf(1, a, b))).toMatchObject({
      valid: true,
      keyids: [a.keyid],
    });
    expect(checkSignatures(one, payload, trustOf(2, a, b)).valid).toBe(false);
    const both = signEnvelope(payload, [a.privateKey, b.privateKey]);
    expect(checkSignatures(both, payload, trustOf(2, a, b)).valid).toBe(true);
    // the same signature twice is still one key
    const doubled = { ...one, signatures: [...one.signatures, ...one.signatures] };
    expect(checkSignatures(doubled, payload, trustOf(2, a, b)).valid).toBe(false);
  });

  it('rejects changed bytes and untrusted keys', () => {
    const a = keyPair();
    const rogue = keyPair();
    const payload = Buffer.from('{"a":1}');
    const envelope = signEnvelope(payload, [a.privateKey]);
    const status = checkSignatures(envelope, Buffer.from('{"a":2}'), trustOf(1, a));
    expect(status.valid).toBe(false);
    expect(status.problems[0]).toContain('does not verify');
    const untrusted = checkSignatures(
      signEnvelope(payload, [rogue.privateKey]),
      payload,
      trustOf(1, a),
    );
    expect(untrusted.valid).toBe(false);
    expect(untrusted.problems[0]).toContain('not from a trusted key');
  });

  it('decodes the exact stored payload bytes and refuses non-canonical base64', () => {
    const a = keyPair();
    const payload = Buffer.from('{"x":"yz"}'); // 10 bytes: base64 ends in ==
    const bytes = envelopeBytes(signEnvelope(payload, [a.privateKey]));
    expect(decodeEnvelope(bytes, 'b.tar').payload.equals(payload)).toBe(true);
    const text = bytes
      .toString()
      .replace(/"payload":"([^"]*)"/, (_m, p: string) => `"payload":"${p.replace(/=+$/, '')}"`);
    expect(() => decodeEnvelope(Buffer.from(text), 'b.tar')).toThrow(FerryError);
  });

  it('refuses deeply nested metadata before parsing it', () => {
    const deep = `${'['.repeat(100)}${']'.repeat(100)}`;
    try {
      decodeEnvelope(Buffer.from(deep), 'b.tar');
      expect.unreachable();
    } catch (error) {
      expect((error as FerryError).code).toBe('E_METADATA_TOO_LARGE');
    }
  });
});

describe('error codes', () => {
  it('map every code to one of the documented exit codes', () => {
    for (const [code, { exit }] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^E_[A-Z0-9_]+$/);
      expect([1, 2, 3, 4, 5]).toContain(exit);
    }
    expect(ERROR_CODES.E_SIGNATURE.exit).toBe(3);
    expect(ERROR_CODES.E_HASH_MISMATCH.exit).toBe(3);
    expect(ERROR_CODES.E_LOCKED.exit).toBe(5);
    expect(ERROR_CODES.E_SPEC_INVALID.exit).toBe(2);
  });
});
