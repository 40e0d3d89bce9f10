import { execFileSync } from 'node:child_process';
import { cp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { install, installOk, RECORDS, snapshot, status } from '../e2e/appliance.js';
import { ferry } from '../helpers.js';
import { skipReason, tmpfs } from './filesystems.js';
import { atFirstRelease, faultProduct } from './product.js';

// A payload that does not fit is refused before anything is staged, in MiB,
// naming the filesystem. (A disk that fills while committing: commit.test.ts.)

const reason = skipReason();

describe.skipIf(reason !== null)(
  `a filesystem too full for the payload (${reason ?? 'tmpfs'})`,
  () => {
    const product = faultProduct();

    it('E_NO_SPACE before staging, naming the mount point; nothing changed; the next install runs', async () => {
      const root = join(product.dir, 'root');
      const opt = join(root, 'opt');
      await tmpfs(opt, 24);
      await atFirstRelease(product, root);
      execFileSync('dd', ['if=/dev/zero', `of=${join(opt, 'filler')}`, 'bs=1M', 'count=9'], {
        stdio: 'ignore',
      });
      const before = await snapshot(root);
      const refused = await install(product.bundles['1.3.0'] as string, root);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('E_NO_SPACE');
      expect(refused.stderr).toMatch(
        new RegExp(`MiB free on the filesystem mounted at ${opt}, which has \\d+ MiB`),
      );
      expect(await snapshot(root, RECORDS)).toEqual(before);
      await rm(join(opt, 'filler'));
      await installOk(product.bundles['1.3.0'] as string, root);
      expect((await status(root)).release).toBe('1.3.0');
    });

    // The README promises the journal's filesystem is checked too. It was,
    // but only after the journal was begun, so a full one failed that first
    // write (E_IO) and left a journal folder behind.
    it('E_NO_SPACE on the journal filesystem before the journal is begun; nothing left behind', async () => {
      const root = join(product.dir, 'journal-full');
      await atFirstRelease(product, root);
      await installOk(product.bundles['1.1.0'] as string, root);
      const lib = join(root, 'var/lib/ferry');
      const saved = join(product.dir, 'journal-full-lib');
      await cp(lib, saved, { recursive: true, verbatimSymlinks: true });
      await tmpfs(lib, 1);
      await cp(saved, lib, { recursive: true, verbatimSymlinks: true });
      execFileSync('sh', ['-c', `dd if=/dev/zero of=${join(lib, 'filler')} bs=4k || true`], {
        stdio: 'ignore',
      });
      const before = await snapshot(root);
      const refused = await install(product.bundles['1.3.0'] as string, root);
      expect(refused.code, refused.stderr).toBe(1);
      expect(refused.stderr).toMatch(
        new RegExp(
          `E_NO_SPACE: ${lib}/journal needs 4 MiB free on the filesystem mounted at ${lib}`,
        ),
      );
      expect(await snapshot(root)).toEqual(before);
      // Rollback begins its journal without a check of its own: a failed first write leaves nothing either.
      const rollback = await ferry(['rollback', '--root', root, '--yes']);
      expect(rollback.code, rollback.stderr).toBe(1);
      expect(rollback.stderr).toContain('E_NO_SPACE');
      expect(await snapshot(root)).toEqual(before);
      expect(await readdir(lib)).not.toContain('journal');
    });
  },
);
