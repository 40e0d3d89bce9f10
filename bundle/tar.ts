import { PassThrough, Transform } from 'node:stream';
import { Header, Parser, Pax, type ReadEntry } from 'tar';
import { FerryError, ioError } from '../manifest-schema/index.js';
import {
  checkMetadataEntry,
  type ArchiveReader,
  type IndexedEntry,
  type RawEntry,
} from './reader.js';
import { corruptBundle, type BundleSource } from './source.js';

/** Small reads while looking for bundle.json, so planning reads a few KiB of a large bundle. */
const METADATA_HIGH_WATER = 16 * 1024;
const VISIT_HIGH_WATER = 256 * 1024;
const MAX_EXTENDED_HEADER = 1024 * 1024;

/**
 * The one reading of a tar header (node-tar's parsed entry, or a header read
 * by `indexTar` with its PAX fields applied) as an entry: every reader must
 * see the same type, name and link target in the same bytes.
 */
function tarEntry(header: {
  type: string | undefined;
  path: string;
  size: number;
  linkpath: string | undefined;
}): RawEntry {
  const type =
    header.type === 'File' || header.type === 'OldFile'
      ? 'file'
      : header.type === 'Directory'
        ? 'dir'
        : header.type === 'SymbolicLink'
          ? 'symlink'
          : 'other';
  const name = type === 'dir' && header.path.endsWith('/') ? header.path.slice(0, -1) : header.path;
  return {
    name,
    type,
    size: header.size,
    ...(header.linkpath ? { target: header.linkpath } : {}),
  };
}

function entryOf(entry: ReadEntry): RawEntry {
  return tarEntry({
    type: entry.type,
    path: entry.path,
    size: entry.size ?? 0,
    linkpath: entry.linkpath,
  });
}

function tarError(error: unknown, file: string): FerryError {
  if (error instanceof FerryError) return error;
  const code = (error as { code?: string }).code;
  if (
    code === 'TAR_BAD_ARCHIVE' ||
    code === 'TAR_ENTRY_INVALID' ||
    code === 'TAR_ABORT' ||
    code === 'Z_DATA_ERROR' ||
    code === 'Z_BUF_ERROR'
  ) {
    return corruptBundle(file, (error as Error).message, { cause: error });
  }
  return ioError(error, file, 'read');
}

/** A tar or tar.gz read as a stream; a plain tar can also be indexed by its headers. */
export async function openTar(
  source: BundleSource,
  format: 'tar' | 'tar.gz',
): Promise<ArchiveReader> {
  const file = source.name;
  const metadataBytes = await new Promise<Buffer>((resolve, reject) => {
    const input = source.stream(0, source.size, METADATA_HIGH_WATER);
    const parser = new Parser({ strict: true });
    let settled = false;
    const finish = (error: FerryError | null, value?: Buffer): void => {
      if (settled) return;
      settled = true;
      input.unpipe(parser);
      input.destroy();
      if (error) reject(error);
      else resolve(value as Buffer);
    };
    parser.on('entry', (entry: ReadEntry) => {
      if (settled) {
        entry.resume();
        return;
      }
      try {
        checkMetadataEntry(file, entryOf(entry));
      } catch (error) {
        entry.resume();
        finish(error as FerryError);
        return;
      }
      const chunks: Buffer[] = [];
      entry.on('data', (chunk: Buffer) => chunks.push(chunk));
      entry.on('end', () => finish(null, Buffer.concat(chunks)));
    });
    parser.on('error', (error: unknown) => finish(tarError(error, file)));
    parser.on('end', () => {
      try {
        checkMetadataEntry(file, null);
      } catch (error) {
        finish(error as FerryError);
      }
    });
    input.on('error', (error) => finish(tarError(error, file)));
    input.pipe(parser);
  });

  return {
    metadataBytes,
    listing: () => null,
    index: async () => (format === 'tar' && !source.sequential ? indexTar(source) : null),
    visit: (visitor) =>
      new Promise<void>((resolve, reject) => {
        const input = source.stream(0, source.size, VISIT_HIGH_WATER);
        const parser = new Parser({ strict: true });
        // Visitors run while later entries stream in, but the source is held
        // once more than two are unfinished: memory stays bounded by a chunk
        // and the streams' buffers, whatever the archive holds.
        const running = new Set<Promise<void>>();
        let held: Array<() => void> = [];
        let failed = false;
        let stopAt: number | null = null;
        let counter = 0;
        const streams = new Map<PassThrough, number>();
        const jobs = new Map<Promise<void>, number>();
        const release = (): void => {
          if (running.size > 2) return;
          const waiting = held;
          held = [];
          for (const go of waiting) go();
        };
        const gate = new Transform({
          transform(chunk: Buffer, _encoding, done) {
            if (running.size > 2) held.push(() => done(null, chunk));
            else done(null, chunk);
          },
        });
        const fail = (error: unknown): void => {
          if (failed) return;
          failed = true;
          input.destroy();
          gate.destroy();
          reject(tarError(error, file));
        };
        parser.on('entry', (entry: ReadEntry) => {
          if (failed || stopAt !== null) {
            entry.resume();
            return;
          }
          const data = new PassThrough({ highWaterMark: 1 << 20 });
          entry.pipe(data);
          const index = counter++;
          streams.set(data, index);
          data.on('close', () => streams.delete(data));
          const job: Promise<void> = visitor(entryOf(entry), data)
            .then((verdict) => {
              if (verdict !== 'stop' || failed || stopAt !== null) return;
              stopAt = index;
              input.destroy();
              // Entries after this one will get no more data; those before it finish as they are.
              for (const [stream, at] of streams) if (at > index) stream.destroy();
              const before = [...jobs].filter(([, at]) => at < index).map(([other]) => other);
              void Promise.all(before).then(() => {
                if (!failed) resolve();
              });
            })
            .catch((error: unknown) => {
              if (stopAt === null || index <= stopAt) fail(error);
            })
            .finally(() => {
              running.delete(job);
              jobs.delete(job);
              release();
            });
          jobs.set(job, index);
          running.add(job);
        });
        parser.on('error', fail);
        input.on('error', fail);
        gate.on('error', fail);
        parser.on('end', () => {
          void Promise.all(running).then(() => {
            if (!failed && stopAt === null) resolve();
          });
        });
        input.pipe(gate).pipe(parser);
      }),
    close: () => Promise.resolve(),
  };
}

/** Reads a plain tar's headers (and PAX headers) only, skipping every entry's data. */
async function indexTar(source: BundleSource): Promise<IndexedEntry[]> {
  const { name: file, size } = source;
  const corrupt = (why: string): FerryError => corruptBundle(file, why);
  const entries: IndexedEntry[] = [];
  const block = Buffer.alloc(512);
  let position = 0;
  let extended: Record<string, unknown> = {};
  for (;;) {
    if (position + 512 > size) throw corrupt('ends without the end-of-archive blocks');
    await source.read(block, position);
    if (block.every((byte) => byte === 0)) break;
    const header = new Header(block);
    if (!header.cksumValid) throw corrupt(`the header at byte ${position} fails its checksum`);
    const isExtended = header.type === 'ExtendedHeader' || header.type === 'GlobalExtendedHeader';
    // A PAX size overrides the header's, as in every tar reader (it is how sizes past 8 GiB are written).
    const length =
      !isExtended && typeof extended.size === 'number' ? extended.size : (header.size ?? 0);
    const offset = position + 512;
    const next = offset + Math.ceil(length / 512) * 512;
    if (offset + length > size)
      throw corrupt(`${header.path ?? 'an entry'} runs past the end of the file`);
    if (isExtended) {
      if (length > MAX_EXTENDED_HEADER) throw corrupt(`an extended header of ${length} bytes`);
      const body = Buffer.alloc(length);
      await source.read(body, offset);
      if (header.type === 'ExtendedHeader') extended = { ...Pax.parse(body.toString('utf8'), {}) };
      position = next;
      continue;
    }
    const entry = tarEntry({
      type: header.type,
      path: typeof extended.path === 'string' ? extended.path : (header.path ?? ''),
      size: length,
      linkpath: typeof extended.linkpath === 'string' ? extended.linkpath : header.linkpath,
    });
    entries.push({ ...entry, offset });
    extended = {};
    position = next;
  }
  return entries;
}
