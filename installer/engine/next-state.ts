import {
  compareVersions,
  isUpdating,
  payloadFiles,
  type ApplianceState,
  type ArtifactRef,
  type BundleMetadata,
  type KeptDigest,
} from '../../manifest-schema/index.js';
import type { Plan } from '../plan.js';

/**
 * The state an install commits (pure): updated components as the bundle
 * describes them, kept and skipped ones as they were, removed ones gone; the
 * old state becomes `previous`, for `ferry rollback`; the time floor moves
 * up to the bundle's creation, and the revoked keys are those of the trust
 * root the bundle was checked against.
 */
export function nextState(
  old: ApplianceState,
  plan: Plan,
  metadata: BundleMetadata,
  id: string,
  revokedKeys = old.revokedKeys,
): ApplianceState {
  const components: ApplianceState['components'] = {};
  for (const entry of plan.components) {
    const kept = old.components[entry.name];
    const component = metadata.components[entry.name];
    if (isUpdating(entry.action) && component) {
      components[entry.name] = {
        version: component.version,
        requires: component.requires,
        files: payloadFiles(component.payload) ?? kept?.files ?? [],
        artifacts: {
          rollback: component.artifacts.rollback.map((ref) => fileName(ref.path)),
          remove: component.artifacts.remove.map((ref) => fileName(ref.path)),
          update: component.artifacts.update.map((ref) => fileName(ref.path)),
          digests: {
            rollback: component.artifacts.rollback.map(digestOf),
            remove: component.artifacts.remove.map(digestOf),
            update: component.artifacts.update.map(digestOf),
          },
        },
        ...(component.timeoutSeconds !== undefined
          ? { timeoutSeconds: component.timeoutSeconds }
          : {}),
      };
    } else if (entry.action !== 'remove' && kept) {
      components[entry.name] = kept;
    }
  }
  const release = plan.to;
  // Only a verified release raises rollback protection: an older bundle may still complete a partial one.
  const raises =
    plan.reachesTarget &&
    (old.highestRelease === null || compareVersions(release, old.highestRelease) > 0);
  return {
    formatVersion: old.formatVersion,
    product: old.product,
    release,
    verified: plan.reachesTarget,
    highestRelease: raises ? release : old.highestRelease,
    components,
    ...(plan.reachesTarget ? {} : { partial: partialRecord(old, components, metadata) }),
    previous: previousOf({ ...old, components: withRemovesRun(old, plan, metadata) }),
    previousIsNewer: false,
    transaction: id,
    timeFloor: laterTime(old.timeFloor, metadata.release.createdAt),
    ...(revokedKeys ? { revokedKeys } : {}),
  };
}

/** The remove artifacts a removal runs from the bundle; none: the installed version's kept ones run. */
export function bundleRemoves(metadata: BundleMetadata, name: string): ArtifactRef[] {
  return (
    metadata.removed[name]?.artifacts.remove ?? metadata.components[name]?.artifacts.remove ?? []
  );
}

/**
 * The installed components, each removed with this bundle's own remove
 * artifacts recorded with those (the install keeps them in place of its
 * version's): a rollback going forward redoes the removal with what ran.
 */
function withRemovesRun(
  old: ApplianceState,
  plan: Plan,
  metadata: BundleMetadata,
): ApplianceState['components'] {
  const components = { ...old.components };
  for (const entry of plan.components) {
    const installed = old.components[entry.name];
    const refs = bundleRemoves(metadata, entry.name);
    if (entry.action !== 'remove' || !installed || refs.length === 0) continue;
    const { digests } = installed.artifacts;
    components[entry.name] = {
      ...installed,
      artifacts: {
        ...installed.artifacts,
        remove: refs.map((ref) => fileName(ref.path)),
        // A version an older Ferry installed recorded no digests for its other passes.
        ...(digests ? { digests: { ...digests, remove: refs.map(digestOf) } } : {}),
      },
    };
  }
  return components;
}

function digestOf(ref: ArtifactRef): KeptDigest {
  return { size: ref.size, sha256: ref.sha256 };
}

function laterTime(floor: string | undefined, time: string): string {
  return floor !== undefined && Date.parse(floor) > Date.parse(time) ? floor : time;
}

/**
 * What a partial install leaves for the next plan: the release it started
 * from (kept from an earlier partial one), and every component not at the
 * target, at the version it has (null: absent). Neither is drift later.
 */
function partialRecord(
  old: ApplianceState,
  components: ApplianceState['components'],
  metadata: BundleMetadata,
): NonNullable<ApplianceState['partial']> {
  const leftOut: Record<string, string | null> = {};
  for (const name of new Set([...Object.keys(components), ...Object.keys(metadata.target)])) {
    const version = components[name]?.version ?? null;
    if (version !== (metadata.target[name] ?? null)) leftOut[name] = version;
  }
  return { base: old.partial ? old.partial.base : old.release, leftOut };
}

function previousOf(state: ApplianceState): NonNullable<ApplianceState['previous']> {
  return {
    release: state.release,
    verified: state.verified,
    components: state.components,
    ...(state.partial ? { partial: state.partial } : {}),
  };
}

/**
 * Whether a rollback from this state goes forward, redoing the install of
 * `previous`, rather than back, undoing the install of the current record.
 * A state an older Ferry wrote does not say: the newer release is taken for
 * the later install (an empty release is the oldest), which is wrong only
 * when both records are of one release (a partial install, then a complete one).
 */
export function rollsForward(
  state: ApplianceState,
  previous: NonNullable<ApplianceState['previous']>,
): boolean {
  if (state.previousIsNewer !== undefined) return state.previousIsNewer;
  if (previous.release === null) return false;
  return state.release === null || compareVersions(previous.release, state.release) > 0;
}

/** The state `ferry rollback` commits (pure): the previous release again, and the current one as previous. */
export function restoredState(
  state: ApplianceState,
  previous: NonNullable<ApplianceState['previous']>,
  id: string,
): ApplianceState {
  const { partial: _partial, ...rest } = state;
  return {
    ...rest,
    release: previous.release,
    verified: previous.verified,
    components: previous.components,
    ...(previous.partial ? { partial: previous.partial } : {}),
    previous: previousOf(state),
    // The records swap places, so a rollback from here goes the other way.
    previousIsNewer: !rollsForward(state, previous),
    transaction: id,
  };
}

/** Kept artifacts are listed by file name beside the installed version. */
function fileName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
