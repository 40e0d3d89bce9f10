import { createHash, randomBytes } from 'node:crypto';
import {
  link,
  lstat,
  mkdir,
  open,
  readdir,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { constants } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { readRegularBytes, syncDir, writeFileAtomic } from '../manifest-schema/atomic.js';
import { secondsFromEnv } from '../manifest-schema/durations.js';
import { FerryError, ioError } from '../manifest-schema/errors.js';
import { withHashPool } from '../manifest-schema/hashing.js';
import { parseImageManifest, type BuiltManifest, type Descriptor } from './oci/artifact.js';
import { isTag } from './oci/reference.js';
import { conflict, type Lock, type Progress, type RefManifest, type Store } from './store.js';

const INDEX = 'application/vnd.oci.image.index.v1+json';
const REF_NAME = 'org.opencontainers.image.ref.name';

/**
 * A repository in a directory (local disk or NFS) that is also an OCI image
 * layout: `oci-layout`, `index.json` (every tag, as `ref.name`) and
 * `blobs/sha256/`, so `skopeo copy oci:DIR:1.2.0 docker://…` carries a
 * version to a registry unchanged. Tags live as small descriptor files under
 * `ferry/` (versions/, channels/, approvals/, audit/); index.json is
 * rewritten from them. Nothing is ever appended to: new files are made
 * beside their place and hard-linked in (which fails if the name exists,
 * atomically, on NFS too), pointers are replaced by rename, and one writer
 * at a time holds `ferry/lock` (a directory: mkdir is atomic everywhere).
 */
export class DirectoryStore implements Store {
  readonly name: string;
  readonly #dir: string;
  #fresh = false;

  /** See lock(); read when the repository is opened, so a bad value stops a command before it writes. */
  readonly #lockStaleSeconds = secondsFromEnv(process.env, 'FERRY_LOCK_STALE_SECONDS', 30);
  readonly #lockWaitSeconds = secondsFromEnv(process.env, 'FERRY_LOCK_WAIT_SECONDS', 10, {
    orZero: true,
  });

  private constructor(dir: string) {
    this.#dir = dir;
    this.name = dir;
  }

  /** Opens a directory repository; `create` makes the layout when the folder holds none. */
  static async open(dir: string, create: boolean): Promise<DirectoryStore> {
    const store = new DirectoryStore(dir);
    // Looked at, not read: a FIFO put in its place would block a read for ever.
    const layout = await lstat(join(dir, 'oci-layout')).catch(() => undefined);
    if (layout === undefined) {
      if (!create) {
        throw new FerryError('E_REPO_NOT_FOUND', `${dir} is not a bundle repository`, {
          file: dir,
          hint: 'check the path; the first `ferry publish BUNDLE --repo DIR --trust FILE` creates one',
        });
      }
      // Made at the first write: a publish refused before it writes leaves no folder behind.
      store.#fresh = true;
    }
    // Every write goes into these folders: one replaced by a symbolic link (to /etc/cron.d,
    // say) would make whoever writes to the repository write outside it.
    for (const sub of FOLDER_PATHS) {
      const path = join(dir, sub);
      const info = await lstat(path).catch(() => undefined);
      if (info && (info.isSymbolicLink() || !info.isDirectory()))
        throw new FerryError(
          'E_REPO_INVALID',
          `${dir}: ${path} is ${info.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}`,
          {
            file: path,
            hint: 'a folder of the repository was replaced: Ferry reads and writes only inside the repository; restore it from a backup',
          },
        );
    }
    return store;
  }

  async #ensure(): Promise<void> {
    if (!this.#fresh) return;
    for (const sub of ['blobs/sha256', 'ferry'])
      await mkdir(join(this.#dir, sub), { recursive: true }).catch((error: unknown) => {
        throw ioError(error, join(this.#dir, sub), 'create');
      });
    await writeFileAtomic(join(this.#dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await this.writeIndex();
    this.#fresh = false;
  }

  async lock(actor: string, onWait?: (holder: string) => void): Promise<Lock> {
    await this.#ensure();
    // Every write rewrites index.json: one that is no index stops it before it writes a thing.
    await this.foreignEntries(new Set());
    const path = join(this.#dir, 'ferry', 'lock');
    const staleMs = this.#lockStaleSeconds * 1000;
    const deadline = Date.now() + this.#lockWaitSeconds * 1000;
    let broke: Lock['broke'];
    for (;;) {
      try {
        await mkdir(path);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
          throw ioError(error, path, 'create');
      }
      const since = await lastBeat(path);
      if (since !== undefined && Date.now() - since > staleMs) {
        // Its holder stopped beating. Renaming it away is atomic: of two breakers, one wins.
        const owner = await ownerOf(path).then(
          (text) => JSON.parse(text) as unknown,
          () => 'unknown',
        );
        const aside = `${path}.broken-${randomBytes(4).toString('hex')}`;
        if (
          await rename(path, aside).then(
            () => true,
            () => false,
          )
        ) {
          await rm(aside, { recursive: true, force: true });
          broke = { owner };
        }
        continue;
      }
      if (onWait) {
        onWait(await ownerOf(path).catch(() => 'unknown'));
        onWait = undefined;
      }
      if (Date.now() > deadline) {
        const owner = await ownerOf(path).catch(() => 'unknown');
        throw new FerryError(
          'E_REPO_LOCKED',
          `${this.name} is locked by another writer: ${owner}`,
          {
            file: path,
            hint: `wait for it to finish; a lock whose holder stops beating for ${staleMs / 1000} s is taken over`,
          },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 100));
    }
    // The token tells this holder's lock from the one another writer made after breaking it.
    const token = randomBytes(8).toString('hex');
    await writeFile(
      join(path, 'owner.json'),
      JSON.stringify({
        actor,
        pid: process.pid,
        host: hostname(),
        since: new Date().toISOString(),
        token,
      }),
    ).catch(async (error: unknown) => {
      // A full disk: the lock must not stay behind to hold off every writer for the stale time.
      await rm(path, { recursive: true, force: true });
      throw ioError(error, join(path, 'owner.json'), 'write');
    });
    // Both the folder (what a waiter of an earlier Ferry looks at) and owner.json (see lastBeat).
    const beat = setInterval(
      () => {
        const now = new Date();
        void utimes(path, now, now).catch(() => undefined);
        void utimes(join(path, 'owner.json'), now, now).catch(() => undefined);
      },
      Math.max(200, staleMs / 4),
    );
    beat.unref();
    return {
      ...(broke ? { broke } : {}),
      release: async () => {
        clearInterval(beat);
        // A holder that stalled past the stale time (a stopped VM, an NFS server that hung)
        // had its lock taken over: what is there now is the next writer's, and removing it
        // would let a third writer in beside that one. Only our own lock is removed.
        const held = await ownerOf(path).then(
          (text) => (JSON.parse(text) as { token?: unknown }).token,
          () => undefined,
        );
        if (held !== token) return;
        const aside = `${path}.released-${token}`;
        if (
          await rename(path, aside).then(
            () => true,
            () => false,
          )
        )
          await rm(aside, { recursive: true, force: true });
      },
    };
  }

  async hasBlob(digest: string): Promise<boolean> {
    return stat(this.blob(digest)).then(
      () => true,
      () => false,
    );
  }

  async putBlob(
    source: string | Buffer,
    digest: string | undefined,
    size: number,
    { onProgress }: { onProgress?: Progress } = {},
  ): Promise<string> {
    await this.#ensure();
    if (digest !== undefined && (await this.hasBlob(digest))) return digest;
    const folder = join(this.#dir, 'blobs', 'sha256');
    if (typeof source === 'string') await sweepParts(folder);
    const copy = await copyHashed(source, folder, size, onProgress);
    try {
      if (digest !== undefined && copy.digest !== digest)
        throw changed(source, digest, copy.digest);
      if (copy.bytes !== size) throw changedSize(source, size);
      // A blob already there has these very bytes: replacing it changes nothing.
      await rename(copy.temp, this.blob(copy.digest)).catch((error: unknown) => {
        throw ioError(error, this.blob(copy.digest), 'write');
      });
      await syncDir(folder);
    } catch (error) {
      await rm(copy.temp, { force: true });
      throw error;
    }
    return copy.digest;
  }

  async readBlob(digest: string, size: number): Promise<Buffer> {
    const path = this.blob(digest);
    if (size > SMALL_MAX)
      throw new FerryError(
        'E_REPO_INVALID',
        `${this.name}: a record gives blob ${digest} ${size} bytes, more than any manifest or document`,
        { reference: digest, hint: 'the repository was edited by hand or damaged' },
      );
    // Never more than the record says: a blob swapped for a FIFO, /dev/zero or a huge file
    // must not hang the reader or fill its memory.
    const bytes = await readRegular(path, size).catch((error: unknown) => {
      throw missingBlob(error, this.name, digest);
    });
    const got = sha256(bytes);
    if (got !== digest || bytes.length !== size) throw damaged(this.name, digest, got);
    return bytes;
  }

  async pullBlob(
    digest: string,
    size: number,
    toPath: string,
    onProgress?: Progress,
  ): Promise<void> {
    // Named after toPath, as the registry's download is: a pull interrupted by a signal finds it by that name.
    const copy = await copyHashed(
      this.blob(digest),
      dirname(toPath),
      size,
      onProgress,
      `.${basename(toPath)}`,
    ).catch((error: unknown) => {
      throw missingBlob(error, this.name, digest);
    });
    try {
      if (copy.digest !== digest || copy.bytes !== size)
        throw damaged(this.name, digest, copy.digest);
      await rename(copy.temp, toPath);
      await syncDir(dirname(toPath));
    } catch (error) {
      await rm(copy.temp, { force: true });
      throw error;
    }
  }

  async readRef(tag: string): Promise<RefManifest | undefined> {
    const descriptor = await this.descriptor(tag);
    if (!descriptor) return undefined;
    return {
      digest: descriptor.digest,
      bytes: await this.readBlob(descriptor.digest, descriptor.size),
    };
  }

  async createRef(
    tag: string,
    manifest: BuiltManifest,
    beforePut?: () => Promise<unknown>,
  ): Promise<void> {
    await this.#ensure();
    await beforePut?.();
    await this.storeManifest(manifest);
    const path = this.refPath(tag);
    await mkdir(dirname(path), { recursive: true }).catch((error: unknown) => {
      throw ioError(error, dirname(path), 'create');
    });
    const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      // In the try: a disk that fills mid-write leaves no temp file behind.
      await writeFile(temp, descriptorText(manifest), { flush: true }).catch((error: unknown) => {
        throw ioError(error, path, 'write');
      });
      await link(temp, path);
    } catch (error) {
      if (error instanceof FerryError) throw error;
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(error, path, 'create');
      const held = await this.descriptor(tag);
      if (held?.digest !== manifest.digest)
        throw conflict(this, tag, `already points at ${held?.digest}`);
    } finally {
      await rm(temp, { force: true });
    }
    await syncDir(dirname(path));
    await this.writeIndex();
  }

  async replaceRef(
    tag: string,
    manifest: BuiltManifest,
    expected: string | undefined,
  ): Promise<void> {
    const held = await this.descriptor(tag);
    if (held?.digest !== expected)
      throw conflict(this, tag, `moved to ${held?.digest ?? 'nothing'}`);
    await this.storeManifest(manifest);
    const path = this.refPath(tag);
    await mkdir(dirname(path), { recursive: true }).catch((error: unknown) => {
      throw ioError(error, dirname(path), 'create');
    });
    await writeFileAtomic(path, descriptorText(manifest));
    await this.writeIndex();
  }

  async listRefs(): Promise<string[]> {
    const tags: string[] = [];
    for (const [folder, prefix] of FOLDERS) {
      const names = await readdir(join(this.#dir, 'ferry', folder)).catch(() => [] as string[]);
      for (const name of names) {
        const tag = `${prefix}${name.slice(0, -'.json'.length)}`;
        // Temp files (.tmp) and names no tag could have are not tags of the repository.
        if (name.endsWith('.json') && isTag(tag)) tags.push(tag);
      }
    }
    for (const single of SINGLE_DOCUMENTS)
      if (
        await stat(join(this.#dir, 'ferry', `${single}.json`)).then(
          () => true,
          () => false,
        )
      )
        tags.push(`ferry.${single}`);
    return tags.sort();
  }

  async deleteRef(...tags: string[]): Promise<void> {
    // Only the dropped manifest's own blobs may go. Sweeping every blob no tag names
    // would also remove the channels' and the policy's earlier documents (each channel
    // document names the one before it: they are never removed) and a bundle that a
    // publish waiting for the lock has stored but not yet named.
    const dropped = new Set<string>();
    for (const tag of tags) {
      const held = await this.readRef(tag).catch(() => undefined);
      if (!held) continue;
      dropped.add(held.digest);
      const parsed = parseImageManifest(held.bytes);
      if (parsed.ok)
        for (const blob of [parsed.value.config, ...parsed.value.layers]) dropped.add(blob.digest);
    }
    // index.json first: killed between the two, the tag file is still there and the next
    // write lists it again; the other way round its entry would stay, taken for another
    // tool's image (whose blobs are never swept).
    await this.writeIndex(tags);
    for (const tag of tags) await rm(this.refPath(tag), { force: true });
    // Of those, the blobs no remaining manifest names go.
    const keep = await this.namedBlobs();
    for (const digest of dropped)
      if (!keep.has(digest)) await rm(this.blob(digest), { force: true });
  }

  /**
   * Every manifest a tag points at, and the blobs those manifests name; and those of
   * the images other tools put in the layout (`skopeo copy … oci:REPO:tools`), which
   * index.json lists: a folder repository is an OCI image layout, and what another
   * tool stored there is not Ferry's to sweep.
   */
  private async namedBlobs(): Promise<Set<string>> {
    const named = new Set<string>();
    for (const tag of await this.listRefs()) {
      const found = await this.readRef(tag);
      if (!found) continue;
      named.add(found.digest);
      const parsed = parseImageManifest(found.bytes);
      if (!parsed.ok) continue;
      named.add(parsed.value.config.digest);
      for (const layer of parsed.value.layers) named.add(layer.digest);
    }
    for (const entry of await this.foreignEntries(new Set(await this.listRefs())))
      await this.nameForeign(entry, named, 0);
    return named;
  }

  /**
   * The entries of index.json that are not Ferry's tags: images other tools copied into
   * the layout. None when there is no index.json. One that cannot be read as an index is
   * refused: rewritten from Ferry's tags alone, it would lose the other tools' entries for
   * good, and gc would then sweep their layers.
   */
  private async foreignEntries(ours: ReadonlySet<string>): Promise<ForeignEntry[]> {
    const path = join(this.#dir, 'index.json');
    const found = await lstat(path).catch(() => undefined);
    if (found?.isFile() && found.size > INDEX_MAX)
      throw new FerryError(
        'E_REPO_INVALID',
        `${path} is over ${INDEX_MAX} bytes, more than Ferry reads: about 250,000 tags`,
        {
          file: path,
          hint: 'a repository this large is past what one folder serves well: move its versions to a registry (skopeo copy), or start a new repository',
        },
      );
    let bytes: Buffer;
    try {
      bytes = await readRegular(path, INDEX_MAX);
    } catch (error) {
      if ((error as FerryError).code === 'E_NOT_FOUND') return [];
      throw error;
    }
    let manifests: unknown;
    try {
      manifests = (JSON.parse(bytes.toString('utf8')) as { manifests?: unknown } | null)?.manifests;
    } catch {
      // reported below
    }
    if (!Array.isArray(manifests))
      throw new FerryError('E_REPO_INVALID', `${path} is not an OCI image index`, {
        file: path,
        hint: 'it was damaged or edited by hand: restore it from a backup (it lists the images other tools copied into the layout), or remove it and Ferry writes it anew from its own tags',
      });
    return manifests.filter((entry): entry is ForeignEntry => {
      if (typeof entry !== 'object' || entry === null) return false;
      const { digest, size, annotations } = entry as Partial<ForeignEntry>;
      if (typeof digest !== 'string' || !Number.isSafeInteger(size)) return false;
      const name = annotations?.[REF_NAME];
      return typeof name !== 'string' || !ours.has(name);
    });
  }

  /** A foreign manifest (or image index) and what it names, into `named`. */
  private async nameForeign(
    entry: { digest?: unknown; size?: unknown },
    named: Set<string>,
    depth: number,
  ): Promise<void> {
    // Other algorithms live in blobs/sha512 and such, which Ferry never touches.
    if (typeof entry.digest !== 'string' || !DIGEST.test(entry.digest)) return;
    if (named.has(entry.digest)) return;
    named.add(entry.digest);
    if (depth > 8 || typeof entry.size !== 'number' || entry.size > SMALL_MAX) return;
    let value: unknown;
    try {
      value = JSON.parse((await this.readBlob(entry.digest, entry.size)).toString('utf8'));
    } catch (error) {
      // A manifest the other tool never finished storing names nothing Ferry could find;
      // one that was changed or replaced is not read past: gc stops and names it.
      if ((error as FerryError).code === 'E_BLOB_UNKNOWN' || error instanceof SyntaxError) return;
      throw error;
    }
    if (typeof value !== 'object' || value === null) return;
    const { config, layers, blobs, manifests, subject } = value as Record<string, unknown>;
    const listed = (list: unknown): unknown[] => (Array.isArray(list) ? list : []);
    for (const blob of [config, subject, ...listed(layers), ...listed(blobs)]) {
      const digest = (blob as { digest?: unknown } | null | undefined)?.digest;
      if (typeof digest === 'string') named.add(digest);
    }
    // An image index (`skopeo copy --all`): each platform's manifest, and what it names.
    for (const child of listed(manifests))
      if (typeof child === 'object' && child !== null)
        await this.nameForeign(child, named, depth + 1);
  }

  async strayBlobs(): Promise<Array<{ digest: string; size: number }>> {
    const folder = join(this.#dir, 'blobs', 'sha256');
    const names = await readdir(folder).catch(() => [] as string[]);
    const named = await this.namedBlobs();
    const strays: Array<{ digest: string; size: number }> = [];
    for (const name of names.sort()) {
      const digest = `sha256:${name}`;
      if (!/^[0-9a-f]{64}$/.test(name) || named.has(digest)) continue;
      const info = await lstat(join(folder, name)).catch(() => undefined);
      // Over SMALL_MAX it cannot be a record (readBlob refuses those), so no earlier
      // channel or policy document, which only the document after it names.
      if (!info?.isFile() || info.size <= SMALL_MAX) continue;
      if (Date.now() - info.mtimeMs > STALE_PART_MS) strays.push({ digest, size: info.size });
    }
    return strays;
  }

  async sweepStrays(digests: readonly string[]): Promise<void> {
    const named = await this.namedBlobs();
    for (const digest of digests)
      if (!named.has(digest)) await rm(this.blob(digest), { force: true });
    await syncDir(join(this.#dir, 'blobs', 'sha256'));
  }

  private async storeManifest(manifest: BuiltManifest): Promise<void> {
    await this.putBlob(manifest.bytes, manifest.digest, manifest.size);
  }

  private async descriptor(tag: string): Promise<Descriptor | undefined> {
    const path = this.refPath(tag);
    let text: string;
    try {
      text = (await readRegular(path, DESCRIPTOR_MAX)).toString('utf8');
    } catch (error) {
      if ((error as FerryError).code === 'E_NOT_FOUND') return undefined;
      throw error;
    }
    try {
      const value = JSON.parse(text) as Descriptor;
      // The digest names a file under blobs/sha256: anything but 64 hex digits ("../../etc/x")
      // would lead out of the repository.
      if (
        typeof value.digest === 'string' &&
        DIGEST.test(value.digest) &&
        Number.isSafeInteger(value.size) &&
        value.size >= 0
      )
        return value;
    } catch {
      // reported below
    }
    throw new FerryError('E_REPO_INVALID', `${path} is not a descriptor`, {
      file: path,
      reference: tag,
      hint: 'the repository was edited by hand or damaged',
    });
  }

  /** index.json, from the tag files: what OCI tools read. Replaced whole, never edited. */
  private async writeIndex(dropped: readonly string[] = []): Promise<void> {
    const tags = await this.listRefs();
    const manifests: unknown[] = [];
    for (const tag of tags) {
      if (dropped.includes(tag)) continue;
      const descriptor = await this.descriptor(tag);
      if (descriptor)
        manifests.push({
          mediaType: descriptor.mediaType,
          digest: descriptor.digest,
          size: descriptor.size,
          annotations: { [REF_NAME]: tag },
        });
    }
    // Images other tools copied into the layout keep their entries (and so their blobs:
    // gc counts what index.json lists); a tag Ferry holds or just dropped is Ferry's.
    manifests.push(...(await this.foreignEntries(new Set([...tags, ...dropped]))));
    await writeFileAtomic(
      join(this.#dir, 'index.json'),
      `${JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests }, null, 2)}\n`,
    );
  }

  private blob(digest: string): string {
    if (!DIGEST.test(digest))
      throw new FerryError(
        'E_REPO_INVALID',
        `${this.name} names a blob ${JSON.stringify(digest)}`,
        {
          reference: digest,
          hint: 'a blob is named by its sha256 (64 hex digits): the repository was edited by hand or damaged',
        },
      );
    return join(this.#dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
  }

  private refPath(tag: string): string {
    // A tag names a file under ferry/: "../config" or "../../../etc/x" would read a file
    // that is no tag of the repository (or is outside it). Only OCI tags, as a registry takes.
    if (!isTag(tag))
      throw new FerryError(
        'E_REPO_REFERENCE',
        `${this.name}: ${JSON.stringify(tag)} is not a version or tag: a tag is up to 128 of [A-Za-z0-9_.-], not starting with "." or "-"`,
        { reference: tag, hint: 'check the version or channel name' },
      );
    if (SINGLE_DOCUMENTS.some((single) => tag === `ferry.${single}`))
      return join(this.#dir, 'ferry', `${tag.slice('ferry.'.length)}.json`);
    const [folder, prefix] = FOLDERS.find(([, prefix]) => tag.startsWith(prefix)) ?? [
      'versions',
      '',
    ];
    return join(this.#dir, 'ferry', folder, `${tag.slice(prefix.length)}.json`);
  }
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;
/** An entry of index.json another tool wrote: kept as it is. */
interface ForeignEntry {
  digest: string;
  size: number;
  annotations?: Record<string, unknown>;
}
/** The repository's own folders, which must be folders in their place (not links). */
const FOLDER_PATHS = [
  'blobs',
  'blobs/sha256',
  'ferry',
  'ferry/versions',
  'ferry/channels',
  'ferry/approvals',
  'ferry/audit',
];
/** What readBlob holds in memory: manifests and documents (bundles stream through pullBlob). */
const SMALL_MAX = 16 * 1024 * 1024;
/**
 * index.json lists every tag, about 250 bytes each, and every event and approval is one:
 * 16 MiB was some 65,000, which a long-lived repository reaches.
 */
const INDEX_MAX = 64 * 1024 * 1024;
/** A tag file holds one descriptor (about 150 bytes); anything much larger is not one. */
const DESCRIPTOR_MAX = 64 * 1024;

/**
 * A file of the repository, at most `max` bytes, read only if it is a regular
 * file in its place: a symlink (to /etc/shadow, out of the repository), a FIFO
 * (which blocks a read for ever), a device (/dev/zero never ends) or a file
 * larger than its record says is refused by name before a byte is read.
 */
function readRegular(path: string, max: number): Promise<Buffer> {
  return readRegularBytes(path, 'E_REPO_INVALID', {
    follow: false,
    max,
    hint: 'a file of the repository was replaced: restore the repository from a backup and find out who changed it',
  });
}

/**
 * A temp copy not written to for this long, or a bundle copy no version has named for
 * this long, belongs to a publish that was killed. (Were it one still waiting for the
 * lock, it finds its copy gone once it holds the lock, and copies the bundle again.)
 */
const STALE_PART_MS = 60 * 60 * 1000;

/**
 * Removes the half-copied bundles (`.RANDOM.part`) that publishes killed mid-copy left in
 * blobs/sha256: nothing else ever removes them (gc leaves dot names alone, as a copy may
 * be under way), and each can be gigabytes. A copy under way is written to all the time.
 */
async function sweepParts(folder: string): Promise<void> {
  const names = await readdir(folder).catch(() => [] as string[]);
  for (const name of names) {
    if (!/^\.[0-9a-f]+\.part$/.test(name)) continue;
    const path = join(folder, name);
    const info = await lstat(path).catch(() => undefined);
    if (info?.isFile() && Date.now() - info.mtimeMs > STALE_PART_MS)
      await rm(path, { force: true }).catch(() => undefined);
  }
}

/**
 * When the lock's holder last beat: the later of the folder's mtime and its
 * owner.json's, the latter read through the opened file. On NFS a folder's
 * attributes may come from the client's cache, up to a minute old (acdirmax),
 * and a live holder's lock would look stale; opening a file makes the client
 * ask the server (close-to-open). Undefined when the lock is gone.
 */
async function lastBeat(lock: string): Promise<number | undefined> {
  const folder = await stat(lock).then(
    (info) => info.mtimeMs,
    () => undefined,
  );
  if (folder === undefined) return undefined;
  // O_NONBLOCK: a FIFO put in its place opens at once (and is no beat).
  const owner = await open(
    join(lock, 'owner.json'),
    constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
  ).then(
    async (handle) => {
      try {
        const info = await handle.stat();
        return info.isFile() ? info.mtimeMs : undefined;
      } finally {
        await handle.close();
      }
    },
    () => undefined,
  );
  return Math.max(folder, owner ?? folder);
}

/** The lock holder's owner.json, for messages: small, and never a FIFO that blocks the waiter. */
async function ownerOf(lock: string): Promise<string> {
  return (await readRegular(join(lock, 'owner.json'), 4096)).toString('utf8');
}

/** Documents a repository holds one of, each a file of ferry/. */
const SINGLE_DOCUMENTS = ['config', 'policy', 'trust'] as const;

const FOLDERS: ReadonlyArray<readonly [folder: string, prefix: string]> = [
  ['channels', 'ferry.channel.'],
  ['approvals', 'ferry.approval.'],
  ['audit', 'ferry.audit.'],
  ['removed', 'ferry.removed.'],
  ['versions', ''],
];

function descriptorText(manifest: BuiltManifest): string {
  return `${JSON.stringify({ mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size })}\n`;
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function missingBlob(error: unknown, repo: string, digest: string): FerryError {
  const code = (error as { code?: unknown }).code;
  if (code === 'ENOENT' || code === 'E_NOT_FOUND')
    return new FerryError('E_BLOB_UNKNOWN', `${repo} does not hold blob ${digest}`, {
      reference: digest,
      hint: 'the repository lost a file it refers to: restore it from a backup or publish again',
    });
  // The bundle's copy (pullBlob) opens it without following a link and refuses what is no
  // regular file: the repository was changed, which is no fault of the disk or of the user.
  const swapped = NOT_REGULAR[String(code)];
  if (swapped !== undefined) {
    const path = join(repo, 'blobs', 'sha256', digest.slice('sha256:'.length));
    return new FerryError('E_REPO_INVALID', `${repo}: blob ${digest} is ${swapped}`, {
      file: path,
      reference: digest,
      hint: 'a file of the repository was replaced: restore the repository from a backup and find out who changed it',
    });
  }
  if (error instanceof FerryError) return error;
  return ioError(error, digest, 'read');
}

/** What the hashing worker's codes say a blob's path holds instead of a regular file. */
const NOT_REGULAR: Record<string, string> = {
  ELOOP: 'a symbolic link',
  EISDIR: 'a folder',
  EFIFO: 'a FIFO',
  ENOTREG: 'not a regular file (a device or socket)',
};

function damaged(repo: string, digest: string, got: string): FerryError {
  return new FerryError('E_DIGEST_MISMATCH', `${repo}: blob ${digest} now has sha256 ${got}`, {
    reference: digest,
    hint: 'a file of the repository was changed or damaged after it was written',
  });
}

function changed(source: string | Buffer, digest: string, got: string): FerryError {
  return new FerryError(
    'E_DIGEST_MISMATCH',
    `${typeof source === 'string' ? source : 'the bytes'} have sha256 ${got}, not ${digest}`,
    { reference: digest, hint: 'the file changed while it was published' },
  );
}

function changedSize(source: string | Buffer, size: number): FerryError {
  const what = typeof source === 'string' ? source : 'the bytes';
  return new FerryError('E_IO', `${what} changed size while it was stored (not ${size} bytes)`, {
    ...(typeof source === 'string' ? { file: source } : {}),
    hint: 'do not change a bundle while it is being published',
  });
}

/**
 * Copies a file (or small bytes) into a new temp file in `folder`, taking its
 * sha256 in the same pass: a file is read once, on a hashing worker that
 * writes each block while it is in cache (as install copies payload). The
 * caller checks the digest and size and renames the temp file into place.
 */
async function copyHashed(
  source: string | Buffer,
  folder: string,
  size: number,
  onProgress?: Progress,
  prefix = '',
): Promise<{ temp: string; digest: string; bytes: number }> {
  const temp = join(folder, `${prefix}.${randomBytes(6).toString('hex')}.part`);
  const handle = await open(temp, 'wx', 0o644).catch((error: unknown) => {
    throw ioError(error, temp, 'create');
  });
  // The worker cannot report as it goes: the file's growth is the progress.
  const ticker =
    onProgress &&
    setInterval(
      () =>
        void handle.stat().then(
          (info) => onProgress(Math.min(info.size, size), size),
          () => undefined,
        ),
      250,
    );
  try {
    let digest: string;
    let bytes: number;
    if (typeof source === 'string') {
      const result = await withHashPool((pool) =>
        pool.run({ source, size, fd: handle.fd, position: 0 }),
      );
      digest = `sha256:${result.sha256}`;
      bytes = result.bytes;
    } else {
      await handle.write(source);
      digest = sha256(source);
      bytes = source.length;
    }
    await handle.sync();
    await handle.close();
    onProgress?.(Math.min(bytes, size), size);
    return { temp, digest, bytes };
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(temp, { force: true });
    // A disk that filled, failed or holds no file this large under the copy names
    // the folder it could not write to; other errors are the source's, which the caller names.
    const code = (error as NodeJS.ErrnoException).code;
    if (
      !(error instanceof FerryError) &&
      ['ENOSPC', 'EDQUOT', 'EFBIG', 'EIO', 'EROFS'].includes(code ?? '')
    )
      throw ioError(error, folder, 'write to');
    throw error;
  } finally {
    if (ticker) clearInterval(ticker);
  }
}
