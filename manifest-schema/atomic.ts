import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { FerryError, ioError, type ErrorCode } from './errors.js';

export interface RegularFileOptions {
  /** Refuse a symbolic link in the file's place instead of following it (out of a repository, say). */
  follow?: boolean;
  /** Refuse a file larger than this many bytes, before a byte is read. */
  max?: number;
  /** The refusal's hint. */
  hint?: string;
  /**
   * The refusal of something other than a regular file there (`what` is `a folder`,
   * `a FIFO` or `a device or socket`), when it is not `code`'s `FILE is not a regular
   * file (WHAT)`: a file the operator named is a usage error, not damage.
   */
  notAFile?: { code: ErrorCode; message: (what: string) => string; hint: string };
}

/**
 * A file opened for reading, refused with `code` unless it is a regular
 * file: opened without blocking, since a FIFO left in a file's place would
 * otherwise hang every command that reads it (and a device never ends).
 */
export async function openRegularFile(
  file: string,
  code: ErrorCode,
  options: RegularFileOptions = {},
): Promise<FileHandle> {
  return (await openChecked(file, code, options)).handle;
}

async function openChecked(
  file: string,
  code: ErrorCode,
  { follow = true, max, hint, notAFile }: RegularFileOptions,
): Promise<{ handle: FileHandle; size: number }> {
  const damaged = 'something took its place (a FIFO, a device, a folder): restore it from a backup';
  const refuse = (what: string): FerryError =>
    new FerryError(code, `${file} is ${what}`, { file, hint: hint ?? damaged });
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | (follow ? 0 : constants.O_NOFOLLOW);
  const handle = await open(file, flags).catch((error: unknown) => {
    if (!follow && (error as NodeJS.ErrnoException).code === 'ELOOP')
      throw refuse('a symbolic link');
    throw ioError(error, file, 'read');
  });
  try {
    const stats = await handle.stat().catch((error: unknown) => {
      throw ioError(error, file, 'read');
    });
    if (!stats.isFile()) {
      const what = stats.isDirectory()
        ? 'a folder'
        : stats.isFIFO()
          ? 'a FIFO'
          : 'a device or socket';
      if (!notAFile) throw refuse(`not a regular file (${what})`);
      throw new FerryError(notAFile.code, notAFile.message(what), { file, hint: notAFile.hint });
    }
    if (max !== undefined && stats.size > max)
      throw refuse(`${stats.size} bytes, more than the ${max} it may hold`);
    return { handle, size: stats.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * A regular file's bytes (see openRegularFile), never more than `max`: a file
 * that grows while it is read is cut at max + 1 bytes, for the caller's size
 * or digest check to name.
 */
export async function readRegularBytes(
  file: string,
  code: ErrorCode,
  options: RegularFileOptions = {},
): Promise<Buffer> {
  const { handle, size } = await openChecked(file, code, options);
  try {
    if (options.max === undefined) return await handle.readFile();
    const bytes = Buffer.alloc(Math.min(options.max, size) + 1);
    let got = 0;
    for (;;) {
      const { bytesRead } = await handle.read(bytes, got, bytes.length - got, got);
      if (bytesRead === 0 || (got += bytesRead) === bytes.length) break;
    }
    return bytes.subarray(0, got);
  } catch (error) {
    throw ioError(error, file, 'read');
  } finally {
    await handle.close();
  }
}

/**
 * A regular file's lines, one at a time (see openRegularFile), so a file of
 * any length is read in constant memory; none when `missing` and the file
 * is not there. The file is closed also when the reader stops early.
 */
export async function* regularFileLines(
  file: string,
  code: ErrorCode,
  { missing = false } = {},
): AsyncGenerator<string> {
  let handle;
  try {
    handle = await openRegularFile(file, code);
  } catch (error) {
    // ioError names a file that is not there E_NOT_FOUND.
    if (missing && (error as FerryError).code === 'E_NOT_FOUND') return;
    throw error;
  }
  const input = handle.createReadStream();
  const lines = createInterface({ input, crlfDelay: Infinity });
  try {
    yield* lines;
  } finally {
    // The stream closes the file with it.
    lines.close();
    input.destroy();
  }
}

/**
 * A file's text, refused with `code` unless it is a regular file (see
 * openRegularFile). `missing` is returned for a file that does not exist,
 * when given.
 */
export async function readRegularFile(
  file: string,
  code: ErrorCode,
  missing?: string,
): Promise<string> {
  try {
    return (await readRegularBytes(file, code)).toString('utf8');
  } catch (error) {
    // ioError names a file that is not there E_NOT_FOUND.
    if (missing !== undefined && (error as FerryError).code === 'E_NOT_FOUND') return missing;
    throw error;
  }
}

/**
 * Replaces `file` so that a reader or a power cut sees either the old bytes
 * or the new ones, never a mix: temp file in the same folder, fsync, rename,
 * fsync of the folder. A device, FIFO or socket there (`--export /dev/null`
 * as root) is refused: the rename would put a file in its place.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Buffer,
  mode = 0o644,
): Promise<void> {
  const found = await stat(file).catch(() => null);
  if (found && !found.isFile() && !found.isDirectory()) {
    throw new FerryError(
      'E_USAGE',
      `${file} is ${found.isFIFO() ? 'a FIFO' : 'a device or socket'}, not a file`,
      {
        file,
        hint: 'name a file: Ferry writes a new one whole and renames it into place',
      },
    );
  }
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    crashBeforeRename(file);
    await rename(temp, file);
    await syncDir(dirname(file));
  } catch (error) {
    await rm(temp, { force: true });
    throw ioError(error, file, 'write');
  }
}

/**
 * Fault injection for the test suite: FERRY_TEST_CRASH_BEFORE_RENAME=NAME
 * kills this process with SIGKILL once a new NAME is whole in its temp file
 * but not yet renamed over NAME, as a power cut there would (writeFileAtomic,
 * and `ferry media` before its parts indexes go in). Nothing else reads this
 * variable.
 */
export function crashBeforeRename(file: string): void {
  if (process.env.FERRY_TEST_CRASH_BEFORE_RENAME === basename(file))
    process.kill(process.pid, 'SIGKILL');
}

/**
 * The temp files writeFileAtomic leaves in `dir` when it is cut before its
 * rename: the names it gives them.
 */
export function isAtomicLeftover(name: string): boolean {
  return /^\..+\.[0-9a-f]{12}\.tmp$/.test(name);
}

/**
 * `mkdir -p` whose folders survive a power cut: each folder it made is
 * fsynced in its parent, up to the first that was there already (a folder's
 * own entries are its files' business: writeFileAtomic syncs them).
 */
export async function mkdirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  for (let made = dir; made !== dirname(made); made = dirname(made)) {
    await syncDir(dirname(made));
    if (made === first) return;
  }
}

/** Creates `file` empty unless it is there, its entry fsynced in its folder. */
export async function touchDurable(file: string): Promise<void> {
  const handle = await open(file, 'a');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await syncDir(dirname(file));
}

/** fsync a folder so a rename or create in it survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
