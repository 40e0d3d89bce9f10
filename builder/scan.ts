import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  FerryError,
  ioError,
  unsafeLinkReason,
  unsafePathReason,
} from '../manifest-schema/index.js';

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
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (error) {
      throw ioError(error, dir, 'read the payload folder');
    }
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
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
