import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { gzipParts, tarBytes, tarGzBytes, zipBytes, type CraftEntry } from './hostile.js';
import { craftedFile, expectRefused, expectRefusedEverywhere, sharedBase } from './refuse.js';

// Bytes a reader never looks at are bytes another tool may: an entry hidden
// after the tar end blocks, garbage after the zip's end record or after the
// gzip member. Ferry writes nothing there, so anything there is refused.
const hidden: CraftEntry = {
  name: 'payload/app/../../../etc/cron.d/pwn',
  type: 'File',
  data: Buffer.from('* * * * * root sh -c pwned\n'),
};

describe('data after the end of the archive', () => {
  it('an entry hidden after the tar end blocks is refused by verify and install', async () => {
    const { entries } = await sharedBase();
    const bytes = Buffer.concat([tarBytes(entries), tarBytes([hidden])]);
    const file = await craftedFile(bytes, 'tar');
    await expectRefusedEverywhere(file, 'E_BUNDLE_CORRUPT', 3, ['verify', 'install']);
  });

  it('trailing garbage after a tar, a zip or a tar.gz is refused', async () => {
    const { entries } = await sharedBase();
    const junk = Buffer.from('trailing bytes no tool should see');
    await expectRefused(Buffer.concat([tarBytes(entries), junk]), 'tar', 'E_BUNDLE_CORRUPT');
    await expectRefused(Buffer.concat([zipBytes(entries), junk]), 'zip', 'E_BUNDLE_CORRUPT');
    await expectRefused(Buffer.concat([tarGzBytes(entries), junk]), 'tar.gz', 'E_BUNDLE_CORRUPT');
  });

  it('a second gzip member after the first is refused', async () => {
    const { entries } = await sharedBase();
    const bytes = Buffer.concat([tarGzBytes(entries), gzipSync(tarBytes([hidden]))]);
    const file = await craftedFile(bytes, 'tar.gz');
    await expectRefusedEverywhere(file, 'E_BUNDLE_CORRUPT', 3, ['verify', 'install']);
  });

  it('a gzip bomb after the end blocks is refused after one chunk, in bounded memory', async () => {
    const { entries } = await sharedBase();
    // 256 MiB of zeros after the end blocks, inside the same gzip member (about 256 KiB compressed).
    const bomb = await gzipParts([tarBytes(entries), 256 * 1024 * 1024]);
    expect(bomb.length).toBeLessThan(8 * 1024 * 1024);
    const file = await craftedFile(bomb, 'tar.gz');
    const runs = await expectRefusedEverywhere(file, 'E_BUNDLE_CORRUPT', 3, ['verify', 'install']);
    for (const run of runs) expect(run.seconds, 'a bomb must not be inflated').toBeLessThan(60);
  });
});
