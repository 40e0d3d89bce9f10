import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  isFerryError,
  type ApplianceConfig,
  partName,
  PARTS_INDEX,
  type BundleMetadata,
  type FerryError,
  type SignatureStatus,
  type TrustedRoot,
} from '../../manifest-schema/index.js';
import { FERRY_VERSION } from '../../manifest-schema/ferry-version.js';
import { trustContext, type Appliance } from '../appliance.js';
import { plan } from '../plan.js';
import { checkedFacts } from '../planning.js';
import { openBundleMetadata } from '../../bundle/open.js';
import { handOverTarget } from '../handover.js';
import { insideWindow, nextOpening } from '../../manifest-schema/windows.js';
import type { ApplianceView, Candidate, Searched, SignedBy } from './model.js';

export const USUAL_MOUNT_POINTS = ['/media', '/run/media', '/mnt'];

const BUNDLE_NAME = /\.(tar|tar\.gz|zip)$/;

/** Volume 1 of removable media: its parts index and part 1, which holds bundle.json. */
async function isFirstVolume(dir: string): Promise<boolean> {
  const present = (path: string) =>
    stat(join(dir, path)).then(
      (stats) => stats.isFile(),
      () => false,
    );
  return (await present(PARTS_INDEX)) && (await present(partName(1)));
}

/**
 * Bundle files in a folder and the folders just below it (a stick's root, or
 * a mount point's volumes), and bundles on removable media by their volume 1.
 */
async function bundleFiles(dir: string, depth: number): Promise<string[]> {
  if (await isFirstVolume(dir)) return [dir];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const found: string[] = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isFile() && BUNDLE_NAME.test(entry.name)) found.push(path);
    else if (entry.isDirectory() && depth > 0) found.push(...(await bundleFiles(path, depth - 1)));
  }
  return found;
}

/**
 * Finds bundles on the given folders and the usual mount points, reading
 * only their metadata, and plans each against the appliance. A bundle that
 * cannot be read or trusted is listed with the reason.
 */
export async function discover(
  appliance: Appliance,
  folders: readonly string[],
  mountPoints: readonly string[] = USUAL_MOUNT_POINTS,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Candidate[]> {
  const files = new Set<string>();
  for (const folder of folders) for (const file of await bundleFiles(folder, 1)) files.add(file);
  for (const mount of mountPoints) {
    const exists = await stat(mount).then(
      () => true,
      () => false,
    );
    if (exists) for (const file of await bundleFiles(mount, 2)) files.add(file);
  }
  // The same facts an install plans from: the screen must not promise what Enter then refuses.
  const facts = await checkedFacts(appliance);
  const candidates: Candidate[] = [];
  for (const file of [...files].sort()) {
    try {
      // An untrusted bundle is refused here, before its metadata is parsed.
      const { reader, metadata, signature, root } = await openBundleMetadata(
        file,
        trustContext(appliance.trust, appliance.state.timeFloor),
      );
      await reader.close();
      const base = {
        file,
        product: metadata.product,
        release: metadata.release.version,
        kind: metadata.kind,
        notes: metadata.release.notes,
        signature: signedBy(signature, root, appliance.trust),
      };
      // A bundle for a newer Ferry is not planned here: this Ferry may misread it.
      const needs = newerFerry(metadata, file, appliance.paths.root, env);
      if (needs) {
        candidates.push({ ...base, plan: null, ...needs });
        continue;
      }
      const planned = plan(facts, metadata, {
        force: [],
        skip: [],
        delete: [],
        allowDowngrade: false,
        partial: false,
      });
      const problem = planned.reasons[0] ?? null;
      candidates.push({
        ...base,
        plan: planned,
        problem: problem ? { code: problem.code, message: problem.message } : null,
      });
    } catch (error) {
      candidates.push({
        file,
        product: '?',
        release: '?',
        kind: '?',
        notes: '',
        plan: null,
        signature: null,
        problem: isFerryError(error)
          ? { code: error.code, message: error.message }
          : { code: 'E_IO', message: String(error) },
      });
    }
  }
  return candidates;
}

/** What the console shows and does for a bundle that needs a newer Ferry; null when this one will do. */
function newerFerry(
  metadata: BundleMetadata,
  file: string,
  root: string,
  env: NodeJS.ProcessEnv,
): Pick<Candidate, 'problem' | 'needs'> | null {
  const version = metadata.minInstaller as string;
  try {
    const carried = handOverTarget(metadata, file, root, env);
    if (!carried) return null;
    return {
      problem: {
        code: 'E_INSTALLER_TOO_OLD',
        message: `${file} needs Ferry ${version} or newer; this is Ferry ${FERRY_VERSION}, and the bundle carries Ferry ${carried.version}`,
      },
      needs: { version, carried: carried.version, hint: '' },
    };
  } catch (error) {
    const { code, message, hint = '' } = error as FerryError;
    return { problem: { code, message }, needs: { version, carried: null, hint } };
  }
}

/** Who signed a bundle whose signature met the trust root (walked along its chain, when it carries one). */
function signedBy(
  signature: SignatureStatus | undefined,
  root: TrustedRoot | undefined,
  own: TrustedRoot,
): SignedBy | null {
  if (!signature || !root) return null;
  return {
    keys: signature.keyids.map((keyid) => {
      const name = root.keys[keyid]?.name;
      return name === undefined ? { keyid } : { keyid, name };
    }),
    threshold: signature.threshold,
    rootVersion: root.version,
    walkedFrom: root.version === own.version ? null : own.version,
  };
}

/** The folders discover looks in, in its order, and whether each is there now. */
export async function searchedFolders(
  folders: readonly string[],
  mountPoints: readonly string[] = USUAL_MOUNT_POINTS,
): Promise<Searched[]> {
  return Promise.all(
    [...folders, ...mountPoints].map(async (folder) => ({
      folder,
      present: await stat(folder).then(
        (stats) => stats.isDirectory(),
        () => false,
      ),
    })),
  );
}

/**
 * What changes when media are mounted or bundles copied: the mount table and
 * the searched folders' entries with their times. Cheap enough to read every
 * few seconds; a change means look again.
 */
export async function mediaFingerprint(folders: readonly string[]): Promise<string> {
  const parts = [await readFile('/proc/self/mounts', 'utf8').catch(() => '')];
  for (const folder of folders) {
    const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
    parts.push(folder);
    for (const entry of entries) {
      const stats = await stat(join(folder, entry.name)).catch(() => null);
      parts.push(`${entry.name} ${stats?.mtimeMs ?? 0} ${stats?.size ?? 0}`);
    }
  }
  return parts.join('\n');
}

/** A moment as the appliance's wall clock shows it, with its zone: `Sat 5 Dec 2026, 02:00 UTC`. */
export function wallTime(at: Date, timeZone?: string): string {
  return new Intl.DateTimeFormat('en-GB', {
    timeZone,
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZoneName: 'short',
  }).format(at);
}

/** The maintenance windows as they stand at `now`: open, or when the next opens. */
export function windowView(config: ApplianceConfig, now = new Date()): ApplianceView['window'] {
  // The same reading of the windows as the install engine's: the process's zone.
  const windows = config.maintenanceWindows ?? [];
  if (insideWindow(windows, now)) return { open: true };
  const next = nextOpening({ allow: windows }, now);
  return {
    open: false,
    next: next ? wallTime(next) : null,
    allowOutside: config.console?.allowOutsideWindow === true,
  };
}

export function applianceView(appliance: Appliance, now = new Date()): ApplianceView {
  const { config, state } = appliance;
  return {
    window: windowView(config, now),
    previous: state.previous ? { release: state.previous.release } : null,
    product: config.product,
    platform: `${config.platform.name} ${config.platform.version}`,
    release: state.release,
    verified: state.verified,
    components: Object.fromEntries(
      Object.entries(state.components).map(([name, c]) => [name, c.version]),
    ),
  };
}
