import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  envelopeBytes,
  signEnvelope,
  type BundleMetadata,
} from '../../manifest-schema/index.js';
import { ferry } from '../helpers.js';
import { tarBytes } from './hostile.js';
import { craftedFile, expectRefusedEverywhere, sharedBase } from './refuse.js';

// The signature is the first thing judged, by every command: nothing in an
// untrusted bundle.json is parsed, so no command can answer differently
// about the same bytes (one with E_FORMAT_VERSION, another with E_SIGNATURE).
describe('the signature is checked first everywhere', () => {
  const withMetadata = async (metadata: unknown, signed: boolean): Promise<string> => {
    const { entries } = await sharedBase();
    const stranger = generateKeyPairSync('ed25519').privateKey;
    const bytes = envelopeBytes(
      signEnvelope(Buffer.from(canonicalJson(metadata)), signed ? [stranger] : []),
    );
    return craftedFile(tarBytes([{ ...entries[0]!, data: bytes }, ...entries.slice(1)]), 'tar');
  };

  it('an unsigned bundle of an unknown format version gets E_SIGNATURE, inspect included', async () => {
    const { metadata } = await sharedBase();
    const future = { ...metadata, formatVersion: 2 } as unknown as BundleMetadata;
    const file = await withMetadata(future, false);
    await expectRefusedEverywhere(file, 'E_SIGNATURE', 3, ['verify', 'inspect', 'plan', 'install']);
    const bare = await ferry(['inspect', file]);
    expect(bare.stderr).toContain('ferry: E_SIGNATURE:');
    expect(bare.code).toBe(3);
  });

  it('inspect --trust of a bundle signed by an untrusted key names its code', async () => {
    const { metadata } = await sharedBase();
    const file = await withMetadata(metadata, true);
    await expectRefusedEverywhere(file, 'E_SIGNATURE', 3, ['inspect', 'verify']);
  });
});
