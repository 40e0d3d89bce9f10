import { rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ferry, json } from '../helpers.js';
import { install, installOk, markers, RECORDS, snapshot, status } from '../e2e/appliance.js';
import { ext4, skipReason } from './filesystems.js';
import { atFirstRelease, faultProduct } from './product.js';

// The filesystem goes read-only in the middle of an install (an I/O error
// with errors=remount-ro): the error names the first cause, and once the
// filesystem is repaired `ferry recover` undoes everything, rollback
// artifacts included.

const reason = skipReason();
// web's update artifact breaks the filesystem it is on when asked to.
const BREAK =
  'if [ -e "$FERRY_ROOT/break" ]; then cat "$FERRY_ROOT/break" > "$(cat "$FERRY_ROOT/break.at")"; fi';

describe.skipIf(reason !== null)(
  `a filesystem gone read-only (${reason ?? 'ext4 loop image'})`,
  () => {
    const product = faultProduct({ 'scripts/web/publish.sh': BREAK });

    it('reports the I/O error, and recover after the repair rolls everything back', async () => {
      const fs = await ext4(join(product.dir, 'root.img'), join(product.dir, 'mnt'), 64);
      const root = join(fs.mount, 'appliance');
      await atFirstRelease(product, root);
      const before = await snapshot(root);
      // The trigger lives outside the broken filesystem's reach: it is read before the write.
      await writeFile(
        join(root, 'break.at'),
        `/sys/fs/ext4/${basename(fs.device)}/trigger_fs_error`,
      );
      await writeFile(join(root, 'break'), '1\n');
      const failed = await install(product.bundles['1.3.0'] as string, root);
      expect(failed.code, failed.stderr).toBe(1);
      expect(failed.stderr).toContain('E_IO');
      expect(failed.stderr).not.toContain('E_INTERNAL');
      expect(failed.stderr).toMatch(/EROFS|read-only|EIO|input\/output/i);

      fs.remount();
      const recovered = await ferry(['recover', '--root', root, '--json']);
      expect(recovered.code, recovered.stderr).toBe(0);
      expect(json<{ recovered: boolean; release: string }>(recovered)).toEqual({
        schemaVersion: 1,
        recovered: true,
        release: '1.0.0',
      });
      const ignored = [...RECORDS, 'break', 'break.at', 'lost+found'];
      const now = await snapshot(root, ignored);
      const expected = Object.fromEntries(
        Object.entries(before).filter(([name]) => !ignored.includes(name)),
      );
      expect(now).toEqual(expected);
      const after = (await markers(root)).slice(-3);
      expect(after.map((line) => line.split(' ').slice(0, 2).join(' ')).sort()).toEqual([
        'rollback api',
        'rollback db',
        'rollback web',
      ]);
      await rm(join(root, 'break'));
      await installOk(product.bundles['1.3.0'] as string, root);
      expect((await status(root)).release).toBe('1.3.0');
    });
  },
);
