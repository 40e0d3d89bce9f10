import { Header } from 'tar';
import { describe, expect, it } from 'vitest';
import { gzipParts, tarBytes } from './hostile.js';
import { craftedFile, expectRefusedEverywhere, sharedBase } from './refuse.js';

// An unlisted entry whose data inflates about 1000 times: each header is
// compared as it arrives, so the bomb is refused at its header and its data
// is never inflated (it once cost 348 MiB before the refusal).
describe('a tar.gz bomb in an unlisted entry', () => {
  it('is refused at its header, in bounded memory', async () => {
    const { entries } = await sharedBase();
    const size = 256 * 1024 * 1024;
    const header = new Header({
      path: 'payload/app/bomb',
      mode: 0o644,
      size,
      mtime: new Date(1_700_000_000_000),
      type: 'File',
    });
    header.encode();
    const bytes = await gzipParts([
      tarBytes(entries).subarray(0, -1024),
      header.block as Buffer,
      size,
      Buffer.alloc(1024),
    ]);
    expect(bytes.length).toBeLessThan(8 * 1024 * 1024);
    const file = await craftedFile(bytes, 'tar.gz');
    await expectRefusedEverywhere(file, 'E_UNLISTED_ENTRY', 3, ['verify', 'install']);
  });
});
