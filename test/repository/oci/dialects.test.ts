import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../../repository/oci/index.js';
import { tempDir } from '../../helpers.js';
import { startFaultProxy, type Dialect, type Fault, type FaultProxy } from './proxy.js';
import { randomFile, registryMissing, startRegistry, type Registry } from './registry.js';

const MiB = 1024 * 1024;
const SIZE = 9 * MiB + 333;
const FAST = { attempts: 4, firstDelayMs: 20, maxDelayMs: 100 };

// Uploads as the registries Ferry names in its README answer them, where they
// differ from Distribution (which runs here, behind the proxy that speaks
// their dialect): GHCR refuses a Content-Range chunk over 4 MiB with 416; ECR's
// Range answers stop moving after an upload's first chunk.
describe.skipIf(registryMissing)('uploads as GHCR and ECR take them', () => {
  let registry: Registry;
  let dir: string;
  let proxy: FaultProxy | undefined;

  beforeAll(async () => {
    registry = await startRegistry();
    dir = await tempDir('ferry-oci-dialects-');
  });
  afterEach(() => proxy?.stop());
  afterAll(() => registry?.stop());

  /** Pushes SIZE random bytes through the proxy with the client's defaults; checks what landed. */
  async function pushThrough(name: string, dialect: Dialect, faults: Fault[] = []) {
    proxy = await startFaultProxy(registry.host, faults, dialect);
    const file = join(dir, `${name}.bin`);
    const digest = await randomFile(file, SIZE);
    const client = await RegistryClient.open(proxy.reference(`acme/${name}`), {
      env: {},
      retry: FAST,
    });
    expect(await client.pushBlob(file)).toEqual({ digest, size: SIZE, uploaded: true });
    const direct = await RegistryClient.open(registry.reference(`acme/${name}`), { env: {} });
    await direct.pullBlob(digest, SIZE, join(dir, `${name}.out`));
    expect((await readFile(join(dir, `${name}.out`))).equals(await readFile(file))).toBe(true);
    return proxy.requests.filter((r) => r.path.includes('/blobs/uploads/'));
  }

  it('sends a blob in one PATCH without a Content-Range, as docker push and skopeo do', async () => {
    const uploads = await pushThrough('plain', {});
    expect(uploads.map((r) => r.method)).toEqual(['POST', 'PATCH', 'PUT']);
    expect(uploads[1]?.contentRange).toBeUndefined();
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
      proxy = await startFaultProxy(registry.host, [], dialect);
      const file = join(dir, `chunks-${chunkSize}.bin`);
      await randomFile(file, SIZE);
      const client = await RegistryClient.open(proxy.reference('acme/chunks'), {
        env: {},
        chunkSize,
        retry: FAST,
      });
      await expect(client.pushBlob(file)).rejects.toMatchObject({
        code: 'E_REGISTRY',
        message: /kept dropping the upload/,
      });
    },
  );
});
