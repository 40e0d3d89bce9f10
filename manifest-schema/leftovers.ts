import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

/**
 * This machine and process id namespace, as a temporary file's name carries it (a hash):
 * the ids of processes of other machines, or of containers sharing the folder (and, with
 * the host's network, its host name), mean nothing here.
 */
const HOST = createHash('sha256')
  .update(`${hostname()}\0${pidNamespace()}`)
  .digest('hex')
  .slice(0, 8);

function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}

/**
 * A temporary file's name beside `name` (`.NAME.HOST-PID.RANDOM.KIND`): a process killed
 * outright (SIGKILL, the OOM killer, a power cut: no handler ran) leaves it behind, and
 * the name says whose it was, so that the next run removes it (removeDeadTemps) and
 * leaves a live one's alone.
 */
export function ownTempName(name: string, kind: string): string {
  return `.${name}.${HOST}-${process.pid}.${randomBytes(6).toString('hex')}.${kind}`;
}

/**
 * Whose a name is, when it is a `kind` temporary file of this machine (ownTempName, or
 * what a writer streamed beside one before its rename, `.TEMP.RANDOM.part`): `dead` when
 * its process is gone, `live` when it runs (here, or its process id held by another
 * user); null for any other name, another machine's included.
 */
export function tempState(name: string, kind: string): 'dead' | 'live' | null {
  const owner = tempOwner(name, kind);
  if (!owner || owner.host !== HOST) return null;
  return isAlive(owner.pid) ? 'live' : 'dead';
}

/** The machine (hash) and process a `kind` temporary file's name says it belongs to. */
function tempOwner(name: string, kind: string): { host: string; pid: number } | null {
  const found = new RegExp(
    `^\\.\\.?.+\\.([0-9a-f]{8})-(\\d+)\\.[0-9a-f]{12}\\.${kind}(?:\\.[0-9a-f]{12}\\.part)?$`,
  ).exec(name);
  return found ? { host: found[1] as string, pid: Number(found[2]) } : null;
}

/**
 * How long another machine's temporary file may go unwritten before it counts as dead.
 * A CI job in a container of its own has a host name and process ids of its own, so a
 * killed one's leftover is another machine's to the next job: without this, one more
 * bundle-sized file for each killed build in a cache folder jobs share. A live writer
 * touches its file within minutes (a signer may keep it waiting up to its timeout).
 */
const FOREIGN_STALE_MS = 24 * 60 * 60 * 1000;

/**
 * Removes from `folder` the `kind` temporary files whose process is gone (tempState),
 * and other machines' untouched for a day: a partial bundle as large as it got, under a
 * hidden name, on a disk or stick that has no room for it twice.
 */
export function removeDeadTemps(folder: string, kind: string): void {
  let entries: string[];
  try {
    entries = readdirSync(folder);
  } catch {
    return;
  }
  for (const entry of entries) {
    const owner = tempOwner(entry, kind);
    if (!owner) continue;
    const file = join(folder, entry);
    try {
      if (owner.host === HOST ? isAlive(owner.pid) : !untouchedForADay(file)) continue;
      rmSync(file, { force: true });
    } catch {
      // Not ours to remove (another user's, a read-only stick): left as it is.
    }
  }
}

function untouchedForADay(file: string): boolean {
  return lstatSync(file).mtimeMs < Date.now() - FOREIGN_STALE_MS;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
