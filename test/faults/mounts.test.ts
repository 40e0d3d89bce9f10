import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ferry, type Workspace } from '../helpers.js';
import { initAppliance, installOk, status } from '../e2e/appliance.js';
import { ext4, skipReason, tmpfs } from './filesystems.js';
import { faultProduct } from './product.js';

// Appliances mount /opt and /var on filesystems of their own: a version moves
// into place by a rename, so it is staged on the filesystem it goes to.

const reason = skipReason();

describe.skipIf(reason !== null)(
  `opt and var on their own filesystems (${reason ?? 'ext4, tmpfs'})`,
  () => {
    let dir: string;
    let ws: Workspace;
    let bundles: Record<string, string>;

    beforeAll(async () => {
      ({ dir, ws, bundles } = await faultProduct());
    });

    it('installs, updates, rolls back and verifies', async () => {
      const root = join(dir, 'root');
      await ext4(join(dir, 'opt.img'), join(root, 'opt'), 32);
      await tmpfs(join(root, 'var'), 16);
      await initAppliance(ws, root);
      await installOk(bundles['1.0.0'] as string, root);
      await installOk(bundles['1.3.0'] as string, root);
      expect((await status(root)).release).toBe('1.3.0');
      expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
      const back = await ferry(['rollback', '--root', root, '--yes']);
      expect(back.code, back.stderr).toBe(0);
      expect((await status(root)).release).toBe('1.0.0');
      expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
    });
  },
);
