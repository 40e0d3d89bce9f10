import { execFileSync, spawnSync } from 'node:child_process';
import { copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildAll, ROOT, tempDir, workspace, type Workspace } from '../helpers.js';

let dir: string;
let ws: Workspace;
let bundles: Record<string, string>;

beforeAll(async () => {
  dir = await tempDir();
  ws = await workspace(dir);
  bundles = await buildAll(ws, join(dir, 'bundles'), 'zip');
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'package.mjs')], { cwd: ROOT });
});

describe('the packaged installer', () => {
  it('installs a fixture bundle from a folder with nothing but itself', async () => {
    const stick = join(dir, 'usb-stick');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(stick);
    await copyFile(join(ROOT, 'dist', 'package', 'ferry.mjs'), join(stick, 'ferry.mjs'));
    await copyFile(bundles['1.0.0'] as string, join(stick, 'release.zip'));
    expect(await readdir(stick)).toEqual(['ferry.mjs', 'release.zip']);
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [join(stick, 'ferry.mjs'), ...args], {
        cwd: stick,
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      });
    const root = join(dir, 'appliance');
    expect(
      run(
        'init',
        '--root',
        root,
        '--product',
        'acme-appliance',
        '--platform',
        'acme-os@7.2.1',
        '--trust',
        ws.trust,
      ).status,
    ).toBe(0);
    const install = run('install', 'release.zip', '--root', root, '--yes');
    expect(install.status, install.stderr).toBe(0);
    expect(install.stdout).toContain('COMMITTED: acme-appliance is at 1.0.0');
    const status = run('status', '--root', root, '--verify', '--json');
    expect(JSON.parse(status.stdout)).toMatchObject({ release: '1.0.0', problems: [] });
  });
});
