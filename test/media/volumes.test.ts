import { execFileSync } from 'node:child_process';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartsSource, type VolumeRequest } from '../../bundle/media.js';
import { collect } from '../../bundle/reader.js';
import { openAppliance } from '../../installer/appliance.js';
import { applianceView, discover } from '../../installer/console/discover.js';
import { initialState, logOf } from '../../installer/console/model.js';
import { ConsoleController } from '../../installer/console/run.js';
import { layout } from '../../installer/console/view.js';
import { install } from '../../installer/engine/install.js';
import { FERRY, ferry, json } from '../helpers.js';
import { cloneAppliance, sha256, snapshot, status } from '../e2e/appliance.js';
import { makeMedia, mediaFixture, nextReleaseMedia, type MediaFixture } from './helpers.js';

// One drive, discs swapped in turn: the "drive" is a folder whose one
// volume folder ("disc") is replaced by another volume's, exactly what a
// mount point shows when the disc in it is changed.

let dir: string;
let base: MediaFixture;
let media: string;
let foreign: string;
let empty: string;

beforeAll(async () => {
  base = await mediaFixture();
  ({ dir, media, empty } = base);
  // The same bundle under another label: another parts index, so these volumes do not belong.
  foreign = join(dir, 'foreign');
  await makeMedia(base, foreign, '--label', 'OTHER_');
});

let counter = 0;
async function drive(
  first: string,
): Promise<{ disc: string; insert: (volume: string) => Promise<void> }> {
  const folder = join(dir, `drive-${counter++}`);
  await mkdir(folder);
  const disc = join(folder, 'disc');
  const insert = async (volume: string): Promise<void> => {
    await rm(disc, { recursive: true, force: true });
    await cp(volume, disc, { recursive: true });
  };
  await insert(first);
  return { disc, insert };
}

/** Installs from volume 1 in one drive, inserting each volume of `volumes` when asked. */
async function swapping(
  volumes: string,
  root: string,
): Promise<{ outcome: string; asked: number[] }> {
  const { disc, insert } = await drive(join(volumes, 'vol1'));
  const asked: number[] = [];
  const result = await install({
    bundle: disc,
    root,
    ask: async ({ volume }) => {
      asked.push(volume);
      await insert(join(volumes, `vol${volume}`));
    },
  });
  return { outcome: result.outcome, asked };
}

async function appliance(): Promise<string> {
  const root = join(dir, `root-${counter++}`);
  await cloneAppliance(empty, root);
  return root;
}

describe('asking for volumes', () => {
  it('reads the parts in order through one drive, asking for each volume and refusing one of another build', async () => {
    const { disc, insert } = await drive(join(media, 'vol1'));
    const asked: Array<Pick<VolumeRequest, 'volume' | 'label'> & { problem: string }> = [];
    let wrongOnce = true;
    const source = await PartsSource.open(disc, {
      ask: async (request) => {
        asked.push({ volume: request.volume, label: request.label, problem: request.problem.code });
        if (request.volume === 2 && wrongOnce) {
          wrongOnce = false;
          await insert(join(foreign, 'vol2'));
        } else await insert(join(media, `vol${request.volume}`));
      },
    });
    try {
      expect(source.sequential).toBe(true);
      const bytes = await collect(source.stream(0, source.size, 64 * 1024));
      expect(sha256(bytes)).toBe(sha256(await readFile(base.bundle)));
    } finally {
      await source.close();
    }
    expect(asked).toEqual([
      { volume: 2, label: 'ACME_APPLIANCE_1_0_0_2', problem: 'E_PART_MISSING' },
      { volume: 2, label: 'ACME_APPLIANCE_1_0_0_2', problem: 'E_WRONG_VOLUME' },
      { volume: 3, label: 'ACME_APPLIANCE_1_0_0_3', problem: 'E_PART_MISSING' },
    ]);
  });

  it('volume 1 of another release in the drive is named as such; the same beside the drive is another stick, left alone', async () => {
    const next = await nextReleaseMedia(base, dir);
    const { disc, insert } = await drive(join(media, 'vol1'));
    const problems: string[] = [];
    const source = await PartsSource.open(disc, {
      ask: async (request) => {
        problems.push(`${request.volume} ${request.problem.code} ${request.problem.message}`);
        await insert(
          join(
            problems.length === 1 ? next : media,
            `vol${problems.length === 1 ? 1 : request.volume}`,
          ),
        );
      },
    });
    try {
      await collect(source.stream(0, source.size, 64 * 1024));
    } finally {
      await source.close();
    }
    expect(problems[0]).toMatch(/^2 E_PART_MISSING /);
    expect(problems[1]).toMatch(
      /^2 E_WRONG_VOLUME .*disc: this is volume 1 of \d+ of acme-appliance@1\.1\.0 .*not volume 2 \(ACME_APPLIANCE_1_0_0_2\) of acme-appliance@1\.0\.0/,
    );
    expect(problems.slice(2).map((p) => p.split(' ', 2).join(' '))).toEqual(['3 E_PART_MISSING']);
    // Beside the volume named, another release's stick may have nothing to do with this install.
    const sticks = join(dir, 'sticks');
    await cp(join(media, 'vol1'), join(sticks, 'usb0'), { recursive: true });
    await cp(join(next, 'vol1'), join(sticks, 'usb1'), { recursive: true });
    const alone = await PartsSource.open(join(sticks, 'usb0'));
    try {
      await expect(alone.assertComplete()).rejects.toMatchObject({ code: 'E_PART_MISSING' });
    } finally {
      await alone.close();
    }
  });

  it('installs through one drive, the operator swapping discs when asked', async () => {
    const root = await appliance();
    expect(await swapping(media, root)).toEqual({ outcome: 'committed', asked: [2, 3] });
    expect(await status(root)).toMatchObject({ release: '1.0.0', verified: true });
  });

  it('the operator giving up leaves the appliance as it was', async () => {
    const { disc } = await drive(join(media, 'vol1'));
    const root = await appliance();
    const before = await snapshot(root);
    const gaveUp = install({
      bundle: disc,
      root,
      ask: (request) => Promise.reject(request.problem),
    });
    await expect(gaveUp).rejects.toMatchObject({ code: 'E_PART_MISSING', details: { volume: 2 } });
    // Asked on a terminal already: what to do is to insert the volume, not to find a terminal.
    const error = (await gaveUp.catch((e: unknown) => e)) as { details: { hint: string } };
    expect(error.details.hint).toContain('insert volume 2 (ACME_APPLIANCE_1_0_0_2) when asked');
    expect(error.details.hint).not.toContain('run on a terminal');
    expect(await snapshot(root)).toEqual(before);
  });

  it('installs a tar.gz bundle through one drive, streaming it once in order', async () => {
    const product = join(dir, 'gz-product');
    await cp(base.ws.product, product, { recursive: true, verbatimSymlinks: true });
    const built = await ferry([
      'build',
      join(product, 'release-1.0.0.yaml'),
      '--first-release',
      '--out',
      join(dir, 'gz'),
      '--key',
      base.ws.key,
      '--format',
      'tar.gz',
      '--json',
    ]);
    expect(built.code, built.stderr).toBe(0);
    const volumes = join(dir, 'gz-media');
    await makeMedia({ ...base, bundle: json<{ bundle: string }>(built).bundle }, volumes);
    expect(await swapping(volumes, await appliance())).toEqual({
      outcome: 'committed',
      asked: [2, 3],
    });
  });

  it('the console shows which volume to insert and goes on at Enter', async () => {
    const { disc, insert } = await drive(join(media, 'vol1'));
    const root = await appliance();
    const opened = await openAppliance(root);
    const candidates = await discover(opened, [disc], []);
    expect(candidates.map((c) => c.file)).toEqual([disc]);
    const controller = new ConsoleController(initialState(applianceView(opened), candidates), root);
    const wanted: string[] = [];
    const done = new Promise<void>((resolve) => {
      controller.subscribe((state) => {
        if (state.volume && !wanted.includes(state.volume.label)) {
          wanted.push(state.volume.label);
          void insert(join(media, `vol${state.volume.volume}`)).then(() => controller.key('enter'));
        }
        if (state.screen === 'done') resolve();
      });
    });
    controller.key('enter');
    await done;
    expect(wanted).toEqual(['ACME_APPLIANCE_1_0_0_2', 'ACME_APPLIANCE_1_0_0_3']);
    expect(controller.state.result?.outcome).toBe('committed');
  });

  it('a damaged volume found while staging: the result says where the log is, and l shows it', async () => {
    const volumes = join(dir, `damaged-${counter++}`);
    await cp(media, volumes, { recursive: true });
    const part = join(volumes, 'vol2', 'FERRY/BUNDLE.002');
    const bytes = await readFile(part);
    bytes[5000] = (bytes[5000] as number) ^ 0xff;
    await writeFile(part, bytes);
    const root = await appliance();
    const before = await snapshot(root);
    const opened = await openAppliance(root);
    const candidates = await discover(opened, [volumes], []);
    const controller = new ConsoleController(initialState(applianceView(opened), candidates), root);
    const done = new Promise<void>((resolve) => {
      controller.subscribe((state) => {
        if (state.screen === 'done') resolve();
      });
    });
    controller.key('enter');
    await done;
    expect(controller.state.error?.code).toBe('E_PART_MISMATCH');
    // The transaction began (the history names it), so the screen names its log.
    const history = (await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8')).trim();
    const { id, log } = JSON.parse(history.split('\n').at(-1) as string) as {
      id: string;
      log: string;
    };
    expect(logOf(controller.state)).toEqual({ transaction: id, file: log });
    const shown = layout(controller.state, { columns: 200, rows: 60 });
    expect(shown.body.map((line) => line.text)).toContain(`  Log: ${log}`);
    const viewed = new Promise<void>((resolve) => {
      controller.subscribe((state) => {
        if (state.logView) resolve();
      });
    });
    controller.key('l');
    await viewed;
    expect(controller.state.logView?.transaction).toBe(id);
    // Nothing but the record of the attempt changed.
    expect(await snapshot(root)).toEqual(before);
  });
});

describe('ferry install on a terminal', () => {
  const socket = `ferry-media-${process.pid}`;
  const tmux = (...args: string[]): string =>
    execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  afterAll(() => {
    try {
      tmux('kill-server');
    } catch {
      // no server left
    }
  });

  async function screenShows(text: string): Promise<string> {
    const until = Date.now() + 30_000;
    let screen = '';
    while (Date.now() < until) {
      screen = tmux('capture-pane', '-t', 'install', '-p', '-S', '-100');
      if (screen.includes(text)) return screen;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(`the terminal never showed "${text}":\n${screen}`);
  }

  it('the console asking for a volume when its terminal is closed (SIGHUP): it stops there, no transaction left open', async () => {
    const { disc } = await drive(join(media, 'vol1'));
    const root = await appliance();
    const before = await snapshot(root);
    tmux(
      'new-session',
      '-d',
      '-s',
      'install',
      '-x',
      '200',
      '-y',
      '50',
      `${process.execPath} ${FERRY} console --root ${root} --media ${disc}`,
    );
    await screenShows('[Enter] apply');
    tmux('send-keys', '-t', 'install', 'Enter');
    await screenShows('Insert volume 2 of 3 (ACME_APPLIANCE_1_0_0_2)');
    tmux('kill-session', '-t', 'install');
    const history = join(root, 'var/lib/ferry/history.jsonl');
    await expect
      .poll(() => readFile(history, 'utf8').catch(() => ''), { timeout: 20_000 })
      .toContain('"outcome":"unchanged"');
    const shown = json(await ferry(['status', '--root', root, '--json']));
    expect(shown).not.toHaveProperty('open');
    expect(await snapshot(root)).toEqual(before);
  });

  it('ferry install asking for a volume when its terminal is closed (SIGHUP): it stops there, no transaction left open', async () => {
    const { disc } = await drive(join(media, 'vol1'));
    const root = await appliance();
    const before = await snapshot(root);
    tmux(
      'new-session',
      '-d',
      '-s',
      'install',
      '-x',
      '200',
      '-y',
      '50',
      `${process.execPath} ${FERRY} install ${disc} --root ${root} --yes`,
    );
    await screenShows('Insert volume 2 of 3 (ACME_APPLIANCE_1_0_0_2)');
    tmux('kill-session', '-t', 'install');
    const history = join(root, 'var/lib/ferry/history.jsonl');
    await expect
      .poll(() => readFile(history, 'utf8').catch(() => ''), { timeout: 20_000 })
      .toContain('"outcome":"unchanged"');
    expect(json(await ferry(['status', '--root', root, '--json']))).not.toHaveProperty('open');
    expect(await snapshot(root)).toEqual(before);
  });

  it('asks for each volume by label and number, and installs', async () => {
    const { disc, insert } = await drive(join(media, 'vol1'));
    const root = await appliance();
    const exit = join(dir, 'tty.exit');
    tmux(
      'new-session',
      '-d',
      '-s',
      'install',
      '-x',
      '200',
      '-y',
      '50',
      `${process.execPath} ${FERRY} install ${disc} --root ${root} --yes; echo $? > ${exit}; echo FERRY-EXITED; sleep 60`,
    );
    await screenShows('Insert volume 2 of 3 (ACME_APPLIANCE_1_0_0_2)');
    await insert(join(foreign, 'vol2'));
    tmux('send-keys', '-t', 'install', 'Enter');
    await screenShows('this volume holds another cut of acme-appliance@1.0.0');
    await insert(join(media, 'vol2'));
    tmux('send-keys', '-t', 'install', 'Enter');
    await screenShows('Insert volume 3 of 3 (ACME_APPLIANCE_1_0_0_3)');
    await insert(join(media, 'vol3'));
    tmux('send-keys', '-t', 'install', 'Enter');
    await screenShows('COMMITTED');
    // The screen shows the result before the shell has written the exit status.
    await screenShows('FERRY-EXITED');
    expect((await readFile(exit, 'utf8')).trim()).toBe('0');
    expect((await ferry(['status', '--root', root, '--json'])).stdout).toContain('"1.0.0"');
  });
});
