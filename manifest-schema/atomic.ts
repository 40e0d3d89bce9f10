import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { FerryError, ioError, type ErrorCode } from './errors.js';

/**
 * A file opened for reading, refused with `code` unless it is a regular
 * file: opened without blocking, since a FIFO left in a file's place would
 * otherwise hang every command that reads it.
 */
export async function openRegularFile(file: string, code: ErrorCode): Promise<FileHandle> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK).catch(
    (error: unknown) => {
      throw ioError(error, file, 'read');
    },
  );
  const stats = await handle.stat().catch(async (error: unknown) => {
    await handle.close();
    throw ioError(error, file, 'read');
  });
  if (!stats.isFile()) {
    await handle.close();
    throw new FerryError(code, `${file} is not a regular file`, {
      file,
      hint: 'something took its place (a FIFO, a device, a folder): restore it from a backup',
    });
  }
  return handle;
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
  let handle;
  try {
    handle = await openRegularFile(file, code);
  } catch (error) {
    // ioError names a file that is not there E_NOT_FOUND.
    if (missing !== undefined && (error as FerryError).code === 'E_NOT_FOUND') return missing;
    throw error;
  }
  try {
    return await handle.readFile('utf8');
  } catch (error) {
    throw ioError(error, file, 'read');
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `file` so that a reader or a power cut sees either the old bytes
 * or the new ones, never a mix: temp file in the same folder, fsync, rename,
 * fsync of the folder.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Buffer,
  mode = 0o644,
): Promise<void> {
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
    await syncDir(dirname(file));
  } catch (error) {
    await rm(temp, { force: true });
    throw ioError(error, file, 'write');
  }
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
