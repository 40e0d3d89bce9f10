import {
  compareVersions,
  isUpdating,
  payloadFiles,
  type ApplianceState,
  type BundleMetadata,
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
  return {
    formatVersion: old.formatVersion,
    product: old.product,
    release,
    verified: plan.reachesTarget,
    highestRelease:
      old.highestRelease === null || compareVersions(release, old.highestRelease) > 0
        ? release
        : old.highestRelease,
    components,
    previous: { release: old.release, verified: old.verified, components: old.components },
    transaction: id,
    timeFloor: laterTime(old.timeFloor, metadata.release.createdAt),
    ...(revokedKeys ? { revokedKeys } : {}),
  };
}

function laterTime(floor: string | undefined, time: string): string {
  return floor !== undefined && Date.parse(floor) > Date.parse(time) ? floor : time;
}

/** The state `ferry rollback` commits (pure): the previous release again, and the current one as previous. */
export function restoredState(
  state: ApplianceState,
  previous: NonNullable<ApplianceState['previous']>,
  id: string,
): ApplianceState {
  return {
    ...state,
    release: previous.release,
    verified: previous.verified,
    components: previous.components,
    previous: { release: state.release, verified: state.verified, components: state.components },
    transaction: id,
  };
}

/** Rollback and remove artifacts are kept by file name beside the installed version. */
function fileName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
