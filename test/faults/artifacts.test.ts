import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FERRY, run, type RunResult } from '../helpers.js';
import { install, installOk, markers, status } from '../e2e/appliance.js';
import { atFirstRelease, faultProduct } from './product.js';

// Artifacts that misbehave: leave children holding the pipes or daemonized
// with their stdio closed, hang while rolling back, print without end.

// The children's command lines are this run's own (the suite looks for them
// among every process), so another run's leftovers are never taken for ours.
const left = (seconds: number): string => `${seconds}.${process.pid}`;
const LEAVE = [
  'if [ -e "$FERRY_ROOT/leave" ]; then',
  `  setsid sleep ${left(300)} &`,
  `  setsid sh -c 'exec sleep ${left(301)}' </dev/null >/dev/null 2>&1 &`,
  '  sleep 1',
  'fi',
].join('\n');
const PLAIN = [
  'if [ -e "$FERRY_ROOT/leave-plain" ]; then',
  `  sleep ${left(302)} &`,
  '  sleep 1',
  'fi',
].join('\n');
/** Where the cgroup v2 filesystem is mounted, if it is. */
const cgroups = readFileSync('/proc/self/mountinfo', 'utf8')
  .split('\n')
  .map((line) => line.split(' '))
  .find((fields) => fields[fields.indexOf('-') + 1] === 'cgroup2')?.[4];
/** This process's cgroup, where a ferry it starts makes its artifacts' cgroups, if one can be made there. */
const ownCgroup = ((): string | null => {
  const own = /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
  if (!cgroups || own === undefined) return null;
  const probe = join(cgroups, own, `ferry-probe-${process.pid}`);
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    return join(cgroups, own);
  } catch {
    return null;
  }
})();
/** A pid no process has now (one that just ended). */
function deadPid(): number {
  for (;;) {
    const { pid } = spawnSync('true');
    if (pid && !existsSync(`/proc/${pid}`)) return pid;
  }
}
const NOISE = [
  'if [ -e "$FERRY_ROOT/noise" ]; then',
  `  yes 'a line of noise' | head -c 67108864`,
  `  head -c 67108864 /dev/zero | tr '\\0' x`,
  'fi',
].join('\n');
const product = faultProduct({ 'scripts/web/publish.sh': `${LEAVE}\n${PLAIN}\n${NOISE}` });

async function appliance(name: string, trigger: string): Promise<string> {
  const root = join(product.dir, name);
  await atFirstRelease(product, root);
  await mkdir(dirname(join(root, trigger)), { recursive: true });
  await writeFile(join(root, trigger), '');
  return root;
}

/** Processes whose command line is exactly `args`. */
async function running(...args: string[]): Promise<number[]> {
  const found: number[] = [];
  for (const pid of await readdir('/proc')) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline === `${args.join('\0')}\0`) found.push(Number(pid));
  }
  return found;
}

/** `ferry install` of 1.3.0, started through another program (`unshare`, `time`). */
function installThrough(through: string[], root: string): Promise<RunResult> {
  const [command, ...args] = through as [string, ...string[]];
  return run(
    command,
    [
      ...args,
      process.execPath,
      FERRY,
      'install',
      product.bundles['1.3.0'] as string,
      '--root',
      root,
      '--yes',
    ],
    { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  );
}

async function lastLog(root: string): Promise<string> {
  const logs = join(root, 'var/lib/ferry/logs');
  const names = (await readdir(logs)).sort();
  return join(logs, names.at(-1) as string);
}

describe('artifacts that misbehave', () => {
  it('children left holding the pipes or daemonized: the run ends at the exit, they are killed and named in the log', async () => {
    const root = await appliance('leave', 'leave');
    await installOk(product.bundles['1.3.0'] as string, root);
    expect((await status(root)).release).toBe('1.3.0');
    expect(await running('sleep', left(300))).toEqual([]);
    expect(await running('sleep', left(301))).toEqual([]);
    expect(await readFile(await lastLog(root), 'utf8')).toMatch(
      // Named as they were when killed: a child may not have become `sleep` yet.
      /ended what it left running: \d+ \(.+\), \d+ \(/,
    );
  });

  it.skipIf(!cgroups || process.getuid?.() !== 0)(
    'where no cgroup can be made (needs root and cgroup v2 to take it away), its group is killed at its exit all the same',
    async () => {
      const root = await appliance('no-cgroup', 'leave-plain');
      // A private mount namespace in which the cgroup filesystem is read-only.
      const script = `mount -o remount,bind,ro ${cgroups} && exec "$0" "$@"`;
      const result = await installThrough(['unshare', '-m', 'sh', '-c', script], root);
      expect(result.code, result.stderr).toBe(0);
      expect(await running('sleep', left(302))).toEqual([]);
      expect(await readFile(await lastLog(root), 'utf8')).toMatch(
        /ended what it left running: \d+ \(sleep\)/,
      );
    },
  );

  it.skipIf(!ownCgroup)(
    "an empty cgroup a dead ferry left beside its own is removed; a live ferry's, or one something still runs in, is kept",
    async () => {
      const parent = ownCgroup as string;
      const dead = join(parent, `ferry-${deadPid()}-1`);
      const live = join(parent, `ferry-${process.pid}-999999`);
      const busy = join(parent, `ferry-${deadPid()}-2`);
      for (const folder of [dead, live]) mkdirSync(folder);
      const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
      try {
        // A ferry of another test file running meanwhile sweeps `busy` while it is still empty:
        // made again until the sleeper is in it.
        for (;;) {
          if (!existsSync(busy)) mkdirSync(busy);
          const moved = await writeFile(join(busy, 'cgroup.procs'), String(sleeper.pid)).then(
            () => true,
            () => false,
          );
          if (moved) break;
        }
        const root = await appliance('dead-cgroups', 'none');
        await installOk(product.bundles['1.3.0'] as string, root);
        expect(existsSync(dead)).toBe(false);
        expect(existsSync(live)).toBe(true);
        expect(existsSync(busy)).toBe(true);
      } finally {
        const gone = new Promise((resolve) => sleeper.on('exit', resolve));
        sleeper.kill('SIGKILL');
        await gone;
        for (const folder of [dead, live, busy]) if (existsSync(folder)) rmdirSync(folder);
      }
    },
  );

  it('a rollback artifact that hangs is ended at the timeout the appliance sets, not ten minutes later', async () => {
    const root = await appliance('rollback-hang', 'fail/verify');
    const config = join(root, 'etc/ferry/appliance.yaml');
    await writeFile(
      config,
      (await readFile(config, 'utf8')).replace(
        /artifactTimeoutSeconds: \d+/,
        'artifactTimeoutSeconds: 2',
      ),
    );
    await mkdir(join(root, 'hang'));
    await writeFile(join(root, 'hang/db.rollback'), '');
    const failed = await install(product.bundles['1.3.0'] as string, root);
    expect(failed.code, failed.stderr).toBe(1);
    expect(failed.stdout + failed.stderr).toMatch(
      /rollback artifact .*restore\.sh timed out after 2 s/,
    );
    expect((await status(root)).release).toBe('1.0.0');
    expect((await markers(root)).filter((line) => line.startsWith('rollback db'))).toHaveLength(1);
    await rm(join(root, 'hang'), { recursive: true });
    await rm(join(root, 'fail'), { recursive: true });
    await installOk(product.bundles['1.3.0'] as string, root);
  });

  it('64 MiB of lines and 64 MiB without a newline: the log keeps about 1 MiB of it', async () => {
    const root = await appliance('noise', 'noise');
    const timed = await installThrough(['/usr/bin/time', '-f', 'maxrss %M'], root);
    expect(timed.code, timed.stderr.slice(-2000)).toBe(0);
    expect((await stat(await lastLog(root))).size).toBeLessThan(3 * 1024 * 1024);
    const rss = Number(/maxrss (\d+)/.exec(timed.stderr)?.[1]);
    expect(rss).toBeLessThan(400 * 1024);
  });
});
