import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type * as LockModule from '../../installer/engine/lock.js';
import { install } from '../../installer/engine/install.js';
import { rollback } from '../../installer/engine/rollback.js';
import { installOk, status } from '../e2e/appliance.js';
import { atFirstRelease, faultProduct } from './product.js';

// What a command decides on must be read under the lock: another ferry can
// take the lock, commit and release it between a read before and the bind.
// The seam below only widens that window; the other ferry is a real process.

const window = vi.hoisted(() => ({ meanwhile: null as null | (() => Promise<void>) }));

vi.mock('../../installer/engine/lock.js', async (importOriginal) => {
  const real = await importOriginal<typeof LockModule>();
  return {
    ...real,
    acquireLock: async (...args: Parameters<typeof real.acquireLock>) => {
      const meanwhile = window.meanwhile;
      window.meanwhile = null;
      await meanwhile?.();
      return real.acquireLock(...args);
    },
  };
});

const product = faultProduct();

describe('the appliance is read under the lock', () => {
  it('a rollback asked of 1.1.0 → 1.0.0 while another ferry installs 1.2.0 just before it locks: E_APPLIANCE_CHANGED, 1.2.0 stays', async () => {
    const root = await atFirstRelease(product, join(product.dir, 'window'));
    await installOk(product.bundles['1.1.0'] as string, root);
    window.meanwhile = () => installOk(product.bundles['1.2.0'] as string, root);
    const error = await rollback(root, { expect: { from: '1.1.0', to: '1.0.0' } }).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'E_APPLIANCE_CHANGED' });
    expect(await status(root)).toMatchObject({ release: '1.2.0', verified: true });
  });

  it('an install of 1.2.0 while another ferry installs it just before this one locks: planned from 1.2.0, nothing run twice', async () => {
    const root = await atFirstRelease(product, join(product.dir, 'twice'));
    window.meanwhile = () => installOk(product.bundles['1.2.0'] as string, root);
    const result = await install({ root, bundle: product.bundles['1.2.0'] as string, now: true });
    expect(result).toMatchObject({ from: '1.2.0', to: '1.2.0', outcome: 'unchanged' });
    expect(await status(root)).toMatchObject({ release: '1.2.0', verified: true });
  });
});
