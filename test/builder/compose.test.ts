import { describe, expect, it } from 'vitest';
import { composeBundle } from '../../builder/compose.js';
import type { FerryError, ReleaseRecord, ReleaseSpec } from '../../manifest-schema/index.js';

type Versions = Record<string, string>;

function spec(
  release: string,
  components: Versions,
  extra: Partial<ReleaseSpec> = {},
): ReleaseSpec {
  return {
    product: 'p',
    release,
    platform: { name: 'os', range: '*' },
    components: Object.fromEntries(
      Object.entries(components).map(([name, version]) => [
        name,
        {
          version,
          payload: `./${name}`,
          changes: [{ id: `${name}-${version}`, kind: 'update', summary: `${name} ${version}` }],
        },
      ]),
    ),
    ...extra,
  };
}

function record(release: string, components: Versions): ReleaseRecord {
  return {
    formatVersion: 1,
    product: 'p',
    release: { version: release, createdAt: '2026-01-01T00:00:00Z', notes: '' },
    platform: { name: 'os', range: '*' },
    components: Object.fromEntries(
      Object.entries(components).map(([name, version]) => [name, { version, requires: {} }]),
    ),
    changes: Object.entries(components).map(([name, version]) => ({
      id: `${name}-${version}`,
      kind: 'update' as const,
      summary: '',
      component: name,
      version,
    })),
  };
}

const r100 = record('1.0.0', { a: '1.0.0', b: '1.0.0', c: '1.0.0' });
const r110 = record('1.1.0', { a: '1.0.0', b: '1.1.0', c: '1.0.0' });
const r120 = record('1.2.0', { a: '1.0.0', b: '1.1.0', c: '2.0.0' });

const cases: Array<{
  name: string;
  spec: ReleaseSpec;
  history: ReleaseRecord[];
  kind?: 'install' | 'update';
  expect: {
    kind: string;
    supportedFrom: string[];
    payload: Record<string, string>;
    changes: string[];
    removed: string[];
  };
}> = [
  {
    name: 'first release: an install bundle carrying everything',
    spec: spec('1.0.0', { a: '1.0.0', b: '1.0.0' }),
    history: [],
    expect: {
      kind: 'install',
      supportedFrom: [],
      payload: { a: 'included', b: 'included' },
      changes: ['a-1.0.0', 'b-1.0.0'],
      removed: [],
    },
  },
  {
    name: 'a fix to one component carries only it',
    spec: spec('1.1.0', { a: '1.0.0', b: '1.1.0', c: '1.0.0' }),
    history: [r100],
    expect: {
      kind: 'update',
      supportedFrom: ['1.0.0'],
      payload: { a: 'unchanged', b: 'included', c: 'unchanged' },
      changes: ['b-1.1.0'],
      removed: [],
    },
  },
  {
    name: 'cumulative: a component changed in any supported release is carried',
    spec: spec('1.3.0', { a: '1.0.0', b: '1.1.0', c: '2.0.0' }),
    history: [r100, r110, r120],
    expect: {
      kind: 'update',
      supportedFrom: ['1.0.0', '1.1.0', '1.2.0'],
      payload: { a: 'unchanged', b: 'included', c: 'included' },
      changes: ['b-1.1.0', 'c-2.0.0'],
      removed: [],
    },
  },
  {
    name: 'narrowed supportedFrom drops older releases and their payload needs',
    spec: spec('1.3.0', { a: '1.0.0', b: '1.1.0', c: '2.0.0' }, { supportedFrom: '>=1.1.0' }),
    history: [r100, r110, r120],
    expect: {
      kind: 'update',
      supportedFrom: ['1.1.0', '1.2.0'],
      payload: { a: 'unchanged', b: 'unchanged', c: 'included' },
      changes: ['c-2.0.0'],
      removed: [],
    },
  },
  {
    name: 'a new component is carried; a dropped one is removed',
    spec: spec('1.3.0', { a: '1.0.0', b: '1.1.0', d: '1.0.0' }),
    history: [r110, r120],
    expect: {
      kind: 'update',
      supportedFrom: ['1.1.0', '1.2.0'],
      payload: { a: 'unchanged', b: 'unchanged', d: 'included' },
      changes: ['d-1.0.0'],
      removed: ['c'],
    },
  },
  {
    name: 'an install bundle from a history still carries everything',
    spec: spec('1.3.0', { a: '1.0.0', b: '1.1.0', c: '2.0.0' }),
    history: [r100, r110, r120],
    kind: 'install',
    expect: {
      kind: 'install',
      supportedFrom: [],
      payload: { a: 'included', b: 'included', c: 'included' },
      changes: ['a-1.0.0', 'b-1.0.0', 'b-1.1.0', 'c-1.0.0', 'c-2.0.0'],
      removed: [],
    },
  },
  {
    name: 'a rebuild of a recorded release sees only the releases before it',
    spec: spec('1.1.0', { a: '1.0.0', b: '1.1.0', c: '1.0.0' }),
    history: [r100, r110, r120],
    expect: {
      kind: 'update',
      supportedFrom: ['1.0.0'],
      payload: { a: 'unchanged', b: 'included', c: 'unchanged' },
      changes: ['b-1.1.0'],
      removed: [],
    },
  },
];

describe('composeBundle (the cumulative rule)', () => {
  it.each(cases)('$name', ({ spec: s, history, kind, expect: wanted }) => {
    const design = composeBundle(s, history, { specFile: 'spec.yaml', ...(kind ? { kind } : {}) });
    expect({
      kind: design.kind,
      supportedFrom: design.supportedFrom.map((r) => r.version),
      payload: design.payload,
      changes: design.changes.map((c) => c.id).sort(),
      removed: design.removed,
    }).toEqual(wanted);
  });

  it('keeps the version a change was first released at when later specs still list it', () => {
    const s = spec('1.2.0', { a: '1.2.0' });
    (s.components.a as { changes: unknown[] }).changes.push({
      id: 'a-1.1.0',
      kind: 'fix',
      summary: 'old fix',
    });
    const design = composeBundle(
      s,
      [record('1.0.0', { a: '1.0.0' }), record('1.1.0', { a: '1.1.0' })],
      { specFile: 's' },
    );
    expect(design.changes.map((c) => `${c.id}@${c.version}`)).toEqual([
      'a-1.1.0@1.1.0',
      'a-1.2.0@1.2.0',
    ]);
  });

  it.each([
    [
      'an older release',
      spec('0.9.0', { a: '1.0.0', b: '1.0.0', c: '1.0.0' }),
      'E_RELEASE_NOT_NEWER',
    ],
    [
      'a recorded version with other contents',
      spec('1.1.0', { a: '9.0.0', b: '1.1.0', c: '1.0.0' }),
      'E_RELEASE_EXISTS',
    ],
    [
      'an update with nothing to update from',
      spec('1.3.0', { a: '1.0.0' }, { supportedFrom: '>=5.0.0' }),
      'E_SPEC_INVALID',
    ],
  ])('refuses %s', (_name, s, code) => {
    expect(() => composeBundle(s, [r100, r110], { specFile: 's' })).toThrow(
      expect.objectContaining({ code }) as FerryError,
    );
  });
});
