import { FerryError, rootFileText } from '../../manifest-schema/index.js';
import { resetByRoot, revokedKeysOf, trustChange, trustContext } from '../appliance.js';
import { plan as makePlan, type Plan } from '../plan.js';
import { checkControls, checkedFacts, loadControls, type ControlInput } from '../planning.js';
import { blamePart, mediaOf, type AskForVolume } from '../../bundle/media.js';
import { openTrusted } from '../../bundle/open.js';
import { requireInstaller } from '../handover.js';
import { checkSpace } from '../../manifest-schema/space.js';
import { insideWindow } from '../../manifest-schema/windows.js';
import type { InstallEvent, InstallResult } from './events.js';
import { nextState } from './next-state.js';
import {
  checkKeptRemoves,
  JOURNAL_ROOM,
  preValidate,
  stage,
  test,
  update,
  type Installation,
} from './passes.js';
import { exclusive } from './recover.js';
import { checkReason, Transaction } from './transaction.js';

export interface InstallOptions {
  bundle: string;
  root: string;
  controls?: ControlInput;
  /** The operator's words on why, recorded with any control used. */
  reason?: string;
  /** Ignore the maintenance windows. */
  now?: boolean;
  /** Asked, under the lock, once the plan is known to change something; throws to stop with nothing changed. */
  confirm?: (plan: Plan) => Promise<void>;
  onEvent?: (event: InstallEvent) => void;
  /**
   * Aborted (its reason the signal's name) when the operator interrupts: the
   * install stops at its next safe point and rolls back, or finishes when it
   * is already committing.
   */
  signal?: AbortSignal;
  /** On removable media: asks the operator for the next volume. Without it every volume must be attached. */
  ask?: AskForVolume;
}

/**
 * Plan, pre-validate, stage, update, test, commit. Any failure before the
 * update pass leaves the appliance untouched; any failure after it rolls
 * every change back, in reverse, from the journal.
 */
export async function install(options: InstallOptions): Promise<InstallResult> {
  checkReason(options.reason);
  const emit = options.onEvent ?? (() => undefined);
  const finish = (result: InstallResult): InstallResult => {
    emit({ type: 'result', result });
    return result;
  };
  let transaction: Transaction | undefined;
  // An interrupt ends a wait for a volume as `q` does, rejecting with the volume's
  // problem: the install stopped for the signal, though, and its result says so.
  let stoppedAsking: unknown;
  const ask = options.ask;
  const askVolume: AskForVolume | undefined = ask
    ? (request) =>
        ask(request).catch((error: unknown) => {
          if (options.signal?.aborted) stoppedAsking = error;
          throw error;
        })
    : undefined;
  const interruptOf = (error: unknown): unknown => {
    if (error === undefined || error !== stoppedAsking) return error;
    try {
      transaction?.stopPoint();
    } catch (stop) {
      return stop;
    }
    return error;
  };
  const { signal } = options;
  const interrupts = signal && {
    signal,
    tell: (name: string) => interrupted(name, transaction, emit),
  };
  return exclusive(options.root, 'install', emit, interrupts, async (current) => {
    const controls = await loadControls(options.controls ?? {});
    const opened = await openTrusted(
      options.bundle,
      trustContext(current.trust, current.state.timeFloor),
      askVolume ? { ask: askVolume } : {},
    );
    try {
      requireInstaller(opened.metadata, options.bundle);
      const appliance = { ...current, state: resetByRoot(current.state, opened.root) };
      const facts = await checkedFacts(appliance, options.controls?.driftCheck);
      checkControls(controls, facts, opened.metadata, options.controls?.controlFile);
      const plan = makePlan(facts, opened.metadata, controls);
      emit({ type: 'plan', plan });
      const base = { verdict: plan.verdict, from: plan.from, to: plan.to, plan };
      if (plan.verdict === 'blocked')
        return finish({ ...base, outcome: 'unchanged', transaction: null });
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
      // At the target but not verified (a --skip that left nothing off it), or at it under
      // another release (one that changed no component): nothing to install, but the test
      // pass checks every file and the commit records the release, verified.
      const completes =
        plan.reachesTarget && (!appliance.state.verified || appliance.state.release !== plan.to);
      if (plan.order.length === 0 && !completes)
        return finish({ ...base, outcome: 'unchanged', transaction: null });
      // Before the operator is asked: a refusal after yes would be asked for nothing.
      await checkKeptRemoves(appliance.paths, appliance.state, plan, opened.metadata);
      await options.confirm?.(plan);
      if (options.signal?.aborted) {
        const status = `interrupted by ${String(options.signal.reason)} before anything changed`;
        return finish({
          ...base,
          outcome: 'unchanged',
          transaction: null,
          failure: { component: null, pass: 'pre-validate', artifact: null, status, tail: '' },
        });
      }
      // With nobody to ask for a volume, every volume must be there before anything changes.
      await mediaOf(opened.reader.source)?.assertComplete();
      // Before the journal is begun: its own first write is what a full disk would refuse.
      await checkSpace(appliance.paths.journal, JOURNAL_ROOM);
      transaction = await Transaction.begin({
        appliance,
        operation: 'install',
        from: plan.from,
        to: plan.to,
        bundle: options.bundle,
        controls: usedControls(plan, options.now === true),
        reason: options.reason,
        trust: trustChange(current, opened.root),
        emit,
        logged: [{ type: 'plan', plan }],
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const run = {
        transaction,
        metadata: opened.metadata,
        plan,
        reader: opened.reader,
        root: opened.root,
      };
      const outcome = await transact(run, interruptOf);
      return finish({
        ...base,
        ...outcome,
        transaction: transaction.id,
        log: transaction.logFile,
        bytesRead: opened.reader.bytesRead(),
      });
    } finally {
      await opened.reader.close();
    }
  });
}

/** Says, on the terminal and in the log, what an interrupt will do from the pass under way. */
function interrupted(
  signal: string,
  transaction: Transaction | undefined,
  emit: (event: InstallEvent) => void,
): void {
  const pass = transaction?.passUnderWay;
  const message =
    pass === 'commit'
      ? `${signal}: the install is committing; it finishes, then stops`
      : pass === 'update' || pass === 'test' || pass === 'rollback'
        ? `${signal}: stopping at the next safe point, then rolling back everything this install changed`
        : `${signal}: stopping at the next safe point; nothing has been changed`;
  (transaction?.emit ?? emit)({ type: 'interrupt', signal, message });
}

/** `interruptOf` turns a failure an interrupt caused into the interrupt. */
async function transact(
  run: Installation,
  interruptOf: (error: unknown) => unknown,
): Promise<Pick<InstallResult, 'outcome' | 'failure' | 'notUndone'>> {
  const t = run.transaction;
  try {
    try {
      await t.pass('pre-validate', () => preValidate(run));
      await t.pass('stage', () =>
        stage(run).catch(async (error: unknown) => {
          throw await blamePart(run.reader.source, error);
        }),
      );
    } catch (error) {
      return { outcome: 'unchanged', failure: await t.abandon(interruptOf(error)) };
    }
    // From here every change is journaled, and undone on failure, a failure to commit included.
    try {
      await t.pass('update', () => update(run));
      await t.pass('test', () => test(run));
      await t.pass('commit', async () => {
        // The rotation commits with the install: a failure or a crash before here keeps the old root.
        if (run.root.version !== t.appliance.trust.version)
          await t.replaceFile(t.paths.trust, rootFileText(run.root));
        await t.commit(
          nextState(t.appliance.state, run.plan, run.metadata, t.id, revokedKeysOf(run.root)),
        );
      });
    } catch (error) {
      const { failure, notUndone } = await t.rollBack(error);
      return { outcome: 'rolled-back', failure, ...(notUndone.length > 0 ? { notUndone } : {}) };
    }
    return { outcome: 'committed' };
  } finally {
    await t.close();
  }
}

/** Only the controls an auditor needs to see: what was overridden. */
function usedControls(plan: Plan, now: boolean): Record<string, unknown> {
  const { controls } = plan;
  const used: Record<string, unknown> = {};
  for (const key of ['force', 'skip', 'delete'] as const)
    if (controls[key].length > 0) used[key] = controls[key];
  if (controls.allowDowngrade) used.allowDowngrade = true;
  if (controls.partial) used.partial = true;
  if (now) used.now = true;
  if (!plan.filesChecked) used.noDriftCheck = true;
  return used;
}
