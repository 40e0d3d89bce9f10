import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { install, installOk, RECORDS, snapshot, status } from '../e2e/appliance.js';
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
  },
);
