import { describe, it } from 'vitest';
import { tarBytes, zipBytes, type CraftEntry } from './hostile.js';
import { craftedFile, expectRefusedEverywhere, sharedBase } from './refuse.js';

// A file that is both a tar and a zip: tar tools read the tar from the
// front, unzip finds the zip's end record at the back. Either way one of the
// two archives holds bytes the bundle's layout has no room for.
const evil: CraftEntry[] = [
  { name: 'payload/app/bin/run', type: 'File', data: Buffer.from('#!/bin/sh\nrm -rf /\n') },
];

describe('a tar that is also a zip', () => {
  it.each([
    ['tar', 'zip', tarBytes, zipBytes],
    ['zip', 'tar', zipBytes, tarBytes],
  ] as const)('a genuine %s with a %s appended is refused', async (format, _, genuine, other) => {
    const { entries } = await sharedBase();
    const file = await craftedFile(Buffer.concat([genuine(entries), other(evil)]), format);
    await expectRefusedEverywhere(file, 'E_BUNDLE_CORRUPT', 3, ['verify', 'install']);
  });
});
