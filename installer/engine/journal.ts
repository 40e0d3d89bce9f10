import {
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  rename,
  rm,
  rmdir,
  symlink,
  unlink,
} from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';
import {
  FerryError,
  ioError,
  readRegularFile,
  syncDir,
  writeFileAtomic,
  type KeptDigest,
} from '../../manifest-schema/index.js';

/**
 * The open transaction's journal: every change to the appliance is written
 * here, and fsynced, before it is made. Each filesystem step is of a kind whose
 * undo is idempotent, so recovery can replay undos after a crash at any
 * point, even a crash in the middle of a previous recovery.
 */
export type JournalStep =
  /** A rename; undone by renaming back when the destination exists and the source does not. */
  | { op: 'move'; from: string; to: string }
  /** A folder created; undone by removing it if it is empty again. */
  | { op: 'mkdir'; path: string }
  /** `current` of a component re-pointed; undone by pointing it at `from` again (or removing it). */
  | { op: 'switch'; component: string; link: string; from: string | null; to: string | null }
  /**
   * A file is about to be replaced whole (the trust root), its old bytes kept
   * at `backup` beside it; undone by renaming the backup back over it.
   */
  | { op: 'replace'; path: string; backup: string }
  /**
   * An update or remove artifact is about to run, undone by the component's
   * rollback artifacts; or a rollback artifact of `ferry rollback`, undone by
   * the component's kept update artifacts (see undoAll). A `ferry rollback`
   * that takes a component forward runs its kept update artifacts, journaled
   * and undone as an install's.
   */
  | { op: 'run'; component: string; pass: string; artifact: string }
  /** state.json is about to be replaced: from here on, recovery rolls forward if the state says so. */
  | { op: 'commit' }
  /** state.json was replaced: what is left is cleaning up. */
  | { op: 'committed' };

export interface TransactionHeader {
  id: string;
  operation: 'install' | 'rollback';
  from: string | null;
  to: string | null;
  bundle: string | null;
  startedAt: string;
  pid: number;
  /**
   * The Ferry that wrote the journal (absent before 0.1.0 wrote it): an older
   * one does not recover it, since it may not know every step a newer one
   * records (an unknown step is skipped, and the appliance left mixed).
   */
  ferry?: string;
  /**
   * What undoes each component's artifact runs, where it is, its environment
   * and timeout: an install's update run is undone by the bundle's rollback
   * artifacts, a rollback's rollback run by the kept update artifacts of the
   * version it goes forward to again (absent when none are kept), and a
   * rollback's update run (one going forward) by the kept rollback artifacts
   * of the version it arrived at.
   */
  undo: Record<
    string,
    {
      rollback: string[];
      update?: string[];
      /**
       * Kept artifacts' sizes and sha256s, in the order of the lists above
       * (a rollback's, for versions whose install recorded them): one that
       * differs is not run.
       */
      digests?: { rollback?: KeptDigest[]; update?: KeptDigest[] };
      env: Record<string, string>;
      timeoutSeconds: number;
    }
  >;
}

export interface OpenJournal {
  header: TransactionHeader;
  steps: JournalStep[];
}

const HEADER = 'transaction.json';
const STEPS = 'steps.jsonl';

/** The environment values that are paths under the root. */
const PATH_VARIABLES = ['FERRY_ROOT', 'FERRY_PAYLOAD_DIR', 'FERRY_INSTALL_DIR'] as const;

/**
 * Every variable an artifact is given (artifactEnv in transaction.ts is typed
 * by this list, so the two cannot drift): a header that sets another was edited.
 */
const ARTIFACT_VARIABLE_NAMES = [
  ...PATH_VARIABLES,
  'FERRY_COMPONENT',
  'FERRY_PASS',
  'FERRY_FROM_VERSION',
  'FERRY_TO_VERSION',
  'FERRY_SKIPPED',
  'FERRY_ESTIMATED_SECONDS',
  'FERRY_RESTART',
  'FERRY_REBOOT',
] as const;
export type ArtifactVariable = (typeof ARTIFACT_VARIABLE_NAMES)[number];
const ARTIFACT_VARIABLES: ReadonlySet<string> = new Set(ARTIFACT_VARIABLE_NAMES);

/**
 * Refuses a header whose rollback environment sets what Ferry never sets:
 * PATH or LD_PRELOAD there would have recovery run programs from outside
 * the appliance root.
 */
function onlyArtifactVariables(file: string, header: TransactionHeader): void {
  for (const [component, entry] of Object.entries(header.undo ?? {})) {
    for (const key of Object.keys(entry?.env ?? {})) {
      if (ARTIFACT_VARIABLES.has(key)) continue;
      throw new FerryError(
        'E_JOURNAL_CORRUPT',
        `${file}: record 1 sets ${JSON.stringify(key)} for the rollback artifacts of ${JSON.stringify(component)}, which Ferry never does: nothing was changed`,
        {
          file,
          line: 1,
          component,
          hint: 'Ferry gives artifacts only its FERRY_* variables: this journal was edited. Restore it (or the appliance) from a backup, then run ferry recover',
        },
      );
    }
  }
}

/**
 * The journal's records name paths relative to the appliance root, so that
 * recovery from a rescue system (the root mounted elsewhere) or of a copy
 * acts on the root it is given.
 */
function stepPaths(step: JournalStep, map: (path: string) => string): JournalStep {
  switch (step.op) {
    case 'move':
      return { ...step, from: map(step.from), to: map(step.to) };
    case 'mkdir':
      return { ...step, path: map(step.path) };
    case 'replace':
      return { ...step, path: map(step.path), backup: map(step.backup) };
    case 'switch':
      return { ...step, link: map(step.link) };
    case 'run':
      return { ...step, artifact: map(step.artifact) };
    default:
      return step;
  }
}

function headerPaths(header: TransactionHeader, map: (path: string) => string): TransactionHeader {
  const undo: TransactionHeader['undo'] = {};
  for (const [component, entry] of Object.entries(header.undo)) {
    const env = { ...entry.env };
    for (const key of PATH_VARIABLES) if (env[key]) env[key] = map(env[key]);
    undo[component] = {
      ...entry,
      rollback: entry.rollback.map(map),
      ...(entry.update ? { update: entry.update.map(map) } : {}),
      env,
    };
  }
  return { ...header, undo };
}

/** One record: a checksum of its JSON, then the JSON. */
function seal(value: unknown): string {
  const text = JSON.stringify(value);
  return `${createHash('sha256').update(text).digest('hex').slice(0, 16)} ${text}\n`;
}

/** The value of a sealed record, or null when it is damaged or cut short. */
function unseal(line: string): unknown {
  const text = line.slice(17);
  if (
    line[16] !== ' ' ||
    createHash('sha256').update(text).digest('hex').slice(0, 16) !== line.slice(0, 16)
  )
    return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/**
 * A record's paths made absolute under `root`. A checksum proves no author:
 * a path that is not a plain relative one inside the root (absolute, `..`,
 * not a string) would have recovery move, remove or run something outside
 * the appliance, so the record is refused as damaged.
 */
function inRoot<T>(
  file: string,
  line: number,
  root: string,
  paths: (map: (path: string) => string) => T,
): T {
  const map = (path: string): string => {
    if (typeof path !== 'string' || isAbsolute(path) || normalize(path).split(sep).includes('..'))
      throw new FerryError(
        'E_JOURNAL_CORRUPT',
        `${file}: record ${line} names ${JSON.stringify(path)}, outside the appliance root: nothing was changed`,
        {
          file,
          line,
          hint: 'Ferry writes only paths inside the root: this journal was edited. Restore it (or the appliance) from a backup, then run ferry recover',
        },
      );
    return join(root, path);
  };
  try {
    return paths(map);
  } catch (error) {
    // A record of the wrong shape (a field missing) is as damaged as a bad checksum.
    if (error instanceof FerryError) throw error;
    throw damaged(file, line);
  }
}

function damaged(file: string, line: number): FerryError {
  return new FerryError(
    'E_JOURNAL_CORRUPT',
    `${file}: record ${line} is damaged, and records after it exist: undoing from a guess could leave the appliance mixed, so nothing was changed`,
    {
      file,
      line,
      hint: 'restore the journal (or the appliance) from a backup, or have support repair that record; then run ferry recover',
    },
  );
}

/**
 * The journal's folder is something else (a file written over it): whether
 * a transaction was open, and what it changed, cannot be known from it.
 */
function notAFolder(dir: string, link?: string): FerryError {
  return new FerryError(
    'E_JOURNAL_CORRUPT',
    link === undefined
      ? `${dir} is not a folder: Ferry keeps its transaction journal there, so whether an install was interrupted cannot be told, and nothing was changed`
      : `${dir} is not a folder (a symbolic link to ${link}): Ferry keeps its transaction journal there and follows no link to it, so nothing was changed`,
    {
      file: dir,
      hint:
        link === undefined
          ? 'something other than Ferry wrote there: move it aside (keep it for support), restore the journal folder (or the appliance) from a backup if an install may have been interrupted, then run ferry recover'
          : 'Ferry never links its journal: through the link recovery would undo, then remove, whatever it leads to. Replace the link with a copy of the folder it leads to if that is an interrupted transaction of this appliance (else remove it), then run ferry recover',
    },
  );
}

export class Journal {
  readonly dir: string;
  readonly header: TransactionHeader;
  private readonly relative: (path: string) => string;
  private count = 0;

  private constructor(dir: string, root: string, header: TransactionHeader) {
    this.dir = dir;
    this.header = header;
    this.relative = (path) => relative(root, path) || '.';
  }

  static async begin(dir: string, root: string, header: TransactionHeader): Promise<Journal> {
    const journal = new Journal(dir, root, header);
    try {
      await mkdir(dir, { recursive: true });
      await writeFileAtomic(join(dir, STEPS), '');
      await journal.writeHeader();
      await syncDir(dirname(dir));
    } catch (error) {
      // Nothing was recorded, so nothing was changed: a journal left half
      // begun would be the one difference a refused install leaves behind.
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw error instanceof FerryError ? error : ioError(error, dir, 'write the journal in');
    }
    journal.crashPoint();
    return journal;
  }

  /** Appends and fsyncs the step; only then may the caller make the change. */
  async record(step: JournalStep): Promise<void> {
    const handle = await open(join(this.dir, STEPS), 'a');
    try {
      await handle.write(seal(stepPaths(step, this.relative)));
      await handle.sync();
    } finally {
      await handle.close();
    }
    this.crashPoint();
  }

  /** Updates what recovery needs to undo a component (written before its first change). */
  async setUndo(component: string, undo: TransactionHeader['undo'][string]): Promise<void> {
    this.header.undo[component] = undo;
    await this.writeHeader();
  }

  private async writeHeader(): Promise<void> {
    await writeFileAtomic(join(this.dir, HEADER), seal(headerPaths(this.header, this.relative)));
  }

  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await syncDir(dirname(this.dir)).catch(() => undefined);
  }

  /**
   * Fault injection for the test suite: FERRY_TEST_CRASH_AT=N kills this
   * process with SIGKILL right after the Nth journal write, as a power cut
   * would. Nothing else reads this variable.
   */
  private crashPoint(): void {
    this.count++;
    const at = process.env.FERRY_TEST_CRASH_AT;
    if (at !== undefined && Number(at) === this.count) process.kill(process.pid, 'SIGKILL');
  }

  /**
   * The open transaction under `root`, or null. A journal folder without its
   * header holds nothing to undo (the header is written before any change).
   * A last step cut short was never started (each is fsynced before its
   * change); a damaged step before others is E_JOURNAL_CORRUPT.
   */
  static async read(dir: string, root: string): Promise<OpenJournal | null> {
    const stats = await lstat(dir).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw ioError(error, dir, 'read the journal in');
    });
    if (stats === null) return null;
    if (stats.isSymbolicLink()) throw notAFolder(dir, await readlink(dir));
    if (!stats.isDirectory()) throw notAFolder(dir);
    const file = join(dir, HEADER);
    const headerText = await readRegularFile(file, 'E_JOURNAL_CORRUPT', '');
    if (headerText === '') return null;
    const header = unseal(headerText.trimEnd()) as TransactionHeader | null;
    if (!header) throw damaged(file, 1);
    if (typeof header === 'object') onlyArtifactVariables(file, header);
    const stepsFile = join(dir, STEPS);
    const lines = (await readRegularFile(stepsFile, 'E_JOURNAL_CORRUPT', '')).split('\n');
    while (lines.at(-1) === '') lines.pop();
    const steps: JournalStep[] = [];
    for (const [index, line] of lines.entries()) {
      const step = unseal(line) as JournalStep | null;
      if (!step) {
        if (index === lines.length - 1) break;
        throw damaged(stepsFile, index + 1);
      }
      steps.push(inRoot(stepsFile, index + 1, root, (map) => stepPaths(step, map)));
    }
    return { header: inRoot(file, 1, root, (map) => headerPaths(header, map)), steps };
  }
}

/** Whether anything is at `path`, a dangling symlink included. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Undoes one filesystem step; safe to repeat. Artifact steps are handled by the caller. */
export async function undoStep(step: JournalStep): Promise<void> {
  if (step.op === 'move') {
    if ((await pathExists(step.to)) && !(await pathExists(step.from))) {
      await mkdir(dirname(step.from), { recursive: true });
      await rename(step.to, step.from);
    }
  } else if (step.op === 'switch') {
    // Its folder gone (removed by hand, or journaled from the record by an older Ferry), no
    // version is left there to point at.
    if (step.from !== null && !(await pathExists(dirname(step.link)))) return;
    await pointLink(step.link, step.from);
  } else if (step.op === 'mkdir') {
    await rmdir(step.path).catch(() => undefined);
  } else if (step.op === 'replace') {
    if (await pathExists(step.backup)) {
      await rename(step.backup, step.path);
      await syncDir(dirname(step.path));
    }
  }
}

/** Atomically points `link` at `target` (relative), or removes it when target is null. */
export async function pointLink(link: string, target: string | null): Promise<void> {
  if (target === null) {
    const gone = await unlink(link).then(
      () => false,
      (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
        return true;
      },
    );
    // Nothing changed, and its folder may be gone too (a component removed by hand).
    if (gone) return;
  } else {
    const current = await readlink(link).catch(() => null);
    if (current === target) return;
    const temp = `${link}.new-${process.pid}`;
    await rm(temp, { force: true });
    await symlink(target, temp);
    await rename(temp, link);
  }
  await syncDir(dirname(link));
}

/**
 * fsyncs every file and folder under `path` (a symlink is kept by its
 * folder's fsync): what a commit record may then depend on is on disk, as
 * dpkg and RAUC do before they switch.
 */
export async function syncTree(path: string): Promise<void> {
  const stats = await lstat(path);
  if (stats.isSymbolicLink()) return;
  if (stats.isDirectory()) {
    for (const entry of await readdir(path)) await syncTree(join(path, entry));
  }
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Appends one JSON line and fsyncs it. A last line cut short by a power cut
 * is closed first, so that it cannot swallow this one (readers skip it).
 */
export async function appendLine(file: string, value: unknown): Promise<void> {
  const handle = await open(file, 'a+');
  try {
    const { size } = await handle.stat();
    const last = Buffer.alloc(1);
    if (size > 0) await handle.read(last, 0, 1, size - 1);
    const torn = size > 0 && last[0] !== 0x0a;
    await handle.write(`${torn ? '\n' : ''}${JSON.stringify(value)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
