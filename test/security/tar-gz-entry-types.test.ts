import { describe, expect, it } from 'vitest';
import { verifyBundle } from '../../bundle/verify.js';
import { gzipSync } from 'node:zlib';
import { editTarHeader, tarBytes, tarGzBytes } from './hostile.js';
import {
  craftedFile,
  expectRefused,
  expectRefusedEverywhere,
  sharedBase,
  trustOf,
} from './refuse.js';

// node-tar sends entries of unknown or sparse type to an event nothing
// listened to, and GNU tar extracts them as files. Ferry's readers share one
// rule for every format: a header that is not the one Ferry writes is refused.
describe('entries of unknown or sparse type', () => {
  it.each([
    ['sparse', 'S'],
    ['unknown', 'Z'],
  ])('a %s entry is refused in a tar and a tar.gz, by verify and install', async (_, type) => {
    const { entries } = await sharedBase();
    const tar = editTarHeader(tarBytes(entries), 'payload/lib/lib.so', 156, Buffer.from(type));
    await expectRefused(tar, 'tar', 'E_UNSAFE_ENTRY', 'payload/lib/lib.so');
    const file = await craftedFile(gzipSync(tar), 'tar.gz');
    await expectRefusedEverywhere(file, 'E_UNSAFE_ENTRY', 3, ['verify', 'install']);
  });

  it('the untouched tar.gz verifies (the control)', async () => {
    const { entries } = await sharedBase();
    const file = await craftedFile(tarGzBytes(entries), 'tar.gz');
    const result = await verifyBundle(file, await trustOf((await sharedBase()).trust));
    expect(result.format).toBe('tar.gz');
  });
});
