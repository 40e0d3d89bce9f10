import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  envelopeBytes,
  MAX_METADATA_BYTES,
  PAYLOAD_TYPE,
} from '../../manifest-schema/index.js';
import { tarBytes } from './hostile.js';
import { craftedFile, expectRefusedEverywhere, sharedBase } from './refuse.js';

// Checking a signature costs an Ed25519 verification, and every one must be
// parsed first: the count is capped, and the whole bundle.json is capped
// from its archive header, before it is read.
describe('an envelope built to cost memory and time', () => {
  it('many signatures are refused by count before any is checked', async () => {
    const { entries, metadata } = await sharedBase();
    const payload = Buffer.from(canonicalJson(metadata));
    const signatures = Array.from({ length: 5000 }, (_, i) => ({
      keyid: i.toString(16).padStart(64, '0'),
      sig: Buffer.alloc(64, i).toString('base64'),
    }));
    const bytes = envelopeBytes({
      payloadType: PAYLOAD_TYPE,
      payload: payload.toString('base64'),
      signatures,
    });
    const file = await craftedFile(
      tarBytes([{ ...entries[0]!, data: bytes }, ...entries.slice(1)]),
      'tar',
    );
    await expectRefusedEverywhere(file, 'E_METADATA_TOO_LARGE', 3);
  });

  it('a 60 MB unsigned envelope is refused from its size', async () => {
    const { entries } = await sharedBase();
    const big = envelopeBytes({
      payloadType: PAYLOAD_TYPE,
      payload: Buffer.alloc(45_000_000, 1).toString('base64'),
      signatures: [],
    });
    expect(big.length).toBeGreaterThan(MAX_METADATA_BYTES);
    const file = await craftedFile(
      tarBytes([{ ...entries[0]!, data: big }, ...entries.slice(1)]),
      'tar',
    );
    await expectRefusedEverywhere(file, 'E_METADATA_TOO_LARGE', 3, [
      'verify',
      'inspect',
      'install',
    ]);
  });
});
