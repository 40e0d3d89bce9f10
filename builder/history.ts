import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  compareVersions,
  FerryError,
  ioError,
  isStrictVersion,
  payloadProblem,
  readDocument,
  ReleaseRecordSchema,
  type ReleaseRecord,
} from '../manifest-schema/index.js';

export function recordFileName(product: string, version: string): string {
  return `${product}-${version}.json`;
}

/**
 * Reads every release record in a history folder, oldest first; undefined
 * when there is no such folder (which only a first release may have).
 * Anything unreadable or for another product is an error, never skipped.
 */
export async function readHistory(
  dir: string,
  product: string,
): Promise<ReleaseRecord[] | undefined> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith('.json')).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(error, dir, 'read the history folder');
  }
  const records: ReleaseRecord[] = [];
  const byVersion = new Map<string, string>();
  for (const name of names) {
    const file = join(dir, name);
    const { value } = await readDocument(
      file,
      ReleaseRecordSchema,
      'E_HISTORY_INVALID',
      'release record',
    );
    const hint =
      'the history folder holds only the records that `ferry build` wrote for this product';
    if (value.product !== product) {
      throw new FerryError(
        'E_HISTORY_INVALID',
        `${file} is a record of ${value.product}, not ${product}`,
        { file, field: '/product', hint },
      );
    }
    if (!isStrictVersion(value.release.version)) {
      throw new FerryError(
        'E_HISTORY_INVALID',
        `${file}: release ${value.release.version} is not semver`,
        { file, field: '/release/version', hint },
      );
    }
    const twin = byVersion.get(value.release.version);
    if (twin !== undefined) {
      throw new FerryError(
        'E_HISTORY_INVALID',
        `${file} and ${twin} both record release ${value.release.version}`,
        { file, hint },
      );
    }
    // Records are unsigned: a path edited into one would otherwise be signed into the next bundle.
    for (const [name, component] of Object.entries(value.components)) {
      const files = component.files ?? [];
      const size = files.reduce((total, entry) => total + (entry.size ?? 0), 0);
      const problem = payloadProblem(files, size, `/components/${name}`, name);
      if (problem)
        throw new FerryError('E_HISTORY_INVALID', `${file}: ${problem.message}`, {
          file,
          field: problem.field,
          component: name,
          hint,
        });
    }
    byVersion.set(value.release.version, file);
    records.push(value);
  }
  return records.sort((a, b) => compareVersions(a.release.version, b.release.version));
}
