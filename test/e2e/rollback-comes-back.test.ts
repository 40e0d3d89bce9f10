import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildAll, EPOCH, ferry, tempDir, workspace } from '../helpers.js';
import {
  cloneAppliance,
  initAppliance,
  installOk,
  markers,
  snapshot,
  status,
} from './appliance.js';

// Release 1.4.0 is 1.3.0 with a component 1.3.0 has not: metrics. Rolling back
// from 1.4.0 takes metrics away (its kept restore.sh runs); rolling back again
// goes forward, and metrics comes back: its kept update artifacts must run, as
// the install of 1.4.0 ran them, from no version to 1.0.0. The fixture's
// scripts write "<pass> <component> <from> <to>" markers.

let dir: string;
let base: string;
let first: string;
let withoutRemoves: string;
let partlyThenWhole: string;
let webDown: string;

beforeAll(async () => {
  dir = await tempDir();
  const ws = await workspace(dir);
  const out = join(dir, 'bundles');
  const bundles = await buildAll(ws, out, 'tar', ['1.0.0', '1.3.0']);
  await mkdir(join(ws.product, 'components/metrics/1.0.0'), { recursive: true });
  await writeFile(join(ws.product, 'components/metrics/1.0.0/VERSION'), '1.0.0\n');
  const release = (await readFile(join(ws.product, 'release-1.3.0.yaml'), 'utf8'))
    .replace("release: '1.3.0'", "release: '1.4.0'")
    .replace(
      '\nremoved:',
      `
  metrics:
    version: '1.0.0'
    owner: ops-team
    payload: ./components/metrics/1.0.0
    artifacts:
      pre-validate: [./scripts/maps/check-space.sh]
      update: [./scripts/maps/load-tiles.sh]
      test: [./scripts/maps/check-tiles.sh]
      rollback: [./scripts/maps/restore.sh]
    changes:
      - { id: MET-1, kind: update, summary: 'first packaged metrics' }
removed:`,
    );
  expect(release).toContain('metrics:');
  await writeFile(join(ws.product, 'release-1.4.0.yaml'), release);
  const built = await ferry(
    ['build', join(ws.product, 'release-1.4.0.yaml'), '--out', out, '--key', ws.key, '--json'],
    { env: { SOURCE_DATE_EPOCH: EPOCH } },
  );
  expect(built.code, built.stderr).toBe(0);
  const bundle = (JSON.parse(built.stdout) as { bundle: string }).bundle;

  // 1.5.0 is 1.3.0 without its own remove artifacts for legacy-agent: the ones 1.0.0's install kept run.
  await writeFile(
    join(ws.product, 'release-1.5.0.yaml'),
    (await readFile(join(ws.product, 'release-1.3.0.yaml'), 'utf8'))
      .replace("release: '1.3.0'", "release: '1.5.0'")
      .replace(/\nremoved:\n.*\n/, '\n'),
  );
  const built150 = await ferry(
    ['build', join(ws.product, 'release-1.5.0.yaml'), '--out', out, '--key', ws.key, '--json'],
    { env: { SOURCE_DATE_EPOCH: EPOCH } },
  );
  expect(built150.code, built150.stderr).toBe(0);
  withoutRemoves = (JSON.parse(built150.stdout) as { bundle: string }).bundle;
  first = bundles['1.0.0'] as string;

  // 1.6.0 is 1.3.0 with web back at 1.0.0: a newer release with a lower version.
  await writeFile(
    join(ws.product, 'release-1.6.0.yaml'),
    (await readFile(join(ws.product, 'release-1.3.0.yaml'), 'utf8'))
      .replace("release: '1.3.0'", "release: '1.6.0'")
      .replace("version: '1.0.1'", "version: '1.0.0'")
      .replace('./components/web/1.0.1', './components/web/1.0.0')
      .replace(/\n.*WEB-7.*\n/, '\n'),
  );
  const built160 = await ferry(
    ['build', join(ws.product, 'release-1.6.0.yaml'), '--out', out, '--key', ws.key, '--json'],
    { env: { SOURCE_DATE_EPOCH: EPOCH } },
  );
  expect(built160.code, built160.stderr).toBe(0);
  webDown = join(dir, 'web-down');
  await initAppliance(ws, webDown);
  await installOk(bundles['1.0.0'] as string, webDown);
  await installOk(bundles['1.3.0'] as string, webDown);
  await installOk(
    (JSON.parse(built160.stdout) as { bundle: string }).bundle,
    webDown,
    '--force',
    'web',
  );

  base = join(dir, 'base');
  await initAppliance(ws, base);
  await installOk(bundles['1.0.0'] as string, base);
  await installOk(bundles['1.3.0'] as string, base);
  await installOk(bundle, base);
  // 1.4.0 installed without metrics, then whole: both records are of release 1.4.0.
  partlyThenWhole = join(dir, 'partly-then-whole');
  await initAppliance(ws, partlyThenWhole);
  await installOk(bundles['1.0.0'] as string, partlyThenWhole);
  await installOk(bundle, partlyThenWhole, '--skip', 'metrics', '--partial');
  await installOk(bundle, partlyThenWhole);
  const at100 = join(dir, 'at100');
  await initAppliance(ws, at100);
  await installOk(first, at100);
});

/** An appliance at 1.4.0, and how many markers its scripts wrote so far. */
async function at140(name: string): Promise<{ root: string; before: number }> {
  const root = join(dir, name);
  await cloneAppliance(base, root);
  return { root, before: (await markers(root)).length };
}

describe('a component that comes back going forward', () => {
  it('rolled back twice: metrics goes with its kept restore.sh, comes back with its kept update artifacts', async () => {
    const { root, before } = await at140('twice');
    const back = await ferry(['rollback', '--root', root, '--yes']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect((await markers(root)).slice(before)).toEqual(['rollback metrics none 1.0.0']);
    expect((await status(root)).components).not.toHaveProperty('metrics');

    const between = (await markers(root)).length;
    const forward = await ferry(['rollback', '--root', root, '--yes']);
    expect(forward.code, forward.stdout + forward.stderr).toBe(0);
    expect((await markers(root)).slice(between)).toEqual(['update metrics none 1.0.0']);
    expect(await status(root)).toMatchObject({
      release: '1.4.0',
      components: { metrics: '1.0.0' },
    });
    const verified = await ferry(['status', '--root', root, '--verify']);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  });

  it('coming back, then failing: its kept restore.sh undoes its update artifacts', async () => {
    const { root } = await at140('twice-fails');
    const back = await ferry(['rollback', '--root', root, '--yes']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    // 1.3.0 and 1.4.0 differ only in metrics: fail its own update artifact once it ran.
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/metrics.update'), '');
    const between = (await markers(root)).length;
    const forward = await ferry(['rollback', '--root', root, '--yes']);
    expect(forward.code, forward.stdout + forward.stderr).toBe(1);
    expect(forward.stdout).toContain('FAILED: still at 1.3.0; everything was switched back again');
    expect((await markers(root)).slice(between)).toEqual([
      'update metrics none 1.0.0',
      'rollback metrics none 1.0.0',
    ]);
    expect((await status(root)).components).not.toHaveProperty('metrics');
  });
});

describe('rolling back between two installs of one release', () => {
  it('a partial install of 1.4.0, then the whole: going forward again runs metrics’ kept update artifacts', async () => {
    const root = join(dir, 'partly-then-whole-twice');
    await cloneAppliance(partlyThenWhole, root);
    const before = (await markers(root)).length;
    const back = await ferry(['rollback', '--root', root, '--yes']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect((await markers(root)).slice(before)).toEqual(['rollback metrics none 1.0.0']);
    expect(await status(root)).toMatchObject({ release: '1.4.0', verified: false });
    expect((await status(root)).components).not.toHaveProperty('metrics');

    const between = (await markers(root)).length;
    const forward = await ferry(['rollback', '--root', root, '--yes', '--json']);
    expect(forward.code, forward.stdout + forward.stderr).toBe(0);
    expect((await markers(root)).slice(between)).toEqual(['update metrics none 1.0.0']);
    expect(JSON.parse(forward.stdout)).toMatchObject({ outcome: 'committed', forward: true });
    expect(await status(root)).toMatchObject({
      release: '1.4.0',
      verified: true,
      components: { metrics: '1.0.0' },
    });
  });
});

describe('a newer release with a lower version of a component', () => {
  it('going back undoes its install with 1.0.0’s restore.sh; going forward redoes it with 1.0.0’s publish.sh', async () => {
    const root = join(dir, 'web-down-twice');
    await cloneAppliance(webDown, root);
    const before = (await markers(root)).length;
    const back = await ferry(['rollback', '--root', root, '--yes']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect((await markers(root)).slice(before)).toEqual(['rollback web 1.0.1 1.0.0']);
    expect(await status(root)).toMatchObject({ release: '1.3.0', components: { web: '1.0.1' } });

    const between = (await markers(root)).length;
    const forward = await ferry(['rollback', '--root', root, '--yes']);
    expect(forward.code, forward.stdout + forward.stderr).toBe(0);
    expect((await markers(root)).slice(between)).toEqual(['update web 1.0.1 1.0.0']);
    expect(await status(root)).toMatchObject({ release: '1.6.0', components: { web: '1.0.0' } });
  });
});

describe('an install that removes a component with the remove artifacts its version kept', () => {
  it('refused as drift before anything runs when one changed on disk; run once put back', async () => {
    const root = join(dir, 'kept-remove');
    await cloneAppliance(join(dir, 'at100'), root);
    const kept = join(root, 'var/lib/ferry/artifacts/legacy-agent/0.9.0/remove/uninstall.sh');
    const original = await readFile(kept, 'utf8');
    await writeFile(kept, `${original}true\n`);
    const before = (await markers(root)).length;
    const refused = await ferry(['install', withoutRemoves, '--root', root, '--yes']);
    expect(refused.code, refused.stderr).toBe(4);
    expect(refused.stderr).toContain(
      "E_DRIFT: legacy-agent 0.9.0's kept remove artifact uninstall.sh, which this install would run to remove legacy-agent, is not as its bundle signed it",
    );
    expect((await markers(root)).slice(before)).toEqual([]);
    expect((await status(root)).release).toBe('1.0.0');

    await writeFile(kept, original);
    await installOk(withoutRemoves, root);
    expect((await markers(root)).slice(before)).toContain('remove legacy-agent 0.9.0 none');
    expect((await status(root)).release).toBe('1.5.0');
  });
});

describe('a rollback going forward over a removal', () => {
  // The removal ran 1.7.0's own uninstall script (mended since 0.9.0's
  // install kept its own); redoing that install must run the same one.
  it("runs the removing bundle's remove artifacts again, not the ones the removed version kept", async () => {
    const product = join(dir, 'mended');
    await mkdir(product);
    const ws = await workspace(product);
    const out = join(product, 'bundles');
    const bundles = await buildAll(ws, out, 'tar', ['1.0.0']);
    const uninstall = await readFile(join(ws.product, 'scripts/legacy-agent/uninstall.sh'), 'utf8');
    await writeFile(
      join(ws.product, 'scripts/legacy-agent/uninstall-mended.sh'),
      uninstall.replace('echo "$FERRY_PASS $FERRY_COMPONENT', 'echo "mended $FERRY_COMPONENT'),
      { mode: 0o755 },
    );
    await writeFile(
      join(ws.product, 'release-1.7.0.yaml'),
      (await readFile(join(ws.product, 'release-1.3.0.yaml'), 'utf8'))
        .replace("release: '1.3.0'", "release: '1.7.0'")
        .replace('legacy-agent/uninstall.sh', 'legacy-agent/uninstall-mended.sh'),
    );
    const mended = (await buildAll(ws, out, 'tar', ['1.7.0']))['1.7.0'] as string;
    const root = join(product, 'root');
    await initAppliance(ws, root);
    await installOk(bundles['1.0.0'] as string, root);
    // Failing after the removal kept them: the kept ones of 0.9.0 are back, byte for byte.
    const before = await snapshot(root);
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/verify'), '');
    expect((await ferry(['install', mended, '--root', root, '--yes'])).code).toBe(1);
    expect(await snapshot(root)).toEqual(before);
    await rm(join(root, 'fail'), { recursive: true });
    await installOk(mended, root);
    expect(await markers(root)).toContain('mended legacy-agent 0.9.0 none');

    for (const way of ['back', 'forward']) {
      const rolled = await ferry(['rollback', '--root', root, '--yes']);
      expect(rolled.code, `${way}: ${rolled.stderr}`).toBe(0);
    }
    const ran = await markers(root);
    // The failed install, the install, and the rollback going forward.
    expect(ran.filter((line) => line === 'mended legacy-agent 0.9.0 none')).toHaveLength(3);
    expect(ran).not.toContain('remove legacy-agent 0.9.0 none');
    expect(await status(root)).toMatchObject({ release: '1.7.0', verified: true });
    expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
  });
});
