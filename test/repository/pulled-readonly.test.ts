import type * as FsPromises from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';
import type { FerryError } from '../../manifest-schema/errors.js';
import { acceptChannelDocument } from '../../repository/pulled.js';
import { tempDir } from '../helpers.js';

// A read-only state folder, as a read-only mount makes it even for root (chmod does not):
// every open for writing fails with EROFS while `readOnly` is set.
const state = vi.hoisted(() => ({ readOnly: false }));
vi.mock('node:fs/promises', async (original) => {
  const fs = await original<typeof FsPromises>();
  return {
    ...fs,
    open: (path: string, flags?: string, mode?: number) => {
      if (state.readOnly && typeof flags === 'string' && /[wa+]/.test(flags))
        return Promise.reject(
          Object.assign(new Error(`EROFS: read-only file system, open '${path}'`), {
            code: 'EROFS',
          }),
        );
      return fs.open(path, flags, mode);
    },
  };
});

const repo = { name: '/srv/bundles', created: 'sha256:event-1' };
const doc = (sequence: number) => ({
  sequence,
  digest: `sha256:doc-${sequence}`,
  version: `1.${sequence}.0`,
});

describe('a state folder pull may read but not write', () => {
  it('still accepts the document it recorded, refuses one set back as such, and cannot record a later one', async () => {
    const dir = await tempDir('ferry-pulled-');
    await acceptChannelDocument(dir, repo, 'dev', doc(2));
    state.readOnly = true;
    try {
      const outcome = (n: number) =>
        acceptChannelDocument(dir, repo, 'dev', doc(n)).then(
          () => 'accepted',
          (error: FerryError) => error.code,
        );
      expect(await outcome(2)).toBe('accepted');
      expect(await outcome(1)).toBe('E_CHANNEL_SET_BACK');
      const later = await acceptChannelDocument(dir, repo, 'dev', doc(3)).catch(
        (error: FerryError) => error,
      );
      expect(later).toMatchObject({ code: 'E_IO' });
      expect((later as FerryError).message).toMatch(/^could not write .*dev\.json: EROFS/);
    } finally {
      state.readOnly = false;
    }
  });
});
