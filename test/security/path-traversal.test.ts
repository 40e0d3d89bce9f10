import { describe, it } from 'vitest';
import { expectRefused, formats, sharedBase } from './refuse.js';

describe('an entry that climbs out with ..', () => {
  it.each(formats)('is refused in a %s', async (extension, pack) => {
    const { entries } = await sharedBase();
    const evil = {
      name: 'payload/app/../../../../etc/cron.d/evil',
      type: 'File' as const,
      data: Buffer.from('* * * * * root sh\n'),
    };
    await expectRefused(pack([...entries, evil]), extension, 'E_UNSAFE_ENTRY', evil.name);
  });
});
