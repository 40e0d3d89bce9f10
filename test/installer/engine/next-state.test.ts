import { describe, expect, it } from 'vitest';
import { nextState, restoredState } from '../../../installer/engine/next-state.js';
import { NO_CONTROLS, type Plan } from '../../../installer/plan.js';
import type {
  Action,
  ApplianceState,
  BundleComponent,
  BundleMetadata,
  PayloadEntry,
} from '../../../manifest-schema/index.js';

// ------------------------------------------------------------ table builders

type Installed = ApplianceState['components'][string];

function file(path: string): PayloadEntry {
  return { path, type: 'file', mode: 0o644, size: 1, sha256: 'a'.repeat(64) };
}

function installed(version: string): Installed {
  return {
    version,
    requires: {},
    files: [file(`old-${version}`)],
    artifacts: { rollback: [], remove: [] },
  };
}

function state(
  release: string | null,
  components: Record<string, string>,
  highestRelease = release,
): ApplianceState {
  return {
    formatVersion: 1,
    product: 'acme',
    release,
    verified: true,
    highestRelease,
    components: Object.fromEntries(
      Object.entries(components).map(([name, version]) => [name, installed(version)]),
    ),
    previous: null,
    transaction: 'before',
  };
}

function component(version: string, extra: Partial<BundleComponent> = {}): BundleComponent {
  return {
    version,
    requires: {},
    artifacts: { 'pre-validate': [], update: [], test: [], rollback: [], remove: [] },
    payload: { type: 'included', size: 1, files: [file(`new-${version}`)] },
    ...extra,
  };
}

function metadata(release: string, components: Record<string, BundleComponent>): BundleMetadata {
  return {
    formatVersion: 1,
    kind: 'update',
    product: 'acme',
    release: { version: release, createdAt: '2026-01-01T00:00:00Z', notes: '' },
    platform: { name: 'os', range: '>=7.0.0' },
    target: Object.fromEntries(Object.entries(components).map(([n, c]) => [n, c.version])),
    supportedFrom: [],
    changes: [],
    components,
    removed: {},
    verification: [],
  };
}

/** A plan as the planner returns it; nextState reads the actions, `to` and `reachesTarget`. */
function plan(
  from: string | null,
  to: string,
  actions: Record<string, Action>,
  reachesTarget = true,
): Plan {
  return {
    verdict: 'ok',
    product: 'acme',
    kind: 'update',
    from,
    to,
    reasons: [],
    components: Object.entries(actions).map(([name, action]) => ({
      name,
      action,
      from: null,
      to: null,
      reasons: [],
    })),
    order: [],
    changes: [],
    stageBytes: 0,
    estimatedSeconds: 0,
    unestimated: [],
    restart: [],
    reboot: false,
    partial: !reachesTarget,
    reachesTarget,
    filesChecked: true,
    controls: NO_CONTROLS,
  };
}

/** What a committed state says, version by component; where a component's files came from. */
function summary(next: ApplianceState) {
  return {
    release: next.release,
    verified: next.verified,
    highestRelease: next.highestRelease,
    ...(next.partial ? { partial: next.partial } : {}),
    components: Object.fromEntries(
      Object.entries(next.components).map(([name, c]) => [
        name,
        `${c.version} (${c.files.map((f) => f.path).join(', ')})`,
      ]),
    ),
  };
}

// ------------------------------------------------------------ the table

const cases: Array<[string, ApplianceState, Plan, BundleMetadata, ReturnType<typeof summary>]> = [
  [
    'a first install records every component and raises the highest release',
    state(null, {}),
    plan(null, '1.0.0', { db: 'install', api: 'install' }),
    metadata('1.0.0', { db: component('1.0.0'), api: component('1.0.0') }),
    {
      release: '1.0.0',
      verified: true,
      highestRelease: '1.0.0',
      components: { api: '1.0.0 (new-1.0.0)', db: '1.0.0 (new-1.0.0)' },
    },
  ],
  [
    'an upgrade takes the bundle’s record; a kept component stays as installed',
    state('1.0.0', { db: '1.0.0', api: '1.0.0' }),
    plan('1.0.0', '1.1.0', { db: 'upgrade', api: 'keep' }),
    metadata('1.1.0', { db: component('2.0.0'), api: component('1.0.0') }),
    {
      release: '1.1.0',
      verified: true,
      highestRelease: '1.1.0',
      components: { db: '2.0.0 (new-2.0.0)', api: '1.0.0 (old-1.0.0)' },
    },
  ],
  [
    'a removed component is gone',
    state('1.0.0', { db: '1.0.0', legacy: '0.9.0' }),
    plan('1.0.0', '1.1.0', { db: 'keep', legacy: 'remove' }),
    metadata('1.1.0', { db: component('1.0.0') }),
    {
      release: '1.1.0',
      verified: true,
      highestRelease: '1.1.0',
      components: { db: '1.0.0 (old-1.0.0)' },
    },
  ],
  [
    'a skipped component stays as installed: not verified, recorded as left out, the highest release kept',
    state('1.0.0', { db: '1.0.0', web: '1.0.0' }),
    plan('1.0.0', '1.2.0', { db: 'upgrade', web: 'skip' }, false),
    metadata('1.2.0', { db: component('2.0.0'), web: component('2.0.0') }),
    {
      release: '1.2.0',
      verified: false,
      highestRelease: '1.0.0',
      partial: { base: '1.0.0', leftOut: { web: '1.0.0' } },
      components: { db: '2.0.0 (new-2.0.0)', web: '1.0.0 (old-1.0.0)' },
    },
  ],
  [
    'an errored component left out by --partial stays as installed',
    state('1.0.0', { db: '1.0.0', api: '1.0.0' }),
    plan('1.0.0', '1.2.0', { db: 'upgrade', api: 'error' }, false),
    metadata('1.2.0', { db: component('2.0.0'), api: component('3.0.0') }),
    {
      release: '1.2.0',
      verified: false,
      highestRelease: '1.0.0',
      partial: { base: '1.0.0', leftOut: { api: '1.0.0' } },
      components: { db: '2.0.0 (new-2.0.0)', api: '1.0.0 (old-1.0.0)' },
    },
  ],
  [
    'an error for a component not installed leaves it out',
    state('1.0.0', { db: '1.0.0' }),
    plan('1.0.0', '1.2.0', { db: 'upgrade', maps: 'error' }, false),
    metadata('1.2.0', { db: component('2.0.0'), maps: component('1.0.0') }),
    {
      release: '1.2.0',
      verified: false,
      highestRelease: '1.0.0',
      partial: { base: '1.0.0', leftOut: { maps: null } },
      components: { db: '2.0.0 (new-2.0.0)' },
    },
  ],
  [
    'a downgrade keeps the highest release committed (rollback protection)',
    state('1.3.0', { db: '2.0.0' }),
    plan('1.3.0', '1.1.0', { db: 'downgrade' }),
    metadata('1.1.0', { db: component('1.0.0') }),
    {
      release: '1.1.0',
      verified: true,
      highestRelease: '1.3.0',
      components: { db: '1.0.0 (new-1.0.0)' },
    },
  ],
  [
    'an older release than the highest ever committed does not lower it',
    state('1.1.0', { db: '1.0.0' }, '1.3.0'),
    plan('1.1.0', '1.2.0', { db: 'upgrade' }),
    metadata('1.2.0', { db: component('2.0.0') }),
    {
      release: '1.2.0',
      verified: true,
      highestRelease: '1.3.0',
      components: { db: '2.0.0 (new-2.0.0)' },
    },
  ],
  [
    'a url payload records its one saved file',
    state('1.0.0', { fw: '1.0.0' }),
    plan('1.0.0', '1.1.0', { fw: 'upgrade' }),
    metadata('1.1.0', {
      fw: component('2.0.0', {
        payload: {
          type: 'url',
          url: 'https://mirror.example/fw.bin',
          sha256: 'b'.repeat(64),
          size: 5,
          saveAs: 'fw.bin',
        },
      }),
    }),
    {
      release: '1.1.0',
      verified: true,
      highestRelease: '1.1.0',
      components: { fw: '2.0.0 (fw.bin)' },
    },
  ],
];

describe('nextState', () => {
  it.each(cases)('%s', (_name, old, thePlan, meta, expected) => {
    expect(summary(nextState(old, thePlan, meta, 'tx-1'))).toStrictEqual(expected);
  });

  it('records an updated component whole, and the old state as the previous one', () => {
    const old = state('1.0.0', { db: '1.0.0' });
    const ref = (path: string) => ({ path, size: 1, sha256: 'c'.repeat(64) });
    const db = component('2.0.0', {
      requires: { os: '>=1.0.0' },
      timeoutSeconds: 30,
      artifacts: {
        'pre-validate': [ref('artifacts/db/pre-validate/check.sh')],
        update: [ref('artifacts/db/update/migrate.sh')],
        test: [],
        rollback: [ref('artifacts/db/rollback/restore.sh')],
        remove: [ref('artifacts/db/remove/drop.sh')],
      },
    });
    const next = nextState(
      old,
      plan('1.0.0', '1.1.0', { db: 'upgrade' }),
      metadata('1.1.0', { db }),
      'tx-1',
    );
    expect(next).toStrictEqual({
      formatVersion: 1,
      product: 'acme',
      release: '1.1.0',
      verified: true,
      highestRelease: '1.1.0',
      components: {
        db: {
          version: '2.0.0',
          requires: { os: '>=1.0.0' },
          files: [file('new-2.0.0')],
          artifacts: {
            rollback: ['restore.sh'],
            remove: ['drop.sh'],
            update: ['migrate.sh'],
            digests: {
              rollback: [{ size: 1, sha256: 'c'.repeat(64) }],
              remove: [{ size: 1, sha256: 'c'.repeat(64) }],
              update: [{ size: 1, sha256: 'c'.repeat(64) }],
            },
          },
          timeoutSeconds: 30,
        },
      },
      previous: { release: '1.0.0', verified: true, components: old.components },
      previousIsNewer: false,
      transaction: 'tx-1',
      timeFloor: metadata('1.1.0', { db }).release.createdAt,
    });
  });

  it('moves the time floor up to the bundle, never down, and keeps the revoked keys given', () => {
    const later = metadata('1.1.0', {});
    const floor = '2099-01-01T00:00:00Z';
    const revokedKeys = { ['a'.repeat(64)]: { public: 'b'.repeat(64), revokedIn: 2 } };
    const old = { ...state('1.0.0', {}), timeFloor: floor, revokedKeys };
    const kept = nextState(old, plan('1.0.0', '1.1.0', {}), later, 'tx-1');
    expect(kept.timeFloor).toBe(floor);
    expect(kept.revokedKeys).toEqual(revokedKeys);
    const moved = nextState(state('1.0.0', {}), plan('1.0.0', '1.1.0', {}), later, 'tx-1');
    expect(moved.timeFloor).toBe(later.release.createdAt);
    expect(moved.revokedKeys).toBeUndefined();
  });
});

describe('restoredState', () => {
  it('swaps the previous release back in, and keeps the highest release', () => {
    const current = { ...state('1.2.0', { db: '2.0.0', api: '2.0.0' }), previous: null };
    const previous = { release: '1.0.0', verified: false, components: { db: installed('1.0.0') } };
    expect(restoredState(current, previous, 'tx-2')).toStrictEqual({
      ...current,
      release: '1.0.0',
      verified: false,
      components: previous.components,
      previous: { release: '1.2.0', verified: true, components: current.components },
      previousIsNewer: true,
      transaction: 'tx-2',
    });
  });

  it('records that a rollback from it goes the other way, by the records, not the releases', () => {
    const previous = { release: '1.4.0', verified: false, components: {} };
    const complete = { ...state('1.4.0', {}), previous, previousIsNewer: false };
    const back = restoredState(complete, previous, 'tx-2');
    expect(back.previousIsNewer).toBe(true);
    const forward = restoredState(back, back.previous ?? previous, 'tx-3');
    expect(forward.previousIsNewer).toBe(false);
    // A state.json an older Ferry wrote: the newer release is taken for the later install.
    const older = { ...state('1.2.0', {}), previous: null };
    const fromOlder = restoredState(older, { ...previous, release: '1.0.0' }, 'tx-2');
    expect(fromOlder.previousIsNewer).toBe(true);
    const toNewer = restoredState(older, { ...previous, release: '1.3.0' }, 'tx-2');
    expect(toNewer.previousIsNewer).toBe(false);
  });
});
