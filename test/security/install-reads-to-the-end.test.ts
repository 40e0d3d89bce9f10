import { describe, it } from 'vitest';
import { tarGzBytes, type CraftEntry } from './hostile.js';
import { craftedFile, expectRefusedEverywhere, sharedBase } from './refuse.js';

// An install that stops reading once it has what this appliance needs would
// never see an entry placed after it, which verify refuses: install must
// reach verify's verdict on every bundle, so it reads a tar.gz to its end.
describe('a tar.gz with an unlisted entry after the last one an appliance needs', () => {
  it('is refused by install as by verify', async () => {
    const { entries } = await sharedBase();
    const traversal: CraftEntry = {
      name: 'payload/app/../../../../tmp/ferry-pwned',
      type: 'File',
      data: Buffer.from('pwned\n'),
    };
    const file = await craftedFile(tarGzBytes([...entries, traversal]), 'tar.gz');
    await expectRefusedEverywhere(file, 'E_UNSAFE_ENTRY', 3, ['verify', 'install']);
  });
});
