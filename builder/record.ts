import {
  FerryError,
  FORMAT_VERSION,
  payloadFiles,
  type PayloadEntry,
  type BundleMetadata,
  type ReleaseRecord,
  type ReleaseSpec,
} from '../manifest-schema/index.js';
import type { BundleDesign } from './compose.js';

/**
 * The release record a build adds to the history, from the signed metadata:
 * pure. Later builds compose their bundles from these records alone.
 */
export function releaseRecord(
  metadata: BundleMetadata,
  design: BundleDesign,
  spec: ReleaseSpec,
): ReleaseRecord {
  const components: ReleaseRecord['components'] = {};
  for (const [name, component] of Object.entries(metadata.components)) {
    const files = payloadFiles(component.payload) ?? design.knownFiles[name];
    components[name] = {
      version: component.version,
      requires: component.requires,
      ...(files ? { files } : {}),
    };
  }
  // The record keeps every change its components' versions introduced, not only the cumulative slice.
  const own = Object.entries(spec.components).flatMap(([name, component]) =>
    (component.changes ?? []).map((change) => {
      const earlier = design.history
        .flatMap((record) => record.changes)
        .find((c) => c.component === name && c.id === change.id);
      return earlier ?? { ...change, component: name, version: component.version };
    }),
  );
  return {
    formatVersion: FORMAT_VERSION,
    product: metadata.product,
    release: metadata.release,
    platform: metadata.platform,
    components,
    changes: own,
  };
}

/**
 * A released component version is immutable: every version the history
 * records with its files must be built again with exactly those files (pure).
 * Throws E_VERSION_REUSED naming the component, the version, the release that
 * recorded it and the first file that differs.
 */
export function checkVersionsImmutable(
  metadata: BundleMetadata,
  history: readonly ReleaseRecord[],
  specFile: string,
): void {
  for (const [name, component] of Object.entries(metadata.components)) {
    const files = payloadFiles(component.payload);
    if (!files) continue;
    for (const record of history) {
      const recorded = record.components[name];
      if (recorded?.version !== component.version || !recorded.files) continue;
      const differs = firstDifference(recorded.files, files);
      if (differs === null) continue;
      throw new FerryError(
        'E_VERSION_REUSED',
        `${name} ${component.version} was released in ${record.release.version} with other files: ${differs}`,
        {
          file: specFile,
          field: `/components/${name}/version`,
          component: name,
          hint: `a released version is immutable: give ${name} a new version, or build it from the files ${record.release.version} recorded`,
        },
      );
    }
  }
}

/** "bin/run: sha256 differs": the first path, in order, whose entry is not the same; null when all are. */
function firstDifference(
  recorded: readonly PayloadEntry[],
  built: readonly PayloadEntry[],
): string | null {
  const before = new Map(recorded.map((entry) => [entry.path, entry]));
  const now = new Map(built.map((entry) => [entry.path, entry]));
  for (const path of [...new Set([...before.keys(), ...now.keys()])].sort()) {
    const a = before.get(path);
    const b = now.get(path);
    if (!a) return `${path}: not in the recorded version`;
    if (!b) return `${path}: recorded, but missing now`;
    for (const field of ['type', 'size', 'sha256', 'target', 'mode'] as const)
      if (a[field] !== b[field])
        return `${path}: ${field} differs (recorded ${String(a[field])}, now ${String(b[field])})`;
  }
  return null;
}
