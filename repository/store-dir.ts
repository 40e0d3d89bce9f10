import { createHash, randomBytes } from 'node:crypto';
import {
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { syncDir, writeFileAtomic } from '../manifest-schema/atomic.js';
import { FerryError, ioError } from '../manifest-schema/errors.js';
import { withHashPool } from '../manifest-schema/hashing.js';
import { parseImageManifest, type BuiltManifest, type Descriptor } from './oci/artifact.js';
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

  private constructor(dir: string) {
    this.#dir = dir;
    this.name = dir;
  }

  /** Opens a directory repository; `create` makes the layout when the folder holds none. */
  static async open(dir: string, create: boolean): Promise<DirectoryStore> {
    const store = new DirectoryStore(dir);
    const layout = await readFile(join(dir, 'oci-layout'), 'utf8').catch(() => undefined);
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
    const path = join(this.#dir, 'ferry', 'lock');
    const staleMs = seconds('FERRY_LOCK_STALE_SECONDS', 30) * 1000;
    const deadline = Date.now() + seconds('FERRY_LOCK_WAIT_SECONDS', 10) * 1000;
    let broke: Lock['broke'];
    for (;;) {
      try {
        await mkdir(path);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
          throw ioError(error, path, 'create');
      }
      const since = await stat(path).then(
        (info) => info.mtimeMs,
        () => undefined,
      );
      if (since !== undefined && Date.now() - since > staleMs) {
        // Its holder stopped beating. Renaming it away is atomic: of two breakers, one wins.
        const owner = await readFile(join(path, 'owner.json'), 'utf8').then(
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
        onWait(await readFile(join(path, 'owner.json'), 'utf8').catch(() => 'unknown'));
        onWait = undefined;
      }
      if (Date.now() > deadline) {
        const owner = await readFile(join(path, 'owner.json'), 'utf8').catch(() => 'unknown');
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
    await writeFile(
      join(path, 'owner.json'),
      JSON.stringify({
        actor,
        pid: process.pid,
        host: hostname(),
        since: new Date().toISOString(),
      }),
    );
    const beat = setInterval(
      () => void utimes(path, new Date(), new Date()).catch(() => undefined),
      Math.max(200, staleMs / 4),
    );
    beat.unref();
    return {
      ...(broke ? { broke } : {}),
      release: async () => {
        clearInterval(beat);
        await rm(path, { recursive: true, force: true });
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
    onProgress?: Progress,
  ): Promise<string> {
    await this.#ensure();
    if (digest !== undefined && (await this.hasBlob(digest))) return digest;
    const folder = join(this.#dir, 'blobs', 'sha256');
    const copy = await copyHashed(source, folder, size, onProgress);
    try {
      if (digest !== undefined && copy.digest !== digest)
        throw changed(source, digest, copy.digest);
      if (copy.bytes !== size) throw changedSize(source, size);
      // A blob already there has these very bytes: replacing it changes nothing.
      await rename(copy.temp, this.blob(copy.digest));
      await syncDir(folder);
    } catch (error) {
      await rm(copy.temp, { force: true });
      throw error;
    }
    return copy.digest;
  }

  async readBlob(digest: string, size: number): Promise<Buffer> {
    const path = this.blob(digest);
    const bytes = await readFile(path).catch((error: unknown) => {
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

  async createRef(tag: string, manifest: BuiltManifest): Promise<void> {
    await this.#ensure();
    await this.storeManifest(manifest);
    const path = this.refPath(tag);
    await mkdir(dirname(path), { recursive: true });
    const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(temp, descriptorText(manifest), { flush: true });
    try {
      await link(temp, path);
    } catch (error) {
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
    await mkdir(dirname(path), { recursive: true });
    await writeFileAtomic(path, descriptorText(manifest));
    await this.writeIndex();
  }

  async listRefs(): Promise<string[]> {
    const tags: string[] = [];
    for (const [folder, prefix] of FOLDERS) {
      const names = await readdir(join(this.#dir, 'ferry', folder)).catch(() => [] as string[]);
      for (const name of names)
        if (name.endsWith('.json')) tags.push(`${prefix}${name.slice(0, -'.json'.length)}`);
    }
    for (const single of ['config', 'policy'])
      if (
        await stat(join(this.#dir, 'ferry', `${single}.json`)).then(
          () => true,
          () => false,
        )
      )
        tags.push(`ferry.${single}`);
    return tags.sort();
  }

  async deleteRef(tag: string): Promise<void> {
    await rm(this.refPath(tag), { force: true });
    await this.writeIndex();
    // Blobs no remaining manifest names go; a blob being written has a dot name and is left alone.
    const keep = new Set<string>();
    for (const other of await this.listRefs()) {
      const found = await this.readRef(other);
      if (!found) continue;
      keep.add(found.digest);
      const parsed = parseImageManifest(found.bytes);
      if (!parsed.ok) continue;
      keep.add(parsed.value.config.digest);
      for (const layer of parsed.value.layers) keep.add(layer.digest);
    }
    const folder = join(this.#dir, 'blobs', 'sha256');
    for (const name of await readdir(folder)) {
      if (!name.startsWith('.') && !keep.has(`sha256:${name}`))
        await rm(join(folder, name), { force: true });
    }
  }

  private async storeManifest(manifest: BuiltManifest): Promise<void> {
    await this.putBlob(manifest.bytes, manifest.digest, manifest.size);
  }

  private async descriptor(tag: string): Promise<Descriptor | undefined> {
    const path = this.refPath(tag);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw ioError(error, path, 'read');
    }
    try {
      const value = JSON.parse(text) as Descriptor;
      if (typeof value.digest === 'string' && Number.isSafeInteger(value.size)) return value;
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
  private async writeIndex(): Promise<void> {
    const manifests = [];
    for (const tag of await this.listRefs()) {
      const descriptor = await this.descriptor(tag);
      if (descriptor)
        manifests.push({
          mediaType: descriptor.mediaType,
          digest: descriptor.digest,
          size: descriptor.size,
          annotations: { [REF_NAME]: tag },
        });
    }
    await writeFileAtomic(
      join(this.#dir, 'index.json'),
      `${JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests }, null, 2)}\n`,
    );
  }

  private blob(digest: string): string {
    return join(this.#dir, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  }

  private refPath(tag: string): string {
    if (tag === 'ferry.config' || tag === 'ferry.policy')
      return join(this.#dir, 'ferry', `${tag.slice('ferry.'.length)}.json`);
    const [folder, prefix] = FOLDERS.find(([, prefix]) => tag.startsWith(prefix)) ?? [
      'versions',
      '',
    ];
    return join(this.#dir, 'ferry', folder, `${tag.slice(prefix.length)}.json`);
  }
}

const FOLDERS: ReadonlyArray<readonly [folder: string, prefix: string]> = [
  ['channels', 'ferry.channel.'],
  ['approvals', 'ferry.approval.'],
  ['audit', 'ferry.audit.'],
  ['versions', ''],
];

function descriptorText(manifest: BuiltManifest): string {
  return `${JSON.stringify({ mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size })}\n`;
}

function seconds(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function missingBlob(error: unknown, repo: string, digest: string): FerryError {
  if ((error as NodeJS.ErrnoException).code === 'ENOENT')
    return new FerryError('E_BLOB_UNKNOWN', `${repo} does not hold blob ${digest}`, {
      reference: digest,
      hint: 'the repository lost a file it refers to: restore it from a backup or publish again',
    });
  return ioError(error, digest, 'read');
}

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
    throw error;
  } finally {
    if (ticker) clearInterval(ticker);
  }
}
