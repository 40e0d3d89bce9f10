import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { render } from 'ink-testing-library';
import { createElement } from 'react';
import { beforeAll, describe, expect, it } from 'vitest';
import { openAppliance } from '../../installer/appliance.js';
import { applianceView, discover, wallTime } from '../../installer/console/discover.js';
import { initialState } from '../../installer/console/model.js';
import { ConsoleApp, ConsoleController } from '../../installer/console/run.js';
import { acquireLock } from '../../installer/engine/lock.js';
import { buildAll, FERRY, ferry, json, tempDir, workspace, type Workspace } from '../helpers.js';
import {
  cloneAppliance,
  initAppliance,
  installOk,
  markers,
  snapshot,
  status,
} from './appliance.js';
import { Terminal } from './terminal.js';

// The console as an operator meets it, on real signed bundles and an
// appliance at 1.0.0 (a read-only template: each test works on its own clone).
// First in a real terminal (tmux, through ./terminal.ts): the test reads the
// screen and presses keys. Then the controller in every case its keys have:
// keys typed into the real ink screen (ink-testing-library), the real install
// engine behind Enter. Both share this file so that they share the bundles.

let dir: string;
let ws: Workspace;
let bundles: Record<string, string>;
let media: string;
let base: string;
const terminal = new Terminal();

/**
 * `ferry console` on this appliance with these media, in a terminal of this
 * size; by default one wide enough that a line naming a bundle by its temp
 * path does not wrap, however long TMPDIR is.
 */
function runConsole(
  session: string,
  root: string,
  folders: readonly string[] = [media],
  size: { width: number; height: number } = { width: 200, height: 45 },
): void {
  terminal.ferry(
    session,
    ['console', '--root', root, ...folders.flatMap((f) => ['--media', f])],
    size,
  );
}

/** Quits with q and returns the console's exit code. */
async function quit(session: string): Promise<number> {
  terminal.keys(session, 'q');
  const screen = await terminal.waitFor(session, /exit=\d+/);
  return Number(/exit=(\d+)/.exec(screen)?.[1]);
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

/** A first release of `count` components (one tiny payload each): a plan longer than any screen. */
let many: Promise<string> | undefined;
const manyComponents = (count: number): Promise<string> => (many ??= buildMany(count));

async function buildMany(count: number): Promise<string> {
  const product = join(dir, 'many');
  await mkdir(join(product, 'payload'), { recursive: true });
  await writeFile(join(product, 'payload', 'file.txt'), 'x\n');
  const names = Array.from({ length: count }, (_, i) => `part-${String(i + 1).padStart(2, '0')}`);
  await writeFile(
    join(product, 'spec.yaml'),
    [
      'product: acme-appliance',
      "release: '1.0.0'",
      "notes: 'Everything in its own component.'",
      "platform: { name: acme-os, range: '>=7.0.0' }",
      'history: ./history',
      'components:',
      ...names.map((name) => `  ${name}: { version: '1.0.0', payload: ./payload }`),
    ].join('\n'),
  );
  const built = await ferry([
    'build',
    join(product, 'spec.yaml'),
    '--out',
    join(product, 'out'),
    '--key',
    ws.key,
    '--first-release',
    '--json',
  ]);
  expect(built.code, built.stderr).toBe(0);
  return join(product, 'out');
}

describe('ferry console in a terminal', () => {
  it('80×24: release notes that imitate a result line stay quoted as notes, every row of them', async () => {
    const product = join(dir, 'noted');
    await mkdir(join(product, 'payload'), { recursive: true });
    await writeFile(join(product, 'payload', 'file.txt'), 'x\n');
    await writeFile(
      join(product, 'spec.yaml'),
      [
        'product: acme-appliance',
        "release: '1.0.0'",
        'notes: |-',
        '  First line of the notes.',
        '  ✔ COMMITTED: acme-appliance is now at 1.0.0',
        `    ✔ COMMITTED: acme-appliance is now at 1.0.0 ${'and a line long enough to wrap '.repeat(3)}`,
        "platform: { name: acme-os, range: '>=7.0.0' }",
        'history: ./history',
        'components:',
        "  part: { version: '1.0.0', payload: ./payload }",
      ].join('\n'),
    );
    const built = await ferry([
      'build',
      join(product, 'spec.yaml'),
      '--out',
      join(product, 'out'),
      '--key',
      ws.key,
      '--first-release',
      '--json',
    ]);
    expect(built.code, built.stderr).toBe(0);
    const root = join(dir, 'empty-noted');
    await initAppliance(ws, root);
    runConsole('noted', root, [join(product, 'out')], { width: 80, height: 24 });
    const screen = await terminal.waitFor('noted', 'First line of the notes.', { visible: true });
    const rows = screen.split('\n');
    const at = rows.findIndex((row) => row.includes('First line of the notes.'));
    expect(rows[at - 1]).toBe('Notes:');
    // Three lines of notes, the last wrapped to two rows: each row behind the quote, none of
    // them starting as a line of Ferry's own does.
    const quoted = rows.slice(at, at + 4);
    for (const row of quoted) expect(row).toMatch(/^ {2}│ /);
    expect(quoted.filter((row) => row.includes('COMMITTED'))).toHaveLength(2);
    expect(rows.filter((row) => /^\s*✔ COMMITTED/.test(row))).toEqual([]);
    expect(rows[at + 4]).not.toMatch(/^ {2}│/);
    expect(await quit('noted')).toBe(0);
  });

  it.each([
    [80, 24],
    [110, 45],
  ])(
    '%i×%i: the header stays on top while a plan of 40 components scrolls; the last row is reachable',
    async (width, height) => {
      const folder = await manyComponents(40);
      const root = join(dir, `empty-${width}`);
      await initAppliance(ws, root);
      const session = `many-${width}`;
      runConsole(session, root, [folder], { width, height });
      const first = await terminal.waitFor(session, '▼', { visible: true });
      const seen = new Set<string>();
      let screen = first;
      for (let page = 0; ; page++) {
        const rows = screen.replace(/\n+$/, '').split('\n');
        expect(rows.length).toBeLessThanOrEqual(height);
        expect(rows[0]).toBe('Ferry console — acme-appliance on acme-os 7.2.1');
        expect(rows[2]).toBe('✔ Update ready: acme-appliance 1.0.0 (install)');
        const footer = rows.at(-1) ?? '';
        expect(footer).toContain('[Enter] apply');
        expect(footer).toContain('[↑↓ PgUp/Dn] scroll');
        for (const row of rows) for (const name of row.match(/part-\d\d/g) ?? []) seen.add(name);
        if (!footer.includes('▼')) break;
        expect(page).toBeLessThan(40);
        const position = /\d+-\d+\/\d+/.exec(footer)?.[0] ?? '';
        terminal.keys(session, 'NPage');
        await expect
          .poll(() => (screen = terminal.screen(session, { visible: true })).split('\n').at(-2), {
            timeout: 20_000,
          })
          .not.toContain(position);
        screen = terminal.screen(session, { visible: true });
      }
      expect(seen.size).toBe(40);
      expect(screen).toContain('Stages');
      // Up from the end: something is above and below again.
      terminal.keys(session, 'Up');
      await terminal.waitFor(session, '▲▼', { visible: true });
      expect(await quit(session)).toBe(0);
    },
  );

  it('follows a resized terminal: the top stays, the rows fit the new size', async () => {
    const folder = await manyComponents(40);
    const root = join(dir, 'empty-resized');
    await initAppliance(ws, root);
    runConsole('resized', root, [folder], { width: 110, height: 45 });
    await terminal.waitFor('resized', '▼ 1-39/49', { visible: true });
    terminal.resize('resized', 80, 24);
    // 24 rows: five on top, the footer, and 18 of the 49 that scroll.
    const small = await terminal.waitFor('resized', '▼ 1-18/49', { visible: true });
    const rows = small.replace(/\n+$/, '').split('\n');
    expect(rows.length).toBe(24);
    expect(rows[0]).toBe('Ferry console — acme-appliance on acme-os 7.2.1');
    expect(rows[4]).toBe('─'.repeat(80));
    expect(await quit('resized')).toBe(0);
  });

  it('shows the plan; Enter applies it and the appliance reaches the target release', async () => {
    const root = join(dir, 'one-click');
    await cloneAppliance(base, root);
    runConsole('apply', root);
    const plan = await terminal.waitFor('apply', '[Enter] apply');
    expect(plan).toContain('Update ready: acme-appliance 1.2.0');
    expect(plan).toContain('acme-appliance-1.1.0-update.tar: 1.1.0, ready, older than 1.2.0');
    terminal.keys('apply', 'Enter');
    await terminal.waitFor('apply', 'COMMITTED: acme-appliance is now at 1.2.0');
    expect(await quit('apply')).toBe(0);
    expect((await status(root)).release).toBe('1.2.0');
  });

  it('a failing test pass: the screen says rolled back and the appliance stays where it was', async () => {
    const root = join(dir, 'one-click-fails');
    await cloneAppliance(base, root);
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail', 'web.test'), '');
    runConsole('fails', root);
    await terminal.waitFor('fails', '[Enter] apply');
    terminal.keys('fails', 'Enter');
    const screen = await terminal.waitFor('fails', 'ROLLED BACK');
    expect(screen).toContain('web failed in the test pass (check-pages.sh): exited with status 1');
    expect(await quit('fails')).toBe(1);
    expect((await status(root)).release).toBe('1.0.0');
  });

  it('Ctrl-C while installing: the screen says it stops and rolls back, then shows the result', async () => {
    const root = join(dir, 'one-click-interrupted');
    await cloneAppliance(base, root);
    const before = await snapshot(root);
    await mkdir(join(root, 'hang'));
    await writeFile(join(root, 'hang', 'web.update'), '');
    runConsole('interrupted', root);
    await terminal.waitFor('interrupted', '[Enter] apply');
    terminal.keys('interrupted', 'Enter');
    await terminal.waitFor('interrupted', 'web: update publish.sh');
    terminal.keys('interrupted', 'C-c');
    await terminal.waitFor(
      'interrupted',
      'SIGINT: stopping at the next safe point, then rolling back',
    );
    await rm(join(root, 'hang'), { recursive: true });
    const screen = await terminal.waitFor('interrupted', 'ROLLED BACK');
    expect(screen).toContain('interrupted by SIGINT');
    expect(await quit('interrupted')).toBe(1);
    expect(await snapshot(root)).toEqual(before);
  });

  it('the terminal closed while installing (SIGHUP, a hung-up tty): the install still rolls back, nothing is left open', async () => {
    const root = join(dir, 'one-click-hung-up');
    await cloneAppliance(base, root);
    const before = await snapshot(root);
    await mkdir(join(root, 'hang'));
    await writeFile(join(root, 'hang', 'web.update'), '');
    runConsole('hung-up', root);
    await terminal.waitFor('hung-up', '[Enter] apply');
    terminal.keys('hung-up', 'Enter');
    await terminal.waitFor('hung-up', 'web: update publish.sh');
    terminal.kill('hung-up');
    // The artifact is let finish (README, Interrupts); then the console rolls back,
    // though every write to its terminal now fails with EIO.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await rm(join(root, 'hang'), { recursive: true });
    const outcome = async () => {
      const history = await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8');
      return (JSON.parse(history.trim().split('\n').at(-1) as string) as { outcome: string })
        .outcome;
    };
    await expect.poll(outcome, { timeout: 30_000 }).toBe('rolled-back');
    const shown = await ferry(['status', '--root', root, '--json']);
    expect(json(shown)).not.toHaveProperty('open');
    expect(await snapshot(root)).toEqual(before);
  });

  it('two consoles press Enter on one appliance, and a rollback is asked from the shell: one installs, the others get E_LOCKED naming it', async () => {
    const root = join(dir, 'two-consoles');
    await cloneAppliance(base, root);
    await mkdir(join(root, 'hang'));
    await writeFile(join(root, 'hang', 'web.update'), '');
    runConsole('first', root);
    runConsole('second', root);
    await terminal.waitFor('first', '[Enter] apply');
    await terminal.waitFor('second', '[Enter] apply');
    terminal.keys('first', 'Enter');
    await terminal.waitFor('first', 'web: update publish.sh');
    terminal.keys('second', 'Enter');
    const refused = await terminal.waitFor('second', 'NOT APPLIED: E_LOCKED');
    expect(refused).toMatch(/another ferry \(install, pid \d+, since /);
    expect(refused).toContain('The appliance was not changed');
    const rollback = await ferry(['rollback', '--root', root, '--yes']);
    expect(rollback.code, rollback.stderr).toBe(5);
    expect(rollback.stderr).toMatch(/E_LOCKED: another ferry \(install, pid \d+, since /);
    await rm(join(root, 'hang'), { recursive: true });
    await terminal.waitFor('first', 'COMMITTED: acme-appliance is now at 1.2.0');
    expect(await quit('first')).toBe(0);
    // The console's exit is 1 for anything not done (README), E_LOCKED included.
    expect(await quit('second')).toBe(1);
    expect((await status(root)).release).toBe('1.2.0');
    expect(await installs(root)).toBe(2);
  });

  it('a blocked plan: its rows are held back, not drawn as if they would run; no versions repeated', async () => {
    const root = join(dir, 'drifted');
    await cloneAppliance(base, root);
    // Someone replaced web by hand: the appliance drifted from its release, web is blocked.
    const stateFile = join(root, 'var/lib/ferry/state.json');
    const state = JSON.parse(await readFile(stateFile, 'utf8')) as {
      components: Record<string, { version: string }>;
    };
    (state.components.web as { version: string }).version = '1.0.9';
    await writeFile(stateFile, JSON.stringify(state));
    runConsole('drifted', root, [media], { width: 80, height: 24 });
    const screen = await terminal.waitFor('drifted', 'What would happen', { visible: true });
    expect(screen).toContain('✘ Bundle found, but it cannot be applied: acme-appliance 1.2.0');
    expect(screen).toMatch(/^ {2}web\s+BLOCKED\s+1\.0\.9 → \d/m);
    expect(screen).toMatch(/^ {2}db\s+\(upgrade\)\s+3\.0\.0 → [\d.]+\s+held back: web blocked$/m);
    // No row says it will act, and none repeats its versions as its reason.
    expect(screen).not.toMatch(/^ {2}\S+\s+(install|upgrade|remove)\s/m);
    expect(screen).not.toMatch(/→ (\S+)\s+\S*\s*→ \1/);
    expect(screen).not.toContain('[Enter] apply');
    terminal.keys('drifted', 'Enter');
    await terminal.waitFor('drifted', 'Enter does nothing: this bundle cannot be applied here.');
    expect(await quit('drifted')).toBe(0);
  });

  it('shows who signed the bundle; the other bundles keep their reasons while the operator moves', async () => {
    const folder = join(dir, 'with-broken');
    await mkdir(folder);
    for (const release of ['1.1.0', '1.2.0'])
      await copyFile(bundles[release] as string, join(folder, `acme-appliance-${release}.tar`));
    await writeFile(join(folder, 'broken.tar'), 'not a bundle');
    const root = join(dir, 'moving');
    await cloneAppliance(base, root);
    runConsole('moving', root, [folder]);
    // From the list's title to the footer.
    const others = (screen: string) =>
      screen.slice(screen.indexOf('Other bundles found:'), screen.lastIndexOf('\n ['));
    const first = await terminal.waitFor('moving', 'Other bundles found:', { visible: true });
    expect(first).toContain('Update ready: acme-appliance 1.2.0');
    expect(first).toMatch(
      /Signed by key [0-9a-f]{16} \(release\) \(1 of 1 needed; trust root version 1\)/,
    );
    expect(others(first)).toContain('acme-appliance-1.1.0.tar: 1.1.0, ready, older than 1.2.0');
    expect(others(first)).toContain('broken.tar: E_BUNDLE_FORMAT');
    terminal.keys('moving', 'Left');
    const moved = await terminal.waitFor('moving', 'Update ready: acme-appliance 1.1.0', {
      visible: true,
    });
    expect(others(moved)).toContain(
      'acme-appliance-1.2.0.tar: 1.2.0, ready: the newest that applies',
    );
    terminal.keys('moving', 'Right');
    const back = await terminal.waitFor('moving', 'Update ready: acme-appliance 1.2.0', {
      visible: true,
    });
    expect(others(back)).toBe(others(first));
    expect(await quit('moving')).toBe(0);
  });

  it('nothing found: says where it looked, looks again when a bundle appears, and on r', async () => {
    const stick = join(dir, 'empty-stick');
    const later = join(dir, 'not-yet-mounted');
    await mkdir(stick);
    const root = join(dir, 'waiting');
    await cloneAppliance(base, root);
    runConsole('waiting', root, [stick, later], { width: 80, height: 24 });
    const screen = await terminal.waitFor('waiting', 'Searched:', { visible: true });
    expect(screen).toContain('No bundle found on the attached media.');
    expect(screen).toContain(`  ${stick}\n`);
    expect(screen).toContain(`  ${later} (not there)`);
    for (const usual of ['/media', '/run/media', '/mnt']) expect(screen).toContain(`  ${usual}`);
    expect(screen).toContain('[r] rescan');
    // Copied onto the stick: found without a key.
    await copyFile(bundles['1.1.0'] as string, join(stick, 'acme-appliance-1.1.0.tar'));
    await terminal.waitFor('waiting', 'Update ready: acme-appliance 1.1.0', { visible: true });
    // r looks again at once, and says so.
    await mkdir(later);
    await copyFile(bundles['1.2.0'] as string, join(later, 'acme-appliance-1.2.0.tar'));
    terminal.keys('waiting', 'r');
    await terminal.waitFor('waiting', /Looked again in \d+ folder\(s\): 2 bundle\(s\) found/, {
      visible: true,
    });
    // The bundle on screen stays chosen; the new one is listed.
    const after = terminal.screen('waiting', { visible: true });
    expect(after).toContain('Update ready: acme-appliance 1.1.0');
    terminal.keys('waiting', 'Right');
    await terminal.waitFor('waiting', 'Update ready: acme-appliance 1.2.0', { visible: true });
    expect(await quit('waiting')).toBe(0);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'a stick mounted at a searched mount point is found without a key (needs root: mount)',
    async () => {
      // The stick: an ext4 image holding the bundle, filled without mounting it (mkfs -d).
      const content = join(dir, 'stick-content');
      await mkdir(content);
      await copyFile(bundles['1.1.0'] as string, join(content, 'acme-appliance-1.1.0.tar'));
      const image = join(dir, 'stick.img');
      const size = (await stat(join(content, 'acme-appliance-1.1.0.tar'))).size;
      execFileSync('mkfs.ext4', ['-q', '-d', content, image, `${Math.ceil(size / 2 ** 20) + 8}M`]);
      const root = join(dir, 'mounting');
      await cloneAppliance(base, root);
      // The console runs in its own mount namespace (private propagation), on an
      // empty /media of its own: whatever is mounted there stays out of this machine's.
      const pidFile = join(dir, 'mounting.pid');
      const prepare = `mount -t tmpfs media /media && mkdir -p /media/operator/ACME && echo $$ > ${pidFile} && exec "$@"`;
      terminal.run(
        'mounting',
        [
          'unshare',
          '--mount',
          'sh',
          '-c',
          prepare,
          'sh',
          process.execPath,
          FERRY,
          'console',
          '--root',
          root,
        ],
        { width: 100, height: 30 },
      );
      await terminal.waitFor('mounting', 'No bundle found on the attached media.', {
        visible: true,
      });
      const pid = (await readFile(pidFile, 'utf8')).trim();
      // As the desktop's automounter would: the stick appears at /media/<user>/<label>.
      execFileSync('nsenter', [
        '--target',
        pid,
        '--mount',
        'mount',
        '-o',
        'loop,ro',
        image,
        '/media/operator/ACME',
      ]);
      const screen = await terminal.waitFor('mounting', 'Update ready: acme-appliance 1.1.0', {
        visible: true,
      });
      expect(screen).toContain('/media/operator/ACME/acme-appliance-1.1.0.tar');
      expect(await readFile('/proc/self/mounts', 'utf8')).not.toContain('/media/operator/ACME');
      expect(await quit('mounting')).toBe(0);
    },
  );

  describe('outside the maintenance windows', () => {
    it('says when the next window opens and names no flag; Enter only explains', async () => {
      const root = join(dir, 'closed');
      await cloneAppliance(base, root);
      const opens = await closedWindow(root, false);
      const before = await snapshot(root);
      terminal.ferry('closed', ['console', '--root', root, '--media', media], {
        env: { TZ: 'UTC' },
      });
      const screen = await terminal.waitFor('closed', 'Outside the maintenance windows', {
        visible: true,
      });
      expect(screen).toContain(`Outside the maintenance windows: the next opens ${opens}.`);
      expect(screen).not.toContain('[Enter]');
      terminal.keys('closed', 'Enter');
      const told = await terminal.waitFor('closed', 'Enter does nothing now', { visible: true });
      expect(told.replace(/\s+/g, ' ')).toContain(`the next opens ${opens}.`);
      expect(told).not.toContain('--now');
      expect(await quit('closed')).toBe(0);
      expect(await snapshot(root)).toEqual(before);
    });

    it('where the appliance allows it: asks why, installs, and records the reason', async () => {
      const root = join(dir, 'closed-allowed');
      await cloneAppliance(base, root);
      const opens = await closedWindow(root, true);
      terminal.ferry('allowed', ['console', '--root', root, '--media', media], {
        env: { TZ: 'UTC' },
      });
      await terminal.waitFor('allowed', `the next opens ${opens}`, { visible: true });
      await terminal.waitFor('allowed', '[Enter] install now', { visible: true });
      terminal.keys('allowed', 'Enter');
      await terminal.waitFor('allowed', 'Why install outside the maintenance windows?', {
        visible: true,
      });
      // An empty reason is not taken; Esc goes back; then the reason, typed (r and q are text here).
      terminal.keys('allowed', 'Enter');
      await terminal.waitFor('allowed', 'Type why first', { visible: true });
      terminal.keys('allowed', 'Escape');
      await terminal.waitFor('allowed', /\[Enter\] install now(?![\s\S]*Why install)/, {
        visible: true,
      });
      terminal.keys('allowed', 'Enter');
      await terminal.waitFor('allowed', '> █', { visible: true });
      terminal.keys('allowed', '-l', 'router queue stuck, ticket 42x');
      terminal.keys('allowed', 'BSpace');
      await terminal.waitFor('allowed', '> router queue stuck, ticket 42█', { visible: true });
      terminal.keys('allowed', 'Enter');
      await terminal.waitFor('allowed', 'COMMITTED: acme-appliance is now at 1.2.0');
      expect(await quit('allowed')).toBe(0);
      expect(await lastRecord(root)).toMatchObject({
        operation: 'install',
        to: '1.2.0',
        outcome: 'committed',
        controls: { now: true },
        reason: 'router queue stuck, ticket 42',
      });
    });
  });

  it('after a failure: the log in words as ferry log tells it, and a rollback, asked first', async () => {
    const root = join(dir, 'failed-at-1.1.0');
    await cloneAppliance(base, root);
    await installOk(bundles['1.1.0'] as string, root);
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail', 'api.test'), '');
    runConsole('after', root, [media], { width: 80, height: 24 });
    await terminal.waitFor('after', '[Enter] apply', { visible: true });
    terminal.keys('after', 'Enter');
    const failed = await terminal.waitFor('after', 'is still at 1.1.0; everything was undone', {
      visible: true,
    });
    expect(failed).toContain('[l] the log');
    expect(failed).toContain('[b] back to 1.0.0');

    terminal.keys('after', 'l');
    const log = await terminal.waitFor('after', /Transaction \d{8}T\d{6}-\w+\n/, {
      visible: true,
    });
    const id = /Transaction (\S+)/.exec(log)?.[1] ?? '';
    const words = await ferry(['log', id, '--root', root]);
    expect(words.code, words.stderr).toBe(0);
    // The same lines as ferry log, from its first on.
    const timed = words.stdout.split('\n').filter((line) => /^\d\d:\d\d:\d\d /.test(line));
    expect(timed.length).toBeGreaterThan(20);
    const first = timed.slice(0, 3);
    for (const line of first) expect(log).toContain(line.slice(0, 70));
    terminal.keys('after', 'End');
    const end = await terminal.waitFor('after', '▲', { visible: true });
    const last = timed.at(-1) ?? '';
    expect(end).toContain(last.slice(0, 70));
    terminal.keys('after', 'l');
    await terminal.waitFor('after', 'api failed in the test pass', { visible: true });

    // b asks; n keeps everything; b and y roll back with the engine's rollback.
    terminal.keys('after', 'b');
    await terminal.waitFor('after', 'Roll acme-appliance back from 1.1.0 to 1.0.0', {
      visible: true,
    });
    terminal.keys('after', 'n');
    await terminal.waitFor('after', /\[b\] back to 1\.0\.0(?![\s\S]*Roll acme)/, { visible: true });
    expect((await status(root)).release).toBe('1.1.0');
    terminal.keys('after', 'b');
    await terminal.waitFor('after', '[y] roll back', { visible: true });
    terminal.keys('after', 'y');
    const back = await terminal.waitFor('after', 'ROLLED BACK to 1.0.0 (from 1.1.0)', {
      visible: true,
    });
    expect(back).not.toContain('[b] back');
    expect(await quit('after')).toBe(0);
    expect((await status(root)).release).toBe('1.0.0');
    expect(await lastRecord(root)).toMatchObject({
      operation: 'rollback',
      from: '1.1.0',
      to: '1.0.0',
      outcome: 'committed',
      reason: 'from the console, after the install of 1.2.0 failed',
    });
  });

  it('a rollback asked on a stale screen, after another operator installed: E_APPLIANCE_CHANGED, nothing undone', async () => {
    const root = join(dir, 'stale-rollback');
    await cloneAppliance(base, root);
    await installOk(bundles['1.1.0'] as string, root);
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail', 'api.test'), '');
    runConsole('stale', root, [media], { width: 80, height: 24 });
    await terminal.waitFor('stale', '[Enter] apply', { visible: true });
    terminal.keys('stale', 'Enter');
    await terminal.waitFor('stale', '[b] back to 1.0.0', { visible: true });
    // Meanwhile, at another terminal, the cause is fixed and 1.2.0 goes in.
    await rm(join(root, 'fail'), { recursive: true });
    await installOk(bundles['1.2.0'] as string, root);
    terminal.keys('stale', 'b');
    await terminal.waitFor('stale', '[y] roll back', { visible: true });
    terminal.keys('stale', 'y');
    await terminal.waitFor('stale', 'E_APPLIANCE_CHANGED', { visible: true });
    expect(await quit('stale')).toBe(1);
    expect((await status(root)).release).toBe('1.2.0');
    expect(await lastRecord(root)).toMatchObject({
      operation: 'install',
      to: '1.2.0',
      outcome: 'committed',
    });
  });

  it('an install chosen on a stale screen, after another operator installed: E_APPLIANCE_CHANGED, nothing run', async () => {
    const root = join(dir, 'stale-install');
    await cloneAppliance(base, root);
    runConsole('stale-install', root, [media], { width: 80, height: 24 });
    await terminal.waitFor('stale-install', 'Update ready: acme-appliance 1.2.0', {
      visible: true,
    });
    // Meanwhile, at another terminal, 1.1.0 goes in.
    await installOk(bundles['1.1.0'] as string, root);
    const before = await markers(root);
    terminal.keys('stale-install', 'Enter');
    const refused = await terminal.waitFor('stale-install', 'E_APPLIANCE_CHANGED', {
      visible: true,
    });
    // The screen says where the appliance is now, not where it was when the console opened.
    expect(refused).toContain('The appliance was not changed; it is at 1.1.0.');
    expect(refused).toContain('Installed: 1.1.0');
    expect(await quit('stale-install')).toBe(1);
    expect((await status(root)).release).toBe('1.1.0');
    expect(await markers(root)).toEqual(before);
    expect(await lastRecord(root)).toMatchObject({ to: '1.1.0', outcome: 'committed' });
  });

  it('refuses without a terminal and points at ferry install', async () => {
    const result = await ferry(['console', '--root', base]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('ferry install');
  });
});

const ENTER = '\r';
const UP = '\u001B[A';
const LEFT = '\u001B[D';
const RIGHT = '\u001B[C';

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

/** A daily one-minute window twelve hours from now (UTC): closed now, with a known next opening. */
async function closedWindow(root: string, allowOutsideWindow: boolean): Promise<string> {
  const opens = new Date(Math.floor(Date.now() / 60_000) * 60_000 + 12 * 3_600_000);
  const clock = (at: Date) => at.toISOString().slice(11, 16);
  const config = join(root, 'etc/ferry/appliance.yaml');
  const text = (await readFile(config, 'utf8')).replace(/^maintenanceWindows:.*\n/m, '');
  await writeFile(
    config,
    `${text}maintenanceWindows:\n  - { start: '${clock(opens)}', end: '${clock(new Date(opens.getTime() + 60_000))}' }\n` +
      (allowOutsideWindow ? 'console: { allowOutsideWindow: true }\n' : ''),
  );
  return wallTime(opens, 'UTC');
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

/** The appliance's newest history record. */
async function lastRecord(root: string): Promise<unknown> {
  const history = await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8');
  return JSON.parse(history.trim().split('\n').at(-1) ?? '{}');
}

describe('the console controller, keys typed into its screen', () => {
  /** A console outside the windows where the appliance allows it, at the "why?" prompt. */
  async function atReasonPrompt(name: string) {
    const opened = await openConsole(name, media, (root) =>
      closedWindow(root, true).then(() => undefined),
    );
    await opened.shows('[Enter] install now');
    opened.screen.stdin.write(ENTER);
    await opened.shows('Why install outside the maintenance windows?');
    return opened;
  }

  it('a reason pasted past 1000 characters is cut there, and says so', async () => {
    const { controller, screen, shows } = await atReasonPrompt('long-reason');
    controller.typed(`INC-7 ${'log line '.repeat(200)}`);
    expect([...(controller.state.reason ?? '')]).toHaveLength(1000);
    await shows('A reason is at most 1000 characters');
    screen.unmount();
  });

  it('a Backspace that arrives in one chunk with the text before it (fast typing, a paste) takes a character off', async () => {
    const { controller, screen } = await atReasonPrompt('chunked-reason');
    screen.stdin.write('ticket 42x\x7f');
    await expect.poll(() => controller.state.reason).toBe('ticket 42');
    screen.stdin.write('\x7f\x7f7\b9');
    await expect.poll(() => controller.state.reason).toBe('ticket 9');
    screen.unmount();
  });

  it('←/→ choose another bundle, Enter applies that one, keys wait while it installs, q quits', async () => {
    // Found in this order: 1.0.0 (the install bundle: nothing to do here), 1.1.0, 1.2.0.
    const media = await stick('three', ['1.0.0', '1.1.0', '1.2.0']);
    const { root, controller, quits, screen, shows, done } = await openConsole('arrows', media);
    await shows('Update ready: acme-appliance 1.2.0');
    screen.stdin.write(LEFT);
    await shows('Update ready: acme-appliance 1.1.0');
    screen.stdin.write(RIGHT);
    await shows('Update ready: acme-appliance 1.2.0');
    screen.stdin.write(LEFT);
    await shows('Update ready: acme-appliance 1.1.0');
    const chosen = controller.state.chosen;

    screen.stdin.write(ENTER);
    // Typed before the install can have finished: ignored, not queued.
    for (const key of ['q', ENTER, RIGHT, LEFT, UP]) screen.stdin.write(key);
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
