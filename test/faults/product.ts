import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll } from 'vitest';
import { buildAll, tempDir, workspace, type Workspace } from '../helpers.js';
import { initAppliance, installOk } from '../e2e/appliance.js';

export interface FaultProduct {
  /** The test file's temp folder. */
  dir: string;
  ws: Workspace;
  /** Bundle paths by release. */
  bundles: Record<string, string>;
}

/**
 * The fixture product, with `lines` appended to some of its scripts (paths
 * relative to the product, e.g. `verify/target-state.sh`) before its releases
 * are built: how a fault test makes an artifact misbehave on request. Built
 * before the tests of the enclosing block (skipped with it).
 */
export function faultProduct(lines: Record<string, string> = {}): FaultProduct {
  const product = {} as FaultProduct;
  beforeAll(async () => {
    const dir = await tempDir();
    const ws = await workspace(dir);
    for (const [script, line] of Object.entries(lines))
      await appendFile(join(ws.product, script), `${line}\n`);
    Object.assign(product, { dir, ws, bundles: await buildAll(ws, join(dir, 'bundles')) });
  });
  return product;
}

/** `ferry init` of `root`, then the install of release 1.0.0: where the fault tests start. */
export async function atFirstRelease(product: FaultProduct, root: string): Promise<string> {
  await initAppliance(product.ws, root);
  await installOk(product.bundles['1.0.0'] as string, root);
  return root;
}
