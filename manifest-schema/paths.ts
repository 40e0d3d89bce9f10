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

/** The most links followed while resolving one target, as Linux's ELOOP limit. */
const MAX_LINK_HOPS = 40;

/**
 * Each link's target resolved the way the kernel will on the appliance:
 * segment by segment, following every link of the component met on the way
 * (links to links, and links used as folders inside a target). A target
 * that is lexically inside can still leave through a link that sits deeper
 * than where it points (`d/e/l -> ../../x`, then `b -> d/e/l/../..`), so each
 * link alone is not enough. Returns the first link that leaves its component
 * or loops, with the reason; null when every link stays inside.
 */
export function escapingLink(
  links: ReadonlyMap<string, string>,
): { path: string; reason: string } | null {
  for (const [path, target] of links) {
    const reason = resolvedLinkReason(links, path, target);
    if (reason !== null) return { path, reason };
  }
  return null;
}

function resolvedLinkReason(
  links: ReadonlyMap<string, string>,
  path: string,
  target: string,
): string | null {
  const parts = path.split('/').slice(0, -1);
  let pending = target.split('/');
  let hops = 0;
  while (pending.length > 0) {
    const segment = pending.shift() as string;
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (parts.length === 0)
        return `leaves its component through the links it follows (${target})`;
      parts.pop();
      continue;
    }
    parts.push(segment);
    const next = links.get(parts.join('/'));
    if (next === undefined) continue;
    if (++hops > MAX_LINK_HOPS) return `is part of a loop of links (${target})`;
    if (next.startsWith('/')) return `leads to an absolute path (${next})`;
    parts.pop();
    pending = [...next.split('/'), ...pending];
  }
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

/** The installer executable a bundle carries (after the payload: planning and staging never read it). */
export function installerEntry(file: string): string {
  return `installer/${file}`;
}

export function payloadEntry(component: string, path: string): string {
  return `payload/${component}/${path}`;
}
