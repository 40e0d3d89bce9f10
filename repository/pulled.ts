import { createHash } from 'node:crypto';
import { lstat, mkdir, open, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { readRegularBytes, writeFileAtomic } from '../manifest-schema/atomic.js';
import { FerryError, ioError } from '../manifest-schema/errors.js';

/**
 * What this machine has pulled by channel, per repository: the highest
 * channel document it accepted and that document's digest. A channel's
 * documents only go up (a rollback is a new document with the next
 * sequence), so a document lower than one pulled before, or another under a
 * sequence pulled before, is a channel set back or forked: someone put an
 * older signed document back to hand out an older release. Pull refuses it
 * with nothing downloaded. This is what a machine that pulls again and
 * again (the station writing USB sticks) can check without walking the
 * audit log; `ferry history --verify` checks the whole log.
 */
export interface ChannelSeen {
  sequence: number;
  /** The document's own digest. */
  digest: string;
  version: string;
}

/** A repository: as it was named, and the digest of its first event (a repository made anew, or another put in its place, has another). */
export interface RepositoryIdentity {
  name: string;
  created: string;
  /** The trust root version the repository follows: it only goes up (a record without one: 0). */
  root?: number;
}
type Named = Pick<RepositoryIdentity, 'name'>;

const MAX_RECORD_BYTES = 64 * 1024;
const REMOVE_IT = 'remove it: pull then trusts the channels as they stand, as on its first pull';

/**
 * One folder per repository (named by the sha256 of its name): `_repository.json`
 * (its name and first event) and a file per channel, so that pulls of two
 * channels at once never lose each other's record. The underscore is one no
 * channel name holds (CHANNEL_NAME in documents.ts): a channel may be named
 * `repository`.
 */
function recordFolder(stateDir: string, repo: Named): string {
  const key = createHash('sha256').update(repo.name).digest('hex');
  return join(stateDir, 'pulled', key.slice(0, 32));
}

/** A record's JSON (null when it is not JSON), or undefined when there is none yet. */
async function readRecord(file: string): Promise<unknown> {
  const bytes = await readRegularBytes(file, 'E_STATE_INVALID', {
    follow: false,
    max: MAX_RECORD_BYTES,
    hint: REMOVE_IT,
  }).catch((error: unknown) => {
    // Never pulled from this repository (or channel) on this machine.
    if (error instanceof FerryError && error.code === 'E_NOT_FOUND') return undefined;
    throw error;
  });
  if (bytes === undefined) return undefined;
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    return null;
  }
}

function damaged(file: string, repo: Named): FerryError {
  return new FerryError(
    'E_STATE_INVALID',
    `${file} is not the record of what was pulled from ${repo.name}`,
    { file, hint: REMOVE_IT },
  );
}

/** Refuses anything but a real folder (or nothing yet) at `folder`; whether there is one. */
async function ownFolder(folder: string, repo: Named): Promise<boolean> {
  const info = await lstat(folder).catch((error: unknown) => {
    // ENOTDIR: a file on the way (a HOME that is not a folder) holds no records either.
    if (['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? ''))
      return undefined;
    throw ioError(error, folder, 'read');
  });
  if (info && !info.isDirectory())
    throw new FerryError(
      'E_STATE_INVALID',
      `${folder} is not the folder of what was pulled from ${repo.name}: it is ${info.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}`,
      { file: folder, hint: REMOVE_IT },
    );
  return info !== undefined;
}

function isSeen(value: unknown): value is ChannelSeen {
  const one = value as Partial<ChannelSeen> | null;
  return (
    !!one &&
    typeof one === 'object' &&
    Number.isSafeInteger(one.sequence) &&
    typeof one.digest === 'string' &&
    typeof one.version === 'string'
  );
}

/** What the filesystem says to a write it refuses: a read-only folder, or another user's. */
const DENIED = new Set(['EROFS', 'EACCES', 'EPERM']);
/** A pull by version records its root after the download: what a failure to say then. */
const KEPT_NOT = 'the bundle was downloaded and checked, but not kept';

/**
 * The folder of a repository's records, made if need be, and its lock: records are
 * read, judged and written by one pull at a time, since two pulls that read the
 * repository at different moments would otherwise each write, the lower one last,
 * and the record would go down.
 */
async function lockedRecords(
  stateDir: string,
  repo: Named,
  done?: string,
): Promise<{ folder: string; unlock: () => Promise<void> }> {
  const folder = recordFolder(stateDir, repo);
  // Folders pull makes itself: a link in their place (to a folder elsewhere) would have
  // it read and write records outside the state folder. The state folder itself may be a link.
  for (const own of [join(stateDir, 'pulled'), folder])
    await ownFolder(own, repo).catch((error: unknown) => {
      throw unusable(error, stateDir, done);
    });
  await mkdir(folder, { recursive: true }).catch((error: unknown) => {
    throw unusable(ioError(error, folder, 'create'), stateDir, done);
  });
  const unlock = await lockRecords(folder).catch((error: unknown) => {
    // A folder this pull may not write to (a read-only state folder): it reads and
    // judges unlocked, as before there was a lock, so that a channel set back is still
    // said as such; a record it has to write fails to be written, as before.
    if (DENIED.has((error as NodeJS.ErrnoException).code ?? '')) return () => Promise.resolve();
    if (error instanceof FerryError) throw error;
    throw unusable(ioError(error, join(folder, LOCK), 'create'), stateDir, done);
  });
  return { folder, unlock };
}

/**
 * Refuses a channel document older than, or other than, the one this machine
 * pulled before, or any document of another repository in the place of one
 * pulled from; records it otherwise. Called once its signature holds, before
 * anything is downloaded: a signed document this high is the channel's own,
 * whether or not the download that follows succeeds.
 */
export async function acceptChannelDocument(
  stateDir: string,
  repo: RepositoryIdentity,
  channel: string,
  doc: ChannelSeen,
): Promise<void> {
  const { folder, unlock } = await lockedRecords(stateDir, repo);
  const identityFile = join(folder, '_repository.json');
  const file = join(folder, `${channel}.json`);
  try {
    const [known, before] = await Promise.all([readRecord(identityFile), readRecord(file)]).catch(
      (error: unknown) => {
        throw unusable(error, stateDir);
      },
    );
    if (known !== undefined) {
      const created = recordedCreation(known, identityFile, repo);
      // Another repository in its place would start every channel afresh.
      if (created !== repo.created)
        throw new FerryError(
          'E_CHANNEL_SET_BACK',
          `${repo.name} is not the repository this machine pulled from before: its first event is ${repo.created}, not ${created}; it was made anew or replaced`,
          {
            reference: channel,
            file: identityFile,
            hint: `nothing was downloaded. If it was made anew on purpose, remove ${folder}; if not, run \`ferry history --repo ${repo.name} --verify\` and find out who replaced it`,
          },
        );
    }
    const seenRoot = known === undefined ? 0 : recordedRoot(known, identityFile, repo);
    const root = repo.root ?? 0;
    if (root < seenRoot) throw rootSetBack(repo, root, seenRoot, channel, identityFile);
    if (before !== undefined && !isSeen(before)) throw damaged(file, repo);
    const judged = before && standing(doc, before);
    if (judged === 'current' && root === seenRoot) return;
    if (before && judged === 'set-back') {
      // Under the same number, only the digests tell the two documents apart.
      const forked = doc.sequence === before.sequence;
      const named = (one: ChannelSeen): string =>
        `document ${one.sequence} (${one.version}${forked ? `, ${one.digest}` : ''})`;
      throw new FerryError(
        'E_CHANNEL_SET_BACK',
        `channel ${channel} of ${repo.name} holds ${named(doc)}, but this machine pulled ${named(before)} from it before: the channel was ${forked ? 'forked (another document under the same number)' : 'set back'}`,
        {
          reference: channel,
          file,
          hint: `nothing was downloaded. Run \`ferry history --repo ${repo.name} --verify\`; if the repository was restored from a backup on purpose, remove ${folder}`,
        },
      );
    }
    try {
      if (known === undefined || root > seenRoot)
        await writeFileAtomic(identityFile, identityRecord(repo.name, repo.created, root));
      if (judged !== 'current') await writeFileAtomic(file, `${JSON.stringify(doc)}\n`);
    } catch (error) {
      throw unusable(error, stateDir);
    }
  } finally {
    await unlock();
  }
}

/** The one text of _repository.json, written by a pull by channel and by version alike: root 0 (no trust root followed) is left out. */
function identityRecord(name: string, created: string, root: number): string {
  return `${JSON.stringify({ name, created, ...(root > 0 ? { root } : {}) })}\n`;
}

/**
 * The root a repository follows only goes up: one set back (its trust document removed
 * or an older one put back) would give back to a dropped key what it signed, channel
 * documents and bundles alike.
 */
function rootSetBack(
  repo: Named,
  root: number,
  seenRoot: number,
  reference: string,
  identityFile: string,
): FerryError {
  return new FerryError(
    'E_CHANNEL_SET_BACK',
    `${repo.name} follows trust root version ${root}, but it followed version ${seenRoot} when this machine pulled from it before: its trust root was set back`,
    {
      reference,
      file: identityFile,
      hint: `nothing was downloaded. Run \`ferry history --repo ${repo.name} --verify\` and find out who removed or replaced its trust document (ferry.trust)`,
    },
  );
}

/**
 * For a pull by version, which keeps no channel record: refuses a repository whose trust root
 * went below the one this machine recorded of it (a dropped key signs its bundles
 * again). The root, not the first event: a thief of a dropped key could make the
 * repository anew under the old root as well as remove its trust document.
 */
export async function refuseRootSetBack(
  stateDir: string,
  repo: Named & { root: number },
  version: string,
): Promise<void> {
  const folder = recordFolder(stateDir, repo);
  const identityFile = join(folder, '_repository.json');
  const known = await (async () => {
    for (const own of [join(stateDir, 'pulled'), folder])
      if (!(await ownFolder(own, repo))) return undefined;
    return readRecord(identityFile);
  })().catch((error: unknown) => {
    throw unusable(error, stateDir);
  });
  if (known === undefined) return;
  recordedCreation(known, identityFile, repo);
  const seenRoot = recordedRoot(known, identityFile, repo);
  if (repo.root < seenRoot) throw rootSetBack(repo, repo.root, seenRoot, version, identityFile);
}

/**
 * Once a pull by version checked its bundle against the root the repository follows:
 * records that root, as a pull by channel does, so that a machine that only pulls by
 * version refuses the repository set back later (refuseRootSetBack). Never lowers the
 * record (a pull that read the repository before it rotated may finish after one that
 * read it after), and leaves a record of another first event as it is: a pull by version
 * does not judge that. `created` is asked only when the record is to be written.
 */
export async function recordRepositoryRoot(
  stateDir: string,
  repo: Named & { root: number; created: () => Promise<string> },
): Promise<void> {
  await raiseRoot(stateDir, repo).catch((error: unknown) => {
    // A state folder this pull may not write (a read-only home): the root set back was
    // still refused before the download, from the record there is; only a higher root
    // goes unrecorded, as every pull by version left it before it recorded one.
    if (!writeDenied(error)) throw error;
  });
}

async function raiseRoot(
  stateDir: string,
  repo: Named & { root: number; created: () => Promise<string> },
): Promise<void> {
  const { folder, unlock } = await lockedRecords(stateDir, repo, KEPT_NOT);
  const identityFile = join(folder, '_repository.json');
  try {
    const known = await readRecord(identityFile).catch((error: unknown) => {
      throw unusable(error, stateDir, KEPT_NOT);
    });
    const recorded = known === undefined ? undefined : recordedCreation(known, identityFile, repo);
    if (known !== undefined && repo.root <= recordedRoot(known, identityFile, repo)) return;
    const created = await repo.created();
    if (recorded !== undefined && recorded !== created) return;
    await writeFileAtomic(identityFile, identityRecord(repo.name, created, repo.root)).catch(
      (error: unknown) => {
        throw unusable(error, stateDir, KEPT_NOT);
      },
    );
  } finally {
    await unlock();
  }
}

/** Whether an error, or one it wraps, is the filesystem refusing a write. */
function writeDenied(error: unknown): boolean {
  for (let at = error; at instanceof Error; at = at.cause)
    if (DENIED.has((at as NodeJS.ErrnoException).code ?? '')) return true;
  return false;
}

/** The lock of a repository's records: a file made with O_EXCL, for the few milliseconds a pull reads and writes them. */
const LOCK = '.lock';
/**
 * A lock this old was left by a pull that died holding it (a pull holds it
 * for milliseconds): taken over. Two pulls could take over the same dead
 * lock at the same instant; that is the race the lock closes, needing a
 * dead holder first.
 */
const LOCK_STALE_MS = 10_000;

async function lockRecords(folder: string): Promise<() => Promise<void>> {
  const lock = join(folder, LOCK);
  // The same lock seen for LOCK_STALE_MS by this pull's own clock is stale too: one
  // whose time is ahead of the wall clock (set back since, or a clock that was wrong
  // when it was made) would otherwise be waited for forever.
  let seen: { lock: string; since: number } | undefined;
  for (;;) {
    try {
      const handle = await open(lock, 'wx', 0o644);
      const made = await handle.stat().finally(() => handle.close());
      // Its own lock only: one held past LOCK_STALE_MS was taken over, and the lock
      // there now is another pull's. One that cannot be removed is left to be taken
      // over: the pull's own outcome stands.
      return async () => {
        const now = await lstat(lock).catch(() => undefined);
        if (now?.ino === made.ino && now.ctimeMs === made.ctimeMs)
          await rm(lock, { force: true }).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const held = await lstat(lock).catch(() => undefined);
    // No pull makes a folder there: never taken for a lock (nor removed, it may hold anything).
    if (held?.isDirectory())
      throw new FerryError('E_STATE_INVALID', `${lock} is a folder, not a lock pull made`, {
        file: lock,
        hint: 'remove it: pull holds a file of that name while it writes the records beside it',
      });
    const which = held && `${held.ino} ${held.ctimeMs} ${held.mtimeMs}`;
    if (which !== undefined && which !== seen?.lock)
      seen = { lock: which, since: performance.now() };
    if (
      held &&
      (Date.now() - held.mtimeMs > LOCK_STALE_MS ||
        performance.now() - (seen?.since ?? Infinity) > LOCK_STALE_MS)
    )
      await rm(lock, { force: true });
    else await sleep(5 + Math.random() * 20);
  }
}

/** The first event recorded of the repository pulled from at this name. */
function recordedCreation(known: unknown, file: string, repo: Named): string {
  const { name, created } = (known ?? {}) as Partial<RepositoryIdentity>;
  if (name !== repo.name || typeof created !== 'string') throw damaged(file, repo);
  return created;
}

/** The trust root version recorded of the repository pulled from (0 before records had one). */
function recordedRoot(known: unknown, file: string, repo: Named): number {
  const { root } = (known ?? {}) as { root?: unknown };
  if (root === undefined) return 0;
  if (!Number.isSafeInteger(root) || (root as number) < 1) throw damaged(file, repo);
  return root as number;
}

/** How a channel stands against the document this machine pulled from it. */
export type PulledStanding = 'current' | 'moved' | 'set-back' | 'replaced';

/** The one rule pull refuses by and channels shows: a channel's documents only go up. */
function standing(
  now: { sequence: number; digest: string } | undefined,
  seen: ChannelSeen,
): 'current' | 'moved' | 'set-back' {
  if (now?.sequence === seen.sequence && now.digest === seen.digest) return 'current';
  return (now?.sequence ?? 0) > seen.sequence ? 'moved' : 'set-back';
}

/**
 * What this machine pulled from `repo`, by channel, and how each of
 * `channels` (a name and the sequence and digest of the document it holds
 * now, if any) stands against it: still that document, moved on, set back
 * (or forked: pull refuses it), or `replaced` when the record is of another
 * repository that stood at this name. Reads, never writes; a damaged record
 * is refused as pull refuses it.
 */
export async function pulledFrom(
  stateDir: string,
  // Its first event is read only when this machine pulled from it: a listing on a
  // machine that never pulled (a CI runner) costs no request for it.
  repo: { name: string; created: () => Promise<string>; root?: number },
  channels: ReadonlyArray<{ name: string; now?: { sequence: number; digest: string } }>,
): Promise<Map<string, ChannelSeen & { standing: PulledStanding }>> {
  const folder = recordFolder(stateDir, repo);
  const found = new Map<string, ChannelSeen & { standing: PulledStanding }>();
  for (const own of [join(stateDir, 'pulled'), folder])
    if (!(await ownFolder(own, repo))) return found;
  const identityFile = join(folder, '_repository.json');
  const known = await readRecord(identityFile);
  // Pull writes the repository's identity before its first channel record.
  if (known === undefined) return found;
  const replaced = recordedCreation(known, identityFile, repo) !== (await repo.created());
  // Its trust root went down since: pull refuses every channel of it (E_CHANNEL_SET_BACK).
  const rootWentDown = (repo.root ?? 0) < recordedRoot(known, identityFile, repo);
  for (const { name, now } of channels) {
    const file = join(folder, `${name}.json`);
    const seen = await readRecord(file);
    if (seen === undefined) continue;
    if (!isSeen(seen)) throw damaged(file, repo);
    const { sequence, digest, version } = seen;
    found.set(name, {
      sequence,
      digest,
      version,
      standing: replaced ? 'replaced' : rootWentDown ? 'set-back' : standing(now, seen),
    });
  }
  return found;
}

/** A record that cannot be read or written stops the pull: going on without it would turn the check off without a word. */
function unusable(error: unknown, stateDir: string, done = 'nothing was downloaded'): unknown {
  if (!(error instanceof FerryError) || error.code === 'E_STATE_INVALID') return error;
  return new FerryError(error.code, error.message, {
    ...error.details,
    hint: `${done}. Pull records what it pulled in ${stateDir}, to refuse a channel set back later: make it writable, or set FERRY_STATE_DIR to a folder that is`,
    cause: error,
  });
}
