import { describe, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { verifyBundle } from '../../bundle/verify.js';
import { formats, sharedBase, trustOf } from './refuse.js';

// The control: the crafting helpers themselves produce bundles that verify,
// so every refusal in this folder is caused by its one change.
describe('a re-packed but unchanged bundle', () => {
  it.each(formats)('verifies as %s', async (extension, pack) => {
    const { dir, trust, entries } = await sharedBase();
    const file = join(dir, `control.${extension}`);
    await writeFile(file, pack(entries));
    await verifyBundle(file, await trustOf(trust));
  });
});
