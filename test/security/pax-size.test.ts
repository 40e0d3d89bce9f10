import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyBundle } from '../../bundle/verify.js';
import { expectRefused, formats, sharedBase, trustOf } from './refuse.js';

// Past 8 GiB a ustar header cannot hold a file's size, so tar writers put it in
// a PAX extended header, which takes precedence. Ferry must read the size from
// the same place every tar reader does, or it would check other bytes than an
// extracting tool sees.
describe('sizes in PAX extended headers', () => {
  const pack = formats[0][1];

  it('are honoured: a bundle whose payload size is only in the PAX header verifies', async () => {
    const { entries, dir, trust } = await sharedBase();
    const repacked = entries.map((e) =>
      e.name === 'payload/lib/lib.so' ? { ...e, headerSize: 0, paxSize: e.data.length } : e,
    );
    const file = join(dir, 'pax-size.tar');
    await writeFile(file, pack(repacked));
    const result = await verifyBundle(file, await trustOf(trust));
    expect(result.bytes).toBeGreaterThan(70_000);
  });

  it('that disagree with the signed metadata are refused', async () => {
    const { entries } = await sharedBase();
    const crafted = entries.map((e) =>
      // One byte less still ends in the same 512-byte block, so the archive stays readable.
      e.name === 'payload/lib/lib.so' ? { ...e, paxSize: e.data.length - 1 } : e,
    );
    await expectRefused(pack(crafted), 'tar', 'E_SIZE_MISMATCH', 'payload/lib/lib.so');
  });
});
