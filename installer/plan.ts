import {
  compareVersions,
  describeCycle,
  isActing,
  isUpdating,
  payloadBytes,
  satisfies,
  sequence,
  type Action,
  type BundleMetadata,
  type Change,
  type ErrorCode,
} from '../manifest-schema/index.js';

export { isActing, type Action };

/**
 * The planner: (appliance facts, bundle metadata, controls) → plan. Pure: no
 * disk, clock or environment; everything it needs is handed in as data, so
 * every rule is tested by tables.
 */

export interface InstalledComponent {
  version: string;
  /** The requires ranges of the installed version, as recorded when it was installed. */
  requires: Record<string, string>;
  /**
   * Installed files that differ from the hashes recorded at install, sorted by
   * path; absent when the files were not checked (`--no-drift-check`, or a
   * plan from exported facts): the plan then trusts the record.
   */
  changedFiles?: Array<{ path: string; problem: string }>;
}

/** What an appliance is, as `ferry status --export` writes it. */
export interface ApplianceFacts {
  product: string;
  platform: { name: string; version: string };
  /** The release the appliance was last committed at; null when empty. */
  release: string | null;
  /** False after a --partial install: the components are not a verified release. */
  verified: boolean;
  components: Record<string, InstalledComponent>;
  /** The highest verified release ever committed (rollback protection); null when none. */
  highestRelease: string | null;
  /**
   * After a partial install (`release` is the one it aimed at): the release it
   * started from, which a bundle may also update from, and the components it
   * left out, at their versions: not drift.
   */
  partial?: { base: string | null; leftOut: Record<string, string | null> };
}

export interface Controls {
  force: string[];
  skip: string[];
  delete: string[];
  allowDowngrade: boolean;
  partial: boolean;
}

export const NO_CONTROLS: Controls = {
  force: [],
  skip: [],
  delete: [],
  allowDowngrade: false,
  partial: false,
};

/** Why: an error code (E_…) for a problem, or an upper-case word for a decision. */
export type ReasonCode =
  | ErrorCode
  | 'NEW'
  | 'NEWER'
  | 'SAME'
  | 'FORCED'
  | 'SKIPPED'
  | 'DELETED'
  | 'DROPPED'
  | 'NOT_INSTALLED';

export interface Reason {
  code: ReasonCode;
  message: string;
}

export interface ComponentPlan {
  name: string;
  action: Action;
  from: string | null;
  to: string | null;
  reasons: Reason[];
  /**
   * What the bundle declares of the update (only on components it updates:
   * the fields describe going to the new version, not a removal).
   */
  estimatedSeconds?: number;
  /** Services the update restarts. */
  restart?: string[];
  /** The appliance must reboot for the update to take effect. */
  reboot?: boolean;
}

export interface Plan {
  verdict: 'ok' | 'blocked';
  product: string;
  kind: BundleMetadata['kind'];
  from: string | null;
  to: string;
  /** Problems with the bundle as a whole: product, platform, supported releases, rollback protection. */
  reasons: Reason[];
  components: ComponentPlan[];
  /** Components that act, in the order they are applied. */
  order: string[];
  /** The changes the operator gets: those between the installed versions and the target. */
  changes: Change[];
  /** Payload bytes that will be staged (acting components' carried payload only). */
  stageBytes: number;
  /** The sum of the estimates of the components it updates that declare one. */
  estimatedSeconds: number;
  /** Updated components that declare no estimate: while any does, the total is unknown. */
  unestimated: string[];
  /** Every service an update restarts, sorted, once each. */
  restart: string[];
  /** True when any update needs the appliance to reboot. */
  reboot: boolean;
  /** True when --partial leaves errored components out: the appliance will not be at a verified release. */
  partial: boolean;
  /** True when, once applied, the appliance will be exactly at the bundle's target state. */
  reachesTarget: boolean;
  /** True when every installed component's files were re-hashed for this plan; false when it trusts the record. */
  filesChecked: boolean;
  /** Controls as given, for the record. */
  controls: Controls;
}

interface Working {
  name: string;
  action: Action;
  from: string | null;
  to: string | null;
  reasons: Reason[];
  forced: boolean;
}

export function plan(
  facts: ApplianceFacts,
  meta: BundleMetadata,
  controls: Controls = NO_CONTROLS,
): Plan {
  const target = meta.release.version;
  const reasons = bundleReasons(facts, meta, controls);
  const force = new Set(controls.force);
  const skip = new Set(controls.skip);
  const remove = new Set(controls.delete);
  const recorded = recordedRelease(facts, meta);

  const names = [
    ...new Set([...Object.keys(meta.components), ...Object.keys(facts.components)]),
  ].sort();
  const work = new Map<string, Working>();
  for (const name of names) {
    work.set(
      name,
      decide(name, facts, meta, recorded, {
        forced: force.has(name),
        skipped: skip.has(name),
        deleted: remove.has(name),
      }),
    );
  }

  // Dependencies: against the state the appliance will have after the plan. A
  // component that errors stays as installed, which can break others: repeat
  // until nothing changes.
  for (let changed = true; changed;) {
    changed = false;
    const after = stateAfter(work, facts, meta);
    for (const item of work.values()) {
      if (item.action === 'error' || item.forced || item.action === 'remove') continue;
      const own = after.get(item.name);
      if (!own) continue;
      const problems: Reason[] = [];
      for (const [dep, range] of Object.entries(own.requires)) {
        const depItem = work.get(dep);
        const depVersion = after.get(dep)?.version;
        if (depItem?.action === 'error' && isActing(item.action)) {
          problems.push({
            code: 'E_DEPENDENCY',
            message: `${item.name} needs ${dep}, which cannot be updated: ${chain(depItem)}`,
          });
        } else if (depVersion === undefined) {
          const why =
            depItem?.action === 'remove'
              ? 'it will be removed'
              : depItem?.action === 'skip'
                ? 'it is skipped and not installed'
                : 'it is not installed';
          problems.push({
            code: 'E_DEPENDENCY',
            message: `${item.name} ${own.version} needs ${dep} ${range}, but ${why}`,
          });
        } else if (!satisfies(depVersion, range)) {
          const why =
            depItem?.action === 'skip'
              ? ' (skipped)'
              : depItem?.action === 'error'
                ? ' (left as installed)'
                : '';
          problems.push({
            code: 'E_DEPENDENCY',
            message: `${item.name} ${own.version} needs ${dep} ${range}, but ${dep} will be ${depVersion}${why}`,
          });
        }
      }
      if (problems.length > 0) {
        // A skipped or kept component whose need breaks blocks too: the appliance would end up broken.
        item.reasons.push(...problems);
        item.action = 'error';
        changed = true;
      }
    }
    // A component in error stays as installed, and what it needs must hold for
    // it too. Under --partial, which applies the rest, a dependency whose change
    // would break it stays as well: the install must not remove or change what
    // a component left as installed needs. (Without --partial the plan is
    // blocked anyway, and shows what it would have done.)
    const kept = stateAfter(work, facts, meta);
    for (const item of work.values()) {
      if (!controls.partial || item.action !== 'error' || item.forced) continue;
      const own = kept.get(item.name);
      if (!own) continue;
      for (const [dep, range] of Object.entries(own.requires)) {
        const depItem = work.get(dep);
        if (!depItem || depItem.forced || !isActing(depItem.action)) continue;
        const depVersion = kept.get(dep)?.version;
        if (depVersion !== undefined && satisfies(depVersion, range)) continue;
        const change = depVersion === undefined ? 'be removed' : `change to ${depVersion}`;
        depItem.reasons.push({
          code: 'E_DEPENDENCY',
          message: `${dep} cannot ${change}: ${item.name} stays at ${own.version}, which needs ${dep} ${range}`,
        });
        depItem.action = 'error';
        changed = true;
      }
    }
  }

  // Order: dependencies first among what acts; a cycle is an error naming its members.
  const updating = [...work.values()].filter((item) => isUpdating(item.action));
  const needs = new Map(
    updating.map((item) => [item.name, Object.keys(meta.components[item.name]?.requires ?? {})]),
  );
  const sequenced = sequence(needs.keys(), needs);
  for (const cycle of sequenced.cycles) {
    for (const member of cycle) {
      const item = work.get(member) as Working;
      item.action = 'error';
      item.reasons.push({
        code: 'E_CYCLE',
        message: `${member} is in a dependency cycle: ${describeCycle(cycle)}`,
      });
    }
  }
  for (const name of sequenced.blocked) {
    const item = work.get(name) as Working;
    if (item.action !== 'error') {
      item.action = 'error';
      item.reasons.push({
        code: 'E_CYCLE',
        message: `${name} needs a component in a dependency cycle`,
      });
    }
  }
  const removals = [...work.values()]
    .filter((item) => item.action === 'remove')
    .map((item) => item.name);
  const removeNeeds = new Map(
    removals.map((name) => [name, Object.keys(facts.components[name]?.requires ?? {})]),
  );
  const order = [...sequenced.order, ...removalOrder(removeNeeds)];

  const components: ComponentPlan[] = names.map((name) => {
    const { action, from, to, reasons: why } = work.get(name) as Working;
    const effects = isUpdating(action) ? declaredEffects(meta.components[name]) : {};
    return { name, action, from, to, reasons: why, ...effects };
  });
  const updated = components.filter((c) => isUpdating(c.action));
  const errors = components.some((c) => c.action === 'error');
  const verdict = reasons.length > 0 || (errors && !controls.partial) ? 'blocked' : 'ok';
  const acting = new Set(order);
  return {
    verdict,
    product: meta.product,
    kind: meta.kind,
    from: facts.release,
    to: target,
    reasons,
    components,
    order,
    changes: changesFor(facts, meta, work),
    stageBytes: [...acting].reduce(
      (sum, name) => sum + stagedBytes(meta, name, work.get(name)?.action),
      0,
    ),
    estimatedSeconds: updated.reduce((sum, c) => sum + (c.estimatedSeconds ?? 0), 0),
    unestimated: updated.filter((c) => c.estimatedSeconds === undefined).map((c) => c.name),
    restart: [...new Set(updated.flatMap((c) => c.restart ?? []))].sort(),
    reboot: updated.some((c) => c.reboot === true),
    partial: errors && controls.partial,
    // A skipped component is left unchecked: the release cannot be called verified.
    reachesTarget:
      !errors &&
      controls.skip.length === 0 &&
      components.every((c) => finalVersion(c) === (meta.target[c.name] ?? null)),
    filesChecked: Object.values(facts.components).every((c) => c.changedFiles !== undefined),
    controls,
  };
}

/**
 * The components an install removes, in the order it removes them, after all
 * its updates: dependents before what they needed, so nothing loses a
 * dependency mid-update. `ferry rollback` going forward repeats it.
 */
export function removalOrder(needs: ReadonlyMap<string, readonly string[]>): string[] {
  const sequenced = sequence(needs.keys(), needs);
  return [...sequenced.order, ...sequenced.blocked].reverse();
}

function bundleReasons(facts: ApplianceFacts, meta: BundleMetadata, controls: Controls): Reason[] {
  const reasons: Reason[] = [];
  const target = meta.release.version;
  if (facts.product !== meta.product) {
    reasons.push({
      code: 'E_PRODUCT',
      message: `the bundle is for ${meta.product}; this appliance is ${facts.product}`,
    });
  }
  if (facts.platform.name !== meta.platform.name) {
    reasons.push({
      code: 'E_PLATFORM',
      message: `the bundle is for platform ${meta.platform.name}; this appliance runs ${facts.platform.name} ${facts.platform.version}`,
    });
  } else if (!satisfies(facts.platform.version, meta.platform.range)) {
    reasons.push({
      code: 'E_PLATFORM',
      message: `the bundle needs ${meta.platform.name} ${meta.platform.range}; this appliance runs ${facts.platform.version}`,
    });
  }
  const reapply = facts.release === target;
  if (!reapply) {
    if (meta.kind === 'install') {
      if (facts.release !== null || Object.keys(facts.components).length > 0) {
        reasons.push({
          code: 'E_UNSUPPORTED_FROM',
          message: `this is an install bundle for an empty appliance; this one is at ${facts.release ?? 'an unknown release'}: use an update bundle`,
        });
      }
    } else if (facts.release === null) {
      reasons.push({
        code: 'E_UNSUPPORTED_FROM',
        message: `this update bundle needs one of ${meta.supportedFrom.map((r) => r.version).join(', ')}; this appliance is empty: use an install bundle`,
      });
    } else if (!updatesFrom(facts, meta)) {
      reasons.push({
        code: 'E_UNSUPPORTED_FROM',
        message: `this bundle updates from ${meta.supportedFrom.map((r) => r.version).join(', ')}; this appliance is at ${facts.release}${facts.partial?.base ? ` (partly, from ${facts.partial.base})` : ''}`,
      });
    }
  }
  if (
    facts.highestRelease !== null &&
    compareVersions(target, facts.highestRelease) < 0 &&
    !controls.allowDowngrade
  ) {
    // Say what works: --allow-downgrade only helps a bundle that updates from here.
    const way = reasons.some((r) => r.code === 'E_UNSUPPORTED_FROM')
      ? `this bundle does not update from ${facts.release ?? 'an empty appliance'}, so --allow-downgrade would not help: \`ferry rollback\` returns to the previous committed release`
      : `\`ferry rollback\` returns to the previous committed release; pass --allow-downgrade to install this older one on purpose`;
    reasons.push({
      code: 'E_DOWNGRADE',
      message: `release ${target} is older than ${facts.highestRelease}, the highest this appliance has committed (rollback protection): ${way}`,
    });
  }
  return reasons;
}

/** The components the appliance's release is recorded with, when the bundle knows that release. */
function recordedRelease(
  facts: ApplianceFacts,
  meta: BundleMetadata,
): Record<string, string> | null {
  if (facts.release === null) return {};
  if (facts.release === meta.release.version) return meta.target;
  return meta.supportedFrom.find((r) => r.version === facts.release)?.components ?? null;
}

/** The bundle updates from the appliance's release, or from the one a partial install started from. */
function updatesFrom(facts: ApplianceFacts, meta: BundleMetadata): boolean {
  const base = facts.partial?.base;
  return meta.supportedFrom.some((r) => r.version === facts.release || r.version === base);
}

function decide(
  name: string,
  facts: ApplianceFacts,
  meta: BundleMetadata,
  recorded: Record<string, string> | null,
  flags: { forced: boolean; skipped: boolean; deleted: boolean },
): Working {
  const installed = facts.components[name]?.version ?? null;
  const component = meta.components[name];
  const to = component?.version ?? null;
  const item: Working = {
    name,
    action: 'keep',
    from: installed,
    to,
    reasons: [],
    forced: flags.forced,
  };
  const fail = (code: ReasonCode, message: string): Working => {
    item.action = 'error';
    item.reasons.push({ code, message });
    return item;
  };

  if (flags.skipped) {
    item.action = 'skip';
    item.to = installed;
    item.reasons.push({
      code: 'SKIPPED',
      message: installed
        ? `skipped by the operator: stays at ${installed}`
        : 'skipped by the operator: stays not installed',
    });
    return item;
  }
  if (flags.deleted) {
    item.to = null;
    if (installed === null) {
      item.action = 'keep';
      item.reasons.push({
        code: 'NOT_INSTALLED',
        message: `${name} is not installed: nothing to delete`,
      });
      return item;
    }
    item.action = 'remove';
    item.reasons.push({
      code: 'DELETED',
      message: `deleted by the operator: ${installed} is removed`,
    });
    return item;
  }

  // Drift: the appliance's components must be what its release recorded,
  // whatever the bundle would do with them (install, keep or remove): a bundle
  // is built and tested to update from the recorded state, not from this one.
  const leftOut = facts.partial?.leftOut;
  const expected =
    recorded === null || (leftOut !== undefined && name in leftOut && leftOut[name] === installed)
      ? installed
      : (recorded[name] ?? null);
  const drifted = expected !== installed;
  if (drifted && !flags.forced) {
    const resolve = component
      ? forceHint(name, component, `make it ${component.version}`)
      : `--delete ${name} to remove it, or --skip ${name} to leave it as it is`;
    return fail(
      'E_DRIFT',
      `${name} is ${installed ?? 'not installed'}, but release ${facts.release ?? '(none)'} has ${expected ?? 'no ' + name}: it was changed outside Ferry; ${resolve}`,
    );
  }
  const changedFiles = facts.components[name]?.changedFiles ?? [];
  if (changedFiles.length > 0 && !flags.forced) {
    const resolve = component
      ? forceHint(name, component, `reinstall it from this bundle (${component.version})`)
      : `--delete ${name} to remove it, or --skip ${name} to leave it as it is`;
    return fail(
      'E_DRIFT',
      `${name} ${installed ?? ''} was changed outside Ferry: ${describeFiles(changedFiles)}; ${resolve}`,
    );
  }
  if (!component) {
    // Names come from the bundle and the appliance: what the bundle lacks is installed.
    item.to = null;
    item.action = 'remove';
    item.reasons.push(
      drifted
        ? {
            code: 'FORCED',
            message: `forced by the operator: ${name} ${installed ?? ''}, which release ${facts.release ?? '(none)'} does not have, is removed (release ${meta.release.version} has no ${name})`,
          }
        : {
            code: 'DROPPED',
            message: `release ${meta.release.version} no longer has ${name}: ${installed ?? ''} is removed`,
          },
    );
    return item;
  }
  const targetVersion = component.version;

  if (
    !flags.forced &&
    component.platform !== undefined &&
    !satisfies(facts.platform.version, component.platform)
  ) {
    return fail(
      'E_PLATFORM',
      `${name} ${targetVersion} needs ${meta.platform.name} ${component.platform}; this appliance runs ${facts.platform.version}`,
    );
  }
  if (installed === null) {
    item.action = 'install';
    item.reasons.push({
      code: 'NEW',
      message: `${name} ${targetVersion} is new on this appliance`,
    });
  } else {
    const order = compareVersions(targetVersion, installed);
    if (order === 0 && flags.forced && changedFiles.length > 0) {
      item.action = 'reinstall';
      item.reasons.push({
        code: 'FORCED',
        message: `forced by the operator: ${installed} is reinstalled from the bundle over files changed by hand (${describeFiles(changedFiles)})`,
      });
      return noPayload(item, component, targetVersion, fail);
    } else if (order === 0) {
      item.action = 'keep';
      item.reasons.push({ code: 'SAME', message: `already at ${installed}` });
    } else if (order > 0) {
      item.action = 'upgrade';
      item.reasons.push({ code: 'NEWER', message: `${installed} → ${targetVersion}` });
    } else if (flags.forced) {
      item.action = 'downgrade';
      item.reasons.push({
        code: 'FORCED',
        message: `forced by the operator: ${installed} → ${targetVersion} (a downgrade)`,
      });
    } else {
      return fail(
        'E_DOWNGRADE',
        `${name} would go down from ${installed} to ${targetVersion}; --force ${name} to do it on purpose`,
      );
    }
  }
  if (flags.forced && item.action !== 'downgrade')
    item.reasons.push({
      code: 'FORCED',
      message: `forced by the operator: version, dependency and platform checks ignored for ${name}`,
    });
  return noPayload(item, component, targetVersion, fail);
}

function declaredEffects(
  component: BundleMetadata['components'][string] | undefined,
): Pick<ComponentPlan, 'estimatedSeconds' | 'restart' | 'reboot'> {
  if (!component) return {};
  const { estimatedSeconds, restart, reboot } = component;
  return {
    ...(estimatedSeconds !== undefined ? { estimatedSeconds } : {}),
    ...(restart !== undefined ? { restart } : {}),
    ...(reboot !== undefined ? { reboot } : {}),
  };
}

/**
 * How the operator resolves drift. --force with a bundle that does not carry
 * the component's files only trades E_DRIFT for E_NO_PAYLOAD, so the hint
 * names a bundle that can instead.
 */
function forceHint(
  name: string,
  component: BundleMetadata['components'][string],
  action: string,
): string {
  if (component.payload.type === 'unchanged')
    return `--skip ${name} to leave it as it is; --force ${name} needs a bundle that carries the files of ${name} ${component.version} (this one does not): the install bundle of a release that has it`;
  return `--force ${name} to ${action}, or --skip ${name} to leave it as it is`;
}

/** An acting component needs its payload in the bundle (or its reference). */
function noPayload(
  item: Working,
  component: BundleMetadata['components'][string],
  targetVersion: string,
  fail: (code: ReasonCode, message: string) => Working,
): Working {
  if (isActing(item.action) && component.payload.type === 'unchanged') {
    return fail(
      'E_NO_PAYLOAD',
      `${item.name} must ${item.action === 'reinstall' ? 'be reinstalled at' : 'change to'} ${targetVersion}, but this bundle does not carry it (it is unchanged from every release the bundle updates from): an install bundle of a release with ${item.name} ${targetVersion} carries it (\`ferry build --kind install\`)`,
    );
  }
  return item;
}

/** "share/schema.sql (content differs) and 2 more": the first changed file names the drift. */
function describeFiles(files: ReadonlyArray<{ path: string; problem: string }>): string {
  const [first] = files;
  if (!first) return '';
  return `${first.path}: ${first.problem}${files.length > 1 ? ` (and ${files.length - 1} more)` : ''}`;
}

/** Versions and requires after the plan: errored components stay as installed. */
function stateAfter(
  work: Map<string, Working>,
  facts: ApplianceFacts,
  meta: BundleMetadata,
): Map<string, InstalledComponent> {
  const after = new Map<string, InstalledComponent>();
  for (const item of work.values()) {
    const installed = facts.components[item.name];
    const component = meta.components[item.name];
    switch (item.action) {
      case 'install':
      case 'upgrade':
      case 'downgrade':
      case 'reinstall':
      case 'keep':
        if (component && item.to !== null)
          after.set(item.name, { version: component.version, requires: component.requires });
        else if (installed) after.set(item.name, installed);
        break;
      case 'skip':
      case 'error':
        if (installed) after.set(item.name, installed);
        break;
      case 'remove':
        break;
    }
  }
  return after;
}

/** The version a component has once the plan is applied; null when absent. */
function finalVersion(component: ComponentPlan): string | null {
  if (component.action === 'skip' || component.action === 'error') return component.from;
  return component.to;
}

/** "api needs db >=4.0.0 <5.0.0, but db will be 3.0.0 (skipped)": the first reason of a failed component. */
function chain(item: Working): string {
  return item.reasons.find((reason) => reason.code.startsWith('E_'))?.message ?? 'it is blocked';
}

function changesFor(
  facts: ApplianceFacts,
  meta: BundleMetadata,
  work: Map<string, Working>,
): Change[] {
  return meta.changes.filter((change) => {
    const item = work.get(change.component);
    if (!item || (item.action !== 'install' && item.action !== 'upgrade' && item.action !== 'keep'))
      return false;
    const installed = facts.components[change.component]?.version;
    return installed === undefined || compareVersions(change.version, installed) > 0;
  });
}

function stagedBytes(meta: BundleMetadata, name: string, action: Action | undefined): number {
  const payload = meta.components[name]?.payload;
  return action !== undefined && payload !== undefined && isUpdating(action)
    ? payloadBytes(payload)
    : 0;
}
