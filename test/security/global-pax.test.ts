import { gzipSync } from 'node:zlib';
import { Pax } from 'tar';
import { describe, it } from 'vitest';
import { tarBytes } from './hostile.js';
import { craftedFile, expectRefused, expectRefusedEverywhere, sharedBase } from './refuse.js';

// A global PAX header applies to every entry after it in some readers and
// to none in others (node-tar's index and parser disagreed: verify accepted
// what install refused). Ferry never writes one, so it is refused, with the
// same verdict from every command.
describe('a global PAX header', () => {
  it('with a size, before a payload entry, is refused by verify and install alike', async () => {
    const { entries } = await sharedBase();
    const at = entries.findIndex((e) => e.name === 'payload/lib/lib.so');
    const global = new Pax({ path: 'global', size: 10 }, true).encode();
    const tar = Buffer.concat([
      tarBytes(entries.slice(0, at)).subarray(0, -1024),
      global,
      tarBytes(entries.slice(at)),
    ]);
    await expectRefused(tar, 'tar', 'E_BUNDLE_CORRUPT');
    await expectRefusedEverywhere(await craftedFile(tar, 'tar'), 'E_BUNDLE_CORRUPT', 3, [
      'verify',
      'install',
    ]);
    await expectRefusedEverywhere(
      await craftedFile(gzipSync(tar), 'tar.gz'),
      'E_BUNDLE_CORRUPT',
      3,
      ['verify', 'install'],
    );
  });
});
