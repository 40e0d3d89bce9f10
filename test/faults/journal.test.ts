import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ferry, json } from '../helpers.js';
import { cloneAppliance, installOk, RECORDS, snapshot, status } from '../e2e/appliance.js';
import { atFirstRelease, faultProduct } from './product.js';

// A journal left by a crash in the middle of an update (SIGKILL after its
// eighth write), then moved, damaged or cut: recovery acts on the root it is
// given, and never undoes from a guess.

const product = faultProduct();
let base: string;
let before: Record<string, string>;

beforeAll(async () => {
  base = join(product.dir, 'at-1.0.0');
  await atFirstRelease(product, base);
  before = await snapshot(base);
});

/** An appliance at 1.0.0 whose install of 1.3.0 was killed in its update pass. */
async function interrupted(name: string): Promise<string> {
  const root = join(product.dir, name);
  await cloneAppliance(base, root);
  const run = await ferry(
    ['install', product.bundles['1.3.0'] as string, '--root', root, '--yes'],
    {
      env: { FERRY_TEST_CRASH_AT: '8' },
    },
  );
  expect(run.code).toBe(-1);
  return root;
}

const steps = (root: string): string => join(root, 'var/lib/ferry/journal/steps.jsonl');

async function recoverTo(root: string, release: string): Promise<void> {
  const recovered = await ferry(['recover', '--root', root, '--json']);
  expect(recovered.code, recovered.stderr).toBe(0);
  expect(json<{ recovered: boolean; release: string }>(recovered)).toEqual({
    schemaVersion: 1,
    recovered: true,
    release,
  });
}

describe('the journal', () => {
  it('names paths relative to the root: a copy recovers itself and leaves the original alone', async () => {
    const original = await interrupted('original');
    const journal = await readFile(steps(original), 'utf8');
    expect(journal.split('\n').length).toBeGreaterThan(3);
    expect(journal).not.toContain(original);
    const copy = join(product.dir, 'rescue', 'mnt');
    await mkdir(join(product.dir, 'rescue'));
    await cloneAppliance(original, copy);
    const untouched = await snapshot(original);
    await recoverTo(copy, '1.0.0');
    expect(await snapshot(copy, RECORDS)).toEqual(before);
    expect(await snapshot(original)).toEqual(untouched);
    await recoverTo(original, '1.0.0');
    expect(await snapshot(original, RECORDS)).toEqual(before);
    await installOk(product.bundles['1.3.0'] as string, copy);
  });

  it("a FIFO in place of the interrupted transaction's log: the recovery writes nothing to it and does not wait on it", async () => {
    const root = await interrupted('fifo-log');
    const logs = join(root, 'var/lib/ferry/logs');
    const ours = new Set(await readdir(join(base, 'var/lib/ferry/logs')));
    const [log] = (await readdir(logs)).filter((name) => !ours.has(name));
    expect(log).toMatch(/\.jsonl$/);
    await rm(join(logs, log as string));
    execFileSync('mkfifo', [join(logs, log as string)]);
    // An open for writing waits for a reader for ever, signals or not: the recovery must not.
    const recovered = await ferry(['recover', '--root', root, '--json']);
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(json<{ release: string }>(recovered).release).toBe('1.0.0');
    expect((await lstat(join(logs, log as string))).isFIFO()).toBe(true);
  }, 60_000);

  it('a damaged record before others: E_JOURNAL_CORRUPT naming it, nothing changed; repaired, it recovers', async () => {
    const root = await interrupted('damaged');
    const good = await readFile(steps(root), 'utf8');
    const lines = good.split('\n');
    lines[1] = (lines[1] as string).replace('"op"', '"oq"');
    await writeFile(steps(root), lines.join('\n'));
    // The lock file is only information: it goes with the ferry that wrote it.
    const held = await snapshot(root, ['var/lib/ferry/lock']);
    const refused = await ferry(['recover', '--root', root]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('E_JOURNAL_CORRUPT');
    expect(refused.stderr).toContain(`${steps(root)}: record 2`);
    expect(await snapshot(root, ['var/lib/ferry/lock'])).toEqual(held);
    const install = await ferry([
      'install',
      product.bundles['1.3.0'] as string,
      '--root',
      root,
      '--yes',
    ]);
    expect(install.stderr).toContain('E_JOURNAL_CORRUPT');
    expect(await snapshot(root, ['var/lib/ferry/lock'])).toEqual(held);
    await writeFile(steps(root), good);
    await recoverTo(root, '1.0.0');
    expect(await snapshot(root, RECORDS)).toEqual(before);
  });

  it('a record resealed to name a path outside the root: E_JOURNAL_CORRUPT, nothing moved in or out', async () => {
    const root = await interrupted('outside');
    const victim = join(product.dir, 'outside-the-root');
    await mkdir(victim);
    await writeFile(join(victim, 'file'), 'precious');
    // A checksum proves no author: anyone who can edit the journal can reseal a record.
    const lines = (await readFile(steps(root), 'utf8')).trimEnd().split('\n');
    const at = lines.findIndex((line) => line.includes('"op":"move"'));
    const text = (lines[at] as string)
      .slice(17)
      .replace(/"to":"[^"]*"/, `"to":"${relative(root, victim)}"`);
    lines[at] = `${createHash('sha256').update(text).digest('hex').slice(0, 16)} ${text}`;
    await writeFile(steps(root), `${lines.join('\n')}\n`);
    const held = await snapshot(root, ['var/lib/ferry/lock']);
    for (const command of [['recover'], ['rollback', '--yes'], ['status']]) {
      const refused = await ferry([...command, '--root', root]);
      expect(refused.code, refused.stderr).toBe(1);
      expect(refused.stderr).toContain(`E_JOURNAL_CORRUPT: ${steps(root)}: record ${at + 1}`);
    }
    expect(await snapshot(root, ['var/lib/ferry/lock'])).toEqual(held);
    expect(await readFile(join(victim, 'file'), 'utf8')).toBe('precious');
  });

  it('a header resealed to give rollback artifacts PATH: E_JOURNAL_CORRUPT, nothing run from outside the root', async () => {
    const root = await interrupted('path');
    // A PATH (or LD_PRELOAD) of the editor's choosing runs their programs as the artifacts' commands.
    const bin = join(product.dir, 'planted-bin');
    const ran = join(product.dir, 'planted-ran');
    await mkdir(bin);
    for (const name of ['dirname', 'mkdir', 'echo'])
      await writeFile(join(bin, name), `#!/bin/sh\ntouch ${ran}\n`, { mode: 0o755 });
    const header = join(root, 'var/lib/ferry/journal/transaction.json');
    const sealed = JSON.parse((await readFile(header, 'utf8')).slice(17)) as {
      undo: Record<string, { env: Record<string, string> }>;
    };
    const [component, undo] = Object.entries(sealed.undo)[0] ?? [];
    expect(undo).toBeDefined();
    if (undo) undo.env.PATH = `${bin}:/usr/bin:/bin`;
    const text = JSON.stringify(sealed);
    await writeFile(
      header,
      `${createHash('sha256').update(text).digest('hex').slice(0, 16)} ${text}\n`,
    );
    const held = await snapshot(root, ['var/lib/ferry/lock']);
    for (const command of [['recover'], ['rollback', '--yes'], ['status']]) {
      const refused = await ferry([...command, '--root', root]);
      expect(refused.code, refused.stderr).toBe(1);
      expect(refused.stderr).toContain(`E_JOURNAL_CORRUPT: ${header}: record 1 sets "PATH"`);
      expect(refused.stderr).toContain(`"${component ?? ''}"`);
      expect(refused.stderr).toContain('hint:');
    }
    expect(await snapshot(root, ['var/lib/ferry/lock'])).toEqual(held);
    expect(await readdir(product.dir)).not.toContain('planted-ran');
  });

  it('a last record cut short (the crash hit its write): it was never started, the rest is undone', async () => {
    const root = await interrupted('torn');
    await writeFile(steps(root), `${await readFile(steps(root), 'utf8')}3f2a9c {"op":"mo`);
    await recoverTo(root, '1.0.0');
    expect(await snapshot(root, RECORDS)).toEqual(before);
    await installOk(product.bundles['1.3.0'] as string, root);
    expect((await status(root)).release).toBe('1.3.0');
  });

  it('a file in place of the journal folder: recover, status and install name it E_JOURNAL_CORRUPT, nothing changed', async () => {
    const root = join(product.dir, 'journal-file');
    await cloneAppliance(base, root);
    const journal = join(root, 'var/lib/ferry/journal');
    await writeFile(journal, 'not a journal\n');
    const held = await snapshot(root);
    for (const command of [
      ['recover'],
      ['status'],
      ['install', product.bundles['1.3.0'] as string, '--yes'],
    ]) {
      const refused = await ferry([...command, '--root', root, '--json']);
      expect(refused.code, `${command[0]}: ${refused.stderr}`).toBe(1);
      const { error } = json<{ error: { code: string; file: string; hint?: string } }>(refused);
      expect(error).toMatchObject({ code: 'E_JOURNAL_CORRUPT', file: journal });
      expect(error.hint).toContain('ferry recover');
    }
    expect(await snapshot(root)).toEqual(held);
    expect(await readFile(journal, 'utf8')).toBe('not a journal\n');
  });

  it('a temp file of state.json that cannot be removed: E_IO naming it, the journal kept for a later recover', async () => {
    const root = await interrupted('leftover-kept');
    // A folder by a leftover's name stands in for a file the filesystem refuses to remove.
    const leftover = join(root, 'var/lib/ferry/.state.json.0123456789ab.tmp');
    await mkdir(join(leftover, 'inside'), { recursive: true });
    const refused = await ferry(['recover', '--root', root, '--json']);
    expect(refused.code, refused.stderr).toBe(1);
    const { error } = json<{ error: { code: string; file: string; hint?: string } }>(refused);
    expect(error).toMatchObject({ code: 'E_IO', file: leftover });
    expect(error.hint).toBeTruthy();
    expect(await readdir(join(root, 'var/lib/ferry'))).toContain('journal');
    await rm(leftover, { recursive: true });
    await recoverTo(root, '1.0.0');
    expect(await snapshot(root, RECORDS)).toEqual(before);
  });

  it('an empty journal folder (a crash before its header) is removed without a record', async () => {
    const root = join(product.dir, 'empty');
    await cloneAppliance(base, root);
    await mkdir(join(root, 'var/lib/ferry/journal'));
    const history = await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8');
    const recovered = await ferry(['recover', '--root', root, '--json']);
    expect(json<{ recovered: boolean }>(recovered).recovered).toBe(false);
    expect(await readdir(join(root, 'var/lib/ferry'))).not.toContain('journal');
    expect(await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8')).toBe(history);
  });
  it('a recover cut after its history line, before it removed the journal: the next one adds no second line', async () => {
    const root = await interrupted('recover-cut');
    const journal = join(root, 'var/lib/ferry/journal');
    const kept = join(product.dir, 'recover-cut-journal');
    await cloneAppliance(journal, kept);
    await recoverTo(root, '1.0.0');
    // As the first recover left it had it been cut there: its line written, the journal still in place.
    await cloneAppliance(kept, journal);
    await recoverTo(root, '1.0.0');
    expect(await snapshot(root, RECORDS)).toEqual(before);
    const history = await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8');
    const recovers = history
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { operation: string; outcome: string })
      .filter((line) => line.operation === 'recover');
    expect(recovers).toHaveLength(1);
    expect(recovers[0]?.outcome).toBe('rolled-back');
  });
});
