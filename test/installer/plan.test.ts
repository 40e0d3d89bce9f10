import { describe, expect, it } from 'vitest';
import { plan, type ApplianceFacts, type Controls } from '../../installer/plan.js';
import type { BundleMetadata } from '../../manifest-schema/index.js';

// ------------------------------------------------------------ table builders

interface ComponentSpec {
  version: string;
  requires?: Record<string, string>;
  platform?: string;
  /** false: the bundle does not carry it (unchanged in every supported release). */
  carried?: boolean;
}

function bundle(
  release: string,
  components: Record<string, ComponentSpec | string>,
  options: {
    kind?: 'install' | 'update';
    from?: Record<string, Record<string, string>>;
    product?: string;
    platform?: string;
    removed?: string[];
  } = {},
): BundleMetadata {
  const specs = Object.fromEntries(
    Object.entries(components).map(([name, c]) => [
      name,
      typeof c === 'string' ? { version: c } : c,
    ]),
  );
  const empty = { 'pre-validate': [], update: [], test: [], rollback: [], remove: [] };
  return {
    formatVersion: 1,
    kind: options.kind ?? 'update',
    product: options.product ?? 'acme',
    release: { version: release, createdAt: '2026-01-01T00:00:00Z', notes: '' },
    platform: { name: 'os', range: options.platform ?? '>=7.0.0 <8.0.0' },
    target: Object.fromEntries(Object.entries(specs).map(([name, c]) => [name, c.version])),
    supportedFrom: Object.entries(options.from ?? {}).map(([version, comps]) => ({
      version,
      components: comps,
    })),
    changes: Object.entries(specs).map(([name, c]) => ({
      id: `${name}-${c.version}`,
      kind: 'update' as const,
      summary: `${name} ${c.version}`,
      component: name,
      version: c.version,
    })),
    components: Object.fromEntries(
      Object.entries(specs).map(([name, c]) => [
        name,
        {
          version: c.version,
          requires: c.requires ?? {},
          ...(c.platform ? { platform: c.platform } : {}),
          artifacts: empty,
          payload:
            c.carried === false
              ? { type: 'unchanged' as const }
              : { type: 'included' as const, size: 100, files: [] },
        },
      ]),
    ),
    removed: Object.fromEntries(
      (options.removed ?? []).map((name) => [name, { artifacts: { remove: [] } }]),
    ),
    verification: [],
  };
}

function appliance(
  release: string | null,
  components: Record<string, string | [string, Record<string, string>]>,
  extra: Partial<ApplianceFacts> = {},
): ApplianceFacts {
  return {
    product: 'acme',
    platform: { name: 'os', version: '7.2.1' },
    release,
    verified: true,
    highestRelease: release,
    components: Object.fromEntries(
      Object.entries(components).map(([name, c]) => [
        name,
        typeof c === 'string' ? { version: c, requires: {} } : { version: c[0], requires: c[1] },
      ]),
    ),
    ...extra,
  };
}

function controls(partial: Partial<Controls> = {}): Controls {
  return { force: [], skip: [], delete: [], allowDowngrade: false, partial: false, ...partial };
}

interface Expectation {
  verdict: 'ok' | 'blocked';
  actions?: Record<string, string>;
  /** Reason codes per component (only the E_ codes are compared). */
  errors?: Record<string, string[]>;
  bundleErrors?: string[];
  order?: string[];
  reachesTarget?: boolean;
  partial?: boolean;
}

interface Case {
  name: string;
  facts: ApplianceFacts;
  meta: BundleMetadata;
  controls?: Partial<Controls>;
  expect: Expectation;
}

// ------------------------------------------------------------ fixtures of the tables

const r1 = { db: '3.0.0', api: '2.0.0', web: '1.0.0' };
const r1facts = () =>
  appliance('1.0.0', {
    db: '3.0.0',
    api: ['2.0.0', { db: '^3.0.0' }],
    web: ['1.0.0', { api: '^2.0.0' }],
  });
const chain = (
  release: string,
  db: string,
  api: string,
  web: string,
  extra: Parameters<typeof bundle>[2] = {},
) =>
  bundle(
    release,
    {
      db,
      api: { version: api, requires: { db: `^${db.split('.')[0]}.0.0` } },
      web: { version: web, requires: { api: `^${api.split('.')[0]}.0.0` } },
    },
    { from: { '1.0.0': r1 }, ...extra },
  );

const cases: Case[] = [
  // --- install bundles on an empty appliance
  {
    name: 'install bundle on an empty appliance installs everything in dependency order',
    facts: appliance(null, {}),
    meta: bundle(
      '1.0.0',
      {
        web: { version: '1.0.0', requires: { api: '^2.0.0' } },
        api: { version: '2.0.0', requires: { db: '^3.0.0' } },
        db: '3.0.0',
      },
      { kind: 'install' },
    ),
    expect: {
      verdict: 'ok',
      actions: { db: 'install', api: 'install', web: 'install' },
      order: ['db', 'api', 'web'],
      reachesTarget: true,
    },
  },
  {
    name: 'install bundle on an installed appliance is refused',
    facts: r1facts(),
    meta: bundle('1.1.0', { db: '3.0.0' }, { kind: 'install' }),
    expect: { verdict: 'blocked', bundleErrors: ['E_UNSUPPORTED_FROM'] },
  },
  {
    name: 'update bundle on an empty appliance is refused',
    facts: appliance(null, {}),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: { verdict: 'blocked', bundleErrors: ['E_UNSUPPORTED_FROM'] },
  },
  // --- product, platform, supported releases
  {
    name: 'wrong product',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1', { product: 'other' }),
    expect: { verdict: 'blocked', bundleErrors: ['E_PRODUCT'] },
  },
  {
    name: 'platform too old for the bundle',
    facts: appliance(
      '1.0.0',
      { db: '3.0.0', api: ['2.0.0', { db: '^3.0.0' }], web: ['1.0.0', { api: '^2.0.0' }] },
      { platform: { name: 'os', version: '6.9.0' } },
    ),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: { verdict: 'blocked', bundleErrors: ['E_PLATFORM'] },
  },
  {
    name: 'another platform name',
    facts: appliance('1.0.0', { db: '3.0.0' }, { platform: { name: 'bsd', version: '7.2.1' } }),
    meta: bundle('1.1.0', { db: '3.0.1' }, { from: { '1.0.0': { db: '3.0.0' } } }),
    expect: { verdict: 'blocked', bundleErrors: ['E_PLATFORM'] },
  },
  {
    name: 'a component needing a newer platform is an error',
    facts: r1facts(),
    meta: bundle(
      '1.1.0',
      {
        db: { version: '3.1.0', platform: '>=7.3.0' },
        api: { version: '2.0.0', requires: { db: '^3.0.0' } },
        web: { version: '1.0.0', requires: { api: '^2.0.0' } },
      },
      { from: { '1.0.0': r1 } },
    ),
    expect: {
      verdict: 'blocked',
      actions: { db: 'error', api: 'keep', web: 'keep' },
      errors: { db: ['E_PLATFORM'] },
    },
  },
  {
    name: 'force through a component platform range',
    facts: r1facts(),
    meta: bundle(
      '1.1.0',
      {
        db: { version: '3.1.0', platform: '>=7.3.0' },
        api: { version: '2.0.0', requires: { db: '^3.0.0' } },
        web: { version: '1.0.0', requires: { api: '^2.0.0' } },
      },
      { from: { '1.0.0': r1 } },
    ),
    controls: { force: ['db'] },
    expect: { verdict: 'ok', actions: { db: 'upgrade' }, order: ['db'] },
  },
  {
    name: 'a release the bundle does not update from',
    facts: appliance('0.9.0', { db: '2.0.0' }),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: { verdict: 'blocked', bundleErrors: ['E_UNSUPPORTED_FROM'] },
  },
  {
    name: 'update from a supported release',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: {
      verdict: 'ok',
      actions: { db: 'keep', api: 'keep', web: 'upgrade' },
      order: ['web'],
      reachesTarget: true,
    },
  },
  {
    name: 're-applying the installed release keeps everything',
    facts: appliance('1.1.0', {
      db: '3.0.0',
      api: ['2.0.0', { db: '^3.0.0' }],
      web: ['1.0.1', { api: '^2.0.0' }],
    }),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: {
      verdict: 'ok',
      actions: { db: 'keep', api: 'keep', web: 'keep' },
      order: [],
      reachesTarget: true,
    },
  },
  // --- rollback protection
  {
    name: 'a bundle older than the highest committed release is refused',
    facts: appliance(
      '1.0.0',
      { db: '3.0.0', api: ['2.0.0', { db: '^3.0.0' }], web: ['1.0.0', { api: '^2.0.0' }] },
      { highestRelease: '1.2.0' },
    ),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: { verdict: 'blocked', bundleErrors: ['E_DOWNGRADE'] },
  },
  {
    name: '--allow-downgrade lets an older release through',
    facts: appliance(
      '1.0.0',
      { db: '3.0.0', api: ['2.0.0', { db: '^3.0.0' }], web: ['1.0.0', { api: '^2.0.0' }] },
      { highestRelease: '1.2.0' },
    ),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { allowDowngrade: true },
    expect: { verdict: 'ok', actions: { web: 'upgrade' } },
  },
  // --- drift
  {
    name: 'a component changed outside Ferry is drift',
    facts: appliance('1.0.0', {
      db: '3.0.5',
      api: ['2.0.0', { db: '^3.0.0' }],
      web: ['1.0.0', { api: '^2.0.0' }],
    }),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: {
      verdict: 'blocked',
      actions: { db: 'error', web: 'upgrade' },
      errors: { db: ['E_DRIFT'] },
    },
  },
  {
    name: 'a component missing from the appliance is drift',
    facts: appliance('1.0.0', {
      api: ['2.0.0', { db: '^3.0.0' }],
      web: ['1.0.0', { api: '^2.0.0' }],
    }),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: { verdict: 'blocked', errors: { db: ['E_DRIFT'] } },
  },
  {
    name: 'an extra component on the appliance is drift',
    facts: appliance('1.0.0', {
      db: '3.0.0',
      api: ['2.0.0', { db: '^3.0.0' }],
      web: ['1.0.0', { api: '^2.0.0' }],
      rogue: '0.1.0',
    }),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: { verdict: 'ok', actions: { rogue: 'remove' } },
  },
  {
    name: 'force replaces a drifted component',
    facts: appliance('1.0.0', {
      db: '3.0.5',
      api: ['2.0.0', { db: '^3.0.0' }],
      web: ['1.0.0', { api: '^2.0.0' }],
    }),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { force: ['db'] },
    expect: { verdict: 'ok', actions: { db: 'downgrade', web: 'upgrade' }, order: ['db', 'web'] },
  },
  {
    name: 'skip leaves a drifted component alone',
    facts: appliance('1.0.0', {
      db: '3.0.5',
      api: ['2.0.0', { db: '^3.0.0' }],
      web: ['1.0.0', { api: '^2.0.0' }],
    }),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { skip: ['db'] },
    expect: { verdict: 'ok', actions: { db: 'skip', web: 'upgrade' }, reachesTarget: false },
  },
  // --- own version
  {
    name: 'a component going down is a downgrade error',
    facts: appliance('1.0.0', {
      db: '3.0.0',
      api: ['2.0.0', { db: '^3.0.0' }],
      web: ['1.0.0', { api: '^2.0.0' }],
    }),
    meta: bundle(
      '1.1.0',
      {
        db: '2.9.0',
        api: { version: '2.0.0', requires: { db: '>=2.9.0' } },
        web: { version: '1.0.0', requires: { api: '^2.0.0' } },
      },
      { from: { '1.0.0': r1 } },
    ),
    expect: { verdict: 'blocked', actions: { db: 'error' }, errors: { db: ['E_DOWNGRADE'] } },
  },
  {
    name: 'force through a downgrade',
    facts: appliance('1.0.0', {
      db: '3.0.0',
      api: ['2.0.0', { db: '^3.0.0' }],
      web: ['1.0.0', { api: '^2.0.0' }],
    }),
    meta: bundle(
      '1.1.0',
      {
        db: '2.9.0',
        api: { version: '2.0.0', requires: { db: '>=2.9.0' } },
        web: { version: '1.0.0', requires: { api: '^2.0.0' } },
      },
      { from: { '1.0.0': r1 } },
    ),
    controls: { force: ['db'] },
    expect: { verdict: 'ok', actions: { db: 'downgrade', api: 'keep' }, order: ['db'] },
  },
  // --- dependencies
  {
    name: 'chain: a needs b needs c, all upgraded in order',
    facts: r1facts(),
    meta: chain('2.0.0', '4.0.0', '3.0.0', '2.0.0'),
    expect: {
      verdict: 'ok',
      actions: { db: 'upgrade', api: 'upgrade', web: 'upgrade' },
      order: ['db', 'api', 'web'],
    },
  },
  {
    name: 'chain with the bottom skipped: the middle fails and the top with it',
    facts: r1facts(),
    meta: chain('2.0.0', '4.0.0', '3.0.0', '2.0.0'),
    controls: { skip: ['db'] },
    expect: {
      verdict: 'blocked',
      actions: { db: 'skip', api: 'error', web: 'error' },
      errors: { api: ['E_DEPENDENCY'], web: ['E_DEPENDENCY'] },
    },
  },
  {
    name: 'a component both skipped and required by an upgrade',
    facts: r1facts(),
    meta: bundle(
      '1.1.0',
      {
        db: '3.0.0',
        api: { version: '2.1.0', requires: { db: '^3.0.0' } },
        web: { version: '1.1.0', requires: { api: '>=2.1.0' } },
      },
      { from: { '1.0.0': r1 } },
    ),
    controls: { skip: ['api'] },
    expect: {
      verdict: 'blocked',
      actions: { api: 'skip', web: 'error' },
      errors: { web: ['E_DEPENDENCY'] },
    },
  },
  {
    name: 'a skip that nobody needs is fine but leaves the appliance off target',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { skip: ['web'] },
    expect: { verdict: 'ok', actions: { web: 'skip' }, order: [], reachesTarget: false },
  },
  {
    name: 'a kept component whose installed need breaks blocks the plan',
    facts: appliance('1.0.0', { db: '3.0.0', api: ['2.0.0', { db: '^3.0.0' }] }),
    meta: bundle(
      '1.1.0',
      { db: '4.0.0', api: { version: '2.0.0', requires: { db: '^3.0.0' } } },
      { from: { '1.0.0': { db: '3.0.0', api: '2.0.0' } } },
    ),
    expect: {
      verdict: 'blocked',
      actions: { db: 'upgrade', api: 'error' },
      errors: { api: ['E_DEPENDENCY'] },
    },
  },
  {
    name: 'diamond: top needs left and right, both need base',
    facts: appliance(null, {}),
    meta: bundle(
      '1.0.0',
      {
        top: { version: '1.0.0', requires: { left: '^1.0.0', right: '^1.0.0' } },
        left: { version: '1.0.0', requires: { base: '^1.0.0' } },
        right: { version: '1.0.0', requires: { base: '^1.0.0' } },
        base: '1.0.0',
      },
      { kind: 'install' },
    ),
    expect: { verdict: 'ok', order: ['base', 'left', 'right', 'top'] },
  },
  {
    name: 'diamond with the base skipped: both sides and the top fail',
    facts: appliance(null, {}),
    meta: bundle(
      '1.0.0',
      {
        top: { version: '1.0.0', requires: { left: '^1.0.0', right: '^1.0.0' } },
        left: { version: '1.0.0', requires: { base: '^1.0.0' } },
        right: { version: '1.0.0', requires: { base: '^1.0.0' } },
        base: '1.0.0',
      },
      { kind: 'install' },
    ),
    controls: { skip: ['base'] },
    expect: {
      verdict: 'blocked',
      actions: { base: 'skip', left: 'error', right: 'error', top: 'error' },
    },
  },
  {
    name: 'a component whose dependency errors fails with it (propagation)',
    facts: r1facts(),
    meta: bundle(
      '1.1.0',
      {
        db: { version: '3.1.0', platform: '>=9.0.0' },
        api: { version: '2.1.0', requires: { db: '>=3.1.0' } },
        web: { version: '1.0.0', requires: { api: '^2.0.0' } },
      },
      { from: { '1.0.0': r1 } },
    ),
    expect: {
      verdict: 'blocked',
      actions: { db: 'error', api: 'error', web: 'keep' },
      errors: { db: ['E_PLATFORM'], api: ['E_DEPENDENCY'] },
    },
  },
  {
    name: '--partial applies the rest and says the result is partial',
    facts: r1facts(),
    meta: bundle(
      '1.1.0',
      {
        db: { version: '3.1.0', platform: '>=9.0.0' },
        api: { version: '2.0.0', requires: { db: '^3.0.0' } },
        web: { version: '1.0.1', requires: { api: '^2.0.0' } },
      },
      { from: { '1.0.0': r1 } },
    ),
    controls: { partial: true },
    expect: {
      verdict: 'ok',
      actions: { db: 'error', web: 'upgrade' },
      order: ['web'],
      partial: true,
      reachesTarget: false,
    },
  },
  {
    name: '--partial does not override a bundle-level problem',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1', { product: 'other' }),
    controls: { partial: true },
    expect: { verdict: 'blocked', bundleErrors: ['E_PRODUCT'] },
  },
  {
    name: 'force ignores a broken requirement of the forced component',
    facts: r1facts(),
    meta: chain('2.0.0', '4.0.0', '3.0.0', '2.0.0'),
    controls: { skip: ['db'], force: ['api'] },
    expect: { verdict: 'ok', actions: { db: 'skip', api: 'upgrade', web: 'upgrade' } },
  },
  // --- removal and delete
  {
    name: 'a component the bundle drops is removed, last',
    facts: appliance('1.0.0', { db: '3.0.0', agent: '0.9.0' }),
    meta: bundle(
      '1.1.0',
      { db: '3.1.0' },
      { from: { '1.0.0': { db: '3.0.0', agent: '0.9.0' } }, removed: ['agent'] },
    ),
    expect: {
      verdict: 'ok',
      actions: { db: 'upgrade', agent: 'remove' },
      order: ['db', 'agent'],
      reachesTarget: true,
    },
  },
  {
    name: 'delete of a component nobody needs',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { delete: ['web'] },
    expect: { verdict: 'ok', actions: { web: 'remove' }, order: ['web'], reachesTarget: false },
  },
  {
    name: 'delete of a component others need blocks them',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { delete: ['db'] },
    expect: {
      verdict: 'blocked',
      actions: { db: 'remove', api: 'error' },
      errors: { api: ['E_DEPENDENCY'] },
    },
  },
  {
    name: 'delete of what a dropped component needed, removed dependents first',
    facts: appliance('1.0.0', { base: '1.0.0', agent: ['1.0.0', { base: '^1.0.0' }], db: '1.0.0' }),
    meta: bundle(
      '1.1.0',
      { db: '1.1.0' },
      { from: { '1.0.0': { base: '1.0.0', agent: '1.0.0', db: '1.0.0' } } },
    ),
    expect: {
      verdict: 'ok',
      actions: { base: 'remove', agent: 'remove' },
      order: ['db', 'agent', 'base'],
    },
  },
  {
    name: 'delete of a component that is not installed does nothing',
    facts: appliance(null, {}),
    meta: bundle('1.0.0', { db: '1.0.0', extra: '1.0.0' }, { kind: 'install' }),
    controls: { delete: ['extra'] },
    expect: {
      verdict: 'ok',
      actions: { extra: 'keep', db: 'install' },
      order: ['db'],
      reachesTarget: false,
    },
  },
  // --- cycles
  {
    name: 'a dependency cycle in the bundle is an error naming its members',
    facts: appliance(null, {}),
    meta: bundle(
      '1.0.0',
      {
        a: { version: '1.0.0', requires: { b: '^1.0.0' } },
        b: { version: '1.0.0', requires: { a: '^1.0.0' } },
        c: '1.0.0',
      },
      { kind: 'install' },
    ),
    expect: {
      verdict: 'blocked',
      actions: { a: 'error', b: 'error', c: 'install' },
      errors: { a: ['E_CYCLE'], b: ['E_CYCLE'] },
    },
  },
  {
    name: 'a component needing a cycle fails with it',
    facts: appliance(null, {}),
    meta: bundle(
      '1.0.0',
      {
        a: { version: '1.0.0', requires: { b: '^1.0.0' } },
        b: { version: '1.0.0', requires: { a: '^1.0.0' } },
        c: { version: '1.0.0', requires: { a: '^1.0.0' } },
      },
      { kind: 'install' },
    ),
    expect: {
      verdict: 'blocked',
      actions: { a: 'error', b: 'error', c: 'error' },
      errors: { c: ['E_CYCLE'] },
    },
  },
  // --- payload availability
  {
    name: 'a component the bundle must change but does not carry',
    facts: appliance('1.0.0', { db: '3.0.0', maps: '4.0.0' }),
    meta: bundle(
      '1.1.0',
      { db: '3.0.0', maps: { version: '5.0.0', carried: false } },
      { from: { '1.0.0': { db: '3.0.0', maps: '4.0.0' } } },
    ),
    expect: { verdict: 'blocked', errors: { maps: ['E_NO_PAYLOAD'] } },
  },
  {
    name: 'an unchanged, uncarried component is simply kept',
    facts: appliance('1.0.0', { db: '3.0.0', maps: '5.0.0' }),
    meta: bundle(
      '1.1.0',
      { db: '3.1.0', maps: { version: '5.0.0', carried: false } },
      { from: { '1.0.0': { db: '3.0.0', maps: '5.0.0' } } },
    ),
    expect: { verdict: 'ok', actions: { db: 'upgrade', maps: 'keep' }, order: ['db'] },
  },
  {
    name: 'updating from the older of two supported releases',
    facts: appliance('1.0.0', { db: '3.0.0', web: '1.0.0' }),
    meta: bundle(
      '1.2.0',
      { db: '4.0.0', web: '1.0.1' },
      { from: { '1.0.0': { db: '3.0.0', web: '1.0.0' }, '1.1.0': { db: '3.0.0', web: '1.0.1' } } },
    ),
    expect: { verdict: 'ok', actions: { db: 'upgrade', web: 'upgrade' } },
  },
  {
    name: 'updating from the newer of two supported releases',
    facts: appliance('1.1.0', { db: '3.0.0', web: '1.0.1' }),
    meta: bundle(
      '1.2.0',
      { db: '4.0.0', web: '1.0.1' },
      { from: { '1.0.0': { db: '3.0.0', web: '1.0.0' }, '1.1.0': { db: '3.0.0', web: '1.0.1' } } },
    ),
    expect: { verdict: 'ok', actions: { db: 'upgrade', web: 'keep' }, order: ['db'] },
  },
  {
    name: 'a new component appears in an update',
    facts: appliance('1.0.0', { db: '3.0.0' }),
    meta: bundle(
      '1.1.0',
      { db: '3.0.0', cache: { version: '1.0.0', requires: { db: '^3.0.0' } } },
      { from: { '1.0.0': { db: '3.0.0' } } },
    ),
    expect: { verdict: 'ok', actions: { db: 'keep', cache: 'install' }, order: ['cache'] },
  },
  {
    name: 'a prerelease satisfies a range that covers it',
    facts: appliance('1.0.0', { db: '3.0.0', api: ['2.0.0', { db: '^3.0.0' }] }),
    meta: bundle(
      '1.1.0',
      { db: '3.1.0-rc.1', api: { version: '2.0.0', requires: { db: '^3.0.0' } } },
      { from: { '1.0.0': { db: '3.0.0', api: '2.0.0' } } },
    ),
    expect: { verdict: 'ok', actions: { db: 'upgrade', api: 'keep' } },
  },
];

describe('plan', () => {
  it(`covers at least forty cases (${cases.length})`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases)('$name', ({ facts, meta, controls: given, expect: wanted }) => {
    const result = plan(facts, meta, controls(given));
    expect(result.verdict).toBe(wanted.verdict);
    const actions = Object.fromEntries(result.components.map((c) => [c.name, c.action]));
    if (wanted.actions) expect(actions).toMatchObject(wanted.actions);
    if (wanted.errors) {
      for (const [name, codes] of Object.entries(wanted.errors)) {
        const got = result.components
          .find((c) => c.name === name)
          ?.reasons.map((r) => r.code)
          .filter((code) => code.startsWith('E_'));
        expect(
          got,
          `${name}: ${JSON.stringify(result.components.find((c) => c.name === name))}`,
        ).toEqual(codes);
      }
    }
    expect(result.reasons.map((r) => r.code)).toEqual(wanted.bundleErrors ?? []);
    if (wanted.order) expect(result.order).toEqual(wanted.order);
    if (wanted.reachesTarget !== undefined) expect(result.reachesTarget).toBe(wanted.reachesTarget);
    if (wanted.partial !== undefined) expect(result.partial).toBe(wanted.partial);
    for (const component of result.components) {
      for (const reason of component.reasons) expect(reason.message.length).toBeGreaterThan(10);
    }
  });

  it('names the chain in a propagated dependency error', () => {
    const result = plan(
      r1facts(),
      chain('2.0.0', '4.0.0', '3.0.0', '2.0.0'),
      controls({ skip: ['db'] }),
    );
    const web = result.components.find((c) => c.name === 'web');
    expect(web?.reasons.find((r) => r.code === 'E_DEPENDENCY')?.message).toMatch(
      /web needs api, which cannot be updated: api 3\.0\.0 needs db \^4\.0\.0, but db will be 3\.0\.0 \(skipped\)/,
    );
  });

  it('lists only the changes between the installed and the target versions', () => {
    const meta = bundle(
      '1.2.0',
      { db: '4.0.0', web: '1.0.1' },
      { from: { '1.0.0': { db: '3.0.0', web: '1.0.0' }, '1.1.0': { db: '3.0.0', web: '1.0.1' } } },
    );
    meta.changes = [
      { id: 'W1', kind: 'fix', summary: 'web fix', component: 'web', version: '1.0.1' },
      { id: 'D1', kind: 'update', summary: 'db 4', component: 'db', version: '4.0.0' },
    ];
    expect(
      plan(appliance('1.1.0', { db: '3.0.0', web: '1.0.1' }), meta).changes.map((c) => c.id),
    ).toEqual(['D1']);
    expect(
      plan(appliance('1.0.0', { db: '3.0.0', web: '1.0.0' }), meta).changes.map((c) => c.id),
    ).toEqual(['W1', 'D1']);
  });

  it('counts only the payload of acting components as staged', () => {
    const result = plan(r1facts(), chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'));
    expect(result.stageBytes).toBe(100);
  });

  it('is pure: the same input gives the same plan, and inputs are untouched', () => {
    const facts = r1facts();
    const meta = chain('2.0.0', '4.0.0', '3.0.0', '2.0.0');
    const before = JSON.stringify([facts, meta]);
    expect(plan(facts, meta)).toEqual(plan(facts, meta));
    expect(JSON.stringify([facts, meta])).toBe(before);
  });
});
