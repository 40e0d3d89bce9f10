import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  FerryError,
  ioError,
  unsafePathReason,
  type ExpectedEntry,
  type HashPool,
} from '../manifest-schema/index.js';
import { unsafeEntryError, type RawEntry } from './reader.js';
import { corruptBundle, type BundleSource } from './source.js';

/**
 * Checks archive entries against the signed metadata as they stream past:
 * every entry listed, once, of the listed type, size and link target, and
 * nothing else. Pure bookkeeping; hashing is done by `hashEntry`.
 */
export class EntryAudit {
  private readonly expected = new Map<string, ExpectedEntry>();
  private readonly seen = new Set<string>();
  private readonly file: string;

  constructor(entries: readonly ExpectedEntry[], file: string) {
    this.file = file;
    for (const entry of entries) this.expected.set(entry.name, entry);
  }

  admit(raw: RawEntry): ExpectedEntry {
    const { file } = this;
    const reason = unsafePathReason(raw.name);
    if (reason !== null) throw unsafeEntryError(file, raw.name, reason);
    if (raw.type === 'other')
      throw unsafeEntryError(
        file,
        raw.name,
        'is a device, FIFO or hard link; bundles hold files, folders and symlinks only',
      );
    if (this.seen.has(raw.name)) {
      throw new FerryError('E_DUPLICATE_ENTRY', `${file}: ${raw.name} appears twice`, {
        file,
        entry: raw.name,
        hint: 'a second copy could replace a checked file; this bundle was crafted or damaged: do not use it',
      });
    }
    this.seen.add(raw.name);
    const expected = this.expected.get(raw.name);
    if (!expected) throw unlistedEntryError(file, raw.name);
    if (expected.type !== raw.type)
      throw unsafeEntryError(
        file,
        raw.name,
        `is a ${raw.type}, but the metadata lists a ${expected.type}`,
      );
    if (raw.type === 'symlink' && raw.target !== undefined && raw.target !== expected.target) {
      throw unsafeEntryError(
        file,
        raw.name,
        `links to ${JSON.stringify(raw.target)}, but the metadata says ${JSON.stringify(expected.target)}`,
      );
    }
    if (raw.type === 'file' && raw.size !== expected.size) {
      throw new FerryError(
        'E_SIZE_MISMATCH',
        `${file}: ${raw.name} is ${raw.size} bytes, but the metadata says ${expected.size}`,
        {
          file,
          entry: raw.name,
          ...(expected.component ? { component: expected.component } : {}),
          hint: 'the bundle was altered or damaged after signing: get it again from its publisher',
        },
      );
    }
    return expected;
  }

  /**
   * The most specific refusal for an archive entry found where `expected[at]`
   * belongs (its bytes differ from the header Ferry writes there): unsafe,
   * duplicate, unlisted, of another type or size, or the listed entry is
   * missing; an entry that is all of what it should be but its bytes gets
   * E_BUNDLE_CORRUPT.
   */
  static explain(
    file: string,
    expected: readonly ExpectedEntry[],
    at: number,
    raw: RawEntry | null,
  ): FerryError {
    const audit = new EntryAudit(expected, file);
    for (const entry of expected.slice(0, at)) audit.seen.add(entry.name);
    const wanted = expected[at];
    if (raw !== null) {
      try {
        audit.admit(raw);
      } catch (error) {
        return error as FerryError;
      }
    }
    if (wanted === undefined)
      return corruptBundle(file, 'holds more than the entries its metadata lists');
    if (raw === null || raw.name !== wanted.name) {
      return new FerryError(
        'E_MISSING_ENTRY',
        `${file}: ${wanted.name} is listed in the signed metadata but not where the archive should hold it`,
        {
          file,
          entry: wanted.name,
          hint: 'the bundle is incomplete: copy it again from its source',
        },
      );
    }
    return corruptBundle(file, `the header of ${wanted.name} is not the one Ferry writes for it`, {
      entry: wanted.name,
    });
  }

  /** Names listed in the metadata that the archive did not hold, in archive order. */
  missing(): string[] {
    return [...this.expected.keys()].filter((name) => !this.seen.has(name));
  }
}

/** Hashes a stream, failing on the first byte past the declared size and on any difference at the end. */
export async function hashEntry(
  data: Readable,
  expected: ExpectedEntry,
  file: string,
): Promise<void> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of data) {
    size += (chunk as Buffer).length;
    if (size > expected.size) break;
    hash.update(chunk as Buffer);
  }
  if (size !== expected.size) data.destroy();
  checkDigest(file, expected, size, hash.digest('hex'));
}

/**
 * Hashes an entry's bytes where an index found them, on a pool worker that
 * reads them from the source's segments (and copies them to `copy`, for
 * staging, in the same read), then gives the verdict of `checkDigest`.
 */
export async function hashEntryAt(
  pool: HashPool,
  source: BundleSource,
  entry: ExpectedEntry,
  offset: number,
  copy?: { fd: number; position: number },
): Promise<void> {
  const result = await pool
    .run({ segments: source.segments(offset, entry.size), ...copy })
    .catch((error: unknown) => {
      throw ioError(error, source.name, copy ? 'stage from' : 'read');
    });
  source.countRead(result.bytes);
  checkDigest(source.name, entry, result.bytes, result.sha256);
}

/**
 * The one verdict on an entry's bytes: the size the signed metadata declares,
 * then its sha256. `bytes` past the declared size count as "more than".
 */
export function unlistedEntryError(file: string, entry: string): FerryError {
  return new FerryError(
    'E_UNLISTED_ENTRY',
    `${file}: ${entry} is not listed in the signed metadata`,
    {
      file,
      entry,
      hint: 'something was added to the bundle after it was signed: do not use it',
    },
  );
}

export function checkDigest(
  file: string,
  expected: ExpectedEntry,
  bytes: number,
  sha256: string,
): void {
  const where = {
    file,
    entry: expected.name,
    ...(expected.component ? { component: expected.component } : {}),
  };
  if (bytes !== expected.size) {
    throw new FerryError(
      'E_SIZE_MISMATCH',
      `${file}: ${expected.name} holds ${bytes > expected.size ? 'more than' : 'only'} ${bytes} bytes; the metadata says ${expected.size}`,
      {
        ...where,
        hint: 'it was altered, truncated or damaged: get it again from its publisher',
      },
    );
  }
  if (expected.sha256 !== undefined && sha256 !== expected.sha256) {
    throw new FerryError(
      'E_HASH_MISMATCH',
      `${file}: ${expected.name} does not match its signed sha256`,
      {
        ...where,
        hint: 'it was altered or damaged after signing: get it again from its publisher',
      },
    );
  }
}

/**
 * Checks items on a few lanes at once (the hash pool does the work on every
 * core). After a failure no new item starts; the items before it all finish,
 * so the error thrown is that of the first bad item in the given order,
 * exactly as a sequential check would have reported.
 */
export async function checkInOrder<T>(
  items: readonly T[],
  check: (item: T) => Promise<void>,
  lanes = 6,
): Promise<void> {
  const failures: Array<{ at: number; error: unknown }> = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length && failures.length === 0) {
      const at = next++;
      try {
        await check(items[at] as T);
      } catch (error) {
        failures.push({ at, error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, items.length) }, lane));
  if (failures.length > 0) throw failures.sort((a, b) => a.at - b.at)[0]?.error;
}
