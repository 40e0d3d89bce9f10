import { describe, it } from 'vitest';
import { expectRefused, formats, sharedBase } from './refuse.js';

describe('device files, FIFOs and hard links', () => {
  it.each(formats)('a character device in a %s is refused', async (extension, pack) => {
    const { entries } = await sharedBase();
    const device = {
      name: 'payload/app/dev-null',
      type: 'CharacterDevice' as const,
      data: Buffer.alloc(0),
    };
    await expectRefused(pack([...entries, device]), extension, 'E_UNSAFE_ENTRY', device.name);
  });

  it('a hard link in a tar is refused', async () => {
    const { entries } = await sharedBase();
    const link = {
      name: 'payload/app/passwd',
      type: 'Link' as const,
      data: Buffer.alloc(0),
      linkpath: '/etc/passwd',
    };
    await expectRefused(formats[0][1]([...entries, link]), 'tar', 'E_UNSAFE_ENTRY', link.name);
  });
});
