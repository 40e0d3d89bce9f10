import { readFileSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { FerryError, ioError, writeFileAtomic } from '../../manifest-schema/index.js';

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
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

async function readHolder(file: string): Promise<Holder | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Holder;
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
    const holder = await readHolder(file);
    const who = holder
      ? `${holder.command ?? 'unknown command'}, pid ${holder.pid ?? '?'}, since ${holder.since ?? '?'}`
      : 'just starting';
    throw new FerryError('E_LOCKED', `another ferry (${who}) is working on ${root}`, {
      file,
      hint: 'wait for it to finish; only one installer runs at a time',
    });
  }
  // Held for as long as this process lives, without keeping it alive.
  server.unref();
  const left = await readHolder(file);
  const holder: Holder = {
    pid: process.pid,
    command,
    since: new Date().toISOString(),
    boot: bootId(),
  };
  // Information only: an appliance whose lock file cannot be written is still locked.
  await writeFileAtomic(file, `${JSON.stringify(holder)}\n`).catch(() => undefined);
  return {
    release: async () => {
      server.close();
      // A filesystem gone read-only must not hide why the work failed.
      await rm(file, { force: true }).catch(() => undefined);
    },
    ...(left ? { takenOver: { pid: left.pid ?? 0, since: left.since ?? 'unknown' } } : {}),
  };
}
