import { parseJsonLimited, requireCanonical } from './envelope.js';
import { FerryError } from './errors.js';
import { sequence } from './graph.js';
import {
  artifactEntry,
  BUNDLE_METADATA_ENTRY,
  escapingLink,
  installerEntry,
  payloadEntry,
  unsafeLinkReason,
  unsafePathReason,
  verifyEntry,
} from './paths.js';
import { FORMAT_VERSION, MAX_RESTART_CHARS, PASSES } from './constants.js';
import {
  BundleMetadataSchema,
  type ArtifactRef,
  type BundleMetadata,
  type PayloadEntry,
} from './schemas.js';
import { validate } from './validate.js';
import { compareVersions, isStrictVersion, isValidRange } from './versions.js';

/** One entry a bundle must hold, in archive order. */
export interface ExpectedEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink';
  size: number;
  sha256?: string;
  mode?: number;
  target?: string;
  component?: string;
}

/** Parses and checks the signed payload: format version, schema, then every rule the schema cannot say. */
export function decodeMetadata(payload: Buffer, file: string): BundleMetadata {
  const text = payload.toString('utf8');
  const raw = parseJsonLimited(text, file, 'bundle.json');
  requireCanonical(raw, text, file, BUNDLE_METADATA_ENTRY, payload);
  const version = (raw as { formatVersion?: unknown } | null)?.formatVersion;
  if (version !== FORMAT_VERSION) {
    throw new FerryError(
      'E_FORMAT_VERSION',
      `${file}: bundle format ${JSON.stringify(version)} is not one this Ferry reads`,
      {
        file,
        entry: BUNDLE_METADATA_ENTRY,
        field: '/formatVersion',
        hint: `this Ferry reads format ${FORMAT_VERSION}; update Ferry on this machine, or ask for a bundle built for it`,
      },
    );
  }
  const checked = validate(BundleMetadataSchema, raw);
  if (!checked.ok) {
    const first = checked.errors[0];
    throw new FerryError(
      'E_METADATA_INVALID',
      `${file}: bundle metadata breaks the schema: ${checked.errors
        .slice(0, 5)
        .map((e) => `${e.path || '/'} ${e.message}`)
        .join('; ')}`,
      {
        file,
        entry: BUNDLE_METADATA_ENTRY,
        ...(first ? { field: first.path } : {}),
        hint: 'this bundle was not built by a compatible Ferry',
      },
    );
  }
  const problem = metadataProblem(checked.value);
  if (problem) {
    throw new FerryError(problem.code, `${file}: ${problem.message}`, {
      file,
      entry: BUNDLE_METADATA_ENTRY,
      field: problem.field,
      ...(problem.component ? { component: problem.component } : {}),
      hint:
        problem.hint ??
        'the bundle metadata is inconsistent: it was not built by Ferry, or it was crafted',
    });
  }
  return checked.value;
}

interface MetadataProblem {
  code: 'E_METADATA_INVALID' | 'E_UNSAFE_ENTRY';
  field: string;
  message: string;
  component?: string;
  hint?: string;
}

/** The rules beyond the schema. Pure; returns the first problem found. */
export function metadataProblem(meta: BundleMetadata): MetadataProblem | null {
  const invalid = (field: string, message: string, component?: string): MetadataProblem => ({
    code: 'E_METADATA_INVALID',
    field,
    message,
    ...(component ? { component } : {}),
  });
  if (!isStrictVersion(meta.release.version))
    return invalid('/release/version', `release ${meta.release.version} is not semver`);
  if (!isValidRange(meta.platform.range))
    return invalid(
      '/platform/range',
      `platform range ${meta.platform.range} is not a semver range`,
    );
  const names = Object.keys(meta.components);
  const targetNames = Object.keys(meta.target);
  if (
    names.length !== targetNames.length ||
    names.some((name) => meta.target[name] !== meta.components[name]?.version)
  ) {
    return invalid('/target', 'the target state does not match the components');
  }
  for (const [name, component] of Object.entries(meta.components)) {
    const at = `/components/${name}`;
    if (!isStrictVersion(component.version))
      return invalid(`${at}/version`, `${name} ${component.version} is not semver`, name);
    if (component.platform !== undefined && !isValidRange(component.platform)) {
      return invalid(`${at}/platform`, `${name}'s platform range is not a semver range`, name);
    }
    for (const [dep, range] of Object.entries(component.requires)) {
      if (!(dep in meta.components))
        return invalid(`${at}/requires/${dep}`, `${name} requires unknown component ${dep}`, name);
      if (!isValidRange(range))
        return invalid(
          `${at}/requires/${dep}`,
          `${name} requires ${dep} "${range}", not a semver range`,
          name,
        );
    }
    for (const pass of PASSES) {
      const problem = artifactProblem(
        component.artifacts[pass],
        (file) => artifactEntry(name, pass, file),
        `${at}/artifacts/${pass}`,
        name,
      );
      if (problem) return problem;
    }
    if (component.payload.type === 'included' || component.payload.type === 'default') {
      const problem = payloadProblem(
        component.payload.files,
        component.payload.size,
        `${at}/payload`,
        name,
      );
      if (problem) return problem;
    }
    if (component.payload.type === 'url' && unsafePathReason(component.payload.saveAs) !== null) {
      return {
        code: 'E_UNSAFE_ENTRY',
        field: `${at}/payload/saveAs`,
        message: `${name}'s saveAs ${unsafePathReason(component.payload.saveAs)}`,
        component: name,
      };
    }
  }
  for (const [name, removed] of Object.entries(meta.removed)) {
    if (name in meta.components)
      return invalid(`/removed/${name}`, `${name} is both in the target and removed`, name);
    const problem = artifactProblem(
      removed.artifacts.remove,
      (file) => artifactEntry(name, 'remove', file),
      `/removed/${name}/artifacts/remove`,
      name,
    );
    if (problem) return problem;
  }
  const restart = restartOverflow(meta.components);
  if (restart) {
    // A builder from before the check built such bundles; each install would
    // roll back at its test pass with "spawn E2BIG" after updating everything.
    return {
      ...invalid(`/components/${restart.component}/restart`, restart.message, restart.component),
      hint: 'rebuild the bundle with a current Ferry: it names the restart list to shorten',
    };
  }
  const verification = artifactProblem(meta.verification, verifyEntry, '/verification');
  if (verification) return verification;
  for (const [index, release] of meta.supportedFrom.entries()) {
    if (!isStrictVersion(release.version))
      return invalid(
        `/supportedFrom/${index}/version`,
        `supported release ${release.version} is not semver`,
      );
  }
  for (const [index, change] of meta.changes.entries()) {
    if (!isStrictVersion(change.version))
      return invalid(`/changes/${index}/version`, `change ${change.id}'s version is not semver`);
  }
  return installerProblem(meta);
}

/**
 * The component whose restart list brings the release's services past
 * MAX_RESTART_CHARS in FERRY_RESTART. Each list passes the schema alone, but
 * verification hears them all at once, and past what Linux lets a process
 * start with, every install would fail at its test pass.
 */
export function restartOverflow(
  components: Readonly<Record<string, { restart?: readonly string[] | undefined }>>,
): { component: string; message: string } | null {
  const services = new Set<string>();
  for (const [name, component] of Object.entries(components)) {
    for (const service of component.restart ?? []) services.add(service);
    const chars = [...services].join(' ').length;
    if (chars > MAX_RESTART_CHARS)
      return {
        component: name,
        message: `${name} restart brings the release's services to ${services.size} (${chars} characters in FERRY_RESTART, over ${MAX_RESTART_CHARS})`,
      };
  }
  return null;
}

function installerProblem({ minInstaller, installer }: BundleMetadata): MetadataProblem | null {
  if (minInstaller !== undefined && !isStrictVersion(minInstaller))
    return {
      code: 'E_METADATA_INVALID',
      field: '/minInstaller',
      message: `minInstaller ${minInstaller} is not semver`,
    };
  if (installer === undefined) return null;
  const entry = installerEntry(installer.path.slice(installer.path.lastIndexOf('/') + 1));
  if (unsafePathReason(installer.path) !== null || installer.path !== entry)
    return {
      code: 'E_UNSAFE_ENTRY',
      field: '/installer/path',
      message: `the carried installer ${installer.path} is not where it belongs (expected ${entry})`,
    };
  if (!isStrictVersion(installer.version))
    return {
      code: 'E_METADATA_INVALID',
      field: '/installer/version',
      message: `the carried installer's version ${installer.version} is not semver`,
    };
  // A hand-over to it would only be refused again.
  if (minInstaller !== undefined && compareVersions(installer.version, minInstaller) < 0)
    return {
      code: 'E_METADATA_INVALID',
      field: '/installer/version',
      message: `the carried installer is ${installer.version}, older than the bundle's minInstaller ${minInstaller}`,
    };
  return null;
}

function artifactProblem(
  refs: readonly ArtifactRef[],
  entryOf: (file: string) => string,
  field: string,
  component?: string,
): MetadataProblem | null {
  const seen = new Set<string>();
  for (const [index, ref] of refs.entries()) {
    const file = ref.path.slice(ref.path.lastIndexOf('/') + 1);
    const unsafe = unsafePathReason(ref.path);
    if (unsafe !== null || entryOf(file) !== ref.path || seen.has(ref.path)) {
      return {
        code: 'E_UNSAFE_ENTRY',
        field: `${field}/${index}`,
        message: `artifact ${ref.path} is not where it belongs (${unsafe ?? `expected ${entryOf(file)}, once`})`,
        ...(component ? { component } : {}),
      };
    }
    seen.add(ref.path);
  }
  return null;
}

/** A payload's file list checked as every reader checks it: safe paths, links inside the component, sizes adding up. */
export function payloadProblem(
  files: readonly PayloadEntry[],
  size: number,
  field: string,
  component: string,
): MetadataProblem | null {
  const unsafe = (index: number, message: string): MetadataProblem => ({
    code: 'E_UNSAFE_ENTRY',
    field: `${field}/files/${index}`,
    message: `${component}: ${message}`,
    component,
  });
  const types = new Map<string, PayloadEntry['type']>();
  let total = 0;
  for (const [index, entry] of files.entries()) {
    const reason = unsafePathReason(entry.path);
    if (reason !== null)
      return unsafe(index, `payload path ${JSON.stringify(entry.path)} ${reason}`);
    if (types.has(entry.path)) return unsafe(index, `payload path ${entry.path} is listed twice`);
    types.set(entry.path, entry.type);
    if (entry.type === 'file') {
      if (entry.size === undefined || entry.sha256 === undefined || entry.target !== undefined) {
        return unsafe(index, `file ${entry.path} needs a size and sha256 and no target`);
      }
      total += entry.size;
    } else if (entry.type === 'symlink') {
      if (entry.target === undefined || entry.size !== undefined || entry.sha256 !== undefined) {
        return unsafe(index, `symlink ${entry.path} needs a target and nothing else`);
      }
      const link = unsafeLinkReason(entry.path, entry.target);
      if (link !== null) return unsafe(index, `symlink ${entry.path} ${link}`);
    } else if (
      entry.size !== undefined ||
      entry.sha256 !== undefined ||
      entry.target !== undefined
    ) {
      return unsafe(index, `directory ${entry.path} carries file fields`);
    }
  }
  // A file or link cannot also be a folder that holds other entries.
  for (const [index, entry] of files.entries()) {
    const parent = entry.path.includes('/')
      ? entry.path.slice(0, entry.path.lastIndexOf('/'))
      : null;
    for (
      let dir = parent;
      dir !== null;
      dir = dir.includes('/') ? dir.slice(0, dir.lastIndexOf('/')) : null
    ) {
      const type = types.get(dir);
      if (type !== undefined && type !== 'dir')
        return unsafe(index, `${entry.path} lies inside ${type} ${dir}`);
    }
  }
  const links = new Map(
    files.flatMap((entry) =>
      entry.type === 'symlink' ? [[entry.path, entry.target as string] as const] : [],
    ),
  );
  const escape = escapingLink(links);
  if (escape !== null) {
    const index = files.findIndex((entry) => entry.path === escape.path);
    return unsafe(index, `symlink ${escape.path} ${escape.reason}`);
  }
  if (total !== size) {
    return {
      code: 'E_METADATA_INVALID',
      field: `${field}/size`,
      message: `${component}: payload size ${size} is not the sum of its files (${total})`,
      component,
    };
  }
  return null;
}

/** Components in dependency order (dependencies first, ties by name). Metadata is acyclic once built. */
export function dependencyOrder(meta: Pick<BundleMetadata, 'components'>): string[] {
  const needs = new Map(
    Object.entries(meta.components).map(([name, c]) => [name, Object.keys(c.requires)]),
  );
  const { order, blocked } = sequence(needs.keys(), needs);
  return [...order, ...blocked];
}

/**
 * The first entries of every bundle: bundle.json and the trust roots it
 * carries, the part a reader must read before it can check the signature.
 */
export function frontEntries(
  trustChain: readonly ArtifactRef[],
  metadataSize: number,
): ExpectedEntry[] {
  return [
    { name: BUNDLE_METADATA_ENTRY, type: 'file', size: metadataSize },
    ...trustChain.map((ref): ExpectedEntry => ({
      name: ref.path,
      type: 'file',
      size: ref.size,
      sha256: ref.sha256,
      mode: 0o644,
    })),
  ];
}

/**
 * Every entry a bundle holds, in the one archive order that both formats
 * use: bundle.json, the trust chain, artifacts, verification, payload in
 * dependency order, then the carried installer.
 * The builder writes exactly this list; readers check an archive against it.
 */
export function expectedEntries(meta: BundleMetadata, metadataSize: number): ExpectedEntry[] {
  const entries: ExpectedEntry[] = [
    // The trust roots right after bundle.json, so a reader finds the chain before any payload.
    ...frontEntries(meta.trustChain ?? [], metadataSize),
  ];
  const order = dependencyOrder(meta);
  const artifact = (ref: ArtifactRef, component?: string): ExpectedEntry => ({
    name: ref.path,
    type: 'file',
    size: ref.size,
    sha256: ref.sha256,
    mode: 0o755,
    ...(component ? { component } : {}),
  });
  for (const name of order) {
    const component = meta.components[name];
    if (!component) continue;
    for (const pass of PASSES)
      for (const ref of component.artifacts[pass]) entries.push(artifact(ref, name));
  }
  for (const name of Object.keys(meta.removed).sort()) {
    for (const ref of meta.removed[name]?.artifacts.remove ?? []) entries.push(artifact(ref, name));
  }
  for (const ref of meta.verification) entries.push(artifact(ref));
  for (const name of order) {
    const payload = meta.components[name]?.payload;
    if (payload?.type !== 'included') continue;
    for (const file of payload.files) {
      entries.push({
        name: payloadEntry(name, file.path),
        type: file.type,
        size: file.size ?? 0,
        mode: file.mode,
        component: name,
        ...(file.sha256 ? { sha256: file.sha256 } : {}),
        ...(file.target ? { target: file.target } : {}),
      });
    }
  }
  if (meta.installer) entries.push(artifact(meta.installer));
  return entries;
}
