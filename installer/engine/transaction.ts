import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { chmod, mkdir, readFile, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  FerryError,
  ioError,
  printable,
  syncDir,
  writeFileAtomic,
  type ApplianceState,
  type Pass,
} from '../../manifest-schema/index.js';
import { FERRY_VERSION } from '../../manifest-schema/ferry-version.js';
import {
  DEFAULT_ARTIFACT_TIMEOUT_SECONDS,
  DEFAULT_RETENTION,
  readState,
  requireFolder,
  writeState,
  type Appliance,
  type AppliancePaths,
} from '../appliance.js';
import type { Failure, InstallEvent, NotUndone, Outcome, PassName } from './events.js';
import {
  appendLine,
  Journal,
  pathExists,
  syncTree,
  undoStep,
  type ArtifactVariable,
  type JournalStep,
  type TransactionHeader,
} from './journal.js';
import { artifactsDir } from '../stage.js';
import { cleanUp } from './retention.js';
import { keptProblem } from './installed-files.js';
import { describeFailure, runArtifact } from './run.js';

/** A step of a transaction failed: the transaction ends with this failure. */
export class StepFailed extends Error {
  readonly failure: Failure;
  constructor(failure: Failure) {
    super(`${failure.component ?? 'bundle'} ${failure.pass} failed`);
    this.failure = failure;
  }
}

/** Who an artifact runs for; what it is told in its environment. */
export interface ArtifactScope {
  component: string | null;
  from: string | null;
  to: string | null;
  payloadDir?: string;
  installDir?: string;
  /** Components the controls left out of this install (skipped, or in error under --partial). */
  leftOut?: readonly string[];
  /** What the bundle declares of the update: the component's own, or the plan's totals for the bundle's verification. */
  estimatedSeconds?: number | undefined;
  restart?: readonly string[] | undefined;
  reboot?: boolean | undefined;
}

/** A reason is one line of the history, as `ferry history` and the console show it. */
export const MAX_REASON_CHARS = 1000;

/** Refuses a reason that is not one printable line of at most MAX_REASON_CHARS, before anything is locked or changed. */
export function checkReason(reason: string | undefined): void {
  if (reason === undefined) return;
  const length = [...reason].length;
  if (length > MAX_REASON_CHARS)
    throw new FerryError('E_USAGE', `the reason is ${length} characters`, {
      field: 'reason',
      hint: `say why in at most ${MAX_REASON_CHARS} characters; put the details in a ticket and name it`,
    });
  if (/[\n\t]/.test(reason) || printable(reason) !== reason)
    throw new FerryError(
      'E_USAGE',
      `the reason holds a line break or control character: ${JSON.stringify(reason.slice(0, 60))}`,
      { field: 'reason', hint: 'give the reason as one line of plain text' },
    );
}

/** The documented environment of an artifact, and nothing else (the runner adds PATH). */
function artifactEnv(
  root: string,
  pass: Pass,
  scope: ArtifactScope,
): Record<ArtifactVariable, string> {
  return {
    FERRY_ROOT: root,
    FERRY_COMPONENT: scope.component ?? '',
    FERRY_PASS: pass,
    FERRY_FROM_VERSION: scope.from ?? '',
    FERRY_TO_VERSION: scope.to ?? '',
    FERRY_PAYLOAD_DIR: scope.payloadDir ?? '',
    FERRY_INSTALL_DIR: scope.installDir ?? '',
    FERRY_SKIPPED: (scope.leftOut ?? []).join(' '),
    FERRY_ESTIMATED_SECONDS:
      scope.estimatedSeconds === undefined ? '' : String(scope.estimatedSeconds),
    FERRY_RESTART: (scope.restart ?? []).join(' '),
    FERRY_REBOOT: scope.reboot ? '1' : '0',
  };
}

/** Artifacts whose effects a rollback must undo: a run of one is journaled before it starts. */
const CHANGING: ReadonlySet<string> = new Set<Pass>(['update', 'remove', 'rollback']);

/**
 * Runs one artifact as a step of `pass`, reporting its start, its output and
 * how it ended; returns what failed, or null.
 */
async function runStep(
  run: {
    path: string;
    pass: PassName;
    component: string | null;
    env: Record<string, string>;
    /** The journal folder, where the running artifact is named for recovery. */
    journal: string;
  },
  timeoutSeconds: number,
  emit: (event: InstallEvent) => void,
): Promise<Failure | null> {
  const { pass } = run;
  const component = run.component ?? 'bundle';
  const artifact = basename(run.path);
  emit({ type: 'step', pass, component, status: 'start', detail: artifact });
  const result = await runArtifact({
    path: run.path,
    env: run.env,
    cwd: run.env.FERRY_ROOT ?? '/',
    timeoutSeconds,
    trackFile: runningFile(run.journal),
    onOutput: (stream, line) => emit({ type: 'output', pass, component, artifact, stream, line }),
  });
  if (result.exitCode === 0 && !result.timedOut) {
    emit({ type: 'step', pass, component, status: 'done', detail: artifact });
    return null;
  }
  const status = describeFailure(result, timeoutSeconds);
  emit({ type: 'step', pass, component, status: 'failed', detail: `${artifact} ${status}` });
  return { component: run.component, pass, artifact, status, tail: result.tail };
}

export interface TransactionStart {
  appliance: Appliance;
  operation: TransactionHeader['operation'];
  from: string | null;
  to: string | null;
  bundle: string | null;
  /** The controls used, for the begin event and the history line. */
  controls: Record<string, unknown>;
  /** The operator's words on why. */
  reason: string | undefined;
  /** The trust root rotation the transaction commits, for the history. */
  trust?: Record<string, unknown> | undefined;
  emit: (event: InstallEvent) => void;
  /** Events the caller already reported that the log keeps too (the plan). */
  logged?: InstallEvent[];
  /** Aborted by a signal: the transaction stops at its next safe point (never once committing). */
  signal?: AbortSignal;
  /**
   * What undoes the components' artifacts, when known before the first change
   * (a rollback's): in the header from the start, so recovery needs no bundle.
   */
  undo?: (t: Transaction) => TransactionHeader['undo'];
}

/**
 * What every change to the appliance goes through: an id, a journal that
 * records each step (fsynced) before it is made, the steps made so far for
 * undoing them, a log of every event in `logs/<id>.jsonl`, and one history
 * line at the end. Install and rollback are orchestrations over it.
 */
export class Transaction {
  readonly id: string;
  readonly logFile: string;
  /** This transaction's staging folder (the payload). */
  readonly staging: string;
  /**
   * The bundle's artifacts, staged in the journal folder: recovery finds the
   * rollback artifacts there until the transaction is resolved.
   */
  readonly artifacts: string;
  readonly appliance: Appliance;
  readonly paths: AppliancePaths;
  /** The pass under way, to name it when something other than an artifact fails. */
  private currentPass: PassName = 'pre-validate';
  /** Committing or undoing: from here the transaction finishes, whatever signal comes. */
  private finishing: 'committing' | 'undoing' | null = null;
  private readonly steps: JournalStep[] = [];
  private readonly start: TransactionStart;
  private readonly log: WriteStream;
  private journal!: Journal;

  private constructor(start: TransactionStart, id: string) {
    this.start = start;
    this.id = id;
    this.appliance = start.appliance;
    this.paths = start.appliance.paths;
    this.staging = join(this.paths.staging, id);
    this.artifacts = artifactsDir(this.paths.journal);
    this.logFile = join(this.paths.logs, `${id}.jsonl`);
    // The transaction log is for people reading it later: appended in order, not fsynced
    // per line (the journal is what recovery trusts).
    this.log = createWriteStream(this.logFile, { flags: 'a' });
    this.log.on('error', () => undefined);
  }

  static async begin(start: TransactionStart): Promise<Transaction> {
    const { logs, lib, staging } = start.appliance.paths;
    await requireFolder(logs, "writes each transaction's log there");
    await mkdir(logs, { recursive: true }).catch((error: unknown) => {
      throw ioError(error, logs, 'create');
    });
    // Made when first needed, deep in a pass: something else in their place is
    // refused before anything changes, not met halfway and rolled back.
    await requireFolder(join(lib, 'artifacts'), 'keeps the artifacts of installed versions there');
    if (start.operation === 'install') await requireFolder(staging, 'stages the payload there');
    const transaction = new Transaction(start, transactionId());
    const { id } = transaction;
    transaction.emit({
      type: 'begin',
      transaction: id,
      operation: start.operation,
      bundle: start.bundle,
      controls: start.controls,
      reason: start.reason ?? null,
    });
    for (const event of start.logged ?? []) transaction.write(event);
    try {
      transaction.journal = await Journal.begin(transaction.paths.journal, transaction.paths.root, {
        id,
        operation: start.operation,
        from: start.from,
        to: start.to,
        bundle: start.bundle,
        startedAt: new Date().toISOString(),
        pid: process.pid,
        ferry: FERRY_VERSION,
        undo: start.undo?.(transaction) ?? {},
      });
    } catch (error) {
      await transaction.close();
      throw error;
    }
    return transaction;
  }

  /** Reports an event to the caller and keeps it in the log. */
  readonly emit = (event: InstallEvent): void => {
    if (event.type === 'pass' && event.status === 'start') this.currentPass = event.pass;
    this.start.emit(event);
    this.write(event);
  };

  private write(event: InstallEvent): void {
    this.log.write(`${printable(JSON.stringify({ at: new Date().toISOString(), ...event }))}\n`);
  }

  /** The pass under way. */
  get passUnderWay(): PassName {
    return this.currentPass;
  }

  /** Whether it is committing or undoing, and so finishes whatever signal comes. */
  get finishingAs(): 'committing' | 'undoing' | null {
    return this.finishing;
  }

  /**
   * A safe point: nothing is half-done here, so an interrupt asked for stops
   * the transaction (its failure is then abandoned or rolled back like any
   * other). Committing and rolling back are never stopped: they finish.
   */
  stopPoint(): void {
    const { signal } = this.start;
    // A rollback's own changes are made in its pass named 'rollback', so only the
    // undo, not the pass name, marks what must finish.
    if (!signal?.aborted || this.currentPass === 'commit' || this.finishing) return;
    throw new StepFailed({
      component: null,
      pass: this.currentPass,
      artifact: null,
      status: `interrupted by ${String(signal.reason)}`,
      tail: '',
    });
  }

  /** Runs `work` as one pass, reported as started and, when it did not throw, done. */
  async pass(pass: PassName, work: () => Promise<void>): Promise<void> {
    // Before the pass starts: an interrupt asked for during the test pass must not find it committing.
    this.stopPoint();
    this.emit({ type: 'pass', pass, status: 'start' });
    await work();
    this.emit({ type: 'pass', pass, status: 'done' });
  }

  /** Journals a step; only then may the caller make the change. */
  async record(step: JournalStep): Promise<void> {
    if (step.op !== 'commit' && step.op !== 'committed') this.stopPoint();
    await this.journal.record(step);
    this.steps.push(step);
  }

  /** Creates a folder the appliance did not have, journaled so that an undo removes it again. */
  async ensureDir(path: string): Promise<void> {
    if (await pathExists(path)) return;
    await this.record({ op: 'mkdir', path });
    await mkdir(path);
    // Whatever the umask: a component's folder under a root's 077 would shut its service out.
    await chmodChecked(path, 0o755);
  }

  /**
   * Replaces a file atomically, journaled with a copy of its old bytes beside
   * it (the same filesystem, so the undo is one rename): a crash or a failure
   * before the commit puts the old file back.
   */
  async replaceFile(path: string, data: string): Promise<void> {
    const backup = backupOf(path, this.id);
    // Journaled first: a crash before the copy is whole finds no backup and leaves the file be.
    await this.record({ op: 'replace', path, backup });
    await writeFileAtomic(backup, await readFile(path));
    await writeFileAtomic(path, data);
  }

  /** What recovery needs to undo a component's artifacts, written before its first change. */
  async setUndo(component: string, undo: TransactionHeader['undo'][string]): Promise<void> {
    await this.journal.setUndo(component, undo);
  }

  /** An artifact's own timeout, else the appliance's, else the default. */
  timeout(own: number | undefined): number {
    return own ?? this.appliance.config.artifactTimeoutSeconds ?? DEFAULT_ARTIFACT_TIMEOUT_SECONDS;
  }

  env(pass: Pass, scope: ArtifactScope): Record<string, string> {
    return artifactEnv(this.paths.root, pass, scope);
  }

  /**
   * Runs an artifact in the pass under way, journaled first when it changes
   * the appliance; throws StepFailed when it fails.
   */
  async run(path: string, pass: Pass, scope: ArtifactScope, timeoutSeconds: number): Promise<void> {
    const component = scope.component ?? 'bundle';
    this.stopPoint();
    if (CHANGING.has(pass)) await this.record({ op: 'run', component, pass, artifact: path });
    const failure = await runStep(
      {
        path,
        pass: this.currentPass,
        component: scope.component,
        env: this.env(pass, scope),
        journal: this.paths.journal,
      },
      timeoutSeconds,
      this.emit,
    );
    if (failure) throw new StepFailed(failure);
  }

  /**
   * Replaces state.json between the journal's commit marks, records, then
   * prunes old versions. Every byte the new state depends on is on disk
   * before the commit mark. It throws only while the old state still holds
   * (the caller rolls back); once state.json is replaced what fails is
   * reported as a warning, and the journal left for the next ferry to finish.
   */
  async commit(state: ApplianceState): Promise<void> {
    // A rollback commits inside its own pass: the last safe point is here.
    this.stopPoint();
    this.finishing = 'committing';
    await this.syncChanges();
    await this.record({ op: 'commit' });
    try {
      await writeState(this.paths, state);
    } catch (error) {
      // The rename done but its folder's fsync failed: readers see the new state already.
      const now = await readState(this.paths).catch(() => null);
      if (now?.transaction !== this.id) throw error;
    }
    try {
      await this.record({ op: 'committed' });
      await removeBackups(this.steps);
      await this.history('committed', undefined, state.verified);
      await cleanUp(this.paths, state, this.appliance.config.retention ?? DEFAULT_RETENTION);
      await this.discard();
    } catch (error) {
      this.emit({
        type: 'warning',
        message: `release ${state.release ?? '(empty)'} is committed, but finishing up failed (${messageOf(error)}): the next ferry command (or ferry recover) finishes it`,
      });
    }
  }

  /** fsyncs what each journaled step put in place, and the folders that name it. */
  private async syncChanges(): Promise<void> {
    for (const step of this.steps) {
      if (step.op === 'move') {
        await syncTree(step.to);
        await syncDir(dirname(step.to));
      } else if (step.op === 'mkdir') {
        await syncDir(dirname(step.path));
      }
    }
  }

  /**
   * Ends a transaction that failed before changing anything. A step's failure
   * is returned; any other error (a hash mismatch, a missing payload) is
   * recorded and thrown on, so that its code reaches the caller.
   */
  async abandon(error: unknown): Promise<Failure> {
    const failure = this.failureOf(error);
    await this.settle('unchanged', failure);
    if (!(error instanceof StepFailed)) throw error;
    return failure;
  }

  /**
   * Ends a failed transaction by undoing every step it made, in reverse. When
   * an undo fails too (the filesystem went read-only) the journal stays for
   * `ferry recover`, and the error reports the first cause.
   */
  async rollBack(error: unknown): Promise<{ failure: Failure; notUndone: NotUndone[] }> {
    const failure = this.failureOf(error);
    // A rollback that fails is undone within its own pass.
    const own = this.currentPass !== 'rollback';
    this.finishing = 'undoing';
    if (own) this.emit({ type: 'pass', pass: 'rollback', status: 'start' });
    let notUndone: NotUndone[];
    try {
      notUndone = await undoAll(this.steps, this.journal.header, this.paths.journal, this.emit);
    } catch (undoError) {
      throw unresolved(error, undoError, this.paths.journal);
    }
    if (own) this.emit({ type: 'pass', pass: 'rollback', status: 'done' });
    await this.settle('rolled-back', failure, notUndone);
    return { failure, notUndone };
  }

  /**
   * Removes the staging folder (and the folder of all staging once empty, so
   * a refusal leaves no folder behind) and closes the log; what fails here
   * never hides the outcome. Every stage write has settled by now: the
   * readers hand out one entry at a time and the hash lanes all finish.
   */
  async close(): Promise<void> {
    await removeStaging(this.paths, this.id).catch(() => undefined);
    await new Promise((resolve) => this.log.end(resolve));
  }

  private failureOf(error: unknown): Failure {
    if (error instanceof StepFailed) return error.failure;
    return {
      component: null,
      pass: this.currentPass,
      artifact: null,
      status: error instanceof Error ? error.message : String(error),
      tail: '',
    };
  }

  private async discard(): Promise<void> {
    await removeStaging(this.paths, this.id);
    await this.journal.close();
  }

  /** The end of a transaction that did not commit: the appliance is as it was, whatever fails here. */
  private async settle(
    outcome: Outcome,
    failure: Failure,
    notUndone: NotUndone[] = [],
  ): Promise<void> {
    try {
      await this.discard();
      await this.history(outcome, failure, undefined, notUndone);
    } catch (error) {
      this.emit({
        type: 'warning',
        message: `the appliance is ${outcome}, but recording it failed (${messageOf(error)})`,
      });
    }
  }

  private async history(
    outcome: Outcome,
    failure?: Failure,
    verified?: boolean,
    notUndone: NotUndone[] = [],
  ): Promise<void> {
    const { start } = this;
    await appendLine(this.paths.history, {
      id: this.id,
      at: new Date().toISOString(),
      operation: start.operation,
      ...(start.bundle !== null ? { bundle: start.bundle } : {}),
      from: start.from,
      to: start.to,
      outcome,
      verified,
      controls: start.controls,
      ...(start.reason !== undefined ? { reason: start.reason } : {}),
      ...(start.trust !== undefined && outcome === 'committed' ? { trust: start.trust } : {}),
      ...(failure ? { failure } : {}),
      ...(notUndone.length > 0 ? { notUndone } : {}),
      log: this.logFile,
    });
  }
}

/** A filesystem that refuses modes (or went read-only) is said with its path, not as a bare EPERM. */
export async function chmodChecked(path: string, mode: number): Promise<void> {
  try {
    await chmod(path, mode);
  } catch (error) {
    throw ioError(error, path, 'chmod');
  }
}

/** Names the artifact running now, in the journal folder: see endLeftover. */
export function runningFile(journal: string): string {
  return join(journal, 'running.json');
}

/** Where `replaceFile` keeps a file's old bytes until the commit. */
function backupOf(path: string, id: string): string {
  return join(dirname(path), `.${basename(path)}.${id}.old`);
}

/** Once committed, the old bytes of replaced files are not needed. */
export async function removeBackups(steps: readonly JournalStep[]): Promise<void> {
  for (const step of steps) if (step.op === 'replace') await rm(step.backup, { force: true });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A failure whose undo failed too: the first cause, with what is left to do. */
function unresolved(cause: unknown, undoError: unknown, journal: string): FerryError {
  const first = cause instanceof StepFailed ? cause.failure.status : messageOf(cause);
  return new FerryError(
    cause instanceof FerryError ? cause.code : 'E_IO',
    `${first}; undoing the changes then failed too (${messageOf(undoError)})`,
    {
      file: journal,
      hint: 'the journal keeps what is left to undo: make the filesystem writable again (fsck, remount), then run ferry recover',
      cause,
    },
  );
}

function transactionId(): string {
  return `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomBytes(3).toString('hex')}`;
}

/** A transaction's staging folder, and the staging folder itself once no other is left in it. */
export async function removeStaging(paths: AppliancePaths, id: string): Promise<void> {
  await rm(join(paths.staging, id), { recursive: true, force: true });
  await rmdir(paths.staging).catch(() => undefined);
}

/**
 * Undoes journaled steps in reverse. A component's rollback artifacts run
 * where its update artifacts started (after its switch and before its move
 * are undone); filesystem undos are idempotent, so this is safe to repeat.
 * The rollback artifacts of `ferry rollback` are undone the same way, by the
 * kept update artifacts of the version the component goes forward to again;
 * the update artifacts a rollback going forward ran are undone as an install's.
 * Returns, and warns of, the components whose rollback artifacts ran and
 * were not undone: no update artifacts kept (an older install, or none in its bundle), or one failed
 * or differs from what its bundle signed; and those whose update artifacts a rollback going
 * forward ran, when a kept rollback artifact to undo them differed (one failing is only warned
 * of, as in an install).
 */
export async function undoAll(
  steps: readonly JournalStep[],
  header: TransactionHeader,
  journal: string,
  emit: (event: InstallEvent) => void,
): Promise<NotUndone[]> {
  const rolledBack = new Set<string>();
  const redone = new Set<string>();
  // Components whose update artifacts stay done: a kept rollback artifact was not run.
  const unrestored = new Set<string>();
  for (const step of [...steps].reverse()) {
    if (step.op === 'run') {
      if (rolledBack.has(step.component)) continue;
      const undo = header.undo[step.component];
      if (step.pass === 'update') {
        rolledBack.add(step.component);
        for (const [index, path] of (undo?.rollback ?? []).entries()) {
          const digests = undo?.digests?.rollback;
          const problem = digests ? await keptProblem(path, digests[index]) : null;
          if (problem !== null) {
            emit({
              type: 'warning',
              message: `${step.component}: kept rollback artifact ${path} ${problem}, so it was not run; its files were restored regardless`,
            });
            unrestored.add(step.component);
            continue;
          }
          const failure = await runStep(
            { path, pass: 'rollback', component: step.component, env: undo?.env ?? {}, journal },
            undo?.timeoutSeconds ?? DEFAULT_ARTIFACT_TIMEOUT_SECONDS,
            emit,
          );
          if (failure)
            emit({
              type: 'warning',
              message: `${step.component}: rollback artifact ${path} ${failure.status}; its files were restored regardless`,
            });
        }
      } else if (step.pass === 'rollback' && undo?.update && undo.update.length > 0) {
        rolledBack.add(step.component);
        if (await redo(step.component, undo.update, undo, journal, emit))
          redone.add(step.component);
      }
    } else if (step.op !== 'commit' && step.op !== 'committed') {
      await undoStep(step);
    }
  }
  const notUndone = [
    ...rollbackRuns(steps).filter((item) => !redone.has(item.component)),
    ...updateRuns(steps).filter((item) => unrestored.has(item.component)),
    // What a remove artifact did (a service, a user or data gone) has no undo.
    ...runsOf(steps, 'remove').map((item) => ({ ...item, pass: 'remove' as const })),
  ];
  for (const item of notUndone) emit({ type: 'warning', message: notUndoneWarning(item, header) });
  return notUndone;
}

/**
 * Runs a component's kept update artifacts again, after its rollback
 * artifacts ran; false when one fails, or differs from what its bundle
 * signed (then none runs). The rest are not run then: like the update pass,
 * each may build on what the one before did.
 */
async function redo(
  component: string,
  paths: readonly string[],
  undo: TransactionHeader['undo'][string],
  journal: string,
  emit: (event: InstallEvent) => void,
): Promise<boolean> {
  // All checked before the first runs: each may build on what the one before did.
  for (const [index, path] of paths.entries()) {
    const digests = undo.digests?.update;
    const problem = digests ? await keptProblem(path, digests[index]) : null;
    if (problem === null) continue;
    emit({
      type: 'warning',
      message: `${component}: kept update artifact ${path} ${problem}, so none of ${component}'s were run while undoing the rollback; its files were switched forward regardless`,
    });
    return false;
  }
  for (const path of paths) {
    const failure = await runStep(
      { path, pass: 'rollback', component, env: undo.env, journal },
      undo.timeoutSeconds,
      emit,
    );
    if (failure) {
      emit({
        type: 'warning',
        message: `${component}: update artifact ${path} ${failure.status} while undoing the rollback; its files were switched forward regardless`,
      });
      return false;
    }
  }
  return true;
}

/** The rollback artifacts each component ran, in the order they were journaled (started, if not finished). */
function rollbackRuns(steps: readonly JournalStep[]): NotUndone[] {
  return runsOf(steps, 'rollback');
}

/** The same of update artifacts, marked as such. */
function updateRuns(steps: readonly JournalStep[]): NotUndone[] {
  return runsOf(steps, 'update').map((item) => ({ ...item, pass: 'update' }));
}

function runsOf(steps: readonly JournalStep[], pass: string): NotUndone[] {
  const byComponent = new Map<string, string[]>();
  for (const step of steps) {
    if (step.op !== 'run' || step.pass !== pass) continue;
    const artifacts = byComponent.get(step.component) ?? [];
    artifacts.push(basename(step.artifact));
    byComponent.set(step.component, artifacts);
  }
  return [...byComponent].map(([component, artifacts]) => ({ component, artifacts }));
}

/**
 * An operator told "everything was switched forward again" reads it as safe;
 * with a database restored behind the files' back it is not, so it is said
 * per component, with the ways out. `--force` is no way out: with the
 * component already at its version and its files as signed the plan keeps it,
 * and its update artifacts do not run.
 */
export function notUndoneWarning(item: NotUndone, header: TransactionHeader): string {
  const { component } = item;
  const from = header.from ?? '(empty)';
  const to = header.to ?? '(empty)';
  if (item.pass === 'remove')
    return (
      `${component}: remove artifacts ${item.artifacts.join(', ')} ran before the ${header.operation} from ${from} to ${to} was undone; ` +
      `Ferry cannot undo what they did outside its folders: ${component}'s files are back, what the scripts removed or stopped may not be. ` +
      `Check ${component} and put back by hand what they undid: an install that keeps ${component} at its version does not run its update artifacts`
    );
  if (item.pass === 'update')
    return (
      `${component}: update artifacts ${item.artifacts.join(', ')} ran before the rollback from ${from} to ${to} was undone, and its kept rollback artifacts did not run to undo them (see the warning before); ` +
      `what they did outside Ferry's folders is not undone: ${component}'s files are at ${from} again, its data may be as at ${to}. ` +
      `Put the kept rollback artifacts back as ${component}'s bundle carries them, mend what failed, and run ferry rollback again (update artifacts must be safe to run again), or install ${to}`
    );
  return (
    `${component}: rollback artifacts ${item.artifacts.join(', ')} ran before the rollback from ${from} to ${to} was undone; ` +
    `what they restored outside Ferry's folders is not undone: ${component}'s files are at ${from} again, its data may be as at ${to}. ` +
    `Mend what failed and run ferry rollback again (rollback artifacts must be safe to run again), then install ${from} if wanted: ` +
    `that runs ${component}'s update artifacts again; installing ${from} now, even with --force ${component}, does not (${component} is already at its version)`
  );
}

/**
 * Says, on the terminal and in the transaction's log once there is one, what
 * an interrupt does to a rollback from where it is.
 */
export function rollbackInterrupted(
  signal: string,
  t: Transaction | undefined,
  emit: (event: InstallEvent) => void,
): void {
  const finishing = t?.finishingAs;
  const message =
    t === undefined
      ? `${signal}: stopping at the next safe point; nothing has been changed`
      : finishing === 'committing'
        ? `${signal}: the rollback is committing; it finishes, then stops`
        : finishing === 'undoing'
          ? `${signal}: the rollback is being undone; that finishes, then it stops`
          : `${signal}: stopping at the next safe point (the artifact running is let finish), then switching back everything this rollback changed`;
  (t?.emit ?? emit)({ type: 'interrupt', signal, message });
}
