import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Ajv } from 'ajv';
import { render } from 'ink-testing-library';
import { createElement } from 'react';
import { beforeAll, describe, expect, it } from 'vitest';
import { OUTPUT_SCHEMAS } from '../../manifest-schema/output-declarations.js';
import { openAppliance } from '../../installer/appliance.js';
import { applianceView, discover } from '../../installer/console/discover.js';
import { initialState } from '../../installer/console/model.js';
import { ConsoleApp, ConsoleController } from '../../installer/console/run.js';
import { FERRY, ferry, ROOT } from '../helpers.js';
import { cloneAppliance, installOk, markers, snapshot, status } from '../e2e/appliance.js';
import { atFirstRelease, faultProduct } from './product.js';

// SIGINT, SIGTERM and SIGHUP to `ferry rollback` and `ferry recover`: as for
// an install, never a kill half way. A rollback from 1.3.0 runs web's
// restore.sh first; a recovery of one killed after it runs web's publish.sh
// again. Both are held by a trigger the test removes (as a restore of a
// database would take its time), then write a marker of having finished.

const SLOW = (pass: string) =>
  `if [ -e "$FERRY_ROOT/hang/web.${pass}.slow" ]; then while [ -e "$FERRY_ROOT/hang/web.${pass}.slow" ]; do sleep 0.1; done; echo "${pass} web finished" >> "$markers"; fi`;

const product = faultProduct({
  'scripts/web/restore.sh': SLOW('rollback'),
  'scripts/web/publish.sh': SLOW('update'),
});
let base: string;

beforeAll(async () => {
  base = join(product.dir, 'base');
  await atFirstRelease(product, base);
  await installOk(product.bundles['1.3.0'] as string, base);
});

async function at130(name: string): Promise<string> {
  const root = join(product.dir, name);
  await cloneAppliance(base, root);
  return root;
}

/** Holds web's artifact of `pass` until `release` is called. */
async function hold(root: string, pass: string): Promise<() => Promise<void>> {
  const trigger = join(root, 'hang', `web.${pass}.slow`);
  await mkdir(join(root, 'hang'), { recursive: true });
  await writeFile(trigger, '');
  return () => rm(trigger);
}

/** `bin/ferry args` as a child, for signals: its output read as it comes. */
function child(args: string[]) {
  const proc = spawn(process.execPath, [FERRY, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let exited = false;
  proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number>((resolve) =>
    proc.on('close', (code, signal) => {
      exited = true;
      resolve(code ?? (signal ? -1 : -2));
    }),
  );
  return {
    proc,
    exit,
    stdout: () => stdout,
    stderr: () => stderr,
    running: () => !exited,
  };
}

/** Resolves once `check` holds; fails the test after 30 s, or at once when the child is gone. */
async function until(
  check: () => Promise<boolean> | boolean,
  run: ReturnType<typeof child>,
  what: string,
): Promise<void> {
  for (let waited = 0; !(await check()); waited += 50) {
    if (waited > 30_000 || !run.running())
      throw new Error(`never ${what}:\n${run.stdout()}\n${run.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const journalOpen = (root: string) =>
  stat(join(root, 'var/lib/ferry/journal')).then(
    () => true,
    () => false,
  );

async function lastHistory(root: string): Promise<Record<string, unknown>> {
  const lines = (await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8'))
    .trim()
    .split('\n');
  return JSON.parse(lines.at(-1) as string) as Record<string, unknown>;
}

/** A rollback from 1.3.0 SIGKILLed after web's restore.sh ran: its journal open. */
async function killedRollback(name: string): Promise<string> {
  const root = await at130(name);
  // Journal writes: the header, web's run, web's switch.
  const cut = await ferry(['rollback', '--root', root, '--yes'], {
    env: { FERRY_TEST_CRASH_AT: '3' },
  });
  expect(cut.code, cut.stderr).toBe(-1);
  expect(await journalOpen(root)).toBe(true);
  return root;
}

describe('ferry rollback interrupted', () => {
  it('during a rollback artifact: it finishes, the rollback stops there and is undone, exit 1', async () => {
    const root = await at130('during-artifact');
    const before = await snapshot(root);
    const release = await hold(root, 'rollback');
    const started = (await markers(root)).length;
    const run = child(['rollback', '--root', root, '--yes']);
    await until(
      async () => (await markers(root)).includes('rollback web 1.0.0 1.0.1'),
      run,
      'ran restore.sh',
    );
    run.proc.kill('SIGINT');
    await until(
      () => run.stderr().includes('SIGINT: stopping at the next safe point'),
      run,
      'said it stops',
    );
    run.proc.kill('SIGTERM');
    await until(() => run.stderr().includes('SIGTERM: already stopping'), run, 'said it again');
    // The artifact is still at work, and Ferry waits for it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(run.running()).toBe(true);
    await release();
    expect(await run.exit, run.stderr()).toBe(1);
    expect(run.stdout()).toMatch(/FAILED: still at 1\.3\.0; everything was switched forward again/);
    expect(run.stdout()).toContain('interrupted by SIGINT');
    // restore.sh finished; nothing after it ran; web's update artifacts undid it.
    expect((await markers(root)).slice(started)).toEqual([
      'rollback web 1.0.0 1.0.1',
      'rollback web finished',
      'update web 1.0.0 1.0.1',
    ]);
    expect(await journalOpen(root)).toBe(false);
    expect(await status(root)).toMatchObject({ release: '1.3.0', verified: true });
    expect(await snapshot(root)).toEqual(before);
    const history = await lastHistory(root);
    expect(history).toMatchObject({
      operation: 'rollback',
      outcome: 'rolled-back',
      failure: { status: 'interrupted by SIGINT' },
    });
    const log = await readFile(
      join(root, 'var/lib/ferry/logs', `${String(history.id)}.jsonl`),
      'utf8',
    );
    expect(log).toContain('"type":"interrupt","signal":"SIGINT"');
  });

  it('during the recovery it runs first: the recovery finishes, then it stops with nothing changed', async () => {
    const root = await killedRollback('during-recovery');
    const release = await hold(root, 'update');
    const started = (await markers(root)).length;
    const run = child(['rollback', '--root', root, '--yes', '--json']);
    await until(
      async () => (await markers(root)).slice(started).includes('update web 1.0.0 1.0.1'),
      run,
      'recovered with publish.sh',
    );
    run.proc.kill('SIGHUP');
    await until(
      () =>
        run
          .stderr()
          .includes(
            'SIGHUP: recovering an interrupted transaction; the recovery finishes first, then the rollback stops',
          ),
      run,
      'said it recovers first',
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(run.running()).toBe(true);
    await release();
    expect(await run.exit, run.stderr()).toBe(1);
    const result = JSON.parse(run.stdout()) as unknown;
    expect(result).toMatchObject({
      outcome: 'unchanged',
      transaction: null,
      failure: { status: 'interrupted by SIGHUP before anything changed' },
    });
    const validate = new Ajv({ strict: false }).compile(OUTPUT_SCHEMAS.rollback);
    expect(validate(result), JSON.stringify(validate.errors)).toBe(true);
    // The recovery's undo finished; the rollback itself ran nothing.
    expect((await markers(root)).slice(started)).toEqual([
      'update web 1.0.0 1.0.1',
      'update web finished',
    ]);
    expect(await journalOpen(root)).toBe(false);
    expect(await lastHistory(root)).toMatchObject({ operation: 'recover', outcome: 'rolled-back' });
    expect(await status(root)).toMatchObject({ release: '1.3.0', verified: true });
    expect(await snapshot(root)).toEqual(await snapshot(base));
  });
});

describe('ferry install interrupted during the recovery it runs first', () => {
  it('the recovery finishes, then the install stops with nothing changed', async () => {
    const root = join(product.dir, 'install-recovery');
    await atFirstRelease(product, root);
    const before = await snapshot(root);
    const bundle = product.bundles['1.1.0'] as string;
    // An install to 1.1.0 SIGKILLed while web's publish.sh runs: its journal open.
    await mkdir(join(root, 'hang'));
    await writeFile(join(root, 'hang', 'web.update'), '');
    const killed = child(['install', bundle, '--root', root, '--yes']);
    await until(
      async () => (await markers(root)).includes('update web 1.0.0 1.0.1'),
      killed,
      'ran publish.sh',
    );
    killed.proc.kill('SIGKILL');
    await killed.exit;
    await rm(join(root, 'hang', 'web.update'));
    const release = await hold(root, 'rollback');
    const started = (await markers(root)).length;
    const run = child(['install', bundle, '--root', root, '--yes', '--json']);
    await until(
      async () => (await markers(root)).slice(started).includes('rollback web 1.0.0 1.0.1'),
      run,
      'recovered with restore.sh',
    );
    run.proc.kill('SIGTERM');
    await until(
      () =>
        run
          .stderr()
          .includes(
            'SIGTERM: recovering an interrupted transaction; the recovery finishes first, then the install stops',
          ),
      run,
      'said it recovers first',
    );
    await release();
    expect(await run.exit, run.stdout().slice(-3000)).toBe(1);
    const result = JSON.parse(run.stdout().trim().split('\n').at(-1) as string) as unknown;
    expect(result).toMatchObject({
      outcome: 'unchanged',
      transaction: null,
      failure: { status: 'interrupted by SIGTERM before anything changed' },
    });
    // The recovery's undo finished; the install ran nothing of its own.
    expect((await markers(root)).slice(started)).toEqual([
      'rollback web 1.0.0 1.0.1',
      'rollback web finished',
    ]);
    expect(await journalOpen(root)).toBe(false);
    expect(await snapshot(root)).toEqual(before);
    // Afterwards, `ferry log` tells the recovery and the signal that landed in it, in the log of
    // the install it resolved (the install stopped with no transaction, so no log, of its own).
    const words = await ferry(['log', '--root', root]);
    expect(words.code, words.stderr).toBe(0);
    expect(words.stdout).toMatch(
      /== update[\s\S]*== recover[\s\S]*ferry: SIGTERM: recovering an interrupted transaction; the recovery finishes first, then the install stops/,
    );
  });
});

describe('ferry recover interrupted', () => {
  it('mid-way through an undo: told it finishes first, and it does; journal closed, exit 0', async () => {
    const root = await killedRollback('recover');
    const release = await hold(root, 'update');
    const started = (await markers(root)).length;
    const run = child(['recover', '--root', root]);
    await until(
      async () => (await markers(root)).slice(started).includes('update web 1.0.0 1.0.1'),
      run,
      'ran publish.sh',
    );
    run.proc.kill('SIGINT');
    await until(
      () =>
        run
          .stderr()
          .includes(
            'SIGINT: recovering an interrupted transaction; the recovery finishes first, then ferry exits',
          ),
      run,
      'said it recovers first',
    );
    run.proc.kill('SIGINT');
    await until(() => run.stderr().includes('SIGINT: already stopping'), run, 'said it again');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(run.running()).toBe(true);
    await release();
    expect(await run.exit, run.stderr()).toBe(0);
    expect(run.stdout()).toMatch(/recovered: the appliance is at 1\.3\.0/);
    // The recovery and the signal that landed in it are in the log of the rollback it resolved: `ferry log` shows them.
    const words = await ferry(['log', '--root', root]);
    expect(words.code, words.stderr).toBe(0);
    expect(words.stdout).toMatch(
      /== rollback[\s\S]*== recover[\s\S]*ferry: SIGINT: recovering an interrupted transaction; the recovery finishes first, then ferry exits/,
    );
    expect((await markers(root)).slice(started)).toEqual([
      'update web 1.0.0 1.0.1',
      'update web finished',
    ]);
    expect(await journalOpen(root)).toBe(false);
    expect(await lastHistory(root)).toMatchObject({ operation: 'recover', outcome: 'rolled-back' });
    expect(await snapshot(root)).toEqual(await snapshot(base));
  });
});

describe('the console', () => {
  it('Ctrl-C during the rollback it offers after a failure: the artifact finishes, the rollback is undone', async () => {
    const root = join(product.dir, 'console');
    await atFirstRelease(product, root);
    await installOk(product.bundles['1.1.0'] as string, root);
    const stick = join(product.dir, 'stick');
    await mkdir(stick);
    const bundle = product.bundles['1.2.0'] as string;
    await copyFile(bundle, join(stick, basename(bundle)));
    await mkdir(join(root, 'fail'));
    await writeFile(join(root, 'fail', 'api.test'), '');
    const appliance = await openAppliance(root);
    const controller = new ConsoleController(
      initialState(applianceView(appliance), await discover(appliance, [stick], [])),
      root,
    );
    controller.onQuit = () => undefined;
    const screen = render(createElement(ConsoleApp, { controller }));
    await expect.poll(() => screen.stdin.listenerCount('readable')).toBeGreaterThan(0);
    const shows = (text: string) =>
      expect.poll(() => screen.lastFrame() ?? '', { timeout: 30_000 }).toContain(text);
    screen.stdin.write('\r');
    await shows('[b] back to 1.0.0');
    await rm(join(root, 'fail'), { recursive: true });
    const release = await hold(root, 'rollback');
    const started = (await markers(root)).length;
    screen.stdin.write('b');
    await shows('[y] roll back');
    screen.stdin.write('y');
    await expect
      .poll(async () => (await markers(root)).slice(started), { timeout: 30_000 })
      .toContain('rollback web 1.0.0 1.0.1');
    controller.interrupt('SIGINT');
    await shows('SIGINT: stopping at the next safe point');
    await release();
    await expect
      .poll(() => controller.state.screen, { timeout: 30_000, interval: 50 })
      .toBe('done');
    expect(controller.state.rolledBack).toMatchObject({
      outcome: 'rolled-back',
      failure: { status: 'interrupted by SIGINT' },
    });
    screen.unmount();
    expect((await markers(root)).slice(started)).toEqual(
      expect.arrayContaining(['rollback web finished', 'update web 1.0.0 1.0.1']),
    );
    expect(await journalOpen(root)).toBe(false);
    expect((await status(root)).release).toBe('1.1.0');
  });
});
