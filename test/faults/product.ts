import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll } from 'vitest';
import { buildAll, tempDir, workspace, type Workspace } from '../helpers.js';

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
