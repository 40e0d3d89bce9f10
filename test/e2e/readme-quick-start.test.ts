import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers.js';

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
