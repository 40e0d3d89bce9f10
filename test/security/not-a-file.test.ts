import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { expectRefusedEverywhere, sharedBase } from './refuse.js';

// A FIFO as the bundle path would block the open and every read; a device
// would stream forever. Both are refused from their file type, before a byte
// is read, by every command (inspect too: it reads the metadata).
describe('a bundle path that is not a regular file', () => {
  it('a FIFO is refused at once, not waited on', async () => {
    const { dir } = await sharedBase();
    const fifo = join(dir, 'waiting.tar');
    execFileSync('mkfifo', [fifo]);
    await expectRefusedEverywhere(fifo, 'E_BUNDLE_FORMAT', 2, ['verify', 'inspect', 'install']);
  });

  it('a character device is refused', async () => {
    await expectRefusedEverywhere('/dev/zero', 'E_BUNDLE_FORMAT', 2, ['verify', 'plan']);
  });

  it('a folder is refused', async () => {
    const { dir } = await sharedBase();
    const folder = join(dir, 'folder.tar');
    await mkdir(folder);
    await expectRefusedEverywhere(folder, 'E_BUNDLE_FORMAT', 2, ['verify', 'install']);
  });
});
