import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ferry } from '../helpers.js';
import { initAppliance, installOk, status } from '../e2e/appliance.js';
import { ext4, skipReason } from './filesystems.js';
import { faultProduct } from './product.js';

// A power cut right after an install reports success: the ext4 error trigger
// (errors=remount-ro) stops the filesystem from writing anything more, so
// whatever was only in the page cache is lost, as it is when the power goes.

const reason = skipReason();

describe.skipIf(reason !== null)(
  `a power cut after a commit (${reason ?? 'ext4 loop image'})`,
  () => {
    const product = faultProduct();

    it('finds every committed byte on disk: status --verify holds, and the next install runs', async () => {
      const fs = await ext4(join(product.dir, 'root.img'), join(product.dir, 'mnt'), 64);
      const root = join(fs.mount, 'appliance');
      await initAppliance(product.ws, root);
      for (const release of ['1.0.0', '1.3.0']) {
        await installOk(product.bundles[release] as string, root);
        await fs.fail();
        fs.remount();
        expect((await status(root)).release).toBe(release);
        const verify = await ferry(['status', '--root', root, '--verify']);
        expect(verify.code, `${release}: ${verify.stdout}${verify.stderr}`).toBe(0);
        const recovered = await ferry(['recover', '--root', root, '--json']);
        expect(recovered.code, recovered.stderr).toBe(0);
      }
      await fs.fail();
      fs.remount();
      const back = await ferry(['rollback', '--root', root, '--yes']);
      expect(back.code, back.stderr).toBe(0);
      expect((await status(root)).release).toBe('1.0.0');
    });
  },
);
