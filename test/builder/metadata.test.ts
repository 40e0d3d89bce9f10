import { describe, expect, it } from 'vitest';
import type { Collected, ScannedEntry } from '../../builder/collect.js';
import { composeBundle } from '../../builder/compose.js';
import { bundleMetadata, withHashes } from '../../builder/metadata.js';
import {
  BundleMetadataSchema,
  validate,
  type FerryError,
  type PayloadEntry,
  type PayloadRef,
  type ReleaseRecord,
  type ReleaseSpec,
} from '../../manifest-schema/index.js';

// The metadata is made from the spec, the design and what was collected, with
// a placeholder for every sha256 still to compute; each payload reference
// becomes the payload the installer will act on.

const ZERO = '0'.repeat(64);
const HASH = 'a'.repeat(64);
const URL_REF = { url: 'https://example.com/fw.bin', sha256: HASH, size: 7, saveAs: 'fw.bin' };

const scanned: ScannedEntry[] = [
  { path: 'bin/run', type: 'file', mode: 0o755, size: 10, source: '/src/bin/run' },
  { path: 'empty', type: 'dir', mode: 0o755, size: 0, source: '/src/empty' },
  { path: 'lib.so', type: 'file', mode: 0o644, size: 5, source: '/src/lib.so' },
  { path: 'run', type: 'symlink', mode: 0o777, size: 0, source: '/src/run', target: 'bin/run' },
];
const scannedFiles: PayloadEntry[] = [
  { path: 'bin/run', type: 'file', mode: 0o755, size: 10, sha256: ZERO },
  { path: 'empty', type: 'dir', mode: 0o755 },
  { path: 'lib.so', type: 'file', mode: 0o644, size: 5, sha256: ZERO },
  { path: 'run', type: 'symlink', mode: 0o777, target: 'bin/run' },
];
const recordedFiles: PayloadEntry[] = [
  { path: 'tiles.bin', type: 'file', mode: 0o644, size: 300, sha256: HASH },
];

function spec(
  payload: ReleaseSpec['components'][string]['payload'],
  version = '2.0.0',
): ReleaseSpec {
  return {
    product: 'p',
    release: '1.1.0',
    platform: { name: 'os', range: '>=1' },
    components: { c: { version, payload } },
  };
}

/** Release 1.0.0 with c 1.0.0; or, given files, with c 2.0.0 and the files its record lists. */
function history(files?: PayloadEntry[]): ReleaseRecord[] {
  return [
    {
      formatVersion: 1,
      product: 'p',
      release: { version: '1.0.0', createdAt: '2026-01-01T00:00:00Z', notes: '' },
      platform: { name: 'os', range: '>=1' },
      components: {
        c: { version: files ? '2.0.0' : '1.0.0', requires: {}, ...(files ? { files } : {}) },
      },
      changes: [],
    },
  ];
}

function collected(payloads: Collected['payloads'] = {}): Collected {
  const none = { 'pre-validate': [], update: [], test: [], rollback: [], remove: [] };
  return { artifacts: { c: none }, removed: {}, verification: [], payloads };
}

const payloadCases: Array<{
  name: string;
  spec: ReleaseSpec;
  history: ReleaseRecord[];
  kind?: 'install';
  payloads?: Collected['payloads'];
  expect: PayloadRef;
}> = [
  {
    name: 'a folder the bundle carries lists every scanned entry; its size counts files only',
    spec: spec('./c'),
    history: history(),
    payloads: { c: scanned },
    expect: { type: 'included', size: 15, files: scannedFiles },
  },
  {
    name: 'a default-location payload with a path lists the scanned folder, not carried',
    spec: spec({ location: 'default', path: './mirror/c' }),
    history: history(),
    payloads: { c: scanned },
    expect: { type: 'default', size: 15, files: scannedFiles },
  },
  {
    name: 'a default-location payload without a path is described by its earlier record',
    spec: spec({ location: 'default' }),
    history: history(recordedFiles),
    kind: 'install',
    expect: { type: 'default', size: 300, files: recordedFiles },
  },
  {
    name: 'a url payload is signed as the spec gives it',
    spec: spec(URL_REF),
    history: history(),
    expect: { type: 'url', ...URL_REF },
  },
  {
    name: 'a version every supported release has is unchanged, whatever its reference',
    spec: spec('./c', '1.0.0'),
    history: history(),
    expect: { type: 'unchanged' },
  },
];

describe('bundleMetadata: the payload of each reference', () => {
  it.each(payloadCases)('$name', (c) => {
    const design = composeBundle(c.spec, c.history, {
      specFile: 'spec.yaml',
      ...(c.kind ? { kind: c.kind } : {}),
    });
    const metadata = bundleMetadata(
      c.spec,
      design,
      collected(c.payloads),
      '2026-02-01T00:00:00.000Z',
    );
    expect(metadata.components.c?.payload).toStrictEqual(c.expect);
  });
});

describe('bundleMetadata: the rest of the metadata', () => {
  const full: ReleaseSpec = {
    product: 'p',
    release: '1.1.0',
    notes: 'Notes.',
    platform: { name: 'os', range: '>=1' },
    components: {
      c: {
        version: '2.0.0',
        payload: './c',
        owner: 'team-c',
        platform: '>=1.2',
        timeoutSeconds: 60,
      },
      d: { version: '1.0.0', payload: './d', requires: { c: '^2' } },
    },
    removed: { gone: { artifacts: { remove: ['./gone.sh'] } } },
  };
  const records: ReleaseRecord[] = [
    {
      ...history()[0]!,
      components: {
        c: { version: '1.0.0', requires: {} },
        d: { version: '1.0.0', requires: {} },
        gone: { version: '1.0.0', requires: {} },
        old: { version: '1.0.0', requires: {} },
      },
    },
  ];
  const design = composeBundle(full, records, { specFile: 'spec.yaml' });
  const inputs: Collected = {
    artifacts: {
      c: {
        'pre-validate': [],
        update: [{ entry: 'artifacts/c/update/up.sh', path: '/s/up.sh', size: 3 }],
        test: [],
        rollback: [],
        remove: [],
      },
      d: { 'pre-validate': [], update: [], test: [], rollback: [], remove: [] },
    },
    removed: {
      gone: [{ entry: 'artifacts/gone/remove/gone.sh', path: '/s/gone.sh', size: 4 }],
      old: [],
    },
    verification: [{ entry: 'verify/check.sh', path: '/s/check.sh', size: 5 }],
    payloads: { c: scanned },
  };
  const metadata = bundleMetadata(full, design, inputs, '2026-02-01T00:00:00.000Z');

  it('holds what the spec says of each component, and only that', () => {
    expect(metadata.components.c).toMatchObject({
      owner: 'team-c',
      platform: '>=1.2',
      timeoutSeconds: 60,
      requires: {},
    });
    expect(Object.keys(metadata.components.d ?? {}).sort()).toEqual([
      'artifacts',
      'payload',
      'requires',
      'version',
    ]);
    expect(metadata.components.d?.requires).toEqual({ c: '^2' });
    expect(metadata.target).toEqual({ c: '2.0.0', d: '1.0.0' });
    expect(metadata.release).toEqual({
      version: '1.1.0',
      createdAt: '2026-02-01T00:00:00.000Z',
      notes: 'Notes.',
    });
  });

  it('refers to every collected file by its entry, size and a placeholder hash', () => {
    expect(metadata.components.c?.artifacts.update).toEqual([
      { path: 'artifacts/c/update/up.sh', size: 3, sha256: ZERO },
    ]);
    expect(metadata.verification).toEqual([{ path: 'verify/check.sh', size: 5, sha256: ZERO }]);
  });

  it('lists every dropped component, with or without remove artifacts', () => {
    expect(metadata.removed).toEqual({
      gone: {
        artifacts: { remove: [{ path: 'artifacts/gone/remove/gone.sh', size: 4, sha256: ZERO }] },
      },
      old: { artifacts: { remove: [] } },
    });
  });

  it('validates against the bundle schema once the hashes are in', () => {
    const hashes = new Map(
      [
        'artifacts/c/update/up.sh',
        'artifacts/gone/remove/gone.sh',
        'verify/check.sh',
        'payload/c/bin/run',
        'payload/c/lib.so',
      ].map((name) => [name, { sha256: HASH }]),
    );
    const filled = withHashes(metadata, hashes);
    expect(validate(BundleMetadataSchema, filled)).not.toHaveProperty('errors');
    expect(JSON.stringify(filled)).not.toContain(ZERO);
  });
});

describe('withHashes', () => {
  const design = composeBundle(spec({ location: 'default' }), history(recordedFiles), {
    specFile: 'spec.yaml',
    kind: 'install',
  });
  const metadata = bundleMetadata(spec({ location: 'default' }), design, collected(), 'now');

  it('keeps the hashes an earlier record signed, and leaves its input as it was', () => {
    const placed = structuredClone(metadata);
    const filled = withHashes(metadata, new Map());
    expect(filled.components.c?.payload).toStrictEqual({
      type: 'default',
      size: 300,
      files: recordedFiles,
    });
    expect(metadata).toStrictEqual(placed);
  });

  it('refuses to sign a placeholder: a file without its hash is a bug', () => {
    const carried = bundleMetadata(
      spec('./c'),
      composeBundle(spec('./c'), [], { specFile: 's' }),
      collected({ c: scanned }),
      'now',
    );
    const partial = new Map([['payload/c/bin/run', { sha256: HASH }]]);
    expect(() => withHashes(carried, partial)).toThrow(
      expect.objectContaining<Partial<FerryError>>({ code: 'E_INTERNAL' }),
    );
  });
});
