import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { compareVersions, type ApplianceState } from '../../manifest-schema/index.js';
import type { AppliancePaths } from '../appliance.js';

/**
 * Which of a component's version folders stay: the active version, then the
 * previous release's (kept even at a retention of 1, so `ferry rollback` can
 * go back to it), then the newest others up to the retention count. A
 * component no longer installed keeps only its previous version.
 */
export function versionsToKeep(
  present: readonly string[],
  active: string | undefined,
  previous: string | undefined,
  retention: number,
): Set<string> {
  const keep = new Set<string>();
  if (active) keep.add(active);
  if (previous && keep.size < Math.max(retention, 2)) keep.add(previous);
  if (!active) return keep;
  const rest = present.filter((v) => !keep.has(v)).sort((a, b) => newestFirst(a, b));
  for (const version of rest) if (keep.size < retention) keep.add(version);
  return keep;
}

function newestFirst(a: string, b: string): number {
  try {
    return compareVersions(b, a);
  } catch {
    // A folder that is not a version: ordered by name, so that the order is still total.
    return b < a ? -1 : 1;
  }
}

/**
 * After a commit: staging and set-aside versions go, and each component's
 * version folders (and their kept artifacts) beyond `versionsToKeep`.
 */
export async function cleanUp(
  paths: AppliancePaths,
  state: ApplianceState,
  retention: number,
): Promise<void> {
  await rm(paths.staging, { recursive: true, force: true });
  const artifacts = join(paths.lib, 'artifacts');
  // Kept artifacts too: a cut while pruning a removed component leaves them without its folder.
  const names = new Set([
    ...(await readdir(paths.opt).catch(() => [] as string[])),
    ...(await readdir(artifacts).catch(() => [] as string[])),
  ]);
  for (const name of names) {
    if (name.startsWith('.')) continue; // staging, not a component
    const dir = join(paths.opt, name);
    const entries = await readdir(dir).catch(() => [] as string[]);
    const versions = entries.filter(
      (entry) => entry !== 'current' && !entry.startsWith('.') && !isLeftover(entry),
    );
    const keep = versionsToKeep(
      versions,
      state.components[name]?.version,
      state.previous?.components[name]?.version,
      retention,
    );
    for (const entry of entries) {
      if (isLeftover(entry) || (versions.includes(entry) && !keep.has(entry)))
        await rm(join(dir, entry), { recursive: true, force: true });
    }
    if (keep.size === 0) await rm(dir, { recursive: true, force: true });
    const artifactDir = join(artifacts, name);
    for (const version of await readdir(artifactDir).catch(() => [] as string[])) {
      if (!keep.has(version))
        await rm(join(artifactDir, version), { recursive: true, force: true });
    }
    if (keep.size === 0) await rm(artifactDir, { recursive: true, force: true });
  }
}

/** Links a switch cut short left (`current.new-PID`): after a rollback as after a commit. */
export async function removeLinkLeftovers(paths: AppliancePaths): Promise<void> {
  for (const name of await readdir(paths.opt).catch(() => [] as string[])) {
    for (const entry of await readdir(join(paths.opt, name)).catch(() => [] as string[]))
      if (entry.startsWith('current.new-')) await rm(join(paths.opt, name, entry), { force: true });
  }
}

/** A version set aside by a transaction, or a link switch a crash cut short. */
function isLeftover(entry: string): boolean {
  return entry.includes('.replaced-') || entry.startsWith('current.new-');
}
