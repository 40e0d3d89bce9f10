import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, sequence, type ApplianceState } from '../../manifest-schema/index.js';
import { removalOrder } from '../plan.js';
import type { InstallEvent, RollbackResult } from './events.js';
import { requireKeptAsSigned, verifyInstalled } from './installed-files.js';
import type { AppliancePaths } from '../appliance.js';
import { pathExists, pointLink, type TransactionHeader } from './journal.js';
import { restoredState, rollsForward } from './next-state.js';
import { exclusive } from './recover.js';
import { checkReason, rollbackInterrupted, StepFailed, Transaction } from './transaction.js';

/**
 * Back to the previous committed record, from the versions kept beside the
 * active ones. Which way is the records' (`rollsForward`), not the versions':
 * a release may ship a lower version with its own migration. Going back
 * undoes the install of the current record: a component it has runs the
 * rollback artifacts kept from its install, one only the previous record has
 * (that install removed it) runs nothing, dependents first. Going forward (the
 * second of two rollbacks) redoes the install of the previous record: a
 * component it has at another version runs that version's kept update
 * artifacts, as the install ran them, dependencies first; then one only the
 * current record has runs its kept remove artifacts, as the install removed
 * it. Journaled like an install; a failure switches every file back to the
 * record rolled back from and undoes what ran (see `undoing`; what cannot be
 * undone is named in the result).
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
    /** Aborted when the operator interrupts: stops at the next safe point and is undone, or finishes committing. */
    signal?: AbortSignal;
  } = {},
): Promise<RollbackResult> {
  checkReason(options.reason);
  const emit = options.onEvent ?? (() => undefined);
  const { signal } = options;
  let transaction: Transaction | undefined;
  const interrupts = signal && {
    signal,
    tell: (name: string) => rollbackInterrupted(name, transaction, emit),
  };
  return exclusive(root, 'rollback', emit, interrupts, async (appliance) => {
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
    const forward = rollsForward(state, previous);
    const changing = await changes(paths.opt, state, previous);
    if (forward) await checkForward(paths, state, previous, changing);
    const base = { from: state.release, to: previous.release, forward };
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
    await checkKept(paths, state, previous, changing, forward);
    await checkLinks(paths, changing);
    if (signal?.aborted) {
      const status = `interrupted by ${String(signal.reason)} before anything changed`;
      const failure = {
        component: null,
        pass: 'rollback' as const,
        artifact: null,
        status,
        tail: '',
      };
      return { ...base, outcome: 'unchanged', transaction: null, failure };
    }
    const t = await Transaction.begin({
      appliance,
      operation: 'rollback',
      ...base,
      bundle: null,
      controls: {},
      reason: options.reason,
      emit,
      undo: (t) => undoing(t, state, previous, changing, forward),
      ...(signal ? { signal } : {}),
    });
    transaction = t;
    const done = { ...base, transaction: t.id, log: t.logFile };
    try {
      await t.pass('rollback', async () => {
        for (const name of inOrder(state, previous, changing, forward))
          await switchBack(t, name, state.components[name], previous.components[name], forward);
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

function keptDir(paths: AppliancePaths, name: string, version: string, pass: string): string {
  return join(paths.lib, 'artifacts', name, version, pass);
}

/** Which kept artifacts a component runs in the rollback pass (see `rollback`), and the version that kept them. */
function keptRun(
  current: Installed | undefined,
  before: Installed | undefined,
  forward: boolean,
): { pass: 'rollback' | 'update' | 'remove'; owner: Installed } | null {
  // Going back, a component the install removed runs nothing, as that install's own undo.
  if (!forward) return current ? { pass: 'rollback', owner: current } : null;
  if (before) return { pass: 'update', owner: before };
  return current ? { pass: 'remove', owner: current } : null;
}

/**
 * Refuses, before anything runs, a rollback whose kept artifacts are not as
 * their bundles signed them: they run as root, and a script changed on disk
 * (a hand edit, bit rot) would restore or migrate data wrongly. Versions an
 * older Ferry installed recorded no digests: theirs run unchecked.
 */
async function checkKept(
  paths: AppliancePaths,
  state: ApplianceState,
  previous: NonNullable<ApplianceState['previous']>,
  changing: readonly string[],
  forward: boolean,
): Promise<void> {
  for (const name of changing) {
    const run = keptRun(state.components[name], previous.components[name], forward);
    const digests = run?.owner.artifacts.digests?.[run.pass];
    if (!run || !digests) continue;
    const { pass, owner } = run;
    await requireKeptAsSigned(
      {
        component: name,
        version: owner.version,
        pass,
        dir: keptDir(paths, name, owner.version, pass),
        files: owner.artifacts[pass] ?? [],
      },
      digests,
      'the rollback would run',
      `roll back again; or install the bundle of ${previous.release ?? 'the previous release'} instead`,
    );
  }
}

/** The environment the install's update pass gave a version's update artifacts, its installed folder as payload. */
function forwardScope(
  paths: AppliancePaths,
  name: string,
  left: Installed | undefined,
  arrive: Installed,
) {
  const installDir = join(paths.opt, name, arrive.version);
  return {
    component: name,
    from: left?.version ?? null,
    to: arrive.version,
    payloadDir: installDir,
    installDir,
  };
}

/**
 * One component switched to the version of the release rolled back to,
 * after the artifacts that take its data there (see `rollback`).
 */
/**
 * Each `current` the rollback switches is a link or nothing: a folder in its
 * place cannot be renamed over (found after the rollback artifacts ran, and
 * its undo could not remove it either), and a file is the operator's, never
 * replaced.
 */
async function checkLinks(paths: AppliancePaths, changing: readonly string[]): Promise<void> {
  for (const name of changing) {
    const link = join(paths.opt, name, 'current');
    const found = await lstat(link).catch(() => null);
    if (found && !found.isSymbolicLink())
      throw new FerryError(
        'E_DRIFT',
        `${link}, which the rollback would switch back, is not a symbolic link (${found.isDirectory() ? 'a folder' : found.isFile() ? 'a file' : 'not a file'})`,
        {
          file: link,
          component: name,
          hint: `nothing was run or changed. Move it aside (\`mv ${link} ${link}.bad\`) and run the rollback again`,
        },
      );
  }
}

async function switchBack(
  t: Transaction,
  name: string,
  current: Installed | undefined,
  before: Installed | undefined,
  forward: boolean,
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
  const run = keptRun(current, before, forward);
  if (run) {
    const { pass, owner } = run;
    const kept = keptDir(paths, name, owner.version, pass);
    const installDir = join(paths.opt, name, owner.version);
    // Each told what the install that kept it told it: rollback artifacts going back from
    // there, update artifacts going there (checkForward refused the rollback when these were
    // not kept), remove artifacts as an install that removes the version without its own.
    const scope =
      pass === 'update'
        ? forwardScope(paths, name, current, owner)
        : {
            component: name,
            from: pass === 'rollback' ? back : owner.version,
            to: pass === 'rollback' ? owner.version : null,
            installDir,
          };
    for (const file of owner.artifacts[pass] ?? [])
      await t.run(join(kept, file), pass, scope, t.timeout(owner.timeoutSeconds));
  }
  const link = join(paths.opt, name, 'current');
  // What the link is, as an install records it: an undo puts back only what was there.
  const was = await readlink(link).catch(() => null);
  await t.record({ op: 'switch', component: name, link, from: was, to: back });
  await pointLink(link, back);
  t.emit({ type: 'step', pass: 'rollback', component: name, status: 'done' });
}

/**
 * What undoes the artifacts each component runs, the mirror of an install's
 * undo. Going back, its rollback artifacts are undone by its kept update
 * artifacts of the version it goes forward to again, told what an install's
 * update pass told them when it went there from the version the rollback
 * returns to, with the installed version for the payload (the files as staged
 * then); a component an older Ferry installed kept none and gets no entry.
 * Going forward, its update artifacts are undone by the kept rollback
 * artifacts of the version it arrived at, told what they were told going
 * back from there. Remove artifacts are not undone, as in an install.
 */
function undoing(
  t: Transaction,
  state: ApplianceState,
  previous: NonNullable<ApplianceState['previous']>,
  changing: readonly string[],
  forward: boolean,
): TransactionHeader['undo'] {
  const undo: TransactionHeader['undo'] = {};
  for (const name of changing) {
    const current = state.components[name];
    const before = previous.components[name];
    if (forward) {
      if (!before) continue;
      undo[name] = {
        rollback: before.artifacts.rollback.map((file) =>
          join(keptDir(t.paths, name, before.version, 'rollback'), file),
        ),
        ...(before.artifacts.digests
          ? { digests: { rollback: before.artifacts.digests.rollback } }
          : {}),
        env: t.env('rollback', forwardScope(t.paths, name, current, before)),
        timeoutSeconds: t.timeout(before.timeoutSeconds),
      };
      continue;
    }
    const update = current?.artifacts.update;
    if (!current || !update) continue;
    const kept = keptDir(t.paths, name, current.version, 'update');
    const installDir = join(t.paths.opt, name, current.version);
    const scope = {
      component: name,
      from: before?.version ?? null,
      to: current.version,
      payloadDir: installDir,
      installDir,
    };
    undo[name] = {
      rollback: [],
      update: update.map((file) => join(kept, file)),
      ...(current.artifacts.digests
        ? { digests: { update: current.artifacts.digests.update } }
        : {}),
      env: t.env('update', scope),
      timeoutSeconds: t.timeout(current.timeoutSeconds),
    };
  }
  return undo;
}

/**
 * Refuses, before anything runs, a rollback going forward that would take a
 * component to a version whose update artifacts are not kept (an older Ferry
 * installed it and kept none, or one was deleted): its data would stay as
 * the older version left it under the newer version's files.
 */
async function checkForward(
  paths: AppliancePaths,
  state: ApplianceState,
  previous: NonNullable<ApplianceState['previous']>,
  changing: readonly string[],
): Promise<void> {
  for (const name of changing) {
    const current = state.components[name];
    const before = previous.components[name];
    if (!before) continue;
    const kept = keptDir(paths, name, before.version, 'update');
    const files = before.artifacts.update;
    const missing =
      files === undefined ? kept : await firstMissing(files.map((file) => join(kept, file)));
    if (missing === null) continue;
    throw new FerryError(
      'E_NOT_FOUND',
      `${name} ${before.version}, which the rollback would take ${name} forward to from ${current?.version ?? 'nothing'}, has no update artifacts kept on this appliance (${missing}${files === undefined ? ': installed by an older Ferry' : ' is missing'}), so release ${previous.release ?? '(empty)'} cannot be restored`,
      {
        component: name,
        file: missing,
        hint: `nothing was run or changed. Install the bundle of ${previous.release ?? 'that release'} instead: it runs ${name}'s update artifacts from the bundle`,
      },
    );
  }
}

async function firstMissing(paths: readonly string[]): Promise<string | null> {
  for (const path of paths) if (!(await pathExists(path))) return path;
  return null;
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

/**
 * Going back, the reverse of the active record's dependency order; going
 * forward, the order the install of the record gone to ran: its updates in
 * its dependency order, then its removals as the plan orders them.
 */
function inOrder(
  state: ApplianceState,
  previous: NonNullable<ApplianceState['previous']>,
  changing: string[],
  forward: boolean,
): string[] {
  const needs = (names: string[], record: ApplianceState['components']) =>
    new Map(names.map((name) => [name, Object.keys(record[name]?.requires ?? {})]));
  if (!forward) {
    const sequenced = sequence(changing, needs(changing, state.components));
    return [...sequenced.order, ...sequenced.blocked].reverse();
  }
  const updates = changing.filter((name) => previous.components[name] !== undefined);
  const removals = changing.filter((name) => previous.components[name] === undefined);
  const sequenced = sequence(updates, needs(updates, previous.components));
  return [
    ...sequenced.order,
    ...sequenced.blocked,
    ...removalOrder(needs(removals, state.components)),
  ];
}
