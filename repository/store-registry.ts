import { FerryError } from '../manifest-schema/errors.js';
import type { BuiltManifest } from './oci/artifact.js';
import { RegistryClient } from './oci/client.js';
import {
  conflict,
  EVENT_TAG,
  type Lock,
  type Progress,
  type RefManifest,
  type Store,
} from './store.js';

/**
 * A repository in an OCI registry (`oci://host[:port]/namespace/product`).
 * Registries have no locks and overwrite tags without asking, so every write
 * names what it read: a new tag is written only when absent, then read back
 * after a settling pause; a moved tag only when it still points where the
 * writer read it. Two writers that race get one winner; the other finds the
 * tag changed and stops with E_REPO_CONFLICT (exit 5), keeping nothing.
 */
export class RegistryStore implements Store {
  readonly name: string;
  readonly client: RegistryClient;
  readonly #settleMs: number;

  constructor(name: string, client: RegistryClient) {
    this.name = name;
    this.client = client;
    const settle = Number(process.env.FERRY_REGISTRY_SETTLE_MS);
    this.#settleMs = Number.isFinite(settle) && settle >= 0 ? settle : 1000;
  }

  static async open(text: string, insecure: boolean): Promise<RegistryStore> {
    return new RegistryStore(text, await RegistryClient.open(text, { insecure }));
  }

  lock(): Promise<Lock> {
    // Nothing to hold: createRef's read-back is the serialisation point.
    return Promise.resolve({ release: () => Promise.resolve() });
  }

  async hasBlob(digest: string): Promise<boolean> {
    return (await this.client.blobExists(digest)) !== undefined;
  }

  async putBlob(
    source: string | Buffer,
    digest: string | undefined,
    size: number,
    onProgress?: Progress,
  ): Promise<string> {
    const pushed = await this.client.pushBlob(source, {
      ...(digest !== undefined ? { digest } : {}),
      size,
      ...(onProgress ? { onProgress } : {}),
    });
    return pushed.digest;
  }

  readBlob(digest: string, size: number): Promise<Buffer> {
    return this.client.readBlob(digest, size);
  }

  pullBlob(digest: string, size: number, toPath: string, onProgress?: Progress): Promise<void> {
    return this.client.pullBlob(digest, size, toPath, onProgress ? { onProgress } : {});
  }

  async readRef(tag: string): Promise<RefManifest | undefined> {
    if ((await this.client.manifestDescriptor(tag)) === undefined) return undefined;
    try {
      const { digest, bytes } = await this.client.getManifest(tag);
      return { digest, bytes };
    } catch (error) {
      // Deleted between the two requests.
      if (error instanceof FerryError && error.code === 'E_MANIFEST_UNKNOWN') return undefined;
      throw error;
    }
  }

  async createRef(tag: string, manifest: BuiltManifest): Promise<void> {
    const held = await this.client.manifestDescriptor(tag);
    if (held) {
      if (held.digest === manifest.digest) return;
      throw conflict(this, tag, `already points at ${held.digest}`);
    }
    await this.client.putManifest(tag, manifest.bytes, manifest.mediaType);
    // A writer that read "absent" at the same moment puts its own within this pause;
    // whoever put first reads the other's back and steps aside. Only audit events
    // need it: every other write comes after its event was claimed.
    if (EVENT_TAG.test(tag)) await new Promise((resolve) => setTimeout(resolve, this.#settleMs));
    const now = await this.client.manifestDescriptor(tag);
    if (now?.digest !== manifest.digest)
      throw conflict(this, tag, `was taken by ${now?.digest ?? 'nobody'}`);
  }

  async replaceRef(
    tag: string,
    manifest: BuiltManifest,
    expected: string | undefined,
  ): Promise<void> {
    const held = await this.client.manifestDescriptor(tag);
    if (held?.digest !== expected)
      throw conflict(this, tag, `moved to ${held?.digest ?? 'nothing'}`);
    await this.client.putManifest(tag, manifest.bytes, manifest.mediaType);
    const now = await this.client.manifestDescriptor(tag);
    if (now?.digest !== manifest.digest)
      throw conflict(this, tag, `was moved to ${now?.digest ?? 'nothing'}`);
  }

  listRefs(): Promise<string[]> {
    return this.client.listTags();
  }

  async deleteRef(tag: string): Promise<void> {
    const held = await this.client.manifestDescriptor(tag);
    // Blobs go when the registry's own garbage collection runs.
    if (held) await this.client.deleteManifest(held.digest);
  }
}
