import { createHash } from 'node:crypto';
import { FerryError } from '../manifest-schema/errors.js';
import type { BuiltManifest } from './oci/artifact.js';

/**
 * What the repository model needs from where it is kept, and nothing more:
 * blobs by digest, and named references (tags) to manifests that can be
 * created only once or replaced only over the digest the writer read. The
 * directory (store-dir.ts) and the registry (store-registry.ts) both give it;
 * everything else (versions, channels, approvals, the audit chain) is built
 * once over it in model.ts.
 */
export interface Store {
  /** The repository as the operator named it, for messages. */
  readonly name: string;
  /**
   * One writer at a time where the medium can hold a lock (a directory); the
   * registry cannot. `onWait` hears once that another writer holds it.
   */
  lock(actor: string, onWait?: (holder: string) => void): Promise<Lock>;
  hasBlob(digest: string): Promise<boolean>;
  /**
   * Stores a file (streamed) or small bytes under their digest, unless already
   * held, and returns the digest. Without one, it is taken from the bytes as
   * they are stored, in the same read. `fresh`: bytes no repository can hold
   * yet (a document naming its own time), stored without asking first where
   * asking costs a round trip.
   */
  putBlob(
    source: string | Buffer,
    digest: string | undefined,
    size: number,
    options?: { onProgress?: Progress; fresh?: boolean },
  ): Promise<string>;
  /** A small blob in memory, checked against its digest. */
  readBlob(digest: string, size: number): Promise<Buffer>;
  /** A blob into `toPath`, checked against digest and size as it streams, renamed into place only when whole. */
  pullBlob(digest: string, size: number, toPath: string, onProgress?: Progress): Promise<void>;
  /** The manifest a tag points at, as exact bytes, or undefined. */
  readRef(tag: string): Promise<RefManifest | undefined>;
  /**
   * Asks at once for documents about to be read (each tag's manifest, then its
   * first layer), so that their round trips overlap those of the reads before
   * them; the next readRef of such a tag, and readBlob of that layer, take the
   * answer, and any read after that asks afresh. Where reads are local (a
   * directory), there is nothing to overlap.
   */
  readAhead?(tags: readonly string[]): void;
  /**
   * Breaks off what is still under way (reads asked ahead that nobody will
   * take): a command that failed early does not wait on them to exit.
   */
  close?(): void;
  /**
   * Points a new tag at a manifest (its blobs stored first). The tag must not
   * exist: a tag already at the same digest is fine (a rerun); at another, E_REPO_CONFLICT.
   * `beforePut` runs just before the tag is made, once no other writer can make it
   * (under the directory's lock, or past the registry's claim on an audit event): what
   * it writes is written by the one writer whose tag lands.
   */
  createRef(
    tag: string,
    manifest: BuiltManifest,
    beforePut?: () => Promise<unknown>,
  ): Promise<void>;
  /** Moves a tag from `expected` (undefined: absent) to a manifest; E_REPO_CONFLICT when it moved meanwhile. */
  replaceRef(tag: string, manifest: BuiltManifest, expected: string | undefined): Promise<void>;
  listRefs(): Promise<string[]>;
  /**
   * Drops tags and their manifests; blobs no manifest refers to any more go too (where the
   * store can tell). Many at once: a folder rewrites its index and counts its blobs once.
   */
  deleteRef(...tags: string[]): Promise<void>;
  /**
   * Shows that deleteRef will work before gc records that it removes
   * anything: some registries delete nothing through the OCI API. Throws
   * E_REGISTRY saying so. A folder can always delete.
   */
  checkDeletes?(): Promise<void>;
  /**
   * Bundle copies no manifest names, untouched for an hour: what a publish killed
   * between copying its bundle and recording the version left. Only a directory
   * lists them; a registry's own garbage collection sweeps unreferenced blobs.
   */
  strayBlobs(): Promise<Array<{ digest: string; size: number }>>;
  /** Removes those of `digests` that are still strays; under the lock, as gc is. */
  sweepStrays(digests: readonly string[]): Promise<void>;
}

export interface RefManifest {
  digest: string;
  bytes: Buffer;
}

export interface Lock {
  release(): Promise<void>;
  /** Set when this writer took over a lock whose holder stopped beating: the audit log records it. */
  broke?: { owner: unknown };
}

export type Progress = (done: number, total: number) => void;

/** Tags of everything but versions: a version's tag is the version (with `+` as `_`, which tags cannot hold). */
export const TAGS = {
  config: 'ferry.config',
  policy: 'ferry.policy',
  trust: 'ferry.trust',
  channel: (name: string) => `ferry.channel.${name}`,
  approval: (id: string) => `ferry.approval.${id}`,
  event: (seq: number) => `ferry.audit.${String(seq).padStart(8, '0')}`,
  version: (version: string) => version.replace(/\+/g, '_'),
  /**
   * Left by gc for each version it removes (pointing at the version's first publish
   * event): a publish of a version with no tag reads the whole log only when this is there.
   */
  removed: (version: string) => {
    const tag = `ferry.removed.${version.replace(/\+/g, '_')}`;
    // A tag is at most 128 characters, and a version's own tag may use them all:
    // past that, the record is named by the version's hash (no version looks like it).
    return tag.length <= 128
      ? tag
      : `ferry.removed.sha256.${createHash('sha256').update(version).digest('hex')}`;
  },
} as const;

export const EVENT_TAG = /^ferry\.audit\.(\d{8})$/;
export const CHANNEL_TAG = /^ferry\.channel\.(.+)$/;

export function isVersionTag(tag: string): boolean {
  return !tag.startsWith('ferry.');
}

export function conflict(store: Store, tag: string, what: string): FerryError {
  return new FerryError(
    'E_REPO_CONFLICT',
    `${store.name}: ${tag} ${what}: another writer changed the repository at the same time`,
    {
      reference: tag,
      hint: 'nothing of yours was kept; look at `ferry history` and run the command again if it still applies',
    },
  );
}
