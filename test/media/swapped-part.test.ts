import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { initAppliance, install, snapshot } from '../e2e/appliance.js';
import { faultProduct } from '../faults/product.js';
import { makeMedia } from './helpers.js';

// A part is found as a file of the right size when the volumes are opened and
// read through later, while staging. Here db's pre-validate artifact swaps
// part 2 for a FIFO in between, as someone at the appliance could.
const SWAP =
  'if [ -e "$FERRY_ROOT/swap" ]; then p=$(cat "$FERRY_ROOT/swap"); rm -f "$p"; mkfifo "$p"; fi';
const product = faultProduct({ 'scripts/db/check-space.sh': SWAP });

describe('a part swapped on its volume during an install', () => {
  it('a FIFO in place of part 2: E_PART_MISMATCH naming the part and the volume, no hang, the appliance unchanged', async () => {
    const media = join(product.dir, 'media');
    await makeMedia({ ws: product.ws, bundle: product.bundles['1.0.0'] as string }, media);
    const root = join(product.dir, 'appliance');
    await initAppliance(product.ws, root);
    await writeFile(join(root, 'swap'), join(media, 'vol2', 'FERRY/BUNDLE.002'));
    const before = await snapshot(root);
    const result = await install(media, root);
    expect(result.code, result.stderr).toBe(3);
    expect(result.stderr).toContain('E_PART_MISMATCH');
    expect(result.stderr).toMatch(/part 2 on volume 2 \(\w+\) is now a FIFO/);
    expect(await snapshot(root)).toEqual(before);
  }, 60_000);
});
