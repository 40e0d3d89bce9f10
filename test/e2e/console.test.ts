import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAll, FERRY, ferry, tempDir, workspace, type Workspace } from '../helpers.js';
import { cloneAppliance, initAppliance, installOk, status } from './appliance.js';

// The console in a real terminal: tmux runs `ferry console`, the test reads
// the screen with capture-pane and presses keys with send-keys, as an
// operator would. tmux comes from scripts/setup-system.sh. The key handling
// in all its cases is tested in test/installer/console/run.test.tsx.

let dir: string;
let ws: Workspace;
let media: string;
let base: string;
const socket = `ferry-test-${process.pid}`;

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
}

async function screenContains(session: string, text: string, timeoutMs = 20_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  let screen = '';
  while (Date.now() < until) {
    screen = tmux('capture-pane', '-t', session, '-p');
    if (screen.includes(text)) return screen;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`screen never showed "${text}":\n${screen}`);
}

function runConsole(session: string, root: string): void {
  const exitFile = join(dir, `${session}.exit`);
  tmux(
    'new-session',
    '-d',
    '-s',
    session,
    '-x',
    '150',
    '-y',
    '50',
    `${process.execPath} ${FERRY} console --root ${root} --media ${media}; echo $? > ${exitFile}; sleep 60`,
  );
}

beforeAll(async () => {
  dir = await tempDir();
  ws = await workspace(dir);
  const bundles = await buildAll(ws, join(dir, 'bundles'), 'tar', ['1.0.0', '1.1.0', '1.2.0']);
  media = join(dir, 'usb-stick');
  await mkdir(media);
  await copyFile(bundles['1.2.0'] as string, join(media, 'acme-appliance-1.2.0-update.tar'));
  await copyFile(bundles['1.1.0'] as string, join(media, 'acme-appliance-1.1.0-update.tar'));
  base = join(dir, 'at-1.0.0');
  await initAppliance(ws, base);
  await installOk(bundles['1.0.0'] as string, base);
});

afterAll(() => {
  try {
    tmux('kill-server');
  } catch {
    // no server left
  }
});

describe('ferry console in a terminal', () => {
  it('shows the plan; Enter applies it and the appliance reaches the target release', async () => {
    const root = join(dir, 'one-click');
    await cloneAppliance(base, root);
    runConsole('apply', root);
    const plan = await screenContains('apply', '[Enter] apply');
    expect(plan).toContain('Update ready: acme-appliance 1.2.0');
    expect(plan).toContain('acme-appliance-1.1.0-update.tar: 1.1.0, not the newest');
    tmux('send-keys', '-t', 'apply', 'Enter');
    await screenContains('apply', 'COMMITTED: acme-appliance is now at 1.2.0');
    tmux('send-keys', '-t', 'apply', 'q');
    await expect
      .poll(() => readFile(join(dir, 'apply.exit'), 'utf8').catch(() => ''), { timeout: 10_000 })
      .toBe('0\n');
    expect((await status(root)).release).toBe('1.2.0');
  });

  it('a failing test pass: the screen says rolled back and the appliance stays where it was', async () => {
    const root = join(dir, 'one-click-fails');
    await cloneAppliance(base, root);
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail', 'web.test'), '');
    runConsole('fails', root);
    await screenContains('fails', '[Enter] apply');
    tmux('send-keys', '-t', 'fails', 'Enter');
    const screen = await screenContains('fails', 'ROLLED BACK');
    expect(screen).toContain('web failed in the test pass (check-pages.sh): exited with status 1');
    tmux('send-keys', '-t', 'fails', 'q');
    await expect
      .poll(() => readFile(join(dir, 'fails.exit'), 'utf8').catch(() => ''), { timeout: 10_000 })
      .toBe('1\n');
    expect((await status(root)).release).toBe('1.0.0');
  });

  it('refuses without a terminal and points at ferry install', async () => {
    const result = await ferry(['console', '--root', base]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('ferry install');
  });
});
