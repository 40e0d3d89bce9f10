import { describe, it } from 'vitest';
import { expectRefused, formats, sharedBase } from './refuse.js';

function flipped(data: Buffer, at: number): Buffer {
  const copy = Buffer.from(data);
  copy[at] = (copy[at] ?? 0) ^ 0xff;
  return copy;
}

describe('payload bytes changed after signing', () => {
  // Plain tar is hashed on several cores at once; the entry named must still be
  // the first bad one in archive order, even when a later, smaller one fails first.
  it.each(formats)(
    'in a %s: the first bad entry in archive order is named',
    async (extension, pack) => {
      const { entries } = await sharedBase();
      const crafted = entries.map((e) =>
        e.name === 'payload/lib/lib.so'
          ? { ...e, data: flipped(e.data, e.data.length - 1) }
          : e.name === 'payload/app/bin/run'
            ? { ...e, data: flipped(e.data, 0) }
            : e,
      );
      const names = crafted.map((e) => e.name);
      if (names.indexOf('payload/lib/lib.so') > names.indexOf('payload/app/bin/run'))
        throw new Error('the fixture changed: lib must come before app (dependency order)');
      await expectRefused(pack(crafted), extension, 'E_HASH_MISMATCH', 'payload/lib/lib.so');
    },
  );

  it.each(formats)('in a %s: one changed byte in one file is found', async (extension, pack) => {
    const { entries } = await sharedBase();
    const crafted = entries.map((e) =>
      e.name === 'payload/app/conf/app.conf' ? { ...e, data: flipped(e.data, 3) } : e,
    );
    await expectRefused(pack(crafted), extension, 'E_HASH_MISMATCH', 'payload/app/conf/app.conf');
  });
});
