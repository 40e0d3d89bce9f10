import {
  FORMAT_VERSION,
  payloadFiles,
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
