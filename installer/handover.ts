import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { constants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import {
  compareVersions,
  expectedEntries,
  FerryError,
  ioError,
  isStrictVersion,
  syncDir,
  withHashPool,
  type BundleMetadata,
  type ExpectedEntry,
} from '../manifest-schema/index.js';
import { FERRY_VERSION } from '../manifest-schema/ferry-version.js';
import { EntryAudit, hashEntryAt } from '../bundle/audit.js';
import { openTrusted, type TrustContext } from '../bundle/open.js';
import type { BundleReader } from '../bundle/reader.js';
import type { AskForVolume } from '../bundle/media.js';
import { openAppliance, readFactsExport, trustContext } from './appliance.js';
import { writeVerified } from './stage.js';
import { HANDED_OVER } from './engine/events.js';

export { HANDED_OVER };

/** Where handed-over installers are kept, one file per version. */
export const INSTALLER_DIR = 'var/lib/ferry/bin';

/** This process's platform as a carried installer's metadata names it. */
const PLATFORM = `${process.platform}-${process.arch}`;

/**
 * Refuses a bundle whose `minInstaller` is newer than this Ferry: its
 * metadata may mean something this Ferry would get wrong. Called after the
 * signature check, by the planner and the install engine, so no way in
 * (console included) acts on such a bundle.
 */
export function requireInstaller(
  metadata: BundleMetadata,
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): void {
  const needed = metadata.minInstaller;
  if (needed !== undefined && compareVersions(FERRY_VERSION, needed) < 0)
    throw tooOld(metadata, needed, file, env);
}

function tooOld(
  metadata: BundleMetadata,
  needed: string,
  file: string,
  env: NodeJS.ProcessEnv,
): FerryError {
  const from = env[HANDED_OVER];
  const carried = metadata.installer;
  return new FerryError(
    'E_INSTALLER_TOO_OLD',
    `${file} needs Ferry ${needed} or newer; this is Ferry ${FERRY_VERSION}${from ? ` (handed over to by Ferry ${from})` : ''}`,
    {
      file,
      field: '/minInstaller',
      hint: from
        ? `the carried installer is older than its signed version says, or ${HANDED_OVER} was set by hand: unset it, or ask the bundle's publisher`
        : !carried
          ? `the bundle carries no installer: run Ferry ${needed} or newer (the ferry-installer of its release)`
          : carried.platform !== PLATFORM
            ? `the installer it carries is for ${carried.platform}, and this is ${PLATFORM}: run Ferry ${needed} or newer built for ${PLATFORM}`
            : `run the command on the appliance (--root) so that Ferry can hand over to the installer the bundle carries (Ferry ${carried.version})`,
    },
  );
}

export interface HandOverOptions {
  bundle: string;
  /** The appliance; without one there is nowhere to put the carried installer. */
  root?: string;
  /** Facts exported by `ferry status --export`, for a plan away from the appliance. */
  stateFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Stops copying the carried installer (the console's operator left, an interrupt): the partial copy is removed. */
  signal?: AbortSignal;
  /** On removable media, on a terminal: asks for a volume the check needs (volume 1 for bundle.json). */
  ask?: AskForVolume;
}

/**
 * The carried installer this Ferry would hand the bundle to: null when this
 * Ferry is new enough for it; E_INSTALLER_TOO_OLD when it is too old and
 * cannot hand over (none carried for this platform, already handed over to,
 * or no appliance to put it on). Reads only the (trusted) metadata.
 */
export function handOverTarget(
  metadata: BundleMetadata,
  file: string,
  root: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): NonNullable<BundleMetadata['installer']> | null {
  const needed = metadata.minInstaller;
  const carried = metadata.installer;
  if (needed === undefined || compareVersions(FERRY_VERSION, needed) >= 0) return null;
  if (env[HANDED_OVER] !== undefined || !carried || carried.platform !== PLATFORM || !root)
    throw tooOld(metadata, needed, file, env);
  return carried;
}

/** An installer copied out of a bundle, its bytes checked against the signed metadata. */
export interface CarriedInstaller {
  executable: string;
  version: string;
  /** The bundle's minInstaller. */
  needed: string;
}

/**
 * The first half of a hand-over, apart for the console (which checks while
 * its screen is up, and hands over once it is gone): verifies the bundle's
 * signature against the appliance's trust, and copies the carried installer
 * to `<root>/var/lib/ferry/bin/` checking its size and sha256 as it is
 * written (temp file, fsync, mode 0755, rename). Null when this Ferry is new
 * enough. Nothing of the bundle runs before its hash matched; a mismatch
 * leaves no file behind.
 */
export async function carriedInstaller(options: HandOverOptions): Promise<CarriedInstaller | null> {
  const env = options.env ?? process.env;
  let trust: TrustContext;
  if (options.root !== undefined) {
    const appliance = await openAppliance(options.root);
    trust = trustContext(appliance.trust, appliance.state.timeFloor);
  } else if (options.stateFile !== undefined) {
    const exported = await readFactsExport(options.stateFile);
    trust = trustContext(exported.trust, exported.timeFloor);
  } else return null; // the command reports the missing flag
  const opened = await openTrusted(options.bundle, trust, options.ask ? { ask: options.ask } : {});
  try {
    const { metadata, reader } = opened;
    const carried = handOverTarget(metadata, options.bundle, options.root, env);
    if (!carried || options.root === undefined) return null;
    const expected = expectedEntries(metadata, reader.metadataBytes.length).find(
      (entry) => entry.name === carried.path,
    ) as ExpectedEntry;
    const executable = join(
      resolve(options.root),
      INSTALLER_DIR,
      `ferry-installer-${carried.version}`,
    );
    await copyVerified(reader, expected, executable, options.signal);
    await removeOlderInstallers(join(executable, '..'), carried.version);
    return { executable, version: carried.version, needed: metadata.minInstaller as string };
  } finally {
    await opened.reader.close();
  }
}

/**
 * Each hand-over kept its installer (about 100 MiB) for good, one more per
 * release. Once this one is in place, those older than it go: it runs
 * whatever they ran, and recovers any journal they wrote (an older Ferry
 * refuses a newer one's, never the reverse). Newer ones stay. Best effort: a
 * file that cannot be removed is left, and nothing else in the folder is
 * touched.
 */
async function removeOlderInstallers(dir: string, version: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const match = /^ferry-installer-(.+)$/.exec(name);
    const other = match?.[1];
    if (other === undefined || !isStrictVersion(other) || compareVersions(other, version) >= 0)
      continue;
    await rm(join(dir, name), { force: true }).catch(() => undefined);
  }
  await syncDir(dir).catch(() => undefined);
}

/** The second half: says so on stderr, runs the copied installer with these arguments, and gives its exit status. */
export function runCarried(
  carried: CarriedInstaller,
  bundle: string,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  process.stderr.write(
    `ferry: ${bundle} needs Ferry ${carried.needed} or newer, and this is ${FERRY_VERSION}: handing over to the installer it carries (Ferry ${carried.version}, ${carried.executable})\n`,
  );
  return runHandedOver(carried.executable, argv, env);
}

/** The entry into `target`, replacing whatever was there only once every byte matched. */
async function copyVerified(
  reader: BundleReader,
  expected: ExpectedEntry,
  target: string,
  signal?: AbortSignal,
): Promise<void> {
  const dir = join(target, '..');
  // What this made, to remove on failure: a refused installer leaves the appliance as it was.
  const created = await mkdir(dir, { recursive: true, mode: 0o755 }).catch((error: unknown) => {
    throw ioError(error, dir, 'create');
  });
  const temp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const index = await reader.index();
    if (index) {
      const found = index.find((entry) => entry.name === expected.name);
      if (!found) throw missingInstaller(reader.file, expected.name);
      new EntryAudit([expected], reader.file).admit(found);
      const handle = await open(temp, 'wx', 0o700).catch((error: unknown) => {
        throw ioError(error, temp, 'create');
      });
      try {
        await withHashPool(
          (pool) =>
            hashEntryAt(pool, reader.source, expected, found.offset, {
              fd: handle.fd,
              position: 0,
            }),
          signal,
        );
        await handle.sync();
      } finally {
        await handle.close();
      }
    } else {
      // A tar.gz streams: its installer is the last entry, after the whole payload.
      let seen = false;
      await reader.visit(
        async (raw, data) => {
          if (raw.name !== expected.name) {
            data.resume();
            return;
          }
          new EntryAudit([expected], reader.file).admit(raw);
          await writeVerified(data, temp, expected, reader.file, 0o700);
          seen = true;
        },
        (name) => {
          // Asked at every entry of the stream, the long part being the payload before the installer.
          signal?.throwIfAborted();
          return name === expected.name;
        },
      );
      if (!seen) throw missingInstaller(reader.file, expected.name);
      const handle = await open(temp, 'r');
      await handle.sync().finally(() => handle.close());
    }
    signal?.throwIfAborted();
    await chmod(temp, 0o755);
    await rename(temp, target);
    await syncDir(dir);
  } catch (error) {
    await rm(created ?? temp, { recursive: true, force: true });
    // Stopped on purpose: that is the reason, not the read it broke off.
    signal?.throwIfAborted();
    throw noRoom(error, reader.file, expected, dir) ?? error;
  }
}

/**
 * A full disk while copying the carried installer: said as such, with the
 * folder and the size, where the write it broke would say "could not stage
 * from the bundle" (nothing of the bundle is staged yet).
 */
function noRoom(
  error: unknown,
  file: string,
  expected: ExpectedEntry,
  dir: string,
): FerryError | null {
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  const full =
    errno === 'ENOSPC' ||
    errno === 'EDQUOT' ||
    (error instanceof FerryError && error.code === 'E_NO_SPACE');
  if (!full) return null;
  const mib = Math.ceil(expected.size / 2 ** 20);
  return new FerryError(
    'E_NO_SPACE',
    `${file}: no room in ${dir} for the installer it carries (${expected.name}, ${mib} MiB), which Ferry copies there to hand over to: nothing was changed`,
    {
      file,
      entry: expected.name,
      hint: `free ${mib} MiB in ${dir} (older ferry-installer-* there may go), then run the command again`,
      cause: error,
    },
  );
}

function missingInstaller(file: string, entry: string): FerryError {
  return new FerryError(
    'E_MISSING_ENTRY',
    `${file}: the carried installer ${entry} is listed in the signed metadata but not in the archive`,
    { file, entry, hint: 'the bundle is incomplete: copy it again from its source' },
  );
}

/**
 * The copied installer would not start. Its bytes matched the signature, so
 * what is in the way is the appliance: a `noexec` /var (EACCES), or a kernel
 * that cannot run it (ENOEXEC). Either way it stays where it is, and can be
 * run from elsewhere.
 */
function cannotRun(error: unknown, executable: string): FerryError {
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  const elsewhere = `copy it to a folder where programs may run (cp ${executable} /root/), and run that with the same arguments`;
  if (errno === 'EACCES')
    return new FerryError(
      'E_IO',
      `could not run ${executable} (EACCES): its bytes match the bundle's signature, but the system refused to run it`,
      {
        file: executable,
        hint: `${dirname(executable)} is probably on a filesystem mounted noexec (findmnt -T ${dirname(executable)}): ${elsewhere}`,
        cause: error,
      },
    );
  if (errno === 'ENOEXEC')
    return new FerryError(
      'E_IO',
      `could not run ${executable} (ENOEXEC): its bytes match the bundle's signature, but it is no program this machine runs (${PLATFORM})`,
      {
        file: executable,
        hint: `the bundle's signed metadata says it is for ${PLATFORM}, and it is not: ask the bundle's publisher for one that is`,
        cause: error,
      },
    );
  return ioError(error, executable, 'run');
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Node cannot exec, so the carried installer runs as a child with this
 * terminal and these streams, and its exit status becomes ours. Signals for
 * us go to it (a terminal's Ctrl-C reaches both): it decides, as it would
 * had it been started directly.
 */
function runHandedOver(
  executable: string,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(executable, argv, {
      stdio: 'inherit',
      env: { ...env, [HANDED_OVER]: FERRY_VERSION },
    });
    const forward = (signal: NodeJS.Signals): void => {
      child.kill(signal);
    };
    for (const signal of SIGNALS) process.on(signal, forward);
    const done = (): void => {
      for (const signal of SIGNALS) process.removeListener(signal, forward);
    };
    child.on('error', (error) => {
      done();
      reject(cannotRun(error, executable));
    });
    child.on('exit', (code, signal) => {
      done();
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}
