import { execFileSync, spawn } from 'node:child_process';
import { lstat, mkdir, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FERRY, ROOT, type RunResult } from '../helpers.js';
import { cloneAppliance, installOk, RECORDS, snapshot } from '../e2e/appliance.js';
import { atFirstRelease, faultProduct } from './product.js';

// Each path of the appliance's layout (README, The appliance) replaced in turn
// by what a careless hand, a bad restore or a failing disk leaves there, and
// every command an operator runs on it. Whatever the damage: no hang, never
// E_INTERNAL ("a bug in Ferry"), the exit code and error code of the README,
// the path named, a hint, and a refused or undone command leaves everything as
// it was, byte for byte.

const product = faultProduct();
let base: string;

beforeAll(async () => {
  // 1.1.0 over 1.0.0: a rollback has somewhere to go, and 1.2.0 is the next install.
  base = join(product.dir, 'at-1.1.0');
  await atFirstRelease(product, base);
  await installOk(product.bundles['1.1.0'] as string, base);
}, 120_000);

/** A file (not empty), a folder, a link to nowhere, a link to a folder outside the root, a FIFO, an empty file. */
type Damage = 'file' | 'folder' | 'dangling' | 'outside' | 'fifo' | 'empty';

const damages: Record<Damage, (path: string, outside: string) => Promise<unknown>> = {
  file: (path) => writeFile(path, 'not what Ferry keeps here\n'),
  folder: (path) => mkdir(path),
  dangling: (path) => symlink('nowhere', path),
  outside: async (path, outside) => {
    await mkdir(outside);
    await symlink(outside, path);
  },
  fifo: (path) => Promise.resolve(execFileSync('mkfifo', [path])),
  empty: (path) => writeFile(path, ''),
};

const commands = {
  status: ['status'],
  verify: ['status', '--verify'],
  plan: ['plan', '@1.2.0'],
  log: ['log'],
  install: ['install', '@1.2.0', '--yes'],
  rollback: ['rollback', '--yes'],
  recover: ['recover'],
} as const;
type Command = keyof typeof commands;
const READ_ONLY: readonly Command[] = ['status', 'verify', 'plan', 'log'];

/**
 * What each command gives: `ok` (exit 0), or "EXIT CODE" where CODE is the
 * error's stable code ("-" for none: a blocked plan, a --verify that lists
 * problems); a trailing "@" when the message names the damaged path itself.
 */
type Outcome = string;
const ok = 'ok';
const all = (outcome: Outcome): Record<Command, Outcome> => ({
  status: outcome,
  verify: outcome,
  plan: outcome,
  log: outcome,
  install: outcome,
  rollback: outcome,
  recover: outcome,
});

// The transaction log of the 1.1.0 install: found at run time.
const LOG = 'var/lib/ferry/logs/<1.1.0>';
const RESTORE = 'var/lib/ferry/artifacts/web/1.0.1/rollback/restore.sh';
const stateInvalid = all('2 E_STATE_INVALID @');
const lockRefused = {
  install: '2 E_STATE_INVALID @',
  rollback: '2 E_STATE_INVALID @',
  recover: '2 E_STATE_INVALID @',
};
const drifted = { ...all(ok), verify: '1 -', plan: '4 -', install: '4 -' };

const cases: Array<[string, Damage, Partial<Record<Command, Outcome>>]> = [
  ['etc/ferry/trust.json', 'folder', stateInvalid],
  ['etc/ferry/trust.json', 'fifo', stateInvalid],
  ['etc/ferry/trust.json', 'dangling', all('2 E_NOT_FOUND @')],
  ['etc/ferry/trust.json', 'empty', all('2 E_TRUST_INVALID @')],
  ['etc/ferry/appliance.yaml', 'fifo', stateInvalid],
  ['etc/ferry/appliance.yaml', 'outside', stateInvalid],
  ['etc/ferry/appliance.yaml', 'empty', stateInvalid],
  ['var/lib/ferry', 'file', stateInvalid],
  ['var/lib/ferry', 'dangling', stateInvalid],
  ['var/lib/ferry', 'outside', stateInvalid],
  ['var/lib/ferry/state.json', 'fifo', stateInvalid],
  ['var/lib/ferry/state.json', 'dangling', stateInvalid],
  ['var/lib/ferry/state.json', 'empty', stateInvalid],
  ['var/lib/ferry/history.jsonl', 'folder', stateInvalid],
  ['var/lib/ferry/history.jsonl', 'fifo', stateInvalid],
  ['var/lib/ferry/history.jsonl', 'dangling', stateInvalid],
  // Emptied under a state that a transaction wrote: the record of every install is gone.
  ['var/lib/ferry/history.jsonl', 'empty', stateInvalid],
  ['var/lib/ferry/journal', 'file', { ...all('1 E_JOURNAL_CORRUPT @'), plan: ok, log: ok }],
  ['var/lib/ferry/journal', 'fifo', { ...all('1 E_JOURNAL_CORRUPT @'), plan: ok, log: ok }],
  // A journal found through a link would be undone, then removed, where the link leads.
  ['var/lib/ferry/journal', 'dangling', { ...all('1 E_JOURNAL_CORRUPT @'), plan: ok, log: ok }],
  ['var/lib/ferry/journal', 'outside', { ...all('1 E_JOURNAL_CORRUPT @'), plan: ok, log: ok }],
  [
    'var/lib/ferry/logs',
    'file',
    {
      ...all(ok),
      log: '2 E_STATE_INVALID @',
      install: '2 E_STATE_INVALID @',
      rollback: '2 E_STATE_INVALID @',
    },
  ],
  [
    'var/lib/ferry/logs',
    'dangling',
    {
      ...all(ok),
      log: '2 E_STATE_INVALID @',
      install: '2 E_STATE_INVALID @',
      rollback: '2 E_STATE_INVALID @',
    },
  ],
  [
    'var/lib/ferry/logs',
    'outside',
    {
      ...all(ok),
      log: '2 E_STATE_INVALID @',
      install: '2 E_STATE_INVALID @',
      rollback: '2 E_STATE_INVALID @',
    },
  ],
  [LOG, 'folder', { ...all(ok), log: '2 E_STATE_INVALID @' }],
  [LOG, 'fifo', { ...all(ok), log: '2 E_STATE_INVALID @' }],
  [LOG, 'dangling', { ...all(ok), log: '2 E_NOT_FOUND @' }],
  [
    'var/lib/ferry/artifacts',
    'file',
    { ...all(ok), install: '2 E_STATE_INVALID @', rollback: '4 E_DRIFT' },
  ],
  [
    'var/lib/ferry/artifacts',
    'dangling',
    { ...all(ok), install: '2 E_STATE_INVALID @', rollback: '4 E_DRIFT' },
  ],
  [
    'var/lib/ferry/artifacts',
    'fifo',
    { ...all(ok), install: '2 E_STATE_INVALID @', rollback: '4 E_DRIFT' },
  ],
  [
    'var/lib/ferry/artifacts',
    'outside',
    { ...all(ok), install: '2 E_STATE_INVALID @', rollback: '4 E_DRIFT' },
  ],
  [RESTORE, 'folder', { ...all(ok), rollback: '4 E_DRIFT' }],
  [RESTORE, 'fifo', { ...all(ok), rollback: '4 E_DRIFT' }],
  [RESTORE, 'empty', { ...all(ok), rollback: '4 E_DRIFT' }],
  // Only read for who holds it, but what took its place is refused, not written over.
  ['var/lib/ferry/lock', 'folder', { ...all(ok), ...lockRefused }],
  ['var/lib/ferry/lock', 'fifo', { ...all(ok), ...lockRefused }],
  ['var/lib/ferry/lock', 'dangling', all(ok)],
  // Not "every installed file missing": what is in its place.
  ['opt/ferry', 'file', stateInvalid],
  ['opt/ferry', 'dangling', stateInvalid],
  ['opt/ferry', 'outside', { ...drifted, rollback: '2 E_NOT_FOUND' }],
  ['opt/ferry/web/1.0.1', 'file', drifted],
  ['opt/ferry/web/1.0.1', 'dangling', drifted],
  ['opt/ferry/web/1.0.1/index.html', 'folder', drifted],
  ['opt/ferry/web/1.0.1/index.html', 'fifo', drifted],
  ['opt/ferry/web/1.0.1/index.html', 'empty', drifted],
  ['opt/ferry/web/current', 'folder', { ...drifted, rollback: '4 E_DRIFT @' }],
  ['opt/ferry/web/current', 'file', { ...drifted, rollback: '4 E_DRIFT @' }],
  ['opt/ferry/web/current', 'fifo', { ...drifted, rollback: '4 E_DRIFT @' }],
  ['opt/ferry/web/current', 'dangling', drifted],
  ['opt/ferry/.staging', 'file', { ...all(ok), install: '2 E_STATE_INVALID @' }],
  ['opt/ferry/.staging', 'dangling', { ...all(ok), install: '2 E_STATE_INVALID @' }],
  ['opt/ferry/.staging', 'fifo', { ...all(ok), install: '2 E_STATE_INVALID @' }],
  ['opt/ferry/.staging', 'outside', { ...all(ok), install: '2 E_STATE_INVALID @' }],
];

/** bin/ferry, killed after `seconds`: a command waiting on a FIFO comes back as "hang". */
function ferryWithin(args: readonly string[], seconds = 10): Promise<RunResult | 'hang'> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FERRY, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: seconds * 1000,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve(signal ? 'hang' : { code: code ?? -1, stdout, stderr }),
    );
  });
}

/** What a path is, without reading it (a FIFO would block the reader). */
async function kind(path: string): Promise<string> {
  const stats = await lstat(path).catch(() => null);
  if (!stats) return 'nothing';
  if (stats.isSymbolicLink()) return `link ${await readlink(path)}`;
  return stats.isFIFO() ? 'fifo' : stats.isDirectory() ? 'dir' : `file ${stats.size}`;
}

/** The whole appliance but the damaged path, which is described by its kind, and the folder a link leads to. */
async function held(root: string, damaged: string, outside: string, ignored: readonly string[]) {
  return {
    appliance: await snapshot(root, [damaged, ...ignored]),
    damaged: await kind(join(root, damaged)),
    outside: await snapshot(outside, []).catch(() => null),
  };
}

describe.concurrent('a damaged appliance layout', () => {
  it.each(cases)(
    '%s replaced by: %s',
    async (layoutPath, damage, expected) => {
      const logs = await readdir(join(base, 'var/lib/ferry/logs'));
      const path = layoutPath.replace('<1.1.0>', (logs.sort().at(-1) as string).toString());
      const name = `${layoutPath}-${damage}`.replaceAll(/\W/g, '-');
      let copies = 0;
      const damaged = async (): Promise<{ root: string; outside: string }> => {
        const root = join(product.dir, `${name}-${copies++}`);
        const outside = `${root}-outside`;
        await cloneAppliance(base, root);
        await rm(join(root, path), { recursive: true, force: true });
        await damages[damage](join(root, path), outside);
        return { root, outside };
      };
      const gave: Record<string, string> = {};
      const wanted: Record<string, string> = {};
      // The read-only commands on one copy, which each must leave exactly as it was.
      const readOnly = await damaged();
      for (const command of Object.keys(commands) as Command[]) {
        const { root, outside } = READ_ONLY.includes(command) ? readOnly : await damaged();
        const args = commands[command].map((arg) =>
          arg === '@1.2.0' ? (product.bundles['1.2.0'] as string) : arg,
        );
        const before = await held(root, path, outside, []);
        const beforeRecords = await held(root, path, outside, RECORDS);
        const result = await ferryWithin([...args, '--root', root]);
        wanted[command] = expected[command] ?? ok;
        if (result === 'hang') {
          gave[command] = 'hang';
          continue;
        }
        const code = /ferry: (E_[A-Z_]+)/.exec(result.stderr)?.[1] ?? '-';
        // The damaged path itself, not only a file under it ("state.json is missing").
        const named =
          wanted[command]?.endsWith('@') &&
          result.stderr
            .split(join(root, path))
            .slice(1)
            .some((after) => !after.startsWith('/'));
        gave[command] = result.code === 0 ? ok : `${result.code} ${code}${named ? ' @' : ''}`;
        expect(result.stderr, `${command}: ${result.stderr}`).not.toContain('E_INTERNAL');
        if (code !== '-') expect(result.stderr, `${command}: ${result.stderr}`).toContain('hint:');
        // Read-only, or refused (2, 4): nothing at all written. Undone (1): but its records.
        if (READ_ONLY.includes(command) || result.code > 1)
          expect(await held(root, path, outside, []), command).toEqual(before);
        else if (result.code === 1)
          expect(await held(root, path, outside, RECORDS), command).toEqual(beforeRecords);
      }
      expect(gave).toEqual(wanted);
    },
    120_000,
  );
});
