import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { verifyBundle } from '../../bundle/verify.js';
import type { TrustContext } from '../../bundle/open.js';
import { readTrustedRoot, type FerryError } from '../../manifest-schema/index.js';
import { tempDir } from '../helpers.js';
import { baseBundle, tarBytes, zipBytes, type Base, type CraftEntry } from './hostile.js';

let base: Promise<Base> | undefined;

/**
 * One real signed bundle per test file, taken apart for crafting. Tests share
 * it, so its entries and metadata are frozen: a test that changed them in
 * place would change what the next test starts from. (Buffers cannot be
 * frozen: copy one before changing its bytes.)
 */
export function sharedBase(): Promise<Base> {
  base ??= tempDir()
    .then(baseBundle)
    .then((made) => ({
      ...made,
      entries: deepFreeze(made.entries),
      metadata: deepFreeze(made.metadata),
    }));
  return base;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** The trust root file as verify checks against it, now. */
export async function trustOf(file: string): Promise<TrustContext> {
  return { root: await readTrustedRoot(file), now: new Date() };
}

/** Writes the bytes as a bundle and expects verify to refuse them with `code`, naming `entry` when given. */
export async function expectRefused(
  bytes: Buffer,
  extension: 'tar' | 'zip',
  code: string,
  entry?: string,
  base: Promise<Base> = sharedBase(),
): Promise<FerryError> {
  const { dir, trust } = await base;
  const file = join(dir, `crafted-${Math.random().toString(36).slice(2)}.${extension}`);
  await writeFile(file, bytes);
  const error = await verifyBundle(file, await trustOf(trust)).then(
    () => {
      throw new Error(`verify accepted a crafted bundle (expected ${code})`);
    },
    (caught: unknown) => caught as FerryError,
  );
  expect(error.code, error.message).toBe(code);
  if (entry !== undefined) expect(error.details.entry).toBe(entry);
  return error;
}

export const formats = [
  ['tar', tarBytes],
  ['zip', zipBytes],
] as const satisfies ReadonlyArray<readonly ['tar' | 'zip', (entries: CraftEntry[]) => Buffer]>;
