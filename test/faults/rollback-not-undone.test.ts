import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { OUTPUT_SCHEMAS } from '../../manifest-schema/output-declarations.js';
import { ferry, json } from '../helpers.js';
import { cloneAppliance, install, installOk, markers, status } from '../e2e/appliance.js';
import { atFirstRelease, faultProduct } from './product.js';

// A rollback from 1.3.0 runs web's restore.sh, switches web and legacy-agent,
// then runs api's (dependents first). Undone after web's ran, it switches
// every file forward again but cannot undo what restore.sh did outside
// Ferry's folders: Ferry must say so, not "everything was switched forward".

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

describe('a rollback undone after rollback artifacts ran', () => {
  it('a failing restore of the second component: the warning, the FAILED line and --json name the first', async () => {
    const root = await at130('fails');
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail/api.rollback'), '');
    const failed = await ferry(['rollback', '--root', root, '--yes']);
    expect(failed.code, failed.stderr).toBe(1);
    const said = failed.stdout + failed.stderr;
    expect(said).toMatch(WEB_WARNING);
    expect(said).toMatch(
      /FAILED: files back at 1\.3\.0; rollback artifacts of web, api ran and were not undone/,
    );
    expect(said).not.toMatch(/everything was switched forward again/);
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

    const again = await at130('fails-json');
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
  });

  it('a rollback killed after the first restore ran, then ferry recover: the same', async () => {
    // Journal writes: the header, web's run, web's switch; killed there, web's restore.sh has run.
    const root = await at130('killed');
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
