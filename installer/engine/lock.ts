import { readFileSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import {
  FerryError,
  ioError,
  readRegularBytes,
  writeFileAtomic,
} from '../../manifest-schema/index.js';

export interface Lock {
  release(): Promise<void>;
  /** Set when the lock file of a process that died without releasing it was found. */
  takenOver?: { pid: number; since: string };
}

/** What the lock file says about its holder: only information, for the messages. */
interface Holder {
  pid?: number;
  command?: string;
  since?: string;
  boot?: string;
  /** The holder's start time (clock ticks since boot): its pid reused by another process does not match. */
  start?: string;
}

/** Field 22 of /proc/PID/stat, or null when there is no such process (or no /proc). */
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The name (field 2) is in parentheses and may hold spaces: count after its end.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether the lock file names a ferry that is still running: the same boot, pid and start time. */
function alive(holder: Holder | null): boolean {
  if (!holder?.pid || holder.pid === process.pid || !holder.start) return false;
  return holder.boot === bootId() && startTime(holder.pid) === holder.start;
}

function lockedBy(holder: Holder | null, file: string, root: string, elsewhere = ''): FerryError {
  const who = holder
    ? `${holder.command ?? 'unknown command'}, pid ${holder.pid ?? '?'}, since ${holder.since ?? '?'}`
    : 'just starting';
  return new FerryError('E_LOCKED', `another ferry (${who}) is working on ${root}${elsewhere}`, {
    file,
    hint: 'wait for it to finish; only one installer runs at a time',
  });
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/**
 * Who the lock file names; null when it is not there or not a holder's JSON.
 * A FIFO or device in its place is refused, as every appliance file is: read,
 * it would be waited on for ever (SIGTERM does not end a recover).
 */
async function readHolder(file: string): Promise<Holder | null> {
  let bytes: Buffer;
  try {
    bytes = await readRegularBytes(file, 'E_STATE_INVALID', {
      max: 4096,
      hint: 'the lock file only names who holds the lock (ferry writes it anew): remove what took its place',
    });
  } catch (error) {
    if ((error as FerryError).code === 'E_STATE_INVALID') throw error;
    return null;
  }
  try {
    return JSON.parse(bytes.toString('utf8')) as Holder;
  } catch {
    return null;
  }
}

function lockName(dev: number, ino: number): string {
  return `\0ferry/${dev}:${ino}`;
}

/** Whether some process holds the appliance's lock now (for `status`: an open transaction under way or interrupted). */
export async function lockHeld(root: string): Promise<boolean> {
  const { dev, ino } = await stat(root);
  const server = createServer();
  return new Promise<boolean>((resolve) => {
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EADDRINUSE'));
    server.listen({ path: lockName(dev, ino) }, () => server.close(() => resolve(false)));
  });
}

/**
 * One installer at a time: an abstract unix socket named after the
 * appliance root's device and inode. Binding it is atomic, and the kernel
 * releases it when its process ends however it ends, so a crash, a power
 * cut or a reused pid never leaves the appliance locked. The lock file
 * beside it only tells the next one who holds it (pid, command, since, boot).
 */
export async function acquireLock(file: string, root: string, command: string): Promise<Lock> {
  const { dev, ino } = await stat(root).catch((error: unknown) => {
    throw ioError(error, root, 'read');
  });
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: lockName(dev, ino) }, resolve);
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE')
      throw ioError(error, file, 'take the lock for');
    throw lockedBy(await readHolder(file), file, root);
  }
  // Held for as long as this process lives, without keeping it alive.
  server.unref();
  const left = await readHolder(file).catch((error: unknown) => {
    server.close();
    throw error;
  });
  // An abstract socket is per network namespace: a ferry started in another
  // one (a unit with PrivateNetwork=, unshare -n) binds its own and would
  // otherwise run beside this one, even "recover" its open transaction.
  if (alive(left)) {
    server.close();
    throw lockedBy(left, file, root, ' (from another network namespace)');
  }
  const start = startTime(process.pid);
  const holder: Holder = {
    pid: process.pid,
    command,
    since: new Date().toISOString(),
    boot: bootId(),
    ...(start ? { start } : {}),
  };
  // Information only: an appliance whose lock file cannot be written is still locked.
  await writeFileAtomic(file, `${JSON.stringify(holder)}\n`).catch(() => undefined);
  return {
    release: async () => {
      // The file goes first: a ferry that binds once the socket is free must
      // not find it and take this one, still running, for a holder.
      // A filesystem gone read-only must not hide why the work failed.
      await rm(file, { force: true }).catch(() => undefined);
      server.close();
    },
    ...(left ? { takenOver: { pid: left.pid ?? 0, since: left.since ?? 'unknown' } } : {}),
  };
}
