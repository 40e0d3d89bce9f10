import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
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

describe('a cut ferry init', () => {
  // Nothing but init can follow it, and init refuses an appliance's files: the
  // hints of both say what a cut init left and how to run it again, where they
  // sent the operator to each other or to a backup a new appliance has not.
  it.each(['appliance.yaml', 'state.json'])(
    'before %s is renamed: status and init say to remove what it wrote and run it again, and that works',
    async (name) => {
      const root = join(product.dir, `init-cut-${name}`);
      const init = ['init', '--root', root, '--product', 'acme-appliance'];
      init.push('--platform', 'acme-os@7.2.1', '--trust', product.ws.trust);
      const cut = await ferry(init, { env: { FERRY_TEST_CRASH_BEFORE_RENAME: name } });
      expect(cut.code, cut.stderr).toBe(-1);
      const written = ['etc/ferry/appliance.yaml', 'etc/ferry/trust.json']
        .map((file) => join(root, file))
        .filter((file) => existsSync(file));
      const hints = [];
      for (const command of [['status', '--root', root], init]) {
        const refused = await ferry(command);
        expect(refused.code, refused.stderr).toBe(2);
        hints.push(refused.stderr);
      }
      // status finds no appliance at all when the cut came before appliance.yaml: init is what it says next.
      const told = name === 'state.json' ? hints : hints.slice(1);
      for (const hint of told) {
        expect(hint).toContain('a ferry init cut short');
        for (const file of written) expect(hint).toContain(file);
      }
      for (const file of written) await rm(file);
      expect((await ferry(init)).code).toBe(0);
      await installOk(product.bundles['1.0.0'] as string, root);
    },
  );

  it('an appliance that lost state.json keeps the hint to restore it', async () => {
    const root = await atFirstRelease(product, join(product.dir, 'lost-state'));
    await rm(join(root, 'var/lib/ferry/history.jsonl'));
    await rm(join(root, 'var/lib/ferry/state.json'));
    const refused = await ferry(['status', '--root', root]);
    expect(refused.stderr).toContain('restore state.json from a backup');
  });
});
