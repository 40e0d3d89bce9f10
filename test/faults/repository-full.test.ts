import { execFileSync } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildAll, ferry, tempDir, workspace, type Workspace } from '../helpers.js';
import { skipReason, tmpfs } from './filesystems.js';

// A directory repository on a disk that fills up: wherever the publish runs out of
// room (the bundle's blob, the lock, the event, the version, the channel), it stops
// with E_NO_SPACE naming what it could not write, never E_INTERNAL with a stack,
// and leaves no lock and no half-written file behind; once there is room, the
// same publish runs again and the chain verifies.

const reason = skipReason();

describe.skipIf(reason !== null)(
  `a directory repository on a full disk (${reason ?? 'tmpfs'})`,
  () => {
    let ws: Workspace;
    let bundles: Record<string, string>;
    let disk: string;

    beforeAll(async () => {
      const dir = await tempDir('ferry-repo-full-');
      ws = await workspace(dir);
      bundles = await buildAll(ws, join(dir, 'out'), 'tar', ['1.0.0', '1.1.0', '1.2.0']);
      disk = join(dir, 'disk');
      await tmpfs(disk, 4);
    }, 300_000);

    const publish = (bundle: string, ...extra: string[]) =>
      ferry(
        [
          'publish',
          bundle,
          '--repo',
          join(disk, 'repo'),
          '--channel',
          'dev',
          '--key',
          ws.key,
          ...extra,
        ],
        {
          env: { FERRY_ACTOR: 'ci' },
        },
      );

    /** Every file of the repository whose name says it is half-made (temp, part) or the lock. */
    async function leftovers(): Promise<string[]> {
      const names = await readdir(join(disk, 'repo'), { recursive: true });
      return names.filter((name) => /(^|\/)\.|\.tmp$|\.part$|(^|\/)lock(\/|$)/.test(name));
    }

    it('stops with E_NO_SPACE wherever the disk fills, leaves nothing behind, and runs again', async () => {
      const seen = new Set<string>();
      for (let leave = 0; leave <= 160; leave += 10) {
        await rm(join(disk, 'repo'), { recursive: true, force: true });
        const first = await publish(bundles['1.1.0'] as string, '--trust', ws.trust);
        expect(first.code, first.stderr).toBe(0);
        const free = Number(
          execFileSync('df', ['-k', '--output=avail', disk], { encoding: 'utf8' }).split('\n')[1],
        );
        if (free > leave)
          execFileSync('fallocate', ['-l', `${free - leave}k`, join(disk, 'filler')]);
        const full = await publish(bundles['1.2.0'] as string);
        await rm(join(disk, 'filler'), { force: true });
        expect(full.stderr, `${leave} KiB left`).not.toContain('E_INTERNAL');
        if (full.code !== 0) {
          expect(full.code, full.stderr).toBe(1);
          expect(full.stderr).toMatch(/^ferry: E_NO_SPACE: could not write/);
          seen.add(/could not write (to )?(\S+):/.exec(full.stderr)?.[2] ?? '');
        }
        expect(await leftovers(), `${leave} KiB left`).toEqual([]);
        const again = await publish(bundles['1.2.0'] as string);
        expect(again.code, again.stderr).toBe(0);
        const verified = await ferry(['history', '--repo', join(disk, 'repo'), '--verify']);
        expect(verified.code, verified.stderr).toBe(0);
      }
      // The sweep did hit the disk at more than one step of the publish.
      expect(seen.size, [...seen].join('\n')).toBeGreaterThan(1);
    }, 300_000);
  },
);
