import { describe, it } from 'vitest';
import { expectRefused, formats, sharedBase } from './refuse.js';

describe('an entry the signed metadata does not list', () => {
  it.each(formats)('is refused in a %s', async (extension, pack) => {
    const { entries } = await sharedBase();
    const extra = {
      name: 'payload/app/bin/backdoor',
      type: 'File' as const,
      data: Buffer.from('#!/bin/sh\n'),
    };
    await expectRefused(pack([...entries, extra]), extension, 'E_UNLISTED_ENTRY', extra.name);
  });
});
