import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildAll, ferry, json, tempDir, workspace, type Workspace } from '../helpers.js';
import {
  cloneAppliance,
  initAppliance,
  install,
  installOk,
  snapshot,
  status,
} from './appliance.js';

// A power cut at every journal step of an update with upgrades, a new version
// set beside old ones, artifacts, a removal and a commit: SIGKILL right after
// the Nth journal write (FERRY_TEST_CRASH_AT=N), then `ferry recover`.

let dir: string;
let ws: Workspace;
let bundles: Record<string, string>;
let base: string;
let target: Record<string, string>;

beforeAll(async () => {
  dir = await tempDir();
  ws = await workspace(dir);
  bundles = await buildAll(ws, join(dir, 'bundles'), 'tar');
  base = join(dir, 'at-1.0.0');
  await initAppliance(ws, base);
  await installOk(bundles['1.0.0'] as string, base);
  target = json<{ target: Record<string, string> }>(
    await ferry(['inspect', bundles['1.3.0'] as string, '--json']),
  ).target;
});

describe('a power cut at any journal step', () => {
  it(
    'leaves the appliance entirely at the old release or entirely at the new one',
    { timeout: 600_000 },
    async () => {
      const before = await snapshot(base);
      const outcomes: Array<{ killPoint: number; recoveredTo: string | null }> = [];
      for (let killPoint = 1; killPoint < 200; killPoint++) {
        const root = join(dir, `cut-${killPoint}`);
        await cloneAppliance(base, root);
        const run = await ferry(
          ['install', bundles['1.3.0'] as string, '--root', root, '--yes', '--json'],
          { env: { FERRY_TEST_CRASH_AT: String(killPoint) } },
        );
        if (run.code !== -1) {
          // Past the last journal write: the install finished normally.
          expect(run.code, run.stderr).toBe(0);
          break;
        }
        const recovered = await ferry(['recover', '--root', root, '--json']);
        expect(recovered.code, recovered.stderr).toBe(0);
        expect(json<{ recovered: boolean }>(recovered).recovered).toBe(true);
        const after = await status(root);
        outcomes.push({ killPoint, recoveredTo: after.release });
        if (after.release === '1.0.0') {
          const now = await snapshot(root);
          const changed = [...new Set([...Object.keys(now), ...Object.keys(before)])].filter(
            (key) => now[key] !== before[key],
          );
          expect(changed, `kill point ${killPoint}`).toEqual([]);
        } else {
          expect(after.release, `kill point ${killPoint}`).toBe('1.3.0');
          expect(after.components).toEqual(target);
          expect(
            (await ferry(['status', '--root', root, '--verify'])).code,
            `kill point ${killPoint}`,
          ).toBe(0);
        }
        // The journal is gone and the appliance takes the next install.
        const next = await install(bundles['1.3.0'] as string, root);
        expect(next.code, `kill point ${killPoint}: ${next.stderr}`).toBe(0);
        expect((await status(root)).release).toBe('1.3.0');
        const history = await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8');
        expect(history).toContain('"operation":"recover"');
      }
      const back = outcomes.filter((o) => o.recoveredTo === '1.0.0').length;
      const forward = outcomes.length - back;
      console.log(
        `power cut: ${outcomes.length} kill points exercised: ${back} rolled back, ${forward} rolled forward`,
      );
      expect(outcomes.length).toBeGreaterThanOrEqual(15);
      expect(back).toBeGreaterThan(0);
      expect(forward).toBeGreaterThan(0);
    },
  );
});
