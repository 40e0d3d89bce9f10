import semver from 'semver';

/** Strict semver: `1.2.0`, never `v1.2`, `1.2` or ` 1.2.0 ` (semver.coerce is far too lenient). */
export function isStrictVersion(value: string): boolean {
  return semver.valid(value) === value;
}

export function isValidRange(value: string): boolean {
  return semver.validRange(value) !== null;
}

export function satisfies(version: string, range: string): boolean {
  return semver.satisfies(version, range, { includePrerelease: true });
}

export function compareVersions(a: string, b: string): number {
  return semver.compare(a, b);
}
