import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cloneAppliance, init, initAppliance, install, snapshot } from './appliance.js';
import { EPOCH, FERRY, ferry, run, tempDir, workspace, type Workspace } from '../helpers.js';

// Promises of the README's "What Ferry promises" and "What Ferry refuses" that
// no other test tries the way a hostile operator would.

let dir: string;
let ws: Workspace;

beforeAll(async () => {
  dir = await tempDir();
  ws = await workspace(dir);
});

describe('ferry init refuses a root that has any of its files', () => {
  // A link whose target is missing (a data partition not mounted yet) is
  // still the appliance's file: init must not write a fresh one over it.
  for (const file of [
    'var/lib/ferry/state.json',
    'etc/ferry/appliance.yaml',
    'etc/ferry/trust.json',
  ])
    it(`even as a link to nothing: ${file}`, async () => {
      const root = join(dir, file.replaceAll('/', '_'));
      await mkdir(dirname(join(root, file)), { recursive: true });
      await symlink('/nonexistent/ferry-data', join(root, file));
      const result = await init(ws, root);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain('E_EXISTS');
      expect(result.stderr).toContain(file);
      expect((await lstat(join(root, file))).isSymbolicLink()).toBe(true);
      expect(await readlink(join(root, file))).toBe('/nonexistent/ferry-data');
    });
});

/** A two-component product (a changes in 1.1.0, b never does): its spec for a release. */
async function tinyProduct(root: string): Promise<(release: string) => Promise<string>> {
  for (const [path, text] of [
    ['a/1/f', 'one\n'],
    ['a/2/f', 'two\n'],
    ['b/1/g', 'bee\n'],
  ] as const) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  await writeFile(join(root, 'ok.sh'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  return async (release) => {
    const a = release === '1.0.0' ? '1' : '2';
    const spec = join(root, `release-${release}.yaml`);
    await writeFile(
      spec,
      [
        `product: acme-appliance`,
        `release: '${release}'`,
        `platform: { name: acme-os, range: '>=7.0.0' }`,
        `history: ./history`,
        `components:`,
        `  a: { version: '${a}.0.0', owner: t, payload: ./a/${a}, artifacts: { update: [./ok.sh] },`,
        `       changes: [{ id: A-${a}, kind: update, summary: a${a} }] }`,
        `  b: { version: '1.0.0', owner: t, payload: ./b/1, artifacts: { update: [./ok.sh] },`,
        `       changes: [{ id: B-1, kind: update, summary: b1 }] }`,
        '',
      ].join('\n'),
    );
    return spec;
  };
}

async function build(spec: string, out: string, ...extra: string[]): Promise<string> {
  return (await built(spec, out, { SOURCE_DATE_EPOCH: EPOCH }, ...extra)).bundle;
}

async function built(
  spec: string,
  out: string,
  env: Record<string, string>,
  ...extra: string[]
): Promise<{ bundle: string; sha256: string }> {
  const result = await ferry(['build', spec, '--out', out, '--key', ws.key, '--json', ...extra], {
    env,
  });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { bundle: string; sha256: string };
}

describe('reproducible builds', () => {
  // build.test.ts rebuilds a first release in its own format; the README also
  // promises another format, after later releases were recorded.
  it('a recorded update rebuilt in another format, without SOURCE_DATE_EPOCH, is the bundle that format gave then', async () => {
    const then = join(dir, 'repro-then');
    const spec = await tinyProduct(then);
    await build(await spec('1.0.0'), join(then, 'out'), '--first-release');
    const zipThen = await built(
      await spec('1.1.0'),
      join(then, 'out'),
      { SOURCE_DATE_EPOCH: EPOCH },
      '--format',
      'zip',
    );

    const later = join(dir, 'repro-later');
    const laterSpec = await tinyProduct(later);
    await build(await laterSpec('1.0.0'), join(later, 'out'), '--first-release');
    await build(await laterSpec('1.1.0'), join(later, 'out'));
    await build(await laterSpec('1.2.0'), join(later, 'out'));
    const zipLater = await built(
      join(later, 'release-1.1.0.yaml'),
      join(later, 'rebuilt'),
      {},
      '--format',
      'zip',
    );
    expect(zipLater.sha256).toBe(zipThen.sha256);
  });
});

describe('a partial install', () => {
  // The README promised the same bundle completes the release; it cannot
  // bring back a component it does not carry, and must say what can.
  it('that deleted a component the bundle keeps: that bundle names the install bundle, which completes the release', async () => {
    const product = join(dir, 'partial');
    const spec = await tinyProduct(product);
    const out = join(dir, 'partial-out');
    const first = await build(await spec('1.0.0'), out, '--first-release');
    const update = await build(await spec('1.1.0'), out);
    const root = join(dir, 'partial-root');
    await initAppliance(ws, root);
    expect((await install(first, root)).code).toBe(0);
    const deleted = await install(update, root, '--delete', 'b');
    expect(deleted.code, deleted.stderr).toBe(0);

    const again = await install(update, root);
    expect(again.code).toBe(4);
    expect(again.stdout).toContain('E_NO_PAYLOAD');
    expect(again.stdout).toContain('ferry build --kind install');

    const whole = await build(
      join(product, 'release-1.1.0.yaml'),
      join(dir, 'partial-install'),
      '--kind',
      'install',
    );
    const completed = await install(whole, root);
    expect(completed.code, completed.stderr).toBe(0);
    const state = JSON.parse(await readFile(join(root, 'var/lib/ferry/state.json'), 'utf8')) as {
      release: string;
      verified: boolean;
      highestRelease: string;
      components: Record<string, { version: string }>;
    };
    expect(state).toMatchObject({ release: '1.1.0', verified: true, highestRelease: '1.1.0' });
    expect(state.components.b?.version).toBe('1.0.0');
  });
});

describe('stable errors', () => {
  // A hint is the way out: `ferry COMMAND --help` made the operator guess
  // which command it meant, though the command was the one just typed.
  it('a missing option names the command to ask for help', async () => {
    const verify = await ferry(['verify', join(dir, 'some.tar')]);
    expect(verify.code).toBe(2);
    expect(verify.stderr).toContain('E_USAGE: --trust is required');
    expect(verify.stderr).toContain('hint: see `ferry verify --help`');
    const signNext = await ferry(['trust', 'sign-next']);
    expect(signNext.code).toBe(2);
    expect(signNext.stderr).toContain('hint: see `ferry trust sign-next --help`');
  });
});

describe('a FIFO in place of a journal file', () => {
  // damaged-state.test.ts tries state.json and history.jsonl; the README
  // promises the journal's files the same, from every command that reads them.
  // running.json (the artifact a killed ferry left running) is read only by
  // what recovers: status says the transaction is interrupted without it.
  it.each([
    ['transaction.json', ['status', 'install', 'rollback', 'recover']],
    ['steps.jsonl', ['status', 'install', 'rollback', 'recover']],
    ['running.json', ['install', 'rollback', 'recover']],
  ])(
    '%s: %j refuse it at once, nothing changed; the others never read it',
    async (name, refusing) => {
      const product = join(dir, `fifo-${name}`);
      const spec = await tinyProduct(product);
      const out = join(product, 'out');
      const first = await build(await spec('1.0.0'), out, '--first-release');
      const update = await build(await spec('1.1.0'), out);
      const base = join(product, 'base');
      await initAppliance(ws, base);
      expect((await install(first, base)).code).toBe(0);
      const root = join(product, 'root');
      await cloneAppliance(base, root);
      // A power cut in the update: a journal with a header and steps.
      const cut = await ferry(['install', update, '--root', root, '--yes'], {
        env: { FERRY_TEST_CRASH_AT: '3' },
      });
      expect(cut.code).toBe(-1);
      const file = join(root, 'var/lib/ferry/journal', name);
      // A power cut leaves no running.json: its artifact ended with it.
      await rm(file, { force: true });
      execFileSync('mkfifo', [file]);
      const others = ['var/lib/ferry/lock', `var/lib/ferry/journal/${name}`];
      const held = await snapshot(root, others);
      const commands = [
        ['status'],
        ['install', update, '--yes'],
        ['rollback', '--yes'],
        ['recover'],
        ['plan', update],
        ['log'],
      ];
      for (const command of commands) {
        // Reading a FIFO with no writer blocks for ever: a hang fails by the test's timeout.
        const result = await ferry([...command, '--root', root]);
        if (refusing.includes(command[0] as string)) {
          expect(result.code, `${command[0]}: ${result.stderr}`).toBe(1);
          expect(result.stderr).toContain(`E_JOURNAL_CORRUPT: ${file} is not a regular file`);
        } else expect(result.code, `${command[0]}: ${result.stderr}`).toBe(0);
      }
      expect(await snapshot(root, others)).toEqual(held);
      expect((await lstat(file)).isFIFO()).toBe(true);
    },
  );
});

describe('an install reaches the bundle’s target', () => {
  // Modes are signed with the payload; staging wrote them through the
  // process's umask, so a hardened root's 077 left a 0755 program 0700 in a
  // 0700 folder, which the service it was for could not run.
  it('with the signed modes, whatever the umask of the ferry that installs it', async () => {
    const product = join(dir, 'umask');
    const spec = await tinyProduct(product);
    await mkdir(join(product, 'a/1/bin'));
    await writeFile(join(product, 'a/1/bin/tool'), '#!/bin/sh\n', { mode: 0o755 });
    const bundle = await build(await spec('1.0.0'), join(product, 'out'), '--first-release');
    const root = join(product, 'root');
    await initAppliance(ws, root);
    const installed = await run(
      'sh',
      [
        '-c',
        'umask 077 && exec "$0" "$@"',
        process.execPath,
        FERRY,
        'install',
        bundle,
        '--root',
        root,
        '--yes',
      ],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
    );
    expect(installed.code, installed.stderr).toBe(0);
    const mode = async (path: string) =>
      ((await lstat(join(root, 'opt/ferry', path))).mode & 0o777).toString(8);
    expect(await mode('a')).toBe('755');
    expect(await mode('a/1.0.0')).toBe('755');
    expect(await mode('a/1.0.0/bin')).toBe('755');
    expect(await mode('a/1.0.0/bin/tool')).toBe('755');
    expect(await mode('a/1.0.0/f')).toBe('644');
    expect(await mode('b/1.0.0/g')).toBe('644');
  });
});

describe('--skip of everything a bundle would change', () => {
  // Nothing is done, and nothing may claim the appliance reached the target:
  // it said "already at 1.1.0" of an appliance still at 1.0.0.
  it('says the appliance is still where it was, not at the target', async () => {
    const product = join(dir, 'skip-all');
    const spec = await tinyProduct(product);
    const out = join(product, 'out');
    const first = await build(await spec('1.0.0'), out, '--first-release');
    const update = await build(await spec('1.1.0'), out);
    const root = join(product, 'root');
    await initAppliance(ws, root);
    expect((await install(first, root)).code).toBe(0);
    const before = await snapshot(root);
    const skipped = await install(update, root, '--skip', 'a');
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stdout).toContain('UNCHANGED: acme-appliance is still at 1.0.0; nothing to do');
    expect(skipped.stdout).not.toContain('already at 1.1.0');
    expect(await snapshot(root)).toEqual(before);
  });
});
