import { describe, it } from 'vitest';
import { zipBytes } from './hostile.js';
import { expectRefused, sharedBase } from './refuse.js';

// A streaming unzip extracts what the local headers say; Ferry checks the
// central directory. Where the two disagree, one of them lies.
describe('a zip whose central directory disagrees with its local headers', () => {
  it('is refused when the central directory renames an entry', async () => {
    const { entries } = await sharedBase();
    const crafted = zipBytes(entries, {
      centralName: (name) => (name === 'payload/app/bin/run' ? 'payload/app/bin/rum' : name),
    });
    await expectRefused(crafted, 'zip', 'E_UNLISTED_ENTRY', 'payload/app/bin/rum');
  });

  it('is refused when only the local header names another file', async () => {
    const { entries } = await sharedBase();
    const crafted = zipBytes(entries);
    const at = crafted.indexOf(Buffer.from('payload/lib/lib.so'));
    crafted[at + 'payload/lib/'.length] = 'L'.charCodeAt(0); // the local header now says payload/lib/Lib.so
    await expectRefused(crafted, 'zip', 'E_BUNDLE_CORRUPT', 'payload/lib/lib.so');
  });
});
