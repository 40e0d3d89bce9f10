import {
  lstat,
  mkdir,
  open,
  readFile,
  readlink,
  rename,
  rm,
  rmdir,
  symlink,
  unlink,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FerryError, ioError, syncDir, writeFileAtomic } from '../../manifest-schema/index.js';

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
  /** An update or remove artifact is about to run; undone by the component's rollback artifacts. */
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
  /** Components whose rollback artifacts recovery may run, with where they are and their environment. */
  undo: Record<string, { rollback: string[]; env: Record<string, string> }>;
}

export interface OpenJournal {
  header: TransactionHeader;
  steps: JournalStep[];
}

const HEADER = 'transaction.json';
const STEPS = 'steps.jsonl';

export class Journal {
  readonly dir: string;
  readonly header: TransactionHeader;
  private count = 0;

  private constructor(dir: string, header: TransactionHeader) {
    this.dir = dir;
    this.header = header;
  }

  static async begin(dir: string, header: TransactionHeader): Promise<Journal> {
    try {
      await mkdir(dir, { recursive: true });
      await writeFileAtomic(join(dir, STEPS), '');
      await writeFileAtomic(join(dir, HEADER), `${JSON.stringify(header, null, 2)}\n`);
      await syncDir(dirname(dir));
    } catch (error) {
      throw ioError(error, dir, 'write the journal in');
    }
    const journal = new Journal(dir, header);
    journal.crashPoint();
    return journal;
  }

  /** Appends and fsyncs the step; only then may the caller make the change. */
  async record(step: JournalStep): Promise<void> {
    const handle = await open(join(this.dir, STEPS), 'a');
    try {
      await handle.write(`${JSON.stringify(step)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    this.crashPoint();
  }

  /** Updates what recovery needs to undo a component (written before its first change). */
  async setUndo(component: string, undo: TransactionHeader['undo'][string]): Promise<void> {
    this.header.undo[component] = undo;
    await writeFileAtomic(join(this.dir, HEADER), `${JSON.stringify(this.header, null, 2)}\n`);
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

  static async read(dir: string): Promise<OpenJournal | null> {
    let headerText: string;
    try {
      headerText = await readFile(join(dir, HEADER), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        // A crash before the header was written: the journal holds nothing to undo.
        return (await pathExists(dir)) ? { header: emptyHeader(), steps: [] } : null;
      }
      throw ioError(error, join(dir, HEADER), 'read');
    }
    let header: TransactionHeader;
    try {
      header = JSON.parse(headerText) as TransactionHeader;
    } catch (cause) {
      throw new FerryError('E_STATE_INVALID', `${join(dir, HEADER)} is not JSON`, {
        file: join(dir, HEADER),
        hint: 'the journal is damaged: restore the appliance from a backup',
        cause,
      });
    }
    const text = await readFile(join(dir, STEPS), 'utf8').catch(() => '');
    const steps: JournalStep[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        steps.push(JSON.parse(line) as JournalStep);
      } catch {
        // A line cut by the crash: its step was never started (it is fsynced before the step).
        break;
      }
    }
    return { header, steps };
  }
}

function emptyHeader(): TransactionHeader {
  return {
    id: 'unknown',
    operation: 'install',
    from: null,
    to: null,
    bundle: null,
    startedAt: new Date(0).toISOString(),
    pid: 0,
    undo: {},
  };
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
    await unlink(link).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
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

export async function appendLine(file: string, value: unknown): Promise<void> {
  const handle = await open(file, 'a');
  try {
    await handle.write(`${JSON.stringify(value)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
