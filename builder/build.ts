import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import {
  artifactEntry,
  canonicalJson,
  dependencyOrder,
  envelopeBytes,
  expectedEntries,
  FerryError,
  FORMAT_VERSION,
  ioError,
  isCarried,
  keyIdOf,
  parsePrivateKey,
  PASSES,
  payloadEntry,
  payloadFiles,
  signEnvelope,
  syncDir,
  verifyEntry,
  withHashPool,
  writeFileAtomic,
  type ArtifactRef,
  type BundleKind,
  type BundleMetadata,
  type HashResult,
  type Pass,
  type PayloadEntry,
  type ReleaseRecord,
} from '../manifest-schema/index.js';
import {
  finishTar,
  finishZip,
  layoutArchive,
  zipCrc,
  zipInlineData,
  writeAt,
  type ArchiveEntry,
} from './archive.js';
import { composeBundle, type BundleDesign } from './compose.js';
import { readHistory, recordFileName } from './history.js';
import { scanPayload, type ScannedEntry } from './scan.js';
import { loadSpec, specPath, type LoadedSpec } from './spec.js';
import type { KeyObject } from 'node:crypto';

export type BundleFormat = 'tar' | 'tar.gz' | 'zip';

export interface BuildOptions {
  spec: string;
  out: string;
  keys: readonly string[];
  format?: BundleFormat;
  kind?: BundleKind;
  /** Seconds since the epoch for every timestamp (SOURCE_DATE_EPOCH); now when absent. */
  sourceDateEpoch?: string;
  /** Write zip64 records even for a small bundle (tests exercise them without 4 GiB). */
  forceZip64?: boolean;
}

export interface BuildResult {
  bundle: string;
  record: string;
  sha256: string;
  size: number;
  product: string;
  release: string;
  kind: BundleKind;
  format: BundleFormat;
  supportedFrom: string[];
  /** Components whose payload the bundle carries. */
  included: string[];
  changes: number;
  keyids: string[];
}

/** Where a file entry's bytes come from on the build machine. */
interface Source {
  path: string;
  size: number;
}

export function bundleFileName(
  product: string,
  release: string,
  kind: BundleKind,
  format: BundleFormat,
): string {
  return `${product}-${release}-${kind}.${format}`;
}

/** Spec in, signed bundle and release record out. */
export async function buildBundle(options: BuildOptions): Promise<BuildResult> {
  const format = options.format ?? 'tar';
  const loaded = await loadSpec(options.spec);
  const { spec } = loaded;
  const keys = await readSigningKeys(options.keys);
  const createdAt = creationTime(options.sourceDateEpoch);
  const mtime = Math.floor(Date.parse(createdAt) / 1000);
  const historyDir = spec.history === undefined ? undefined : resolve(loaded.dir, spec.history);
  const records = historyDir === undefined ? [] : await readHistory(historyDir, spec.product);
  const design = composeBundle(spec, records, {
    specFile: options.spec,
    ...(options.kind ? { kind: options.kind } : {}),
  });

  const sources = new Map<string, Source>();
  const artifactRefs = async (
    paths: readonly string[],
    field: string,
    entryOf: (file: string) => string,
    component?: string,
  ): Promise<ArtifactRef[]> => {
    const refs: ArtifactRef[] = [];
    for (const [index, path] of paths.entries()) {
      const absolute = await specPath(loaded, path, `${field}/${index}`, 'file', component);
      const name = entryOf(basename(absolute));
      const size = await readSize(absolute);
      sources.set(name, { path: absolute, size });
      refs.push({ path: name, size, sha256: PLACEHOLDER });
    }
    return refs;
  };

  const scanned = new Map<string, ScannedEntry[]>();
  const components: BundleMetadata['components'] = {};
  for (const [name, component] of Object.entries(spec.components)) {
    const at = `/components/${name}`;
    const artifacts = {} as Record<Pass, ArtifactRef[]>;
    for (const pass of PASSES) {
      artifacts[pass] = await artifactRefs(
        component.artifacts?.[pass] ?? [],
        `${at}/artifacts/${pass}`,
        (file) => artifactEntry(name, pass, file),
        name,
      );
    }
    const reference = component.payload;
    let folder: string | undefined;
    if (typeof reference === 'string')
      folder = await specPath(loaded, reference, `${at}/payload`, 'dir', name);
    else if ('location' in reference && reference.path !== undefined)
      folder = await specPath(loaded, reference.path, `${at}/payload/path`, 'dir', name);
    const decision = design.payload[name];
    let payload: BundleMetadata['components'][string]['payload'];
    if (decision === 'unchanged') {
      payload = { type: 'unchanged' };
    } else if (decision === 'url' && typeof reference === 'object' && 'url' in reference) {
      payload = {
        type: 'url',
        url: reference.url,
        sha256: reference.sha256,
        size: reference.size,
        saveAs: reference.saveAs,
      };
    } else if (folder !== undefined) {
      const entries = await scanPayload(folder, name);
      scanned.set(name, entries);
      const files = entries.map(toPayloadEntry);
      payload = { type: decision === 'default' ? 'default' : 'included', size: sum(files), files };
      for (const entry of entries)
        if (entry.type === 'file')
          sources.set(payloadEntry(name, entry.path), { path: entry.source, size: entry.size });
    } else {
      const files = design.knownFiles[name] ?? [];
      payload = { type: 'default', size: sum(files), files };
    }
    components[name] = {
      version: component.version,
      ...(component.owner !== undefined ? { owner: component.owner } : {}),
      requires: component.requires ?? {},
      ...(component.platform !== undefined ? { platform: component.platform } : {}),
      ...(component.timeoutSeconds !== undefined
        ? { timeoutSeconds: component.timeoutSeconds }
        : {}),
      artifacts,
      payload,
    };
  }
  const removed: BundleMetadata['removed'] = {};
  for (const name of design.removed) {
    const paths = spec.removed?.[name]?.artifacts?.remove ?? [];
    removed[name] = {
      artifacts: {
        remove: await artifactRefs(
          paths,
          `/removed/${name}/artifacts/remove`,
          (file) => artifactEntry(name, 'remove', file),
          name,
        ),
      },
    };
  }
  const verification = await artifactRefs(spec.verification ?? [], '/verification', verifyEntry);

  const metadata: BundleMetadata = {
    formatVersion: FORMAT_VERSION,
    kind: design.kind,
    product: spec.product,
    release: { version: spec.release, createdAt, notes: spec.notes ?? '' },
    platform: spec.platform,
    target: Object.fromEntries(
      Object.entries(spec.components).map(([name, c]) => [name, c.version]),
    ),
    supportedFrom: design.supportedFrom,
    changes: design.changes,
    components,
    removed,
    verification,
  };

  // Signatures and hashes are fixed-length, so bundle.json's size is known before any hash is.
  const metadataSize = envelopeBytes(
    signEnvelope(Buffer.from(canonicalJson(metadata)), keys),
  ).length;
  const expected = expectedEntries(metadata, metadataSize);
  const archiveEntries: ArchiveEntry[] = expected.map((entry) => ({
    name: entry.name,
    type: entry.type,
    size: entry.size,
    mode: entry.type === 'dir' ? 0o755 : entry.type === 'symlink' ? 0o777 : (entry.mode ?? 0o644),
    ...(entry.target !== undefined ? { target: entry.target } : {}),
  }));
  // bundle.json is the one entry not read from disk
  const bundleJsonEntry = archiveEntries[0] as ArchiveEntry;
  bundleJsonEntry.mode = 0o644;

  await mkdir(options.out, { recursive: true }).catch((error: unknown) => {
    throw ioError(error, options.out, 'create the output folder');
  });
  const bundlePath = resolve(
    options.out,
    bundleFileName(spec.product, spec.release, design.kind, format),
  );
  const archiveFormat = format === 'zip' ? 'zip' : 'tar';
  const layout = layoutArchive(archiveFormat, archiveEntries, mtime, options.forceZip64);
  const plainPath = format === 'tar.gz' ? `${bundlePath}.tar.partial` : `${bundlePath}.partial`;

  const { sha256, size } = await withHashPool(async (pool) => {
    const handle = await open(plainPath, 'w', 0o644).catch((error: unknown) => {
      throw ioError(error, plainPath, 'create');
    });
    try {
      const hashes = new Map<string, HashResult>();
      const jobs: Array<Promise<void>> = [];
      for (const { entry, dataOffset } of layout.placed) {
        const source = sources.get(entry.name);
        if (entry.type !== 'file' || !source) continue;
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
            }),
        );
      }
      // Default-location payloads with a path are hashed, not carried.
      for (const [name, entries] of scanned) {
        if (metadata.components[name]?.payload.type !== 'default') continue;
        for (const entry of entries.filter((e) => e.type === 'file')) {
          const source = { path: entry.source, size: entry.size };
          jobs.push(
            pool.run({ source: source.path, size: source.size }).then((result) => {
              checkUnchanged(source, result);
              hashes.set(payloadEntry(name, entry.path), result);
            }),
          );
        }
      }
      await settleAll(jobs);
      fillHashes(metadata, hashes);

      const envelope = envelopeBytes(signEnvelope(Buffer.from(canonicalJson(metadata)), keys));
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
        const crcs = new Map<string, number>([[bundleJsonEntry.name, zipCrc(envelope)]]);
        for (const [name, result] of hashes) crcs.set(name, result.crc32);
        for (const { entry, dataOffset } of layout.placed) {
          const inline = zipInlineData(entry);
          if (inline === null) continue;
          await writeAt(handle, inline, dataOffset);
          crcs.set(entry.name, zipCrc(inline));
        }
        total = await finishZip(handle, layout, crcs, mtime, options.forceZip64);
      } else {
        total = await finishTar(handle, layout, mtime);
      }
      await handle.truncate(total);
      // No fsync: a bundle cut short by a crash fails its sha256 and verify, and the
      // flush of a multi-GiB file would double the build's time on a slow disk.
      await handle.close();
      if (format === 'tar.gz') await gzipFile(plainPath, `${bundlePath}.partial`);
      await rename(`${bundlePath}.partial`, bundlePath);
      await syncDir(options.out);
      const bundleSize = format === 'tar.gz' ? await readSize(bundlePath) : total;
      const digest = await pool.run({ source: bundlePath, size: bundleSize });
      return { sha256: digest.sha256, size: bundleSize };
    } catch (error) {
      await handle.close().catch(() => undefined);
      await rm(`${bundlePath}.partial`, { force: true });
      throw error;
    } finally {
      if (format === 'tar.gz') await rm(plainPath, { force: true });
    }
  });

  const recordDir = historyDir ?? resolve(options.out);
  const recordPath = join(recordDir, recordFileName(spec.product, spec.release));
  if (!design.rebuildOf) {
    // The history is append-only: a rebuild leaves the first record as it is.
    await mkdir(recordDir, { recursive: true });
    await writeFileAtomic(
      recordPath,
      `${JSON.stringify(releaseRecord(metadata, design, spec.components), null, 2)}\n`,
    );
  }

  return {
    bundle: bundlePath,
    record: recordPath,
    sha256,
    size,
    product: spec.product,
    release: spec.release,
    kind: design.kind,
    format,
    supportedFrom: design.supportedFrom.map((release) => release.version),
    included: dependencyOrder(metadata).filter((name) => {
      const payload = metadata.components[name]?.payload;
      return payload !== undefined && isCarried(payload);
    }),
    changes: metadata.changes.length,
    keyids: keys.map((key) => keyIdOf(key)).sort(),
  };
}

const PLACEHOLDER = '0'.repeat(64);

function toPayloadEntry(entry: ScannedEntry): PayloadEntry {
  if (entry.type === 'file')
    return {
      path: entry.path,
      type: 'file',
      mode: entry.mode,
      size: entry.size,
      sha256: PLACEHOLDER,
    };
  if (entry.type === 'symlink')
    return { path: entry.path, type: 'symlink', mode: entry.mode, target: entry.target ?? '' };
  return { path: entry.path, type: 'dir', mode: entry.mode };
}

function sum(files: readonly PayloadEntry[]): number {
  return files.reduce((total, file) => total + (file.size ?? 0), 0);
}

function fillHashes(metadata: BundleMetadata, hashes: ReadonlyMap<string, HashResult>): void {
  const hashOf = (name: string): string => {
    const result = hashes.get(name);
    if (!result) throw new FerryError('E_INTERNAL', `no hash was computed for ${name}`);
    return result.sha256;
  };
  const fillRefs = (refs: ArtifactRef[]): void => {
    for (const ref of refs) ref.sha256 = hashOf(ref.path);
  };
  for (const [name, component] of Object.entries(metadata.components)) {
    for (const pass of PASSES) fillRefs(component.artifacts[pass]);
    const payload = component.payload;
    if (
      (payload.type === 'included' || payload.type === 'default') &&
      payload.files.some((f) => f.sha256 === PLACEHOLDER)
    ) {
      for (const file of payload.files)
        if (file.type === 'file') file.sha256 = hashOf(payloadEntry(name, file.path));
    }
  }
  for (const removed of Object.values(metadata.removed)) fillRefs(removed.artifacts.remove);
  fillRefs(metadata.verification);
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

function releaseRecord(
  metadata: BundleMetadata,
  design: BundleDesign,
  specComponents: LoadedSpec['spec']['components'],
): ReleaseRecord {
  const components: ReleaseRecord['components'] = {};
  for (const [name, component] of Object.entries(metadata.components)) {
    const files = payloadFiles(component.payload) ?? design.knownFiles[name];
    components[name] = {
      version: component.version,
      requires: component.requires,
      ...(files ? { files } : {}),
    };
  }
  // The record keeps every change its components' versions introduced, not only the cumulative slice.
  const own = Object.entries(specComponents).flatMap(([name, component]) =>
    (component.changes ?? []).map((change) => {
      const earlier = design.history
        .flatMap((record) => record.changes)
        .find((c) => c.component === name && c.id === change.id);
      return earlier ?? { ...change, component: name, version: component.version };
    }),
  );
  return {
    formatVersion: FORMAT_VERSION,
    product: metadata.product,
    release: metadata.release,
    platform: metadata.platform,
    components,
    changes: own,
  };
}

async function readSigningKeys(files: readonly string[]): Promise<KeyObject[]> {
  if (files.length === 0) {
    throw new FerryError('E_USAGE', 'a bundle needs at least one signing key', {
      hint: 'pass --key KEY (repeat it for several keys)',
    });
  }
  const keys: KeyObject[] = [];
  const ids = new Set<string>();
  for (const file of files) {
    let pem: string;
    try {
      pem = await readFile(file, 'utf8');
    } catch (error) {
      throw ioError(error, file, 'read');
    }
    const key = parsePrivateKey(pem, file);
    const id = keyIdOf(key);
    if (ids.has(id))
      throw new FerryError('E_USAGE', `${file} is the same key as an earlier --key`, {
        file,
        hint: 'pass each key once',
      });
    ids.add(id);
    keys.push(key);
  }
  return keys;
}

function creationTime(sourceDateEpoch: string | undefined): string {
  if (sourceDateEpoch === undefined || sourceDateEpoch === '')
    return new Date(Math.floor(Date.now() / 1000) * 1000).toISOString();
  if (!/^\d{1,12}$/.test(sourceDateEpoch)) {
    throw new FerryError(
      'E_USAGE',
      `SOURCE_DATE_EPOCH "${sourceDateEpoch}" is not a number of seconds`,
      {
        hint: 'set it to the commit time, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)',
      },
    );
  }
  return new Date(Number(sourceDateEpoch) * 1000).toISOString();
}

async function readSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch (error) {
    throw ioError(error, file, 'read');
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
