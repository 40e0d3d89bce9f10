import { randomUUID } from 'node:crypto';
import { secondsFromEnv } from '../manifest-schema/durations.js';
import { FerryError } from '../manifest-schema/errors.js';
import { documentBlob, documentManifest, EMPTY_BLOB, type BuiltManifest } from './oci/artifact.js';
import { RegistryClient } from './oci/client.js';
import {
  conflict,
  EVENT_TAG,
  type Lock,
  type Progress,
  type RefManifest,
  type Store,
} from './store.js';

/** A claim on an audit event's tag: the tag, the claim's time (Unix seconds), the event's digest. */
const CLAIM_TAG = /^(ferry\.audit\.\d{8})\.(\d+)\.[0-9a-f]{12}$/;
/**
 * How far ahead of a writer's clock another's claim may be dated and still stop it: a
 * clock further ahead is broken, and its claims are passed over.
 */
const MAX_CLAIM_SKEW_SECONDS = 3600;

/**
 * A repository in an OCI registry (`oci://host[:port]/namespace/product`).
 * Registries have no locks, no conditional writes and overwrite tags without
 * asking, so every write names what it read. The audit event of sequence N,
 * which every write creates first, is claimed before it is written: each
 * writer puts its event under a name no other writer can take (the sequence,
 * the time and the event's own digest), then lists the tags; it writes event
 * N only when its claim is the only one. Of two writers, at most one sees
 * only itself, whatever the timing: each listed after its own claim landed,
 * so whichever listed second sees the first's claim (both may see both: then
 * the younger claim steps aside and the older looks again). Everything else
 * a write changes comes after its event; a moved tag is replaced only if it
 * still points where the writer read it.
 */
export class RegistryStore implements Store {
  readonly name: string;
  readonly client: RegistryClient;
  readonly #staleSeconds: number;
  /** See Store.readAhead: answers taken once, by tag and by `digest size`. */
  readonly #refsAhead = new Map<string, Promise<RefManifest | undefined>>();
  readonly #blobsAhead = new Map<string, Promise<Buffer>>();

  constructor(name: string, client: RegistryClient) {
    this.name = name;
    this.client = client;
    this.#staleSeconds = secondsFromEnv(process.env, 'FERRY_REGISTRY_CLAIM_STALE_SECONDS', 60);
  }

  static async open(text: string, insecure: boolean): Promise<RegistryStore> {
    return new RegistryStore(text, await RegistryClient.open(text, { insecure }));
  }

  lock(): Promise<Lock> {
    // Nothing to hold: createRef's claim on the next audit event is the serialisation point.
    return Promise.resolve({ release: () => Promise.resolve() });
  }

  async hasBlob(digest: string): Promise<boolean> {
    return (await this.client.blobExists(digest)) !== undefined;
  }

  async putBlob(
    source: string | Buffer,
    digest: string | undefined,
    size: number,
    { onProgress, fresh }: { onProgress?: Progress; fresh?: boolean } = {},
  ): Promise<string> {
    const pushed = await this.client.pushBlob(source, {
      ...(digest !== undefined ? { digest } : {}),
      size,
      ...(onProgress ? { onProgress } : {}),
      ...(fresh !== undefined ? { fresh } : {}),
    });
    return pushed.digest;
  }

  readBlob(digest: string, size: number): Promise<Buffer> {
    return taken(this.#blobsAhead, `${digest} ${size}`) ?? this.client.readBlob(digest, size);
  }

  pullBlob(digest: string, size: number, toPath: string, onProgress?: Progress): Promise<void> {
    return this.client.pullBlob(digest, size, toPath, onProgress ? { onProgress } : {});
  }

  async readRef(tag: string): Promise<RefManifest | undefined> {
    const ahead = taken(this.#refsAhead, tag);
    if (ahead) return ahead;
    const found = await this.client.findManifest(tag);
    return found && { digest: found.digest, bytes: found.bytes };
  }

  close(): void {
    this.client.close();
  }

  readAhead(tags: readonly string[]): void {
    for (const tag of tags) {
      if (this.#refsAhead.has(tag)) continue;
      const ref = this.client
        .findManifest(tag)
        .then((found) => found && { digest: found.digest, bytes: found.bytes });
      this.#refsAhead.set(tag, ref);
      // Before the reader's own continuation: it registered later.
      ref.then(
        (found) => {
          const layer = found && firstLayer(found.bytes);
          if (!layer) return;
          const key = `${layer.digest} ${layer.size}`;
          const blob = this.client.readBlob(layer.digest, layer.size);
          this.#blobsAhead.set(key, blob);
          // A failure is the reader's to hear, if it reads; unread, it is dropped.
          blob.catch(() => undefined);
        },
        () => undefined,
      );
    }
  }

  async createRef(
    tag: string,
    manifest: BuiltManifest,
    beforePut?: () => Promise<unknown>,
  ): Promise<void> {
    const held = await this.client.manifestDescriptor(tag);
    if (held) {
      if (held.digest === manifest.digest) return;
      throw conflict(this, tag, `already points at ${held.digest}`);
    }
    // Only audit events need a claim: every other write comes after its event was claimed.
    if (EVENT_TAG.test(tag)) await this.claim(tag, manifest);
    try {
      await beforePut?.();
    } catch (error) {
      // A claim left behind would hold the next writer off until it went stale.
      if (EVENT_TAG.test(tag))
        await this.client.deleteManifest(manifest.digest).catch(() => undefined);
      throw error;
    }
    await this.client.putManifest(tag, manifest.bytes, manifest.mediaType);
    const now = await this.client.manifestDescriptor(tag);
    if (now?.digest !== manifest.digest)
      throw conflict(this, tag, `was taken by ${now?.digest ?? 'nobody'}`);
  }

  /**
   * Claims `tag` for this event: `TAG.SECONDS.DIGEST12`, then a list of every
   * claim of the tag. Another claim, younger than the stale limit, means
   * another writer got there too: the oldest claim waits for the others to
   * step aside; a younger one takes its claim back and, while the event is
   * still unwritten, tries again after a random pause; after three tries, or
   * when the registry refuses to delete, it stops. A claim older than the limit is a
   * writer that died between its claim and its event, and is passed over.
   */
  private async claim(tag: string, manifest: BuiltManifest): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const seconds = Math.floor(Date.now() / 1000);
      const mine = `${tag}.${seconds}.${manifest.digest.slice('sha256:'.length, 'sha256:'.length + 12)}`;
      await this.client.putManifest(mine, manifest.bytes, manifest.mediaType);
      const others = await this.liveClaims(tag, mine);
      if (others.length === 0) return;
      // Writers that saw each other all stepping back can go on seeing each
      // other on a loaded machine. The oldest claim instead stays and looks
      // again while the younger ones step back: it still goes on only when it
      // is alone in a listing taken after its claim landed, so at most one
      // writer goes on, and of two, one does.
      if (others.every((other) => claimOrder(mine, other) < 0) && (await this.aloneSoon(tag, mine)))
        return;
      const withdrawn = await this.client.deleteManifest(manifest.digest).then(
        () => true,
        () => false,
      );
      if (!withdrawn || attempt === 3) {
        const refused = conflict(
          this,
          tag,
          `was claimed by another writer too (${others.join(', ')})`,
        );
        // The other may be this very command, run before and killed between its claim and
        // its event: running again at once only meets its claim again.
        throw new FerryError(refused.code, refused.message, {
          ...refused.details,
          hint: `nothing of yours was kept; look at \`ferry history\` and run the command again if it still applies. A claim whose writer died before its event is passed over once it is ${this.#staleSeconds} s old (FERRY_REGISTRY_CLAIM_STALE_SECONDS)`,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 400));
      await this.stepAside(tag, mine);
    }
  }

  /**
   * After taking its claim back: waits, for as long as an older claim looks
   * for itself alone (aloneSoon), for that writer's event, or for it to step
   * aside too. Claiming again at once can keep the older writer from ever
   * seeing itself alone on a loaded machine, until both give up; waiting, the
   * older one goes on and this one stops with E_REPO_CONFLICT.
   */
  private async stepAside(tag: string, mine: string): Promise<void> {
    for (let look = 0; look < 20; look++) {
      const written = await this.client.manifestDescriptor(tag);
      if (written) throw conflict(this, tag, `was written by another writer (${written.digest})`);
      if ((await this.liveClaims(tag, mine)).length === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /**
   * The other claims of `tag` younger than the stale limit of this writer's clock and
   * dated less than MAX_CLAIM_SKEW_SECONDS ahead of it. A claim from a live writer whose
   * clock runs minutes fast must stop this one: that writer takes this one's claim for a
   * stale one, so were it passed over here too, both would write the event. One dated
   * further ahead is a broken clock, and had its writer died before its event, its claim
   * would hold that event off until its time came (for ever, from a clock set years ahead).
   */
  private async liveClaims(tag: string, mine: string): Promise<string[]> {
    const seconds = Math.floor(Date.now() / 1000);
    return (await this.client.listTags()).filter((other) => {
      const claimed = CLAIM_TAG.exec(other);
      const at = Number(claimed?.[2]);
      return (
        other !== mine &&
        claimed?.[1] === tag &&
        at > seconds - this.#staleSeconds &&
        at < seconds + MAX_CLAIM_SKEW_SECONDS
      );
    });
  }

  /** Looks again, for up to about five seconds, for this claim to be the only live one of `tag`. */
  private async aloneSoon(tag: string, mine: string): Promise<boolean> {
    for (let look = 0; look < 20; look++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const others = await this.liveClaims(tag, mine);
      if (others.length === 0) return true;
      if (!others.every((other) => claimOrder(mine, other) < 0)) return false;
    }
    return false;
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

  /** None listed: a registry cannot list its blobs; its own garbage collection sweeps unreferenced ones. */
  strayBlobs(): Promise<Array<{ digest: string; size: number }>> {
    return Promise.resolve([]);
  }

  sweepStrays(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Deletes a manifest of its own, untagged and used by nothing: GHCR and
   * Docker Hub answer a DELETE 405, and ECR 404, as their users report
   * (fluxcd/pkg#328). Where deleting fails, the probe stays behind: a few
   * hundred bytes no tag names.
   */
  async checkDeletes(): Promise<void> {
    const document = documentBlob({
      probe: 'ferry gc: may versions be deleted here?',
      id: randomUUID(),
    });
    const manifest = documentManifest({
      artifactType: 'application/vnd.ferry.probe.v1',
      mediaType: 'application/vnd.ferry.probe.v1+json',
      document,
    });
    await this.client.pushBlob(EMPTY_BLOB);
    await this.client.pushBlob(document.bytes);
    await this.client.putManifest(manifest.digest, manifest.bytes, manifest.mediaType);
    try {
      await this.client.deleteManifest(manifest.digest);
    } catch (error) {
      if (!(error instanceof FerryError)) throw error;
      throw new FerryError(
        'E_REGISTRY',
        `${this.name}: the registry does not delete manifests through the OCI API (a manifest of Ferry's own could not be deleted: ${error.message}), so gc removed and recorded nothing`,
        {
          registry: this.client.reference.registry,
          repository: this.client.reference.repository,
          hint: 'remove the versions `ferry gc` lists (without --yes) with the registry’s own tools (GHCR: GitHub’s packages API; ECR: its console or lifecycle rules), or enable deletes (Distribution: storage.delete.enabled)',
          cause: error,
        },
      );
    }
  }

  async deleteRef(...tags: string[]): Promise<void> {
    for (const tag of tags) {
      const held = await this.client.manifestDescriptor(tag);
      // Blobs go when the registry's own garbage collection runs.
      if (held) await this.client.deleteManifest(held.digest);
    }
  }
}

/** Older claims first (by their time, then their digest): the order in which claims give way. */
function claimOrder(a: string, b: string): number {
  const [, , secondsA = '0'] = CLAIM_TAG.exec(a) ?? [];
  const [, , secondsB = '0'] = CLAIM_TAG.exec(b) ?? [];
  return Number(secondsA) - Number(secondsB) || (a < b ? -1 : a > b ? 1 : 0);
}

/** Removes and returns a promise of `ahead`, if there is one. */
function taken<T>(ahead: Map<string, Promise<T>>, key: string): Promise<T> | undefined {
  const found = ahead.get(key);
  ahead.delete(key);
  return found;
}

/**
 * A manifest's first layer, when the bytes are plainly one (the reader checks
 * them properly): a document's layer is small, and readBlob refuses one that is not.
 */
function firstLayer(bytes: Buffer): { digest: string; size: number } | undefined {
  try {
    const layer = (JSON.parse(bytes.toString('utf8')) as { layers?: unknown[] }).layers?.[0] as
      { digest?: unknown; size?: unknown } | undefined;
    if (typeof layer?.digest === 'string' && Number.isSafeInteger(layer.size))
      return { digest: layer.digest, size: layer.size as number };
  } catch {
    // Not JSON: the reader says so.
  }
  return undefined;
}
