import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { tarBytes, zipBytes } from './hostile.js';
import {
  craftedFile,
  expectRefused,
  expectRefusedEverywhere,
  formats,
  sharedBase,
} from './refuse.js';

describe('a truncated bundle', () => {
  it('a tar cut inside a payload file is refused', async () => {
    const { entries } = await sharedBase();
    const whole = formats[0][1](entries);
    const cut = whole.subarray(0, whole.indexOf(Buffer.alloc(2000, 7)) + 1000);
    await expectRefused(cut, 'tar', 'E_BUNDLE_CORRUPT');
  });

  it('a zip that lost its end is refused', async () => {
    const { entries } = await sharedBase();
    const whole = formats[1][1](entries);
    await expectRefused(whole.subarray(0, whole.length - 100), 'zip', 'E_BUNDLE_CORRUPT');
  });

  // A copy that stopped or a full disk: the refusal names the bundle and the
  // entry it cut, in every format, as verify and install report it.
  it.each([
    ['tar', tarBytes],
    ['zip', (entries: Parameters<typeof zipBytes>[0]) => zipBytes(entries)],
    // Stored deflate blocks, so the payload's bytes lie in the gzip as they are.
    [
      'tar.gz',
      (entries: Parameters<typeof tarBytes>[0]) => gzipSync(tarBytes(entries), { level: 0 }),
    ],
  ] as const)(
    'a %s cut inside a payload file names the entry it cut',
    async (extension, bytesOf) => {
      const { entries } = await sharedBase();
      const cutIn = entries.find((entry) => entry.data.length === 70_000)?.name as string;
      const whole = bytesOf(entries);
      const cut = whole.subarray(0, whole.indexOf(Buffer.alloc(2000, 7)) + 30_000);
      const error = await expectRefused(cut, extension, 'E_BUNDLE_CORRUPT', cutIn);
      expect(error.message).toContain(`cut short in ${cutIn}`);
      expect(error.hint).toBeTruthy();
      const file = await craftedFile(cut, extension);
      for (const result of await expectRefusedEverywhere(file, 'E_BUNDLE_CORRUPT', 3, [
        'verify',
        'install',
      ]))
        expect(result.stderr).toContain(`${file}: is cut short in ${cutIn}`);
    },
  );
});
