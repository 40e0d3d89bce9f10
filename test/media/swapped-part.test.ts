import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ferry, json } from '../helpers.js';
import { initAppliance, install, snapshot } from '../e2e/appliance.js';
import { faultProduct } from '../faults/product.js';
import { makeMedia } from './helpers.js';

// A part is found as a file of the right size when the volumes are opened and
// read through later, while staging. Here db's pre-validate artifact changes
// the media in between, as someone at the appliance could: swaps a part for a
// FIFO, pulls a stick (its part, or the whole volume, gone), or cuts a part short.
const SWAP =
  'if [ -e "$FERRY_ROOT/swap" ]; then p=$(cat "$FERRY_ROOT/swap"); rm -f "$p"; mkfifo "$p"; fi';
const PULL = 'if [ -e "$FERRY_ROOT/pull" ]; then rm -rf "$(cat "$FERRY_ROOT/pull")"; fi';
const CUT =
  'if [ -e "$FERRY_ROOT/cut" ]; then p=$(cat "$FERRY_ROOT/cut"); truncate -s 1000 "$p"; fi';
const product = faultProduct({ 'scripts/db/check-space.sh': [SWAP, PULL, CUT].join('\n') });

/** Fresh volumes of 1.0.0 and an empty appliance, with `trigger` naming what db's pre-validate does to `path` in them. */
async function setUp(
  name: string,
  trigger: 'swap' | 'pull' | 'cut',
  path: string,
): Promise<{ media: string; root: string }> {
  const media = join(product.dir, `media-${name}`);
  await makeMedia({ ws: product.ws, bundle: product.bundles['1.0.0'] as string }, media);
  const root = join(product.dir, `appliance-${name}`);
  await initAppliance(product.ws, root);
  await writeFile(join(root, trigger), join(media, path));
  return { media, root };
}

/**
 * Everything an operator can see of the appliance: its files, and what status
 * says but the transactions it lists (a failed install is one of them).
 */
async function seen(root: string): Promise<unknown> {
  const status = await ferry(['status', '--root', root, '--json']);
  expect(status.code, status.stderr).toBe(0);
  const { transactions: _, ...rest } = json<Record<string, unknown>>(status);
  return { files: await snapshot(root), status: rest };
}

describe('a part swapped on its volume during an install', () => {
  it('a FIFO in place of part 2: E_PART_MISMATCH naming the part and the volume, no hang, the appliance unchanged', async () => {
    const { media, root } = await setUp('fifo', 'swap', 'vol2/FERRY/BUNDLE.002');
    const before = await snapshot(root);
    const result = await install(media, root);
    expect(result.code, result.stderr).toBe(3);
    expect(result.stderr).toContain('E_PART_MISMATCH');
    expect(result.stderr).toMatch(/part 2 on volume 2 \(\w+\) is now a FIFO/);
    expect(await snapshot(root)).toEqual(before);
  }, 60_000);
});

describe('a stick pulled during an install', () => {
  it.each([
    ['its part file gone', 'vol3/FERRY/BUNDLE.003', 3],
    ['the whole volume gone', 'vol2', 2],
  ])(
    '%s: E_PART_MISSING naming the part and the volume, a hint to put it back, exit 1, the appliance unchanged',
    async (_, path, part) => {
      const { media, root } = await setUp(`pulled-${part}`, 'pull', path);
      const before = await seen(root);
      const result = await install(media, root);
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toContain('E_PART_MISSING');
      expect(result.stderr).toMatch(
        new RegExp(`part ${part} of 3 \\(FERRY/BUNDLE\\.00${part}\\) on volume ${part} \\(\\w+\\)`),
      );
      expect(result.stderr).toMatch(new RegExp(`hint: .*put volume ${part} \\(\\w+\\) back`));
      expect(result.stderr).toContain('nothing was changed');
      expect(await seen(root)).toEqual(before);
      const history = (await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8'))
        .trim()
        .split('\n');
      expect(JSON.parse(history.at(-1) as string)).toMatchObject({ outcome: 'unchanged' });
    },
    60_000,
  );

  it('a part cut short: E_PART_MISMATCH naming it, exit 3, the appliance unchanged', async () => {
    const { media, root } = await setUp('cut', 'cut', 'vol3/FERRY/BUNDLE.003');
    const before = await seen(root);
    const result = await install(media, root);
    expect(result.code, result.stderr).toBe(3);
    expect(result.stderr).toContain('E_PART_MISMATCH');
    expect(result.stderr).toMatch(/part 3 on volume 3 \(\w+\)/);
    expect(await seen(root)).toEqual(before);
  }, 60_000);
});
