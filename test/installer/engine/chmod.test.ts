import type * as FsPromises from 'node:fs/promises';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { signedModes } from '../../../installer/engine/passes.js';
import { Transaction } from '../../../installer/engine/transaction.js';
import { tempDir } from '../../helpers.js';

// A filesystem that refuses modes (vfat, some FUSE and NFS mounts) or went
// read-only: even root's chmod fails there, which no folder of a test can
// make, so chmod is refused here while `refuse` is set.
const state = vi.hoisted(() => ({ refuse: false }));
vi.mock('node:fs/promises', async (original) => {
  const fs = await original<typeof FsPromises>();
  const chmod = (path: string, mode: number): Promise<void> =>
    state.refuse
      ? Promise.reject(
          Object.assign(new Error(`EROFS: read-only file system, chmod '${path}'`), {
            code: 'EROFS',
          }),
        )
      : fs.chmod(path, mode);
  return { ...fs, chmod, default: { ...fs, chmod } };
});

async function refused(work: () => Promise<unknown>): Promise<unknown> {
  state.refuse = true;
  try {
    return await work().then(
      () => new Error('chmod was not refused'),
      (error: unknown) => error,
    );
  } finally {
    state.refuse = false;
  }
}

describe('a chmod the filesystem refuses is E_IO naming the path', () => {
  it('when staged files get their signed modes', async () => {
    const dir = await tempDir('ferry-chmod-');
    await writeFile(join(dir, 'run'), '#!/bin/sh\n');
    const error = await refused(() =>
      signedModes(dir, [{ path: 'run', type: 'file', mode: 0o755 }]),
    );
    expect(error).toMatchObject({
      code: 'E_IO',
      details: { file: dir, hint: expect.stringContaining('read-only') as string },
    });
  });

  it('when a transaction makes a folder', async () => {
    const dir = await tempDir('ferry-chmod-');
    const folder = join(dir, 'opt');
    // Only its journal record is needed of a transaction here.
    const transaction = { record: () => Promise.resolve() } as unknown as Transaction;
    const error = await refused(() => Transaction.prototype.ensureDir.call(transaction, folder));
    expect(error).toMatchObject({ code: 'E_IO', details: { file: folder } });
  });
});
