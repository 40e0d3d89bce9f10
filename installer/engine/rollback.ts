import { join } from 'node:path';
import { FerryError, sequence, type ApplianceState } from '../../manifest-schema/index.js';
import type { InstallEvent, RollbackResult } from './events.js';
import { verifyInstalled } from './installed-files.js';
import { pathExists, pointLink, type TransactionHeader } from './journal.js';
import { restoredState } from './next-state.js';
import { exclusive } from './recover.js';
import { checkReason, StepFailed, Transaction } from './transaction.js';

/**
 * Back to the previous committed release, from the versions kept beside the
 * active ones: each component's rollback artifacts (kept from its install)
 * run, then `current` switches back, dependents first. Journaled like an
 * install; a failure switches everything forward again, and runs again the
 * kept update artifacts of each component whose rollback artifacts ran (those
 * it cannot run again are named in the result).
 */
export async function rollback(
  root: string,
  options: {
    reason?: string;
    onEvent?: (event: InstallEvent) => void;
    /**
     * The releases the operator was shown (from, to): checked under the lock,
     * since another install or rollback may have run since the screen was drawn.
     */
    expect?: { from: string | null; to: string | null };
  } = {},
): Promise<RollbackResult> {
  checkReason(options.reason);
  const emit = options.onEvent ?? (() => undefined);
  return exclusive(root, 'rollback', emit, async (appliance) => {
    const { paths, state } = appliance;
    const previous = state.previous;
    if (!previous) {
      throw new FerryError('E_USAGE', `${paths.root} has no previous release to go back to`, {
        file: paths.state,
        hint: 'a rollback needs an earlier committed install on this appliance',
      });
    }
    const { expect } = options;
    if (expect && (expect.from !== state.release || expect.to !== previous.release)) {
      const asked = `${expect.from ?? '(empty)'} to ${expect.to ?? '(empty)'}`;
      throw new FerryError(
        'E_APPLIANCE_CHANGED',
        `${paths.root} is at ${state.release ?? '(empty)'} (the release before: ${previous.release ?? '(empty)'}), no longer at what the rollback from ${asked} was asked of`,
        {
          file: paths.state,
          hint: 'another install or rollback ran meanwhile: look at `ferry status` and decide again',
        },
      );
    }
    const changing = await changes(paths.opt, state, previous);
    const base = { from: state.release, to: previous.release };
    // With no component to switch, the record still goes back (a release that changed no
    // component, or a partial one the active release completed), as install records one
    // that changes none: only the very state recorded as previous is nothing to do.
    const sameRecord =
      previous.release === state.release &&
      previous.verified === state.verified &&
      JSON.stringify(previous.partial ?? null) === JSON.stringify(state.partial ?? null);
    if (changing.length === 0 && sameRecord)
      return { ...base, outcome: 'unchanged', transaction: null };

    // Checked before any rollback artifact runs, not only after the switch: a kept version
    // changed by hand, found once restore.sh had run, would undo the rollback with the
    // data already restored.
    const [changed] = await verifyInstalled(paths, previous, new Set(changing), false);
    if (changed) {
      const version = previous.components[changed.component]?.version ?? '';
      throw new FerryError(
        'E_DRIFT',
        `${changed.component} ${version}, which the rollback would go back to, is not as it was installed: ${changed.path} ${changed.problem}`,
        {
          file: join(paths.opt, changed.component, version, changed.path),
          hint: `nothing was run or changed. Put the file back, or install ${previous.release ?? 'the previous release'} from its bundle instead (\`ferry install BUNDLE --force ${changed.component}\`)`,
        },
      );
    }
    const t = await Transaction.begin({
      appliance,
      operation: 'rollback',
      ...base,
      bundle: null,
      controls: {},
      reason: options.reason,
      emit,
      undo: (t) => undoing(t, state, previous, changing),
    });
    const done = { ...base, transaction: t.id, log: t.logFile };
    try {
      await t.pass('rollback', async () => {
        for (const name of dependentsFirst(state, changing))
          await switchBack(t, name, state.components[name], previous.components[name]);
        const restored = restoredState(state, previous, t.id);
        const [first] = await verifyInstalled(paths, restored, new Set(changing));
        if (first) {
          throw new StepFailed({
            component: first.component,
            pass: 'test',
            artifact: null,
            status: `${first.path} ${first.problem}`,
            tail: '',
          });
        }
        await t.commit(restored);
      });
      return { ...done, outcome: 'committed' };
    } catch (error) {
      const { failure, notUndone } = await t.rollBack(error);
      return {
        ...done,
        outcome: 'rolled-back',
        failure,
        ...(notUndone.length > 0 ? { notUndone } : {}),
      };
    } finally {
      await t.close();
    }
  });
}

type Installed = ApplianceState['components'][string];

/** One component back: its rollback artifacts (kept from its install) run, then `current` points at the version before. */
async function switchBack(
  t: Transaction,
  name: string,
  current: Installed | undefined,
  before: Installed | undefined,
): Promise<void> {
  const { paths } = t;
  const back = before?.version ?? null;
  t.emit({
    type: 'step',
    pass: 'rollback',
    component: name,
    status: 'start',
    detail: `${current?.version ?? 'none'} → ${back ?? 'removed'}`,
  });
  if (current) {
    const kept = join(paths.lib, 'artifacts', name, current.version, 'rollback');
    const scope = {
      component: name,
      from: back,
      to: current.version,
      installDir: join(paths.opt, name, current.version),
    };
    for (const file of current.artifacts.rollback)
      await t.run(join(kept, file), 'rollback', scope, t.timeout(current.timeoutSeconds));
  }
  const link = join(paths.opt, name, 'current');
  await t.record({ op: 'switch', component: name, link, from: current?.version ?? null, to: back });
  await pointLink(link, back);
  t.emit({ type: 'step', pass: 'rollback', component: name, status: 'done' });
}

/**
 * What undoes each component's rollback artifacts: its kept update artifacts
 * of the version it goes forward to again, told what an install's update
 * pass told them when it went there from the version the rollback returns
 * to, with the installed version for the payload (the files as staged then).
 * A component an older Ferry installed kept none and gets no entry.
 */
function undoing(
  t: Transaction,
  state: ApplianceState,
  previous: NonNullable<ApplianceState['previous']>,
  changing: readonly string[],
): TransactionHeader['undo'] {
  const undo: TransactionHeader['undo'] = {};
  for (const name of changing) {
    const current = state.components[name];
    const update = current?.artifacts.update;
    if (!current || !update) continue;
    const kept = join(t.paths.lib, 'artifacts', name, current.version, 'update');
    const installDir = join(t.paths.opt, name, current.version);
    const scope = {
      component: name,
      from: previous.components[name]?.version ?? null,
      to: current.version,
      payloadDir: installDir,
      installDir,
    };
    undo[name] = {
      rollback: [],
      update: update.map((file) => join(kept, file)),
      env: t.env('update', scope),
      timeoutSeconds: t.timeout(current.timeoutSeconds),
    };
  }
  return undo;
}

/**
 * The components whose version differs between the releases; refused when
 * a version to go back to is no longer kept.
 */
async function changes(
  opt: string,
  state: ApplianceState,
  previous: NonNullable<ApplianceState['previous']>,
): Promise<string[]> {
  const names = [
    ...new Set([...Object.keys(state.components), ...Object.keys(previous.components)]),
  ];
  const changing = names.filter(
    (name) => state.components[name]?.version !== previous.components[name]?.version,
  );
  for (const name of changing) {
    const version = previous.components[name]?.version;
    if (version !== undefined && !(await pathExists(join(opt, name, version)))) {
      throw new FerryError(
        'E_NOT_FOUND',
        `${name} ${version} is no longer kept on this appliance, so release ${previous.release ?? '(empty)'} cannot be restored`,
        {
          component: name,
          hint: 'install a bundle of that release instead (with --allow-downgrade)',
        },
      );
    }
  }
  return changing;
}

/** The reverse of the active release's dependency order. */
function dependentsFirst(state: ApplianceState, changing: string[]): string[] {
  const needs = new Map(
    changing.map((name) => [name, Object.keys(state.components[name]?.requires ?? {})]),
  );
  const sequenced = sequence(changing, needs);
  return [...sequenced.order, ...sequenced.blocked].reverse();
}
