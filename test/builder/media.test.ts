import { describe, expect, it } from 'vitest';
import { parseVolumeSize, VOLUME_SIZES } from '../../builder/media.js';
import { codeOf } from '../helpers.js';

describe('volume sizes', () => {
  it.each([
    ['fat32', VOLUME_SIZES.fat32],
    ['dvd5', VOLUME_SIZES.dvd5],
    ['300K', { part: 300 * 1024, capacity: null }],
    ['700MiB', { part: 700 * 1024 * 1024, capacity: null }],
    ['2G', { part: 2 * 1024 ** 3, capacity: null }],
    ['123456', { part: 123456, capacity: null }],
  ])('reads %s', (text, size) => {
    expect(parseVolumeSize(text)).toEqual(size);
  });

  it('keeps FAT32 parts under 4 GiB and DVD volumes inside their sectors', () => {
    expect(VOLUME_SIZES.fat32.part).toBeLessThan(4 * 1024 ** 3);
    expect(VOLUME_SIZES.dvd5.capacity).toBeLessThan(4_700_372_992);
    expect(VOLUME_SIZES.dvd9.capacity).toBeLessThan(8_547_991_552);
  });

  it.each(['4.7G', 'dvd', '-1', '10T', ''])('refuses %j', async (text) => {
    expect(await codeOf(() => parseVolumeSize(text))).toBe('E_USAGE');
  });
});
