import { describe, it } from 'vitest';
import { expectRefused, formats, sharedBase } from './refuse.js';

describe('an entry the signed metadata lists but the archive lacks', () => {
  it.each(formats)('is refused in a %s', async (extension, pack) => {
    const { entries } = await sharedBase();
    await expectRefused(
      pack(entries.filter((e) => e.name !== 'payload/lib/lib.so')),
      extension,
      'E_MISSING_ENTRY',
      'payload/lib/lib.so',
    );
  });
});
