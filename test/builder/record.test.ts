import { describe, expect, it } from 'vitest';
import type { Collected, ScannedEntry } from '../../builder/collect.js';
import { composeBundle } from '../../builder/compose.js';
import { bundleMetadata, withHashes } from '../../builder/metadata.js';
import { releaseRecord } from '../../builder/record.js';
import type {
  Change,
  PayloadEntry,
  ReleaseRecord,
  ReleaseSpec,
} from '../../manifest-schema/index.js';

// The record is what later builds compose from: each component's version,
// requirements and files as signed, and every change its version introduced.

const HASH = 'b'.repeat(64);
const carried: ScannedEntry[] = [
  { path: 'app', type: 'file', mode: 0o755, size: 4, source: '/src/app' },
];
const recorded: PayloadEntry[] = [
  { path: 'data', type: 'file', mode: 0o644, size: 9, sha256: 'c'.repeat(64) },
];

type SpecComponent = ReleaseSpec['components'][string];

function record(components: ReleaseRecord['components'], changes: Change[] = []): ReleaseRecord {
  return {
    formatVersion: 1,
    product: 'p',
    release: { version: '1.0.0', createdAt: '2026-01-01T00:00:00Z', notes: '' },
    platform: { name: 'os', range: '*' },
    components,
    changes,
  };
}

function build(components: Record<string, SpecComponent>, history: ReleaseRecord[]) {
  const spec: ReleaseSpec = {
    product: 'p',
    release: '1.1.0',
    platform: { name: 'os', range: '*' },
    components,
  };
  const design = composeBundle(spec, history, { specFile: 'spec.yaml' });
  const none = { 'pre-validate': [], update: [], test: [], rollback: [], remove: [] };
  const collected: Collected = {
    artifacts: Object.fromEntries(Object.keys(components).map((name) => [name, none])),
    removed: {},
    verification: [],
    payloads: Object.fromEntries(
      Object.keys(components)
        .filter((name) => design.payload[name] === 'included')
        .map((name) => [name, carried]),
    ),
  };
  const metadata = bundleMetadata(spec, design, collected, '2026-02-01T00:00:00.000Z');
  const hashes = new Map(
    Object.keys(components).map((name) => [`payload/${name}/app`, { sha256: HASH }]),
  );
  return releaseRecord(withHashes(metadata, hashes), design, spec);
}

describe('releaseRecord: the files of each component', () => {
  it.each<{
    name: string;
    component: SpecComponent;
    before: ReleaseRecord['components'][string];
    files: PayloadEntry[] | undefined;
  }>([
    {
      name: 'a carried payload: its files with the hashes signed',
      component: { version: '2.0.0', payload: './a' },
      before: { version: '1.0.0', requires: {} },
      files: [{ path: 'app', type: 'file', mode: 0o755, size: 4, sha256: HASH }],
    },
    {
      name: 'a url payload: the one file it saves',
      component: {
        version: '2.0.0',
        payload: { url: 'https://example.com/a', sha256: HASH, size: 3, saveAs: 'a.bin' },
      },
      before: { version: '1.0.0', requires: {} },
      files: [{ path: 'a.bin', type: 'file', mode: 0o644, size: 3, sha256: HASH }],
    },
    {
      name: 'an unchanged component: the files its earlier record lists',
      component: { version: '1.0.0', payload: './a' },
      before: { version: '1.0.0', requires: {}, files: recorded },
      files: recorded,
    },
    {
      name: 'an unchanged component no record describes: no files',
      component: { version: '1.0.0', payload: './a' },
      before: { version: '1.0.0', requires: {} },
      files: undefined,
    },
  ])('$name', ({ component, before, files }) => {
    const result = build({ a: component }, [record({ a: before })]);
    expect(result.components).toStrictEqual({
      a: { version: component.version, requires: {}, ...(files ? { files } : {}) },
    });
  });
});

describe('releaseRecord: the changes', () => {
  const earlier: Change = {
    id: 'A-1',
    kind: 'fix',
    summary: 'as first recorded',
    component: 'a',
    version: '1.5.0',
  };
  const result = build(
    {
      a: {
        version: '2.0.0',
        payload: './a',
        changes: [
          { id: 'A-1', kind: 'fix', summary: 'listed again' },
          { id: 'A-2', kind: 'update', summary: 'new' },
        ],
      },
      b: {
        version: '1.0.0',
        payload: './b',
        changes: [{ id: 'B-1', kind: 'update', summary: 'old news' }],
      },
    },
    [
      record({ a: { version: '1.5.0', requires: {} }, b: { version: '1.0.0', requires: {} } }, [
        earlier,
        { id: 'B-1', kind: 'update', summary: 'old news', component: 'b', version: '1.0.0' },
      ]),
    ],
  );

  it('keeps every change of every component, each tagged with the version that introduced it', () => {
    expect(result.changes).toStrictEqual([
      earlier,
      { id: 'A-2', kind: 'update', summary: 'new', component: 'a', version: '2.0.0' },
      { id: 'B-1', kind: 'update', summary: 'old news', component: 'b', version: '1.0.0' },
    ]);
  });
});
