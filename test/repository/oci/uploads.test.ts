import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FerryError } from '../../../manifest-schema/errors.js';
import { RegistryClient } from '../../../repository/oci/index.js';
import { tempDir } from '../../helpers.js';
import { startFaultProxy, type Dialect, type Fault, type FaultProxy } from './proxy.js';
import { randomFile, registryMissing, startRegistry, type Registry } from './registry.js';

const MiB = 1024 * 1024;
const SIZE = 9 * MiB + 333;
const FAST = { attempts: 4, firstDelayMs: 20, maxDelayMs: 100 };

interface UploadSetup {
  faults?: Fault[];
  dialect?: Dialect;
  size?: number;
  chunkSize?: number;
}

// Streamed uploads in front of the real registry, through a proxy that answers
// as the registries Ferry names in its README do where they differ from
// Distribution (GHCR refuses a Content-Range chunk over 4 MiB with 416; ECR's
// Range answers stop moving after an upload's first chunk), and as registries
// and proxies that answer in unusual ways: what lands must be the blob, and
// what the client leaves behind must be nothing.
describe.skipIf(registryMissing)('streamed uploads', () => {
  let registry: Registry;
  let dir: string;
  let proxy: FaultProxy | undefined;

  beforeAll(async () => {
    registry = await startRegistry();
    dir = await tempDir('ferry-oci-upload-faults-');
  });
  afterEach(() => proxy?.stop());
  afterAll(() => registry?.stop());

  /** Uploads the registry still holds bytes of (Distribution keeps a cancelled one's folder, emptied). */
  async function heldUploads(name: string): Promise<string[]> {
    const root = join(registry.storage, 'docker/registry/v2/repositories/acme', name, '_uploads');
    const held: string[] = [];
    for (const id of await readdir(root).catch(() => [] as string[]))
      if ((await readdir(join(root, id))).includes('data')) held.push(id);
    return held;
  }

  /** A proxy speaking `dialect` with `faults`, `size` random bytes to send, and a client through the proxy. */
  async function uploadThrough(
    name: string,
    { faults = [], dialect = {}, size = SIZE, chunkSize }: UploadSetup = {},
  ) {
    proxy = await startFaultProxy(registry.host, faults, dialect);
    const file = join(dir, `${name}.bin`);
    const digest = await randomFile(file, size);
    const client = await RegistryClient.open(proxy.reference(`acme/${name}`), {
      env: {},
      retry: FAST,
      ...(chunkSize === undefined ? {} : { chunkSize }),
    });
    return { proxy, file, digest, client };
  }

  /** Pushes SIZE random bytes through the proxy; checks what landed. */
  async function pushThrough(name: string, dialect: Dialect, faults: Fault[] = []) {
    const { proxy, file, digest, client } = await uploadThrough(name, { faults, dialect });
    expect(await client.pushBlob(file)).toEqual({ digest, size: SIZE, uploaded: true });
    expect(proxy.fired).toHaveLength(faults.length);
    const direct = await RegistryClient.open(registry.reference(`acme/${name}`), { env: {} });
    await direct.pullBlob(digest, SIZE, join(dir, `${name}.out`));
    expect((await readFile(join(dir, `${name}.out`))).equals(await readFile(file))).toBe(true);
    return proxy.requests.filter((r) => r.path.includes('/blobs/uploads/'));
  }

  // A registry that keeps what arrived of a cut streamed upload: the rest goes
  // as one chunk from there, every byte sent once.
  it('sends only the rest when the registry kept what arrived before a cut', async () => {
    const uploads = await pushThrough('kept', { keepsCutUploads: true }, [
      { method: 'PATCH', cutRequestAfter: 5 * MiB },
    ]);
    expect(uploads.map((r) => `${r.method} ${r.contentRange ?? ''}`.trim())).toEqual([
      'POST',
      'PATCH',
      'GET',
      `PATCH ${5 * MiB}-${SIZE - 1}`,
      'PUT',
    ]);
    expect(proxy?.up.PATCH).toBe(SIZE);
    expect(await heldUploads('kept')).toEqual([]);
  });

  // Spec: a client cancels an upload it abandons; else the registry holds its
  // bytes until it times them out (Distribution: a week).
  it.each([
    [
      'its Range beyond what was sent',
      'beyond',
      {},
      [{ method: 'PATCH', answerRange: `0-${SIZE + 9}` }],
    ],
    [
      'its Range short of what was sent',
      'short',
      {},
      [{ method: 'PATCH', answerRange: `0-${MiB - 1}` }],
    ],
    [
      '416 before reading the body',
      'early416',
      {},
      [{ method: 'PATCH', status: 416, early: true }],
    ],
    [
      'the rest after a cut refused over GHCR’s limit',
      'ghcr-rest',
      { keepsCutUploads: true, rangedPatchLimit: 4 * MiB },
      [{ method: 'PATCH', cutRequestAfter: 3 * MiB }],
    ],
  ] as Array<[string, string, Dialect, Fault[]]>)(
    'cancels the upload it starts over from, after a PATCH answered with %s',
    async (_, name, dialect, faults) => {
      const uploads = await pushThrough(name, dialect, faults);
      expect(uploads.filter((r) => r.method === 'POST')).toHaveLength(2);
      expect(uploads.filter((r) => r.method === 'DELETE')).toHaveLength(1);
      expect(await heldUploads(name)).toEqual([]);
    },
  );

  // The whole blob goes in one request now: a proxy's request size limit
  // (nginx's client_max_body_size) that 256 MiB chunks fitted under refuses it,
  // often with an HTML page and no registry words. The error must say so.
  it('says a refusal for size (413) is a request size limit, naming the blob', async () => {
    const { proxy, file, client } = await uploadThrough('too-large', {
      faults: [{ method: 'PATCH', status: 413, early: true }],
    });
    const error = await client.pushBlob(file).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'E_REGISTRY',
      message: /413/,
      details: { registry: proxy.host, repository: 'acme/too-large', reference: file },
    });
    expect((error as FerryError).hint).toMatch(/size limit/);
    expect(await heldUploads('too-large')).toEqual([]);
  });

  // Where the upload stands is asked after every failed try: a registry that
  // cannot say (its status query fails, 5xx, every time) must not fail every
  // try left when a new upload would go through.
  it('starts a new upload when the registry keeps failing to say where the upload stands', async () => {
    const statusFails = [1, 2, 3, 4, 5].map((nth) => ({
      method: 'GET',
      path: /\/blobs\/uploads\//,
      nth,
      status: 503,
    }));
    const { proxy, file, digest, client } = await uploadThrough('no-status', {
      faults: [{ method: 'PATCH', status: 503 }, ...statusFails],
    });
    expect(await client.pushBlob(file)).toEqual({ digest, size: SIZE, uploaded: true });
    const uploads = proxy.requests.filter((r) => r.path.includes('/blobs/uploads/'));
    expect(uploads.filter((r) => r.method === 'POST')).toHaveLength(2);
    expect(await heldUploads('no-status')).toEqual([]);
  });

  it('names the file it was uploading when the tries run out', async () => {
    const { proxy, file, client } = await uploadThrough('never-taken', {
      faults: Array.from({ length: FAST.attempts }, (_, k) => ({
        method: 'PATCH',
        nth: k + 1,
        status: 503,
      })),
      size: MiB,
    });
    await expect(client.pushBlob(file)).rejects.toMatchObject({
      code: 'E_REGISTRY',
      message: new RegExp(`kept failing: 503.*\\(uploading ${file}\\)$`),
      details: { reference: file, registry: proxy.host },
    });
  });

  // Waiting on the DELETE would hold the upload for the 5-minute answer timeout.
  it('goes on after a while when a cancel is never answered, and breaks it off when closed', async () => {
    const { proxy, file, digest, client } = await uploadThrough('no-cancel', {
      faults: [
        { method: 'PATCH', status: 416, early: true },
        { method: 'DELETE', neverAnswered: true },
      ],
    });
    expect(await client.pushBlob(file)).toEqual({ digest, size: SIZE, uploaded: true });
    expect(proxy.fired).toHaveLength(2);
    client.close();
    for (let wait = 0; wait < 30 && proxy.brokenOff.length === 0; wait++)
      await new Promise((resolve) => setTimeout(resolve, 100));
    expect(proxy.brokenOff).toEqual([expect.stringMatching(/\/blobs\/uploads\//)]);
  });

  it('sends a blob in one PATCH without a Content-Range, as docker push and skopeo do', async () => {
    const uploads = await pushThrough('plain', {});
    expect(uploads.map((r) => r.method)).toEqual(['POST', 'PATCH', 'PUT']);
    expect(uploads[1]?.contentRange).toBeUndefined();
  });

  // A document is a few hundred bytes, and a publish or promote writes several:
  // each one's HEAD and PATCH were two round trips of the ten a write took.
  it('sends a fresh document in the PUT that closes its upload, asking nothing first', async () => {
    proxy = await startFaultProxy(registry.host, [{ method: 'PUT', status: 503 }]);
    const client = await RegistryClient.open(proxy.reference('acme/documents'), {
      env: {},
      retry: FAST,
    });
    const bytes = Buffer.from('{"op":"publish","version":"1.0.0","time":"2026-12-05T07:00:00Z"}');
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    expect(await client.pushBlob(bytes, { fresh: true })).toEqual({
      digest,
      size: bytes.length,
      uploaded: true,
    });
    // After the 503 it asked whether the blob had landed, then where its upload
    // stood (nothing held), and closed that upload with the bytes.
    expect(proxy.requests.map((r) => r.method)).toEqual(['POST', 'PUT', 'HEAD', 'GET', 'PUT']);
    const direct = await RegistryClient.open(registry.reference('acme/documents'), { env: {} });
    expect((await direct.readBlob(digest, bytes.length)).equals(bytes)).toBe(true);
  });

  // Storing a blob again does not mend a damaged copy (see client.test.ts), so
  // small bytes that may be held already are asked about first.
  it('asks about small bytes that are not fresh first, then sends them in the closing PUT', async () => {
    proxy = await startFaultProxy(registry.host, []);
    const client = await RegistryClient.open(proxy.reference('acme/documents'), { env: {} });
    const bytes = Buffer.from('{"formatVersion":1,"product":"acme"}');
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    expect(await client.pushBlob(bytes)).toEqual({ digest, size: bytes.length, uploaded: true });
    expect(proxy.requests.map((r) => r.method)).toEqual(['HEAD', 'POST', 'PUT']);
    expect(await client.pushBlob(bytes)).toEqual({ digest, size: bytes.length, uploaded: false });
    expect(proxy.requests.slice(3).map((r) => r.method)).toEqual(['HEAD']);
  });

  // A registry (or a proxy) that reads a PUT's Content-Length but keeps none
  // of its bytes closes an empty upload: DIGEST_INVALID. It took documents
  // streamed (PATCH, then PUT) before they went in the PUT; they still must.
  it('streams small blobs when the registry drops the body of the PUT that closes an upload', async () => {
    const dropped = [1, 2, 3].map((nth) => ({ method: 'PUT', nth, dropBody: true }));
    proxy = await startFaultProxy(registry.host, dropped);
    const client = await RegistryClient.open(proxy.reference('acme/dropped-bodies'), {
      env: {},
      retry: FAST,
    });
    const direct = await RegistryClient.open(registry.reference('acme/dropped-bodies'), {
      env: {},
    });
    for (const text of ['{"op":"publish"}', '{"op":"promote"}']) {
      const bytes = Buffer.from(text);
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      expect(await client.pushBlob(bytes, { fresh: true })).toEqual({
        digest,
        size: bytes.length,
        uploaded: true,
      });
      expect((await direct.readBlob(digest, bytes.length)).equals(bytes)).toBe(true);
    }
    // The first was sent in a PUT, then streamed; the second streamed at once.
    expect(proxy.requests.filter((r) => r.method !== 'DELETE').map((r) => r.method)).toEqual([
      'POST',
      'PUT',
      'POST',
      'PATCH',
      'PUT',
      'POST',
      'PATCH',
      'PUT',
    ]);
    expect(await heldUploads('dropped-bodies')).toEqual([]);
  });

  // 202 is "go on", not "stored": a registry that answers it to the PUT that
  // closes an upload took its bytes (if any) as a chunk and kept the upload
  // open. Believed, the blob was reported stored, and remembered as held, so
  // that the manifest naming it was refused MANIFEST_BLOB_UNKNOWN.
  it('does not take 202 to the PUT that closes an upload for a stored blob', async () => {
    proxy = await startFaultProxy(registry.host, [{ method: 'PUT', status: 202 }]);
    const client = await RegistryClient.open(proxy.reference('acme/put-202'), {
      env: {},
      retry: FAST,
    });
    const direct = await RegistryClient.open(registry.reference('acme/put-202'), { env: {} });
    const bytes = Buffer.from('{"op":"approve"}');
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    // The PUT carrying it answered 202: sent again, streamed.
    expect(await client.pushBlob(bytes)).toEqual({ digest, size: bytes.length, uploaded: true });
    expect((await direct.readBlob(digest, bytes.length)).equals(bytes)).toBe(true);
    await proxy.stop();

    // Every PUT answered 202: an error naming the blob, and nothing remembered as held.
    const always = [1, 2, 3, 4].map((nth) => ({ method: 'PUT', nth, status: 202 }));
    proxy = await startFaultProxy(registry.host, always);
    const other = await RegistryClient.open(proxy.reference('acme/put-202'), {
      env: {},
      retry: FAST,
    });
    const next = Buffer.from('{"op":"revoke"}');
    const nextDigest = `sha256:${createHash('sha256').update(next).digest('hex')}`;
    await expect(other.pushBlob(next)).rejects.toMatchObject({
      code: 'E_REGISTRY',
      message: new RegExp(`202.*${nextDigest}`),
      details: { reference: nextDigest, registry: proxy.host },
    });
    expect(await direct.blobExists(nextDigest)).toBeUndefined();
    await expect(other.pushBlob(next)).rejects.toMatchObject({ code: 'E_REGISTRY' });
    expect(await heldUploads('put-202')).toEqual([]);
  });

  it('publishes over 4 MiB to a registry that refuses larger Content-Range chunks (GHCR)', async () => {
    const uploads = await pushThrough('ghcr', { rangedPatchLimit: 4 * MiB });
    expect(uploads.map((r) => r.method)).toEqual(['POST', 'PATCH', 'PUT']);
  });

  it('sends the blob again from its start after a 503, under the same limit', async () => {
    const uploads = await pushThrough('ghcr-503', { rangedPatchLimit: 4 * MiB }, [
      { method: 'PATCH', status: 503 },
    ]);
    expect(proxy?.fired).toHaveLength(1);
    // It asked where the upload stood (nothing had landed), then sent it all, streamed.
    expect(uploads.map((r) => r.method)).toEqual(['POST', 'PATCH', 'GET', 'PATCH', 'PUT']);
    expect(uploads.filter((r) => r.contentRange !== undefined)).toEqual([]);
  });

  // The digest is taken from the bytes as they go: those sent twice are hashed once.
  it('gives the same digest when the stream is cut in the middle, under the same limit', async () => {
    const uploads = await pushThrough('ghcr-cut', { rangedPatchLimit: 4 * MiB }, [
      { method: 'PATCH', cutRequestAfter: 5 * MiB },
    ]);
    expect(proxy?.fired).toHaveLength(1);
    expect(uploads.filter((r) => r.method === 'PATCH').length).toBeGreaterThan(1);
    expect(uploads.at(-1)?.method).toBe('PUT');
  });

  it('publishes to a registry whose Range answers stop at the first chunk (ECR)', async () => {
    const uploads = await pushThrough('ecr', { staleRange: true });
    expect(uploads.map((r) => r.method)).toEqual(['POST', 'PATCH', 'PUT']);
  });

  // What the chunks this client once sent by default met there: shown, so that
  // the dialects above are what they claim to be.
  it.each([
    ['GHCR', { rangedPatchLimit: 4 * MiB }, 8 * MiB],
    ['ECR', { staleRange: true }, 2 * MiB],
  ] as const)(
    'Content-Range chunks fail against the %s dialect, as its users report',
    async (_, dialect, chunkSize) => {
      const { file, client } = await uploadThrough(`chunks-${chunkSize}`, { dialect, chunkSize });
      await expect(client.pushBlob(file)).rejects.toMatchObject({
        code: 'E_REGISTRY',
        message: /kept dropping the upload/,
      });
    },
  );
});
