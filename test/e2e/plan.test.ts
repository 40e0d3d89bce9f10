import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { planFor } from '../../installer/planning.js';
import { initAppliance, snapshot as snapshotOf, type InitOptions } from './appliance.js';
import { buildAll, ferry, json, tempDir, workspace, type Workspace } from '../helpers.js';

interface PlanJson {
  verdict: 'ok' | 'blocked';
  from: string | null;
  to: string;
  reasons: Array<{ code: string }>;
  components: Array<{
    name: string;
    action: string;
    from: string | null;
    to: string | null;
    reasons: Array<{ code: string; message: string }>;
    estimatedSeconds?: number;
    restart?: string[];
    reboot?: boolean;
  }>;
  order: string[];
  changes: Array<{ id: string }>;
  estimatedSeconds: number;
  unestimated: string[];
  restart: string[];
  reboot: boolean;
}

let dir: string;
let ws: Workspace;
let tar: Record<string, string>;
let zip: Record<string, string>;

beforeAll(async () => {
  dir = await tempDir();
  ws = await workspace(dir);
  tar = await buildAll(ws, join(dir, 'tar'), 'tar');
  zip = await buildAll(ws, join(dir, 'zip'), 'zip');
});

async function init(name: string, options: InitOptions = {}): Promise<string> {
  const root = join(dir, name);
  await initAppliance(ws, root, options);
  return root;
}

/** Puts an appliance at a fixture release as its commit would leave it (components and their requires). */
async function atRelease(root: string, release: string, highest = release): Promise<void> {
  const record = JSON.parse(
    await readFile(join(ws.product, 'history', `acme-appliance-${release}.json`), 'utf8'),
  ) as {
    components: Record<string, { version: string; requires: Record<string, string> }>;
  };
  const state = JSON.parse(
    await readFile(join(root, 'var/lib/ferry/state.json'), 'utf8'),
  ) as Record<string, unknown>;
  state.release = release;
  state.highestRelease = highest;
  state.components = Object.fromEntries(
    Object.entries(record.components).map(([name, c]) => [
      name,
      {
        version: c.version,
        requires: c.requires,
        files: [],
        artifacts: { rollback: [], remove: [] },
      },
    ]),
  );
  await writeFile(join(root, 'var/lib/ferry/state.json'), JSON.stringify(state));
  // Each component's `current` link, as an install leaves it: a missing one is drift.
  for (const [name, c] of Object.entries(record.components)) {
    const dir = join(root, 'opt/ferry', name);
    await rm(dir, { recursive: true, force: true });
    await mkdir(join(dir, c.version), { recursive: true });
    await symlink(c.version, join(dir, 'current'));
  }
}

/** A plan writes nothing at all: not even a history line or a log. */
const snapshot = (root: string) => snapshotOf(root, []);

async function planJson(args: string[]): Promise<{ code: number; plan: PlanJson; stderr: string }> {
  const result = await ferry(['plan', ...args, '--json']);
  return { code: result.code, plan: json<PlanJson>(result), stderr: result.stderr };
}

const actions = (plan: PlanJson) =>
  Object.fromEntries(plan.components.map((c) => [c.name, c.action]));

describe('ferry init and status', () => {
  it('provisions an empty appliance, refuses to do it twice, and reports it', async () => {
    const root = await init('fresh-status');
    const again = await ferry([
      'init',
      '--root',
      root,
      '--product',
      'acme-appliance',
      '--platform',
      'acme-os@7.2.1',
      '--trust',
      ws.trust,
    ]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('E_EXISTS');
    const status = json<{ product: string; release: string | null; components: object }>(
      await ferry(['status', '--root', root, '--json']),
    );
    expect(status).toMatchObject({ product: 'acme-appliance', release: null, components: {} });
  });

  it('refuses a malformed platform', async () => {
    const result = await ferry([
      'init',
      '--root',
      join(dir, 'badplat'),
      '--product',
      'acme-appliance',
      '--platform',
      'acme-os-7',
      '--trust',
      ws.trust,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('NAME@VERSION');
  });

  it('a corrupt state file is a clear error and is left as it is', async () => {
    const root = await init('corrupt');
    const state = join(root, 'var/lib/ferry/state.json');
    await writeFile(state, '{"formatVersion": 1, "product": ');
    const result = await ferry(['status', '--root', root]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('state.json');
    expect(await readFile(state, 'utf8')).toBe('{"formatVersion": 1, "product": ');
    await writeFile(state, JSON.stringify({ formatVersion: 9 }));
    const future = await ferry(['plan', tar['1.0.0'] as string, '--root', root]);
    expect(future.code).toBe(2);
    expect(future.stderr).toContain('E_STATE_INVALID');
  });
});

describe('ferry plan', () => {
  it.each(['tar', 'zip'])(
    'a fresh appliance against the %s install bundle installs everything in order',
    async (format) => {
      const root = await init(`fresh-${format}`);
      const bundle = (format === 'tar' ? tar : zip)['1.0.0'] as string;
      const { code, plan } = await planJson([bundle, '--root', root]);
      expect(code).toBe(0);
      expect(plan.verdict).toBe('ok');
      expect(plan.from).toBeNull();
      expect(Object.values(actions(plan)).every((action) => action === 'install')).toBe(true);
      expect(plan.order.indexOf('db')).toBeLessThan(plan.order.indexOf('api'));
      expect(plan.order.indexOf('api')).toBeLessThan(plan.order.indexOf('web'));
    },
  );

  it.each([
    [
      '1.0.0',
      { db: 'upgrade', api: 'upgrade', web: 'upgrade', maps: 'keep', 'legacy-agent': 'remove' },
      ['API-9', 'DB-12', 'DB-20', 'WEB-7'],
    ],
    [
      '1.1.0',
      { db: 'upgrade', api: 'upgrade', web: 'keep', maps: 'keep', 'legacy-agent': 'remove' },
      ['API-9', 'DB-12', 'DB-20'],
    ],
    ['1.2.0', { db: 'keep', api: 'keep', web: 'keep', maps: 'keep', 'legacy-agent': 'remove' }, []],
  ])('an appliance at %s against the newest update bundle', async (release, expected, changes) => {
    const root = await init(`at-${release}`);
    await atRelease(root, release);
    for (const bundle of [tar['1.3.0'], zip['1.3.0']] as string[]) {
      const { code, plan } = await planJson([bundle, '--root', root]);
      expect(code).toBe(0);
      expect(plan.from).toBe(release);
      expect(plan.to).toBe('1.3.0');
      expect(actions(plan)).toEqual(expected);
      expect(plan.changes.map((c) => c.id).sort()).toEqual(changes);
      expect(plan.order.at(-1)).toBe('legacy-agent');
    }
  });

  it('a blocked plan changes nothing on the appliance', async () => {
    const root = await init('blocked');
    const before = await snapshot(root);
    const { code, plan } = await planJson([tar['1.3.0'] as string, '--root', root]);
    expect(code).toBe(4);
    expect(plan.verdict).toBe('blocked');
    expect(plan.reasons.map((r) => r.code)).toEqual(['E_UNSUPPORTED_FROM']);
    expect(await snapshot(root)).toEqual(before);
  });

  it('another product is refused with exit 4', async () => {
    const root = await init('other-product', { product: 'other-appliance' });
    const { code, plan } = await planJson([tar['1.0.0'] as string, '--root', root]);
    expect(code).toBe(4);
    expect(plan.reasons.map((r) => r.code)).toContain('E_PRODUCT');
  });

  it('another platform version is refused with exit 4', async () => {
    const root = await init('other-platform', { platform: 'acme-os@8.0.0' });
    const { code, plan } = await planJson([tar['1.0.0'] as string, '--root', root]);
    expect(code).toBe(4);
    expect(plan.reasons.map((r) => r.code)).toEqual(['E_PLATFORM']);
  });

  it('an untrusted signature is refused with exit 3 before planning', async () => {
    await ferry(['keygen', '--out', join(dir, 'rogue'), '--name', 'rogue']);
    const rogueTrust = join(dir, 'rogue-trust.json');
    await ferry(['trust', 'init', '--key', join(dir, 'rogue', 'rogue.pub'), '--out', rogueTrust]);
    const root = await init('untrusting', { trust: rogueTrust });
    const before = await snapshot(root);
    const result = await ferry(['plan', tar['1.0.0'] as string, '--root', root, '--json']);
    expect(result.code).toBe(3);
    expect(json<{ error: { code: string } }>(result).error.code).toBe('E_SIGNATURE');
    expect(await snapshot(root)).toEqual(before);
  });

  it('an older bundle is refused (rollback protection) unless the operator allows it', async () => {
    const root = await init('newer');
    await atRelease(root, '1.1.0', '1.3.0');
    const refused = await planJson([tar['1.2.0'] as string, '--root', root]);
    expect(refused.code).toBe(4);
    expect(refused.plan.reasons.map((r) => r.code)).toEqual(['E_DOWNGRADE']);
    const allowed = await planJson([tar['1.2.0'] as string, '--root', root, '--allow-downgrade']);
    expect(allowed.code).toBe(0);
  });

  it('drift is reported per component and --force or --skip resolves it', async () => {
    const root = await init('drift');
    await atRelease(root, '1.1.0');
    const file = join(root, 'var/lib/ferry/state.json');
    const state = JSON.parse(await readFile(file, 'utf8')) as {
      components: Record<string, { version: string }>;
    };
    (state.components.web as { version: string }).version = '1.0.9';
    await writeFile(file, JSON.stringify(state));
    const drift = await planJson([tar['1.3.0'] as string, '--root', root]);
    expect(drift.code).toBe(4);
    expect(drift.plan.components.find((c) => c.name === 'web')?.reasons.map((r) => r.code)).toEqual(
      ['E_DRIFT'],
    );
    expect(
      (
        await planJson([tar['1.3.0'] as string, '--root', root, '--force', 'web'])
      ).plan.components.find((c) => c.name === 'web')?.action,
    ).toBe('downgrade');
    const controlFile = join(dir, 'controls.yaml');
    await writeFile(controlFile, 'skip: [web]\n');
    expect(
      (await planJson([tar['1.3.0'] as string, '--root', root, '--control', controlFile])).code,
    ).toBe(0);
  });

  it('a control naming an unknown component is a usage error', async () => {
    const root = await init('controls');
    const controlFile = join(dir, 'bad-controls.yaml');
    await writeFile(controlFile, 'skip: [nosuch]\n');
    const result = await ferry([
      'plan',
      tar['1.0.0'] as string,
      '--root',
      root,
      '--control',
      controlFile,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('E_CONTROL_INVALID');
    expect(result.stderr).toContain('nosuch');
    const both = await ferry([
      'plan',
      tar['1.0.0'] as string,
      '--root',
      root,
      '--skip',
      'db',
      '--delete',
      'db',
    ]);
    expect(both.code).toBe(2);
  });

  it('plans against an exported state on another machine exactly as on the appliance', async () => {
    const root = await init('exported');
    await atRelease(root, '1.0.0');
    const facts = join(dir, 'site-facts.json');
    expect((await ferry(['status', '--root', root, '--export', facts])).code).toBe(0);
    const onSite = await planJson([tar['1.3.0'] as string, '--root', root]);
    const onLaptop = await planJson([tar['1.3.0'] as string, '--state', facts]);
    expect(onLaptop.code).toBe(0);
    expect(onLaptop.plan).toEqual(onSite.plan);
    const neither = await ferry(['plan', tar['1.3.0'] as string]);
    expect(neither.code).toBe(2);
  });

  it.each(['tar', 'zip'])('reads only the metadata of a %s bundle', async (format) => {
    const root = await init(`bytes-${format}`);
    const bundle = (format === 'tar' ? tar : zip)['1.0.0'] as string;
    const { opened, plan } = await planFor({ bundle, root }, {});
    await opened.reader.close();
    expect(plan.verdict).toBe('ok');
    expect(opened.reader.size).toBeGreaterThan(3 * 1024 * 1024);
    expect(opened.reader.bytesRead()).toBeLessThan(128 * 1024);
  });

  it('prints a table for a person', async () => {
    const root = await init('human');
    await atRelease(root, '1.0.0');
    const result = await ferry(['plan', tar['1.3.0'] as string, '--root', root, '--skip', 'web']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/acme-appliance 1\.0\.0 → 1\.3\.0 \(update bundle\): READY/);
    expect(result.stdout).toMatch(/web\s+skip\s+1\.0\.0\s+1\.0\.0\s+skipped by the operator/);
    expect(result.stdout).toContain('Order: db, api, legacy-agent');
  });

  it("says how long the updates take, what they restart and whether they reboot, from the bundle's declarations", async () => {
    const root = await init('effects');
    await atRelease(root, '1.1.0');
    const { code, plan } = await planJson([tar['1.3.0'] as string, '--root', root]);
    expect(code).toBe(0);
    // db declares its update (the fixture's 1.3.0 spec); api, also updated, declares nothing.
    expect(plan.components.find((c) => c.name === 'db')).toMatchObject({
      action: 'upgrade',
      estimatedSeconds: 150,
      restart: ['acme-db', 'acme-api'],
      reboot: false,
    });
    expect(plan.components.find((c) => c.name === 'api')).not.toHaveProperty('estimatedSeconds');
    expect(plan).toMatchObject({
      estimatedSeconds: 150,
      unestimated: ['api'],
      restart: ['acme-api', 'acme-db'],
      reboot: false,
    });
    const text = await ferry(['plan', tar['1.3.0'] as string, '--root', root]);
    expect(text.stdout).toContain(
      'Takes an unknown time: api declares no estimate (the rest takes about 2m30s).',
    );
    expect(text.stdout).toContain('Restarts acme-api, acme-db.');
    expect(text.stdout).not.toContain('reboot');
  });

  it('a bundle that declares none of them (as every bundle built before them) plans as before, and the text says nothing of them', async () => {
    const root = await init('no-effects');
    const { code, plan } = await planJson([tar['1.0.0'] as string, '--root', root]);
    expect(code).toBe(0);
    expect(plan).toMatchObject({ estimatedSeconds: 0, restart: [], reboot: false });
    expect(plan.unestimated.sort()).toEqual(['api', 'db', 'legacy-agent', 'maps', 'web']);
    const text = await ferry(['plan', tar['1.0.0'] as string, '--root', root]);
    expect(text.stdout).not.toMatch(/Takes|Restarts|reboot/);
  });
});
