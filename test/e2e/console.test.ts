import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { render } from 'ink-testing-library';
import { createElement } from 'react';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAppliance } from '../../installer/appliance.js';
import { applianceView, discover } from '../../installer/console/discover.js';
import { initialState } from '../../installer/console/model.js';
import { ConsoleApp, ConsoleController } from '../../installer/console/run.js';
import { acquireLock } from '../../installer/engine/lock.js';
import { buildAll, FERRY, ferry, tempDir, workspace, type Workspace } from '../helpers.js';
import { cloneAppliance, initAppliance, installOk, snapshot, status } from './appliance.js';

// The console as an operator meets it, on real signed bundles and an
// appliance at 1.0.0 (a read-only template: each test works on its own clone).
// First in a real terminal: tmux runs `ferry console`, the test reads the
// screen with capture-pane and presses keys with send-keys. tmux comes from
// scripts/setup-system.sh. Then the controller in every case its keys have:
// keys typed into the real ink screen (ink-testing-library), the real install
// engine behind Enter. Both share this file so that they share the bundles.

let dir: string;
let ws: Workspace;
let bundles: Record<string, string>;
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
  bundles = await buildAll(ws, join(dir, 'bundles'), 'tar', ['1.0.0', '1.1.0', '1.2.0']);
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

  it('Ctrl-C while installing: the screen says it stops and rolls back, then shows the result', async () => {
    const root = join(dir, 'one-click-interrupted');
    await cloneAppliance(base, root);
    const before = await snapshot(root);
    await mkdir(join(root, 'hang'));
    await writeFile(join(root, 'hang', 'web.update'), '');
    runConsole('interrupted', root);
    await screenContains('interrupted', '[Enter] apply');
    tmux('send-keys', '-t', 'interrupted', 'Enter');
    await screenContains('interrupted', 'web: update publish.sh');
    tmux('send-keys', '-t', 'interrupted', 'C-c');
    await screenContains(
      'interrupted',
      'SIGINT: stopping at the next safe point, then rolling back',
    );
    await rm(join(root, 'hang'), { recursive: true });
    const screen = await screenContains('interrupted', 'ROLLED BACK');
    expect(screen).toContain('interrupted by SIGINT');
    tmux('send-keys', '-t', 'interrupted', 'q');
    await expect
      .poll(() => readFile(join(dir, 'interrupted.exit'), 'utf8').catch(() => ''), {
        timeout: 10_000,
      })
      .toBe('1\n');
    expect(await snapshot(root)).toEqual(before);
  });

  it('refuses without a terminal and points at ferry install', async () => {
    const result = await ferry(['console', '--root', base]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('ferry install');
  });
});

const ENTER = '\r';
const UP = '\u001B[A';
const DOWN = '\u001B[B';

/** A folder holding copies of these releases' bundles, as a USB stick would. */
async function stick(name: string, releases: string[]): Promise<string> {
  const folder = join(dir, 'sticks', name);
  await mkdir(folder, { recursive: true });
  for (const release of releases) {
    const bundle = bundles[release] as string;
    await copyFile(bundle, join(folder, basename(bundle)));
  }
  return folder;
}

/** The console's screen on a clone of the appliance at 1.0.0, with `media` attached and no other mount point looked at. */
async function openConsole(name: string, media: string, prepare?: (root: string) => Promise<void>) {
  const root = join(dir, name);
  await cloneAppliance(base, root);
  await prepare?.(root);
  const appliance = await openAppliance(root);
  const candidates = await discover(appliance, [media], []);
  const controller = new ConsoleController(
    initialState(applianceView(appliance), candidates),
    root,
  );
  const quits = { count: 0 };
  controller.onQuit = () => quits.count++;
  const screen = render(createElement(ConsoleApp, { controller }));
  // Keys reach the controller once ink listens to stdin (after the first commit).
  await expect.poll(() => screen.stdin.listenerCount('readable')).toBeGreaterThan(0);
  const shows = (text: string) => expect.poll(() => screen.lastFrame() ?? '').toContain(text);
  const done = () =>
    expect.poll(() => controller.state.screen, { timeout: 30_000, interval: 50 }).toBe('done');
  return { root, controller, quits, screen, shows, done };
}

async function installs(root: string): Promise<number> {
  const history = await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8');
  return history.split('\n').filter((line) => line.includes('"operation":"install"')).length;
}

describe('the console controller, keys typed into its screen', () => {
  it('arrows choose another bundle, Enter applies that one, keys wait while it installs, q quits', async () => {
    // Found in this order: 1.0.0 (the install bundle: nothing to do here), 1.1.0, 1.2.0.
    const media = await stick('three', ['1.0.0', '1.1.0', '1.2.0']);
    const { root, controller, quits, screen, shows, done } = await openConsole('arrows', media);
    await shows('Update ready: acme-appliance 1.2.0');
    screen.stdin.write(UP);
    await shows('Update ready: acme-appliance 1.1.0');
    screen.stdin.write(DOWN);
    await shows('Update ready: acme-appliance 1.2.0');
    screen.stdin.write(UP);
    await shows('Update ready: acme-appliance 1.1.0');
    const chosen = controller.state.chosen;

    screen.stdin.write(ENTER);
    // Typed before the install can have finished: ignored, not queued.
    for (const key of ['q', ENTER, DOWN, UP]) screen.stdin.write(key);
    expect(controller.state.screen).toBe('installing');
    expect(controller.state.chosen).toBe(chosen);
    expect(quits.count).toBe(0);

    await done();
    expect(controller.state.error).toBeNull();
    expect(controller.state.result).toMatchObject({ outcome: 'committed', to: '1.1.0' });
    await shows('COMMITTED: acme-appliance is now at 1.1.0');
    expect((await openAppliance(root)).state.release).toBe('1.1.0');
    expect(await installs(root)).toBe(2);

    // The result stays until the operator quits; Enter does not start another install.
    screen.stdin.write(ENTER);
    expect(controller.state.screen).toBe('done');
    screen.stdin.write('q');
    expect(quits.count).toBe(1);
    expect(await installs(root)).toBe(2);
    screen.unmount();
  });

  it('Enter on a blocked plan only explains; nothing is written; q quits', async () => {
    const media = await stick('updates', ['1.1.0', '1.2.0']);
    // A platform older than the bundles need (E_PLATFORM blocks them).
    const { root, controller, quits, screen, shows } = await openConsole(
      'blocked',
      media,
      async (root) => {
        const config = join(root, 'etc/ferry/appliance.yaml');
        await writeFile(config, (await readFile(config, 'utf8')).replace('7.2.1', '6.0.0'));
      },
    );
    await shows('Bundle found, but it cannot be applied');
    const before = await snapshot(root, []);
    screen.stdin.write(ENTER);
    await shows('Enter does nothing: this bundle cannot be applied here.');
    expect(controller.state.screen).toBe('choose');
    expect(await snapshot(root, [])).toEqual(before);
    screen.stdin.write('q');
    expect(quits.count).toBe(1);
    screen.unmount();
  });

  it('Enter when the appliance is already at the release says so and changes nothing', async () => {
    const media = await stick('same', ['1.0.0']);
    const { root, controller, screen, shows } = await openConsole('same', media);
    const before = await snapshot(root, []);
    screen.stdin.write(ENTER);
    await shows('Enter does nothing: the appliance is already at 1.0.0.');
    expect(controller.state.screen).toBe('choose');
    expect(await snapshot(root, [])).toEqual(before);
    screen.unmount();
  });

  it('Enter with no bundle attached says there is nothing to apply', async () => {
    const media = await stick('nothing', []);
    const { controller, quits, screen, shows } = await openConsole('no-bundle', media);
    await shows('No bundle found on the attached media');
    screen.stdin.write(ENTER);
    await shows('Enter does nothing: there is no bundle that can be applied.');
    expect(controller.state.screen).toBe('choose');
    screen.stdin.write('q');
    expect(quits.count).toBe(1);
    screen.unmount();
  });

  it('a locked appliance: the result says E_LOCKED and the appliance is unchanged', async () => {
    const media = await stick('locked', ['1.1.0']);
    const { root, controller, quits, screen, shows, done } = await openConsole('locked', media);
    // Another installer holds the lock: the kernel refuses a second bind, in this process too.
    const held = await acquireLock(join(root, 'var/lib/ferry/lock'), root, 'install');
    try {
      const before = await snapshot(root);
      screen.stdin.write(ENTER);
      await done();
      expect(controller.state.error?.code).toBe('E_LOCKED');
      await shows('NOT APPLIED: E_LOCKED');
      await shows('The appliance was not changed; it is at 1.0.0.');
      expect(await snapshot(root)).toEqual(before);
    } finally {
      await held.release();
    }
    screen.stdin.write('q');
    expect(quits.count).toBe(1);
    screen.unmount();
  });
});
