import { appendFile, chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { OUTPUT_SCHEMAS } from '../../manifest-schema/output-declarations.js';
import { ferry, json } from '../helpers.js';
import { cloneAppliance, install, installOk, markers, status } from '../e2e/appliance.js';
import { atFirstRelease, faultProduct } from './product.js';

// A rollback from 1.3.0 runs web's restore.sh, switches web and legacy-agent,
// then runs api's (dependents first). Undone after web's ran, it switches
// every file forward again and runs web's kept update artifacts (publish.sh)
// again, as the install to 1.3.0 ran them. An appliance an older Ferry
// installed kept none: there Ferry must say what restore.sh did is not
// undone, not "everything was switched forward".

const product = faultProduct();
let base: string;

beforeAll(async () => {
  base = join(product.dir, 'base');
  await atFirstRelease(product, base);
  await installOk(product.bundles['1.3.0'] as string, base);
});

async function at130(name: string): Promise<string> {
  const root = join(product.dir, name);
  await cloneAppliance(base, root);
  return root;
}

interface StateFile {
  components: Record<string, { artifacts: { update?: string[] } }>;
  previous?: { components: Record<string, { artifacts: { update?: string[] } }> };
}

/** At 1.3.0 as an older Ferry left it: no update artifacts kept, none listed in the state. */
async function at130Older(name: string): Promise<string> {
  const root = await at130(name);
  const file = join(root, 'var/lib/ferry/state.json');
  const state = JSON.parse(await readFile(file, 'utf8')) as StateFile;
  for (const components of [state.components, state.previous?.components ?? {}])
    for (const component of Object.values(components)) delete component.artifacts.update;
  await writeFile(file, `${JSON.stringify(state, null, 2)}\n`);
  const kept = join(root, 'var/lib/ferry/artifacts');
  for (const component of await readdir(kept))
    for (const version of await readdir(join(kept, component)))
      await rm(join(kept, component, version, 'update'), { recursive: true, force: true });
  return root;
}

/** The markers the fixture's artifacts wrote since `before` of them. */
async function markersSince(root: string, before: number): Promise<string[]> {
  return (await markers(root)).slice(before);
}

interface NotUndone {
  component: string;
  artifacts: string[];
}

const WEB_WARNING =
  /web: rollback artifacts restore\.sh ran before the rollback from 1\.3\.0 to 1\.0\.0 was undone; what they restored outside Ferry's folders is not undone: web's files are at 1\.3\.0 again, its data may be as at 1\.0\.0\. Mend what failed and run ferry rollback again/;

/** The published --json shape holds the field (the schemas' top level is closed). */
function conforms(name: 'rollback' | 'recover', output: unknown): void {
  const validate = new Ajv({ strict: false }).compile(OUTPUT_SCHEMAS[name]);
  expect(validate(output), JSON.stringify(validate.errors)).toBe(true);
}

/** The warnings the transaction's log keeps. */
async function loggedWarnings(root: string): Promise<string[]> {
  const history = (await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { operation: string; log?: string; id: string });
  const rollback = history.findLast(
    (line) => line.operation === 'rollback' || line.operation === 'recover',
  );
  const log = join(root, 'var/lib/ferry/logs', `${rollback?.id ?? ''}.jsonl`);
  return (await readFile(log, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; message?: string })
    .filter((event) => event.type === 'warning')
    .map((event) => event.message ?? '');
}

describe('a rollback undone after rollback artifacts ran, on an appliance whose install kept no update artifacts', () => {
  it('a failing restore of the second component: the warning, the FAILED line and --json name the first', async () => {
    const root = await at130Older('fails');
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/api.rollback'), '');
    const started = (await markers(root)).length;
    const failed = await ferry(['rollback', '--root', root, '--yes']);
    expect(failed.code, failed.stderr).toBe(1);
    const said = failed.stdout + failed.stderr;
    expect(said).toMatch(WEB_WARNING);
    expect(said).toMatch(
      /FAILED: files back at 1\.3\.0; rollback artifacts of web, api ran and were not undone/,
    );
    expect(said).not.toMatch(/everything was switched forward again/);
    expect(said).not.toMatch(/while undoing the rollback/);
    // Nothing ran again: nothing was kept to run.
    expect((await markersSince(root, started)).filter((line) => line.startsWith('update'))).toEqual(
      [],
    );
    expect((await loggedWarnings(root)).some((message) => WEB_WARNING.test(message))).toBe(true);
    expect((await status(root)).release).toBe('1.3.0');

    // What the warning says of --force: web is at its version with its files as
    // signed, so the plan keeps it and its update artifacts do not run again.
    await rm(join(root, 'fail'), { recursive: true });
    const before = (await markers(root)).length;
    const forced = await install(product.bundles['1.3.0'] as string, root, '--force', 'web');
    expect(forced.code, forced.stderr).toBe(0);
    expect((await markers(root)).slice(before).filter((line) => line.startsWith('update'))).toEqual(
      [],
    );

    const again = await at130Older('fails-json');
    await mkdir(join(again, 'fail'));
    await writeFile(join(again, 'fail/api.rollback'), '');
    const result = await ferry(['rollback', '--root', again, '--yes', '--json']);
    expect(result.code, result.stderr).toBe(1);
    expect(json<{ notUndone?: NotUndone[] }>(result).notUndone).toEqual([
      { component: 'web', artifacts: ['restore.sh'] },
      { component: 'api', artifacts: ['restore.sh'] },
    ]);
    conforms('rollback', json(result));
    // The other way out the warning gives: mended, the rollback runs them all again.
    await rm(join(again, 'fail'), { recursive: true });
    const mended = await ferry(['rollback', '--root', again, '--yes']);
    expect(mended.code, mended.stderr).toBe(0);
    expect((await status(again)).release).toBe('1.0.0');

    // Installing 1.3.0 again keeps web's update artifacts beside the rollback
    // artifacts the older install kept, and lists them: a failed rollback from
    // there runs publish.sh again.
    await installOk(product.bundles['1.3.0'] as string, again);
    await stat(join(again, 'var/lib/ferry/artifacts/web/1.0.1/update/publish.sh'));
    const state = JSON.parse(
      await readFile(join(again, 'var/lib/ferry/state.json'), 'utf8'),
    ) as StateFile;
    expect(state.components.web?.artifacts.update).toEqual(['publish.sh']);
    await mkdir(join(again, 'fail'));
    await writeFile(join(again, 'fail/api.rollback'), '');
    const before130 = (await markers(again)).length;
    const redone = await ferry(['rollback', '--root', again, '--yes', '--json']);
    expect(redone.code, redone.stderr).toBe(1);
    expect(json<{ notUndone?: NotUndone[] }>(redone).notUndone).toBeUndefined();
    expect(await markersSince(again, before130)).toContain('update web 1.0.0 1.0.1');
  });

  it('a component that kept an empty list of update artifacts: nothing to run, so named as not undone', async () => {
    const root = await at130('redo-none-kept');
    const file = join(root, 'var/lib/ferry/state.json');
    const state = JSON.parse(await readFile(file, 'utf8')) as StateFile;
    (state.components.web as { artifacts: { update?: string[] } }).artifacts.update = [];
    await writeFile(file, `${JSON.stringify(state, null, 2)}\n`);
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/api.rollback'), '');
    const result = await ferry(['rollback', '--root', root, '--yes', '--json']);
    expect(result.code, result.stderr).toBe(1);
    expect(json<{ notUndone?: NotUndone[] }>(result).notUndone).toEqual([
      { component: 'web', artifacts: ['restore.sh'] },
    ]);
  });

  it('an update artifact name that leaves its folder, in state.json, is refused before anything runs', async () => {
    const root = await at130('redo-escaping-name');
    const file = join(root, 'var/lib/ferry/state.json');
    const state = JSON.parse(await readFile(file, 'utf8')) as StateFile;
    (state.components.web as { artifacts: { update?: string[] } }).artifacts.update = [
      '../../../../../../tmp/elsewhere.sh',
    ];
    await writeFile(file, `${JSON.stringify(state, null, 2)}\n`);
    const started = (await markers(root)).length;
    const result = await ferry(['rollback', '--root', root, '--yes']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('E_STATE_INVALID');
    expect(result.stderr).toContain('/components/web/artifacts/update/0');
    expect(await markersSince(root, started)).toEqual([]);
  });

  it('a rollback killed after the first restore ran, then ferry recover: the same', async () => {
    // Journal writes: the header, web's run, web's switch; killed there, web's restore.sh has run.
    const root = await at130Older('killed');
    const cut = await ferry(['rollback', '--root', root, '--yes'], {
      env: { FERRY_TEST_CRASH_AT: '3' },
    });
    expect(cut.code, cut.stderr).toBe(-1);
    const rolledBack = (await markers(root)).filter((line) => line.startsWith('rollback'));
    expect(rolledBack).toEqual(['rollback web 1.0.0 1.0.1']);
    const copy = join(product.dir, 'killed-json');

    await cloneAppliance(root, copy);

    const recovered = await ferry(['recover', '--root', root]);
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(recovered.stderr).toMatch(WEB_WARNING);
    expect(recovered.stdout).toMatch(
      /recovered: files back at 1\.3\.0; rollback artifacts of web ran and were not undone/,
    );
    expect((await loggedWarnings(root)).some((message) => WEB_WARNING.test(message))).toBe(true);
    expect((await status(root)).release).toBe('1.3.0');
    // Nothing ran again (nothing was kept to run): the install's one run of publish.sh.
    expect((await markers(root)).filter((line) => line === 'update web 1.0.0 1.0.1')).toHaveLength(
      1,
    );

    const result = await ferry(['recover', '--root', copy, '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(json(result)).toMatchObject({
      recovered: true,
      release: '1.3.0',
      notUndone: [{ component: 'web', artifacts: ['restore.sh'] }],
    });
    conforms('recover', json(result));
  });

  it('a rollback that runs no artifact before it is undone says nothing of the kind', async () => {
    // Killed right after its header: nothing ran.
    const root = await at130('killed-early');
    const cut = await ferry(['rollback', '--root', root, '--yes'], {
      env: { FERRY_TEST_CRASH_AT: '1' },
    });
    expect(cut.code, cut.stderr).toBe(-1);
    const result = await ferry(['recover', '--root', root, '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(json(result)).toEqual({ schemaVersion: 1, recovered: true, release: '1.3.0' });
    expect(result.stderr).not.toMatch(/not undone/);
  });
});

describe('a rollback undone after rollback artifacts ran: the update artifacts run again', () => {
  it("a failing restore of the second component: the first's update artifacts run again, going forward", async () => {
    const root = await at130('redo-fails');
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/api.rollback'), '');
    const before = (await markers(root)).length;
    const failed = await ferry(['rollback', '--root', root, '--yes']);
    expect(failed.code, failed.stderr).toBe(1);
    const said = failed.stdout + failed.stderr;
    expect(said).toMatch(/FAILED: still at 1\.3\.0; everything was switched forward again/);
    expect(said).not.toMatch(/not undone/);
    // In the journal's reverse order, each told what the install to 1.3.0 told it.
    expect(await markersSince(root, before)).toEqual([
      'rollback web 1.0.0 1.0.1',
      'rollback api 2.0.0 2.1.0',
      'update api 2.0.0 2.1.0',
      'update web 1.0.0 1.0.1',
    ]);
    expect((await status(root)).release).toBe('1.3.0');

    const again = await at130('redo-fails-json');
    await mkdir(join(again, 'fail'));
    await writeFile(join(again, 'fail/api.rollback'), '');
    const result = await ferry(['rollback', '--root', again, '--yes', '--json']);
    expect(result.code, result.stderr).toBe(1);
    expect(json<{ notUndone?: NotUndone[] }>(result).notUndone).toBeUndefined();
    conforms('rollback', json(result));
    const history = (await readFile(join(again, 'var/lib/ferry/history.jsonl'), 'utf8'))
      .trim()
      .split('\n');
    expect(history.at(-1)).not.toMatch(/notUndone/);
  });

  it('an update artifact that fails when run again: warned of, and its component not undone', async () => {
    const root = await at130('redo-update-fails');
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/api.rollback'), '');
    await writeFile(join(root, 'fail/web.update'), '');
    const result = await ferry(['rollback', '--root', root, '--yes', '--json']);
    expect(result.code, result.stderr).toBe(1);
    const warnings = await loggedWarnings(root);
    expect(warnings).toContainEqual(
      expect.stringMatching(
        /^web: update artifact \S+\/web\/1\.0\.1\/update\/publish\.sh exited with status 1 while undoing the rollback; its files were switched forward regardless$/,
      ),
    );
    expect(warnings).toContainEqual(expect.stringMatching(WEB_WARNING));
    expect(json<{ notUndone?: NotUndone[] }>(result).notUndone).toEqual([
      { component: 'web', artifacts: ['restore.sh'] },
    ]);
    conforms('rollback', json(result));
    expect((await status(root)).release).toBe('1.3.0');
  });

  it("one component's update artifact failing when run again: the other components' still run", async () => {
    const root = await at130('redo-first-fails');
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/api.rollback'), '');
    // api is run again first (the journal's reverse order): web's must run after it failed.
    await writeFile(join(root, 'fail/api.update'), '');
    const before = (await markers(root)).length;
    const result = await ferry(['rollback', '--root', root, '--yes', '--json']);
    expect(result.code, result.stderr).toBe(1);
    expect(await markersSince(root, before)).toEqual([
      'rollback web 1.0.0 1.0.1',
      'rollback api 2.0.0 2.1.0',
      'update api 2.0.0 2.1.0',
      'update web 1.0.0 1.0.1',
    ]);
    expect(json<{ notUndone?: NotUndone[] }>(result).notUndone).toEqual([
      { component: 'api', artifacts: ['restore.sh'] },
    ]);
    conforms('rollback', json(result));
    expect((await status(root)).release).toBe('1.3.0');
  });

  it('a rollback killed after the first restore ran, then ferry recover: the same', async () => {
    // Journal writes: the header, web's run, web's switch; killed there, web's restore.sh has run.
    const root = await at130('redo-killed');
    const cut = await ferry(['rollback', '--root', root, '--yes'], {
      env: { FERRY_TEST_CRASH_AT: '3' },
    });
    expect(cut.code, cut.stderr).toBe(-1);
    const before = (await markers(root)).length;
    expect((await markers(root)).at(-1)).toBe('rollback web 1.0.0 1.0.1');
    const copy = join(product.dir, 'redo-killed-json');
    await cloneAppliance(root, copy);

    const recovered = await ferry(['recover', '--root', root]);
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(recovered.stderr).not.toMatch(/not undone/);
    expect(recovered.stdout).toMatch(/recovered: the appliance is at 1\.3\.0/);
    expect(await markersSince(root, before)).toEqual(['update web 1.0.0 1.0.1']);
    expect((await status(root)).release).toBe('1.3.0');

    const result = await ferry(['recover', '--root', copy, '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(json(result)).toEqual({ schemaVersion: 1, recovered: true, release: '1.3.0' });
    conforms('recover', json(result));
  });
});

describe('kept artifacts changed on disk since their bundle signed them', () => {
  const KEPT = 'var/lib/ferry/artifacts';

  it('a rollback artifact the rollback would run: refused as drift before anything runs', async () => {
    const root = await at130('kept-changed');
    const changed = join(root, KEPT, 'web/1.0.1/rollback/restore.sh');
    await appendFile(changed, 'echo tampered\n');
    const stateBefore = await readFile(join(root, 'var/lib/ferry/state.json'), 'utf8');
    const started = (await markers(root)).length;
    const result = await ferry(['rollback', '--root', root, '--yes']);
    expect(result.code, result.stderr).toBe(4);
    expect(result.stderr).toContain('E_DRIFT');
    expect(result.stderr).toContain(
      "web 1.0.1's kept rollback artifact restore.sh, which the rollback would run, is not as its bundle signed it",
    );
    expect(result.stderr).toMatch(/nothing was run or changed/);
    expect(await markersSince(root, started)).toEqual([]);
    expect(await readFile(join(root, 'var/lib/ferry/state.json'), 'utf8')).toBe(stateBefore);
    expect((await status(root)).release).toBe('1.3.0');

    // Gone is refused the same way: with its digest recorded, a missing file is no smaller change.
    const gone = await at130('kept-gone');
    await rm(join(gone, KEPT, 'api/2.1.0/rollback/restore.sh'));
    const refused = await ferry(['rollback', '--root', gone, '--yes', '--json']);
    expect(refused.code, refused.stderr).toBe(4);
    const error = json<{ error: { code: string; message: string } }>(refused).error;
    expect(error).toMatchObject({
      code: 'E_DRIFT',
      component: 'api',
      file: join(gone, KEPT, 'api/2.1.0/rollback/restore.sh'),
    });
    expect(error.message).toMatch(
      /^api 2\.1\.0's kept rollback artifact restore\.sh.*it is missing$/,
    );
    expect(await markersSince(gone, 0)).not.toContain('rollback api 2.0.0 2.1.0');
  });

  it('one whose execute bit was taken away (a copy or backup that kept no modes): refused as drift before anything runs', async () => {
    // Its bytes match, so it passed the check, and the rollback ran web's and
    // api's restore.sh before db's failed to start (exit 126), then undid them.
    const root = await at130('kept-not-executable');
    const kept = join(root, KEPT, 'db/4.0.0/rollback/restore.sh');
    await chmod(kept, 0o644);
    const stateBefore = await readFile(join(root, 'var/lib/ferry/state.json'), 'utf8');
    const started = (await markers(root)).length;
    const result = await ferry(['rollback', '--root', root, '--yes']);
    expect(result.code, result.stderr).toBe(4);
    expect(result.stderr).toContain(
      "E_DRIFT: db 4.0.0's kept rollback artifact restore.sh, which the rollback would run, is not as its bundle signed it: it is not executable (mode 0644)",
    );
    expect(await markersSince(root, started)).toEqual([]);
    expect(await readFile(join(root, 'var/lib/ferry/state.json'), 'utf8')).toBe(stateBefore);

    await chmod(kept, 0o755);
    const rolled = await ferry(['rollback', '--root', root, '--yes']);
    expect(rolled.code, rolled.stderr).toBe(0);
    expect((await status(root)).release).toBe('1.0.0');
  });

  it('recorded by an older Ferry (no digests): run as before, unchecked', async () => {
    const root = await at130('kept-no-digests');
    const file = join(root, 'var/lib/ferry/state.json');
    const state = JSON.parse(await readFile(file, 'utf8')) as {
      components: Record<string, { artifacts: { digests?: unknown } }>;
    };
    for (const component of Object.values(state.components)) delete component.artifacts.digests;
    await writeFile(file, `${JSON.stringify(state, null, 2)}\n`);
    await appendFile(join(root, KEPT, 'web/1.0.1/rollback/restore.sh'), 'true\n');
    const result = await ferry(['rollback', '--root', root, '--yes']);
    expect(result.code, result.stderr).toBe(0);
    expect((await status(root)).release).toBe('1.0.0');
  });

  it('an update artifact to run again in the undo: not run, its component named as not undone', async () => {
    const root = await at130('kept-redo-changed');
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/api.rollback'), '');
    const changed = join(root, KEPT, 'web/1.0.1/update/publish.sh');
    const tampered = '#!/bin/sh\necho tampered >> "$FERRY_ROOT/var/log/acme-markers.log"\n';
    await writeFile(changed, tampered);
    const before = (await markers(root)).length;
    const result = await ferry(['rollback', '--root', root, '--yes', '--json']);
    expect(result.code, result.stderr).toBe(1);
    // api's is run again; web's changed publish.sh is not.
    expect(await markersSince(root, before)).toEqual([
      'rollback web 1.0.0 1.0.1',
      'rollback api 2.0.0 2.1.0',
      'update api 2.0.0 2.1.0',
    ]);
    expect(json<{ notUndone?: NotUndone[] }>(result).notUndone).toEqual([
      { component: 'web', artifacts: ['restore.sh'] },
    ]);
    conforms('rollback', json(result));
    const warnings = await loggedWarnings(root);
    expect(warnings).toContainEqual(
      `web: kept update artifact ${changed} is ${tampered.length} bytes, not ${(await stat(join(base, KEPT, 'web/1.0.1/update/publish.sh'))).size}, so none of web's were run while undoing the rollback; its files were switched forward regardless`,
    );
    expect(warnings).toContainEqual(expect.stringMatching(WEB_WARNING));
    expect((await status(root)).release).toBe('1.3.0');
  });
});
