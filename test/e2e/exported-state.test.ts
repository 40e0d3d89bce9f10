import { execFileSync } from 'node:child_process';
import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FERRY, ferry, json, run } from '../helpers.js';
import { cloneAppliance, snapshot } from './appliance.js';
import { atFirstRelease, faultProduct } from '../faults/product.js';
import type { ApplianceFactsExport as Facts } from '../../manifest-schema/index.js';

type Component = Facts['components'][string];

// `ferry status --export` on the appliance, `ferry plan --state` elsewhere: the
// same plan, and an export that Ferry did not write as it is is refused, naming
// the file and the field, never planned from and never a crash.

const product = faultProduct();
let base: string;
let exported: Facts;

beforeAll(async () => {
  base = join(product.dir, 'at-1.0.0');
  await atFirstRelease(product, base);
  const file = join(product.dir, 'base-facts.json');
  expect((await ferry(['status', '--root', base, '--export', file])).code).toBe(0);
  exported = JSON.parse(await readFile(file, 'utf8')) as Facts;
});

async function copy(name: string): Promise<string> {
  const root = join(product.dir, name);
  await cloneAppliance(base, root);
  return root;
}

describe('a plan from an export equals the plan on the appliance', () => {
  // What each makes the plan without controls say, and the verdicts its plans reach under them.
  const situations: Array<[string, (root: string) => Promise<void>, string, string[]]> = [
    [
      'a file changed by hand',
      (root) => writeFile(join(root, 'opt/ferry/web/current/index.html'), '<p>patched</p>\n'),
      'E_DRIFT',
      ['blocked', 'ok'],
    ],
    [
      'a component whose files are gone',
      (root) => rm(join(root, 'opt/ferry/api'), { recursive: true }),
      'E_DRIFT',
      ['blocked', 'ok'],
    ],
    [
      'another platform',
      async (root) => {
        const config = join(root, 'etc/ferry/appliance.yaml');
        await writeFile(config, (await readFile(config, 'utf8')).replace('7.2.1', '7.1.0'));
      },
      'E_PLATFORM',
      ['blocked'],
    ],
  ];
  const controls = [
    [],
    ['--force', 'web'],
    ['--skip', 'api', '--delete', 'legacy-agent', '--partial'],
    ['--no-drift-check'],
  ];
  it.each(situations)('%s, under each control', async (name, change, code, reached) => {
    const root = await copy(name.replace(/\W+/g, '-'));
    await change(root);
    const facts = `${root}.facts.json`;
    expect((await ferry(['status', '--root', root, '--export', facts])).code).toBe(0);
    const before = await snapshot(root, []);
    const verdicts = new Set<string>();
    for (const control of controls) {
      for (const release of ['1.1.0', '1.3.0']) {
        const args = ['plan', product.bundles[release] as string, ...control, '--json'];
        const onSite = await ferry([...args, '--root', root]);
        const elsewhere = await ferry([...args, '--state', facts]);
        const what = `${control.join(' ')} ${release}`;
        expect(elsewhere.code, `${what}: ${elsewhere.stderr}`).toBe(onSite.code);
        expect(json(elsewhere), what).toEqual(json(onSite));
        if (control.length === 0) expect(onSite.stdout, what).toContain(`"code": "${code}"`);
        verdicts.add(json<{ verdict: string }>(onSite).verdict);
      }
    }
    expect([...verdicts].sort()).toEqual(reached);
    expect(await snapshot(root, [])).toEqual(before);
  });
});

describe('an export Ferry did not write as it is', () => {
  // Edited as a hand would, whatever the types say.
  const edited = (change: (facts: Facts, db: Component) => void) => () => {
    const facts = structuredClone(exported);
    change(facts, facts.components.db as Component);
    return JSON.stringify(facts, null, 2);
  };
  const cases: Array<[string, string, () => string, string?]> = [
    ['a field removed', '/components', edited((f) => void delete (f as Partial<Facts>).components)],
    ['a wrong type', '/verified', edited((f) => void Object.assign(f, { verified: 'yes' }))],
    [
      'a component name with a path separator',
      '/components/../evil',
      edited((f, db) => void (f.components['../evil'] = db)),
    ],
    [
      'a component name with a control character',
      '/components/db\\u001b[31m',
      edited((f, db) => void (f.components['db\u001b[31m'] = db)),
    ],
    [
      'a changed file outside its component',
      '/components/db/changedFiles/0/path',
      edited(
        (_, db) => void (db.changedFiles = [{ path: '../../etc/passwd', problem: 'changed' }]),
      ),
    ],
    [
      'an absolute changed file',
      '/components/db/changedFiles/0/path',
      edited((_, db) => void (db.changedFiles = [{ path: '/etc/passwd', problem: 'changed' }])),
    ],
    // semver throws on these where the planner compares them: E_INTERNAL before.
    [
      'a highest release that is not a version',
      '/highestRelease',
      edited((f) => void (f.highestRelease = 'zzzzz')),
    ],
    [
      'a component version that is not a version',
      '/components/db/version',
      edited((_, db) => void (db.version = 'aaaaa')),
    ],
    [
      'a platform version that is not a version',
      '/platform/version',
      edited((f) => void (f.platform.version = '07.2.1')),
    ],
    [
      'a requires that is not a range',
      '/components/api/requires/db',
      edited((f) => void Object.assign(f.components.api ?? {}, { requires: { db: 'bogus!' } })),
    ],
    [
      'a newer Ferry’s export',
      '/formatVersion',
      edited((f) => void Object.assign(f, { formatVersion: 2, comesLater: true })),
      'hint: a newer Ferry exported it',
    ],
  ];
  it.each(cases)(
    '%s is E_STATE_INVALID naming the file and %s',
    async (name, field, text, says) => {
      const file = join(product.dir, `${name.replace(/\W+/g, '-')}.json`);
      await writeFile(file, text());
      for (const control of [[], ['--force', 'db', '--no-drift-check']]) {
        const refused = await ferry([
          'plan',
          product.bundles['1.1.0'] as string,
          '--state',
          file,
          ...control,
        ]);
        expect(refused.code, refused.stderr).toBe(2);
        expect(refused.stderr).toContain(`E_STATE_INVALID: ${file}`);
        expect(refused.stderr).toContain(field);
        expect(refused.stderr).toMatch(/\n {2}hint: /);
        if (says) expect(refused.stderr).toContain(says);
        expect(refused.stdout).toBe('');
      }
    },
  );

  it('one cut short, or empty, is E_STATE_INVALID saying it is not JSON, with a hint to export it again', async () => {
    const text = JSON.stringify(exported, null, 2);
    for (const [name, cut] of [
      ['cut', text.slice(0, text.length / 2)],
      ['empty', ''],
    ]) {
      const file = join(product.dir, `${name}.json`);
      await writeFile(file, cut as string);
      const refused = await ferry(['plan', product.bundles['1.1.0'] as string, '--state', file]);
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toContain(`E_STATE_INVALID: ${file} is not JSON`);
      expect(refused.stderr).toContain('ferry status --export');
    }
  });

  it('a FIFO is refused at once, not waited on', async () => {
    const fifo = join(product.dir, 'facts.fifo');
    execFileSync('mkfifo', [fifo]);
    const refused = await run(
      'timeout',
      ['20', process.execPath, FERRY, 'plan', product.bundles['1.1.0'] as string, '--state', fifo],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
    );
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toContain(`E_STATE_INVALID: ${fifo} is not a regular file (a FIFO)`);
  });

  it('a 1 GiB file is refused by its size before a byte is read: memory stays flat', async () => {
    const file = join(product.dir, 'huge.json');
    await writeFile(file, '');
    await truncate(file, 1024 ** 3);
    const timed = await run(
      '/usr/bin/time',
      [
        '-f',
        'maxrss %M',
        process.execPath,
        FERRY,
        'plan',
        product.bundles['1.1.0'] as string,
        '--state',
        file,
      ],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
    );
    expect(timed.code, timed.stderr).toBe(2);
    expect(timed.stderr).toContain(`E_STATE_INVALID: ${file} is 1073741824 bytes`);
    expect(Number(/maxrss (\d+)/.exec(timed.stderr)?.[1]) / 1024).toBeLessThan(150);
  });

  it('a large genuine export (100,000 changed files, 13 MB) is planned from in well under a second’s parse', async () => {
    const facts = structuredClone(exported);
    (facts.components.db as Component).changedFiles = Array.from({ length: 100_000 }, (_, i) => ({
      path: `data/some/folder/file-${i}.bin`,
      problem: 'content differs from what was installed',
    }));
    const file = join(product.dir, 'many-changed.json');
    await writeFile(file, JSON.stringify(facts, null, 2));
    const timed = await run(
      '/usr/bin/time',
      [
        '-f',
        'maxrss %M',
        process.execPath,
        FERRY,
        'plan',
        product.bundles['1.1.0'] as string,
        '--state',
        file,
        '--json',
      ],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
    );
    expect(timed.code, timed.stderr).toBe(4);
    expect(timed.stdout).toContain('(and 99999 more)');
    // The YAML parser took 800 MB (and 16 s) for it.
    expect(Number(/maxrss (\d+)/.exec(timed.stderr)?.[1]) / 1024).toBeLessThan(400);
  });
});

describe('ferry status --export', () => {
  it('refuses to write over the appliance’s own files, or a device or FIFO: nothing changed', async () => {
    const root = await copy('export-targets');
    const fifo = join(product.dir, 'export.fifo');
    execFileSync('mkfifo', [fifo]);
    const before = await snapshot(root, []);
    for (const target of [
      join(root, 'var/lib/ferry/state.json'),
      join(root, 'etc/ferry/facts.json'),
      join(root, 'opt/ferry/web/current/facts.json'),
      fifo,
      '/dev/null',
    ]) {
      const refused = await ferry(['status', '--root', root, '--export', target]);
      expect(refused.code, `${target}: ${refused.stderr}`).toBe(2);
      expect(refused.stderr).toContain(`E_USAGE: `);
      expect(refused.stderr).toContain(target);
      expect(refused.stderr).toMatch(/\n {2}hint: /);
    }
    expect(await snapshot(root, [])).toEqual(before);
    expect(execFileSync('stat', ['-c', '%F', fifo, '/dev/null'], { encoding: 'utf8' })).toBe(
      'fifo\ncharacter special file\n',
    );
  });
});
