import { describe, expect, it } from 'vitest';
import { editTarHeader, tarBytes } from './hostile.js';
import { craftedFile, expectRefused, expectRefusedEverywhere, sharedBase } from './refuse.js';

// A tar size field may be octal or base-256 (a leading 0x80 or 0xff byte).
// Values no reader agrees on, negative or past 2^53, are a corrupt bundle
// (exit 3), never a crash (E_INTERNAL, exit 1).
describe('tar size fields no reader agrees on', () => {
  it.each([
    ['a negative base-256 size', Buffer.from([0xff, ...Array<number>(11).fill(0xfe)])],
    ['a base-256 size past 2^53', Buffer.from([0x80, ...Array<number>(11).fill(0xff)])],
    ['an unparseable octal size', Buffer.from('zzzzzzzzzzz\0')],
  ])('%s is E_BUNDLE_CORRUPT', async (_, field) => {
    const { entries } = await sharedBase();
    const tar = editTarHeader(tarBytes(entries), 'payload/lib/lib.so', 124, field);
    const error = await expectRefused(tar, 'tar', 'E_BUNDLE_CORRUPT');
    expect(error.exitCode).toBe(3);
    await expectRefusedEverywhere(await craftedFile(tar, 'tar'), 'E_BUNDLE_CORRUPT', 3, ['verify']);
  });
});
