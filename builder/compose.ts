import {
  compareVersions,
  FerryError,
  satisfies,
  type BundleKind,
  type Change,
  type PayloadEntry,
  type ReleaseRecord,
  type ReleaseSpec,
} from '../manifest-schema/index.js';

export type PayloadDecision = 'included' | 'default' | 'url' | 'unchanged';

/** What a bundle will be, decided from the spec and the history alone (no files read). */
export interface BundleDesign {
  kind: BundleKind;
  /** Earlier releases this bundle updates from, oldest first. */
  supportedFrom: Array<{ version: string; components: Record<string, string> }>;
  /** The releases before this one. */
  history: ReleaseRecord[];
  /** The record of this very release, when this build rebuilds it. */
  rebuildOf?: ReleaseRecord;
  changes: Change[];
  payload: Record<string, PayloadDecision>;
  /** Components the target drops, with or without remove artifacts. */
  removed: string[];
  /** File lists known from the history, for components whose payload this build does not hash. */
  knownFiles: Record<string, PayloadEntry[]>;
}

export interface ComposeOptions {
  kind?: BundleKind;
  specFile: string;
  /** The spec's history folder, when it names one: a missing or empty one needs `firstRelease`. */
  historyDir?: { path: string; exists: boolean };
  /** This is the product's first release: an empty history is expected. */
  firstRelease?: boolean;
  /** Where a field is in the spec file, so a refusal names its line and column. */
  positionOf?: (pointer: string) => { line: number; column: number } | undefined;
}

/**
 * The cumulative rule. Pure: the spec and the history in, the design out.
 * A component's payload is carried iff some supported release has another
 * version of it (or lacks it); an install bundle carries everything.
 */
export function composeBundle(
  spec: ReleaseSpec,
  records: readonly ReleaseRecord[],
  options: ComposeOptions,
): BundleDesign {
  const file = options.specFile;
  /** "spec.yaml:3:10" and { line, column } for a field, when its position is known. */
  const at = (field: string) => {
    const position = options.positionOf?.(field);
    return position
      ? { where: `${file}:${position.line}:${position.column}`, position }
      : { where: file, position: {} };
  };
  const rebuildOf = records.find((record) => record.release.version === spec.release);
  if (rebuildOf && !sameRelease(rebuildOf, spec)) {
    throw new FerryError(
      'E_RELEASE_EXISTS',
      `${at('/release').where}: the history already records a different release ${spec.release}`,
      {
        file,
        field: '/release',
        ...at('/release').position,
        hint: 'a released version is immutable: give this release a new version',
      },
    );
  }
  // A rebuild of a recorded release (another format, or to reproduce it) sees the history it was first built on.
  const history = rebuildOf
    ? records.filter((record) => compareVersions(record.release.version, spec.release) < 0)
    : [...records];
  checkFirstRelease(records, history, options);
  const newest = history.at(-1);
  if (newest && compareVersions(spec.release, newest.release.version) <= 0) {
    throw new FerryError(
      'E_RELEASE_NOT_NEWER',
      `${at('/release').where}: release ${spec.release} is not newer than ${newest.release.version} in its history`,
      {
        file,
        field: '/release',
        ...at('/release').position,
        hint: `releases form one line: use a version above ${newest.release.version}`,
      },
    );
  }
  const kind = options.kind ?? (history.length === 0 ? 'install' : 'update');
  const supported =
    kind === 'install'
      ? []
      : history.filter(
          (record) =>
            spec.supportedFrom === undefined ||
            satisfies(record.release.version, spec.supportedFrom),
        );
  if (kind === 'update' && supported.length === 0) {
    const where = history.length === 0 ? { where: file, position: {} } : at('/supportedFrom');
    throw new FerryError(
      'E_SPEC_INVALID',
      history.length === 0
        ? `${file}: an update bundle needs earlier releases, and the history is empty`
        : `${where.where}: supportedFrom "${spec.supportedFrom}" matches no release in the history (${history.map((r) => r.release.version).join(', ')})`,
      {
        file,
        field: '/supportedFrom',
        ...where.position,
        hint: 'build an install bundle (--kind install), or point history at the folder of earlier records',
      },
    );
  }
  const supportedFrom = supported.map((record) => ({
    version: record.release.version,
    components: Object.fromEntries(
      Object.entries(record.components).map(([name, c]) => [name, c.version]),
    ),
  }));

  const payload: Record<string, PayloadDecision> = {};
  const knownFiles: Record<string, PayloadEntry[]> = {};
  for (const [name, component] of Object.entries(spec.components)) {
    const differs =
      kind === 'install' ||
      supportedFrom.some((release) => release.components[name] !== component.version);
    const reference = component.payload;
    const decision: PayloadDecision = !differs
      ? 'unchanged'
      : typeof reference === 'string'
        ? 'included'
        : 'location' in reference
          ? 'default'
          : 'url';
    payload[name] = decision;
    const fromHistory = filesFromHistory(history, name, component.version);
    if (fromHistory) knownFiles[name] = fromHistory;
    if (decision === 'default' && !('path' in (reference as object)) && !fromHistory) {
      const where = at(`/components/${name}/payload`);
      throw new FerryError(
        'E_SPEC_INVALID',
        `${where.where}: ${name}'s default-location payload has no path to hash and no earlier record of ${name} ${component.version}`,
        {
          file,
          field: `/components/${name}/payload`,
          ...where.position,
          component: name,
          hint: 'every byte installed must be covered by a signed sha256: add `path:` pointing at a copy of the payload so the builder can hash it',
        },
      );
    }
  }

  for (const name of Object.keys(spec.removed ?? {})) {
    if (history.some((record) => name in record.components)) continue;
    throw new FerryError(
      'E_UNKNOWN_COMPONENT',
      `${at(`/removed/${name}`).where}: removed: ${name} is in no earlier release, so there is nothing to remove`,
      {
        file,
        field: `/removed/${name}`,
        ...at(`/removed/${name}`).position,
        component: name,
        hint: 'check the name against the earlier releases, or drop the entry',
      },
    );
  }
  const dropped = new Set(Object.keys(spec.removed ?? {}));
  for (const release of supportedFrom)
    for (const name of Object.keys(release.components))
      if (!(name in spec.components)) dropped.add(name);

  return {
    kind,
    supportedFrom,
    history,
    ...(rebuildOf ? { rebuildOf } : {}),
    changes: cumulativeChanges(spec, history, supportedFrom),
    payload,
    removed: [...dropped].sort(),
    knownFiles,
  };
}

/**
 * A history that is missing from a checkout must not turn an update into a
 * silent first release: an empty history is an error unless the build says
 * this is the first release, and saying so with earlier records is one too.
 */
function checkFirstRelease(
  records: readonly ReleaseRecord[],
  history: readonly ReleaseRecord[],
  options: ComposeOptions,
): void {
  const file = options.specFile;
  if (options.firstRelease && history.length > 0)
    throw new FerryError(
      'E_USAGE',
      `--first-release, but the history holds earlier releases (${history.map((r) => r.release.version).join(', ')})`,
      { file, hint: 'leave out --first-release: this release follows them' },
    );
  if (options.historyDir !== undefined && records.length === 0 && !options.firstRelease)
    throw new FerryError(
      'E_HISTORY_MISSING',
      `${file}: the history folder ${options.historyDir.path} ${options.historyDir.exists ? 'holds no release records' : 'does not exist'}`,
      {
        file,
        field: '/history',
        hint: 'restore the records earlier builds wrote (CI keeps them beside the spec), or pass --first-release if this is the first release',
      },
    );
}

function sameRelease(record: ReleaseRecord, spec: ReleaseSpec): boolean {
  const names = Object.keys(spec.components);
  return (
    record.product === spec.product &&
    names.length === Object.keys(record.components).length &&
    names.every((name) => record.components[name]?.version === spec.components[name]?.version)
  );
}

function filesFromHistory(
  history: readonly ReleaseRecord[],
  name: string,
  version: string,
): PayloadEntry[] | undefined {
  for (let i = history.length - 1; i >= 0; i--) {
    const component = history[i]?.components[name];
    if (component?.version === version && component.files) return component.files;
  }
  return undefined;
}

/**
 * Every change a component's version introduced, once, tagged with the
 * version that introduced it: a change already in the history keeps its
 * version when later specs still list it.
 */
export function allChanges(spec: ReleaseSpec, history: readonly ReleaseRecord[]): Change[] {
  const byKey = new Map<string, Change>();
  for (const record of history) {
    for (const change of record.changes) {
      const key = `${change.component}\0${change.id}`;
      if (!byKey.has(key)) byKey.set(key, change);
    }
  }
  for (const [name, component] of Object.entries(spec.components)) {
    for (const change of component.changes ?? []) {
      const key = `${name}\0${change.id}`;
      if (!byKey.has(key))
        byKey.set(key, { ...change, component: name, version: component.version });
    }
  }
  return sortChanges([...byKey.values()]);
}

function cumulativeChanges(
  spec: ReleaseSpec,
  history: readonly ReleaseRecord[],
  supportedFrom: ReadonlyArray<{ components: Record<string, string> }>,
): Change[] {
  // The oldest version of a component any supported release has; undefined when one lacks it.
  const oldestVersion = (name: string): string | undefined => {
    let oldest: string | undefined;
    for (const release of supportedFrom) {
      const version = release.components[name];
      if (version === undefined) return undefined;
      if (oldest === undefined || compareVersions(version, oldest) < 0) oldest = version;
    }
    return oldest;
  };
  return allChanges(spec, history).filter((change) => {
    const target = spec.components[change.component]?.version;
    if (target === undefined || compareVersions(change.version, target) > 0) return false;
    const from = oldestVersion(change.component);
    return from === undefined || compareVersions(change.version, from) > 0;
  });
}

export function sortChanges(changes: Change[]): Change[] {
  return changes.sort(
    (a, b) =>
      (a.component < b.component ? -1 : a.component > b.component ? 1 : 0) ||
      compareVersions(a.version, b.version) ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
}
