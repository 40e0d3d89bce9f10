import {
  FerryError,
  FORMAT_VERSION,
  PASSES,
  payloadEntry,
  payloadFiles,
  type ArtifactRef,
  type BundleMetadata,
  type Pass,
  type PayloadEntry,
  type ReleaseSpec,
} from '../manifest-schema/index.js';
import type { Collected, Input, ScannedEntry } from './collect.js';
import type { BundleDesign } from './compose.js';
import { durationSeconds } from './spec.js';

/**
 * The bundle's metadata, from the spec, the composed design and what was
 * collected: pure. Every sha256 the build has yet to compute is a
 * placeholder of the same length, so bundle.json's size, and with it the
 * whole archive's layout, is known before a byte is hashed.
 */
export function bundleMetadata(
  spec: ReleaseSpec,
  design: BundleDesign,
  collected: Collected,
  createdAt: string,
): BundleMetadata {
  const components: BundleMetadata['components'] = {};
  for (const [name, component] of Object.entries(spec.components)) {
    const artifacts = {} as Record<Pass, ArtifactRef[]>;
    for (const pass of PASSES) artifacts[pass] = refs(collected.artifacts[name]?.[pass]);
    components[name] = {
      version: component.version,
      ...(component.owner !== undefined ? { owner: component.owner } : {}),
      requires: component.requires ?? {},
      ...(component.platform !== undefined ? { platform: component.platform } : {}),
      ...(component.timeoutSeconds !== undefined
        ? { timeoutSeconds: component.timeoutSeconds }
        : {}),
      ...(component.estimatedDuration !== undefined
        ? { estimatedSeconds: durationSeconds(component.estimatedDuration) }
        : {}),
      ...(component.restart !== undefined ? { restart: component.restart } : {}),
      ...(component.reboot !== undefined ? { reboot: component.reboot } : {}),
      artifacts,
      payload: payloadRef(name, component.payload, design, collected.payloads[name]),
    };
  }
  const removed: BundleMetadata['removed'] = {};
  for (const name of design.removed)
    removed[name] = { artifacts: { remove: refs(collected.removed[name]) } };
  return {
    formatVersion: FORMAT_VERSION,
    kind: design.kind,
    product: spec.product,
    release: { version: spec.release, createdAt, notes: spec.notes ?? '' },
    platform: spec.platform,
    target: Object.fromEntries(
      Object.entries(spec.components).map(([name, c]) => [name, c.version]),
    ),
    supportedFrom: design.supportedFrom,
    changes: design.changes,
    components,
    removed,
    verification: refs(collected.verification),
    ...(spec.minInstaller !== undefined ? { minInstaller: spec.minInstaller } : {}),
    ...(collected.installer
      ? {
          installer: {
            ...refs([collected.installer])[0]!,
            version: collected.installer.version,
            platform: collected.installer.platform,
          },
        }
      : {}),
  };
}

/**
 * The metadata with every placeholder replaced by the sha256 computed for its
 * entry; a placeholder left without one is a bug, never a signed zero hash.
 */
export function withHashes(
  metadata: BundleMetadata,
  hashes: ReadonlyMap<string, { sha256: string }>,
): BundleMetadata {
  const filled = structuredClone(metadata);
  const hashOf = (name: string): string => {
    const result = hashes.get(name);
    if (!result) throw new FerryError('E_INTERNAL', `no hash was computed for ${name}`);
    return result.sha256;
  };
  const fillRefs = (refs: ArtifactRef[]): void => {
    for (const ref of refs) if (ref.sha256 === PLACEHOLDER) ref.sha256 = hashOf(ref.path);
  };
  for (const [name, component] of Object.entries(filled.components)) {
    for (const pass of PASSES) fillRefs(component.artifacts[pass]);
    for (const file of payloadFiles(component.payload) ?? [])
      if (file.sha256 === PLACEHOLDER) file.sha256 = hashOf(payloadEntry(name, file.path));
  }
  for (const removed of Object.values(filled.removed)) fillRefs(removed.artifacts.remove);
  fillRefs(filled.verification);
  if (filled.trustChain) fillRefs(filled.trustChain);
  if (filled.installer) fillRefs([filled.installer]);
  return filled;
}

/** The sha256 of an entry not hashed yet: as long as a real one, so sizes are known. */
export const PLACEHOLDER = '0'.repeat(64);

function refs(inputs: readonly Input[] = []): ArtifactRef[] {
  return inputs.map(({ entry, size }) => ({ path: entry, size, sha256: PLACEHOLDER }));
}

function payloadRef(
  name: string,
  reference: ReleaseSpec['components'][string]['payload'],
  design: BundleDesign,
  scanned: readonly ScannedEntry[] | undefined,
): BundleMetadata['components'][string]['payload'] {
  const decision = design.payload[name];
  if (decision === 'unchanged') return { type: 'unchanged' };
  if (decision === 'url' && typeof reference === 'object' && 'url' in reference)
    return {
      type: 'url',
      url: reference.url,
      sha256: reference.sha256,
      size: reference.size,
      saveAs: reference.saveAs,
    };
  // A default-location payload without a folder to hash is described by its earlier record.
  const files = scanned?.map(toPayloadEntry) ?? design.knownFiles[name] ?? [];
  const type = decision === 'default' ? 'default' : 'included';
  return { type, size: files.reduce((total, file) => total + (file.size ?? 0), 0), files };
}

function toPayloadEntry(entry: ScannedEntry): PayloadEntry {
  if (entry.type === 'file')
    return {
      path: entry.path,
      type: 'file',
      mode: entry.mode,
      size: entry.size,
      sha256: PLACEHOLDER,
    };
  if (entry.type === 'symlink')
    return { path: entry.path, type: 'symlink', mode: entry.mode, target: entry.target ?? '' };
  return { path: entry.path, type: 'dir', mode: entry.mode };
}
