import { describe, expect, it } from 'vitest';
import { canonicalJson, envelopeBytes, signEnvelope } from '../../manifest-schema/index.js';
import { tarBytes } from './hostile.js';
import { craftedFile, expectRefusedEverywhere, sharedBase } from './refuse.js';

// Two JSON parsers can read two documents from one text with duplicate keys
// (first wins, last wins). The signed bytes must be the one canonical text
// the builder writes, so there is only ever one reading.
describe('bundle.json that is not canonical JSON', () => {
  const bundleWith = async (envelope: Buffer): Promise<string> => {
    const { entries } = await sharedBase();
    return craftedFile(tarBytes([{ ...entries[0]!, data: envelope }, ...entries.slice(1)]), 'tar');
  };

  it('a validly signed payload with a duplicate key is refused', async () => {
    const { metadata, key } = await sharedBase();
    const text = canonicalJson(metadata);
    // A second "product" that JSON.parse keeps: the signature still verifies over these bytes.
    const twice = `${text.slice(0, -1)},"product":"other"}`;
    expect(JSON.parse(twice)).toMatchObject({ product: 'other' });
    const file = await bundleWith(envelopeBytes(signEnvelope(Buffer.from(twice), [key])));
    await expectRefusedEverywhere(file, 'E_METADATA_NOT_CANONICAL', 3, ['verify', 'plan']);
  });

  it('an envelope with a duplicate key or extra white space is refused', async () => {
    const { metadata, key } = await sharedBase();
    const envelope = signEnvelope(Buffer.from(canonicalJson(metadata)), [key]);
    const canonical = envelopeBytes(envelope).toString();
    const duplicated = `{"payload":"e30=",${canonical.slice(1)}`;
    await expectRefusedEverywhere(
      await bundleWith(Buffer.from(duplicated)),
      'E_METADATA_NOT_CANONICAL',
      3,
      ['verify', 'inspect'],
    );
    const spaced = canonical.replace('{', '{ ');
    await expectRefusedEverywhere(
      await bundleWith(Buffer.from(spaced)),
      'E_METADATA_NOT_CANONICAL',
      3,
      ['verify'],
    );
  });

  // The payload's base64 must be canonical; so must each signature's, or
  // bytes added after its padding (which Node's decoder skips) still verify.
  it('a signature with bytes after its base64 padding is refused', async () => {
    const { metadata, key } = await sharedBase();
    const envelope = signEnvelope(Buffer.from(canonicalJson(metadata)), [key]);
    const [signature] = envelope.signatures;
    const padded = {
      ...envelope,
      signatures: [{ ...signature!, sig: `${signature!.sig}AAAA` }],
    };
    const file = await bundleWith(envelopeBytes(padded));
    const runs = await expectRefusedEverywhere(file, 'E_METADATA_INVALID', 3, [
      'verify',
      'inspect',
      'install',
    ]);
    for (const run of runs) expect(run.stderr).toContain('signature 0 of bundle.json');
  });

  // Bytes that are not UTF-8 decode to U+FFFD, whose canonical text is
  // itself: the text compares equal while the bytes are not what Ferry
  // writes, and a strict parser would refuse what this one read.
  it('a signed payload with bytes that are not UTF-8 is refused', async () => {
    const { metadata, key } = await sharedBase();
    const notes = 'two bytes here: XX';
    const payload = Buffer.from(
      canonicalJson({ ...metadata, release: { ...metadata.release, notes } }),
    );
    const at = payload.indexOf('XX');
    payload[at] = 0xff;
    payload[at + 1] = 0xfe;
    const file = await bundleWith(envelopeBytes(signEnvelope(payload, [key])));
    const runs = await expectRefusedEverywhere(file, 'E_METADATA_NOT_CANONICAL', 3, [
      'verify',
      'plan',
    ]);
    for (const run of runs) expect(run.stderr).toContain(`is not UTF-8 (from byte ${at})`);
  });

  it('an envelope with bytes that are not UTF-8 in an unsigned field is refused', async () => {
    const { entries } = await sharedBase();
    const envelope = JSON.parse(entries[0]!.data.toString()) as {
      signatures: Array<{ keyid: string; sig: string }>;
    };
    envelope.signatures.push({ keyid: 'XX', sig: Buffer.alloc(64).toString('base64') });
    const bytes = Buffer.from(JSON.stringify(envelope));
    const at = bytes.indexOf('"XX"') + 1;
    bytes[at] = 0xff;
    bytes[at + 1] = 0xff;
    await expectRefusedEverywhere(await bundleWith(bytes), 'E_METADATA_NOT_CANONICAL', 3, [
      'verify',
      'inspect',
      'install',
    ]);
  });
});
