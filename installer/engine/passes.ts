import { cp, mkdir, readdir, readlink, rename } from 'node:fs/promises';
import { join, posix } from 'node:path';
import {
  isCarried,
  isUpdating,
  payloadFiles,
  satisfies,
  type ApplianceState,
  type ArtifactRef,
  type BundleMetadata,
  type Pass,
  type PayloadEntry,
  type TrustedRoot,
} from '../../manifest-schema/index.js';
import { checkSpace } from '../../manifest-schema/space.js';
import type { ComponentPlan, Plan } from '../plan.js';
import {
  payloadDir,
  stageArtifacts,
  stageExternal,
  stagePayload,
  type StageContext,
} from '../stage.js';
import type { AppliancePaths } from '../appliance.js';
import { keptProblem, requireKeptAsSigned, verifyInstalled } from './installed-files.js';
import { pathExists, pointLink, syncTree } from './journal.js';
import { bundleRemoves, nextState } from './next-state.js';
import { chmodChecked, StepFailed, type ArtifactScope, type Transaction } from './transaction.js';

/**
 * The passes of an install, each over one transaction: what the bundle and
 * its plan ask for, done as journaled steps.
 */
export interface Installation {
  transaction: Transaction;
  metadata: BundleMetadata;
  plan: Plan;
  reader: StageContext['reader'];
  /** The trust root the bundle was checked against: the appliance's, walked along the bundle's chain. */
  root: TrustedRoot;
}

/** Artifacts first (checked as they are staged), then each updating component's checks, then space. */
export async function preValidate(run: Installation): Promise<void> {
  const { transaction: t, plan } = run;
  await stageArtifacts({ reader: run.reader, metadata: run.metadata, dir: t.paths.journal });
  // Recovery after a power cut runs the rollback artifacts from here: they must be on disk.
  if (await pathExists(t.artifacts)) await syncTree(t.artifacts);
  for (const name of updating(plan)) await runPass(run, 'pre-validate', name);
  await checkSpace(t.paths.staging, plan.stageBytes + 16 * MIB);
}

/** Beyond the payload: room for the journal, the log, kept artifacts and state (the artifacts are staged already). */
const MIB = 1024 * 1024;

/** What the journal's filesystem must have free before an install begins its journal. */
export const JOURNAL_ROOM = 4 * MIB;

/** Only the payload of updating components, every byte checked against its signed sha256. */
export async function stage(run: Installation): Promise<void> {
  const { transaction: t, plan, metadata } = run;
  const names = updating(plan);
  const carried = new Set(names.filter((name) => isCarried(payloadOf(metadata, name))));
  const total = plan.stageBytes;
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
      t.emit({ type: 'progress', component, bytes: done, total });
    }
  };
  for (const name of names)
    t.emit({ type: 'step', pass: 'stage', component: name, status: 'start' });
  await stagePayload({ reader: run.reader, metadata, dir: t.staging, onBytes }, carried);
  for (const name of names) {
    if (!carried.has(name)) {
      const location = t.appliance.config.defaultPayloadLocation;
      await stageExternal(metadata, name, t.staging, location, (n) => onBytes(name, n));
    }
    await signedModes(payloadDir(t.staging, name), payloadFiles(payloadOf(metadata, name)) ?? []);
    t.emit({ type: 'step', pass: 'stage', component: name, status: 'done' });
  }
}

/**
 * Files and folders as the metadata signed them, whatever the umask of the
 * ferry that staged them: under a hardened root's umask 077 a 0755 program
 * became 0700, and the service it was for could not run it.
 */
export async function signedModes(dir: string, files: readonly PayloadEntry[]): Promise<void> {
  // Folders that hold entries are not listed themselves: they get what a listed folder gets by default.
  const folders = new Set<string>(['.']);
  for (const file of files)
    for (let at = posix.dirname(file.path); at !== '.'; at = posix.dirname(at)) folders.add(at);
  for (const folder of folders) await chmodChecked(join(dir, folder), 0o755);
  for (const file of files)
    if (file.type !== 'symlink') await chmodChecked(join(dir, file.path), file.mode & 0o777);
}

/** In dependency order: each component's update artifacts, then its new version switched in (or it is removed). */
export async function update(run: Installation): Promise<void> {
  for (const name of run.plan.order) {
    const entry = componentPlan(run.plan, name);
    if (isUpdating(entry.action)) await activate(run, entry);
    else await remove(run, entry);
  }
}

/** Each updating component's tests, the bundle's verification, then the target state as signed. */
export async function test(run: Installation): Promise<void> {
  for (const name of updating(run.plan)) await runPass(run, 'test', name);
  for (const ref of run.metadata.verification)
    await runArtifact(run, join(run.transaction.artifacts, ref.path), 'test', null);
  await checkTargetState(run);
}

function updating(plan: Plan): string[] {
  return plan.order.filter((name) => isUpdating(componentPlan(plan, name).action));
}

function componentPlan(plan: Plan, name: string): ComponentPlan {
  return plan.components.find((c) => c.name === name) as ComponentPlan;
}

function payloadOf(metadata: BundleMetadata, name: string) {
  return (metadata.components[name] as BundleMetadata['components'][string]).payload;
}

function versionDir(t: Transaction, name: string, version: string): string {
  return join(t.paths.opt, name, version);
}

/** What an artifact of this install is told: the bundle's release, or a component's versions and folders. */
function scopeOf(run: Installation, name: string | null): ArtifactScope {
  const { plan } = run;
  // Deleted components the release has are left out as much as skipped ones.
  const leftOut = plan.components
    .filter(
      (c) =>
        c.action === 'skip' ||
        c.action === 'error' ||
        (c.action === 'remove' && run.metadata.target[c.name] !== undefined),
    )
    .map((c) => c.name);
  if (name === null) {
    const estimated = plan.unestimated.length === 0 ? plan.estimatedSeconds : undefined;
    return {
      component: null,
      from: null,
      to: plan.to,
      leftOut,
      estimatedSeconds: estimated,
      restart: plan.restart,
      reboot: plan.reboot,
    };
  }
  const { from, to, estimatedSeconds, restart, reboot } = componentPlan(plan, name);
  return {
    component: name,
    from,
    to,
    leftOut,
    estimatedSeconds,
    restart,
    reboot,
    payloadDir: payloadDir(run.transaction.staging, name),
    ...(to ? { installDir: versionDir(run.transaction, name, to) } : {}),
  };
}

function runArtifact(
  run: Installation,
  path: string,
  pass: Pass,
  name: string | null,
  scope = scopeOf(run, name),
): Promise<void> {
  const t = run.transaction;
  const own = name === null ? undefined : run.metadata.components[name]?.timeoutSeconds;
  return t.run(path, pass, scope, t.timeout(own));
}

async function runPass(run: Installation, pass: Pass, name: string): Promise<void> {
  const dir = run.transaction.artifacts;
  for (const ref of run.metadata.components[name]?.artifacts[pass] ?? [])
    await runArtifact(run, join(dir, ref.path), pass, name);
}

/**
 * The new version goes beside the old one and `current` switches to it. A
 * version retained from earlier is set aside first, so that a failure can
 * put it back.
 */
async function activate(run: Installation, entry: ComponentPlan): Promise<void> {
  const t = run.transaction;
  const { name, from } = entry;
  const to = entry.to as string;
  const link = join(t.paths.opt, name, 'current');
  t.emit({
    type: 'step',
    pass: 'update',
    component: name,
    status: 'start',
    detail: `${from ?? 'new'} → ${to}`,
  });
  const rollback = (run.metadata.components[name]?.artifacts.rollback ?? []).map((ref) =>
    join(t.artifacts, ref.path),
  );
  await t.setUndo(name, {
    rollback,
    env: t.env('rollback', scopeOf(run, name)),
    timeoutSeconds: t.timeout(run.metadata.components[name]?.timeoutSeconds),
  });
  const target = versionDir(t, name, to);
  await t.ensureDir(join(t.paths.opt, name));
  if (await pathExists(target)) {
    const aside = join(t.paths.opt, name, `.${to}.replaced-${t.id}`);
    await t.record({ op: 'move', from: target, to: aside });
    await rename(target, aside);
  }
  await runPass(run, 'update', name);
  await t.record({ op: 'move', from: payloadDir(t.staging, name), to: target });
  await rename(payloadDir(t.staging, name), target);
  await keepArtifacts(run, name, to);
  // As in `remove`: an undo puts back the link that was there, if any.
  const was = await readlink(link).catch(() => null);
  await t.record({ op: 'switch', component: name, link, from: was, to });
  await pointLink(link, to);
  t.emit({ type: 'step', pass: 'update', component: name, status: 'done' });
}

/**
 * Refuses, before anything changes, an install that would run a kept remove
 * artifact that is not as its bundle signed it (it runs as root); versions an
 * older Ferry installed recorded no digests, and theirs run unchecked.
 */
export async function checkKeptRemoves(
  paths: AppliancePaths,
  state: ApplianceState,
  plan: Plan,
  metadata: BundleMetadata,
): Promise<void> {
  for (const name of plan.order) {
    const entry = componentPlan(plan, name);
    const installed = state.components[name];
    const digests = installed?.artifacts.digests?.remove;
    if (isUpdating(entry.action) || !installed || !digests) continue;
    if (bundleRemoves(metadata, name).length > 0) continue;
    await requireKeptAsSigned(
      {
        component: name,
        version: installed.version,
        pass: 'remove',
        dir: join(paths.lib, 'artifacts', name, installed.version, 'remove'),
        files: installed.artifacts.remove,
      },
      digests,
      `this install would run to remove ${name}`,
      'install again',
    );
  }
}

/**
 * Remove artifacts come from this bundle when it names them, else from what
 * the installed version kept; then `current` goes.
 */
async function remove(run: Installation, entry: ComponentPlan): Promise<void> {
  const t = run.transaction;
  const { name } = entry;
  const version = entry.from as string;
  t.emit({
    type: 'step',
    pass: 'update',
    component: name,
    status: 'start',
    detail: `remove ${version}`,
  });
  const fromBundle = bundleRemoves(run.metadata, name);
  if (fromBundle.length > 0) {
    const dir = t.artifacts;
    for (const ref of fromBundle) await runArtifact(run, join(dir, ref.path), 'remove', name);
    // Kept in place of the version's own, and so recorded (nextState): a rollback
    // going forward redoes this removal with what this install ran.
    await keepPass(run, name, version, 'remove', fromBundle);
  } else {
    const installed = t.appliance.state.components[name];
    const scope = { ...scopeOf(run, name), installDir: versionDir(t, name, version) };
    for (const file of installed?.artifacts.remove ?? []) {
      const path = join(t.paths.lib, 'artifacts', name, version, 'remove', file);
      await runArtifact(run, path, 'remove', name, scope);
    }
  }
  const link = join(t.paths.opt, name, 'current');
  // What the link is, not what the record says: one removed by hand is not made again by an undo.
  const from = await readlink(link).catch(() => null);
  await t.record({ op: 'switch', component: name, link, from, to: null });
  await pointLink(link, null);
  t.emit({ type: 'step', pass: 'update', component: name, status: 'done' });
}

/**
 * Rollback, remove and update artifacts stay with the installed version: for
 * `ferry rollback`, later removal, and undoing a rollback that fails or is
 * cut after this version's rollback artifacts ran. A version kept by an
 * earlier install gets what it lacks (an older Ferry kept no update
 * artifacts, and the state this install commits lists them), and a pass
 * whose kept files are not this bundle's (the same version re-cut with a
 * mended restore.sh) is replaced: the state names this bundle's sizes and
 * sha256s, and rollback runs only files that match them.
 */
async function keepArtifacts(run: Installation, name: string, version: string): Promise<void> {
  for (const pass of ['rollback', 'remove', 'update'] as const)
    await keepPass(run, name, version, pass, run.metadata.components[name]?.artifacts[pass] ?? []);
}

async function keepPass(
  run: Installation,
  name: string,
  version: string,
  pass: 'rollback' | 'remove' | 'update',
  refs: readonly ArtifactRef[],
): Promise<void> {
  const t = run.transaction;
  const into = join(t.paths.lib, 'artifacts', name, version);
  const prepared = join(t.paths.journal, 'keep', name, version);
  const from = join(t.artifacts, 'artifacts', name, pass);
  const to = join(into, pass);
  if (!(await pathExists(from))) return;
  await t.ensureDir(join(t.paths.lib, 'artifacts'));
  await t.ensureDir(join(t.paths.lib, 'artifacts', name));
  await t.ensureDir(into);
  if (await pathExists(to)) {
    if (await keptAsSigned(to, refs)) return;
    // Into the journal's folder, which goes with the transaction; an undo moves it back.
    const replaced = join(prepared, `${pass}.replaced`);
    await mkdir(prepared, { recursive: true });
    await t.record({ op: 'move', from: to, to: replaced });
    await rename(to, replaced);
  }
  const copy = join(prepared, pass);
  await cp(from, copy, { recursive: true });
  await t.record({ op: 'move', from: copy, to });
  await rename(copy, to);
}

/** Whether a kept pass folder holds exactly the files `refs` sign, each as signed. */
async function keptAsSigned(folder: string, refs: readonly ArtifactRef[]): Promise<boolean> {
  const names = refs.map((ref) => posix.basename(ref.path));
  const held = await readdir(folder).catch(() => null);
  if (!held || held.length !== names.length || !names.every((file) => held.includes(file)))
    return false;
  for (const [index, ref] of refs.entries())
    if ((await keptProblem(join(folder, names[index] as string), ref)) !== null) return false;
  return true;
}

/** Versions as the BOM says, every requires holding, every file as signed. */
async function checkTargetState(run: Installation): Promise<void> {
  const t = run.transaction;
  const fail = (component: string | null, status: string): never => {
    throw new StepFailed({ component, pass: 'test', artifact: null, status, tail: '' });
  };
  const state = nextState(t.appliance.state, run.plan, run.metadata, t.id);
  for (const [name, component] of Object.entries(state.components)) {
    const active = await readlink(join(t.paths.opt, name, 'current')).catch(() => null);
    if (active !== component.version)
      fail(name, `current points at ${active ?? 'nothing'}, not ${component.version}`);
    for (const [dep, range] of Object.entries(component.requires)) {
      const version = state.components[dep]?.version;
      if (version === undefined || !satisfies(version, range))
        fail(name, `${name} needs ${dep} ${range}, and ${dep} is ${version ?? 'not installed'}`);
    }
  }
  if (run.plan.reachesTarget) {
    for (const [name, version] of Object.entries(run.metadata.target)) {
      if (state.components[name]?.version !== version)
        fail(
          name,
          `${name} is ${state.components[name]?.version ?? 'missing'}, the release says ${version}`,
        );
    }
  }
  // Every component but the skipped ones, kept or not: a verified release is one whose files all match.
  const skipped = new Set(run.plan.controls.skip);
  const checked = Object.keys(state.components).filter((name) => !skipped.has(name));
  const problems = await verifyInstalled(t.paths, state, new Set(checked));
  const first = problems[0];
  if (first) fail(first.component, `${first.path}: ${first.problem}`);
}
