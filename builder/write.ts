import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import {
  FerryError,
  ioError,
  ownTempName,
  removeDeadTemps,
  syncDir,
  withHashPool,
  type BundleKind,
  type BundleMetadata,
  type HashResult,
  type Signer,
} from '../manifest-schema/index.js';
import { archiveEntries, layoutArchive, zipCrc, zipInlineData } from '../bundle/layout.js';
import { finishTar, finishZip, writeAt } from './archive.js';
import { readSize, type Source } from './collect.js';
import { withHashes } from './metadata.js';
import { signedMetadataSize, signMetadata } from './signing.js';

export type BundleFormat = 'tar' | 'tar.gz' | 'zip';

export function bundleFileName(
  product: string,
  release: string,
  kind: BundleKind,
  format: BundleFormat,
): string {
  return `${product}-${release}-${kind}.${format}`;
}

export interface WriteOptions {
  /** The metadata with placeholder hashes, as `bundleMetadata` makes it. */
  metadata: BundleMetadata;
  /** Every file whose sha256 the metadata awaits, by entry name: copied when the archive has the entry, else only hashed. */
  sources: ReadonlyMap<string, Source>;
  signers: readonly Signer[];
  format: BundleFormat;
  /** The bundle's final path; nothing is there until the whole bundle is. */
  path: string;
  /** Seconds since the epoch, for every entry. */
  mtime: number;
  forceZip64?: boolean;
  /** Bytes of the sources read so far, of the total; called as each file is done. */
  onProgress?: (bytes: number, total: number) => void;
  /** Called with every hash known, before anything is signed or put in place: a throw leaves no bundle. */
  check?: (metadata: BundleMetadata) => void;
}

export interface Written {
  /** The metadata as signed, every hash filled in. */
  metadata: BundleMetadata;
  sha256: string;
  size: number;
}

/**
 * Lays the archive out from the sizes alone, then reads each source once,
 * hashing and copying it into place on both cores; bundle.json, signed once
 * every hash is known, is written last into the room kept for it at the
 * front. Then gzip when asked, and the sha256 of the finished bundle.
 */
export async function writeBundle(options: WriteOptions): Promise<Written> {
  const out = dirname(options.path);
  const made = await mkdir(out, { recursive: true }).catch((error: unknown) => {
    throw ioError(error, out, 'create the output folder');
  });
  return writeInto(options, out).catch(async (error: unknown) => {
    await removeMadeFolders(out, made);
    throw error;
  });
}

/** The folders the build made for its bundle, each only while empty: a refused build leaves none behind. */
async function removeMadeFolders(out: string, made: string | undefined): Promise<void> {
  if (made === undefined) return;
  for (let folder = out; ; folder = dirname(folder)) {
    const removed = await rmdir(folder).then(
      () => true,
      () => false,
    );
    if (!removed || folder === made || dirname(folder) === folder) return;
  }
}

async function writeInto(options: WriteOptions, out: string): Promise<Written> {
  const { format, signers, path: bundlePath, sources, mtime } = options;
  // Signatures and hashes are fixed-length, so bundle.json's size is known before any hash is.
  const metadataSize = signedMetadataSize(options.metadata, signers);
  const entries = archiveEntries(options.metadata, metadataSize);
  const archiveFormat = format === 'zip' ? 'zip' : 'tar';
  const layout = layoutArchive(archiveFormat, entries, mtime, options.forceZip64);
  // Beside the bundle under names that say whose they are: a build killed outright (SIGKILL,
  // the OOM killer, a runner's timeout) leaves them, and the next build into the folder
  // removes those whose process is gone; a live build's are left alone.
  removeDeadTemps(out, 'partial');
  const partialPath = join(out, ownTempName(basename(bundlePath), 'partial'));
  const plainPath =
    format === 'tar.gz' ? join(out, ownTempName(basename(bundlePath), 'partial')) : partialPath;

  const total = [...sources.values()].reduce((sum, source) => sum + source.size, 0);
  let read = 0;
  const progress = (bytes: number) => options.onProgress?.((read += bytes), total);
  return withHashPool(async (pool) => {
    const handle = await open(plainPath, 'wx', 0o644).catch((error: unknown) => {
      throw ioError(error, plainPath, 'create');
    });
    try {
      const hashes = new Map<string, HashResult>();
      const jobs: Array<Promise<void>> = [];
      const placed = new Set<string>();
      for (const { entry, dataOffset } of layout.placed) {
        const source = sources.get(entry.name);
        if (entry.type !== 'file' || !source) continue;
        placed.add(entry.name);
        jobs.push(
          pool
            .run({
              source: source.path,
              size: source.size,
              fd: handle.fd,
              position: dataOffset,
              crc: archiveFormat === 'zip',
            })
            .then((result) => {
              checkUnchanged(source, result);
              hashes.set(entry.name, result);
              progress(result.bytes);
            }),
        );
      }
      // A source the archive has no entry for (a default-location payload) is hashed, not carried.
      for (const [name, source] of sources) {
        if (placed.has(name)) continue;
        jobs.push(
          pool.run({ source: source.path, size: source.size }).then((result) => {
            checkUnchanged(source, result);
            hashes.set(name, result);
            progress(result.bytes);
          }),
        );
      }
      await settleAll(jobs);
      const metadata = withHashes(options.metadata, hashes);
      options.check?.(metadata);

      const envelope = await signMetadata(metadata, signers);
      if (envelope.length !== metadataSize) {
        throw new FerryError(
          'E_INTERNAL',
          `bundle.json came out ${envelope.length} bytes, not the ${metadataSize} laid out`,
          {
            hint: 'this is a bug in Ferry: please report it with the spec',
          },
        );
      }
      const first = layout.placed[0];
      if (!first) throw new FerryError('E_INTERNAL', 'a bundle without bundle.json');
      await writeAt(handle, envelope, first.dataOffset);
      let total: number;
      if (archiveFormat === 'zip') {
        const crcs = new Map<string, number>([[first.entry.name, zipCrc(envelope)]]);
        for (const [name, result] of hashes) crcs.set(name, result.crc32);
        for (const { entry, dataOffset } of layout.placed) {
          const inline = zipInlineData(entry);
          if (inline === null) continue;
          await writeAt(handle, inline, dataOffset);
          crcs.set(entry.name, zipCrc(inline));
        }
        total = await finishZip(handle, layout, crcs);
      } else {
        total = await finishTar(handle, layout);
      }
      await handle.truncate(total);
      // No fsync: a bundle cut short by a crash fails its sha256 and verify, and the
      // flush of a multi-GiB file would double the build's time on a slow disk.
      await handle.close();
      if (format === 'tar.gz') await gzipFile(plainPath, partialPath);
      await rename(partialPath, bundlePath);
      await syncDir(out);
      const size = format === 'tar.gz' ? await readSize(bundlePath) : total;
      const digest = await pool.run({ source: bundlePath, size });
      return { metadata, sha256: digest.sha256, size };
    } catch (error) {
      await handle.close().catch(() => undefined);
      await rm(partialPath, { force: true });
      throw error;
    } finally {
      if (format === 'tar.gz') await rm(plainPath, { force: true });
    }
  });
}

function checkUnchanged(source: Source, result: HashResult): void {
  if (result.bytes !== source.size) {
    throw new FerryError(
      'E_SPEC_PATH',
      `${source.path} changed size while the bundle was built (${source.size} → ${result.bytes} bytes)`,
      {
        file: source.path,
        hint: 'build from a folder nothing else writes to',
      },
    );
  }
}

/** Waits for every job (so no worker still writes into a file being removed), then throws the first error. */
async function settleAll(jobs: ReadonlyArray<Promise<void>>): Promise<void> {
  const results = await Promise.allSettled(jobs);
  const failed = results.find(
    (result): result is PromiseRejectedResult => result.status === 'rejected',
  );
  if (failed) {
    const error = failed.reason as NodeJS.ErrnoException;
    if (error instanceof FerryError) throw error;
    throw ioError(error, error.path ?? 'a payload file', 'read');
  }
}

async function gzipFile(from: string, to: string): Promise<void> {
  try {
    await pipeline(
      createReadStream(from),
      createGzip({ level: 6 }),
      createWriteStream(to, { flush: true }),
    );
  } catch (error) {
    throw ioError(error, to, 'write');
  }
}
