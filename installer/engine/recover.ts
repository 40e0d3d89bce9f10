import { closeSync, constants, fstatSync, lstatSync, openSync, writeSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  compareVersions,
  FerryError,
  ioError,
  isAtomicLeftover,
  isStrictVersion,
  printable,
  readRegularFile,
} from '../../manifest-schema/index.js';
import { FERRY_VERSION } from '../../manifest-schema/ferry-version.js';
import { INSTALLER_DIR } from '../handover.js';
import { DEFAULT_RETENTION, openAppliance, type Appliance } from '../appliance.js';
import type { InstallEvent, NotUndone } from './events.js';
import { appendLine, Journal, type TransactionHeader } from './journal.js';
import { acquireLock } from './lock.js';
import { cleanUp, removeLinkLeftovers } from './retention.js';
import { endLeftover } from './run.js';
import {
  notUndoneWarning,
  removeBackups,
  removeStaging,
  runningFile,
  undoAll,
} from './transaction.js';

/**
 * Runs `work` holding the appliance's lock, after resolving any transaction
 * a crash left open (the appliance is read again when one was).
 */
export async function exclusive<T>(
  root: string,
  command: string,
  emit: (event: InstallEvent) => void,
  interrupts: Interrupts | undefined,
  work: (appliance: Appliance, recovered: Recovery | null) => Promise<T>,
): Promise<T> {
  let recovering = false;
  // The recovery's own events also go to the log of the transaction it resolves.
  let recoveryLog: ((event: InstallEvent) => void) | null = null;
  // One listener for the whole command: an interrupt landing in the recovery is told
  // as what it is (the recovery finishes first), not as what the command would do.
  const onAbort = (): void => {
    const signal = String(interrupts?.signal.reason);
    if (!recovering) {
      interrupts?.tell(signal);
      return;
    }
    const then =
      command === 'recover'
        ? 'then ferry exits'
        : `then the ${command} stops with nothing of its own changed`;
    (recoveryLog ?? emit)({
      type: 'interrupt',
      signal,
      message: `${signal}: recovering an interrupted transaction; the recovery finishes first, ${then}`,
    });
  };
  if (interrupts?.signal.aborted) onAbort();
  else interrupts?.signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await exclusively(root, command, emit, work, (underWay, log) => {
      recovering = underWay;
      recoveryLog = log;
    });
  } finally {
    interrupts?.signal.removeEventListener('abort', onAbort);
  }
}

/**
 * An operator's interrupt of a command run by `exclusive`: `tell` says (on the
 * terminal and in the transaction's log) what the command does about it from
 * where it is, unless it lands in the recovery run first.
 */
export interface Interrupts {
  signal: AbortSignal;
  tell: (signal: string) => void;
}

async function exclusively<T>(
  root: string,
  command: string,
  emit: (event: InstallEvent) => void,
  work: (appliance: Appliance, recovered: Recovery | null) => Promise<T>,
  recovering: (underWay: boolean, log: ((event: InstallEvent) => void) | null) => void,
): Promise<T> {
  const { paths } = await openAppliance(root);
  const lock = await acquireLock(paths.lock, paths.root, command);
  try {
    // Read again under the lock: another ferry may have committed between the
    // read that found the lock's path and the bind, and work decided on the
    // state before it would undo or re-plan from a release no longer there.
    // The read before stays: a root that is no appliance is said so, not
    // reported as a lock that could not be taken.
    const appliance = await openAppliance(root);
    if (lock.takenOver)
      emit({
        type: 'warning',
        message: `took over a stale lock left by pid ${lock.takenOver.pid} (since ${lock.takenOver.since}): that ferry died`,
      });
    recovering(true, null);
    const recovered = await recoverPending(appliance, emit, (log) => recovering(true, log)).finally(
      () => recovering(false, null),
    );
    return await work(recovered ? await openAppliance(root) : appliance, recovered);
  } finally {
    await lock.release();
  }
}

/** What resolving an interrupted transaction did that the appliance's state does not show. */
export interface Recovery {
  /** A rollback's artifacts that ran before it was undone: see NotUndone. */
  notUndone: NotUndone[];
}

/** `ferry recover`: resolves an interrupted transaction, if there is one. */
export function recover(
  root: string,
  warn: (message: string) => void,
  options: {
    /** Aborted when the operator interrupts: the recovery is told of it and finishes regardless. */
    signal?: AbortSignal;
    /** Says what an interrupt does: the recovery finishes first. */
    interrupted?: (message: string) => void;
  } = {},
): Promise<{ recovered: boolean; release: string | null; notUndone?: NotUndone[] }> {
  const emit = (event: InstallEvent): void => {
    if (event.type === 'warning') warn(event.message);
    if (event.type === 'interrupt') options.interrupted?.(event.message);
  };
  const { signal } = options;
  const interrupts = signal && {
    signal,
    // Outside the recovery there is nothing to stop: it only reads the state.
    tell: (name: string) =>
      emit({ type: 'interrupt', signal: name, message: `${name}: nothing is under way; stopping` }),
  };
  return exclusive(root, 'recover', emit, interrupts, (appliance, recovered) =>
    Promise.resolve({
      recovered: recovered !== null,
      release: appliance.state.release,
      ...(recovered && recovered.notUndone.length > 0 ? { notUndone: recovered.notUndone } : {}),
    }),
  );
}

/**
 * Refuses a journal a newer Ferry wrote: it may record steps this one does
 * not know, and would skip, leaving the appliance mixed while saying it was
 * recovered. That Ferry is usually on the appliance already: an installer
 * handed over to is kept in var/lib/ferry/bin.
 */
async function requireJournalWriter(
  header: TransactionHeader,
  paths: Appliance['paths'],
): Promise<void> {
  const writer = header.ferry;
  if (
    writer === undefined ||
    !isStrictVersion(writer) ||
    compareVersions(FERRY_VERSION, writer) >= 0
  )
    return;
  const file = join(paths.journal, 'transaction.json');
  const kept = join(paths.root, INSTALLER_DIR, `ferry-installer-${writer}`);
  const here = await stat(kept).then(
    (stats) => stats.isFile(),
    () => false,
  );
  throw new FerryError(
    'E_INSTALLER_TOO_OLD',
    `transaction ${header.id} (${header.from ?? 'empty'} → ${header.to ?? 'empty'}) was interrupted, and Ferry ${writer} wrote its journal; this is Ferry ${FERRY_VERSION}, which may not know every step it records: nothing was changed`,
    {
      file,
      hint: here
        ? `recover with the installer that wrote it: ${kept} recover --root ${paths.root}`
        : `recover with Ferry ${writer} or newer: ferry recover --root ${paths.root}`,
    },
  );
}

/**
 * Resolves a transaction a crash left open: rolled forward when state.json
 * carries its id (the commit happened), rolled back otherwise. Returns null
 * when there was nothing to resolve.
 */
export async function recoverPending(
  appliance: Appliance,
  told: (event: InstallEvent) => void,
  logging?: (log: (event: InstallEvent) => void) => void,
): Promise<Recovery | null> {
  const open = await Journal.read(appliance.paths.journal, appliance.paths.root);
  if (!open) {
    // A folder left by a crash before its header: nothing was changed, nothing to record.
    await rm(appliance.paths.journal, { recursive: true, force: true });
    return null;
  }
  const { header, steps } = open;
  await requireJournalWriter(header, appliance.paths);
  const logFile = join(appliance.paths.logs, `${header.id}.jsonl`);
  // The log is for people: a recovery never stops for want of it, nor writes through what
  // took its place (a link out of the appliance, a FIFO an open would wait on for ever).
  const write = (lines: string): void => {
    let fd: number | undefined;
    try {
      if (!lstatSync(appliance.paths.logs).isDirectory()) return;
      fd = openSync(
        logFile,
        constants.O_WRONLY |
          constants.O_APPEND |
          constants.O_CREAT |
          constants.O_NONBLOCK |
          constants.O_NOFOLLOW,
        0o644,
      );
      if (fstatSync(fd).isFile()) writeSync(fd, lines);
    } catch {
      // Not written: see above.
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  };
  // Held back until the recovery is past its refusals: one refused changes nothing, its log included.
  let held: string[] | null = [];
  // A recovery has no transaction of its own: what it did, and an interrupt that landed in
  // it, are told in the log of the one it resolves, where `ferry log` reads them.
  const emit = (event: InstallEvent): void => {
    told(event);
    const line = `${printable(JSON.stringify({ at: new Date().toISOString(), ...event }))}\n`;
    if (held) held.push(line);
    else write(line);
  };
  logging?.(emit);
  emit({ type: 'pass', pass: 'recover', status: 'start' });
  // A Ferry killed alone (not a power cut) leaves its artifact running in its
  // own group: undoing under it would race a migration still writing.
  const ended = await endLeftover(runningFile(appliance.paths.journal));
  write(held.join(''));
  held = null;
  if (ended.length > 0)
    emit({
      type: 'warning',
      message: `ended what the interrupted transaction's artifact left running: ${ended.join(', ')}`,
    });
  const committed = appliance.state.transaction === header.id;
  let notUndone: NotUndone[] = [];
  if (committed) {
    emit({
      type: 'warning',
      message: `transaction ${header.id} (${header.from ?? 'empty'} → ${header.to}) was committed before an interruption: finishing it`,
    });
    await removeBackups(steps);
    await cleanUp(
      appliance.paths,
      appliance.state,
      appliance.config.retention ?? DEFAULT_RETENTION,
    );
  } else {
    emit({
      type: 'warning',
      message: `transaction ${header.id} (${header.from ?? 'empty'} → ${header.to ?? 'empty'}) was interrupted: rolling it back`,
    });
    notUndone = await undoAll(steps, header, appliance.paths.journal, emit);
    // The killed rollback's own log too: whoever reads there why it failed must find what it left.
    for (const item of notUndone)
      await appendLine(logFile, {
        at: new Date().toISOString(),
        type: 'warning',
        message: notUndoneWarning(item, header),
      });
    await removeLinkLeftovers(appliance.paths);
  }
  await removeStaging(appliance.paths, header.id);
  await removeWriteLeftovers([appliance.paths.lib, appliance.paths.etc]);
  const history = await readRegularFile(appliance.paths.history, 'E_STATE_INVALID', '');
  // Committed: the transaction's own line may be there already. Rolled back: its line
  // (a rollback that failed, say) is followed by this recover's, once: a recover cut
  // after writing it and before removing the journal is run again, and adds none.
  const recorded = history
    .split('\n')
    .some(
      (line) =>
        line.includes(`"id":"${header.id}"`) &&
        (committed || line.includes('"operation":"recover"')),
    );
  if (!recorded) {
    await appendLine(appliance.paths.history, {
      id: header.id,
      at: new Date().toISOString(),
      operation: 'recover',
      bundle: header.bundle,
      from: header.from,
      to: header.to,
      outcome: committed ? 'committed' : 'rolled-back',
      interruptedAt: steps.length,
      ...(notUndone.length > 0 ? { notUndone } : {}),
      log: logFile,
    });
  }
  await rm(appliance.paths.journal, { recursive: true, force: true });
  emit({ type: 'pass', pass: 'recover', status: 'done' });
  return { notUndone };
}

/**
 * A cut between writing state.json (or the trust root, or its backup) whole
 * in a temp file and renaming it leaves that temp file: the appliance is
 * then not byte for byte at either release until it goes.
 */
async function removeWriteLeftovers(dirs: readonly string[]): Promise<void> {
  for (const dir of dirs)
    for (const name of await readdir(dir).catch(() => [] as string[]))
      if (isAtomicLeftover(name))
        await rm(join(dir, name), { force: true }).catch((error: unknown) => {
          throw ioError(error, join(dir, name), 'remove');
        });
}
