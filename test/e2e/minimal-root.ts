import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run, type RunResult } from '../helpers.js';

// A root folder that holds an executable and nothing it does not need, to
// show that the executable brings everything else with it.

/** What the fixture's artifacts call (their shebang and their commands), nothing more. */
export const ARTIFACT_PROGRAMS = ['sh', 'mkdir', 'dirname', 'cat', 'df'] as const;

const UNSHARE = ['/usr/bin/unshare', '/bin/unshare'].find((path) => existsSync(path));

/** Why these tests cannot run here, or null when they can. */
export function skipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (a new root, mknod)';
  if (!UNSHARE) return 'needs unshare (util-linux)';
  if (!['/usr/bin/ldd', '/bin/ldd'].some((path) => existsSync(path))) return 'needs ldd (libc-bin)';
  return null;
}

function librariesOf(file: string): string[] {
  const listing = execFileSync('ldd', [file], { encoding: 'utf8' });
  // "libc.so.6 => /lib/…/libc.so.6 (0x…)" and the loader "/lib64/ld-linux-x86-64.so.2 (0x…)"
  return [...listing.matchAll(/(\/\S+) \(0x[0-9a-f]+\)/g)].map((match) => match[1] as string);
}

function programPath(name: string): string {
  const found = ['/usr/bin', '/bin'].map((folder) => join(folder, name)).find(existsSync);
  if (!found) throw new Error(`${name} is not in /usr/bin or /bin`);
  return found;
}

/** Copies a file to the same path under root, following links (root holds no links). */
async function place(root: string, file: string, as = file): Promise<void> {
  await mkdir(join(root, dirname(as)), { recursive: true });
  await copyFile(file, join(root, as));
}

/**
 * A root holding `executable` as /<name>, the libraries `ldd` lists for it,
 * /bin with ARTIFACT_PROGRAMS and their libraries, /dev/null (Node opens it
 * for a child's ignored stdin), an empty /tmp, and an empty /proc where
 * runIn mounts a private proc (df reads the mount table there).
 */
export async function minimalRoot(root: string, executable: string, name: string): Promise<void> {
  await place(root, executable, `/${name}`);
  await chmod(join(root, name), 0o755);
  const programs = ARTIFACT_PROGRAMS.map(programPath);
  for (const file of [executable, ...programs])
    for (const library of librariesOf(file)) await place(root, library);
  for (const [index, program] of ARTIFACT_PROGRAMS.entries())
    await place(root, programs[index] as string, `/bin/${program}`);
  await mkdir(join(root, 'dev'));
  execFileSync('mknod', ['-m', '666', join(root, 'dev', 'null'), 'c', '1', '3']);
  await mkdir(join(root, 'tmp'), { mode: 0o1777 });
  await chmod(join(root, 'tmp'), 0o1777);
  await mkdir(join(root, 'proc'));
}

/**
 * The command line that runs `args` inside root, in private mount and process
 * namespaces: the proc it mounts, and every process, go with the command.
 */
export function inRoot(root: string, args: readonly string[]): [string, ...string[]] {
  return [
    UNSHARE as string,
    '--mount',
    '--pid',
    '--fork',
    '--kill-child',
    '--mount-proc',
    `--root=${root}`,
    ...args,
  ];
}

/** Runs `args` inside root with exactly `env`: empty unless told. */
export function runIn(
  root: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<RunResult> {
  const [command, ...rest] = inRoot(root, args);
  return run(command, rest, { env });
}
