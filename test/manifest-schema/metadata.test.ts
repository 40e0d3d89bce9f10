import { describe, expect, it } from 'vitest';
import {
  expectedEntries,
  metadataProblem,
  type BundleMetadata,
} from '../../manifest-schema/index.js';

const SHA = 'a'.repeat(64);

function bundle(fields: Partial<BundleMetadata> = {}): BundleMetadata {
  return {
    formatVersion: 1,
    kind: 'install',
    product: 'acme',
    release: { version: '1.0.0', createdAt: '2026-01-01T00:00:00Z', notes: '' },
    platform: { name: 'acme-os', range: '>=7.0.0' },
    target: { db: '1.0.0' },
    supportedFrom: [],
    changes: [],
    components: {
      db: {
        version: '1.0.0',
        requires: {},
        artifacts: { 'pre-validate': [], update: [], test: [], rollback: [], remove: [] },
        payload: { type: 'included', size: 0, files: [] },
      },
    },
    removed: {},
    verification: [],
    ...fields,
  };
}

const installer = {
  path: 'installer/ferry-installer',
  size: 10,
  sha256: SHA,
  version: '0.2.0',
  platform: 'linux-x64',
};

describe('minInstaller and the carried installer', () => {
  it.each([
    ['no installer and no minInstaller', {}, null],
    ['an installer as new as minInstaller', { minInstaller: '0.2.0', installer }, null],
    ['a lenient minInstaller', { minInstaller: 'v0.2' }, ['E_METADATA_INVALID', '/minInstaller']],
    [
      'an installer entry outside installer/',
      { installer: { ...installer, path: 'payload/db/ferry-installer' } },
      ['E_UNSAFE_ENTRY', '/installer/path'],
    ],
    [
      'an installer entry that climbs out',
      { installer: { ...installer, path: 'installer/../bundle.json' } },
      ['E_UNSAFE_ENTRY', '/installer/path'],
    ],
    [
      'an installer of a lenient version',
      { installer: { ...installer, version: '0.2' } },
      ['E_METADATA_INVALID', '/installer/version'],
    ],
    [
      'an installer older than minInstaller (it would hand over to itself)',
      { minInstaller: '0.3.0', installer },
      ['E_METADATA_INVALID', '/installer/version'],
    ],
  ] as const)('%s', (_, fields, expected) => {
    const problem = metadataProblem(bundle(fields));
    expect(problem && [problem.code, problem.field]).toEqual(expected);
  });

  it('is the last entry of the bundle, checked like an artifact', () => {
    const entries = expectedEntries(bundle({ installer }), 100);
    expect(entries.at(-1)).toEqual({
      name: 'installer/ferry-installer',
      type: 'file',
      size: 10,
      sha256: SHA,
      mode: 0o755,
    });
  });
});
