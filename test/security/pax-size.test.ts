import { describe, it } from 'vitest';
import { expectRefused, formats, sharedBase } from './refuse.js';

// Past 8 GiB a ustar header cannot hold a file's size, so tar writers put it in
// a PAX extended header, which takes precedence. Ferry writes PAX headers only
// where it must (names and sizes a ustar header cannot hold), so a bundle with
// any other PAX header is not one it built: refused, whatever the size says.
describe('sizes in PAX extended headers', () => {
  const pack = formats[0][1];

  it('where Ferry writes none, are refused even when they agree with the metadata', async () => {
    const { entries } = await sharedBase();
    const repacked = entries.map((e) =>
      e.name === 'payload/lib/lib.so' ? { ...e, headerSize: 0, paxSize: e.data.length } : e,
    );
    await expectRefused(pack(repacked), 'tar', 'E_BUNDLE_CORRUPT', 'payload/lib/lib.so');
  });

  it('that disagree with the signed metadata are refused as a size mismatch', async () => {
    const { entries } = await sharedBase();
    const crafted = entries.map((e) =>
      // One byte less still ends in the same 512-byte block, so the archive stays readable.
      e.name === 'payload/lib/lib.so' ? { ...e, paxSize: e.data.length - 1 } : e,
    );
    await expectRefused(pack(crafted), 'tar', 'E_SIZE_MISMATCH', 'payload/lib/lib.so');
  });
});
