import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bigBundle, FERRY, ferry, run, tempDir, workspace } from '../helpers.js';
import { skipReason, tmpfs } from './filesystems.js';

// A pull onto a stick that cannot hold the bundle: too little room is said
// before a byte is fetched, and a file too large for the filesystem (FAT32
// holds files under 4 GiB) is named as such, with the way out, not as a
// permissions problem. Either way nothing is left on the stick.

const MiB = 1024 * 1024;
const reason = skipReason();

describe('a pull onto a stick that cannot hold the bundle', () => {
  let dir: string;
  let repo: string;

  beforeAll(async () => {
    dir = await tempDir('ferry-pull-room-');
    const ws = await workspace(dir);
    const { bundle } = await bigBundle(ws, dir, 'big', '1.0.0', randomBytes(6 * MiB));
    repo = join(dir, 'repo');
    const published = await ferry(
      ['publish', bundle, '--repo', repo, '--trust', ws.trust, '--key', ws.key, '--channel', 'dev'],
      { env: { FERRY_ACTOR: 'ci' } },
    );
    if (published.code !== 0) throw new Error(published.stderr);
  }, 120_000);

  const pullInto = (out: string) => ['pull', '--repo', repo, '--channel', 'dev', '--out', out];

  it.skipIf(reason !== null)(
    `says at once that the filesystem has too little room (${reason ?? 'tmpfs'})`,
    async () => {
      const stick = join(dir, 'stick');
      await tmpfs(stick, 4);
      const pulled = await ferry(pullInto(join(stick, 'bundles')));
      expect(pulled.code, pulled.stderr).toBe(1);
      expect(pulled.stderr).toMatch(
        /^ferry: E_NO_SPACE: \S+ needs \d+ MiB free on the filesystem mounted at \S+stick, which has [0-4] MiB/,
      );
      expect(pulled.stderr).toMatch(/hint: \S+stick: free space there, or pull to a larger disk/);
      // Not even the folder it was asked to write into.
      expect(await readdir(stick)).toEqual([]);
    },
  );

  it('names a file too large for the filesystem as such, and leaves nothing', async () => {
    const out = join(dir, 'limited');
    // RLIMIT_FSIZE makes writes past 2 MiB fail with EFBIG, as FAT32 does past 4 GiB − 1.
    const pulled = await run(
      'sh',
      ['-c', 'ulimit -f 2048 && exec "$0" "$@"', process.execPath, FERRY, ...pullInto(out)],
      {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          FERRY_STATE_DIR: join(dir, 'state'),
        },
      },
    );
    expect(pulled.code, pulled.stderr).toBe(1);
    expect(pulled.stderr).toMatch(
      /^ferry: E_NO_SPACE: could not write (to )?\S+: the filesystem holds no file this large \(EFBIG/,
    );
    expect(pulled.stderr).toContain('FAT32 (most USB sticks) holds files under 4 GiB');
    expect(await readdir(out).catch(() => 'absent')).toBe('absent');
  });
});
