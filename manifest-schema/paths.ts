import { posix } from 'node:path';

/**
 * Pure string checks on paths that come from specs, metadata and archives.
 * Each returns the reason a path is refused, or null when it is safe: callers
 * decide which error to raise (as yauzl's validateFileName does).
 */
export function unsafePathReason(path: string): string | null {
  if (path.length === 0) return 'is empty';
  if (path.length > 4096) return 'is longer than 4096 characters';
  if (path.includes('\0')) return 'contains a NUL byte';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.startsWith('/')) return 'is absolute';
  if (/^[A-Za-z]:/.test(path)) return 'starts with a drive letter';
  const segments = path.split('/');
  for (const segment of segments) {
    if (segment === '') return 'has an empty segment (// or a trailing /)';
    if (segment === '.' || segment === '..') return `has a "${segment}" segment`;
    if (Buffer.byteLength(segment) > 255) return 'has a segment longer than 255 bytes';
  }
  return null;
}

/**
 * A symlink at `linkPath` (relative to its component's root) pointing at
 * `target`: refused unless the target is relative and resolves inside the
 * component.
 */
export function unsafeLinkReason(linkPath: string, target: string): string | null {
  if (target.length === 0) return 'has an empty target';
  if (target.includes('\0') || target.includes('\\'))
    return 'has a target with a NUL byte or backslash';
  if (target.startsWith('/')) return `points at an absolute path (${target})`;
  const resolved = posix.normalize(posix.join(posix.dirname(linkPath), target));
  if (resolved === '..' || resolved.startsWith('../'))
    return `points outside its component (${target})`;
  if (resolved === '.') return 'points at its component root';
  return null;
}

/** Archive entry names, shared by the builder and every reader. */
export const BUNDLE_METADATA_ENTRY = 'bundle.json';

export function artifactEntry(component: string, pass: string, file: string): string {
  return `artifacts/${component}/${pass}/${file}`;
}

export function verifyEntry(file: string): string {
  return `verify/${file}`;
}

/** The entry of trust root version N in a bundle that carries its chain. */
export function trustRootEntry(version: number): string {
  return `trust/root-${version}.json`;
}

export function payloadEntry(component: string, path: string): string {
  return `payload/${component}/${path}`;
}
