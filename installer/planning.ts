import {
  ControlTableSchema,
  FerryError,
  readDocument,
  type BundleMetadata,
  type TrustedRoot,
} from '../manifest-schema/index.js';
import {
  factsOf,
  openAppliance,
  readFactsExport,
  trustContext,
  type Appliance,
} from './appliance.js';
import { verifyInstalled } from './engine/installed-files.js';
import { plan, type ApplianceFacts, type Controls, type Plan } from './plan.js';
import { openTrusted, type OpenedBundle } from '../bundle/open.js';
import { requireInstaller } from './handover.js';

export interface ControlInput {
  force?: string[];
  skip?: string[];
  delete?: string[];
  /** A YAML control table { force: [..], skip: [..], delete: [..] }, merged with the flags. */
  controlFile?: string;
  allowDowngrade?: boolean;
  partial?: boolean;
  /** False: plan from the record alone, without re-hashing the installed files (`--no-drift-check`). */
  driftCheck?: boolean;
}

export async function loadControls(input: ControlInput): Promise<Controls> {
  const controls: Controls = {
    force: [...(input.force ?? [])],
    skip: [...(input.skip ?? [])],
    delete: [...(input.delete ?? [])],
    allowDowngrade: input.allowDowngrade ?? false,
    partial: input.partial ?? false,
  };
  if (input.controlFile !== undefined) {
    const { value } = await readDocument(
      input.controlFile,
      ControlTableSchema,
      'E_CONTROL_INVALID',
      'control table',
    );
    controls.force.push(...(value.force ?? []));
    controls.skip.push(...(value.skip ?? []));
    controls.delete.push(...(value.delete ?? []));
  }
  for (const key of ['force', 'skip', 'delete'] as const)
    controls[key] = [...new Set(controls[key])].sort();
  return controls;
}

/** Every control names a component the bundle or the appliance has, and each at most one control. */
export function checkControls(
  controls: Controls,
  facts: ApplianceFacts,
  meta: BundleMetadata,
  file?: string,
): void {
  const known = new Set([
    ...Object.keys(meta.components),
    ...Object.keys(facts.components),
    ...Object.keys(meta.removed),
  ]);
  const seen = new Map<string, string>();
  for (const key of ['force', 'skip', 'delete'] as const) {
    for (const name of controls[key]) {
      if (!known.has(name)) {
        throw new FerryError(
          'E_CONTROL_INVALID',
          `--${key} ${name}: neither the bundle nor the appliance has a component ${name}`,
          {
            ...(file ? { file } : {}),
            component: name,
            hint: `components here: ${[...known].sort().join(', ')}`,
          },
        );
      }
      const other = seen.get(name);
      if (other !== undefined) {
        throw new FerryError('E_CONTROL_INVALID', `${name} is both --${other} and --${key}`, {
          ...(file ? { file } : {}),
          component: name,
          hint: 'give each component one control at most',
        });
      }
      seen.set(name, key);
    }
  }
}

/**
 * The planner's view of an appliance, with each component's installed files
 * re-hashed against the hashes recorded at install (unless `driftCheck` is
 * false): a file changed by hand is drift as much as a version is.
 */
export async function checkedFacts(
  appliance: Appliance,
  driftCheck = true,
): Promise<ApplianceFacts> {
  const facts = factsOf(appliance);
  if (!driftCheck) return facts;
  const problems = await verifyInstalled(appliance.paths, appliance.state);
  for (const [name, component] of Object.entries(facts.components))
    component.changedFiles = problems
      .filter((p) => p.component === name)
      .map(({ path, problem }) => ({ path, problem }));
  return facts;
}

/** The facts as the record alone gives them: no component's files checked. */
function withoutFileChecks(facts: ApplianceFacts): ApplianceFacts {
  const components: ApplianceFacts['components'] = {};
  for (const [name, { changedFiles: _checked, ...component }] of Object.entries(facts.components))
    components[name] = component;
  return { ...facts, components };
}

export interface PlanSource {
  bundle: string;
  /** The appliance to plan for: its root, or a facts file exported with `ferry status --export`. */
  root?: string;
  stateFile?: string;
}

export interface Planned {
  plan: Plan;
  opened: OpenedBundle;
  facts: ApplianceFacts;
  /** The trust root the bundle was checked against: the appliance's, walked along the bundle's chain. */
  trust: TrustedRoot;
  appliance?: Appliance;
}

/**
 * Reads the appliance's facts and the bundle's metadata (nothing else of the
 * bundle), checks the signature against the appliance's trust root, and plans.
 * The caller closes `opened.reader`.
 */
export async function planFor(source: PlanSource, input: ControlInput): Promise<Planned> {
  if ((source.root === undefined) === (source.stateFile === undefined)) {
    throw new FerryError('E_USAGE', 'give exactly one of --root R and --state FILE', {
      hint: '--root plans for the appliance at R; --state plans against facts exported with ferry status --export',
    });
  }
  let facts: ApplianceFacts;
  let trust: TrustedRoot;
  let timeFloor: string | undefined;
  let appliance: Appliance | undefined;
  if (source.root !== undefined) {
    appliance = await openAppliance(source.root);
    facts = await checkedFacts(appliance, input.driftCheck);
    trust = appliance.trust;
    timeFloor = appliance.state.timeFloor;
  } else {
    ({ facts, trust, timeFloor } = await readFactsExport(source.stateFile as string));
    // The export holds what its files were found to be; --no-drift-check trusts the record, as on the appliance.
    if (input.driftCheck === false) facts = withoutFileChecks(facts);
  }
  const controls = await loadControls(input);
  const opened = await openTrusted(source.bundle, trustContext(trust, timeFloor));
  try {
    requireInstaller(opened.metadata, source.bundle);
    checkControls(controls, facts, opened.metadata, input.controlFile);
    const reset = opened.root.resetHighestRelease;
    if (reset) facts = { ...facts, highestRelease: reset.release };
    return {
      plan: plan(facts, opened.metadata, controls),
      opened,
      facts,
      trust: opened.root,
      ...(appliance ? { appliance } : {}),
    };
  } catch (error) {
    await opened.reader.close();
    throw error;
  }
}
