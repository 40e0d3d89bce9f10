import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, run, tempDir } from '../helpers.js';

/**
 * The Quick start tells a developer which system tools the tests drive, so
 * that a test failing for want of one is no surprise: it must name every tool
 * scripts/setup-system.sh installs.
 */

const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
const quickStart = /^## Quick start\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? '';
const setup = await readFile(join(ROOT, 'scripts', 'setup-system.sh'), 'utf8');
const tools = [
  ...[...setup.matchAll(/command -v (\S+) >\/dev\/null/g)].map(([, tool]) => tool as string),
  ...[...setup.matchAll(/\[ -x (\S+) \]/g)].map(([, tool]) => tool as string),
];

describe("the README's Quick start", () => {
  it('finds the tools setup-system.sh installs', () => {
    expect(tools).toEqual(expect.arrayContaining(['tar', 'tmux', 'skopeo']));
  });

  it.each(tools)('names %s', (tool) => {
    expect(quickStart).toContain(`\`${tool}\``);
  });
});

/**
 * `npm run demo` is the Quick start's first command after `npm ci`: it must
 * run to its end on a fresh clone, as CI's is. The demo checks each ferry
 * command's exit code itself and stops at the first that differs.
 */
describe('npm run demo', () => {
  it('builds the fixture releases and installs them, the failure and its rollback included', async () => {
    const dir = await tempDir('ferry-demo-test-');
    const result = await run(process.execPath, [join(ROOT, 'scripts', 'demo.mjs')], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, TMPDIR: dir },
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      'install 1.0.0 → 1.3.0: rolled-back (web test: exited with status 1)',
    );
    expect(result.stdout).toMatch(
      /install 1\.0\.0 → 1\.3\.0: committed\n[\s\S]*Every installed file matches its recorded hash\.\n {2}\(exit 0\)\n\nDone\./,
    );
  }, 180_000);
});
