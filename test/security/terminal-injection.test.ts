import { appendFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { printable } from '../../manifest-schema/index.js';
import { buildAll, ferry, ferryOk, tempDir, workspace } from '../helpers.js';
import { initAppliance } from '../e2e/appliance.js';
import { tarBytes, type CraftEntry } from './hostile.js';
import {
  craftedFile,
  expectRefusedEverywhere,
  ferryMeasured,
  freshAppliance,
  sharedBase,
} from './refuse.js';

// An entry name is echoed in the refusal that names it. Raw, its control
// bytes would drive the operator's terminal (clear the screen, retitle the
// window, hide the refusal); every output escapes them.
const ESC = '\u001b';
const name = `payload/app/${ESC}[2J${ESC}]0;all good${String.fromCharCode(7)}\u009b31m\u202eevil`;
// eslint-disable-next-line no-control-regex -- finding them is the test
const RAW = /[\u001b\u0007\u009b\u202e]/;

describe('control characters in names taken from a bundle', () => {
  it('are escaped in what verify, install and the transaction log print', async () => {
    const { entries, trust } = await sharedBase();
    const extra: CraftEntry = { name, type: 'File', data: Buffer.from('x') };
    const file = await craftedFile(tarBytes([...entries, extra]), 'tar');
    const runs = await expectRefusedEverywhere(file, 'E_UNLISTED_ENTRY', 3, ['verify', 'install']);
    for (const run of runs) {
      expect(run.stderr).not.toMatch(RAW);
      expect(run.stderr).toContain(printable(name));
    }
    const json = await ferryMeasured(['verify', file, '--trust', trust, '--json']);
    expect(json.stdout).not.toMatch(RAW);
    expect((JSON.parse(json.stdout) as { error: { entry: string } }).error.entry).toBe(name);

    const root = await freshAppliance();
    await ferryMeasured(['install', file, '--root', root, '--yes']);
    const logs = join(root, 'var/lib/ferry/logs');
    const written = await readdir(logs);
    expect(written.length).toBeGreaterThan(0);
    for (const log of written) expect(await readFile(join(logs, log), 'utf8')).not.toMatch(RAW);
  });

  it("are escaped in what ferry log prints of an artifact's output", async () => {
    // The log file holds them as JSON escapes; ferry log decodes it, and must escape them again.
    const ws = await workspace(await tempDir());
    const said = `${ESC}[2J${ESC}]0;all good${String.fromCharCode(7)}\u009b31m\u202edone`;
    await appendFile(join(ws.product, 'scripts/db/migrate.sh'), `printf '%s\\n' '${said}' >&2\n`);
    const bundle = (await buildAll(ws, join(ws.dir, 'out'), 'tar', ['1.0.0']))['1.0.0'] ?? '';
    const root = join(ws.dir, 'appliance');
    await initAppliance(ws, root);
    await ferryOk(['install', bundle, '--root', root, '--yes']);
    const log = await ferry(['log', '--root', root]);
    expect(log.code, log.stderr).toBe(0);
    expect(log.stdout).toContain(printable(said));
    expect(log.stdout).not.toMatch(RAW);
  });

  it('printable leaves ordinary text, line feeds and tabs alone', () => {
    expect(printable('payload/app/naïve\tfile\nnext')).toBe('payload/app/naïve\tfile\nnext');
    expect(printable(`a${ESC}b\u0000`)).toBe('a\\u001bb\\u0000');
  });
});
