import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { cp, mkdir, readFile, readlink, rename, rm, rmdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import {
  FerryError,
  isCarried,
  isUpdating,
  satisfies,
  type BundleMetadata,
  type Pass,
} from '../manifest-schema/index.js';
import {
  DEFAULT_ARTIFACT_TIMEOUT_SECONDS,
  DEFAULT_RETENTION,
  factsOf,
  openAppliance,
  writeState,
  type Appliance,
  type AppliancePaths,
} from './appliance.js';
import {
  appendLine,
  Journal,
  pathExists,
  pointLink,
  undoStep,
  type JournalStep,
  type TransactionHeader,
} from './engine/journal.js';
import { acquireLock, type Lock } from './engine/lock.js';
import { plan as makePlan, type Controls, type Plan } from './plan.js';
import { checkControls, loadControls, type ControlInput } from './planning.js';
import { describeFailure, runArtifact } from './engine/run.js';
import { artifactsDir, payloadDir, stageArtifacts, stageExternal, stagePayload } from './stage.js';
import { openTrusted } from './verify.js';
import { insideWindow } from './windows.js';
import { verifyInstalled } from './engine/installed-files.js';
import { nextState } from './engine/next-state.js';
import { cleanUp } from './engine/retention.js';

import type { Failure, InstallEvent, InstallResult, PassName } from './engine/events.js';

export interface InstallOptions {
  bundle: string;
  root: string;
  controls?: ControlInput;
  /** The operator's words on why, recorded with any control used. */
  reason?: string;
  /** Ignore the maintenance windows. */
  now?: boolean;
  onEvent?: (event: InstallEvent) => void;
}

class StepFailed extends Error {
  readonly failure: Failure;
  constructor(failure: Failure) {
    super(`${failure.component ?? 'bundle'} ${failure.pass} failed`);
    this.failure = failure;
  }
}

function transactionId(): string {
  return `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomBytes(3).toString('hex')}`;
}

/**
 * Plan, pre-validate, stage, update, test, commit. Any failure before the
 * update pass leaves the appliance untouched; any failure after it rolls
 * every change back, in reverse, from the journal.
 */
export async function install(options: InstallOptions): Promise<InstallResult> {
  const emit = options.onEvent ?? (() => undefined);
  let appliance = await openAppliance(options.root);
  const lock = await takeLock(appliance.paths, 'install', emit);
  try {
    if (await recoverPending(appliance, emit)) appliance = await openAppliance(options.root);
    const controls = await loadControls(options.controls ?? {});
    const opened = await openTrusted(options.bundle, appliance.trust);
    try {
      const facts = factsOf(appliance);
      checkControls(controls, facts, opened.metadata, options.controls?.controlFile);
      const plan = makePlan(facts, opened.metadata, controls);
      emit({ type: 'plan', plan });
      const base = { verdict: plan.verdict, from: plan.from, to: plan.to, plan };
      if (plan.verdict === 'blocked')
        return finish(emit, { ...base, outcome: 'unchanged', transaction: null });
      if (!options.now && !insideWindow(appliance.config.maintenanceWindows ?? [], new Date())) {
        throw new FerryError(
          'E_MAINTENANCE_WINDOW',
          `it is outside this appliance's maintenance windows`,
          {
            file: appliance.paths.config,
            hint: 'wait for a window, or pass --now to install anyway (it is recorded)',
          },
        );
      }
      if (plan.order.length === 0)
        return finish(emit, { ...base, outcome: 'unchanged', transaction: null });
      const transaction = new Transaction(appliance, opened.metadata, plan, options, emit);
      const result = await transaction.run(opened.reader);
      return finish(emit, { ...result, bytesRead: opened.reader.bytesRead() });
    } finally {
      await opened.reader.close();
    }
  } finally {
    await lock.release();
  }
}

function finish(emit: (event: InstallEvent) => void, result: InstallResult): InstallResult {
  emit({ type: 'result', result });
  return result;
}

export async function takeLock(
  paths: AppliancePaths,
  command: string,
  emit: (event: InstallEvent) => void,
): Promise<Lock> {
  const lock = await acquireLock(paths.lock, command);
  if (lock.takenOver)
    emit({
      type: 'warning',
      message: `took over a stale lock left by pid ${lock.takenOver.pid} (since ${lock.takenOver.since}): that ferry died`,
    });
  return lock;
}

// ------------------------------------------------------------------ the transaction

class Transaction {
  readonly id = transactionId();
  private readonly paths: AppliancePaths;
  private readonly staging: string;
  private readonly logFile: string;
  private readonly log: WriteStream;
  /** The pass under way, to name it when something other than an artifact fails. */
  private currentPass: PassName = 'pre-validate';
  private readonly steps: JournalStep[] = [];
  private journal: Journal | undefined;
  private readonly appliance: Appliance;
  private readonly meta: BundleMetadata;
  private readonly plan: Plan;
  private readonly options: InstallOptions;
  private readonly emit: (event: InstallEvent) => void;

  constructor(
    appliance: Appliance,
    meta: BundleMetadata,
    plan: Plan,
    options: InstallOptions,
    emit: (event: InstallEvent) => void,
  ) {
    this.appliance = appliance;
    this.meta = meta;
    this.plan = plan;
    this.options = options;
    this.paths = appliance.paths;
    this.staging = join(appliance.paths.staging, this.id);
    this.logFile = join(appliance.paths.logs, `${this.id}.jsonl`);
    // The transaction log is for people reading it later: appended in order, not fsynced
    // per line (the journal is what recovery trusts).
    this.log = createWriteStream(this.logFile, { flags: 'a' });
    this.log.on('error', () => undefined);
    this.emit = (event) => {
      if (event.type === 'pass' && event.status === 'start') this.currentPass = event.pass;
      emit(event);
      this.log.write(`${JSON.stringify({ at: new Date().toISOString(), ...event })}\n`);
    };
  }

  private closeLog(): Promise<void> {
    return new Promise((resolve) => this.log.end(resolve));
  }

  private get updating(): string[] {
    return this.plan.order.filter((name) => isUpdating(this.component(name).action));
  }

  async run(reader: Parameters<typeof stageArtifacts>[0]['reader']): Promise<InstallResult> {
    const { plan } = this;
    const base = {
      verdict: plan.verdict,
      from: plan.from,
      to: plan.to,
      plan,
      transaction: this.id,
      log: this.logFile,
    };
    await mkdir(this.paths.logs, { recursive: true });
    this.emit({
      type: 'begin',
      transaction: this.id,
      operation: 'install',
      bundle: this.options.bundle,
      controls: usedControls(plan.controls, this.options.now === true),
      reason: this.options.reason ?? null,
    });
    // The plan was already reported; the log keeps its own copy.
    this.log.write(`${JSON.stringify({ at: new Date().toISOString(), type: 'plan', plan })}\n`);
    const header: TransactionHeader = {
      id: this.id,
      operation: 'install',
      from: plan.from,
      to: plan.to,
      bundle: this.options.bundle,
      startedAt: new Date().toISOString(),
      pid: process.pid,
      undo: {},
    };
    this.journal = await Journal.begin(this.paths.journal, header);
    try {
      // ---- pre-validate: artifacts first (checked), then each acting component's checks, then space
      try {
        this.emit({ type: 'pass', pass: 'pre-validate', status: 'start' });
        await stageArtifacts({ reader, metadata: this.meta, dir: this.staging });
        for (const name of this.updating) await this.runPass('pre-validate', name);
        await this.checkSpace();
        this.emit({ type: 'pass', pass: 'pre-validate', status: 'done' });
        // ---- stage: only the payload of acting components, every byte checked
        this.emit({ type: 'pass', pass: 'stage', status: 'start' });
        await this.stage(reader);
        this.emit({ type: 'pass', pass: 'stage', status: 'done' });
      } catch (error) {
        await this.discard();
        if (error instanceof StepFailed) {
          await this.recordHistory('unchanged', error.failure);
          return { ...base, outcome: 'unchanged', failure: error.failure };
        }
        await this.recordHistory('unchanged', {
          component: null,
          pass: this.currentPass,
          artifact: null,
          status: (error as Error).message,
          tail: '',
        });
        throw error;
      }
      // ---- update and test: from here every change is journaled and undone on failure
      try {
        this.emit({ type: 'pass', pass: 'update', status: 'start' });
        for (const name of plan.order) await this.apply(name);
        this.emit({ type: 'pass', pass: 'update', status: 'done' });
        this.emit({ type: 'pass', pass: 'test', status: 'start' });
        for (const name of this.updating) await this.runPass('test', name);
        for (const ref of this.meta.verification)
          await this.runArtifactFile('test', null, ref.path);
        await this.checkTargetState();
        this.emit({ type: 'pass', pass: 'test', status: 'done' });
      } catch (error) {
        const failure =
          error instanceof StepFailed
            ? error.failure
            : {
                component: null,
                pass: this.currentPass,
                artifact: null,
                status: error instanceof Error ? error.message : String(error),
                tail: '',
              };
        this.emit({ type: 'pass', pass: 'rollback', status: 'start' });
        await undoAll(this.steps, header, this.emit);
        this.emit({ type: 'pass', pass: 'rollback', status: 'done' });
        await this.discard();
        await this.recordHistory('rolled-back', failure);
        return { ...base, outcome: 'rolled-back', failure };
      }
      // ---- commit
      this.emit({ type: 'pass', pass: 'commit', status: 'start' });
      await this.record({ op: 'commit' });
      const state = nextState(this.appliance.state, this.plan, this.meta, this.id);
      await writeState(this.paths, state);
      await this.record({ op: 'committed' });
      await this.recordHistory('committed');
      await cleanUp(this.paths, state, this.appliance.config.retention ?? DEFAULT_RETENTION);
      await this.discard();
      this.emit({ type: 'pass', pass: 'commit', status: 'done' });
      return { ...base, outcome: 'committed' };
    } finally {
      await rm(this.staging, { recursive: true, force: true });
      await this.closeLog();
    }
  }

  private async record(step: JournalStep): Promise<void> {
    await (this.journal as Journal).record(step);
    this.steps.push(step);
  }

  /** Creates a folder the appliance did not have, journaled so that a rollback removes it again. */
  private async ensureDir(path: string): Promise<void> {
    if (await pathExists(path)) return;
    await this.record({ op: 'mkdir', path });
    await mkdir(path);
  }

  private async discard(): Promise<void> {
    await removeStaging(this.paths, this.id);
    await this.journal?.close();
  }

  private component(name: string) {
    return this.plan.components.find((c) => c.name === name) as Plan['components'][number];
  }

  private versionDir(name: string, version: string): string {
    return join(this.paths.opt, name, version);
  }

  private envFor(pass: Pass | 'test', name: string | null): Record<string, string> {
    const entry = name === null ? undefined : this.component(name);
    const to = entry?.to ?? '';
    return {
      FERRY_ROOT: this.paths.root,
      FERRY_COMPONENT: name ?? '',
      FERRY_PASS: pass,
      FERRY_FROM_VERSION: entry?.from ?? '',
      FERRY_TO_VERSION: name === null ? this.plan.to : to,
      FERRY_PAYLOAD_DIR: name === null ? '' : payloadDir(this.staging, name),
      FERRY_INSTALL_DIR: name === null || !to ? '' : this.versionDir(name, to),
    };
  }

  private timeoutFor(name: string | null): number {
    const own = name === null ? undefined : this.meta.components[name]?.timeoutSeconds;
    return own ?? this.appliance.config.artifactTimeoutSeconds ?? DEFAULT_ARTIFACT_TIMEOUT_SECONDS;
  }

  private async runPass(pass: Pass, name: string): Promise<void> {
    const refs = this.meta.components[name]?.artifacts[pass] ?? [];
    for (const ref of refs) await this.runArtifactFile(pass, name, ref.path);
  }

  private async runArtifactFile(pass: Pass, name: string | null, entry: string): Promise<void> {
    const label = name ?? 'bundle';
    const artifact = entry.slice(entry.lastIndexOf('/') + 1);
    this.emit({
      type: 'step',
      pass: pass as PassName,
      component: label,
      status: 'start',
      detail: artifact,
    });
    if (pass === 'update' || pass === 'remove')
      await this.record({ op: 'run', component: label, pass, artifact: entry });
    const timeoutSeconds = this.timeoutFor(name);
    const result = await runArtifact({
      path: join(artifactsDir(this.staging), entry),
      env: this.envFor(pass, name),
      cwd: this.paths.root,
      timeoutSeconds,
      onOutput: (stream, line) =>
        this.emit({
          type: 'output',
          pass: pass as PassName,
          component: label,
          artifact,
          stream,
          line,
        }),
    });
    if (result.exitCode !== 0 || result.timedOut) {
      const status = describeFailure(result, timeoutSeconds);
      this.emit({
        type: 'step',
        pass: pass as PassName,
        component: label,
        status: 'failed',
        detail: `${artifact} ${status}`,
      });
      throw new StepFailed({
        component: name,
        pass: pass as PassName,
        artifact,
        status,
        tail: result.tail,
      });
    }
    this.emit({
      type: 'step',
      pass: pass as PassName,
      component: label,
      status: 'done',
      detail: artifact,
    });
  }

  private async checkSpace(): Promise<void> {
    const needed = this.plan.stageBytes + 16 * 1024 * 1024;
    const fs = await statfs(this.paths.root);
    const free = fs.bavail * fs.bsize;
    if (free < needed) {
      throw new StepFailed({
        component: null,
        pass: 'pre-validate',
        artifact: null,
        status: `needs ${needed} bytes free on ${this.paths.root}, has ${free}`,
        tail: '',
      });
    }
  }

  private async stage(reader: Parameters<typeof stageArtifacts>[0]['reader']): Promise<void> {
    const included = new Set(
      this.updating.filter((name) => {
        const payload = this.meta.components[name]?.payload;
        return payload !== undefined && isCarried(payload);
      }),
    );
    const total = this.plan.stageBytes;
    let done = 0;
    // At most one progress event per percent or quarter second: a screen needs no more.
    let reported = 0;
    let reportedAt = 0;
    const onBytes = (component: string, bytes: number): void => {
      done += bytes;
      const now = Date.now();
      if (done === total || done - reported >= total / 100 || now - reportedAt >= 250) {
        reported = done;
        reportedAt = now;
        this.emit({ type: 'progress', component, bytes: done, total });
      }
    };
    for (const name of this.updating)
      this.emit({ type: 'step', pass: 'stage', component: name, status: 'start' });
    await stagePayload({ reader, metadata: this.meta, dir: this.staging, onBytes }, included);
    for (const name of this.updating) {
      const type = this.meta.components[name]?.payload.type;
      if (type === 'default' || type === 'url') {
        await stageExternal(
          this.meta,
          name,
          this.staging,
          this.appliance.config.defaultPayloadLocation,
          (n) => onBytes(name, n),
        );
      }
      this.emit({ type: 'step', pass: 'stage', component: name, status: 'done' });
    }
  }

  private async apply(name: string): Promise<void> {
    const entry = this.component(name);
    const link = join(this.paths.opt, name, 'current');
    if (entry.action === 'remove') {
      this.emit({
        type: 'step',
        pass: 'update',
        component: name,
        status: 'start',
        detail: `remove ${entry.from}`,
      });
      await this.runRemoveArtifacts(name, entry.from as string);
      await this.record({ op: 'switch', component: name, link, from: entry.from, to: null });
      await pointLink(link, null);
      this.emit({ type: 'step', pass: 'update', component: name, status: 'done' });
      return;
    }
    const to = entry.to as string;
    this.emit({
      type: 'step',
      pass: 'update',
      component: name,
      status: 'start',
      detail: `${entry.from ?? 'new'} → ${to}`,
    });
    const rollback = (this.meta.components[name]?.artifacts.rollback ?? []).map((ref) =>
      join(artifactsDir(this.staging), ref.path),
    );
    await (this.journal as Journal).setUndo(name, { rollback, env: this.envFor('rollback', name) });
    const target = this.versionDir(name, to);
    await this.ensureDir(join(this.paths.opt, name));
    if (await pathExists(target)) {
      // A version retained from earlier: set it aside so a failure can put it back.
      const aside = join(this.paths.opt, name, `.${to}.replaced-${this.id}`);
      await this.record({ op: 'move', from: target, to: aside });
      await rename(target, aside);
    }
    await this.runPass('update', name);
    await this.record({ op: 'move', from: payloadDir(this.staging, name), to: target });
    await rename(payloadDir(this.staging, name), target);
    await this.keepArtifacts(name, to);
    await this.record({ op: 'switch', component: name, link, from: entry.from, to });
    await pointLink(link, to);
    this.emit({ type: 'step', pass: 'update', component: name, status: 'done' });
  }

  /** Remove artifacts come from this bundle when it names them, else from what the installed version left. */
  private async runRemoveArtifacts(name: string, version: string): Promise<void> {
    const fromBundle =
      this.meta.removed[name]?.artifacts.remove ??
      this.meta.components[name]?.artifacts.remove ??
      [];
    if (fromBundle.length > 0) {
      for (const ref of fromBundle) await this.runArtifactFile('remove', name, ref.path);
      return;
    }
    const kept = this.appliance.state.components[name]?.artifacts.remove ?? [];
    for (const file of kept) {
      const path = join(this.paths.lib, 'artifacts', name, version, 'remove', file);
      await this.record({ op: 'run', component: name, pass: 'remove', artifact: path });
      const timeoutSeconds = this.timeoutFor(name);
      const result = await runArtifact({
        path,
        env: { ...this.envFor('remove', name), FERRY_INSTALL_DIR: this.versionDir(name, version) },
        cwd: this.paths.root,
        timeoutSeconds,
      });
      if (result.exitCode !== 0 || result.timedOut) {
        throw new StepFailed({
          component: name,
          pass: 'update',
          artifact: file,
          status: describeFailure(result, timeoutSeconds),
          tail: result.tail,
        });
      }
    }
  }

  /** Rollback and remove artifacts stay with the installed version, for `ferry rollback` and later removal. */
  private async keepArtifacts(name: string, version: string): Promise<void> {
    const into = join(this.paths.lib, 'artifacts', name, version);
    if (await pathExists(into)) return; // kept by an earlier install of this version
    const prepared = join(this.staging, 'keep', name, version);
    for (const pass of ['rollback', 'remove'] as const) {
      const from = join(artifactsDir(this.staging), 'artifacts', name, pass);
      if (await pathExists(from)) await cp(from, join(prepared, pass), { recursive: true });
    }
    await mkdir(prepared, { recursive: true });
    await this.ensureDir(join(this.paths.lib, 'artifacts'));
    await this.ensureDir(join(this.paths.lib, 'artifacts', name));
    await this.record({ op: 'move', from: prepared, to: into });
    await rename(prepared, into);
  }

  /** Versions as the BOM says, every requires holding, every file of what changed as signed. */
  private async checkTargetState(): Promise<void> {
    const fail = (component: string | null, status: string): never => {
      throw new StepFailed({ component, pass: 'test', artifact: null, status, tail: '' });
    };
    const state = nextState(this.appliance.state, this.plan, this.meta, this.id);
    for (const [name, component] of Object.entries(state.components)) {
      const active = await readlink(join(this.paths.opt, name, 'current')).catch(() => null);
      if (active !== component.version)
        fail(name, `current points at ${active ?? 'nothing'}, not ${component.version}`);
      for (const [dep, range] of Object.entries(component.requires)) {
        const version = state.components[dep]?.version;
        if (version === undefined || !satisfies(version, range))
          fail(name, `${name} needs ${dep} ${range}, and ${dep} is ${version ?? 'not installed'}`);
      }
    }
    if (this.plan.reachesTarget) {
      for (const [name, version] of Object.entries(this.meta.target)) {
        if (state.components[name]?.version !== version)
          fail(
            name,
            `${name} is ${state.components[name]?.version ?? 'missing'}, the release says ${version}`,
          );
      }
    }
    const problems = await verifyInstalled(this.paths, state, new Set(this.updating));
    const first = problems[0];
    if (first) fail(first.component, `${first.path}: ${first.problem}`);
  }

  private async recordHistory(outcome: InstallResult['outcome'], failure?: Failure): Promise<void> {
    const { controls } = this.plan;
    await appendLine(this.paths.history, {
      id: this.id,
      at: new Date().toISOString(),
      operation: 'install',
      bundle: this.options.bundle,
      from: this.plan.from,
      to: this.plan.to,
      outcome,
      verified: outcome === 'committed' ? this.plan.reachesTarget : undefined,
      controls: usedControls(controls, this.options.now === true),
      ...(this.options.reason !== undefined ? { reason: this.options.reason } : {}),
      ...(failure ? { failure } : {}),
      log: this.logFile,
    });
  }
}

/** Only the controls an auditor needs to see: what was overridden. */
export function usedControls(controls: Controls, now: boolean): Record<string, unknown> {
  const used: Record<string, unknown> = {};
  for (const key of ['force', 'skip', 'delete'] as const)
    if (controls[key].length > 0) used[key] = controls[key];
  if (controls.allowDowngrade) used.allowDowngrade = true;
  if (controls.partial) used.partial = true;
  if (now) used.now = true;
  return used;
}

// ------------------------------------------------------------------ undo and recovery

/**
 * Undoes journaled steps in reverse. A component's rollback artifacts run
 * where its update artifacts started (after its switch and before its move
 * are undone); filesystem undos are idempotent, so this is safe to repeat.
 */
export async function undoAll(
  steps: readonly JournalStep[],
  header: TransactionHeader,
  emit: (event: InstallEvent) => void,
): Promise<void> {
  const rolledBack = new Set<string>();
  for (const step of [...steps].reverse()) {
    if (step.op === 'run') {
      if (step.pass !== 'update' || rolledBack.has(step.component)) continue;
      rolledBack.add(step.component);
      const undo = header.undo[step.component];
      for (const path of undo?.rollback ?? []) {
        emit({
          type: 'step',
          pass: 'rollback',
          component: step.component,
          status: 'start',
          detail: path.slice(path.lastIndexOf('/') + 1),
        });
        const result = await runArtifact({
          path,
          env: undo?.env ?? {},
          cwd: undo?.env.FERRY_ROOT ?? '/',
          timeoutSeconds: DEFAULT_ARTIFACT_TIMEOUT_SECONDS,
          onOutput: (stream, line) =>
            emit({
              type: 'output',
              pass: 'rollback',
              component: step.component,
              artifact: path,
              stream,
              line,
            }),
        });
        const ok = result.exitCode === 0 && !result.timedOut;
        emit({
          type: 'step',
          pass: 'rollback',
          component: step.component,
          status: ok ? 'done' : 'failed',
          detail: ok
            ? undefined
            : `rollback artifact ${describeFailure(result, DEFAULT_ARTIFACT_TIMEOUT_SECONDS)}`,
        });
        if (!ok)
          emit({
            type: 'warning',
            message: `${step.component}: rollback artifact ${path} ${describeFailure(result, DEFAULT_ARTIFACT_TIMEOUT_SECONDS)}; its files were restored regardless`,
          });
      }
    } else if (step.op !== 'commit' && step.op !== 'committed') {
      await undoStep(step);
    }
  }
}

/**
 * Resolves a transaction a crash left open: rolled forward when state.json
 * carries its id (the commit happened), rolled back otherwise. Returns
 * whether there was anything to resolve.
 */
export async function recoverPending(
  appliance: Appliance,
  emit: (event: InstallEvent) => void,
): Promise<boolean> {
  const open = await Journal.read(appliance.paths.journal);
  if (!open) return false;
  const { header, steps } = open;
  emit({ type: 'pass', pass: 'recover', status: 'start' });
  const committed = appliance.state.transaction === header.id && header.id !== 'unknown';
  if (committed) {
    emit({
      type: 'warning',
      message: `transaction ${header.id} (${header.from ?? 'empty'} → ${header.to}) was committed before an interruption: finishing it`,
    });
    await cleanUp(
      appliance.paths,
      appliance.state,
      appliance.config.retention ?? DEFAULT_RETENTION,
    );
  } else {
    emit({
      type: 'warning',
      message: `transaction ${header.id} (${header.from ?? 'empty'} → ${header.to ?? '?'}) was interrupted: rolling it back`,
    });
    await undoAll(steps, header, emit);
  }
  await removeStaging(appliance.paths, header.id);
  const history = await readFile(appliance.paths.history, 'utf8').catch(() => '');
  if (!history.includes(`"id":"${header.id}"`) || !committed) {
    await appendLine(appliance.paths.history, {
      id: header.id,
      at: new Date().toISOString(),
      operation: 'recover',
      bundle: header.bundle,
      from: header.from,
      to: header.to,
      outcome: committed ? 'committed' : 'rolled-back',
      interruptedAt: steps.length,
    });
  }
  await rm(appliance.paths.journal, { recursive: true, force: true });
  emit({ type: 'pass', pass: 'recover', status: 'done' });
  return true;
}

/** A transaction's staging folder, and the staging folder itself once no other is left in it. */
async function removeStaging(paths: AppliancePaths, id: string): Promise<void> {
  await rm(join(paths.staging, id), { recursive: true, force: true });
  await rmdir(paths.staging).catch(() => undefined);
}
