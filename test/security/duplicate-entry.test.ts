import { describe, it } from 'vitest';
import { find } from './hostile.js';
import { expectRefused, formats, sharedBase } from './refuse.js';

describe('the same entry twice', () => {
  it.each(formats)(
    'is refused in a %s, even when the first copy is genuine',
    async (extension, pack) => {
      const { entries } = await sharedBase();
      const genuine = find(entries, 'payload/app/bin/run');
      const second = { ...genuine, data: Buffer.from('#!/bin/sh\nrm -rf /\n') };
      await expectRefused(pack([...entries, second]), extension, 'E_DUPLICATE_ENTRY', genuine.name);
    },
  );
});
