import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { render } from 'ink-testing-library';
import { beforeAll, describe, expect, it } from 'vitest';
import { openAppliance } from '../../../installer/appliance.js';
import { applianceView, discover } from '../../../installer/console/discover.js';
import { initialState } from '../../../installer/console/model.js';
import { ConsoleApp, ConsoleController } from '../../../installer/console/run.js';
import { cloneAppliance, initAppliance, installOk, snapshot } from '../../e2e/appliance.js';
import { buildAll, tempDir, workspace } from '../../helpers.js';

// The controller as the operator drives it: keys typed into the real ink
// screen (ink-testing-library), a real appliance cloned for each test, real
// signed bundles on a "stick", and the real install engine behind Enter.

const ENTER = '\r';
const UP = '\u001B[A';
const DOWN = '\u001B[B';

let dir: string;
let bundles: Record<string, string>;
/** Read-only templates: every test works on its own clone. */
let atFirst: string;
let empty: string;

beforeAll(async () => {
  dir = await tempDir();
  const ws = await workspace(dir);
  bundles = await buildAll(ws, join(dir, 'bundles'), 'tar', ['1.0.0', '1.1.0', '1.2.0']);
  empty = join(dir, 'empty');
  await initAppliance(ws, empty);
  atFirst = join(dir, 'at-1.0.0');
  await cloneAppliance(empty, atFirst);
  await installOk(bundles['1.0.0'] as string, atFirst);
});

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

/** The console on a clone of `template`, with `media` attached and no other mount point looked at. */
async function openConsole(template: string, name: string, media: string) {
  const root = join(dir, name);
  await cloneAppliance(template, root);
  const appliance = await openAppliance(root);
  const candidates = await discover(appliance, [media], []);
  const controller = new ConsoleController(
    initialState(applianceView(appliance), candidates),
    root,
  );
  const quits = { count: 0 };
  controller.onQuit = () => quits.count++;
  const screen = render(<ConsoleApp controller={controller} />);
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

describe('the console controller', () => {
  it('arrows choose another bundle, Enter applies that one, keys wait while it installs, q quits', async () => {
    // Found in this order: 1.0.0 (the install bundle: nothing to do here), 1.1.0, 1.2.0.
    const media = await stick('three', ['1.0.0', '1.1.0', '1.2.0']);
    const { root, controller, quits, screen, shows, done } = await openConsole(
      atFirst,
      'arrows',
      media,
    );
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
    const media = await stick('updates-only', ['1.1.0', '1.2.0']);
    const { root, controller, quits, screen, shows } = await openConsole(empty, 'blocked', media);
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
    const { root, controller, screen, shows } = await openConsole(atFirst, 'same', media);
    const before = await snapshot(root, []);
    screen.stdin.write(ENTER);
    await shows('Enter does nothing: the appliance is already at 1.0.0.');
    expect(controller.state.screen).toBe('choose');
    expect(await snapshot(root, [])).toEqual(before);
    screen.unmount();
  });

  it('Enter with no bundle attached says there is nothing to apply', async () => {
    const media = await stick('nothing', []);
    const { controller, quits, screen, shows } = await openConsole(atFirst, 'no-bundle', media);
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
    const { root, controller, quits, screen, shows, done } = await openConsole(
      atFirst,
      'locked',
      media,
    );
    const holder = spawn('sleep', ['60']);
    try {
      await writeFile(
        join(root, 'var/lib/ferry/lock'),
        JSON.stringify({ pid: holder.pid, command: 'install', since: 'now' }),
      );
      const before = await snapshot(root);
      screen.stdin.write(ENTER);
      await done();
      expect(controller.state.error?.code).toBe('E_LOCKED');
      await shows('NOT APPLIED: E_LOCKED');
      await shows('The appliance was not changed; it is at 1.0.0.');
      expect(await snapshot(root)).toEqual(before);
    } finally {
      holder.kill();
    }
    screen.stdin.write('q');
    expect(quits.count).toBe(1);
    screen.unmount();
  });
});
