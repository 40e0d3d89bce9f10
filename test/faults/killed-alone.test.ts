import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildAll, FERRY, ferry, json, tempDir, workspace, type Workspace } from '../helpers.js';
import {
  cloneAppliance,
  initAppliance,
  installOk,
  markers,
  snapshot,
  status,
} from '../e2e/appliance.js';

// SIGKILL of the ferry process alone (the OOM killer, `kill -9 <pid>`), not a
// power cut: the artifact it was running lives on in its own process group.
// Recovery must end it before undoing, or it goes on writing after the
// appliance was put back.

let dir: string;
let ws: Workspace;
let bundles: Record<string, string>;
let base: string;

beforeAll(async () => {
  dir = await tempDir();
  ws = await workspace(dir);
  // web's update artifact writes its data once the hang trigger is gone, as
  // a migration still running would.
  const publish = join(ws.product, 'scripts/web/publish.sh');
  const script = await readFile(publish, 'utf8');
  await writeFile(
    publish,
    script.replace(
      /^(while .*done)$/m,
      '$1\nmkdir -p "$FERRY_ROOT/var/lib/acme-web" && echo "$FERRY_TO_VERSION" > "$FERRY_ROOT/var/lib/acme-web/published"',
    ),
  );
  bundles = await buildAll(ws, join(dir, 'bundles'), 'tar', ['1.0.0', '1.1.0']);
  base = join(dir, 'at-1.0.0');
  await initAppliance(ws, base);
  await installOk(bundles['1.0.0'] as string, base);
});

/** Processes started for this root (artifacts get FERRY_ROOT, and their children inherit it). */
async function runningFor(root: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').includes(`FERRY_ROOT=${root}`)) found.push(Number(entry));
  }
  return found;
}

/** Starts `ferry args`, resolves once `marker` is appended to the fixture's marker log, and SIGKILLs it. */
async function killAt(args: string[], root: string, marker: string): Promise<number> {
  const seen = (lines: string[]): number => lines.filter((line) => line === marker).length;
  const before = seen(await markers(root));
  const child = spawn(process.execPath, [FERRY, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
    stdio: 'ignore',
  });
  const exit = new Promise((resolve) => child.on('close', resolve));
  for (let waited = 0; seen(await markers(root)) === before; waited += 20) {
    if (waited > 30_000) throw new Error(`no ${marker} marker`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill('SIGKILL');
  await exit;
  return child.pid as number;
}

/** Where a ferry's artifacts got cgroups of their own, if they did: cgroup v2 writable. */
const cgroups = ((): string | null => {
  const mount = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .find((fields) => fields[fields.indexOf('-') + 1] === 'cgroup2')?.[4];
  const own = /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
  return mount && own !== undefined ? join(mount, own) : null;
})();

/** The cgroups ferry `pid` made that are still there. */
async function cgroupsOf(pid: number): Promise<string[]> {
  if (!cgroups) return [];
  return (await readdir(cgroups)).filter((name) => name.startsWith(`ferry-${pid}-`));
}

/** Waits (bounded) for whatever still runs for `root` to end by itself. */
async function settled(root: string): Promise<void> {
  for (let waited = 0; (await runningFor(root)).length > 0 && waited < 10_000; waited += 50)
    await new Promise((resolve) => setTimeout(resolve, 50));
}

describe('ferry killed alone, its artifact still running', () => {
  it('recover ends the update artifact first: it writes nothing after the rollback', async () => {
    const root = join(dir, 'update');
    await cloneAppliance(base, root);
    const before = await snapshot(root);
    const trigger = join(root, 'hang', 'web.update');
    await mkdir(join(root, 'hang'));
    await writeFile(trigger, '');
    const killed = await killAt(
      ['install', bundles['1.1.0'] as string, '--root', root, '--yes'],
      root,
      'update web 1.0.0 1.0.1',
    );
    expect(await runningFor(root)).not.toEqual([]);

    const recovered = await ferry(['recover', '--root', root, '--json']);
    expect(recovered.code, recovered.stderr).toBe(0);
    // The killed ferry's artifact cgroup goes with what ran in it: each is kernel memory.
    expect(await cgroupsOf(killed)).toEqual([]);
    // At least one process named: a child that exits while the list is read is given by its pid alone.
    expect(recovered.stderr).toMatch(
      /ended what the interrupted transaction's artifact left running: [^\n]*\d+ \(/,
    );
    expect(await runningFor(root)).toEqual([]);
    // Unfixed, the orphan now goes on and publishes 1.0.1's data over 1.0.0.
    await rm(join(root, 'hang'), { recursive: true });
    await settled(root);
    expect(await snapshot(root)).toEqual(before);
    expect(await status(root)).toMatchObject({ release: '1.0.0', verified: true });

    const again = await ferry(['recover', '--root', root, '--json']);
    expect(json<{ recovered: boolean }>(again).recovered).toBe(false);
    expect(await snapshot(root)).toEqual(before);
    await installOk(bundles['1.1.0'] as string, root);
    expect((await status(root)).release).toBe('1.1.0');
  });

  it('a recover killed in a rollback artifact: the next recover ends it, then finishes', async () => {
    const root = join(dir, 'recover');
    await cloneAppliance(base, root);
    const before = await snapshot(root);
    await mkdir(join(root, 'hang'));
    await writeFile(join(root, 'hang', 'web.update'), '');
    await killAt(
      ['install', bundles['1.1.0'] as string, '--root', root, '--yes'],
      root,
      'update web 1.0.0 1.0.1',
    );
    // web's rollback artifact sleeps an hour while this trigger exists.
    await writeFile(join(root, 'hang', 'web.rollback'), '');
    const killed = await killAt(['recover', '--root', root], root, 'rollback web 1.0.0 1.0.1');
    expect(await runningFor(root)).not.toEqual([]);

    await rm(join(root, 'hang'), { recursive: true });
    const recovered = await ferry(['recover', '--root', root, '--json']);
    expect(recovered.code, recovered.stderr).toBe(0);
    expect(await cgroupsOf(killed)).toEqual([]);
    expect(json<{ recovered: boolean }>(recovered).recovered).toBe(true);
    expect(await runningFor(root)).toEqual([]);
    await settled(root);
    expect(await snapshot(root)).toEqual(before);
    expect(
      json<{ recovered: boolean }>(await ferry(['recover', '--root', root, '--json'])).recovered,
    ).toBe(false);
    await installOk(bundles['1.1.0'] as string, root);
  });
});
