import { describe, expect, it } from 'vitest';
import { MAX_EXPORT_BYTES } from '../../installer/appliance.js';
import type { ApplianceFacts } from '../../installer/plan.js';
import { requireReadable } from '../../installer/status.js';
import { codeOf } from '../helpers.js';

const facts = {
  product: 'acme',
  platform: { name: 'linux', version: '1.0.0' },
  release: '1.0.0',
  verified: true,
  highestRelease: '1.0.0',
  components: {
    web: { version: '1.0.0', changedFiles: [{ path: 'a', problem: 'missing' }] },
    db: { version: '1.0.0', changedFiles: [] },
    maps: {
      version: '1.0.0',
      changedFiles: Array.from({ length: 3 }, (_, i) => ({ path: `m${i}`, problem: 'missing' })),
    },
  },
} as unknown as ApplianceFacts;

describe('status --export of an appliance plan --state could not read', () => {
  it('writes an export up to the size plan --state reads', () => {
    expect(() =>
      requireReadable('/tmp/facts.json', 'x'.repeat(MAX_EXPORT_BYTES), facts),
    ).not.toThrow();
  });

  it('refuses a larger one as drift, naming the components with files changed, most first', async () => {
    const text = 'x'.repeat(MAX_EXPORT_BYTES + 1);
    expect(await codeOf(() => requireReadable('/tmp/facts.json', text, facts))).toBe('E_DRIFT');
    expect(() => requireReadable('/tmp/facts.json', text, facts)).toThrow(
      /over the 16777216 plan --state reads; files changed outside Ferry: maps \(3\), web \(1\)$/,
    );
  });
});
