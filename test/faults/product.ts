import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildAll, tempDir, workspace, type Workspace } from '../helpers.js';

/**
 * The fixture product, with `lines` appended to some of its scripts (paths
 * relative to the product, e.g. `verify/target-state.sh`) before its releases
 * are built: how a fault test makes an artifact misbehave on request.
 */
export async function faultProduct(
  lines: Record<string, string> = {},
): Promise<{ dir: string; ws: Workspace; bundles: Record<string, string> }> {
  const dir = await tempDir();
  const ws = await workspace(dir);
  for (const [script, line] of Object.entries(lines))
    await appendFile(join(ws.product, script), `${line}\n`);
  const bundles = await buildAll(ws, join(dir, 'bundles'));
  return { dir, ws, bundles };
}
