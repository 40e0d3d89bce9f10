import { randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FERRY, buildAll, tempDir, workspace } from '../helpers.js';
import { cloneAppliance, initAppliance, installOk, snapshot, status } from '../e2e/appliance.js';
import { Terminal } from '../e2e/terminal.js';
import { runMedia } from './helpers.js';

// An update of two components (db and api, 1.1.0 → 1.2.0) cut into 128 KiB volumes: staging has begun (its
// progress line drawn in place) when the part on volume 2 is needed, and the
// question for it is asked on that same terminal line.

let dir: string;
let media: string;
let foreign: string;
let at110: string;
let counter = 0;
const terminal = new Terminal();

beforeAll(async () => {
  dir = await tempDir();
  const ws = await workspace(dir);
  const bundles = await buildAll(ws, join(dir, 'bundles'), 'tar', ['1.0.0', '1.1.0']);
  // Enough of db's payload that the update spans three volumes.
  await writeFile(join(ws.product, 'components/db/4.0.0/big.bin'), randomBytes(290 * 1024));
  Object.assign(bundles, await buildAll(ws, join(dir, 'bundles'), 'tar', ['1.2.0']));
  at110 = join(dir, 'at-1.1.0');
  await initAppliance(ws, at110);
  await installOk(bundles['1.0.0'] as string, at110);
  await installOk(bundles['1.1.0'] as string, at110);
  media = join(dir, 'media');
  const cut = await runMedia({ ws, bundle: bundles['1.2.0'] as string }, media, [
    '--volume-size',
    '128K',
    '--no-installer',
  ]);
  expect(cut.code, cut.stderr).toBe(0);
  // The same bundle cut again under another label: another parts index, whose volumes do not belong.
  foreign = join(dir, 'foreign');
  const other = await runMedia({ ws, bundle: bundles['1.2.0'] as string }, foreign, [
    '--volume-size',
    '128K',
    '--no-installer',
    '--label',
    'OTHER_',
  ]);
  expect(other.code, other.stderr).toBe(0);
}, 120_000);

/** A one-drive folder holding volume 1, and a way to swap another volume in. */
async function drive(): Promise<{ disc: string; insert: (volume: number) => Promise<void> }> {
  const disc = join(dir, `drive-${counter++}`, 'disc');
  await mkdir(join(disc, '..'));
  const insert = async (volume: number): Promise<void> => {
    await rm(disc, { recursive: true, force: true });
    await cp(join(media, `vol${volume}`), disc, { recursive: true });
  };
  await insert(1);
  return { disc, insert };
}

async function appliance(): Promise<string> {
  const root = join(dir, `root-${counter++}`);
  await cloneAppliance(at110, root);
  return root;
}

/**
 * The question is the last line on the screen, and stays: not erased by the
 * staging line's redraw, nor pushed up by the lines of what goes on meanwhile.
 */
async function asked(session: string, volume: number): Promise<string[]> {
  await terminal.waitFor(session, `Insert volume ${volume} of `);
  // Long enough for the staging line to be redrawn many times over (every 100 ms).
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const lines = terminal.screen(session).trimEnd().split('\n');
  expect(lines.at(-1)).toMatch(
    new RegExp(
      `^Insert volume ${volume} of 3 \\(ACME_APPLIANCE_1_2_0_${volume}\\) .*\\(q to stop\\):$`,
    ),
  );
  return lines;
}

describe('ferry install from volume 1 alone, on a terminal', () => {
  it('the question for each volume stays on the screen while staging is under way', async () => {
    const { disc, insert } = await drive();
    const root = await appliance();
    const session = 'swap';
    terminal.ferry(session, ['install', disc, '--root', root, '--yes'], { width: 200, height: 50 });
    await asked(session, 2);
    // A volume of another build: the refusal and the question again, last on the screen.
    await rm(disc, { recursive: true, force: true });
    await cp(join(foreign, 'vol2'), disc, { recursive: true });
    terminal.keys(session, 'Enter');
    await terminal.waitFor(session, 'holds another cut of');
    const refused = await asked(session, 2);
    expect(refused.slice(-4).join('\n')).toContain('holds another cut of');
    await insert(2);
    terminal.keys(session, 'Enter');
    for (let volume = 3; ; volume++) {
      const screen = await terminal.waitFor(session, new RegExp(`Insert volume ${volume} |exit=`));
      if (screen.includes('exit=')) break;
      await asked(session, volume);
      await insert(volume);
      terminal.keys(session, 'Enter');
    }
    const screen = await terminal.waitFor(session, 'exit=');
    expect(screen).toContain('COMMITTED');
    expect(screen).toContain('exit=0');
    expect(await status(root)).toMatchObject({ release: '1.2.0', verified: true });
  }, 120_000);

  it('started from volume 2 alone, it asks for volume 1 first (bundle.json is there), then for the rest', async () => {
    const { disc, insert } = await drive();
    await insert(2);
    const root = await appliance();
    const session = 'from-2';
    terminal.ferry(session, ['install', disc, '--root', root, '--yes'], { width: 200, height: 50 });
    let screen = await terminal.waitFor(session, /Insert volume 1 of |exit=/);
    expect(screen).not.toContain('exit=');
    const questions = (text: string): string[] =>
      [...text.matchAll(/Insert volume (\d) of /g)].map((match) => match[1] as string);
    // Each question answered with the volume it names, until the install ends.
    for (let asked = 1; !screen.includes('exit=') && asked < 10; asked++) {
      const volume = Number(questions(screen).at(-1));
      await insert(volume);
      terminal.keys(session, 'Enter');
      await expect
        .poll(
          () => {
            screen = terminal.screen(session);
            return screen.includes('exit=') || questions(screen).length > asked;
          },
          { timeout: 60_000 },
        )
        .toBe(true);
    }
    expect(questions(screen)[0]).toBe('1');
    expect(screen).toContain('COMMITTED');
    expect(screen).toContain('exit=0');
    expect(await status(root)).toMatchObject({ release: '1.2.0', verified: true });
  }, 120_000);

  it("Ctrl-C at the hand-over check asking for volume 1: interrupted, nothing changed, exit 1, not the signal's death", async () => {
    const { disc, insert } = await drive();
    await insert(2);
    const root = await appliance();
    const before = await snapshot(root);
    const session = 'ctrl-c-check';
    terminal.ferry(session, ['install', disc, '--root', root, '--yes'], { width: 200, height: 50 });
    // Before any transaction: the check whether the bundle needs a newer Ferry reads bundle.json.
    await terminal.waitFor(session, 'Insert volume 1 of ');
    terminal.keys(session, 'C-c');
    const screen = await terminal.waitFor(session, 'exit=');
    expect(screen).toMatch(/E_INTERRUPTED: interrupted by SIGINT .*; nothing was changed/);
    expect(screen).toContain('exit=1');
    expect(await snapshot(root)).toEqual(before);
  });

  it('Ctrl-C while it asks for a volume: the result says it was interrupted, nothing changed, exit 1', async () => {
    const { disc } = await drive();
    const root = await appliance();
    const before = await snapshot(root);
    const session = 'ctrl-c';
    terminal.ferry(session, ['install', disc, '--root', root, '--yes'], { width: 200, height: 50 });
    // Once staging waits on the volume (its line is held back while the question is up).
    await asked(session, 2);
    terminal.keys(session, 'C-c');
    const screen = await terminal.waitFor(session, 'exit=');
    expect(screen).toContain('SIGINT: stopping at the next safe point; nothing has been changed');
    expect(screen).toContain('UNCHANGED: acme-appliance is still at 1.1.0; nothing was changed');
    expect(screen).toContain('interrupted by SIGINT');
    expect(screen).not.toContain('E_PART_MISSING');
    expect(screen).toContain('exit=1');
    expect(await snapshot(root)).toEqual(before);
  });

  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)(
    '%s while it asks for a volume: --json says it was interrupted, nothing changed, exit 1',
    async (signal) => {
      const { disc } = await drive();
      const root = await appliance();
      const before = await snapshot(root);
      const session = `signal-${signal}`;
      const pid = join(dir, `${session}.pid`);
      const out = join(dir, `${session}.json`);
      terminal.run(
        session,
        [
          'sh',
          '-c',
          `echo $$ > ${pid}; exec "$@" > ${out}`,
          'sh',
          process.execPath,
          FERRY,
          ...['install', disc, '--root', root, '--yes', '--json'],
        ],
        { width: 200, height: 50 },
      );
      await terminal.waitFor(session, 'Insert volume 2 of ');
      // Once staging waits on the volume (the artifacts of pre-validate are done): the wait's
      // own end, not the stop point after an artifact, is then what sees the signal first.
      await expect
        .poll(() => readFile(out, 'utf8'), { timeout: 20_000 })
        .toContain('"type":"progress"');
      await new Promise((resolve) => setTimeout(resolve, 500));
      process.kill(Number(await readFile(pid, 'utf8')), signal);
      const screen = await terminal.waitFor(session, 'exit=');
      expect(screen).toContain('exit=1');
      const text = await readFile(out, 'utf8');
      const events = text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(events.at(-1)).toMatchObject({
        type: 'result',
        outcome: 'unchanged',
        failure: { component: null, status: `interrupted by ${signal}` },
      });
      expect(events).toContainEqual(expect.objectContaining({ type: 'interrupt', signal }));
      expect(await snapshot(root)).toEqual(before);
    },
  );
});
