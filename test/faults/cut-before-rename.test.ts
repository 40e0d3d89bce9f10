import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ferry, json } from '../helpers.js';
import { cloneAppliance, installOk, snapshot, status } from '../e2e/appliance.js';
import { atFirstRelease, faultProduct } from './product.js';

// A cut while state.json is written: the new state whole in its temp file,
// not yet renamed over state.json (FERRY_TEST_CRASH_BEFORE_RENAME). Journal
// writes are cut elsewhere (power-cut.test.ts); this point lies between them.

const product = faultProduct();

async function cutAndRecover(root: string, args: string[]): Promise<void> {
  const cut = await ferry([...args, '--root', root, '--yes'], {
    env: { FERRY_TEST_CRASH_BEFORE_RENAME: 'state.json' },
  });
  expect(cut.code, cut.stderr).toBe(-1);
  const recovered = await ferry(['recover', '--root', root, '--json']);
  expect(recovered.code, recovered.stderr).toBe(0);
  expect(json<{ recovered: boolean }>(recovered).recovered).toBe(true);
}

describe('a cut before state.json is renamed', () => {
  it('an install: recover leaves the old release byte for byte, no temp state beside it', async () => {
    const root = await atFirstRelease(product, join(product.dir, 'install'));
    const before = await snapshot(root);
    await cutAndRecover(root, ['install', product.bundles['1.3.0'] as string]);
    expect(await snapshot(root)).toEqual(before);
    expect(
      json<{ recovered: boolean }>(await ferry(['recover', '--root', root, '--json'])).recovered,
    ).toBe(false);
    await installOk(product.bundles['1.3.0'] as string, root);
  });

  it('a rollback: recover leaves the release it was at byte for byte', async () => {
    const root = join(product.dir, 'rollback');
    await cloneAppliance(await atFirstRelease(product, join(product.dir, 'base')), root);
    await installOk(product.bundles['1.3.0'] as string, root);
    const before = await snapshot(root);
    await cutAndRecover(root, ['rollback']);
    expect(await snapshot(root)).toEqual(before);
    expect((await status(root)).release).toBe('1.3.0');
    const back = await ferry(['rollback', '--root', root, '--yes']);
    expect(back.code, back.stderr).toBe(0);
  });
});
