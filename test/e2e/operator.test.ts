import { execFileSync, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildAll,
  EPOCH,
  FERRY,
  ferry,
  json,
  outputOf,
  run,
  tempDir,
  workspace,
  type Workspace,
} from '../helpers.js';
import { cloneAppliance, initAppliance, installOk, snapshot } from './appliance.js';
import { Terminal } from './terminal.js';

// The command line as an operator at a console meets it: a real terminal
// (tmux, 80×24) and the real CLI, on an appliance at 1.0.0.

let ws: Workspace;
let bundles: Record<string, string>;
let base: string;
const terminal = new Terminal();

beforeAll(async () => {
  ws = await workspace(await tempDir());
  bundles = await buildAll(ws, join(ws.dir, 'bundles'), 'tar', ['1.0.0', '1.1.0']);
  base = join(ws.dir, 'at-1.0.0');
  await initAppliance(ws, base);
  await installOk(bundles['1.0.0'] as string, base);
});

async function appliance(name: string): Promise<string> {
  const root = join(ws.dir, name);
  await cloneAppliance(base, root);
  return root;
}

describe('--root', () => {
  it('defaults to FERRY_ROOT, and else to /', async () => {
    const root = await appliance('env-root');
    const byEnv = await ferry(['status', '--json'], { env: { FERRY_ROOT: root } });
    expect(byEnv.code, byEnv.stderr).toBe(0);
    expect(json(byEnv)).toMatchObject({ release: '1.0.0' });
    // This machine's / is no appliance: the error names it.
    const bySystem = await ferry(['status', '--json']);
    expect(bySystem.code).toBe(2);
    const { error } = json<{ error: { code: string; message: string } }>(bySystem);
    expect(error.code).toBe('E_NOT_INITIALIZED');
    expect(error.message).toMatch(/(^| )\/( |$|etc)/);
  });
});

describe('install on a terminal', () => {
  it('shows the plan before asking, and no leaves the appliance as it was', async () => {
    const root = await appliance('declined');
    const before = await snapshot(root);
    terminal.ferry('declined', ['install', bundles['1.1.0'] as string, '--root', root]);
    const screen = await terminal.waitFor('declined', '? [y/N]');
    expect(screen).toContain('acme-appliance 1.0.0 → 1.1.0 (update bundle): READY');
    expect(screen).toMatch(/component +action +from +to/);
    terminal.keys('declined', 'n', 'Enter');
    expect(await terminal.waitFor('declined', /exit=\d/)).toContain('exit=2');
    expect(await snapshot(root)).toEqual(before);
  });

  it('Ctrl-C at the question is a no: nothing changed, and no internal error', async () => {
    const root = await appliance('ctrl-c');
    const before = await snapshot(root);
    terminal.ferry('ctrl-c', ['install', bundles['1.1.0'] as string, '--root', root], {
      width: 250,
    });
    await terminal.waitFor('ctrl-c', '? [y/N]');
    terminal.keys('ctrl-c', 'C-c');
    const screen = await terminal.waitFor('ctrl-c', /exit=\d/);
    expect(screen).toContain('E_USAGE: not confirmed; nothing was changed');
    expect(screen).not.toContain('E_INTERNAL');
    expect(screen).toContain('exit=2');
    expect(await snapshot(root)).toEqual(before);
  });

  it('SIGTERM at the question is a no too: it does not wait for an answer holding the lock', async () => {
    const root = await appliance('sigterm-asked');
    const before = await snapshot(root);
    terminal.ferry('sigterm-asked', ['install', bundles['1.1.0'] as string, '--root', root], {
      width: 250,
    });
    await terminal.waitFor('sigterm-asked', '? [y/N]');
    const pid = execFileSync('pgrep', ['-f', '--', `--root ${root}$`], { encoding: 'utf8' }).trim();
    process.kill(Number(pid), 'SIGTERM');
    const screen = await terminal.waitFor('sigterm-asked', /exit=\d/);
    expect(screen).toContain('E_USAGE: not confirmed; nothing was changed');
    expect(screen).toContain('exit=2');
    expect(await snapshot(root)).toEqual(before);
    const status = await ferry(['status', '--root', root, '--json']);
    expect(status.code, status.stderr).toBe(0);
  });

  it('yes installs', async () => {
    const root = await appliance('accepted');
    terminal.ferry('accepted', ['install', bundles['1.1.0'] as string, '--root', root]);
    await terminal.waitFor('accepted', '? [y/N]');
    terminal.keys('accepted', 'y', 'Enter');
    const screen = await terminal.waitFor('accepted', /exit=\d/, { timeoutMs: 60_000 });
    expect(screen).toContain('COMMITTED');
    expect(screen).toContain('exit=0');
  });
});

describe('ferry log', () => {
  it("tells the newest transaction's log in words, and any other by its id", async () => {
    const root = await appliance('logged');
    await installOk(bundles['1.1.0'] as string, root);
    const newest = await ferry(['log', '--root', root]);
    expect(newest.code, newest.stderr).toBe(0);
    expect(newest.stdout).toMatch(/^Transaction \S+ \(/);
    expect(newest.stdout).toContain('plan: acme-appliance 1.0.0 → 1.1.0: ready');
    expect(newest.stdout).toContain('== update');
    expect(newest.stdout).toMatch(/\| [a-z-]+ [a-z-]+\.sh: \S/);
    expect(newest.stdout).toContain('Outcome: install 1.0.0 → 1.1.0: committed');
    const first = JSON.parse(
      (await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8')).split('\n')[0] as string,
    ) as { id: string };
    const byId = await ferry(['log', first.id, '--root', root, '--json']);
    expect(json(byId)).toMatchObject({
      schemaVersion: 1,
      transaction: first.id,
      outcome: 'committed',
      from: null,
      to: '1.0.0',
    });
  });

  it('a reader that goes away (| head -1) ends the log quietly', async () => {
    const root = await appliance('log-head');
    await installOk(bundles['1.1.0'] as string, root);
    // The exit code and stderr of ferry itself, not of head.
    const piped = await run(
      'sh',
      [
        '-c',
        '{ "$0" "$1" log --root "$2" 2>"$2.err"; echo $? >"$2.code"; } | head -1',
        process.execPath,
        FERRY,
        root,
      ],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' } },
    );
    expect(piped.stdout).toMatch(/^Transaction \S+ \(/);
    expect(await readFile(`${root}.err`, 'utf8')).toBe('');
    expect((await readFile(`${root}.code`, 'utf8')).trim()).toBe('0');
  });

  it('an unknown id is not found; a path is not an id', async () => {
    const unknown = await ferry(['log', '20990101T000000-000000', '--root', base, '--json']);
    expect([unknown.code, json<{ error: { code: string } }>(unknown).error.code]).toEqual([
      2,
      'E_NOT_FOUND',
    ]);
    const path = await ferry(['log', '../../state', '--root', base, '--json']);
    expect(json<{ error: { code: string } }>(path).error.code).toBe('E_USAGE');
  });
});

describe('progress', () => {
  it('on a terminal verify redraws its progress, and NO_COLOR keeps it', async () => {
    terminal.ferry('verify', ['verify', bundles['1.1.0'] as string, '--trust', ws.trust], {
      env: { NO_COLOR: '1' },
    });
    const screen = await terminal.waitFor('verify', /exit=\d/);
    expect(screen).toMatch(/verify: checked .* \(100%\)/);
    expect(screen).toContain('exit=0');
    // Redrawn in place: one progress line left on the screen, not one per step.
    expect(screen.match(/verify: checked/g)).toHaveLength(1);
  });

  it('without a terminal build and install print plain progress lines to stderr', async () => {
    // A rebuild of a recorded release: the same bytes, and the history as it was.
    const built = await ferry(
      [
        'build',
        join(ws.product, 'release-1.1.0.yaml'),
        '--out',
        join(ws.dir, 'progress-out'),
        '--key',
        ws.key,
      ],
      { env: { NO_COLOR: '1', SOURCE_DATE_EPOCH: EPOCH } },
    );
    expect(built.code, built.stderr).toBe(0);
    expect(built.stderr).toMatch(/^build: read .* \(100%\)$/m);
    expect(built.stderr).not.toContain('\r');
    const root = await appliance('progress-install');
    const installed = await ferry(['install', bundles['1.1.0'] as string, '--root', root, '--yes']);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stderr).toMatch(/^ {3}staging .* \(100%\)$/m);
    expect(installed.stderr).not.toContain('\r');
  });
});

describe('an interrupt before any transaction', () => {
  it('SIGTERM while install opens the bundle (the hand-over check): E_INTERRUPTED, and nothing is installed', async () => {
    const root = await appliance('interrupted-check');
    const before = await snapshot(root);
    const bundle = bundles['1.1.0'] as string;
    const trace = join(ws.dir, 'interrupted-check.strace');
    // strace holds each open of the bundle for 3 s, as a DVD spinning up would: the check is
    // under way, not listening for the signal, when it comes.
    const child = spawn(
      'strace',
      ['-f', '-qq', '-o', trace, '-e', 'trace=openat', '-e', 'inject=openat:delay_enter=3000000', '-P', bundle,
        process.execPath, FERRY, 'install', bundle, '--root', root, '--yes'],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const output = outputOf(child);
    for (let i = 0; !(await readFile(trace, 'utf8').catch(() => '')).includes(bundle); i++) {
      if (i > 300) {
        child.kill('SIGKILL');
        throw new Error(`the bundle was never opened: ${(await output).stderr}`);
      }
      await sleep(50);
    }
    const ferryPid = Number(execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).trim());
    process.kill(ferryPid, 'SIGTERM');
    const { code, stderr } = await output;
    expect(code).toBe(1);
    expect(stderr).toContain('E_INTERRUPTED: interrupted by SIGTERM while checking whether');
    expect(stderr).toContain('nothing was changed');
    expect(await snapshot(root)).toEqual(before);
  }, 60_000); // prettier-ignore
});
