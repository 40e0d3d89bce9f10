import { lstat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import {
  describeCycle,
  FerryError,
  isStrictVersion,
  isValidRange,
  MAX_ESTIMATED_SECONDS,
  PASSES,
  readDocument,
  restartOverflow,
  ReleaseSpecSchema,
  satisfies,
  sequence,
  type ReleaseSpec,
} from '../manifest-schema/index.js';

export interface LoadedSpec {
  file: string;
  /** The folder spec paths are relative to. */
  dir: string;
  spec: ReleaseSpec;
  lineOf: (pointer: string) => number | undefined;
  positionOf: (pointer: string) => { line: number; column: number } | undefined;
}

/** Reads the spec and checks every rule that needs no other file: versions, ranges, names, dependencies. */
export async function loadSpec(file: string): Promise<LoadedSpec> {
  const {
    value: spec,
    lineOf,
    positionOf,
  } = await readDocument(file, ReleaseSpecSchema, 'E_SPEC_INVALID', 'release spec');
  const loaded = { file, dir: dirname(resolve(file)), spec, lineOf, positionOf };
  checkSpecRules(loaded);
  return loaded;
}

export function specError(
  loaded: LoadedSpec,
  code: 'E_SPEC_INVALID' | 'E_UNKNOWN_COMPONENT' | 'E_CYCLE' | 'E_UNSATISFIABLE' | 'E_SPEC_PATH',
  field: string,
  message: string,
  hint: string,
  component?: string,
): FerryError {
  const at = loaded.positionOf(field);
  return new FerryError(code, `${loaded.file}${at ? `:${at.line}:${at.column}` : ''}: ${message}`, {
    file: loaded.file,
    field,
    ...(at ? { line: at.line, column: at.column } : {}),
    ...(component ? { component } : {}),
    hint,
  });
}

function checkSpecRules(loaded: LoadedSpec): void {
  const { spec } = loaded;
  const quote = 'write it as a quoted semver string such as "1.2.0"';
  if (!isStrictVersion(spec.release)) {
    throw specError(
      loaded,
      'E_SPEC_INVALID',
      '/release',
      `release "${spec.release}" is not a semver version`,
      quote,
    );
  }
  if (!isValidRange(spec.platform.range)) {
    throw specError(
      loaded,
      'E_SPEC_INVALID',
      '/platform/range',
      `platform range "${spec.platform.range}" is not a semver range`,
      'use a range such as ">=7.2.0 <8.0.0"',
    );
  }
  if (spec.supportedFrom !== undefined && !isValidRange(spec.supportedFrom)) {
    throw specError(
      loaded,
      'E_SPEC_INVALID',
      '/supportedFrom',
      `supportedFrom "${spec.supportedFrom}" is not a semver range`,
      'use a range of release versions such as ">=1.1.0"',
    );
  }
  if (spec.minInstaller !== undefined && !isStrictVersion(spec.minInstaller)) {
    throw specError(
      loaded,
      'E_SPEC_INVALID',
      '/minInstaller',
      `minInstaller "${spec.minInstaller}" is not a semver version`,
      quote,
    );
  }
  const names = Object.keys(spec.components);
  if (names.length === 0) {
    throw specError(
      loaded,
      'E_SPEC_INVALID',
      '/components',
      'the release has no components',
      'list at least one component',
    );
  }
  for (const [name, component] of Object.entries(spec.components)) {
    const at = `/components/${name}`;
    if (!isStrictVersion(component.version)) {
      throw specError(
        loaded,
        'E_SPEC_INVALID',
        `${at}/version`,
        `${name} version "${component.version}" is not a semver version`,
        quote,
        name,
      );
    }
    if (component.platform !== undefined && !isValidRange(component.platform)) {
      throw specError(
        loaded,
        'E_SPEC_INVALID',
        `${at}/platform`,
        `${name} platform range "${component.platform}" is not a semver range`,
        'use a range such as ">=7.2.1"',
        name,
      );
    }
    for (const [dep, range] of Object.entries(component.requires ?? {})) {
      const field = `${at}/requires/${dep}`;
      if (!isValidRange(range)) {
        throw specError(
          loaded,
          'E_SPEC_INVALID',
          field,
          `${name} requires ${dep} "${range}", which is not a semver range`,
          'use a range such as ">=3.0.0 <4.0.0"',
          name,
        );
      }
      const target = spec.components[dep];
      if (!target) {
        throw specError(
          loaded,
          'E_UNKNOWN_COMPONENT',
          field,
          `${name} requires ${dep}, which is not a component of this release`,
          `add ${dep} under components, or drop the requirement`,
          name,
        );
      }
      if (!satisfies(target.version, range)) {
        throw specError(
          loaded,
          'E_UNSATISFIABLE',
          field,
          `${name} requires ${dep} "${range}", but this release has ${dep} ${target.version}`,
          `raise ${dep}'s version or widen ${name}'s range`,
          name,
        );
      }
    }
    if (component.estimatedDuration !== undefined)
      checkDuration(loaded, component.estimatedDuration, `${at}/estimatedDuration`, name);
    for (const pass of PASSES)
      checkArtifactNames(
        loaded,
        component.artifacts?.[pass] ?? [],
        `${at}/artifacts/${pass}`,
        name,
      );
    for (const [index, change] of (component.changes ?? []).entries()) {
      const twin = (component.changes ?? []).findIndex((other) => other.id === change.id);
      if (twin !== index) {
        throw specError(
          loaded,
          'E_SPEC_INVALID',
          `${at}/changes/${index}/id`,
          `${name} lists change ${change.id} twice`,
          'give every change its own id',
          name,
        );
      }
    }
  }
  for (const [name, removed] of Object.entries(spec.removed ?? {})) {
    if (name in spec.components) {
      throw specError(
        loaded,
        'E_SPEC_INVALID',
        `/removed/${name}`,
        `${name} is both a component and removed`,
        'keep it in one of the two lists',
        name,
      );
    }
    checkArtifactNames(
      loaded,
      removed.artifacts?.remove ?? [],
      `/removed/${name}/artifacts/remove`,
      name,
    );
  }
  checkArtifactNames(loaded, spec.verification ?? [], '/verification');
  checkRestartTotal(loaded, spec);

  const needs = new Map(
    names.map((name) => [name, Object.keys(spec.components[name]?.requires ?? {})]),
  );
  const { cycles } = sequence(names, needs);
  const cycle = cycles[0];
  if (cycle) {
    throw specError(
      loaded,
      'E_CYCLE',
      `/components/${cycle[0]}/requires`,
      `components depend on each other in a cycle: ${describeCycle(cycle)}`,
      'break the cycle: one of these must stop requiring the next',
      cycle[0],
    );
  }
}

/**
 * `90s`, `5m`, `1h30m` in seconds; undefined for anything else. One form, with
 * units, because a bare number reads as minutes to some and seconds to others.
 */
export function durationSeconds(duration: string | number): number | undefined {
  const parts =
    typeof duration === 'string' ? /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(duration) : null;
  if (!parts || duration === '') return undefined;
  const [, h = '0', m = '0', s = '0'] = parts;
  return Number(h) * 3600 + Number(m) * 60 + Number(s);
}

function checkDuration(
  loaded: LoadedSpec,
  duration: string | number,
  field: string,
  component: string,
): void {
  const seconds = durationSeconds(duration);
  if (seconds === undefined) {
    throw specError(
      loaded,
      'E_SPEC_INVALID',
      field,
      `${component} estimatedDuration ${JSON.stringify(duration)} is not a duration${typeof duration === 'number' ? ' (it has no unit)' : ''}`,
      'write a duration with units, such as "90s", "5m" or "1h30m"',
      component,
    );
  }
  if (seconds < 1 || seconds > MAX_ESTIMATED_SECONDS) {
    throw specError(
      loaded,
      'E_SPEC_INVALID',
      field,
      `${component} estimatedDuration ${duration} is ${seconds < 1 ? 'zero' : 'over seven days'}`,
      'give an estimate between 1s and 168h',
      component,
    );
  }
}

function checkRestartTotal(loaded: LoadedSpec, spec: ReleaseSpec): void {
  const overflow = restartOverflow(spec.components);
  if (overflow) {
    throw specError(
      loaded,
      'E_SPEC_INVALID',
      `/components/${overflow.component}/restart`,
      overflow.message,
      'list the services the update really restarts, or restart a target that groups them',
      overflow.component,
    );
  }
}

/** Artifacts land as artifacts/<component>/<pass>/<file name>: two with one name would collide. */
function checkArtifactNames(
  loaded: LoadedSpec,
  paths: readonly string[],
  field: string,
  component?: string,
): void {
  const seen = new Map<string, number>();
  for (const [index, path] of paths.entries()) {
    const name = basename(path);
    const first = seen.get(name);
    if (first !== undefined) {
      throw specError(
        loaded,
        'E_SPEC_INVALID',
        `${field}/${index}`,
        `artifacts ${paths[first]} and ${path} share the file name ${name}`,
        'rename one of them: each artifact of a pass needs its own file name',
        component,
      );
    }
    seen.set(name, index);
  }
}

/** Resolves a spec path and checks it is a file or folder, as the field needs. */
export async function specPath(
  loaded: LoadedSpec,
  path: string,
  field: string,
  kind: 'file' | 'dir',
  component?: string,
): Promise<string> {
  const absolute = resolve(loaded.dir, path);
  let stats;
  try {
    stats = await lstat(absolute);
  } catch {
    throw specError(
      loaded,
      'E_SPEC_PATH',
      field,
      `${path} does not exist (${absolute})`,
      "paths in a spec are relative to the spec's folder",
      component,
    );
  }
  const ok = kind === 'file' ? stats.isFile() : stats.isDirectory();
  if (!ok) {
    throw specError(
      loaded,
      'E_SPEC_PATH',
      field,
      `${path} is not a ${kind === 'file' ? 'regular file' : 'folder'}`,
      kind === 'file'
        ? 'an artifact is one script or program file'
        : 'a payload is a folder of files',
      component,
    );
  }
  return absolute;
}
