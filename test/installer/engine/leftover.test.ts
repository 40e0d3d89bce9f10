import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endLeftover } from '../../../installer/engine/run.js';

// endLeftover reads a record a killed ferry left on disk and SIGKILLs what it
// names: whatever is wrong with the record, it must never end a process that
// is not the artifact's, nor go on while one of the artifact's still runs.

let dir: string;
const started: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-leftover-'));
});

afterAll(async () => {
  for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

function fields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Alive and not a zombie waiting for its parent. */
function alive(pid: number): boolean {
  const state = fields(pid)?.[0];
  return state !== undefined && state !== 'Z';
}

const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

async function until(check: () => boolean): Promise<void> {
  for (let waited = 0; !check(); waited += 10) {
    if (waited > 10_000) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A `sleep` in a session of its own, as an artifact runs; resolves once it is sleep. */
async function sleeper(): Promise<{ pid: number; start: string }> {
  const child = spawn('sleep', ['3600'], { detached: true, stdio: 'ignore' });
  started.push(child);
  const pid = child.pid as number;
  await until(() => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep');
  return { pid, start: fields(pid)?.[19] as string };
}

async function record(name: string, tracked: object): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify(tracked));
  return file;
}

describe('endLeftover', () => {
  it('refuses a folder in place of the record, and keeps it', async () => {
    const file = join(dir, 'folder.json');
    await mkdir(file);
    await expect(endLeftover(file)).rejects.toMatchObject({
      code: 'E_JOURNAL_CORRUPT',
      message: `${file} is not a regular file (a folder)`,
    });
    expect((await stat(file)).isDirectory()).toBe(true);
  });

  it('leaves alone a process named by a record from another boot', async () => {
    // After a power cut the same pid and start tick may name anything.
    const { pid, start } = await sleeper();
    const file = await record('boot.json', { pid, start, boot: 'another', cgroup: null });
    expect(await endLeftover(file)).toEqual([]);
    expect(alive(pid)).toBe(true);
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('ends what the artifact left in its session once the artifact itself has exited', async () => {
    const shell = spawn('sh', ['-c', 'sleep 3600 & echo $!; read x'], {
      detached: true,
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    started.push(shell);
    const pid = shell.pid as number;
    const start = fields(pid)?.[19] as string;
    const orphan = Number(
      await new Promise<string>((resolve) =>
        shell.stdout?.once('data', (data) => resolve(String(data))),
      ),
    );
    // $! is known before the child has become sleep: it would be named sh.
    await until(() => readFileSync(`/proc/${orphan}/comm`, 'utf8').trim() === 'sleep');
    shell.stdin?.end();
    await until(() => !alive(pid));
    expect(alive(orphan)).toBe(true);
    const file = await record('orphan.json', { pid, start, boot, cgroup: null });
    expect(await endLeftover(file)).toEqual([`${orphan} (sleep)`]);
    await until(() => !alive(orphan));
  });

  it('ignores a cgroup that is not one Ferry made', async () => {
    const { pid } = await sleeper();
    const cgroup = join(dir, 'ferry-1-1');
    await mkdir(cgroup);
    await writeFile(join(cgroup, 'cgroup.procs'), `${pid}\n`);
    const gone = spawn('true');
    await new Promise((resolve) => gone.on('close', resolve));
    const file = await record('cgroup.json', {
      pid: gone.pid,
      start: '1',
      boot,
      cgroup,
    });
    expect(await endLeftover(file)).toEqual([]);
    expect(alive(pid)).toBe(true);
    expect((await readdir(cgroup)).sort()).toEqual(['cgroup.procs']);
  });

  it('refuses to go on while a process it killed still runs, and keeps the record', async () => {
    // A process in D state (a dead disk or NFS server) outlives SIGKILL; one
    // that is not signalled at all stands in for it.
    const { pid, start } = await sleeper();
    const file = await record('stuck.json', { pid, start, boot, cgroup: null });
    await expect(endLeftover(file, { waitMs: 100, kill: () => {} })).rejects.toMatchObject({
      code: 'E_IO',
      message: expect.stringContaining(`${pid} (sleep)`) as string,
      details: { hint: expect.stringContaining('ferry recover again') as string },
    });
    expect((await stat(file)).isFile()).toBe(true);
    expect(await endLeftover(file)).toEqual([`${pid} (sleep)`]);
    await until(() => !alive(pid));
  });
});
