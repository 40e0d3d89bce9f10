import { spawn } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildAll,
  FERRY,
  ferry,
  json,
  RELEASES,
  ROOT,
  tempDir,
  workspace,
  type Workspace,
} from '../helpers.js';
import {
  cloneAppliance,
  initAppliance,
  install,
  installOk,
  markers,
  RECORDS,
  sha256,
  snapshot,
  status,
} from './appliance.js';

let dir: string;
let ws: Workspace;
let tar: Record<string, string>;
let zip: Record<string, string>;
/** An appliance at each release, installed through the CLI once and cloned by tests. */
const at: Record<string, string> = {};

beforeAll(async () => {
  dir = await tempDir();
  ws = await workspace(dir);
  tar = await buildAll(ws, join(dir, 'tar'), 'tar');
  zip = await buildAll(ws, join(dir, 'zip'), 'zip');
  const base = join(dir, 'base');
  await initAppliance(ws, base);
  await installOk(tar['1.0.0'] as string, base);
  at['1.0.0'] = join(dir, 'at-1.0.0');
  await cloneAppliance(base, at['1.0.0']);
  for (const release of ['1.1.0', '1.2.0'] as const) {
    await installOk(tar[release] as string, base);
    at[release] = join(dir, `at-${release}`);
    await cloneAppliance(base, at[release]);
  }
});

let counter = 0;
async function fresh(release: keyof typeof at): Promise<string> {
  const root = join(dir, `case-${counter++}`);
  await cloneAppliance(at[release] as string, root);
  return root;
}

let sameBuilt: Promise<{ same: Workspace; first: string; next: string }> | undefined;
/** Releases 1.0.0 and 1.0.1 with the same components, built once for the tests that need them. */
function sameComponents(): Promise<{ same: Workspace; first: string; next: string }> {
  sameBuilt ??= (async () => {
    // Its own workspace: the 1.0.1 record its build writes stays out of the others' history.
    const same = await workspace(join(dir, 'same'));
    const first = (await buildAll(same, join(dir, 'same-out'), 'tar', ['1.0.0']))['1.0.0'];
    const spec = await readFile(join(same.product, 'release-1.0.0.yaml'), 'utf8');
    await writeFile(
      join(same.product, 'release-1.0.1.yaml'),
      spec.replace("release: '1.0.0'", "release: '1.0.1'"),
    );
    const next = (await buildAll(same, join(dir, 'same-out'), 'tar', ['1.0.1']))['1.0.1'];
    return { same, first: first as string, next: next as string };
  })();
  return sameBuilt;
}

describe('a fresh install', () => {
  it('runs the passes in order, each in dependency order, and commits the release', async () => {
    const root = join(dir, 'fresh');
    await initAppliance(ws, root);
    const result = await install(zip['1.0.0'] as string, root);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('COMMITTED: acme-appliance is at 1.0.0');
    const lines = await markers(root);
    const passOf = (line: string) => line.split(' ')[0];
    const order = ['pre-validate', 'update', 'test', 'verify'];
    const passes = lines.map(passOf);
    expect(
      [...passes].sort((a, b) => order.indexOf(a as string) - order.indexOf(b as string)),
    ).toEqual(passes);
    for (const pass of ['pre-validate', 'update', 'test']) {
      const components = lines
        .filter((line) => passOf(line) === pass)
        .map((line) => line.split(' ')[1]);
      expect(components.indexOf('db')).toBeLessThan(components.indexOf('api'));
      expect(components.indexOf('api')).toBeLessThan(components.indexOf('web'));
    }
    expect(await status(root)).toMatchObject({
      release: '1.0.0',
      verified: true,
      components: {
        db: '3.0.0',
        api: '2.0.0',
        web: '1.0.0',
        maps: '5.0.0',
        'legacy-agent': '0.9.0',
      },
    });
    const verify = await ferry(['status', '--root', root, '--verify']);
    expect(verify.code).toBe(0);
    expect(sha256(await readFile(join(root, 'opt/ferry/maps/current/data/tiles.bin')))).toBe(
      sha256(await readFile(join(ws.product, 'components/maps/5.0.0/data/tiles.bin'))),
    );
  });
});

describe('a compressed bundle', () => {
  it('a tar.gz install bundle streams through staging and commits', async () => {
    const out = join(dir, 'gz');
    const built = await ferry([
      'build',
      join(ws.product, 'release-1.3.0.yaml'),
      '--out',
      out,
      '--key',
      ws.key,
      '--format',
      'tar.gz',
      '--kind',
      'install',
      '--json',
    ]);
    expect(built.code, built.stderr).toBe(0);
    const { bundle, size } = json<{ bundle: string; size: number }>(built);
    const root = join(dir, 'fresh-gz');
    await initAppliance(ws, root);
    const installed = await install(bundle, root, '--json');
    expect(installed.code, installed.stderr).toBe(0);
    // Read (and inflated) once, artifacts staged and run on the way to the
    // payload: the whole file, and only the few KiB of reading bundle.json
    // first beside it (staging from the start again cost 544 KiB more here).
    const result = JSON.parse(installed.stdout.trim().split('\n').at(-1) ?? '') as {
      bytesRead: number;
    };
    expect(result.bytesRead).toBeGreaterThanOrEqual(size);
    expect(result.bytesRead - size).toBeLessThan(64 * 1024);
    expect(await status(root)).toMatchObject({ release: '1.3.0', verified: true });
    expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
  });
});

describe('the upgrade matrix', () => {
  const pairs = RELEASES.flatMap((from, i) =>
    RELEASES.slice(i + 1).map((to) => [from, to] as const),
  ).filter(([from]) => from !== '1.3.0');
  it.each(pairs)('from %s to %s', async (from, to) => {
    const root = await fresh(from);
    const before = (await markers(root)).length;
    const installed = (await status(root)).components;
    const bundle = (Number(to.split('.')[1]) % 2 === 0 ? zip : tar)[to] as string;
    await installOk(bundle, root);
    const after = await status(root);
    expect(after.release).toBe(to);
    expect(after.verified).toBe(true);
    const inspect = json<{ target: Record<string, string> }>(
      await ferry(['inspect', bundle, '--json']),
    );
    expect(after.components).toEqual(inspect.target);
    expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
    // Exactly the components whose version changes run their update pass.
    const ran = (await markers(root))
      .slice(before)
      .filter((line) => line.startsWith('update '))
      .map((line) => line.split(' ')[1]);
    const changing = Object.entries(inspect.target)
      .filter(([name, version]) => installed[name] !== version)
      .map(([name]) => name);
    expect(ran.sort()).toEqual(changing.sort());
    expect(ran).not.toContain('maps');
  });
});

describe('failures leave the appliance exactly as it was', () => {
  async function failing(
    trigger: string,
    release: keyof typeof at = '1.0.0',
    bundle = tar['1.3.0'] as string,
  ) {
    const root = await fresh(release);
    const earlier = (await markers(root)).length;
    await mkdir(join(root, 'fail'), { recursive: true });
    await writeFile(join(root, 'fail', trigger), '');
    const before = await snapshot(root);
    const result = await install(bundle, root, '--json');
    const lines = result.stdout.trim().split('\n');
    const last = JSON.parse(lines.at(-1) as string) as {
      outcome: string;
      failure: { component: string; pass: string; artifact: string; status: string; tail: string };
    };
    expect(await snapshot(root)).toEqual(before);
    return { root, result, last, ran: (await markers(root)).slice(earlier) };
  }

  it('a failing pre-validate artifact: nothing changed, exit 1', async () => {
    const { result, last, ran } = await failing('api.pre-validate');
    expect(result.code).toBe(1);
    expect(last.outcome).toBe('unchanged');
    expect(last.failure).toMatchObject({
      component: 'api',
      pass: 'pre-validate',
      artifact: 'preflight.sh',
      status: 'exited with status 1',
    });
    expect(last.failure.tail).toContain('api: pre-validate failed on request');
    expect(ran.some((line) => line.startsWith('update '))).toBe(false);
  });

  it('a failing update artifact: rolled back in reverse, exit 1', async () => {
    const { result, last, root, ran } = await failing('web.update');
    expect(result.code).toBe(1);
    expect(last.outcome).toBe('rolled-back');
    expect(last.failure).toMatchObject({
      component: 'web',
      pass: 'update',
      artifact: 'publish.sh',
    });
    const rollbacks = ran
      .filter((line) => line.startsWith('rollback '))
      .map((line) => line.split(' ')[1]);
    expect(rollbacks).toEqual(['web', 'api', 'db']);
    expect((await status(root)).release).toBe('1.0.0');
  });

  it('a failing test artifact: rolled back, exit 1', async () => {
    const { result, last } = await failing('db.test');
    expect(result.code).toBe(1);
    expect(last.outcome).toBe('rolled-back');
    expect(last.failure).toMatchObject({ component: 'db', pass: 'test', artifact: 'smoke.sh' });
  });

  it('a failing bundle verification artifact: rolled back', async () => {
    const { last } = await failing('verify');
    expect(last.outcome).toBe('rolled-back');
    expect(last.failure).toMatchObject({
      component: null,
      pass: 'test',
      artifact: 'target-state.sh',
    });
  });

  it('after a remove artifact ran: the files are back, and what the script did is named as not undone', async () => {
    // The README says Ferry cannot undo a remove artifact; "everything was undone" said it had.
    const { result, last, ran } = await failing('verify', '1.2.0');
    expect(result.code).toBe(1);
    expect(ran).toContain('remove legacy-agent 0.9.0 none');
    expect(last).toMatchObject({
      outcome: 'rolled-back',
      notUndone: [{ component: 'legacy-agent', artifacts: ['uninstall.sh'], pass: 'remove' }],
    });
    const human = await failing('legacy-agent.remove', '1.2.0');
    expect(human.result.code).toBe(1);
    const text = await install(tar['1.3.0'] as string, human.root);
    expect(text.stdout).toContain(
      'ROLLED BACK: acme-appliance has its files at 1.2.0 again; remove artifacts of legacy-agent ran and were not undone: see the warnings',
    );
    expect(text.stdout).not.toContain('everything was undone');
    expect(text.stderr).toContain(
      'legacy-agent: remove artifacts uninstall.sh ran before the install from 1.2.0 to 1.3.0 was undone',
    );
  });

  it('a timed-out artifact: its process group is killed and everything rolled back', async () => {
    const root = await fresh('1.1.0');
    const config = join(root, 'etc/ferry/appliance.yaml');
    await writeFile(
      config,
      (await readFile(config, 'utf8')).replace(
        /artifactTimeoutSeconds: \d+/,
        'artifactTimeoutSeconds: 2',
      ),
    );
    await mkdir(join(root, 'hang'), { recursive: true });
    await writeFile(join(root, 'hang', 'db.update'), '');
    const before = await snapshot(root);
    const result = await install(tar['1.3.0'] as string, root, '--json');
    expect(result.code).toBe(1);
    const last = JSON.parse(result.stdout.trim().split('\n').at(-1) as string) as {
      outcome: string;
      failure: { status: string };
    };
    expect(last.outcome).toBe('rolled-back');
    expect(last.failure.status).toContain('timed out after 2 s');
    expect(await snapshot(root)).toEqual(before);
    expect(await hangingUnder(root)).toEqual([]);
  });

  it('a tampered payload byte: exit 3, nothing changed', async () => {
    const root = await fresh('1.0.0');
    const bytes = await readFile(tar['1.2.0'] as string);
    const at = bytes.indexOf(Buffer.from('CREATE INDEX events_at'));
    bytes[at] = 'c'.charCodeAt(0);
    const tampered = join(dir, 'tampered.tar');
    await writeFile(tampered, bytes);
    const before = await snapshot(root);
    const result = await install(tampered, root, '--json');
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('E_HASH_MISMATCH');
    expect(result.stderr).toContain('payload/db/share/schema.sql');
    expect(await snapshot(root)).toEqual(before);
  });
});

describe('controls', () => {
  it('--skip leaves a component and records an unverified release with the reason', async () => {
    const root = await fresh('1.0.0');
    await installOk(
      tar['1.2.0'] as string,
      root,
      '--skip',
      'web',
      '--reason',
      'CHG-42: web change deferred',
    );
    const after = await status(root);
    expect(after).toMatchObject({
      release: '1.2.0',
      verified: false,
      components: { web: '1.0.0', db: '4.0.0' },
    });
    expect(await markers(root)).toContain('skipped web');
    const history = (await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8'))
      .trim()
      .split('\n');
    expect(JSON.parse(history.at(-1) as string)).toMatchObject({
      outcome: 'committed',
      controls: { skip: ['web'] },
      reason: 'CHG-42: web change deferred',
    });
    const entry = JSON.parse(history.at(-1) as string) as { log: string };
    const log = (await readFile(entry.log, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string });
    expect(log[0]).toMatchObject({
      type: 'begin',
      controls: { skip: ['web'] },
      reason: 'CHG-42: web change deferred',
    });
  });

  it('after --skip, the same bundle completes the release: the skipped component is not drift', async () => {
    const root = await fresh('1.0.0');
    await installOk(tar['1.2.0'] as string, root, '--skip', 'web');
    const partial = json<{ highestRelease: string }>(
      await ferry(['status', '--root', root, '--json']),
    );
    expect(partial).toMatchObject({ release: '1.2.0', verified: false, highestRelease: '1.0.0' });
    const plan = await ferry(['plan', tar['1.2.0'] as string, '--root', root, '--json']);
    expect(plan.code, plan.stdout).toBe(0);
    const web = json<{ components: Array<{ name: string; action: string }> }>(plan).components.find(
      (c) => c.name === 'web',
    );
    expect(web?.action).toBe('upgrade');
    await installOk(tar['1.2.0'] as string, root);
    expect(await status(root)).toMatchObject({
      release: '1.2.0',
      verified: true,
      components: { web: '1.0.1' },
    });
  });

  it('after a --skip of a component already at the target, the same bundle completes the release', async () => {
    // 1.1.0 brought web 1.0.1, and 1.2.0 keeps it: the skip leaves nothing to install, but
    // web went unchecked, so the release is not verified until the same bundle checks it.
    const root = await fresh('1.1.0');
    await installOk(tar['1.2.0'] as string, root, '--skip', 'web');
    expect(await status(root)).toMatchObject({ release: '1.2.0', verified: false });
    const again = await ferry(['install', tar['1.2.0'] as string, '--root', root, '--yes']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('COMMITTED: acme-appliance is at 1.2.0\n');
    expect(await status(root)).toMatchObject({
      release: '1.2.0',
      verified: true,
      highestRelease: '1.2.0',
      components: { web: '1.0.1' },
    });
  });

  it('a release that changes no component is installed as that release: tested and recorded', async () => {
    const { same, first, next } = await sameComponents();
    const root = join(dir, 'same-appliance');
    await initAppliance(same, root);
    await installOk(first, root);
    const verified = async () =>
      (await markers(root)).filter((marker) => marker === `verify ${root}`).length;
    const before = await verified();
    const result = await ferry(['install', next, '--root', root, '--yes']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('COMMITTED: acme-appliance is at 1.0.1\n');
    expect(await status(root)).toMatchObject({
      release: '1.0.1',
      verified: true,
      highestRelease: '1.0.1',
    });
    // The bundle's target-state check ran once more: the release was proved, not assumed.
    expect(await verified()).toBe(before + 1);
    const again = await ferry(['install', next, '--root', root, '--yes']);
    expect(again.stdout).toContain('UNCHANGED: acme-appliance is already at 1.0.1; nothing to do');
  });

  it('E_DOWNGRADE says what works: ferry rollback, not a flag that fails next', async () => {
    const root = await fresh('1.2.0');
    const result = await ferry(['plan', tar['1.1.0'] as string, '--root', root, '--json']);
    expect(result.code).toBe(4);
    const reasons = json<{ reasons: Array<{ code: string; message: string }> }>(result).reasons;
    const downgrade = reasons.find((r) => r.code === 'E_DOWNGRADE');
    expect(downgrade?.message).toContain('ferry rollback');
    expect(downgrade?.message).toContain('would not help');
  });

  it('--delete removes a component nobody needs, running its remove artifact', async () => {
    const root = await fresh('1.0.0');
    await installOk(tar['1.1.0'] as string, root, '--delete', 'legacy-agent');
    const after = await status(root);
    expect(after.components['legacy-agent']).toBeUndefined();
    expect(await markers(root)).toContain('remove legacy-agent 0.9.0 none');
    expect(after.verified).toBe(false);
    expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
  });

  it('--delete of a component the release has: its verification artifacts are told it is left out, and it commits unverified', async () => {
    // The fixture's target-state.sh checks every component of the release but
    // those FERRY_SKIPPED names; a deleted one was not among them, so every
    // --delete of a component the release keeps failed the test pass.
    const root = await fresh('1.2.0');
    const result = await install(tar['1.3.0'] as string, root, '--delete', 'maps');
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(await markers(root)).toContain('skipped maps');
    expect(await status(root)).toMatchObject({ release: '1.3.0', verified: false });
    expect((await status(root)).components.maps).toBeUndefined();
  });

  it('--force replaces a drifted component', async () => {
    const root = await fresh('1.1.0');
    const file = join(root, 'var/lib/ferry/state.json');
    const state = JSON.parse(await readFile(file, 'utf8')) as {
      components: Record<string, { version: string }>;
    };
    (state.components.web as { version: string }).version = '1.0.9';
    await writeFile(file, JSON.stringify(state));
    const blocked = await install(tar['1.3.0'] as string, root);
    expect(blocked.code).toBe(4);
    await installOk(
      tar['1.3.0'] as string,
      root,
      '--force',
      'web',
      '--reason',
      'web was patched by hand',
    );
    expect(await status(root)).toMatchObject({
      release: '1.3.0',
      verified: true,
      components: { web: '1.0.1' },
    });
  });
});

describe('a component removed by hand that the bundle drops', () => {
  // The plan calls it drift and offers --delete or --force; either ended in
  // E_IO with an undo that failed too, and every later recover in E_INTERNAL:
  // the switch's undo made a `current` in a folder that was gone.
  for (const control of ['--delete', '--force'])
    it(`${control} legacy-agent removes it from the record, and makes nothing of it again`, async () => {
      const root = await fresh('1.2.0');
      await rm(join(root, 'opt/ferry/legacy-agent'), { recursive: true });
      const blocked = await install(tar['1.3.0'] as string, root);
      expect(blocked.code).toBe(4);
      expect(blocked.stdout).toContain('--delete legacy-agent to remove it');

      const result = await install(tar['1.3.0'] as string, root, control, 'legacy-agent');
      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
      expect((await status(root)).components['legacy-agent']).toBeUndefined();
      expect(await readdir(join(root, 'opt/ferry'))).not.toContain('legacy-agent');
      expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
    });

  it('a forced reinstall of a component whose `current` was removed by hand, undone: still none', async () => {
    const root = await fresh('1.2.0');
    await rm(join(root, 'opt/ferry/web/current'));
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/verify'), '');
    const before = await snapshot(root);
    const result = await install(tar['1.3.0'] as string, root, '--force', 'web');
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(1);
    expect(await snapshot(root)).toEqual(before);
  });

  it('cut after journaling its switch, then its folder removed by hand: recover puts back no link into nothing', async () => {
    // An older Ferry journaled such a switch from the recorded version; undoing
    // it made a link in a folder that was gone: E_INTERNAL on every recover.
    for (let point = 1; point < 20; point++) {
      const root = await fresh('1.2.0');
      const cut = await ferry(['install', tar['1.3.0'] as string, '--root', root, '--yes'], {
        env: { FERRY_TEST_CRASH_AT: String(point) },
      });
      expect(cut.code, `point ${point}: ${cut.stderr}`).toBe(-1);
      const steps = await readFile(join(root, 'var/lib/ferry/journal/steps.jsonl'), 'utf8');
      if (!steps.trim().split('\n').at(-1)?.includes('"op":"switch"')) continue;
      await rm(join(root, 'opt/ferry/legacy-agent'), { recursive: true });
      const recovered = await ferry(['recover', '--root', root]);
      expect(recovered.code, recovered.stderr).toBe(0);
      expect((await status(root)).release).toBe('1.2.0');
      expect(await readdir(join(root, 'opt/ferry'))).not.toContain('legacy-agent');
      return;
    }
    throw new Error('no cut point after the switch');
  });

  it('an install undone after removing it leaves no `current` it never had', async () => {
    const root = await fresh('1.2.0');
    await rm(join(root, 'opt/ferry/legacy-agent'), { recursive: true });
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/verify'), '');
    const before = await snapshot(root);
    const result = await install(tar['1.3.0'] as string, root, '--delete', 'legacy-agent');
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(1);
    expect(await snapshot(root)).toEqual(before);
    expect((await ferry(['recover', '--root', root])).code).toBe(0);
  });
});

describe('files changed by hand', () => {
  interface PlanJson {
    verdict: string;
    filesChecked: boolean;
    components: Array<{
      name: string;
      action: string;
      reasons: Array<{ code: string; message: string }>;
    }>;
  }
  const web = (plan: PlanJson) => plan.components.find((c) => c.name === 'web');

  it('are drift in the plan; --no-drift-check plans from the record alone', async () => {
    const root = await fresh('1.1.0');
    await writeFile(join(root, 'opt/ferry/web/current/index.html'), '<p>patched</p>\n');
    const blocked = await ferry(['plan', tar['1.2.0'] as string, '--root', root, '--json']);
    expect(blocked.code).toBe(4);
    const plan = json<PlanJson>(blocked);
    expect(plan.filesChecked).toBe(true);
    expect(web(plan)?.action).toBe('error');
    expect(web(plan)?.reasons[0]?.code).toBe('E_DRIFT');
    expect(web(plan)?.reasons[0]?.message).toContain('index.html');
    const human = await ferry(['plan', tar['1.2.0'] as string, '--root', root]);
    expect(human.stdout).toContain('--force web');
    const trusting = await ferry([
      'plan',
      tar['1.2.0'] as string,
      '--root',
      root,
      '--no-drift-check',
      '--json',
    ]);
    expect(trusting.code).toBe(0);
    expect(json<PlanJson>(trusting)).toMatchObject({ verdict: 'ok', filesChecked: false });
  });

  it('--no-drift-check plans from the record alone on a laptop too, from exported facts', async () => {
    const root = await fresh('1.1.0');
    await writeFile(join(root, 'opt/ferry/web/current/index.html'), '<p>patched</p>\n');
    const facts = join(root, '..', `${root.split('/').at(-1) ?? ''}-facts.json`);
    expect((await ferry(['status', '--root', root, '--export', facts])).code).toBe(0);
    const args = ['plan', tar['1.2.0'] as string, '--no-drift-check', '--json'];
    const onSite = await ferry([...args, '--root', root]);
    const onLaptop = await ferry([...args, '--state', facts]);
    expect(onLaptop.code, onLaptop.stdout).toBe(0);
    expect(json(onLaptop)).toEqual(json(onSite));
    expect(web(json<PlanJson>(onLaptop))?.action).toBe('keep');
  });

  it('a kept component changed by hand fails the target check: never committed as verified', async () => {
    const root = await fresh('1.1.0');
    await writeFile(join(root, 'opt/ferry/web/current/index.html'), '<p>patched</p>\n');
    const before = await snapshot(root);
    const result = await install(tar['1.2.0'] as string, root, '--no-drift-check');
    expect(result.code, result.stdout).toBe(1);
    expect(result.stdout).toContain('ROLLED BACK');
    expect(result.stdout).toContain('index.html');
    expect(await snapshot(root)).toEqual(before);
  });

  it('--force reinstalls it from the bundle with its passes', async () => {
    const root = await fresh('1.1.0');
    const file = join(root, 'opt/ferry/web/current/index.html');
    const original = await readFile(file, 'utf8');
    await writeFile(file, '<p>patched</p>\n');
    const result = await install(tar['1.1.0'] as string, root, '--force', 'web', '--json');
    expect(result.code, result.stderr).toBe(0);
    const last = JSON.parse(result.stdout.trim().split('\n').at(-1) as string) as PlanJson & {
      outcome: string;
    };
    expect(last.outcome).toBe('committed');
    expect(web(last)?.action).toBe('reinstall');
    expect(await readFile(file, 'utf8')).toBe(original);
    expect(await markers(root)).toEqual(
      expect.arrayContaining(['update web 1.0.1 1.0.1', 'test web 1.0.1 1.0.1']),
    );
    expect(await status(root)).toMatchObject({ release: '1.1.0', verified: true });
    expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
  });

  it('a mode changed by hand (a setuid bit) is drift, named with both modes; --force puts the signed one back', async () => {
    const root = await fresh('1.1.0');
    const file = join(root, 'opt/ferry/web/current/index.html');
    const signed = (await stat(file)).mode & 0o7777;
    await chmod(file, signed | 0o4000);
    const verify = await ferry(['status', '--root', root, '--verify']);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(
      `index.html has mode ${(signed | 0o4000).toString(8).padStart(4, '0')}, not ${signed.toString(8).padStart(4, '0')}`,
    );
    const blocked = await ferry(['plan', tar['1.2.0'] as string, '--root', root, '--json']);
    expect(blocked.code).toBe(4);
    expect(web(json<PlanJson>(blocked))?.reasons[0]?.code).toBe('E_DRIFT');
    const forced = await install(tar['1.1.0'] as string, root, '--force', 'web');
    expect(forced.code, forced.stderr).toBe(0);
    expect((await stat(file)).mode & 0o7777).toBe(signed);
    expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
  });

  it('a permission taken away is no drift: appliances installed under a stricter umask before modes were set stay updatable', async () => {
    const root = await fresh('1.1.0');
    const file = join(root, 'opt/ferry/web/current/index.html');
    const folder = join(root, 'opt/ferry/web/current/theme');
    await chmod(file, (await stat(file)).mode & 0o750);
    await chmod(folder, (await stat(folder)).mode & 0o750);
    expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
    await installOk(tar['1.2.0'] as string, root);
  });

  it('--force of a component the bundle does not carry is E_NO_PAYLOAD', async () => {
    const root = await fresh('1.2.0');
    await writeFile(join(root, 'opt/ferry/maps/current/VERSION'), 'patched\n');
    const result = await ferry([
      'plan',
      tar['1.3.0'] as string,
      '--root',
      root,
      '--force',
      'maps',
      '--json',
    ]);
    expect(result.code).toBe(4);
    const maps = json<PlanJson>(result).components.find((c) => c.name === 'maps');
    expect(maps?.reasons.map((r) => r.code)).toContain('E_NO_PAYLOAD');
  });
});

/** `bin/ferry install --json` as a child whose events are read as they come, for signals and closed pipes. */
function installChild(bundle: string, root: string) {
  const child = spawn(
    process.execPath,
    [FERRY, 'install', bundle, '--root', root, '--yes', '--json'],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  const events = () =>
    stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  /** Resolves once an event matches; fails the test after a minute. */
  const until = async (match: (event: Record<string, unknown>) => boolean): Promise<void> => {
    for (let waited = 0; !events().some(match); waited += 50) {
      if (waited > 60_000) throw new Error(`no such event:\n${stdout}\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  /**
   * Resolves once stderr holds `text`; fails the test after a minute. stderr is a pipe of
   * its own: what Ferry wrote there may arrive after an event it wrote to stdout later.
   */
  const untilSaid = async (text: string): Promise<void> => {
    for (let waited = 0; !stderr.includes(text); waited += 50) {
      if (waited > 60_000) throw new Error(`stderr never said ${JSON.stringify(text)}:\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  return { child, exit, events, until, untilSaid };
}

describe('interrupts', () => {
  it.each([
    ['SIGINT', 'update', 'rolled-back'],
    ['SIGTERM', 'pre-validate', 'unchanged'],
    ['SIGHUP', 'update', 'rolled-back'],
  ] as const)(
    '%s during %s: told, logged, stopped at the next safe point, appliance as it was',
    async (signal, pass, outcome) => {
      const root = await fresh('1.0.0');
      const before = await snapshot(root);
      const trigger = join(root, 'hang', `web.${pass}`);
      await mkdir(join(root, 'hang'), { recursive: true });
      await writeFile(trigger, '');
      const run = installChild(tar['1.1.0'] as string, root);
      await run.until(
        (e) =>
          e.type === 'step' && e.pass === pass && e.component === 'web' && e.status === 'start',
      );
      run.child.kill(signal);
      await run.until((e) => e.type === 'interrupt');
      await run.untilSaid(`${signal}: stopping at the next safe point`);
      await rm(trigger);
      expect(await run.exit).toBe(1);
      const result = run.events().at(-1) as {
        outcome: string;
        failure: { status: string };
        log: string;
      };
      expect(result.outcome).toBe(outcome);
      expect(result.failure.status).toBe(`interrupted by ${signal}`);
      const log = await readFile(result.log, 'utf8');
      expect(log).toContain(`"type":"interrupt","signal":"${signal}"`);
      await rm(join(root, 'hang'), { recursive: true });
      expect(await snapshot(root)).toEqual(before);
    },
  );

  it('a closed stdout (| head -3) never stops an install', async () => {
    const root = await fresh('1.1.0');
    const run = installChild(tar['1.2.0'] as string, root);
    await run.until(() => true);
    run.child.stdout.destroy();
    expect(await run.exit).toBe(0);
    expect(await status(root)).toMatchObject({ release: '1.2.0', verified: true });
  });

  it('status names a transaction a kill left open and what recovery will do with it', async () => {
    const root = await fresh('1.0.0');
    const trigger = join(root, 'hang', 'web.update');
    await mkdir(join(root, 'hang'), { recursive: true });
    await writeFile(trigger, '');
    const run = installChild(tar['1.1.0'] as string, root);
    await run.until((e) => e.type === 'step' && e.pass === 'update' && e.component === 'web');
    run.child.kill('SIGKILL');
    await run.exit;
    await rm(join(root, 'hang'), { recursive: true });
    const shown = await ferry(['status', '--root', root]);
    expect(shown.stdout).toMatch(
      /INTERRUPTED: install 1\.0\.0 → 1\.1\.0 .*rolls it back to 1\.0\.0/,
    );
    const open = json<{ open: { recovery: string; running: boolean } }>(
      await ferry(['status', '--root', root, '--json']),
    ).open;
    expect(open).toMatchObject({ recovery: 'roll-back', running: false });
    expect((await ferry(['recover', '--root', root])).code).toBe(0);
    expect(json(await ferry(['status', '--root', root, '--json']))).not.toHaveProperty('open');
  });
});

describe('one installer at a time', () => {
  it('a lock file naming a live process that is no ferry (a reused pid) does not lock the appliance', async () => {
    const root = await fresh('1.0.0');
    const unrelated = spawn('sleep', ['30']);
    await writeFile(
      join(root, 'var/lib/ferry/lock'),
      JSON.stringify({ pid: unrelated.pid, command: 'install', since: 'yesterday' }),
    );
    const taken = await install(tar['1.1.0'] as string, root);
    unrelated.kill();
    expect(taken.code, taken.stderr).toBe(0);
    expect(taken.stderr).toContain('stale lock');
  });
});

describe('the command line', () => {
  it('re-applying the installed release changes nothing', async () => {
    const root = await fresh('1.2.0');
    const before = await snapshot(root);
    const result = await install(tar['1.2.0'] as string, root, '--json');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout.trim().split('\n').at(-1) as string)).toMatchObject({
      outcome: 'unchanged',
      verdict: 'ok',
    });
    expect(await snapshot(root)).toEqual(before);
  });

  it('a reason is one printable line of at most 1000 characters: else E_USAGE, naming it, nothing changed', async () => {
    const root = await fresh('1.1.0');
    const before = await snapshot(root);
    for (const [command, reason] of [
      ['install', 'x'.repeat(1001)],
      ['install', 'INC-7\nfixed'],
      ['install', 'INC-7 \u001b[2J\u001b[Hall clear'],
      ['rollback', 'y'.repeat(100_000)],
      ['rollback', 'INC-7\rall clear'],
    ] as const) {
      const args = command === 'install' ? [command, tar['1.2.0'] as string] : [command];
      const result = await ferry([...args, '--root', root, '--yes', '--reason', reason, '--json']);
      const { error } = json<{ error: { code: string; field: string; hint: string } }>(result);
      expect([result.code, error.code, error.field], `${command} ${reason.slice(0, 20)}`).toEqual([
        2,
        'E_USAGE',
        'reason',
      ]);
      expect(error.hint).toBeTruthy();
      expect(await snapshot(root)).toEqual(before);
    }
    await installOk(tar['1.2.0'] as string, root, '--reason', `${'z'.repeat(999)}é`);
  });

  it('refuses to change anything without a terminal or --yes', async () => {
    const root = await fresh('1.0.0');
    const result = await ferry(['install', tar['1.1.0'] as string, '--root', root]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--yes');
  });

  it('--json streams the engine events as JSON lines', async () => {
    const root = await fresh('1.1.0');
    const result = await install(zip['1.2.0'] as string, root, '--json');
    expect(result.code).toBe(0);
    const events = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; pass?: string });
    expect(events[0]?.type).toBe('plan');
    expect(
      events
        .filter((e) => e.type === 'pass' && (e as { status?: string }).status === 'start')
        .map((e) => e.pass),
    ).toEqual(['pre-validate', 'stage', 'update', 'test', 'commit']);
    expect(events.some((e) => e.type === 'progress')).toBe(true);
    expect(events.at(-1)).toMatchObject({
      type: 'result',
      outcome: 'committed',
      from: '1.1.0',
      to: '1.2.0',
    });
  });

  it('a blocked install exits 4 and changes nothing', async () => {
    const root = await fresh('1.2.0');
    const before = await snapshot(root);
    const result = await install(tar['1.1.0'] as string, root);
    expect(result.code).toBe(4);
    expect(await snapshot(root)).toEqual(before);
  });
});

describe('ferry rollback', () => {
  it('goes back to the previous committed release with its rollback artifacts, and forward again', async () => {
    const root = await fresh('1.0.0');
    const atOld = await snapshot(root);
    await installOk(tar['1.2.0'] as string, root);
    const before = (await markers(root)).length;
    const back = await ferry([
      'rollback',
      '--root',
      root,
      '--yes',
      '--reason',
      'INC-7: api errors after update',
    ]);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain('ROLLED BACK to 1.0.0');
    expect(await status(root)).toMatchObject({
      release: '1.0.0',
      components: { db: '3.0.0', api: '2.0.0', web: '1.0.0' },
    });
    expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
    const ran = (await markers(root))
      .slice(before)
      .map((line) => line.split(' ').slice(0, 2).join(' '));
    expect(ran).toEqual(['rollback web', 'rollback api', 'rollback db']);
    // The active versions are what they were; the newer ones are kept for going forward again.
    const now = await snapshot(root);
    for (const name of ['db', 'api', 'web'])
      expect(now[`opt/ferry/${name}/current`]).toBe(atOld[`opt/ferry/${name}/current`]);
    const forward = await ferry(['rollback', '--root', root, '--yes']);
    expect(forward.code).toBe(0);
    expect((await status(root)).release).toBe('1.2.0');
  });

  it('a kept version changed by hand is refused before any rollback artifact runs (E_DRIFT, exit 4), nothing changed', async () => {
    const root = await fresh('1.0.0');
    await installOk(tar['1.2.0'] as string, root);
    await writeFile(join(root, 'opt/ferry/web/1.0.0/index.html'), '<p>patched</p>\n');
    const before = await snapshot(root);
    const ran = (await markers(root)).length;
    const result = await ferry(['rollback', '--root', root, '--yes']);
    expect(result.code, result.stdout).toBe(4);
    expect(result.stderr).toContain(
      'E_DRIFT: web 1.0.0, which the rollback would go back to, is not as it was installed: index.html is 15 bytes, not 57',
    );
    expect(result.stderr).toContain('hint: nothing was run or changed');
    expect((await markers(root)).length).toBe(ran);
    expect(await snapshot(root)).toEqual(before);
  });

  it('a failing rollback artifact: everything switched forward again, the failure told and logged, exit 1', async () => {
    const root = await fresh('1.0.0');
    await installOk(tar['1.2.0'] as string, root);
    await mkdir(join(root, 'fail'), { recursive: true });
    await writeFile(join(root, 'fail', 'api.rollback'), '');
    const before = await snapshot(root);
    const result = await ferry(['rollback', '--root', root, '--yes', '--json']);
    expect(result.code, result.stderr).toBe(1);
    const out = json<{
      outcome: string;
      transaction: string;
      log: string;
      failure: { tail: string };
    }>(result);
    expect(out).toMatchObject({
      outcome: 'rolled-back',
      from: '1.2.0',
      to: '1.0.0',
      failure: {
        component: 'api',
        pass: 'rollback',
        artifact: 'restore.sh',
        status: 'exited with status 1',
      },
    });
    expect(out.failure.tail).toContain('api: rollback failed on request');
    expect(await snapshot(root)).toEqual(before);
    const history = (await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8'))
      .trim()
      .split('\n');
    expect(JSON.parse(history.at(-1) as string)).toMatchObject({
      id: out.transaction,
      operation: 'rollback',
      outcome: 'rolled-back',
      failure: { component: 'api', pass: 'rollback' },
      log: out.log,
    });
    const log = (await readFile(out.log, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string });
    expect(log[0]).toMatchObject({ type: 'begin', operation: 'rollback', bundle: null });
    expect(log).toContainEqual(
      expect.objectContaining({ type: 'step', component: 'api', status: 'failed' }),
    );
    const human = await ferry(['rollback', '--root', root, '--yes']);
    expect(human.code).toBe(1);
    expect(human.stdout).toContain('failed: api, rollback pass, restore.sh: exited with status 1');
    expect(human.stdout).toContain('api: rollback failed on request');
    expect(human.stdout).toMatch(/log: .*\/var\/lib\/ferry\/logs\/.*\.jsonl/);
  });

  it('from a release that changed no component: the previous release is recorded again, and forward', async () => {
    const { same, first, next } = await sameComponents();
    const root = join(dir, 'same-rollback');
    await initAppliance(same, root);
    await installOk(first, root);
    await installOk(next, root);
    const ignored = [...RECORDS, 'var/lib/ferry/state.json'];
    const files = await snapshot(root, ignored);
    const back = await ferry(['rollback', '--root', root, '--yes', '--reason', 'INC-9: notes']);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain('ROLLED BACK to 1.0.0 (from 1.0.1)');
    expect(await status(root)).toMatchObject({
      release: '1.0.0',
      verified: true,
      // Rollback protection stays where the newest install put it.
      highestRelease: '1.0.1',
    });
    // No component switched: nothing on the appliance but its records changed.
    expect(await snapshot(root, ignored)).toEqual(files);
    const history = (await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8'))
      .trim()
      .split('\n');
    expect(JSON.parse(history.at(-1) as string)).toMatchObject({
      operation: 'rollback',
      from: '1.0.1',
      to: '1.0.0',
      outcome: 'committed',
      reason: 'INC-9: notes',
    });
    const shown = await ferry(['status', '--root', root]);
    expect(shown.stdout).toContain('rollback 1.0.1 → 1.0.0: committed');
    const forward = await ferry(['rollback', '--root', root, '--yes', '--json']);
    expect(forward.code, forward.stderr).toBe(0);
    expect(json(forward)).toMatchObject({ outcome: 'committed', from: '1.0.0', to: '1.0.1' });
    expect(await status(root)).toMatchObject({ release: '1.0.1', verified: true });
  });

  it('a rollback of a first install says it goes back to an empty appliance', async () => {
    const root = join(dir, 'first-rollback');
    await initAppliance(ws, root);
    await installOk(tar['1.0.0'] as string, root);
    expect((await ferry(['rollback', '--root', root, '--yes'])).code).toBe(0);
    const shown = await ferry(['status', '--root', root]);
    expect(shown.stdout).toContain('rollback 1.0.0 → (empty): committed');
  });

  it('refuses when there is nothing to go back to', async () => {
    const root = join(dir, 'no-previous');
    await initAppliance(ws, root);
    const result = await ferry(['rollback', '--root', root, '--yes']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('no previous release');
  });
});

describe('the appliance over time', () => {
  it('status --verify lists a changed and a missing file by component and exits 1', async () => {
    const root = await fresh('1.1.0');
    await writeFile(join(root, 'opt/ferry/db/current/share/schema.sql'), 'DROP TABLE events;\n');
    const { rm } = await import('node:fs/promises');
    await rm(join(root, 'opt/ferry/web/current/index.html'));
    const result = await ferry(['status', '--root', root, '--verify', '--json']);
    expect(result.code).toBe(1);
    const problems = json<{
      problems: Array<{ component: string; path: string; problem: string }>;
    }>(result).problems;
    expect(problems).toEqual([
      {
        component: 'db',
        path: 'share/schema.sql',
        problem: expect.stringContaining('is ') as string,
      },
      { component: 'web', path: 'index.html', problem: 'missing' },
    ]);
    const human = await ferry(['status', '--root', root, '--verify']);
    expect(human.stdout).toContain('2 installed file(s) differ');
    expect(human.stdout).toContain('db: share/schema.sql');
  });

  it('outside the maintenance windows (on the appliance clock, TZ) install exits 5; --now overrides it (recorded)', async () => {
    const root = await fresh('1.0.0');
    const config = join(root, 'etc/ferry/appliance.yaml');
    // The window is this hour in UTC; the appliance's clock is in Kathmandu
    // (UTC+05:45), hours away from it whenever the test runs.
    const hour = new Date().getUTCHours();
    const clock = (h: number) => `${String(h % 24).padStart(2, '0')}:00`;
    await writeFile(
      config,
      (await readFile(config, 'utf8')).replace(
        'maintenanceWindows: []',
        `maintenanceWindows:\n  - { start: "${clock(hour)}", end: "${clock(hour + 1)}" }`,
      ),
    );
    const before = await snapshot(root);
    const refused = await ferry(['install', tar['1.1.0'] as string, '--root', root, '--yes'], {
      env: { TZ: 'Asia/Kathmandu' },
    });
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain('E_MAINTENANCE_WINDOW');
    expect(await snapshot(root)).toEqual(before);
    await installOk(tar['1.1.0'] as string, root, '--now', '--reason', 'security fix');
    const history = (await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8'))
      .trim()
      .split('\n');
    expect(JSON.parse(history.at(-1) as string)).toMatchObject({
      controls: { now: true },
      reason: 'security fix',
    });
  });

  it('keeps versions up to the retention count, always those of the previous release, and prunes the rest', async () => {
    const root = await fresh('1.0.0');
    await installOk(tar['1.1.0'] as string, root);
    await installOk(tar['1.2.0'] as string, root);
    const { readdir } = await import('node:fs/promises');
    const versions = async (name: string) => (await readdir(join(root, 'opt/ferry', name))).sort();
    // retention 2 (the default): web went 1.0.0 → 1.0.1 in 1.1.0; db 3.0.0 → 4.0.0 in 1.2.0.
    expect(await versions('db')).toEqual(['3.0.0', '4.0.0', 'current']);
    expect(await versions('web')).toEqual(['1.0.0', '1.0.1', 'current']);
    const config = join(root, 'etc/ferry/appliance.yaml');
    await writeFile(
      config,
      (await readFile(config, 'utf8')).replace(/retention: \d+/, 'retention: 1'),
    );
    await installOk(tar['1.3.0'] as string, root);
    // retention 1: the active version, plus the previous release's so that rollback works.
    expect(await versions('web')).toEqual(['1.0.1', 'current']);
    expect(await versions('db')).toEqual(['4.0.0', 'current']);
    expect(await versions('legacy-agent')).toEqual(['0.9.0']);
  });
});

describe('state and payloads on another partition, reached by symlinks', () => {
  it('installs and rolls back through them, and leaves the links as links', async () => {
    const root = await fresh('1.0.0');
    const data = join(dir, 'data-partition');
    await mkdir(data);
    const { lstat, rename, symlink } = await import('node:fs/promises');
    for (const [folder, moved] of [
      ['var/lib/ferry', 'ferry-state'],
      ['opt/ferry', 'ferry-payloads'],
    ] as const) {
      await rename(join(root, folder), join(data, moved));
      await symlink(join(data, moved), join(root, folder));
    }
    await installOk(tar['1.1.0'] as string, root);
    expect((await status(root)).release).toBe('1.1.0');
    const rolledBack = await ferry(['rollback', '--root', root, '--yes']);
    expect(rolledBack.code, rolledBack.stderr).toBe(0);
    expect(await status(root)).toMatchObject({ release: '1.0.0', verified: true });
    for (const folder of ['var/lib/ferry', 'opt/ferry'])
      expect((await lstat(join(root, folder))).isSymbolicLink()).toBe(true);
    // What changed went to the partition, through the links.
    expect(await readFile(join(data, 'ferry-state/history.jsonl'), 'utf8')).toMatch(
      /"operation":"rollback"/,
    );
    expect((await lstat(join(data, 'ferry-payloads/web/1.0.1'))).isDirectory()).toBe(true);
  });
});

/**
 * The fixture scripts' `sleep 3600` still running for this appliance: other
 * test files hang scripts of their own at the same time, so a sleep counts
 * only when its environment names this appliance's root.
 */
async function hangingUnder(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const [cmdline, environ] = await Promise.all([
      readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''),
      readFile(`/proc/${pid}/environ`, 'utf8').catch(() => ''),
    ]);
    if (
      cmdline === 'sleep\u00003600\u0000' &&
      environ.split('\u0000').includes(`FERRY_ROOT=${root}`)
    )
      found.push(pid);
  }
  return found;
}
