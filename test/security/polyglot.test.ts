import { describe, it } from 'vitest';
import { tarBytes, zipBytes } from './hostile.js';
import { craftedFile, expectRefusedEverywhere, sharedBase } from './refuse.js';

// A file that is both a tar and a zip: tar tools read the tar from the
// front, unzip finds the zip's end record at the back. Either way one of the
// two archives holds bytes the bundle's layout has no room for.
describe('a tar that is also a zip', () => {
  it('a genuine tar with a zip appended is refused', async () => {
    const { entries } = await sharedBase();
    const evil = [
      {
        name: 'payload/app/bin/run',
        type: 'File' as const,
        data: Buffer.from('#!/bin/sh\nrm -rf /\n'),
      },
    ];
    const file = await craftedFile(Buffer.concat([tarBytes(entries), zipBytes(evil)]), 'tar');
    await expectRefusedEverywhere(file, 'E_BUNDLE_CORRUPT', 3, ['verify', 'install']);
  });

  it('a genuine zip with a tar appended is refused', async () => {
    const { entries } = await sharedBase();
    const evil = [
      {
        name: 'payload/app/bin/run',
        type: 'File' as const,
        data: Buffer.from('#!/bin/sh\nrm -rf /\n'),
      },
    ];
    const file = await craftedFile(Buffer.concat([zipBytes(entries), tarBytes(evil)]), 'zip');
    await expectRefusedEverywhere(file, 'E_BUNDLE_CORRUPT', 3, ['verify', 'install']);
  });
});
