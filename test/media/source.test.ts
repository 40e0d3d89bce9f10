import { execFileSync } from 'node:child_process';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PartsSource } from '../../bundle/media.js';
import { collect } from '../../bundle/reader.js';
import { withHashPool, type FerryError } from '../../manifest-schema/index.js';
import { json, tempDir } from '../helpers.js';
import { sha256 } from '../e2e/appliance.js';
import { mediaBase, runMedia, type MediaBase } from './helpers.js';

let dir: string;
let base: MediaBase;
let bundle: Buffer;
let media: string;
const PART = 100 * 1024;

beforeAll(async () => {
  dir = await tempDir();
  base = await mediaBase(dir);
  bundle = await readFile(base.bundle);
  media = join(dir, 'media');
  const made = await runMedia(base, media, [
    '--volume-size',
    String(PART),
    '--no-installer',
    '--json',
  ]);
  expect(made.code, made.stderr).toBe(0);
  expect(json<{ volumes: unknown[] }>(made).volumes).toHaveLength(Math.ceil(bundle.length / PART));
});

async function withSource<T>(path: string, fn: (source: PartsSource) => Promise<T>): Promise<T> {
  const source = await PartsSource.open(path);
  try {
    return await fn(source);
  } finally {
    await source.close();
  }
}

describe('volumes as one source', () => {
  it.each([
    ['inside part 1', 0, 512],
    ['across one boundary', PART - 100, 200],
    ['across many parts', PART / 2, PART * 5],
    ['to the very end', 3 * PART + 7, -1],
  ])('reads %s exactly as the bundle holds it', async (_, offset, length) => {
    await withSource(media, async (source) => {
      const want = length < 0 ? source.size - offset : length;
      const expected = bundle.subarray(offset, offset + want);
      const buffer = Buffer.alloc(want);
      await source.read(buffer, offset);
      expect(sha256(buffer)).toBe(sha256(expected));
      expect(sha256(await collect(source.stream(offset, want, 4096)))).toBe(sha256(expected));
      // Hash workers read the same range through the parts' segments.
      const segments = source.segments(offset, want);
      expect(segments.length).toBe(
        Math.floor((offset + want - 1) / PART) - Math.floor(offset / PART) + 1,
      );
      const hashed = await withHashPool((pool) => pool.run({ segments }));
      expect(hashed.sha256).toBe(sha256(expected));
    });
  });

  it('refuses a range outside the bundle as corrupt, reading nothing', async () => {
    await withSource(media, async (source) => {
      const error = await source
        .read(Buffer.alloc(10), source.size - 5)
        .catch((e: FerryError) => e);
      expect((error as FerryError).code).toBe('E_BUNDLE_CORRUPT');
      expect(source.bytesRead()).toBe(0);
    });
  });

  it('hashes a part read through in order, and fails it at its last byte when it differs', async () => {
    const damaged = join(dir, 'damaged');
    await cp(media, damaged, { recursive: true });
    const part = join(damaged, 'vol3', 'FERRY/BUNDLE.003');
    const bytes = await readFile(part);
    bytes[10] = (bytes[10] as number) ^ 1;
    await writeFile(part, bytes);
    await withSource(damaged, async (source) => {
      // Part 2 reads through cleanly; part 3 fails once its last byte is read.
      await collect(source.stream(0, 2 * PART, 8192));
      const error = await collect(source.stream(2 * PART, PART, 8192)).catch((e: FerryError) => e);
      expect(error).toMatchObject({ code: 'E_PART_MISMATCH', details: { volume: 3 } });
    });
  });

  it.each([
    ['a FIFO', 'is now a FIFO', (part: string) => execFileSync('mkfifo', [part])],
    ['a folder', 'is now a folder', (part: string) => mkdir(part)],
  ])(
    'names a part that became %s after it was found, instead of waiting on it',
    async (what, says, make) => {
      const swapped = join(dir, `swapped-${what.replace(/ /g, '-')}`);
      await cp(media, swapped, { recursive: true });
      await withSource(swapped, async (source) => {
        // Found as a file when the source opened; swapped before the read through.
        const part = join(swapped, 'vol2', 'FERRY/BUNDLE.002');
        await rm(part);
        await make(part);
        const error = await source.readThrough([]).catch((e: FerryError) => e);
        expect(error).toMatchObject({
          code: 'E_PART_MISMATCH',
          details: { volume: 2, entry: 'FERRY/BUNDLE.002' },
        });
        expect((error as FerryError).message).toContain(`part 2 on volume 2 (`);
        expect((error as FerryError).message).toContain(says);
      });
    },
    // Without O_NONBLOCK the FIFO's open never returns: the test's timeout is the failure.
    10_000,
  );
});
