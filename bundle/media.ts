import { createHash, type Hash } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import { open, readdir, readFile, realpath, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  assertTrusted,
  checkSignatures,
  decodePartsIndex,
  ERROR_CODES,
  FerryError,
  hashThrough,
  ioError,
  isFerryError,
  partName,
  PARTS_ENVELOPE,
  PARTS_INDEX,
  volumeLabel,
  withHashPool,
  type DecodedPartsIndex,
  type EntryToCopy,
  type PartsIndex,
  type PartToRead,
  type ReadResult,
  type Segment,
  type TrustedRoot,
  type TrustRoot,
} from '../manifest-schema/index.js';
import type { TrustContext } from './open.js';
import { corruptBundle, outside, rangeStream, type BundleSource } from './source.js';

/**
 * Reading a bundle from removable media: the parts on the volumes become one
 * BundleSource, read in place (nothing is joined, copied or written to the
 * media). Every part is found through the signed parts index, its size
 * checked before a byte is read, and its sha256 checked whenever it is read
 * through from its first byte to its last; when an entry fails its own hash,
 * the parts are hashed to name the one that is damaged.
 */

export interface VolumeRequest {
  volume: number;
  volumes: number;
  label: string;
  /** What the volume carries, as the operator's README names it. */
  bundle: string;
  /** Why the last look failed: nothing there, or a volume of another bundle. */
  problem: FerryError;
}

/** Asks the operator to attach a volume; resolves when they say it is there, rejects when they give up. */
export type AskForVolume = (request: VolumeRequest) => Promise<void>;

export interface MediaOptions {
  /** Checked against the parts index before any part is read. */
  trust?: TrustRoot | TrustedRoot;
  /** Without it, a part on a volume that is not attached fails the read. */
  ask?: AskForVolume;
}

/** A folder holding FERRY/PARTS.JSON: one volume. */
async function isVolume(dir: string): Promise<boolean> {
  return stat(join(dir, PARTS_INDEX)).then(
    (stats) => stats.isFile(),
    () => false,
  );
}

async function readIndexBytes(volume: string): Promise<Buffer> {
  const file = join(volume, PARTS_INDEX);
  const stats = await stat(file).catch((error: unknown) => {
    throw ioError(error, file, 'read');
  });
  if (stats.size > PARTS_ENVELOPE.maxBytes)
    throw new FerryError('E_MEDIA_INDEX_INVALID', `${file} is ${stats.size} bytes`, {
      file,
      entry: PARTS_INDEX,
      hint: 'this is not a parts index written by `ferry media`',
    });
  return readFile(file).catch((error: unknown) => {
    throw ioError(error, file, 'read');
  });
}

/**
 * Where volumes may be, looked at afresh each time (a disc may have been
 * swapped): a volume given by name and the folders beside it (the other
 * sticks under /media, or vol2 beside vol1), or the folders in a folder of
 * volumes (a mount point, or the output of `ferry media`).
 */
async function volumeFolders(path: string): Promise<string[]> {
  // A link to a folder counts as one: a folder of links to the mount points (`ln -s /media/usb0 vol1`).
  const isFolder = async (entry: Dirent): Promise<boolean> =>
    entry.isDirectory() ||
    (entry.isSymbolicLink() &&
      (await stat(join(entry.parentPath, entry.name)).then(
        (stats) => stats.isDirectory(),
        () => false,
      )));
  const children = async (dir: string): Promise<string[]> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    const folders: string[] = [];
    for (const entry of entries) if (await isFolder(entry)) folders.push(join(dir, entry.name));
    return folders.sort();
  };
  const found: string[] = [];
  const given = await isVolume(path);
  const around = given ? [path, ...(await children(dirname(path)))] : await children(path);
  for (const dir of around)
    if (!found.includes(dir) && (dir === path || (await isVolume(dir)))) found.push(dir);
  return found;
}

/** A folder is read as removable media (a volume, a folder of volumes, a mount point); anything else as a bundle file. */
export async function isMediaFolder(path: string): Promise<boolean> {
  const stats = await stat(path).catch(() => null);
  return stats?.isDirectory() === true;
}

/** A volume's index, with where it was found. */
interface FoundIndex extends DecodedPartsIndex {
  folder: string;
  bytes: Buffer;
}

function describe(index: PartsIndex): string {
  // The volume count tells two cuts of one build apart, whose labels are the same.
  return `${index.bundle.id} (build ${index.bundle.metadataSha256.slice(0, 12)}, ${index.volumes} volume${index.volumes === 1 ? '' : 's'} ${volumeLabel(index, 1)}…)`;
}

/** Which volume of its own index a folder is, by the parts it holds ("a volume" when it holds none). */
async function ownVolume(index: PartsIndex, folder: string): Promise<string> {
  for (const part of index.parts)
    if (
      await stat(join(folder, part.name)).then(
        () => true,
        () => false,
      )
    )
      return `volume ${part.volume} of ${index.volumes}`;
  return `a volume (of ${index.volumes})`;
}

/**
 * The parts index that defines the bundle: the given volume's, or that of
 * the volume holding part 1 (bundle.json), or the one all volumes share.
 * Two candidates are refused rather than guessed between; any other volume
 * is checked against the one chosen when its part is needed.
 */
async function referenceIndex(
  path: string,
  trust: TrustRoot | TrustedRoot | undefined,
): Promise<FoundIndex> {
  const folders = (await isVolume(path)) ? [path] : await volumeFolders(path);
  if (folders.length === 0) {
    throw new FerryError(
      'E_BUNDLE_FORMAT',
      `${path} is a folder, and neither it nor a folder in it holds ${PARTS_INDEX}`,
      {
        file: path,
        hint: 'pass a bundle file, a volume written by `ferry media` (or the disc or stick it was copied to), or the folder holding the volumes',
      },
    );
  }
  const holdsFirst = async (folder: string): Promise<boolean> =>
    stat(join(folder, partName(1))).then(
      () => true,
      () => false,
    );
  const firsts: string[] = [];
  for (const folder of folders) if (await holdsFirst(folder)) firsts.push(folder);
  const indexes: Array<FoundIndex & { folders: string[] }> = [];
  for (const folder of firsts.length > 0 ? firsts : folders) {
    const bytes = await readIndexBytes(folder);
    const same = indexes.find((other) => other.bytes.equals(bytes));
    if (same) {
      same.folders.push(folder);
      continue;
    }
    const decoded = decodePartsIndex(bytes, join(folder, PARTS_INDEX), trust);
    indexes.push({ ...decoded, folder, bytes, folders: [folder] });
  }
  if (indexes.length > 1) {
    // Every volume of each, so the operator knows all there is to remove.
    for (const folder of folders) {
      if (firsts.includes(folder)) continue;
      const bytes = await readIndexBytes(folder).catch(() => null);
      indexes.find((other) => bytes && other.bytes.equals(bytes))?.folders.push(folder);
    }
    // Media attached that do not belong together, as for a wrong volume where one belongs:
    // the command line is right, and taking either would be a guess.
    const which = firsts.length > 0 ? 'volume 1' : 'volumes';
    throw new FerryError(
      'E_WRONG_VOLUME',
      `${path} holds ${which} of ${indexes.length} different bundles, builds or cuts: ${indexes.map((i) => `${describe(i.index)} in ${i.folders.join(', ')}`).join('; ')}`,
      {
        file: path,
        entry: PARTS_INDEX,
        hint: `remove the volumes of the ones not to use, or name the volume 1 folder of the one to use in place of ${path}: ${indexes.map((i) => i.folder).join(' or ')}`,
      },
    );
  }
  return indexes[0] as FoundIndex;
}

interface Part {
  number: number;
  name: string;
  volume: number;
  offset: number;
  size: number;
  sha256: string;
  /** Where it was last found; cleared when it cannot be opened there any more. */
  path: string | null;
  /** Hashing while reading it through in order; null once checked. */
  hash: Hash | null;
  hashed: number;
}

/** The codes the hash workers give a path that is no longer a regular file. */
const NOT_A_FILE: Record<string, string> = {
  EISDIR: 'a folder',
  EFIFO: 'a FIFO',
  ENOTREG: 'not a regular file',
};

/** What a path found where a part belongs is, when it is not a regular file. */
function notAFile(stats: Stats): string {
  if (stats.isDirectory()) return 'a folder';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** The codes a read gives once a part's volume is gone: its file or mount vanished, or its device. */
const GONE = new Set(['ENOENT', 'ENOTDIR', 'ENODEV', 'ENXIO', 'EIO', 'ESTALE']);

/** A bundle spread over the parts of one or more volumes. */
export class PartsSource implements BundleSource {
  readonly name: string;
  readonly size: number;
  private ordered = false;
  readonly index: PartsIndex;
  readonly indexFile: string;
  private readonly bytes: Buffer;
  private readonly signed: Pick<DecodedPartsIndex, 'envelope' | 'payload'>;
  private readonly parts: Part[];
  private readonly ask: AskForVolume | undefined;
  private current: { part: Part; handle: FileHandle } | null = null;
  private count = 0;
  /** The trust root the index was found signed under, once it was checked. */
  private trusted: TrustedRoot | undefined;

  private constructor(path: string, found: FoundIndex, ask: AskForVolume | undefined) {
    this.name = path;
    this.index = found.index;
    this.indexFile = join(found.folder, PARTS_INDEX);
    this.bytes = found.bytes;
    this.signed = { envelope: found.envelope, payload: found.payload };
    this.size = found.index.bundle.size;
    this.ask = ask;
    this.parts = found.index.parts.map((part, at) => ({
      ...part,
      number: at + 1,
      path: null,
      hash: createHash('sha256'),
      hashed: 0,
    }));
  }

  /**
   * Set when a volume is not attached (to be asked for, or not there at all):
   * readers then stream once, in order, reading only as far as they need, so
   * volume 1 alone is enough to plan even when part 1 carries a trust chain.
   */
  get sequential(): boolean {
    return this.ordered;
  }

  /** Reads and checks the parts index, then finds every part it can without asking. */
  static async open(path: string, options: MediaOptions = {}): Promise<PartsSource> {
    const found = await referenceIndex(path, options.trust);
    const source = new PartsSource(path, found, options.ask);
    const missing = await source.locateAll();
    source.ordered = missing.length > 0;
    return source;
  }

  /** Where each part is now, from a fresh look at the volumes; returns the errors of those not found. */
  private async locateAll(): Promise<FerryError[]> {
    const folders = await volumeFolders(this.name);
    const problems: FerryError[] = [];
    for (const part of this.parts) {
      const found = await this.locate(part, folders);
      if (typeof found !== 'string') problems.push(found);
    }
    return problems;
  }

  /** Looks for a part on the volumes: its path (also set on the part), or why it is not there. */
  private async locate(part: Part, folders: readonly string[]): Promise<string | FerryError> {
    let problem: FerryError | null = null;
    // A copy that cannot be the part is refused only when no volume holds a good one: a stale
    // copy left on another stick (a large one holding parts side by side) must not hide it.
    let damaged: FerryError | null = null;
    for (const folder of folders) {
      const file = join(folder, part.name);
      const stats = await stat(file).catch(() => null);
      if (!stats) continue;
      const foreign = await this.foreign(folder, part);
      if (foreign) {
        problem = foreign;
        continue;
      }
      // Our own volume, with something else where the part belongs: the volume is attached and
      // damaged, not missing (which would send the operator looking for a stick already there).
      if (!stats.isFile()) damaged ??= this.mismatch(part, file, `is ${notAFile(stats)}`);
      else if (stats.size !== part.size)
        damaged ??= this.mismatch(part, file, `is ${stats.size} bytes`);
      else {
        part.path = file;
        return file;
      }
    }
    part.path = null;
    if (damaged) throw damaged;
    if (problem) return problem;
    // Attached without its part: "not attached" would send the operator for a stick already there.
    const partless = await this.partlessFolder(folders);
    if (partless) return this.partless(partless);
    // A volume inserted for this one that holds no part of its name (volume 1 of another cut, say):
    // "not attached" would leave the operator sure the right disc is in. Other bundles' sticks
    // beside the one named are left alone: they may have nothing to do with this install.
    for (const folder of folders) {
      const theirs = await readIndexBytes(folder)
        .then((bytes) =>
          bytes.equals(this.bytes)
            ? null
            : decodePartsIndex(bytes, join(folder, PARTS_INDEX)).index,
        )
        // Beside the one named, a stick whose index cannot be read is no volume to blame.
        .catch((error: unknown) => {
          if (folder === this.name) throw error;
          return null;
        });
      if (theirs && (folder === this.name || theirs.bundle.id === this.index.bundle.id))
        return (await this.foreign(folder, part, false)) as FerryError;
    }
    return this.missing(part);
  }

  /**
   * The error for a volume whose index is not ours, or null when it is ours.
   * `holdsPart`: the volume has a file of the part's name, else it has none.
   */
  private async foreign(folder: string, part: Part, holdsPart = true): Promise<FerryError | null> {
    const bytes = await readIndexBytes(folder);
    if (bytes.equals(this.bytes)) return null;
    const file = join(folder, PARTS_INDEX);
    const theirs = decodePartsIndex(bytes, file).index;
    // The same build whatever the label says: the label is no more to be believed than the rest
    // of an index whose signature is not yet checked.
    const same =
      theirs.bundle.id === this.index.bundle.id &&
      theirs.bundle.metadataSha256 === this.index.bundle.metadataSha256;
    // The same bundle and build under another index: one altered or damaged on this volume is
    // refused as its signature (E_SIGNATURE / E_THRESHOLD, naming it), not taken for a wrong volume.
    if (same && this.trusted) decodePartsIndex(bytes, file, this.trusted);
    const expected = `volume ${part.volume} (${volumeLabel(this.index, part.volume)}) of ${describe(this.index)}, which holds part ${part.number} (${part.name})`;
    const message = holdsPart
      ? same
        ? `${folder}: this volume holds another cut of ${describe(this.index)} (another \`ferry media\` run), whose parts do not line up with these; it should hold part ${part.number}`
        : `${folder}: this volume belongs to ${describe(theirs)}, not to ${describe(this.index)}, whose part ${part.number} it should hold`
      : `${folder}: this is ${await ownVolume(theirs, folder)} of ${same ? `another cut (another \`ferry media\` run) of ${describe(theirs)}` : describe(theirs)}, not ${expected}`;
    return new FerryError('E_WRONG_VOLUME', message, {
      file,
      entry: part.name,
      volume: part.volume,
      hint: `attach volume ${part.volume} (${volumeLabel(this.index, part.volume)}) of ${this.index.bundle.id}; ${same ? 'volumes of different `ferry media` runs never mix, even of one build' : 'volumes of different builds never mix'}`,
    });
  }

  private missing(part: Part): FerryError {
    return new FerryError(
      'E_PART_MISSING',
      `${this.name}: part ${part.number} of ${this.parts.length} (${part.name}) is on volume ${part.volume} (${volumeLabel(this.index, part.volume)}), which is not attached`,
      {
        file: this.name,
        entry: part.name,
        volume: part.volume,
        // Where the operator was asked (and stopped), a terminal is no news: say which volume to insert.
        hint: this.ask
          ? `insert volume ${part.volume} (${volumeLabel(this.index, part.volume)}) when asked, or attach every volume of ${this.index.bundle.id} (mount each, or copy the volume folders side by side) and start again`
          : `attach every volume of ${this.index.bundle.id} (mount each, or copy the volume folders side by side), or run on a terminal to be asked for each in turn`,
      },
    );
  }

  /**
   * A part that fails while it is read: something else now (changed on its
   * volume, like a part of the wrong size), or gone with its volume.
   */
  private readError(part: Part, file: string, error: unknown): FerryError {
    const code = (error as { code?: string } | null)?.code ?? '';
    const what = NOT_A_FILE[code];
    if (what) return this.mismatch(part, file, `is now ${what}`, error);
    if (GONE.has(code)) return this.gone(part, file, code, error);
    return ioError(error, file, 'read');
  }

  /**
   * A part found when the volumes were opened that cannot be read any more:
   * the stick was pulled or the disc ejected (a vanished file or mount, or
   * EIO from a device that went away). Nothing is changed by a read, so the
   * operator only has to put it back; E_NOT_FOUND's "check the path" or
   * E_IO's "run ferry recover" would send them the wrong way.
   */
  private gone(part: Part, file: string, code: string, cause: unknown): FerryError {
    const label = volumeLabel(this.index, part.volume);
    return new FerryError(
      'E_PART_MISSING',
      `${file}: part ${part.number} of ${this.parts.length} (${part.name}) on volume ${part.volume} (${label}) cannot be read any more (${code}): the volume was removed or failed while the bundle was read`,
      {
        file,
        entry: part.name,
        volume: part.volume,
        hint: `put volume ${part.volume} (${label}) back where it was and run the same command again: nothing was changed; if it fails again, the volume is damaged: make it again with \`ferry media\``,
        cause,
      },
    );
  }

  private mismatch(part: Part, file: string, why: string, cause?: unknown): FerryError {
    return new FerryError(
      'E_PART_MISMATCH',
      `${file}: part ${part.number} on volume ${part.volume} (${volumeLabel(this.index, part.volume)}) ${why}; the signed parts index says ${part.size} bytes with sha256 ${part.sha256.slice(0, 16)}…`,
      {
        file,
        entry: part.name,
        volume: part.volume,
        hint: `volume ${part.volume} is damaged or was changed after it was written: make it again from the bundle with \`ferry media\``,
        ...(cause !== undefined ? { cause } : {}),
      },
    );
  }

  /**
   * Every part reachable now, or the error naming the first that is not.
   * With a way to ask the operator, volumes are asked for as they are needed
   * instead.
   */
  async assertComplete(): Promise<void> {
    if (this.ask) return;
    const [first] = await this.locateAll();
    if (first) throw first;
  }

  /** Finds a part, asking the operator for its volume until it is there or they give up. */
  private async find(part: Part): Promise<string> {
    let found = part.path ?? (await this.locate(part, await volumeFolders(this.name)));
    while (typeof found !== 'string') {
      const problem = found;
      if (!this.ask) throw problem;
      // The old volume may be ejected only once nothing on it is open.
      await this.release();
      await this.ask({
        volume: part.volume,
        volumes: this.index.volumes,
        label: volumeLabel(this.index, part.volume),
        bundle: this.index.bundle.id,
        problem,
      });
      found = await this.locate(part, await volumeFolders(this.name));
    }
    return found;
  }

  private async handleFor(part: Part): Promise<FileHandle> {
    if (this.current?.part === part) return this.current.handle;
    await this.release();
    for (let fresh = part.path === null; ; fresh = true) {
      const path = await this.find(part);
      // The volume seen when the part was found may have been swapped since.
      const foreign = await this.foreign(dirname(dirname(path)), part).catch(
        (error: unknown) => error as FerryError,
      );
      const handle = foreign ? null : await open(path, 'r').catch(() => null);
      const size = await handle?.stat().then(
        (stats) => stats.size,
        () => -1,
      );
      if (handle && size === part.size) {
        this.current = { part, handle };
        return handle;
      }
      await handle?.close();
      if (handle) throw this.mismatch(part, path, `is ${size} bytes`);
      if (fresh) throw foreign ?? ioError(new Error('it cannot be opened'), path, 'read');
      part.path = null;
    }
  }

  private async release(): Promise<void> {
    const current = this.current;
    this.current = null;
    await current?.handle.close();
  }

  /** The part holding byte `position`. */
  private partAt(position: number): Part {
    let low = 0;
    let high = this.parts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((this.parts[mid] as Part).offset <= position) low = mid;
      else high = mid - 1;
    }
    return this.parts[low] as Part;
  }

  /** Reads what it can of `length` bytes at `position` from the one part holding it; hashes the part along the way. */
  private async readSome(
    buffer: Buffer,
    at: number,
    length: number,
    position: number,
  ): Promise<number> {
    const part = this.partAt(position);
    const within = position - part.offset;
    const want = Math.min(length, part.size - within);
    const handle = await this.handleFor(part);
    let n: number;
    try {
      ({ bytesRead: n } = await handle.read(buffer, at, want, within));
    } catch (error) {
      throw this.readError(part, part.path ?? part.name, error);
    }
    if (n === 0) throw this.mismatch(part, part.path ?? part.name, `ends at byte ${within}`);
    this.count += n;
    if (part.hash && within === part.hashed) {
      part.hash.update(buffer.subarray(at, at + n));
      part.hashed += n;
      if (part.hashed === part.size) {
        const sha256 = part.hash.digest('hex');
        part.hash = null;
        if (sha256 !== part.sha256)
          throw this.mismatch(part, part.path ?? part.name, `has sha256 ${sha256.slice(0, 16)}…`);
      }
    }
    return n;
  }

  async read(buffer: Buffer, position: number): Promise<void> {
    const bad = outside(this, position, buffer.length);
    if (bad) throw bad;
    let done = 0;
    while (done < buffer.length)
      done += await this.readSome(buffer, done, buffer.length - done, position + done);
  }

  stream(offset: number, length: number, highWaterMark = 1 << 20): Readable {
    return rangeStream(
      this,
      { offset, length, highWaterMark },
      (buffer, want, position) => this.readSome(buffer, 0, want, position),
      (position) => corruptBundle(this.name, `ends at byte ${position}`),
    );
  }

  segments(offset: number, length: number): Segment[] {
    const bad = outside(this, offset, length);
    if (bad) throw bad;
    const segments: Segment[] = [];
    let position = offset;
    const end = offset + length;
    while (position < end) {
      const part = this.partAt(position);
      if (part.path === null) throw this.missing(part);
      const within = position - part.offset;
      const take = Math.min(end - position, part.size - within);
      segments.push({ path: part.path, offset: within, length: take });
      position += take;
    }
    return segments;
  }

  bytesRead(): number {
    return this.count;
  }

  countRead(bytes: number): void {
    this.count += bytes;
  }

  close(): Promise<void> {
    return this.release();
  }

  /** Whether part 1 (bundle.json and the trust chain) is on an attached volume. */
  get holdsMetadata(): boolean {
    return (this.parts[0]?.path ?? null) !== null;
  }

  /**
   * Checks the index's signature against a trust root known only once the
   * bundle's carried chain is walked (opened without `trust`): a rotated key
   * signed it, and no part past the chain is read before this.
   */
  checkSigned(root: TrustedRoot): void {
    const { envelope, payload } = this.signed;
    assertTrusted(checkSignatures(envelope, payload, root), this.indexFile, PARTS_INDEX);
    this.trusted = root;
  }

  /** Ties bundle.json, as read from part 1, to the index: the same build. */
  checkMetadata(metadataBytes: Buffer, format: string): void {
    const sha256 = createHash('sha256').update(metadataBytes).digest('hex');
    if (sha256 === this.index.bundle.metadataSha256 && format === this.index.bundle.format) return;
    // The index is the trusted side: part 1 was damaged or replaced.
    const first = this.parts[0] as Part;
    throw new FerryError(
      'E_PART_MISMATCH',
      `${first.path ?? first.name}: part 1 on volume 1 (${volumeLabel(this.index, 1)}) holds a ${format} bundle whose bundle.json has sha256 ${sha256.slice(0, 16)}…; the signed parts index names ${this.index.bundle.format} with ${this.index.bundle.metadataSha256.slice(0, 16)}…`,
      {
        file: first.path ?? this.name,
        entry: first.name,
        volume: 1,
        hint: 'volume 1 is damaged, or its part was replaced: make the volumes again with `ferry media`',
      },
    );
  }

  /**
   * Hashes every part that can be reached (on every core), in order; throws
   * for the first that differs from the index, or, with `all`, for the first
   * that is not there. Returns the parts checked.
   */
  async checkParts(all: boolean): Promise<Array<{ part: string; volume: number; path: string }>> {
    const problems = await this.locateAll();
    if (all && problems[0]) throw problems[0];
    const reachable = this.parts.filter((part) => part.path !== null);
    const results = await withHashPool((pool) =>
      Promise.all(
        reachable.map(async (part) =>
          // Followed as install follows it (stat and open do): the worker opens with O_NOFOLLOW, and
          // a part reached through a symlink is still hashed against the signed index.
          pool
            .run({
              source: await realpath(part.path as string).catch(() => part.path as string),
              size: part.size,
            })
            .then(
              (result) => ({ part, result }),
              (error: unknown) => ({ part, error }),
            ),
        ),
      ),
    );
    for (const outcome of results) {
      const { part } = outcome;
      const path = part.path as string;
      if ('error' in outcome) throw this.readError(part, path, outcome.error);
      this.count += outcome.result.bytes;
      if (outcome.result.bytes !== part.size)
        throw this.mismatch(part, path, `holds ${outcome.result.bytes} bytes`);
      if (outcome.result.sha256 !== part.sha256)
        throw this.mismatch(part, path, `has sha256 ${outcome.result.sha256.slice(0, 16)}…`);
      part.hash = null;
    }
    return reachable.map((part) => ({
      part: part.name,
      volume: part.volume,
      path: part.path as string,
    }));
  }

  /**
   * Throws E_PART_MISSING for a folder that holds this bundle's parts index
   * but none of its parts: a volume that is attached, whose part was deleted
   * or never copied onto it, not one still to attach.
   */
  async refusePartless(): Promise<void> {
    const folder = await this.partlessFolder(await volumeFolders(this.name));
    if (folder) throw this.partless(folder);
  }

  /** A folder among `folders` holding this bundle's parts index but none of its parts, if any. */
  private async partlessFolder(folders: readonly string[]): Promise<string | null> {
    for (const folder of folders) {
      if (!(await readIndexBytes(folder)).equals(this.bytes)) continue;
      let holds = false;
      for (const part of this.parts)
        if (
          await stat(join(folder, part.name)).then(
            () => true,
            () => false,
          )
        )
          holds = true;
      if (!holds) return folder;
    }
    return null;
  }

  private partless(folder: string): FerryError {
    const absent = this.parts.filter((part) => part.path === null).map((part) => part.volume);
    return new FerryError(
      'E_PART_MISSING',
      `${folder} holds the parts index of ${this.index.bundle.id} but none of its parts (FERRY/BUNDLE.00N): a volume whose part was deleted or never copied onto it${absent.length > 0 ? `; not found: volume ${absent.join(', ')}` : ''}`,
      {
        file: folder,
        entry: PARTS_INDEX,
        hint: 'copy the whole volume folder again from the `ferry media` output (its FERRY/BUNDLE.00N with it), or make the volumes again with `ferry media`',
      },
    );
  }

  /** Throws E_WRONG_VOLUME when a part's name is found only on a volume of another bundle or build. */
  async refuseForeign(): Promise<void> {
    const foreign = (await this.locateAll()).find((problem) => problem.code === 'E_WRONG_VOLUME');
    if (foreign) throw foreign;
  }

  /**
   * Reads every part once, whole and in order, checking each against the
   * index, while the entries (in order) are hashed, and copied when they have
   * a target, from the same bytes; then throws for the first part that
   * differs. Returns each entry's result, for the caller's verdict.
   */
  async readThrough(
    entries: readonly EntryToCopy[],
    onEntry?: (at: number) => void,
  ): Promise<ReadResult[]> {
    const located: PartToRead[] = this.parts.map((part) => {
      if (part.path === null) throw this.missing(part);
      return { path: part.path, offset: part.offset, size: part.size };
    });
    const result = await hashThrough(located, entries, onEntry).catch((error: unknown) => {
      const path = (error as { path?: string }).path ?? this.name;
      const part = this.parts.find((p) => p.path === path);
      throw part ? this.readError(part, path, error) : ioError(error, path, 'stage into');
    });
    for (const [at, read] of result.parts.entries()) {
      const part = this.parts[at] as Part;
      const path = part.path as string;
      this.count += read.bytes;
      if (read.bytes !== part.size) throw this.mismatch(part, path, `ends at byte ${read.bytes}`);
      if (read.sha256 !== part.sha256)
        throw this.mismatch(part, path, `has sha256 ${read.sha256.slice(0, 16)}…`);
      part.hash = null;
    }
    return result.entries;
  }

  /**
   * For an integrity failure while reading entries: the damaged part that
   * caused it, when one of those reachable is; otherwise the error itself.
   */
  async blame(error: unknown): Promise<unknown> {
    if (!isFerryError(error) || ERROR_CODES[error.code].exit !== 3) return error;
    // Every part already read whole and found intact: none of them is to blame.
    if (error.code === 'E_PART_MISMATCH' || this.parts.every((part) => part.hash === null))
      return error;
    try {
      await this.checkParts(false);
    } catch (part) {
      if (isFerryError(part) && part.code === 'E_PART_MISMATCH') {
        part.details.cause = error;
        return part;
      }
    }
    return error;
  }
}

/** The media a source reads, when it is media. */
export function mediaOf(source: BundleSource): PartsSource | null {
  return source instanceof PartsSource ? source : null;
}

export interface MediaCheck {
  bundle: string;
  volumes: number;
  /** The parts found and hashed, each against the signed index. */
  checked: Array<{ part: string; volume: number; path: string }>;
  /** Volumes not attached: nothing could be said of them. */
  missing: number[];
  /** Whether part 1 was there, so bundle.json was checked against the index and the trust root. */
  metadata: boolean;
}

/**
 * Checks every part on every volume that can be seen under `path` against
 * the signed parts index (and bundle.json, when volume 1 is there, against
 * the index and the trust root), reading the media and writing nothing.
 */
export async function verifyMedia(path: string, trust: TrustContext): Promise<MediaCheck> {
  // Opened without trust: a rotated key signed the index, known only from the chain part 1 carries.
  const source = await PartsSource.open(path);
  try {
    if (source.holdsMetadata) {
      const { openTrusted } = await import('./open.js');
      const opened = await openTrusted(path, trust);
      await opened.reader.close();
      // The signed bundle.json lays out every byte of a tar: an index (signed too, but by a run of
      // `ferry media`) whose bundle ends before that would pass every part's hash and fail the install.
      if (opened.reader.format === 'tar') {
        const { bundleLayout, TAR_END_BLOCKS } = await import('./layout.js');
        const needed =
          bundleLayout('tar', opened.metadata, opened.reader.metadataBytes.length).dataEnd +
          TAR_END_BLOCKS;
        if (source.size < needed)
          throw new FerryError(
            'E_MEDIA_INDEX_INVALID',
            `${source.indexFile}: the parts index makes the bundle ${source.size} bytes, but its bundle.json lays out ${needed}: parts are missing from the index`,
            {
              file: source.indexFile,
              entry: PARTS_INDEX,
              hint: 'the volumes were cut wrong or the index was re-signed: make the volumes again from the bundle with `ferry media`',
            },
          );
      }
      // The root the chain walked to signs this index too: other volumes' indexes are checked against it.
      source.checkSigned(opened.root);
    } else {
      source.checkSigned(trust.root);
    }
    const checked = await source.checkParts(false);
    // A volume of another bundle or build where one of ours belongs is attached, not missing:
    // install would refuse it (E_WRONG_VOLUME), so the check before the window does too.
    await source.refuseForeign();
    // Install stops with E_PART_MISSING for the part such a volume should hold: so does the check.
    if (source.index.parts.some((part) => !checked.some((c) => c.part === part.name)))
      await source.refusePartless();
    const seen = new Set(checked.map((c) => c.volume));
    const missing = source.index.parts.map((p) => p.volume).filter((v) => !seen.has(v));
    return {
      bundle: source.index.bundle.id,
      volumes: source.index.volumes,
      checked,
      missing,
      metadata: source.holdsMetadata,
    };
  } finally {
    await source.close();
  }
}

/** An integrity failure while reading a bundle, blamed on the damaged part when it comes from media. */
export function blamePart(source: BundleSource, error: unknown): Promise<unknown> {
  return source instanceof PartsSource ? source.blame(error) : Promise.resolve(error);
}
