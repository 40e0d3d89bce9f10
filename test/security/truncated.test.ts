import { describe, it } from 'vitest';
import { expectRefused, formats, sharedBase } from './refuse.js';

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
});
