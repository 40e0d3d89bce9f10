import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  decodePartsIndex,
  envelopeBytes,
  generateEd25519,
  parsePrivateKey,
  PARTS_PAYLOAD_TYPE,
  PAYLOAD_TYPE,
  signEnvelope,
  type PartsIndex,
  type TrustRoot,
} from '../../manifest-schema/index.js';
import { codeOf } from '../helpers.js';

const signer = generateEd25519();
const stranger = generateEd25519();
const trustOf = (pair: typeof signer): TrustRoot => ({
  formatVersion: 1,
  threshold: 1,
  keys: [{ keyid: pair.keyid, name: 'k', publicKey: pair.publicPem }],
});

const valid: PartsIndex = {
  formatVersion: 1,
  bundle: { id: 'acme@1.0.0', format: 'tar', metadataSha256: 'a'.repeat(64), size: 250 },
  label: 'ACME_',
  volumes: 3,
  parts: [
    { name: 'FERRY/BUNDLE.001', volume: 1, offset: 0, size: 100, sha256: 'b'.repeat(64) },
    { name: 'FERRY/BUNDLE.002', volume: 2, offset: 100, size: 100, sha256: 'c'.repeat(64) },
    { name: 'FERRY/BUNDLE.003', volume: 3, offset: 200, size: 50, sha256: 'd'.repeat(64) },
  ],
};

function signed(index: unknown, payload = canonicalJson(index), type = PARTS_PAYLOAD_TYPE): Buffer {
  const key = parsePrivateKey(signer.privatePem, 'key');
  return envelopeBytes(signEnvelope(Buffer.from(payload), [key], type));
}

function changed(change: (index: PartsIndex) => void): Buffer {
  const index = structuredClone(valid);
  change(index);
  return signed(index);
}

describe('the parts index', () => {
  it('decodes a signed index whose parts tile the bundle, checked against the trust root', () => {
    expect(decodePartsIndex(signed(valid), 'PARTS.JSON', trustOf(signer)).index).toEqual(valid);
  });

  it('checks the signature before it reads the payload', async () => {
    expect(
      await codeOf(() => decodePartsIndex(signed(valid), 'PARTS.JSON', trustOf(stranger))),
    ).toBe('E_SIGNATURE');
    // Even a payload that is not JSON is refused for its signature first.
    expect(
      await codeOf(() => decodePartsIndex(signed(null, '{'), 'PARTS.JSON', trustOf(stranger))),
    ).toBe('E_SIGNATURE');
  });

  it.each([
    ['a gap between parts', (i: PartsIndex) => ((i.parts[1] as { offset: number }).offset = 101)],
    ['parts short of the bundle', (i: PartsIndex) => (i.bundle.size = 251)],
    ['a volume count that is not the part count', (i: PartsIndex) => (i.volumes = 2)],
    ['part 2 on volume 3', (i: PartsIndex) => ((i.parts[1] as { volume: number }).volume = 3)],
    ['parts out of order', (i: PartsIndex) => i.parts.reverse()],
    [
      'a part name outside FERRY/',
      (i: PartsIndex) => ((i.parts[0] as { name: string }).name = '../x'),
    ],
    ['an unknown field', (i: PartsIndex) => Object.assign(i, { extra: 1 })],
    ['a zip bundle', (i: PartsIndex) => Object.assign(i.bundle, { format: 'zip' })],
  ])('refuses %s', async (_, change) => {
    expect(await codeOf(() => decodePartsIndex(changed(change), 'PARTS.JSON'))).toBe(
      'E_MEDIA_INDEX_INVALID',
    );
  });

  it('refuses a payload that is not canonical JSON, and a bundle.json passed as an index', async () => {
    const spaced = signed(valid, JSON.stringify(valid, null, 2));
    expect(await codeOf(() => decodePartsIndex(spaced, 'PARTS.JSON'))).toBe(
      'E_MEDIA_INDEX_INVALID',
    );
    const bundle = signed(valid, canonicalJson(valid), PAYLOAD_TYPE);
    expect(await codeOf(() => decodePartsIndex(bundle, 'PARTS.JSON'))).toBe(
      'E_MEDIA_INDEX_INVALID',
    );
  });

  // Bytes that are not UTF-8 decode to U+FFFD, whose canonical text is itself.
  it('refuses a signed payload that is not UTF-8, though its text is canonical', async () => {
    const payload = Buffer.from(
      canonicalJson({ ...valid, bundle: { ...valid.bundle, id: 'XX@1' } }),
    );
    payload.fill(0xff, payload.indexOf('XX'), payload.indexOf('XX') + 2);
    const key = parsePrivateKey(signer.privatePem, 'key');
    const bytes = envelopeBytes(signEnvelope(payload, [key], PARTS_PAYLOAD_TYPE));
    expect(await codeOf(() => decodePartsIndex(bytes, 'PARTS.JSON', trustOf(signer)))).toBe(
      'E_MEDIA_INDEX_INVALID',
    );
  });
});
