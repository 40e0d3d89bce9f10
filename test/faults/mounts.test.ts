import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ferry } from '../helpers.js';
import { installOk, status } from '../e2e/appliance.js';
import { ext4, skipReason, tmpfs } from './filesystems.js';
import { atFirstRelease, faultProduct } from './product.js';

// Appliances mount /opt and /var on filesystems of their own: a version moves
// into place by a rename, so it is staged on the filesystem it goes to.

const reason = skipReason();

describe.skipIf(reason !== null)(
  `opt and var on their own filesystems (${reason ?? 'ext4, tmpfs'})`,
  () => {
    const product = faultProduct();

    it('installs, updates, rolls back and verifies', async () => {
      const root = join(product.dir, 'root');
      await ext4(join(product.dir, 'opt.img'), join(root, 'opt'), 32);
      await tmpfs(join(root, 'var'), 16);
      await atFirstRelease(product, root);
      await installOk(product.bundles['1.3.0'] as string, root);
      expect((await status(root)).release).toBe('1.3.0');
      expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
      const back = await ferry(['rollback', '--root', root, '--yes']);
      expect(back.code, back.stderr).toBe(0);
      expect((await status(root)).release).toBe('1.0.0');
      expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
    });
  },
);
