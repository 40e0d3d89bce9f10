import { readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../../../manifest-schema/errors.js';
import {
  bundleManifest,
  documentBlob,
  documentManifest,
  EMPTY_BLOB,
  RegistryClient,
  type DocumentBlob,
  type RetryEvent,
} from '../../../repository/oci/index.js';
import { tempDir } from '../../helpers.js';
import { startFaultProxy } from './proxy.js';
import { freePort, randomFile, registryMissing, startRegistry, type Registry } from './registry.js';

const FAST = { attempts: 3, firstDelayMs: 10, maxDelayMs: 50 };

/** A small document as the audit log will store it. */
function eventManifest(doc: DocumentBlob) {
  return documentManifest({
    artifactType: 'application/vnd.ferry.event.v1',
    mediaType: 'application/vnd.ferry.event.v1+json',
    document: doc,
  });
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof FerryError) return error.code;
    throw error;
  }
  throw new Error('expected a FerryError');
}

describe.skipIf(registryMissing)('RegistryClient against a real registry', () => {
  let registry: Registry;
  let dir: string;
  let client: RegistryClient;

  beforeAll(async () => {
    registry = await startRegistry();
    dir = await tempDir('ferry-oci-client-');
    client = await RegistryClient.open(registry.reference('acme/appliance'), {
      env: {},
      chunkSize: 1024 * 1024,
      retry: FAST,
    });
  });
  afterAll(() => registry?.stop());

  it('pings the registry', async () => {
    await expect(client.ping()).resolves.toBeUndefined();
  });

  it('pushes a file in chunks and pulls back the same bytes, verified', async () => {
    const file = join(dir, 'bundle.tar');
    const size = 3 * 1024 * 1024 + 12345;
    const digest = await randomFile(file, size);
    const seen: number[] = [];
    const pushed = await client.pushBlob(file, { onProgress: (done) => seen.push(done) });
    expect(pushed).toEqual({ digest, size, uploaded: true });
    expect(seen.at(-1)).toBe(size);
    expect(await client.blobExists(digest)).toBe(size);

    const out = join(dir, 'pulled.tar');
    await client.pullBlob(digest, size, out);
    // toEqual walks a Buffer byte by byte: minutes for megabytes.
    expect((await readFile(out)).equals(await readFile(file))).toBe(true);
    expect((await readdir(dir)).filter((name) => name.endsWith('.part'))).toEqual([]);
  });

  it('pushes and pulls blobs of 0, 1 and 2 bytes', async () => {
    for (const size of [0, 1, 2]) {
      const file = join(dir, `tiny-${size}.bin`);
      const digest = await randomFile(file, size);
      expect(await client.pushBlob(file)).toEqual({ digest, size, uploaded: true });
      await client.pullBlob(digest, size, join(dir, `tiny-${size}.out`));
      expect((await readFile(join(dir, `tiny-${size}.out`))).equals(await readFile(file))).toBe(
        true,
      );
    }
  });

  it('skips a blob the registry already holds', async () => {
    const file = join(dir, 'again.bin');
    const digest = await randomFile(file, 4096);
    expect((await client.pushBlob(file, { digest })).uploaded).toBe(true);
    expect(await client.pushBlob(file, { digest })).toEqual({
      digest,
      size: 4096,
      uploaded: false,
    });
  });

  it('pushes and reads small documents from memory, and the empty blob', async () => {
    const doc = documentBlob({ channel: 'stable', version: '1.2.0', seq: 3 });
    expect((await client.pushBlob(doc.bytes)).digest).toBe(doc.digest);
    expect(await client.readBlob(doc.digest, doc.size)).toEqual(doc.bytes);
    const empty = await client.pushBlob(EMPTY_BLOB);
    expect(empty.digest).toBe(
      'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
    );
  });

  it('stores a bundle manifest under a tag and returns its exact bytes by tag and digest', async () => {
    const bundleFile = join(dir, 'acme-1.2.0.tar');
    const bundleDigest = await randomFile(bundleFile, 200_000);
    const metadata = documentBlob({ release: '1.2.0' });
    await client.pushBlob(EMPTY_BLOB);
    await client.pushBlob(metadata.bytes);
    await client.pushBlob(bundleFile);
    const built = bundleManifest({
      version: '1.2.0',
      created: '2026-11-01T10:00:00Z',
      metadata,
      bundle: { digest: bundleDigest, size: 200_000, fileName: 'acme-1.2.0.tar', format: 'tar' },
    });
    const stored = await client.putManifest('1.2.0', built.bytes, built.mediaType);
    expect(stored).toEqual({ mediaType: built.mediaType, digest: built.digest, size: built.size });

    const byTag = await client.getManifest('1.2.0');
    expect(byTag).toEqual({
      bytes: built.bytes,
      mediaType: built.mediaType,
      digest: built.digest,
      size: built.size,
    });
    expect((await client.getManifest(built.digest)).bytes).toEqual(built.bytes);
    expect(await client.manifestDescriptor('1.2.0')).toEqual(stored);
    expect(await client.manifestDescriptor('9.9.9')).toBeUndefined();
    expect(await codeOf(client.getManifest('9.9.9'))).toBe('E_MANIFEST_UNKNOWN');
    expect(await client.findManifest('1.2.0')).toEqual(byTag);
    expect(await client.findManifest('9.9.9')).toBeUndefined();
    // A repository nobody pushed to: the registry says NAME_UNKNOWN, still nothing there.
    const nowhere = await RegistryClient.open(registry.reference('acme/never-pushed'), {
      env: {},
      retry: FAST,
    });
    expect(await nowhere.findManifest('1.2.0')).toBeUndefined();
  });

  it('finds a manifest in one request, asking nothing first', async () => {
    const proxy = await startFaultProxy(registry.host, []);
    try {
      const through = await RegistryClient.open(proxy.reference('acme/appliance'), {
        env: {},
        retry: FAST,
      });
      await through.findManifest('1.2.0');
      await through.findManifest('9.9.9');
      expect(proxy.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        'GET /v2/acme/appliance/manifests/1.2.0',
        'GET /v2/acme/appliance/manifests/9.9.9',
      ]);
    } finally {
      await proxy.stop();
    }
  });

  it('refuses a manifest whose blobs were not pushed', async () => {
    const doc = documentBlob({ never: 'pushed' });
    const built = documentManifest({
      artifactType: 'application/vnd.ferry.channel.v1',
      mediaType: 'application/vnd.ferry.channel.v1+json',
      document: doc,
    });
    await client.pushBlob(EMPTY_BLOB);
    const error = await client
      .putManifest('orphan', built.bytes, built.mediaType)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FerryError);
    expect((error as FerryError).code).toBe('E_REGISTRY');
    expect((error as FerryError).message).toMatch(/MANIFEST_BLOB_UNKNOWN/);
    expect((error as FerryError).details).toMatchObject({
      registry: registry.host,
      repository: 'acme/appliance',
      reference: 'orphan',
    });
  });

  it('lists every tag across pages, and none for a repository never pushed to', async () => {
    const tags = Array.from({ length: 12 }, (_, i) => `t${String(i).padStart(3, '0')}`);
    const doc = documentBlob({ page: true });
    await client.pushBlob(doc.bytes);
    const built = eventManifest(doc);
    const paged = await RegistryClient.open(registry.reference('acme/paged'), {
      env: {},
      retry: FAST,
    });
    await paged.pushBlob(EMPTY_BLOB);
    await paged.pushBlob(doc.bytes);
    for (const tag of tags) await paged.putManifest(tag, built.bytes, built.mediaType);
    expect((await paged.listTags({ pageSize: 5 })).sort()).toEqual(tags);
    const never = await RegistryClient.open(registry.reference('acme/never'), {
      env: {},
      retry: FAST,
    });
    expect(await never.listTags()).toEqual([]);
  });

  it('deletes a manifest by digest', async () => {
    const doc = documentBlob({ delete: 'me' });
    await client.pushBlob(doc.bytes);
    const built = eventManifest(doc);
    await client.putManifest('doomed', built.bytes, built.mediaType);
    await client.deleteManifest(built.digest);
    expect(await codeOf(client.getManifest(built.digest))).toBe('E_MANIFEST_UNKNOWN');
    expect(await codeOf(client.deleteManifest(built.digest))).toBe('E_MANIFEST_UNKNOWN');
  });

  it('refuses a blob whose bytes at rest no longer match their digest, leaving nothing behind', async () => {
    const file = join(dir, 'damaged.bin');
    const size = 300_000;
    const digest = await randomFile(file, size);
    await client.pushBlob(file, { digest, size });
    const stored = await readFile(registry.blobPath(digest));
    stored[1000] = (stored[1000] as number) ^ 0xff;
    await writeFile(registry.blobPath(digest), stored);
    const out = join(dir, 'damaged-out.bin');
    expect(await codeOf(client.pullBlob(digest, size, out))).toBe('E_DIGEST_MISMATCH');
    await truncate(registry.blobPath(digest), size - 10);
    expect(await codeOf(client.pullBlob(digest, size, out))).toBe('E_DIGEST_MISMATCH');
    // Publishing it again does not build on the damaged copy.
    expect(await codeOf(client.pushBlob(file, { digest, size }))).toBe('E_DIGEST_MISMATCH');
    expect(await codeOf(client.pullBlob(digest, size - 100, out))).toBe('E_DIGEST_MISMATCH');
    expect(
      (await readdir(dir)).filter(
        (name) => name.startsWith('.damaged-out') || name === 'damaged-out.bin',
      ),
    ).toEqual([]);
  });

  // A document goes in the PUT that closes its upload, without a HEAD first;
  // storing it again does not mend a damaged copy: the registry keeps the one it has.
  it('refuses a document whose copy at rest is damaged, though it is not asked about first', async () => {
    const doc = documentBlob({ damaged: 'at rest' });
    await client.pushBlob(doc.bytes);
    await truncate(registry.blobPath(doc.digest), 10);
    const later = await RegistryClient.open(registry.reference('acme/appliance'), {
      env: {},
      retry: FAST,
    });
    const error = await later.pushBlob(doc.bytes).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'E_DIGEST_MISMATCH',
      message: new RegExp(`${doc.digest} .* is held as 10 bytes, not ${doc.bytes.length}`),
    });
    expect(await codeOf(later.pushBlob(doc.bytes))).toBe('E_DIGEST_MISMATCH');
  });

  // publish stores its metadata before the lock, then again under it: a sweep
  // meanwhile (gc, the registry's own collection) took what no manifest named
  // yet, and the version must not be recorded without it. A client that
  // stored a small blob before asks about it again; it does not trust its memory.
  it('stores a document again that was swept since this client stored it', async () => {
    const doc = documentBlob({ swept: 'between two writes' });
    expect((await client.pushBlob(doc.bytes)).uploaded).toBe(true);
    const swept = await fetch(`http://${registry.host}/v2/acme/appliance/blobs/${doc.digest}`, {
      method: 'DELETE',
    });
    expect(swept.status).toBe(202);
    expect(await client.blobExists(doc.digest)).toBeUndefined();
    expect(await client.pushBlob(doc.bytes)).toEqual({
      digest: doc.digest,
      size: doc.size,
      uploaded: true,
    });
    expect((await client.readBlob(doc.digest, doc.size)).equals(doc.bytes)).toBe(true);
    // Still held: asked about, not sent again.
    expect((await client.pushBlob(doc.bytes)).uploaded).toBe(false);
  });

  it('refuses a manifest whose bytes at rest no longer match their digest', async () => {
    const doc = documentBlob({ tampered: false });
    await client.pushBlob(doc.bytes);
    const built = eventManifest(doc);
    await client.putManifest('tampered', built.bytes, built.mediaType);
    await writeFile(
      registry.blobPath(built.digest),
      built.bytes.toString().replace('event', 'evenT'),
    );
    expect(await codeOf(client.getManifest(built.digest))).toBe('E_DIGEST_MISMATCH');
    expect(await codeOf(client.getManifest('tampered'))).toBe('E_DIGEST_MISMATCH');
  });

  it('refuses bytes that are not what the caller says they are', async () => {
    const file = join(dir, 'liar.bin');
    const digest = await randomFile(file, 5000);
    const other = `sha256:${'0'.repeat(64)}`;
    expect(await codeOf(client.pushBlob(file, { digest: other }))).toBe('E_DIGEST_MISMATCH');
    expect(await codeOf(client.pushBlob(file, { digest, size: 4999 }))).toBe('E_DIGEST_MISMATCH');
    expect(await client.blobExists(other)).toBeUndefined();
  });

  it('names an unreachable registry after bounded retries', async () => {
    const port = await freePort();
    const events: RetryEvent[] = [];
    const gone = await RegistryClient.open(`oci://127.0.0.1:${port}/acme/appliance`, {
      env: {},
      retry: FAST,
      onRetry: (event) => events.push(event),
    });
    const error = await gone.ping().catch((e: unknown) => e);
    expect((error as FerryError).code).toBe('E_REGISTRY_UNREACHABLE');
    expect((error as FerryError).details.registry).toBe(`127.0.0.1:${port}`);
    expect(events.map((e) => e.attempt)).toEqual([1, 2]);
    expect(events[0]?.reason).toMatch(/ECONNREFUSED/);
  });
});
