import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { OUTPUT_SCHEMAS } from '../../manifest-schema/output-declarations.js';
import { buildAll, ferry, tempDir, workspace } from '../helpers.js';
import { cloneAppliance, initAppliance, installOk, markers, status } from './appliance.js';

// Rolling back twice goes forward again: 1.0.0 → 1.3.0 takes db from 3.0.0 to
// 4.0.0. What runs must be 4.0.0's migrate.sh, as the install of 1.3.0 ran it,
// not 3.0.0's restore.sh: that one restores the backup taken before 3.0.0 was
// migrated, under 4.0.0's files. db's scripts name their own version in a file
// outside the appliance, so each run says which bundle's script it was.

const SCRIPTS = ['scripts/db/migrate.sh', 'scripts/db/restore.sh'];

let dir: string;
let ran: string;
let bundles: Record<string, string>;
let base: string;

beforeAll(async () => {
  dir = await tempDir();
  ran = join(dir, 'ran.log');
  const ws = await workspace(dir);
  const original = new Map<string, string>();
  for (const script of SCRIPTS)
    original.set(script, await readFile(join(ws.product, script), 'utf8'));
  const naming = async (version: string): Promise<void> => {
    for (const script of SCRIPTS) {
      const name = script.slice(script.lastIndexOf('/') + 1);
      await writeFile(join(ws.product, script), original.get(script) ?? '');
      await appendFile(
        join(ws.product, script),
        `echo "${name} of db ${version}: $FERRY_PASS \${FERRY_FROM_VERSION:-none} \${FERRY_TO_VERSION:-none}" >> '${ran}'\n`,
      );
    }
  };
  const out = join(dir, 'bundles');
  await naming('3.0.0');
  bundles = await buildAll(ws, out, 'tar', ['1.0.0']);
  await naming('4.0.0');
  Object.assign(bundles, await buildAll(ws, out, 'tar', ['1.3.0']));
  // 1.3.0 cut again with db 4.0.0's restore.sh mended, the version unchanged.
  await naming('4.0.0 (mended)');
  bundles.recut = (await buildAll(ws, join(dir, 'recut'), 'tar', ['1.3.0']))['1.3.0'] as string;

  base = join(dir, 'base');
  await initAppliance(ws, base);
  await installOk(bundles['1.0.0'] as string, base);
  await installOk(bundles['1.3.0'] as string, base);
  const back = await ferry(['rollback', '--root', base, '--yes']);
  expect(back.code, back.stderr).toBe(0);
});

async function lines(): Promise<string[]> {
  return (await readFile(ran, 'utf8').catch(() => '')).split('\n').filter((line) => line !== '');
}

/** An appliance at 1.0.0 rolled back from 1.3.0, and the lines its scripts wrote so far. */
async function rolledBack(name: string): Promise<{ root: string; before: number }> {
  const root = join(dir, name);
  await cloneAppliance(base, root);
  return { root, before: (await lines()).length };
}

describe('rolling back twice goes forward again', () => {
  it('the first rollback ran 4.0.0’s restore.sh', async () => {
    expect(await lines()).toEqual([
      'migrate.sh of db 3.0.0: update none 3.0.0',
      'migrate.sh of db 4.0.0: update 3.0.0 4.0.0',
      'restore.sh of db 4.0.0: rollback 3.0.0 4.0.0',
    ]);
  });

  it('the second runs 4.0.0’s kept migrate.sh from 3.0.0 to 4.0.0, and no restore.sh', async () => {
    const { root, before } = await rolledBack('twice');
    const marked = (await markers(root)).length;
    const result = await ferry(['rollback', '--root', root, '--yes']);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect((await lines()).slice(before)).toEqual(['migrate.sh of db 4.0.0: update 3.0.0 4.0.0']);
    // As the install of 1.3.0 ran: updates dependencies first, removals last;
    // legacy-agent, which 1.3.0 removed, runs its kept remove artifacts, not its restore.sh.
    expect((await markers(root)).slice(marked)).toEqual([
      'update db 3.0.0 4.0.0',
      'update api 2.0.0 2.1.0',
      'update web 1.0.0 1.0.1',
      'remove legacy-agent 0.9.0 none',
    ]);
    expect(await status(root)).toMatchObject({
      release: '1.3.0',
      components: { db: '4.0.0', api: '2.1.0' },
    });
  });

  it('going forward failing after db’s migrate.sh ran: 4.0.0’s kept restore.sh undoes it', async () => {
    const { root, before } = await rolledBack('forward-fails');
    // api is updated after db, which it requires, as the install did.
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/api.update'), '');
    const result = await ferry(['rollback', '--root', root, '--yes']);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout + result.stderr).not.toMatch(/not undone/);
    expect(result.stdout).toContain('FAILED: still at 1.0.0; everything was switched back again');
    expect((await lines()).slice(before)).toEqual([
      'migrate.sh of db 4.0.0: update 3.0.0 4.0.0',
      'restore.sh of db 4.0.0: rollback 3.0.0 4.0.0',
    ]);
    expect((await status(root)).release).toBe('1.0.0');
  });

  it('cut after db’s migrate.sh ran, then ferry recover: the same', async () => {
    const { root, before } = await rolledBack('forward-cut');
    // Journal writes: the header, db's run, db's switch: killed there.
    const cut = await ferry(['rollback', '--root', root, '--yes'], {
      env: { FERRY_TEST_CRASH_AT: '3' },
    });
    expect(cut.code, cut.stderr).toBe(-1);
    expect((await lines()).slice(before)).toEqual(['migrate.sh of db 4.0.0: update 3.0.0 4.0.0']);
    const recovered = await ferry(['recover', '--root', root]);
    expect(recovered.code, recovered.stderr).toBe(0);
    expect((await lines()).slice(before)).toEqual([
      'migrate.sh of db 4.0.0: update 3.0.0 4.0.0',
      'restore.sh of db 4.0.0: rollback 3.0.0 4.0.0',
    ]);
    expect((await status(root)).release).toBe('1.0.0');
  });

  it('refused before anything runs when 4.0.0 kept no update artifacts (an older Ferry installed it)', async () => {
    const { root, before } = await rolledBack('older');
    const file = join(root, 'var/lib/ferry/state.json');
    const state = JSON.parse(await readFile(file, 'utf8')) as {
      previous: { components: Record<string, { artifacts: { update?: string[] } }> };
    };
    const db = state.previous.components.db as { artifacts: { update?: string[] } };
    delete db.artifacts.update;
    await writeFile(file, `${JSON.stringify(state, null, 2)}\n`);
    await rm(join(root, 'var/lib/ferry/artifacts/db/4.0.0/update'), { recursive: true });
    const result = await ferry(['rollback', '--root', root, '--yes']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('E_NOT_FOUND');
    expect(result.stderr).toMatch(/db 4\.0\.0/);
    expect(result.stderr).toMatch(/Install the bundle of 1\.3\.0 instead/);
    expect((await lines()).slice(before)).toEqual([]);
    expect((await status(root)).release).toBe('1.0.0');
    // The way out the hint gives.
    await installOk(bundles['1.3.0'] as string, root);
    expect((await lines()).slice(before)).toEqual(['migrate.sh of db 4.0.0: update 3.0.0 4.0.0']);
    expect((await status(root)).release).toBe('1.3.0');
  });

  it('refused before anything runs when a kept update artifact of 4.0.0 is gone', async () => {
    const { root, before } = await rolledBack('gone');
    const gone = join(root, 'var/lib/ferry/artifacts/db/4.0.0/update/migrate.sh');
    await rm(gone);
    const result = await ferry(['rollback', '--root', root, '--yes']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('E_NOT_FOUND');
    expect(result.stderr).toContain(`${gone} is missing`);
    expect((await lines()).slice(before)).toEqual([]);
    expect((await status(root)).release).toBe('1.0.0');
  });

  it('refused as drift before anything runs when a kept artifact it would run changed on disk', async () => {
    const { root, before } = await rolledBack('changed');
    const marked = (await markers(root)).length;
    await appendFile(join(root, 'var/lib/ferry/artifacts/db/4.0.0/update/migrate.sh'), 'true\n');
    const result = await ferry(['rollback', '--root', root, '--yes']);
    expect(result.code, result.stderr).toBe(4);
    expect(result.stderr).toContain(
      "E_DRIFT: db 4.0.0's kept update artifact migrate.sh, which the rollback would run, is not as its bundle signed it",
    );
    expect((await lines()).slice(before)).toEqual([]);
    expect((await markers(root)).slice(marked)).toEqual([]);
    expect((await status(root)).release).toBe('1.0.0');

    // The remove artifacts legacy-agent kept, which going forward runs as 1.3.0's install did.
    const removing = (await rolledBack('changed-remove')).root;
    await appendFile(
      join(removing, 'var/lib/ferry/artifacts/legacy-agent/0.9.0/remove/uninstall.sh'),
      'true\n',
    );
    const refused = await ferry(['rollback', '--root', removing, '--yes']);
    expect(refused.code, refused.stderr).toBe(4);
    expect(refused.stderr).toContain("legacy-agent 0.9.0's kept remove artifact uninstall.sh");
    expect((await status(removing)).release).toBe('1.0.0');
  });

  it('undone with 4.0.0’s kept restore.sh changed on disk: not run, and said so', async () => {
    const { root, before } = await rolledBack('forward-fails-changed');
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/api.update'), '');
    const changed = join(root, 'var/lib/ferry/artifacts/db/4.0.0/rollback/restore.sh');
    await appendFile(changed, 'true\n');
    const result = await ferry(['rollback', '--root', root, '--yes']);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toContain(
      'FAILED: files back at 1.0.0; artifacts of db ran and were not undone',
    );
    expect(result.stderr).toMatch(
      /db: update artifacts migrate\.sh ran before the rollback from 1\.0\.0 to 1\.3\.0 was undone, and its kept rollback artifacts did not run/,
    );
    expect(result.stderr).toMatch(
      new RegExp(
        `db: kept rollback artifact ${changed.replace(/[.]/g, '\\.')} is \\d+ bytes, not \\d+, so it was not run; its files were restored regardless`,
      ),
    );
    expect((await lines()).slice(before)).toEqual(['migrate.sh of db 4.0.0: update 3.0.0 4.0.0']);
    expect((await status(root)).release).toBe('1.0.0');

    const again = (await rolledBack('forward-fails-changed-json')).root;
    await mkdir(join(again, 'fail'));
    await writeFile(join(again, 'fail/api.update'), '');
    await appendFile(join(again, 'var/lib/ferry/artifacts/db/4.0.0/rollback/restore.sh'), 'true\n');
    const json = await ferry(['rollback', '--root', again, '--yes', '--json']);
    expect(json.code, json.stderr).toBe(1);
    const output = JSON.parse(json.stdout) as { notUndone?: unknown };
    expect(output.notUndone).toEqual([
      { component: 'db', artifacts: ['migrate.sh'], pass: 'update' },
    ]);
    const validate = new Ajv({ strict: false }).compile(OUTPUT_SCHEMAS.rollback);
    expect(validate(output), JSON.stringify(validate.errors)).toBe(true);
  });

  it('cut after db’s migrate.sh ran, with 4.0.0’s kept restore.sh changed: ferry recover does not run it, and says so', async () => {
    const { root, before } = await rolledBack('forward-cut-changed');
    await appendFile(join(root, 'var/lib/ferry/artifacts/db/4.0.0/rollback/restore.sh'), 'true\n');
    const cut = await ferry(['rollback', '--root', root, '--yes'], {
      env: { FERRY_TEST_CRASH_AT: '3' },
    });
    expect(cut.code, cut.stderr).toBe(-1);
    const recovered = await ferry(['recover', '--root', root]);
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(recovered.stdout).toContain(
      'recovered: files back at 1.0.0; artifacts of db ran and were not undone',
    );
    expect(recovered.stderr).toMatch(/db: kept rollback artifact \S+restore\.sh is \d+ bytes/);
    expect((await lines()).slice(before)).toEqual(['migrate.sh of db 4.0.0: update 3.0.0 4.0.0']);
    expect((await status(root)).release).toBe('1.0.0');
  });
});

describe('a version installed again from a bundle cut anew', () => {
  it('keeps the new bundle’s artifacts in place of the ones kept before, and rollback runs them', async () => {
    const { root, before } = await rolledBack('recut');
    await installOk(bundles.recut as string, root);
    const back = await ferry(['rollback', '--root', root, '--yes']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect((await lines()).slice(before)).toEqual([
      'migrate.sh of db 4.0.0 (mended): update 3.0.0 4.0.0',
      'restore.sh of db 4.0.0 (mended): rollback 3.0.0 4.0.0',
    ]);
  });

  it('an install undone after keeping them puts the ones kept before back', async () => {
    const { root } = await rolledBack('recut-undone');
    const kept = join(root, 'var/lib/ferry/artifacts/db/4.0.0/rollback/restore.sh');
    const was = await readFile(kept, 'utf8');
    // web is updated after db: its failure undoes db's update, kept artifacts included.
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/web.update'), '');
    const failed = await ferry(['install', bundles.recut as string, '--root', root, '--yes']);
    expect(failed.code, failed.stdout + failed.stderr).toBe(1);
    expect(await readFile(kept, 'utf8')).toBe(was);
    await rm(join(root, 'fail'), { recursive: true });
    const forward = await ferry(['rollback', '--root', root, '--yes']);
    expect(forward.code, forward.stdout + forward.stderr).toBe(0);
    expect((await status(root)).release).toBe('1.3.0');
  });
});
