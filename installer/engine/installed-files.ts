import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  FerryError,
  withHashPool,
  type ApplianceState,
  type HashPool,
  type KeptDigest,
} from '../../manifest-schema/index.js';
import type { AppliancePaths } from '../appliance.js';

/** How a problem names a component's `current` link: beside its version's folder, which its files' paths are relative to. */
export const CURRENT_LINK = '../current';

export interface FileProblem {
  component: string;
  path: string;
  problem: string;
}

/**
 * Checks installed files against the hashes recorded at install time, like
 * `dpkg --verify` (`only`: just these components); sorted by component and path.
 */
export function verifyInstalled(
  paths: AppliancePaths,
  state: Pick<ApplianceState, 'components'>,
  only: ReadonlySet<string> | null = null,
  /** False: the versions' files only, not whether `current` points at them (a rollback's check before it switches). */
  links = true,
): Promise<FileProblem[]> {
  return withHashPool((pool) => check(paths, state, only, links, pool));
}

async function check(
  paths: AppliancePaths,
  state: Pick<ApplianceState, 'components'>,
  only: ReadonlySet<string> | null,
  links: boolean,
  pool: HashPool,
): Promise<FileProblem[]> {
  const problems: FileProblem[] = [];
  const jobs: Array<Promise<void>> = [];
  for (const [name, component] of Object.entries(state.components)) {
    if (only && !only.has(name)) continue;
    if (links)
      jobs.push(
        (async () => {
          const active = await readlink(join(paths.opt, name, 'current')).catch(() => null);
          if (active !== component.version)
            problems.push({
              component: name,
              path: CURRENT_LINK,
              problem: active === null ? 'missing' : `links to ${active}, not ${component.version}`,
            });
        })(),
      );
    const dir = join(paths.opt, name, component.version);
    for (const file of component.files) {
      const path = join(dir, file.path);
      jobs.push(
        (async () => {
          const stats = await lstat(path).catch(() => null);
          if (!stats)
            return void problems.push({ component: name, path: file.path, problem: 'missing' });
          if (file.type === 'dir') {
            if (!stats.isDirectory())
              problems.push({ component: name, path: file.path, problem: 'is no longer a folder' });
            else modeChanged(stats.mode, file.mode, name, file.path, problems);
          } else if (file.type === 'symlink') {
            const target = await readlink(path).catch(() => null);
            if (target !== file.target)
              problems.push({
                component: name,
                path: file.path,
                problem: `links to ${target ?? 'nothing'}, not ${file.target}`,
              });
          } else if (!stats.isFile()) {
            problems.push({
              component: name,
              path: file.path,
              problem: 'is no longer a regular file',
            });
          } else if (stats.size !== file.size) {
            problems.push({
              component: name,
              path: file.path,
              problem: `is ${stats.size} bytes, not ${file.size}`,
            });
          } else {
            const { sha256 } = await pool.run({ source: path, size: stats.size });
            if (sha256 !== file.sha256)
              problems.push({
                component: name,
                path: file.path,
                problem: 'content differs from what was installed',
              });
            else modeChanged(stats.mode, file.mode, name, file.path, problems);
          }
        })(),
      );
    }
  }
  await Promise.all(jobs);
  return problems.sort((a, b) => (a.component + a.path < b.component + b.path ? -1 : 1));
}

/**
 * A permission the signed mode does not give (a setuid bit, a world-writable
 * program) added by hand is as much a change to what was installed as its
 * bytes. One taken away is not: before installs gave every file its signed
 * mode, a Ferry run under a umask stricter than 022 left files with fewer
 * bits than signed, and those appliances must not turn drifted on the next
 * update.
 */
function modeChanged(
  mode: number,
  signed: number,
  component: string,
  path: string,
  problems: FileProblem[],
): void {
  const now = mode & 0o7777;
  if ((now & ~signed) !== 0)
    problems.push({
      component,
      path,
      problem: `has mode ${octal(now)}, not ${octal(signed)}`,
    });
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/**
 * What differs in a kept artifact from the size and sha256 its bundle signed,
 * or null: it runs as root, long after the bundle's signature was checked.
 */
export async function keptProblem(
  path: string,
  digest: KeptDigest | undefined,
): Promise<string | null> {
  if (!digest) return 'has no size and sha256 recorded beside its name';
  const stats = await lstat(path).catch(() => null);
  if (!stats) return 'is missing';
  if (!stats.isFile()) return 'is no longer a regular file';
  if (stats.size !== digest.size) return `is ${stats.size} bytes, not ${digest.size}`;
  // Kept 0755: without an execute bit it would fail to start only once the artifacts before it had run.
  if ((stats.mode & 0o111) === 0) return `is not executable (mode ${octal(stats.mode & 0o7777)})`;
  // Streamed: an artifact may be a large program, not only a script.
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch {
    return 'cannot be read';
  }
  return hash.digest('hex') === digest.sha256
    ? null
    : 'content differs from what its bundle signed';
}

/**
 * Refuses kept artifacts that are not as their bundle signed them, before any
 * runs (E_DRIFT, nothing run or changed): `files` in `dir`, `digests` in the
 * same order. `runBy` says what would run them ("the rollback would run"), `then` how
 * to go on once the file is back.
 */
export async function requireKeptAsSigned(
  kept: { component: string; version: string; pass: string; dir: string; files: readonly string[] },
  digests: readonly KeptDigest[],
  runBy: string,
  then: string,
): Promise<void> {
  const { component, version, pass, dir } = kept;
  for (const [index, file] of kept.files.entries()) {
    const problem = await keptProblem(join(dir, file), digests[index]);
    if (problem === null) continue;
    throw new FerryError(
      'E_DRIFT',
      `${component} ${version}'s kept ${pass} artifact ${file}, which ${runBy}, is not as its bundle signed it: it ${problem}`,
      {
        component,
        file: join(dir, file),
        hint: `nothing was run or changed. Put the file back as the bundle of ${component} ${version} carries it (artifacts/${component}/${pass}/${file}), then ${then}`,
      },
    );
  }
}
