import { describe, it } from 'vitest';
import { tarBytes, type CraftEntry } from './hostile.js';
import { craftedFile, expectRefusedEverywhere, sharedBase } from './refuse.js';

// Headers are compared one by one as they are reached, so the work is
// bounded by what the metadata lists, however many headers the file holds.
describe('a flood of headers after a genuine bundle.json', () => {
  it('is refused at the first header that is not the one Ferry writes', async () => {
    const { entries } = await sharedBase();
    const empty: CraftEntry[] = Array.from({ length: 100_000 }, (_, i) => ({
      name: `f${i}`,
      type: 'File',
      data: Buffer.alloc(0),
    }));
    const file = await craftedFile(tarBytes([entries[0]!, ...empty]), 'tar');
    await expectRefusedEverywhere(file, 'E_UNLISTED_ENTRY', 3, ['verify', 'install']);
  });
});
