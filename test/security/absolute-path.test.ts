import { describe, it } from 'vitest';
import { expectRefused, formats, sharedBase } from './refuse.js';

describe('an entry with an absolute path', () => {
  it.each(formats)('is refused in a %s', async (extension, pack) => {
    const { entries } = await sharedBase();
    const evil = {
      name: '/etc/passwd',
      type: 'File' as const,
      data: Buffer.from('root::0:0::/:/bin/sh\n'),
    };
    await expectRefused(pack([...entries, evil]), extension, 'E_UNSAFE_ENTRY', evil.name);
  });
});
