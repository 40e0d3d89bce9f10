import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FERRY, ferry, json } from '../helpers.js';
import { install, installOk, markers, status } from '../e2e/appliance.js';
import { atFirstRelease, faultProduct } from './product.js';

// One installer at a time, with the kernel as referee: a lock held by a live
// ferry refuses every other one, and one that died (SIGKILL, a power cut)
// holds nothing.

const SLOW = 'if [ -e "$FERRY_ROOT/slow" ]; then sleep 6; fi';
const product = faultProduct({ 'scripts/db/migrate.sh': SLOW });

async function appliance(name: string): Promise<string> {
  const root = join(product.dir, name);
  await atFirstRelease(product, root);
  await writeFile(join(root, 'slow'), '');
  return root;
}

/** Whether this machine lets a process start in a network namespace of its own (root, or user namespaces). */
const canUnshare = spawnSync('unshare', ['-n', 'true']).status === 0;

describe('the lock', () => {
  it('five installs started at once over a stale lock file: exactly one runs', async () => {
    const root = await appliance('five');
    await writeFile(
      join(root, 'var/lib/ferry/lock'),
      JSON.stringify({ pid: 999_999_99, command: 'install', since: 'yesterday' }),
    );
    const runs = await Promise.all(
      Array.from({ length: 5 }, () => install(product.bundles['1.3.0'] as string, root)),
    );
    const codes = runs.map((run) => run.code).sort();
    expect(codes, runs.map((run) => run.stderr).join('\n')).toEqual([0, 5, 5, 5, 5]);
    for (const run of runs.filter((r) => r.code === 5)) expect(run.stderr).toContain('E_LOCKED');
    const updates = (await markers(root)).filter((line) => line.startsWith('update db 3.0.0'));
    expect(updates).toHaveLength(1);
    expect((await status(root)).release).toBe('1.3.0');
  });

  it('a FIFO in place of the lock file: install, rollback and recover refuse it at once, not wait on it for ever', async () => {
    const root = await appliance('fifo-lock');
    const lock = join(root, 'var/lib/ferry/lock');
    execFileSync('mkfifo', [lock]);
    for (const command of [
      ['install', product.bundles['1.3.0'] as string, '--yes'],
      ['rollback', '--yes'],
      ['recover'],
    ]) {
      // SIGTERM does not end a recover: KILL, so that a hang fails here, not at the test's timeout.
      const result = spawnSync(
        'timeout',
        ['-s', 'KILL', '20', process.execPath, FERRY, ...command, '--root', root],
        {
          encoding: 'utf8',
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        },
      );
      expect(result.status, `${command[0]}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toContain(`E_STATE_INVALID: ${lock} is not a regular file (a FIFO)`);
    }
    expect((await status(root)).release).toBe('1.0.0');
  });

  it('a live ferry refuses a second (exit 5, naming its pid); killed, it holds nothing and its transaction is undone', async () => {
    const root = await appliance('killed');
    const holder = spawn(
      process.execPath,
      [FERRY, 'install', product.bundles['1.3.0'] as string, '--root', root, '--yes'],
      {
        stdio: 'ignore',
      },
    );
    // Wait until it is inside its update pass.
    for (
      let i = 0;
      i < 200 && !(await markers(root)).some((l) => l.startsWith('update db 3.0.0'));
      i++
    )
      await new Promise((resolve) => setTimeout(resolve, 100));
    const busy = await ferry(['recover', '--root', root]);
    expect(busy.code).toBe(5);
    expect(busy.stderr).toContain('E_LOCKED');
    expect(busy.stderr).toContain(`pid ${holder.pid}`);
    const gone = new Promise((resolve) => holder.on('exit', resolve));
    holder.kill('SIGKILL');
    await gone;
    const recovered = await ferry(['recover', '--root', root, '--json']);
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(json<{ recovered: boolean; release: string }>(recovered)).toEqual({
      schemaVersion: 1,
      recovered: true,
      release: '1.0.0',
    });
    expect(recovered.stderr).toContain('stale lock');
    await installOk(product.bundles['1.3.0'] as string, root);
  });

  it.skipIf(!canUnshare)(
    'a ferry in another network namespace, where the kernel lock is not seen, is refused too (exit 5), and the running install goes on',
    async () => {
      const root = await appliance('netns');
      const holder = spawn(
        process.execPath,
        [FERRY, 'install', product.bundles['1.3.0'] as string, '--root', root, '--yes'],
        { stdio: 'ignore' },
      );
      const finished = new Promise<number | null>((resolve) => holder.on('exit', resolve));
      for (
        let i = 0;
        i < 200 && !(await markers(root)).some((l) => l.startsWith('update db 3.0.0'));
        i++
      )
        await new Promise((resolve) => setTimeout(resolve, 100));
      // As from a unit with PrivateNetwork=yes: its abstract sockets are its own.
      const other = spawnSync(
        'unshare',
        ['-n', process.execPath, FERRY, 'recover', '--root', root],
        {
          encoding: 'utf8',
        },
      );
      expect(other.status, other.stderr).toBe(5);
      expect(other.stderr).toContain('E_LOCKED');
      expect(other.stderr).toContain(`pid ${holder.pid}`);
      expect(await finished).toBe(0);
      expect((await status(root)).release).toBe('1.3.0');
    },
    60_000,
  );
});
