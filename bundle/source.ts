import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { FerryError, ioError, type Segment } from '../manifest-schema/index.js';

/**
 * The bytes of a bundle, read by range. The readers ask for ranges, never for
 * files, so a bundle kept as one file and a bundle split into parts across
 * volumes read the same way: only the source knows where a range lives.
 * Every range is checked against `size` before a byte is read.
 */
export interface BundleSource {
  /** How messages name the bundle: its path (for a set of parts, what holds them). */
  readonly name: string;
  readonly size: number;
  /** Fills `buffer` with the bytes from `position` on. */
  read(buffer: Buffer, position: number): Promise<void>;
  /** The `length` bytes from `offset` as a stream, which fails if they are not all there. */
  stream(offset: number, length: number, highWaterMark?: number): Readable;
  /**
   * Where the `length` bytes from `offset` physically lie, in order, for hash
   * workers that read them on other threads; they report what they read
   * through `countRead`.
   */
  segments(offset: number, length: number): Segment[];
  /**
   * Set when the bytes must be read once and in order (volumes asked for one
   * at a time, or not all attached): readers stream instead of indexing.
   */
  readonly sequential?: boolean;
  /** Bytes read from the bundle so far, by this process and its hash workers. */
  bytesRead(): number;
  countRead(bytes: number): void;
  close(): Promise<void>;
}

const CORRUPT_HINT =
  'the bundle is truncated or damaged: copy it again from its source and check its sha256';

export function corruptBundle(
  name: string,
  why: string,
  details: { entry?: string; cause?: unknown } = {},
): FerryError {
  return new FerryError('E_BUNDLE_CORRUPT', `${name}: ${why}`, {
    file: name,
    ...details,
    hint: CORRUPT_HINT,
  });
}

/** The one check of a range: whole numbers, inside the bundle. A bad range is a corrupt bundle, never a short read. */
export function outside(source: BundleSource, offset: number, length: number): FerryError | null {
  if (
    Number.isSafeInteger(offset) &&
    Number.isSafeInteger(length) &&
    offset >= 0 &&
    length >= 0 &&
    offset + length <= source.size
  )
    return null;
  return corruptBundle(
    source.name,
    `bytes ${offset} to ${offset + length} were asked for, and it holds ${source.size}`,
  );
}

/**
 * The `length` bytes from `offset` as a stream of reads, each of which may
 * come up short; a read that gets nothing fails the stream with `ended`.
 */
export function rangeStream(
  source: BundleSource,
  range: { offset: number; length: number; highWaterMark: number },
  readAt: (buffer: Buffer, want: number, position: number) => Promise<number>,
  ended: (position: number) => FerryError,
): Readable {
  const bad = outside(source, range.offset, range.length);
  const end = range.offset + range.length;
  let position = range.offset;
  return new Readable({
    highWaterMark: range.highWaterMark,
    construct: (callback) => callback(bad),
    read(size) {
      const want = Math.min(size, end - position);
      if (want <= 0) {
        this.push(null);
        return;
      }
      const buffer = Buffer.allocUnsafe(want);
      readAt(buffer, want, position).then(
        (n) => {
          if (n === 0) {
            this.destroy(ended(position));
            return;
          }
          position += n;
          this.push(n === want ? buffer : buffer.subarray(0, n));
        },
        (error: unknown) => this.destroy(error as Error),
      );
    },
  });
}

/** A bundle kept as one file. */
class FileSource implements BundleSource {
  readonly name: string;
  readonly size: number;
  private readonly handle: FileHandle;
  private count = 0;

  constructor(path: string, size: number, handle: FileHandle) {
    this.name = path;
    this.size = size;
    this.handle = handle;
  }

  async read(buffer: Buffer, position: number): Promise<void> {
    const bad = outside(this, position, buffer.length);
    if (bad) throw bad;
    let done = 0;
    while (done < buffer.length) {
      const n = await this.readAt(buffer, done, buffer.length - done, position + done);
      if (n === 0) throw this.shrunk(position + done);
      done += n;
    }
  }

  stream(offset: number, length: number, highWaterMark = 1 << 20): Readable {
    // Through the one handle, so no stream holds a descriptor of its own.
    return rangeStream(
      this,
      { offset, length, highWaterMark },
      (buffer, want, position) => this.readAt(buffer, 0, want, position),
      (position) => this.shrunk(position),
    );
  }

  segments(offset: number, length: number): Segment[] {
    const bad = outside(this, offset, length);
    if (bad) throw bad;
    return [{ path: this.name, offset, length }];
  }

  bytesRead(): number {
    return this.count;
  }

  countRead(bytes: number): void {
    this.count += bytes;
  }

  close(): Promise<void> {
    return this.handle.close();
  }

  private async readAt(
    buffer: Buffer,
    at: number,
    length: number,
    position: number,
  ): Promise<number> {
    try {
      const { bytesRead } = await this.handle.read(buffer, at, length, position);
      this.count += bytesRead;
      return bytesRead;
    } catch (error) {
      throw ioError(error, this.name, 'read');
    }
  }

  /** The file ended before the size it had when it was opened. */
  private shrunk(at: number): FerryError {
    return corruptBundle(this.name, `ends at byte ${at}, short of its ${this.size} bytes`);
  }
}

/**
 * Opens a bundle file for reading by range. Anything but a regular file is
 * refused before it is read: a FIFO would block the open and every read, a
 * device would stream forever. The open itself never waits (O_NONBLOCK), so
 * a path swapped for a FIFO after the first look is still refused.
 */
export async function openFileSource(path: string): Promise<BundleSource> {
  refuseIrregular(
    path,
    await stat(path).catch((error: unknown) => {
      throw ioError(error, path, 'open');
    }),
  );
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw ioError(error, path, 'open');
  }
  try {
    const stats = await handle.stat();
    refuseIrregular(path, stats);
    return new FileSource(path, stats.size, handle);
  } catch (error) {
    await handle.close();
    throw error instanceof FerryError ? error : ioError(error, path, 'open');
  }
}

function refuseIrregular(path: string, stats: Stats): void {
  if (stats.isFile()) return;
  const what = stats.isDirectory()
    ? 'a folder'
    : stats.isFIFO()
      ? 'a FIFO'
      : stats.isSocket()
        ? 'a socket'
        : 'a device';
  throw new FerryError('E_BUNDLE_FORMAT', `${path} is ${what}, not a bundle file`, {
    file: path,
    hint: 'pass the .tar, .tar.gz or .zip bundle file',
  });
}
