import { execFile } from 'node:child_process';
import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  artifactEntry,
  compareVersions,
  FerryError,
  installerEntry,
  ioError,
  isStrictVersion,
  PASSES,
  payloadEntry,
  escapingLink,
  unsafeLinkReason,
  unsafePathReason,
  verifyEntry,
  type Pass,
} from '../manifest-schema/index.js';
import type { BundleDesign } from './compose.js';
import { specError, specPath, type LoadedSpec } from './spec.js';

// What a build reads of the build machine before writing a byte: every path
// of the spec resolved and checked, each file's size, each payload folder
// listed. The metadata is made from this alone; the bytes are read once,
// later, while they are hashed and copied into place.

/** A file of the build machine whose bytes the bundle carries or whose sha256 it signs. */
export interface Source {
  path: string;
  size: number;
}

/** A file the spec lists (an artifact, a verification script) and the entry it becomes. */
export interface Input extends Source {
  entry: string;
}

export interface Collected {
  artifacts: Record<string, Record<Pass, Input[]>>;
  /** The remove artifacts of each component the target drops. */
  removed: Record<string, Input[]>;
  verification: Input[];
  /** The listed payload folder of each component whose payload this build carries or hashes. */
  payloads: Record<string, ScannedEntry[]>;
  /** The installer executable the bundle carries, as it describes itself. */
  installer?: Input & { version: string; platform: string };
}

/** `installer`: the executable to carry, from `ferry build --installer` (it overrides the spec's). */
export async function collectInputs(
  loaded: LoadedSpec,
  design: BundleDesign,
  installer?: string,
): Promise<Collected> {
  const { spec } = loaded;
  const inputs = async (
    paths: readonly string[],
    field: string,
    entryOf: (file: string) => string,
    component?: string,
  ): Promise<Input[]> => {
    const found: Input[] = [];
    for (const [index, path] of paths.entries()) {
      const absolute = await specPath(loaded, path, `${field}/${index}`, 'file', component);
      found.push({
        entry: entryOf(basename(absolute)),
        path: absolute,
        size: await readSize(absolute),
      });
    }
    return found;
  };

  const collected: Collected = { artifacts: {}, removed: {}, verification: [], payloads: {} };
  for (const [name, component] of Object.entries(spec.components)) {
    const at = `/components/${name}`;
    const artifacts = {} as Record<Pass, Input[]>;
    for (const pass of PASSES) {
      artifacts[pass] = await inputs(
        component.artifacts?.[pass] ?? [],
        `${at}/artifacts/${pass}`,
        (file) => artifactEntry(name, pass, file),
        name,
      );
    }
    collected.artifacts[name] = artifacts;
    // Every folder the spec names must exist, even when this build neither carries nor hashes it.
    const reference = component.payload;
    let folder: string | undefined;
    if (typeof reference === 'string')
      folder = await specPath(loaded, reference, `${at}/payload`, 'dir', name);
    else if ('location' in reference && reference.path !== undefined)
      folder = await specPath(loaded, reference.path, `${at}/payload/path`, 'dir', name);
    const decision = design.payload[name];
    if (folder !== undefined && (decision === 'included' || decision === 'default'))
      collected.payloads[name] = await scanPayload(folder, name);
  }
  for (const name of design.removed) {
    collected.removed[name] = await inputs(
      spec.removed?.[name]?.artifacts?.remove ?? [],
      `/removed/${name}/artifacts/remove`,
      (file) => artifactEntry(name, 'remove', file),
      name,
    );
  }
  collected.verification = await inputs(spec.verification ?? [], '/verification', verifyEntry);
  const carried =
    installer !== undefined
      ? await readableFile(resolve(installer))
      : spec.installer !== undefined
        ? await specPath(loaded, spec.installer, '/installer', 'file')
        : undefined;
  if (carried !== undefined) collected.installer = await describeInstaller(loaded, carried);
  return collected;
}

async function readableFile(path: string): Promise<string> {
  const stats = await stat(path).catch((error: unknown) => {
    throw ioError(error, path, 'read the installer');
  });
  if (!stats.isFile())
    throw new FerryError('E_SPEC_PATH', `--installer ${path} is not a file`, {
      file: path,
      hint: 'pass dist/package/ferry-installer, as `npm run package` writes it',
    });
  return path;
}

/**
 * The carried installer's version and platform, asked of the executable
 * itself (it answers `--version --json` without unpacking anything), so the
 * signed metadata cannot name a version the bytes are not. An executable of
 * another architecture must be run under emulation (qemu-user) to be asked.
 */
async function describeInstaller(
  loaded: LoadedSpec,
  path: string,
): Promise<NonNullable<Collected['installer']>> {
  let said: { version?: unknown; platform?: unknown };
  try {
    const { stdout } = await promisify(execFile)(path, ['--version', '--json'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      timeout: 60_000,
    });
    said = JSON.parse(stdout) as typeof said;
  } catch (error) {
    throw new FerryError(
      'E_SPEC_PATH',
      `${path} did not say its version (--version --json): ${(error as Error).message}`,
      {
        file: path,
        hint: 'carry the ferry-installer that `npm run package` writes, built for a machine that can run it here',
      },
    );
  }
  const { version, platform } = said;
  if (
    typeof version !== 'string' ||
    !isStrictVersion(version) ||
    typeof platform !== 'string' ||
    !/^[a-z0-9]+-[a-z0-9]+$/.test(platform)
  ) {
    throw new FerryError(
      'E_SPEC_PATH',
      `${path} is not a Ferry installer: --version --json gave no semver version and platform`,
      { file: path, hint: 'carry the ferry-installer that `npm run package` writes' },
    );
  }
  const needed = loaded.spec.minInstaller;
  if (needed !== undefined && compareVersions(version, needed) < 0) {
    throw specError(
      loaded,
      'E_SPEC_INVALID',
      '/minInstaller',
      `the carried installer ${path} is Ferry ${version}, older than minInstaller ${needed}`,
      'carry an installer at least as new as minInstaller: an older one would hand over to itself',
    );
  }
  return {
    entry: installerEntry(basename(path)),
    path,
    size: await readSize(path),
    version,
    platform,
  };
}

/** Where the bytes of every entry the metadata needs a sha256 for come from, by entry name. */
export function sourcesOf(collected: Collected): Map<string, Source> {
  const sources = new Map<string, Source>();
  const add = ({ entry, path, size }: Input): void => {
    sources.set(entry, { path, size });
  };
  for (const passes of Object.values(collected.artifacts))
    for (const inputs of Object.values(passes)) inputs.forEach(add);
  for (const inputs of Object.values(collected.removed)) inputs.forEach(add);
  collected.verification.forEach(add);
  if (collected.installer) add(collected.installer);
  for (const [name, entries] of Object.entries(collected.payloads))
    for (const entry of entries)
      if (entry.type === 'file')
        sources.set(payloadEntry(name, entry.path), { path: entry.source, size: entry.size });
  return sources;
}

export async function readSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch (error) {
    throw ioError(error, file, 'read');
  }
}

export interface ScannedEntry {
  /** Path inside the payload folder, `/`-separated. */
  path: string;
  type: 'file' | 'dir' | 'symlink';
  /** 0o755 for anything executable by its owner, 0o644 otherwise; dirs 0o755. */
  mode: number;
  size: number;
  source: string;
  target?: string;
}

/**
 * Names are carried as UTF-8: a name that is not would reach the metadata as
 * U+FFFD and name no file, neither here nor on the appliance.
 */
function utf8Name(
  bytes: Buffer,
  relative: string,
  refuse: (path: string, why: string) => FerryError,
): string {
  const name = bytes.toString('utf8');
  if (Buffer.from(name, 'utf8').equals(bytes)) return name;
  const path = relative === '' ? name : `${relative}/${name}`;
  throw refuse(path, `has a name that is not UTF-8 (bytes ${bytes.toString('hex')})`);
}

/**
 * Lists a payload folder, sorted by path so bundles are reproducible.
 * Folders are listed only when empty (a file implies its folders). Device
 * files, sockets and links that leave the component are refused here, so a
 * bundle can never carry them.
 */
export async function scanPayload(root: string, component: string): Promise<ScannedEntry[]> {
  const entries: ScannedEntry[] = [];
  const refuse = (path: string, why: string): FerryError =>
    new FerryError('E_SPEC_PATH', `${component}: payload entry ${join(root, path)} ${why}`, {
      file: join(root, path),
      component,
      hint: 'a payload holds regular files, folders and symlinks that stay inside the component',
    });
  const walk = async (relative: string): Promise<boolean> => {
    const dir = relative === '' ? root : join(root, relative);
    let raw: Buffer[];
    try {
      raw = await readdir(dir, { encoding: 'buffer' });
    } catch (error) {
      throw ioError(error, dir, 'read the payload folder');
    }
    const names = raw.map((bytes) => utf8Name(bytes, relative, refuse)).sort();
    for (const name of names) {
      const path = relative === '' ? name : `${relative}/${name}`;
      const unsafe = unsafePathReason(path);
      if (unsafe !== null) throw refuse(path, unsafe);
      const source = join(root, path);
      const stats = await lstat(source);
      if (stats.isDirectory()) {
        const hasEntries = await walk(path);
        if (!hasEntries) entries.push({ path, type: 'dir', mode: 0o755, size: 0, source });
      } else if (stats.isFile()) {
        entries.push({
          path,
          type: 'file',
          mode: stats.mode & 0o100 ? 0o755 : 0o644,
          size: stats.size,
          source,
        });
      } else if (stats.isSymbolicLink()) {
        const target = await readlink(source);
        const outside = unsafeLinkReason(path, target);
        if (outside !== null) throw refuse(path, `is a symlink that ${outside}`);
        entries.push({ path, type: 'symlink', mode: 0o777, size: 0, source, target });
      } else {
        throw refuse(path, 'is a device, socket or pipe');
      }
    }
    return names.length > 0;
  };
  await walk('');
  const escape = escapingLink(
    new Map(entries.flatMap((e) => (e.target !== undefined ? [[e.path, e.target] as const] : []))),
  );
  if (escape !== null) throw refuse(escape.path, `is a symlink that ${escape.reason}`);
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
