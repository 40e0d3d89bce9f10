import { stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FerryError } from './errors.js';

const MIB = 1024 * 1024;

/**
 * E_NO_SPACE, naming the filesystem, when the one that will hold `path` has
 * less than `needed` bytes free: said before a byte is written, where running
 * out halfway would cost the time spent and leave the work to undo. `way`
 * is the hint's way out, after the filesystem's name.
 */
export async function checkSpace(
  path: string,
  needed: number,
  way = 'free space there (old logs, other files) and try again',
): Promise<void> {
  const at = await existingParent(path);
  const fs = await statfs(at);
  const free = fs.bavail * fs.bsize;
  if (free >= needed) return;
  const mount = await mountPoint(at);
  throw new FerryError(
    'E_NO_SPACE',
    `${path} needs ${Math.ceil(needed / MIB)} MiB free on the filesystem mounted at ${mount}, which has ${Math.floor(free / MIB)} MiB`,
    { file: path, hint: `${mount}: ${way}` },
  );
}

async function existingParent(path: string): Promise<string> {
  let at = path;
  while (dirname(at) !== at && !(await exists(at))) at = dirname(at);
  return at;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The folder a filesystem is mounted at: the highest one on the same device. */
async function mountPoint(path: string): Promise<string> {
  const { dev } = await stat(path);
  let at = path;
  while (dirname(at) !== at && (await stat(dirname(at))).dev === dev) at = dirname(at);
  return at;
}
