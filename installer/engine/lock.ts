import { open, readFile, rm } from 'node:fs/promises';
import { FerryError, ioError } from '../../manifest-schema/index.js';

export interface Lock {
  release(): Promise<void>;
  /** Set when a lock left by a dead process was taken over. */
  takenOver?: { pid: number; since: string };
}

/** The process still runs (EPERM: it runs as another user). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One installer at a time: an exclusive lock file holding the owner's pid.
 * A lock whose process is gone (a crash, a power cut) is taken over; a live
 * one is E_LOCKED (exit 5).
 */
export async function acquireLock(file: string, command: string): Promise<Lock> {
  const body = `${JSON.stringify({ pid: process.pid, command, since: new Date().toISOString() })}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o644);
      await handle.writeFile(body);
      await handle.sync();
      await handle.close();
      return { release: () => rm(file, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
        throw ioError(error, file, 'create the lock');
    }
    let owner: { pid?: number; command?: string; since?: string } = {};
    try {
      owner = JSON.parse(await readFile(file, 'utf8')) as typeof owner;
    } catch {
      // empty or torn: its writer died between create and write
    }
    if (typeof owner.pid === 'number' && owner.pid !== process.pid && alive(owner.pid)) {
      throw new FerryError(
        'E_LOCKED',
        `another ferry (${owner.command ?? 'unknown command'}, pid ${owner.pid}, since ${owner.since ?? '?'}) holds ${file}`,
        {
          file,
          hint: 'wait for it to finish; only one installer runs at a time',
        },
      );
    }
    // Stale: the owner is gone. Remove and retry the exclusive create, so two takers cannot both win.
    await rm(file, { force: true });
    const lock = await acquireLock(file, command).catch((error: unknown) => {
      if (attempt === 2) throw error;
      return null;
    });
    if (lock)
      return { ...lock, takenOver: { pid: owner.pid ?? 0, since: owner.since ?? 'unknown' } };
  }
  throw new FerryError('E_LOCKED', `could not take ${file}`, {
    file,
    hint: 'another ferry is starting; try again',
  });
}
