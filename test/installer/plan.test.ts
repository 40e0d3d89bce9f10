import { describe, expect, it } from 'vitest';
import {
  plan,
  type ApplianceFacts,
  type Controls,
  type InstalledComponent,
  type Plan,
} from '../../installer/plan.js';
import type { BundleMetadata } from '../../manifest-schema/index.js';

// ------------------------------------------------------------ table builders

interface ComponentSpec {
  version: string;
  requires?: Record<string, string>;
  platform?: string;
  /** false: the bundle does not carry it (unchanged in every supported release). */
  carried?: boolean;
  /** What the bundle declares of the update. */
  estimatedSeconds?: number;
  restart?: string[];
  reboot?: boolean;
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
          ...(c.estimatedSeconds !== undefined ? { estimatedSeconds: c.estimatedSeconds } : {}),
          ...(c.restart !== undefined ? { restart: c.restart } : {}),
          ...(c.reboot !== undefined ? { reboot: c.reboot } : {}),
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

/**
 * The whole plan, as the table states it. Each component reads
 * `action from → to: CODE CODE` ('-' for none), so its action, both versions
 * and every reason code (decisions and errors, in order) are compared; the
 * messages are wording, left to the tests below. Left out: what merely echoes
 * the input (product, kind, from, to, controls) and the changes and staged
 * bytes, which have tests of their own.
 */
interface Expected {
  verdict: 'ok' | 'blocked';
  /** Codes of the problems with the bundle as a whole; none unless given. */
  reasons?: string[];
  components: Record<string, string>;
  order: string[];
  reachesTarget: boolean;
  /** False unless given. */
  partial?: boolean;
}

interface Case {
  name: string;
  facts: ApplianceFacts;
  meta: BundleMetadata;
  controls?: Partial<Controls>;
  expect: Expected;
}

function projection(result: Plan): Required<Expected> {
  return {
    verdict: result.verdict,
    reasons: result.reasons.map((reason) => reason.code),
    components: Object.fromEntries(
      result.components.map((c) => [
        c.name,
        `${c.action} ${c.from ?? '-'} → ${c.to ?? '-'}: ${c.reasons.map((r) => r.code).join(' ')}`,
      ]),
    ),
    order: result.order,
    reachesTarget: result.reachesTarget,
    partial: result.partial,
  };
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

/** r1facts planned against chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'): only web moves. */
const r1to11 = {
  db: 'keep 3.0.0 → 3.0.0: SAME',
  api: 'keep 2.0.0 → 2.0.0: SAME',
  web: 'upgrade 1.0.0 → 1.0.1: NEWER',
};
/** r1facts with a component that release 1.0.0 does not record. */
const r1withRogue = () =>
  appliance('1.0.0', {
    db: '3.0.0',
    api: ['2.0.0', { db: '^3.0.0' }],
    web: ['1.0.0', { api: '^2.0.0' }],
    rogue: '0.1.0',
  });
/** r1facts with db's installed files re-hashed: one changed by hand. */
const r1handChanged = () => {
  const facts = r1facts();
  for (const component of Object.values(facts.components)) component.changedFiles = [];
  (facts.components.db as InstalledComponent).changedFiles = [
    { path: 'share/schema.sql', problem: 'content differs from what was installed' },
  ];
  return facts;
};
const diamond = () =>
  bundle(
    '1.0.0',
    {
      top: { version: '1.0.0', requires: { left: '^1.0.0', right: '^1.0.0' } },
      left: { version: '1.0.0', requires: { base: '^1.0.0' } },
      right: { version: '1.0.0', requires: { base: '^1.0.0' } },
      base: '1.0.0',
    },
    { kind: 'install' },
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
      components: {
        api: 'install - → 2.0.0: NEW',
        db: 'install - → 3.0.0: NEW',
        web: 'install - → 1.0.0: NEW',
      },
      order: ['db', 'api', 'web'],
      reachesTarget: true,
    },
  },
  {
    // The release is not in the bundle's record, so nothing is checked for drift.
    name: 'install bundle on an installed appliance is refused',
    facts: r1facts(),
    meta: bundle('1.1.0', { db: '3.0.0' }, { kind: 'install' }),
    expect: {
      verdict: 'blocked',
      reasons: ['E_UNSUPPORTED_FROM'],
      components: {
        api: 'remove 2.0.0 → -: DROPPED',
        db: 'keep 3.0.0 → 3.0.0: SAME',
        web: 'remove 1.0.0 → -: DROPPED',
      },
      order: ['web', 'api'],
      reachesTarget: true,
    },
  },
  {
    name: 'update bundle on an empty appliance is refused',
    facts: appliance(null, {}),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: {
      verdict: 'blocked',
      reasons: ['E_UNSUPPORTED_FROM'],
      components: {
        api: 'install - → 2.0.0: NEW',
        db: 'install - → 3.0.0: NEW',
        web: 'install - → 1.0.1: NEW',
      },
      order: ['db', 'api', 'web'],
      reachesTarget: true,
    },
  },
  // --- product, platform, supported releases
  {
    name: 'wrong product',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1', { product: 'other' }),
    expect: {
      verdict: 'blocked',
      reasons: ['E_PRODUCT'],
      components: r1to11,
      order: ['web'],
      reachesTarget: true,
    },
  },
  {
    name: 'platform too old for the bundle',
    facts: appliance(
      '1.0.0',
      { db: '3.0.0', api: ['2.0.0', { db: '^3.0.0' }], web: ['1.0.0', { api: '^2.0.0' }] },
      { platform: { name: 'os', version: '6.9.0' } },
    ),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: {
      verdict: 'blocked',
      reasons: ['E_PLATFORM'],
      components: r1to11,
      order: ['web'],
      reachesTarget: true,
    },
  },
  {
    name: 'another platform name',
    facts: appliance('1.0.0', { db: '3.0.0' }, { platform: { name: 'bsd', version: '7.2.1' } }),
    meta: bundle('1.1.0', { db: '3.0.1' }, { from: { '1.0.0': { db: '3.0.0' } } }),
    expect: {
      verdict: 'blocked',
      reasons: ['E_PLATFORM'],
      components: { db: 'upgrade 3.0.0 → 3.0.1: NEWER' },
      order: ['db'],
      reachesTarget: true,
    },
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
      components: {
        api: 'keep 2.0.0 → 2.0.0: SAME',
        db: 'error 3.0.0 → 3.1.0: E_PLATFORM',
        web: 'keep 1.0.0 → 1.0.0: SAME',
      },
      order: [],
      reachesTarget: false,
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
    expect: {
      verdict: 'ok',
      components: {
        api: 'keep 2.0.0 → 2.0.0: SAME',
        db: 'upgrade 3.0.0 → 3.1.0: NEWER FORCED',
        web: 'keep 1.0.0 → 1.0.0: SAME',
      },
      order: ['db'],
      reachesTarget: true,
    },
  },
  {
    name: 'a release the bundle does not update from',
    facts: appliance('0.9.0', { db: '2.0.0' }),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: {
      verdict: 'blocked',
      reasons: ['E_UNSUPPORTED_FROM'],
      components: {
        api: 'install - → 2.0.0: NEW',
        db: 'upgrade 2.0.0 → 3.0.0: NEWER',
        web: 'install - → 1.0.1: NEW',
      },
      order: ['db', 'api', 'web'],
      reachesTarget: true,
    },
  },
  {
    name: 'update from a supported release',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: { verdict: 'ok', components: r1to11, order: ['web'], reachesTarget: true },
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
      components: {
        api: 'keep 2.0.0 → 2.0.0: SAME',
        db: 'keep 3.0.0 → 3.0.0: SAME',
        web: 'keep 1.0.1 → 1.0.1: SAME',
      },
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
    expect: {
      verdict: 'blocked',
      reasons: ['E_DOWNGRADE'],
      components: r1to11,
      order: ['web'],
      reachesTarget: true,
    },
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
    expect: { verdict: 'ok', components: r1to11, order: ['web'], reachesTarget: true },
  },
  // --- drift: the appliance differs from what its release recorded
  {
    name: 'a component at another version than recorded is drift',
    facts: appliance('1.0.0', {
      db: '3.0.5',
      api: ['2.0.0', { db: '^3.0.0' }],
      web: ['1.0.0', { api: '^2.0.0' }],
    }),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: {
      verdict: 'blocked',
      components: { ...r1to11, db: 'error 3.0.5 → 3.0.0: E_DRIFT' },
      order: ['web'],
      reachesTarget: false,
    },
  },
  {
    name: 'a recorded component missing from the appliance is drift, and what needs it fails',
    facts: appliance('1.0.0', {
      api: ['2.0.0', { db: '^3.0.0' }],
      web: ['1.0.0', { api: '^2.0.0' }],
    }),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: {
      verdict: 'blocked',
      components: {
        api: 'error 2.0.0 → 2.0.0: SAME E_DEPENDENCY',
        db: 'error - → 3.0.0: E_DRIFT',
        web: 'error 1.0.0 → 1.0.1: NEWER E_DEPENDENCY',
      },
      order: [],
      reachesTarget: false,
    },
  },
  {
    name: 'a recorded component already gone is nothing to do when the bundle drops it',
    facts: appliance('1.0.0', { db: '3.0.0' }),
    meta: bundle(
      '1.1.0',
      { db: '3.1.0' },
      { from: { '1.0.0': { db: '3.0.0', agent: '0.9.0' } }, removed: ['agent'] },
    ),
    expect: {
      verdict: 'ok',
      components: { db: 'upgrade 3.0.0 → 3.1.0: NEWER' },
      order: ['db'],
      reachesTarget: true,
    },
  },
  {
    name: 'an extra component on the appliance is drift',
    facts: r1withRogue(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: {
      verdict: 'blocked',
      components: { ...r1to11, rogue: 'error 0.1.0 → -: E_DRIFT' },
      order: ['web'],
      reachesTarget: false,
    },
  },
  {
    name: 'an extra component is drift even when the bundle removes it',
    facts: r1withRogue(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1', { removed: ['rogue'] }),
    expect: {
      verdict: 'blocked',
      components: { ...r1to11, rogue: 'error 0.1.0 → -: E_DRIFT' },
      order: ['web'],
      reachesTarget: false,
    },
  },
  {
    name: "an extra component is drift even when it is at the bundle's target version",
    facts: appliance('1.0.0', { db: '3.0.0', cache: ['1.0.0', { db: '^3.0.0' }] }),
    meta: bundle(
      '1.1.0',
      { db: '3.0.0', cache: { version: '1.0.0', requires: { db: '^3.0.0' } } },
      { from: { '1.0.0': { db: '3.0.0' } } },
    ),
    expect: {
      verdict: 'blocked',
      components: { cache: 'error 1.0.0 → 1.0.0: E_DRIFT', db: 'keep 3.0.0 → 3.0.0: SAME' },
      order: [],
      reachesTarget: false,
    },
  },
  {
    name: 'delete removes an extra component, last',
    facts: r1withRogue(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { delete: ['rogue'] },
    expect: {
      verdict: 'ok',
      components: { ...r1to11, rogue: 'remove 0.1.0 → -: DELETED' },
      order: ['web', 'rogue'],
      reachesTarget: true,
    },
  },
  {
    name: 'force removes an extra component the target does not have',
    facts: r1withRogue(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { force: ['rogue'] },
    expect: {
      verdict: 'ok',
      components: { ...r1to11, rogue: 'remove 0.1.0 → -: FORCED' },
      order: ['web', 'rogue'],
      reachesTarget: true,
    },
  },
  {
    name: 'skip keeps an extra component and leaves the appliance off target',
    facts: r1withRogue(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { skip: ['rogue'] },
    expect: {
      verdict: 'ok',
      components: { ...r1to11, rogue: 'skip 0.1.0 → 0.1.0: SKIPPED' },
      order: ['web'],
      reachesTarget: false,
    },
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
    expect: {
      verdict: 'ok',
      components: { ...r1to11, db: 'downgrade 3.0.5 → 3.0.0: FORCED' },
      order: ['db', 'web'],
      reachesTarget: true,
    },
  },
  {
    name: 'force installs a recorded component missing from the appliance',
    facts: appliance('1.0.0', {
      api: ['2.0.0', { db: '^3.0.0' }],
      web: ['1.0.0', { api: '^2.0.0' }],
    }),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { force: ['db'] },
    expect: {
      verdict: 'ok',
      components: { ...r1to11, db: 'install - → 3.0.0: NEW FORCED' },
      order: ['db', 'web'],
      reachesTarget: true,
    },
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
    expect: {
      verdict: 'ok',
      components: { ...r1to11, db: 'skip 3.0.5 → 3.0.5: SKIPPED' },
      order: ['web'],
      reachesTarget: false,
    },
  },
  // --- drift by file: installed files that differ from their recorded hashes
  {
    name: 'a component with a file changed by hand is drift, even when the bundle keeps it',
    facts: r1handChanged(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: {
      verdict: 'blocked',
      components: { ...r1to11, db: 'error 3.0.0 → 3.0.0: E_DRIFT' },
      order: ['web'],
      reachesTarget: false,
    },
  },
  {
    name: 'a component with a file changed by hand is drift when the bundle upgrades it',
    facts: r1handChanged(),
    meta: chain('1.1.0', '3.1.0', '2.0.0', '1.0.1'),
    expect: {
      verdict: 'blocked',
      components: { ...r1to11, db: 'error 3.0.0 → 3.1.0: E_DRIFT' },
      order: ['web'],
      reachesTarget: false,
    },
  },
  {
    name: 'force reinstalls a component changed by hand from the bundle',
    facts: r1handChanged(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { force: ['db'] },
    expect: {
      verdict: 'ok',
      components: { ...r1to11, db: 'reinstall 3.0.0 → 3.0.0: FORCED' },
      order: ['db', 'web'],
      reachesTarget: true,
    },
  },
  {
    name: 'force cannot reinstall a component the bundle does not carry',
    facts: r1handChanged(),
    meta: bundle(
      '1.1.0',
      {
        db: { version: '3.0.0', carried: false },
        api: { version: '2.0.0', requires: { db: '^3.0.0' } },
        web: { version: '1.0.1', requires: { api: '^2.0.0' } },
      },
      { from: { '1.0.0': r1 } },
    ),
    controls: { force: ['db'] },
    expect: {
      verdict: 'blocked',
      components: { ...r1to11, db: 'error 3.0.0 → 3.0.0: FORCED E_NO_PAYLOAD' },
      order: ['web'],
      reachesTarget: false,
    },
  },
  {
    name: 'skip leaves a component changed by hand, and the release unverified',
    facts: r1handChanged(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { skip: ['db'] },
    expect: {
      verdict: 'ok',
      components: { ...r1to11, db: 'skip 3.0.0 → 3.0.0: SKIPPED' },
      order: ['web'],
      reachesTarget: false,
    },
  },
  // --- after a partial install: release 1.1.0 aimed at, web left at 1.0.0, started from 1.0.0
  {
    name: 'the same bundle again completes a partial install: what it left out is not drift',
    facts: appliance(
      '1.1.0',
      { db: '3.0.0', api: ['2.0.0', { db: '^3.0.0' }], web: ['1.0.0', { api: '^2.0.0' }] },
      {
        verified: false,
        highestRelease: '1.0.0',
        partial: { base: '1.0.0', leftOut: { web: '1.0.0' } },
      },
    ),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: { verdict: 'ok', components: r1to11, order: ['web'], reachesTarget: true },
  },
  {
    name: 'a bundle from the release a partial install started from applies too',
    facts: appliance(
      '1.2.0',
      { db: '3.0.0', api: ['2.0.0', { db: '^3.0.0' }], web: ['1.0.0', { api: '^2.0.0' }] },
      {
        verified: false,
        highestRelease: '1.0.0',
        partial: { base: '1.0.0', leftOut: { db: '3.0.0' } },
      },
    ),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: { verdict: 'ok', components: r1to11, order: ['web'], reachesTarget: true },
  },
  {
    name: 'without the record of a partial install, a component off its release is drift',
    facts: appliance(
      '1.1.0',
      { db: '3.0.0', api: ['2.0.0', { db: '^3.0.0' }], web: ['1.0.0', { api: '^2.0.0' }] },
      { verified: false, highestRelease: '1.0.0' },
    ),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    expect: {
      verdict: 'blocked',
      components: { ...r1to11, web: 'error 1.0.0 → 1.0.1: E_DRIFT' },
      order: [],
      reachesTarget: false,
    },
  },
  // --- own version
  {
    name: 'a component going down is a downgrade error',
    facts: r1facts(),
    meta: bundle(
      '1.1.0',
      {
        db: '2.9.0',
        api: { version: '2.0.0', requires: { db: '>=2.9.0' } },
        web: { version: '1.0.0', requires: { api: '^2.0.0' } },
      },
      { from: { '1.0.0': r1 } },
    ),
    expect: {
      verdict: 'blocked',
      components: {
        api: 'keep 2.0.0 → 2.0.0: SAME',
        db: 'error 3.0.0 → 2.9.0: E_DOWNGRADE',
        web: 'keep 1.0.0 → 1.0.0: SAME',
      },
      order: [],
      reachesTarget: false,
    },
  },
  {
    name: 'force through a downgrade',
    facts: r1facts(),
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
    expect: {
      verdict: 'ok',
      components: {
        api: 'keep 2.0.0 → 2.0.0: SAME',
        db: 'downgrade 3.0.0 → 2.9.0: FORCED',
        web: 'keep 1.0.0 → 1.0.0: SAME',
      },
      order: ['db'],
      reachesTarget: true,
    },
  },
  // --- dependencies
  {
    name: 'chain: a needs b needs c, all upgraded in order',
    facts: r1facts(),
    meta: chain('2.0.0', '4.0.0', '3.0.0', '2.0.0'),
    expect: {
      verdict: 'ok',
      components: {
        api: 'upgrade 2.0.0 → 3.0.0: NEWER',
        db: 'upgrade 3.0.0 → 4.0.0: NEWER',
        web: 'upgrade 1.0.0 → 2.0.0: NEWER',
      },
      order: ['db', 'api', 'web'],
      reachesTarget: true,
    },
  },
  {
    name: 'chain with the bottom skipped: the middle fails and the top with it',
    facts: r1facts(),
    meta: chain('2.0.0', '4.0.0', '3.0.0', '2.0.0'),
    controls: { skip: ['db'] },
    expect: {
      verdict: 'blocked',
      components: {
        api: 'error 2.0.0 → 3.0.0: NEWER E_DEPENDENCY',
        db: 'skip 3.0.0 → 3.0.0: SKIPPED',
        web: 'error 1.0.0 → 2.0.0: NEWER E_DEPENDENCY',
      },
      order: [],
      reachesTarget: false,
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
      components: {
        api: 'skip 2.0.0 → 2.0.0: SKIPPED',
        db: 'keep 3.0.0 → 3.0.0: SAME',
        web: 'error 1.0.0 → 1.1.0: NEWER E_DEPENDENCY',
      },
      order: [],
      reachesTarget: false,
    },
  },
  {
    name: 'a skip that nobody needs is fine but leaves the appliance off target',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { skip: ['web'] },
    expect: {
      verdict: 'ok',
      components: { ...r1to11, web: 'skip 1.0.0 → 1.0.0: SKIPPED' },
      order: [],
      reachesTarget: false,
    },
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
      components: {
        api: 'error 2.0.0 → 2.0.0: SAME E_DEPENDENCY',
        db: 'upgrade 3.0.0 → 4.0.0: NEWER',
      },
      order: ['db'],
      reachesTarget: false,
    },
  },
  {
    name: 'diamond: top needs left and right, both need base',
    facts: appliance(null, {}),
    meta: diamond(),
    expect: {
      verdict: 'ok',
      components: {
        base: 'install - → 1.0.0: NEW',
        left: 'install - → 1.0.0: NEW',
        right: 'install - → 1.0.0: NEW',
        top: 'install - → 1.0.0: NEW',
      },
      order: ['base', 'left', 'right', 'top'],
      reachesTarget: true,
    },
  },
  {
    name: 'diamond with the base skipped: both sides and the top fail',
    facts: appliance(null, {}),
    meta: diamond(),
    controls: { skip: ['base'] },
    expect: {
      verdict: 'blocked',
      components: {
        base: 'skip - → -: SKIPPED',
        left: 'error - → 1.0.0: NEW E_DEPENDENCY',
        right: 'error - → 1.0.0: NEW E_DEPENDENCY',
        top: 'error - → 1.0.0: NEW E_DEPENDENCY E_DEPENDENCY',
      },
      order: [],
      reachesTarget: false,
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
      components: {
        api: 'error 2.0.0 → 2.1.0: NEWER E_DEPENDENCY',
        db: 'error 3.0.0 → 3.1.0: E_PLATFORM',
        web: 'keep 1.0.0 → 1.0.0: SAME',
      },
      order: [],
      reachesTarget: false,
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
      components: { ...r1to11, db: 'error 3.0.0 → 3.1.0: E_PLATFORM' },
      order: ['web'],
      reachesTarget: false,
      partial: true,
    },
  },
  {
    name: '--partial never upgrades what a component left as installed needs',
    facts: r1facts(),
    meta: chain('1.1.0', '4.0.0', '2.1.0', '1.0.1'),
    controls: { skip: ['api'], partial: true },
    expect: {
      verdict: 'ok',
      components: {
        api: 'error 2.0.0 → 2.0.0: SKIPPED E_DEPENDENCY',
        db: 'error 3.0.0 → 4.0.0: NEWER E_DEPENDENCY',
        web: 'error 1.0.0 → 1.0.1: NEWER E_DEPENDENCY',
      },
      order: [],
      reachesTarget: false,
      partial: true,
    },
  },
  {
    name: '--partial never deletes what a component left as installed needs',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { delete: ['db'], partial: true },
    expect: {
      verdict: 'ok',
      components: {
        api: 'error 2.0.0 → 2.0.0: SAME E_DEPENDENCY',
        db: 'error 3.0.0 → -: DELETED E_DEPENDENCY',
        web: 'error 1.0.0 → 1.0.1: NEWER E_DEPENDENCY',
      },
      order: [],
      reachesTarget: false,
      partial: true,
    },
  },
  {
    name: '--partial does not override a bundle-level problem',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1', { product: 'other' }),
    controls: { partial: true },
    expect: {
      verdict: 'blocked',
      reasons: ['E_PRODUCT'],
      components: r1to11,
      order: ['web'],
      reachesTarget: true,
    },
  },
  {
    name: 'force ignores a broken requirement of the forced component',
    facts: r1facts(),
    meta: chain('2.0.0', '4.0.0', '3.0.0', '2.0.0'),
    controls: { skip: ['db'], force: ['api'] },
    expect: {
      verdict: 'ok',
      components: {
        api: 'upgrade 2.0.0 → 3.0.0: NEWER FORCED',
        db: 'skip 3.0.0 → 3.0.0: SKIPPED',
        web: 'upgrade 1.0.0 → 2.0.0: NEWER',
      },
      order: ['api', 'web'],
      reachesTarget: false,
    },
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
      components: { agent: 'remove 0.9.0 → -: DROPPED', db: 'upgrade 3.0.0 → 3.1.0: NEWER' },
      order: ['db', 'agent'],
      reachesTarget: true,
    },
  },
  {
    name: 'delete of a component nobody needs',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { delete: ['web'] },
    expect: {
      verdict: 'ok',
      components: { ...r1to11, web: 'remove 1.0.0 → -: DELETED' },
      order: ['web'],
      reachesTarget: false,
    },
  },
  {
    name: 'delete of a component others need blocks them',
    facts: r1facts(),
    meta: chain('1.1.0', '3.0.0', '2.0.0', '1.0.1'),
    controls: { delete: ['db'] },
    expect: {
      verdict: 'blocked',
      components: {
        api: 'error 2.0.0 → 2.0.0: SAME E_DEPENDENCY',
        db: 'remove 3.0.0 → -: DELETED',
        web: 'error 1.0.0 → 1.0.1: NEWER E_DEPENDENCY',
      },
      order: ['db'],
      reachesTarget: false,
    },
  },
  {
    name: 'dropping a component and what it needed removes dependents first',
    facts: appliance('1.0.0', { base: '1.0.0', agent: ['1.0.0', { base: '^1.0.0' }], db: '1.0.0' }),
    meta: bundle(
      '1.1.0',
      { db: '1.1.0' },
      { from: { '1.0.0': { base: '1.0.0', agent: '1.0.0', db: '1.0.0' } } },
    ),
    expect: {
      verdict: 'ok',
      components: {
        agent: 'remove 1.0.0 → -: DROPPED',
        base: 'remove 1.0.0 → -: DROPPED',
        db: 'upgrade 1.0.0 → 1.1.0: NEWER',
      },
      order: ['db', 'agent', 'base'],
      reachesTarget: true,
    },
  },
  {
    name: 'delete of a component that is not installed does nothing',
    facts: appliance(null, {}),
    meta: bundle('1.0.0', { db: '1.0.0', extra: '1.0.0' }, { kind: 'install' }),
    controls: { delete: ['extra'] },
    expect: {
      verdict: 'ok',
      components: { db: 'install - → 1.0.0: NEW', extra: 'keep - → -: NOT_INSTALLED' },
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
      components: {
        a: 'error - → 1.0.0: NEW E_CYCLE',
        b: 'error - → 1.0.0: NEW E_CYCLE',
        c: 'install - → 1.0.0: NEW',
      },
      order: ['c'],
      reachesTarget: false,
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
      components: {
        a: 'error - → 1.0.0: NEW E_CYCLE',
        b: 'error - → 1.0.0: NEW E_CYCLE',
        c: 'error - → 1.0.0: NEW E_CYCLE',
      },
      order: [],
      reachesTarget: false,
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
    expect: {
      verdict: 'blocked',
      components: {
        db: 'keep 3.0.0 → 3.0.0: SAME',
        maps: 'error 4.0.0 → 5.0.0: NEWER E_NO_PAYLOAD',
      },
      order: [],
      reachesTarget: false,
    },
  },
  {
    name: 'an unchanged, uncarried component is simply kept',
    facts: appliance('1.0.0', { db: '3.0.0', maps: '5.0.0' }),
    meta: bundle(
      '1.1.0',
      { db: '3.1.0', maps: { version: '5.0.0', carried: false } },
      { from: { '1.0.0': { db: '3.0.0', maps: '5.0.0' } } },
    ),
    expect: {
      verdict: 'ok',
      components: { db: 'upgrade 3.0.0 → 3.1.0: NEWER', maps: 'keep 5.0.0 → 5.0.0: SAME' },
      order: ['db'],
      reachesTarget: true,
    },
  },
  {
    name: 'updating from the older of two supported releases',
    facts: appliance('1.0.0', { db: '3.0.0', web: '1.0.0' }),
    meta: bundle(
      '1.2.0',
      { db: '4.0.0', web: '1.0.1' },
      { from: { '1.0.0': { db: '3.0.0', web: '1.0.0' }, '1.1.0': { db: '3.0.0', web: '1.0.1' } } },
    ),
    expect: {
      verdict: 'ok',
      components: { db: 'upgrade 3.0.0 → 4.0.0: NEWER', web: 'upgrade 1.0.0 → 1.0.1: NEWER' },
      order: ['db', 'web'],
      reachesTarget: true,
    },
  },
  {
    name: 'updating from the newer of two supported releases',
    facts: appliance('1.1.0', { db: '3.0.0', web: '1.0.1' }),
    meta: bundle(
      '1.2.0',
      { db: '4.0.0', web: '1.0.1' },
      { from: { '1.0.0': { db: '3.0.0', web: '1.0.0' }, '1.1.0': { db: '3.0.0', web: '1.0.1' } } },
    ),
    expect: {
      verdict: 'ok',
      components: { db: 'upgrade 3.0.0 → 4.0.0: NEWER', web: 'keep 1.0.1 → 1.0.1: SAME' },
      order: ['db'],
      reachesTarget: true,
    },
  },
  {
    name: 'a new component appears in an update',
    facts: appliance('1.0.0', { db: '3.0.0' }),
    meta: bundle(
      '1.1.0',
      { db: '3.0.0', cache: { version: '1.0.0', requires: { db: '^3.0.0' } } },
      { from: { '1.0.0': { db: '3.0.0' } } },
    ),
    expect: {
      verdict: 'ok',
      components: { cache: 'install - → 1.0.0: NEW', db: 'keep 3.0.0 → 3.0.0: SAME' },
      order: ['cache'],
      reachesTarget: true,
    },
  },
  {
    name: 'a prerelease satisfies a range that covers it',
    facts: appliance('1.0.0', { db: '3.0.0', api: ['2.0.0', { db: '^3.0.0' }] }),
    meta: bundle(
      '1.1.0',
      { db: '3.1.0-rc.1', api: { version: '2.0.0', requires: { db: '^3.0.0' } } },
      { from: { '1.0.0': { db: '3.0.0', api: '2.0.0' } } },
    ),
    expect: {
      verdict: 'ok',
      components: { api: 'keep 2.0.0 → 2.0.0: SAME', db: 'upgrade 3.0.0 → 3.1.0-rc.1: NEWER' },
      order: ['db'],
      reachesTarget: true,
    },
  },
];

describe('plan', () => {
  it.each(cases)('$name', ({ facts, meta, controls: given, expect: wanted }) => {
    expect(projection(plan(facts, meta, controls(given)))).toStrictEqual({
      reasons: [],
      partial: false,
      ...wanted,
    });
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

  // The drift hint is the operator's way out; --force with a bundle that does
  // not carry the files is not one (it only ends in E_NO_PAYLOAD).
  it('offers --force for drift only when the bundle carries the files to reinstall', () => {
    const drift = (carried: boolean) =>
      plan(
        r1handChanged(),
        bundle(
          '1.1.0',
          {
            db: { version: '3.0.0', carried },
            api: { version: '2.0.0', requires: { db: '^3.0.0' } },
            web: { version: '1.0.1', requires: { api: '^2.0.0' } },
          },
          { from: { '1.0.0': r1 } },
        ),
      )
        .components.find((c) => c.name === 'db')
        ?.reasons.find((r) => r.code === 'E_DRIFT')?.message;
    expect(drift(true)).toMatch(/--force db to reinstall it from this bundle \(3\.0\.0\)/);
    const notCarried = drift(false);
    expect(notCarried).toMatch(/--skip db to leave it as it is/);
    expect(notCarried).toMatch(/--force db needs a bundle that carries the files of db 3\.0\.0/);
    expect(notCarried).not.toMatch(/--force db to reinstall/);
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

/**
 * What the bundle declares of each update (estimatedSeconds, restart,
 * reboot), as the plan carries it: on the components it updates, and summed
 * up over them. Components as `name: {fields}`, only those that carry any.
 */
describe('declared effects', () => {
  const db = (version: string, fields: Partial<ComponentSpec> = {}) => ({ version, ...fields });
  const effects = { estimatedSeconds: 60, restart: ['db', 'api'], reboot: false };
  const from = { '1.0.0': { db: '3.0.0', api: '2.0.0', web: '1.0.0' } };
  const facts = () => appliance('1.0.0', { db: '3.0.0', api: '2.0.0', web: '1.0.0' });

  it.each<{
    name: string;
    meta: BundleMetadata;
    controls?: Partial<Controls>;
    expect: Pick<Plan, 'estimatedSeconds' | 'unestimated' | 'restart' | 'reboot'> & {
      components: Record<string, object>;
    };
  }>([
    {
      name: 'every update declares: the estimates add up, the services are listed once, sorted',
      meta: bundle(
        '1.1.0',
        {
          db: db('4.0.0', effects),
          api: db('2.1.0', { estimatedSeconds: 30, restart: ['api'], reboot: true }),
          web: db('1.0.0', { estimatedSeconds: 600, restart: ['web'], reboot: true }),
        },
        { from },
      ),
      expect: {
        components: {
          db: effects,
          api: { estimatedSeconds: 30, restart: ['api'], reboot: true },
        },
        estimatedSeconds: 90,
        unestimated: [],
        restart: ['api', 'db'],
        reboot: true,
      },
    },
    {
      name: 'an update that declares no estimate makes the total unknown, and is named',
      meta: bundle('1.1.0', { db: db('4.0.0', effects), api: '2.1.0', web: '1.0.0' }, { from }),
      expect: {
        components: { db: effects },
        estimatedSeconds: 60,
        unestimated: ['api'],
        restart: ['api', 'db'],
        reboot: false,
      },
    },
    {
      name: 'a skipped component counts for nothing, whatever it declares',
      meta: bundle(
        '1.1.0',
        { db: db('4.0.0', { ...effects, reboot: true }), api: '2.0.0', web: '1.0.0' },
        { from },
      ),
      controls: { skip: ['db'] },
      expect: {
        components: {},
        estimatedSeconds: 0,
        unestimated: [],
        restart: [],
        reboot: false,
      },
    },
    {
      name: 'a component in error under --partial counts for nothing',
      meta: bundle(
        '1.1.0',
        {
          db: db('2.0.0', { ...effects, reboot: true }),
          api: db('2.1.0', { estimatedSeconds: 5 }),
          web: '1.0.0',
        },
        { from },
      ),
      controls: { partial: true },
      expect: {
        components: { api: { estimatedSeconds: 5 } },
        estimatedSeconds: 5,
        unestimated: [],
        restart: [],
        reboot: false,
      },
    },
    {
      name: 'a forced downgrade is an update: it counts',
      meta: bundle('1.1.0', { db: db('2.0.0', effects), api: '2.0.0', web: '1.0.0' }, { from }),
      controls: { force: ['db'] },
      expect: {
        components: { db: effects },
        estimatedSeconds: 60,
        unestimated: [],
        restart: ['api', 'db'],
        reboot: false,
      },
    },
    {
      name: 'a removal declares nothing and leaves the estimate known',
      meta: bundle('1.1.0', { db: db('4.0.0', effects), api: '2.0.0' }, { from }),
      expect: {
        components: { db: effects },
        estimatedSeconds: 60,
        unestimated: [],
        restart: ['api', 'db'],
        reboot: false,
      },
    },
    {
      name: 'a kept component declares nothing for this appliance',
      meta: bundle(
        '1.0.0',
        { db: db('3.0.0', effects), api: '2.0.0', web: '1.0.0' },
        { from: { '0.9.0': from['1.0.0'] } },
      ),
      expect: {
        components: {},
        estimatedSeconds: 0,
        unestimated: [],
        restart: [],
        reboot: false,
      },
    },
  ])('$name', ({ meta, controls: given, expect: wanted }) => {
    const result = plan(facts(), meta, controls(given));
    expect({
      components: Object.fromEntries(
        result.components
          .filter((c) => 'estimatedSeconds' in c || 'restart' in c || 'reboot' in c)
          .map(({ name, estimatedSeconds, restart, reboot }) => [
            name,
            {
              ...(estimatedSeconds !== undefined ? { estimatedSeconds } : {}),
              ...(restart !== undefined ? { restart } : {}),
              ...(reboot !== undefined ? { reboot } : {}),
            },
          ]),
      ),
      estimatedSeconds: result.estimatedSeconds,
      unestimated: result.unestimated,
      restart: result.restart,
      reboot: result.reboot,
    }).toStrictEqual(wanted);
  });
});
