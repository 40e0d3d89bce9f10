import { describe, it } from 'vitest';
import { expectRefused, formats, sharedBase } from './refuse.js';

describe('a payload larger than its declared size', () => {
  it.each(formats)('is refused in a %s before its bytes are used', async (extension, pack) => {
    const { entries } = await sharedBase();
    const crafted = entries.map((e) =>
      e.name === 'payload/lib/lib.so'
        ? { ...e, data: Buffer.concat([e.data, Buffer.alloc(4096, 1)]) }
        : e,
    );
    await expectRefused(pack(crafted), extension, 'E_SIZE_MISMATCH', 'payload/lib/lib.so');
  });

  it('is refused when the tar header understates it', async () => {
    const { entries } = await sharedBase();
    // The header differs from the one Ferry writes; read to explain why, it names the size.
    const crafted = entries.map((e) =>
      e.name === 'payload/lib/lib.so' ? { ...e, headerSize: 10 } : e,
    );
    await expectRefused(formats[0][1](crafted), 'tar', 'E_SIZE_MISMATCH', 'payload/lib/lib.so');
  });
});
