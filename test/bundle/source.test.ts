import { createHash } from 'node:crypto';
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { collect } from '../../bundle/reader.js';
import { openFileSource, type BundleSource } from '../../bundle/source.js';
import { withHashPool, type FerryError } from '../../manifest-schema/index.js';
import { tempDir } from '../helpers.js';

const SIZE = 300_000;
let dir: string;
let file: string;
let bytes: Buffer;

beforeAll(async () => {
  dir = await tempDir();
  file = join(dir, 'bundle.tar');
  // Every byte differs from its neighbours, so a range read from the wrong place cannot pass.
  bytes = Buffer.from(Array.from({ length: SIZE }, (_, i) => (i * 7 + (i >> 8)) & 0xff));
  await writeFile(file, bytes);
});

async function withSource<T>(fn: (source: BundleSource) => Promise<T>): Promise<T> {
  const source = await openFileSource(file);
  try {
    return await fn(source);
  } finally {
    await source.close();
  }
}

function codeOf(error: unknown): string {
  return (error as FerryError).code;
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('a bundle file as a source', () => {
  it.each([
    [0, 512],
    [1000, 70_000],
    [SIZE - 10, 10],
    [SIZE, 0],
  ])('reads the %i bytes from %i exactly as stored', async (offset, length) => {
    await withSource(async (source) => {
      expect(source.size).toBe(SIZE);
      const buffer = Buffer.alloc(length);
      await source.read(buffer, offset);
      expect(buffer).toEqual(bytes.subarray(offset, offset + length));
      // Small chunks, so the range spans many reads.
      const streamed = await collect(source.stream(offset, length, 4096));
      expect(streamed).toEqual(bytes.subarray(offset, offset + length));
    });
  });

  it('counts every byte it reads, and those its hash workers report', async () => {
    await withSource(async (source) => {
      expect(source.bytesRead()).toBe(0);
      await source.read(Buffer.alloc(100), 50);
      await collect(source.stream(10_000, 20_000, 4096));
      expect(source.bytesRead()).toBe(20_100);
      source.countRead(5);
      expect(source.bytesRead()).toBe(20_105);
    });
  });

  it('describes a range as where it lies, and a hash worker reading that gets its bytes', async () => {
    await withSource(async (source) => {
      const segments = source.segments(12_345, 100_000);
      expect(segments).toEqual([{ path: file, offset: 12_345, length: 100_000 }]);
      const result = await withHashPool((pool) => pool.run({ segments }));
      expect(result.bytes).toBe(100_000);
      expect(result.sha256).toBe(sha256(bytes.subarray(12_345, 112_345)));
    });
  });

  it.each([
    ['past the end', SIZE - 10, 11],
    ['starting past the end', SIZE + 1, 0],
    ['at a negative offset', -1, 10],
    ['of a negative length', 10, -1],
  ])('refuses a range %s as a corrupt bundle, reading nothing', async (_, offset, length) => {
    await withSource(async (source) => {
      // A buffer cannot have a negative length; streams and segments are asked by number.
      if (length >= 0) {
        const read = await source.read(Buffer.alloc(length), offset).catch(codeOf);
        expect(read).toBe('E_BUNDLE_CORRUPT');
      }
      const streamed = await collect(source.stream(offset, length)).catch(codeOf);
      expect(streamed).toBe('E_BUNDLE_CORRUPT');
      expect(() => source.segments(offset, length)).toThrow(
        expect.objectContaining({ code: 'E_BUNDLE_CORRUPT' }),
      );
      expect(source.bytesRead()).toBe(0);
    });
  });

  it('fails a read when the file shrinks under it', async () => {
    const shrinking = join(dir, 'shrinking.tar');
    await writeFile(shrinking, bytes);
    const source = await openFileSource(shrinking);
    try {
      await truncate(shrinking, 1000);
      const read = await source.read(Buffer.alloc(2000), 0).catch(codeOf);
      expect(read).toBe('E_BUNDLE_CORRUPT');
      const streamed = await collect(source.stream(500, 2000)).catch(codeOf);
      expect(streamed).toBe('E_BUNDLE_CORRUPT');
    } finally {
      await source.close();
    }
  });

  it('refuses a folder and names a missing file', async () => {
    const folder = join(dir, 'a-folder');
    await mkdir(folder);
    expect(await openFileSource(folder).catch(codeOf)).toBe('E_BUNDLE_FORMAT');
    expect(await openFileSource(join(dir, 'absent.tar')).catch(codeOf)).toBe('E_NOT_FOUND');
  });
});
