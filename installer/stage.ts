import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, open, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BUNDLE_METADATA_ENTRY,
  expectedEntries,
  FerryError,
  ioError,
  withHashPool,
  type BundleMetadata,
  type ExpectedEntry,
  type PayloadEntry,
  type ReadResult,
} from '../manifest-schema/index.js';
import { mediaOf, type PartsSource } from '../bundle/media.js';
import { checkDigest, checkInOrder, EntryAudit, hashEntryAt } from '../bundle/audit.js';
import type { BundleReader, IndexedEntry } from '../bundle/reader.js';

/**
 * Staging: bundle entries are written under the transaction's staging folder
 * only after their name, type and size have been checked against the signed
 * metadata, and each file's sha256 is checked while it is written. A file
 * that fails is never used; the staging folder is removed with the
 * transaction.
 */

export interface StageContext {
  reader: BundleReader;
  metadata: BundleMetadata;
  /** The transaction's staging folder. */
  dir: string;
  onBytes?: (component: string, bytes: number) => void;
}

export function artifactsDir(stagingDir: string): string {
  return join(stagingDir, 'bundle');
}

export function payloadDir(stagingDir: string, component: string): string {
  return join(stagingDir, 'payload', component);
}

/** Extracts and checks every artifact and verification script (small; at the front of the archive). */
export async function stageArtifacts(context: StageContext): Promise<void> {
  const { reader, metadata, dir } = context;
  const expected = expectedEntries(metadata, reader.metadataBytes.length);
  const wanted = expected.filter(
    (entry) => entry.name.startsWith('artifacts/') || entry.name.startsWith('verify/'),
  );
  const wantedNames = new Set(wanted.map((entry) => entry.name));
  const audit = new EntryAudit(expected, reader.file);
  const seen = new Set<string>();
  await reader.visit(
    async (raw, data) => {
      const entry = audit.admit(raw);
      if (!wantedNames.has(entry.name)) {
        data.resume();
        return;
      }
      seen.add(entry.name);
      await writeVerified(data, join(artifactsDir(dir), entry.name), entry, reader.file, 0o755);
    },
    (name) => wantedNames.has(name),
    // stagePayload goes on from here to the end blocks before anything is switched.
    wanted.at(-1)?.name ?? BUNDLE_METADATA_ENTRY,
  );
  const missing = wanted.find((entry) => !seen.has(entry.name));
  if (missing) throw missingEntry(reader.file, missing.name);
}

/**
 * Extracts the payload of the given components: with zip only their entries
 * are read; with tar the archive is read once, other entries are checked
 * and skipped without being hashed.
 */
export async function stagePayload(
  context: StageContext,
  components: ReadonlySet<string>,
): Promise<void> {
  const { reader, metadata, dir } = context;
  const expected = expectedEntries(metadata, reader.metadataBytes.length);
  const wanted = expected.filter(
    (entry) =>
      entry.component !== undefined &&
      components.has(entry.component) &&
      entry.name.startsWith('payload/'),
  );
  const wantedNames = new Set(wanted.map((entry) => entry.name));
  const index = await reader.index();
  if (index && wanted.length === 0) return;
  if (index) {
    await stageFromIndex(context, index, expected, wanted, components);
    return;
  }
  const audit = new EntryAudit(expected, reader.file);
  const seen = new Set<string>();
  await reader.visit(
    async (raw, data) => {
      const entry = audit.admit(raw);
      if (!wantedNames.has(entry.name)) {
        data.resume();
        return;
      }
      seen.add(entry.name);
      const component = entry.component as string;
      const target = join(
        payloadDir(dir, component),
        entry.name.slice(`payload/${component}/`.length),
      );
      if (entry.type === 'dir') {
        data.resume();
        await mkdir(target, { recursive: true });
      } else if (entry.type === 'symlink') {
        data.resume();
        await mkdir(dirname(target), { recursive: true });
        await symlink(entry.target as string, target);
      } else {
        await writeVerified(data, target, entry, reader.file, entry.mode ?? 0o644, (n) =>
          context.onBytes?.(component, n),
        );
      }
    },
    (name) => wantedNames.has(name),
  );
  const missing = wanted.find((entry) => !seen.has(entry.name));
  if (missing) throw missingEntry(reader.file, missing.name);
  // A component's folder exists even when its payload is empty.
  for (const component of components) await mkdir(payloadDir(dir, component), { recursive: true });
}

function payloadTarget(dir: string, entry: ExpectedEntry): string {
  const component = entry.component as string;
  return join(payloadDir(dir, component), entry.name.slice(`payload/${component}/`.length));
}

/**
 * The fast path for a plain tar file: every header is checked first (read
 * without the data), then each wanted file is copied from its known offset
 * and hashed in the same read, on every core.
 */
async function stageFromIndex(
  context: StageContext,
  index: readonly IndexedEntry[],
  expected: readonly ExpectedEntry[],
  wanted: readonly ExpectedEntry[],
  components: ReadonlySet<string>,
): Promise<void> {
  const { reader, dir } = context;
  const audit = new EntryAudit(expected, reader.file);
  const found = new Map<string, IndexedEntry>();
  for (const raw of index) {
    audit.admit(raw);
    found.set(raw.name, raw);
  }
  const missing = wanted.find((entry) => !found.has(entry.name));
  if (missing) throw missingEntry(reader.file, missing.name);
  for (const component of components) await mkdir(payloadDir(dir, component), { recursive: true });
  for (const entry of wanted) {
    const target = payloadTarget(dir, entry);
    if (entry.type === 'dir') await mkdir(target, { recursive: true });
    else if (entry.type === 'symlink') {
      await mkdir(dirname(target), { recursive: true });
      await symlink(entry.target as string, target);
    }
  }
  const files = wanted.filter((entry) => entry.type === 'file');
  const media = mediaOf(reader.source);
  if (media) {
    await stageThroughParts(context, media, files, found);
    return;
  }
  await withHashPool((pool) =>
    checkInOrder(files, async (entry) => {
      const target = payloadTarget(dir, entry);
      const handle = await mkdir(dirname(target), { recursive: true })
        .then(() => open(target, 'wx', (entry.mode ?? 0o644) & 0o777))
        .catch((error: unknown) => {
          throw ioError(error, target, 'create');
        });
      try {
        const { offset } = found.get(entry.name) as IndexedEntry;
        await hashEntryAt(pool, reader.source, entry, offset, { fd: handle.fd, position: 0 });
      } finally {
        await handle.close();
      }
      context.onBytes?.(entry.component as string, entry.size);
    }),
  );
}

/**
 * From media, the one read of the payload also reads every part whole, so
 * each part is checked against the signed parts index: a part damaged where
 * no staged file lies (another component's payload) still stops the install,
 * naming its volume, before anything is switched.
 */
async function stageThroughParts(
  context: StageContext,
  media: PartsSource,
  files: readonly ExpectedEntry[],
  found: ReadonlyMap<string, IndexedEntry>,
): Promise<void> {
  const { reader, dir } = context;
  for (const entry of files) await mkdir(dirname(payloadTarget(dir, entry)), { recursive: true });
  const results = await media.readThrough(
    files.map((entry) => ({
      offset: (found.get(entry.name) as IndexedEntry).offset,
      size: entry.size,
      target: payloadTarget(dir, entry),
      mode: (entry.mode ?? 0o644) & 0o777,
    })),
    (at) => {
      const entry = files[at] as ExpectedEntry;
      context.onBytes?.(entry.component as string, entry.size);
    },
  );
  for (const [at, entry] of files.entries()) {
    const result = results[at] as ReadResult;
    checkDigest(reader.file, entry, result.bytes, result.sha256);
  }
}

/** Copies a payload kept outside the bundle (default location or url) into staging, checking every file. */
export async function stageExternal(
  metadata: BundleMetadata,
  component: string,
  dir: string,
  defaultLocation: string | undefined,
  onBytes?: (n: number) => void,
): Promise<void> {
  const payload = metadata.components[component]?.payload;
  const target = payloadDir(dir, component);
  await mkdir(target, { recursive: true });
  if (payload?.type === 'default') {
    const version = metadata.components[component]?.version as string;
    if (defaultLocation === undefined) {
      throw new FerryError(
        'E_NOT_FOUND',
        `${component}'s payload is kept at the default location, and this appliance has none configured`,
        {
          component,
          hint: 'set defaultPayloadLocation in /etc/ferry/appliance.yaml',
        },
      );
    }
    const source = join(defaultLocation, component, version);
    for (const file of payload.files) await copyExternal(file, source, target, component, onBytes);
  } else if (payload?.type === 'url') {
    const expected: ExpectedEntry = {
      name: payload.url,
      type: 'file',
      size: payload.size,
      sha256: payload.sha256,
      component,
    };
    const data = await openUrl(payload.url, component);
    await writeVerified(data, join(target, payload.saveAs), expected, payload.url, 0o644, onBytes);
  }
}

async function copyExternal(
  file: PayloadEntry,
  source: string,
  target: string,
  component: string,
  onBytes?: (n: number) => void,
): Promise<void> {
  const to = join(target, file.path);
  if (file.type === 'dir') {
    await mkdir(to, { recursive: true });
    return;
  }
  if (file.type === 'symlink') {
    await mkdir(dirname(to), { recursive: true });
    await symlink(file.target as string, to);
    return;
  }
  const from = join(source, file.path);
  const present = await lstat(from).then(
    (stats) => stats.isFile(),
    () => false,
  );
  if (!present) {
    throw new FerryError(
      'E_NOT_FOUND',
      `${component}: ${from} is missing from the default payload location`,
      {
        file: from,
        component,
        hint: 'attach the medium that holds the payloads, or copy them to the default location',
      },
    );
  }
  const expected: ExpectedEntry = {
    name: file.path,
    type: 'file',
    size: file.size ?? 0,
    ...(file.sha256 ? { sha256: file.sha256 } : {}),
    component,
  };
  await writeVerified(createReadStream(from), to, expected, from, file.mode, onBytes);
}

async function openUrl(url: string, component: string): Promise<Readable> {
  if (/^https?:\/\//.test(url)) {
    let response: Response;
    try {
      response = await fetch(url);
    } catch (cause) {
      throw new FerryError(
        'E_IO',
        `${component}: could not fetch ${url}: ${(cause as Error).message}`,
        { component, hint: 'check the network path to the mirror', cause },
      );
    }
    if (!response.ok || !response.body) {
      throw new FerryError('E_IO', `${component}: ${url} answered ${response.status}`, {
        component,
        hint: 'check the URL on the mirror',
      });
    }
    const { Readable } = await import('node:stream');
    return Readable.fromWeb(response.body as never);
  }
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  return createReadStream(path);
}

/**
 * Streams `data` into a new file (never through an existing one or a link),
 * hashing as it goes; a wrong size or hash removes nothing but the new file
 * and fails with the entry named.
 */
export async function writeVerified(
  data: Readable,
  path: string,
  expected: ExpectedEntry,
  file: string,
  mode: number,
  onBytes?: (n: number) => void,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const hash = createHash('sha256');
  let size = 0;
  const where = {
    file,
    entry: expected.name,
    ...(expected.component ? { component: expected.component } : {}),
  };
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > expected.size) {
        done(
          new FerryError(
            'E_SIZE_MISMATCH',
            `${file}: ${expected.name} is larger than the ${expected.size} bytes the metadata declares`,
            {
              ...where,
              hint: 'the bundle or payload was altered: get it again from its publisher',
            },
          ),
        );
        return;
      }
      hash.update(chunk);
      onBytes?.(chunk.length);
      done(null, chunk);
    },
  });
  try {
    await pipeline(
      data,
      counter,
      createWriteStream(path, {
        flags: 'wx',
        mode: mode & 0o777,
      }) /* O_EXCL: never through an existing file or link */,
    );
  } catch (error) {
    if (error instanceof FerryError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new FerryError('E_DUPLICATE_ENTRY', `${file}: ${expected.name} was written twice`, {
        ...where,
        hint: 'the bundle was crafted: do not use it',
      });
    }
    throw ioError(error, path, 'write');
  }
  checkDigest(file, expected, size, hash.digest('hex'));
}

function missingEntry(file: string, name: string): FerryError {
  return new FerryError(
    'E_MISSING_ENTRY',
    `${file}: ${name} is listed in the metadata but not in the archive`,
    {
      file,
      entry: name,
      hint: 'the bundle is incomplete: copy it again from its source',
    },
  );
}
