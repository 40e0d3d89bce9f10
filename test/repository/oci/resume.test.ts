import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, type RetryEvent } from '../../../repository/oci/index.js';
import { tempDir } from '../../helpers.js';
import { startFaultProxy, type Fault, type FaultProxy } from './proxy.js';
import { randomFile, registryMissing, startRegistry, type Registry } from './registry.js';

const MiB = 1024 * 1024;
const SIZE = 5 * MiB + 777;
const FAST = { attempts: 4, firstDelayMs: 20, maxDelayMs: 100 };
/** Over 16 MiB: each try must move it on by the whole 1 MiB (PROGRESS_BYTES), not a sixteenth. */
const LARGE = 20 * MiB + 333;

describe.skipIf(registryMissing)('interrupted transfers', () => {
  let registry: Registry;
  let dir: string;
  let proxy: FaultProxy | undefined;

  beforeAll(async () => {
    registry = await startRegistry();
    dir = await tempDir('ferry-oci-resume-');
  });
  afterEach(() => proxy?.stop());
  afterAll(() => registry?.stop());

  async function through(faults: Fault[], name: string) {
    proxy = await startFaultProxy(registry.host, faults);
    const events: RetryEvent[] = [];
    const client = await RegistryClient.open(proxy.reference(name), {
      env: {},
      chunkSize: 2 * MiB,
      retry: FAST,
      onRetry: (event) => events.push(event),
    });
    // The same repository straight to the registry, to check what landed.
    const direct = await RegistryClient.open(registry.reference(name), { env: {}, retry: FAST });
    return { proxy, client, direct, events };
  }

  it('goes on from where the registry stopped when a chunk is refused with a 503', async () => {
    const file = join(dir, 'refused.bin');
    const digest = await randomFile(file, SIZE);
    const { proxy, client, direct, events } = await through(
      [{ method: 'PATCH', nth: 2, status: 503 }],
      'acme/refused',
    );
    expect(await client.pushBlob(file)).toEqual({ digest, size: SIZE, uploaded: true });
    expect(proxy.fired).toHaveLength(1);
    expect(events[0]?.reason).toMatch(/^503/);
    // Every byte went to the registry exactly once: the upload resumed, it did not start over.
    expect(proxy.up.PATCH).toBe(SIZE);
    await direct.pullBlob(digest, SIZE, join(dir, 'refused.out'));
    expect((await readFile(join(dir, 'refused.out'))).equals(await readFile(file))).toBe(true);
  });

  // Without a digest the client hashes the bytes as it sends them: the chunk sent
  // twice must not be hashed twice.
  it.each([
    ['known beforehand', true],
    ['taken while uploading', false],
  ])(
    'gives the same digest when the connection is cut in the middle of a chunk (digest %s)',
    async (_, known) => {
      const file = join(dir, `cut-${known}.bin`);
      const digest = await randomFile(file, SIZE);
      const { proxy, client, direct, events } = await through(
        [{ method: 'PATCH', nth: 2, cutRequestAfter: MiB }],
        `acme/cut-${known}`,
      );
      expect(await client.pushBlob(file, known ? { digest, size: SIZE } : {})).toEqual({
        digest,
        size: SIZE,
        uploaded: true,
      });
      expect(proxy.fired).toHaveLength(1);
      expect(events.length).toBeGreaterThan(0);
      // It asked the registry where the upload stood before anything else (Distribution
      // keeps the partial chunk, then refuses that upload's state: a new upload begins).
      const uploads = proxy.requests.filter((r) => r.path.includes('/blobs/uploads/'));
      expect(uploads.slice(0, 4).map((r) => r.method)).toEqual(['POST', 'PATCH', 'PATCH', 'GET']);
      expect(uploads.at(-1)?.method).toBe('PUT');
      expect(await direct.blobExists(digest)).toBe(SIZE);
      await direct.pullBlob(digest, SIZE, join(dir, `cut-${known}.out`));
      expect((await readFile(join(dir, `cut-${known}.out`))).equals(await readFile(file))).toBe(
        true,
      );
    },
  );

  it('gives up an upload the registry stops taking after the idle limit (FERRY_REGISTRY_IDLE_SECONDS), not five minutes, and goes on', async () => {
    const file = join(dir, 'stalled.bin');
    const digest = await randomFile(file, SIZE);
    proxy = await startFaultProxy(registry.host, [
      { method: 'PATCH', nth: 2, stallRequestAfter: MiB },
    ]);
    const events: RetryEvent[] = [];
    const client = await RegistryClient.open(proxy.reference('acme/stalled'), {
      env: { FERRY_REGISTRY_IDLE_SECONDS: '1' },
      chunkSize: 2 * MiB,
      retry: FAST,
      onRetry: (event) => events.push(event),
    });
    const started = Date.now();
    expect(await client.pushBlob(file)).toEqual({ digest, size: SIZE, uploaded: true });
    expect(proxy.fired).toHaveLength(1);
    expect(events.map((event) => event.reason)).toEqual(['ETIMEDOUT']);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('resumes a download cut in the middle with a Range request', async () => {
    const file = join(dir, 'down.bin');
    const digest = await randomFile(file, SIZE);
    const uploader = await RegistryClient.open(registry.reference('acme/down'), {
      env: {},
      retry: FAST,
    });
    await uploader.pushBlob(file);
    const { proxy, client, events } = await through(
      [{ method: 'GET', path: /\/blobs\/sha256:/, cutResponseAfter: 2 * MiB }],
      'acme/down',
    );
    const out = join(dir, 'down.out');
    const seen: number[] = [];
    await client.pullBlob(digest, SIZE, out, { onProgress: (done) => seen.push(done) });
    expect((await readFile(out)).equals(await readFile(file))).toBe(true);
    expect(events).toHaveLength(1);
    // The second request asked only for the rest.
    const gets = proxy.requests.filter((r) => r.method === 'GET');
    expect(gets.map((r) => r.range === undefined)).toEqual([true, false]);
    const from = Number(/^bytes=(\d+)-$/.exec(gets[1]?.range ?? '')?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(proxy.down).toBeLessThan(SIZE + MiB);
    expect(seen.at(-1)).toBe(SIZE);
  });

  /** `name` in the registry (straight, not through the proxy) holding `bytes` random bytes. */
  async function published(name: string, bytes: number) {
    const file = join(dir, `${name.replace('/', '-')}.bin`);
    const digest = await randomFile(file, bytes);
    const uploader = await RegistryClient.open(registry.reference(name), { env: {}, retry: FAST });
    await uploader.pushBlob(file);
    return { file, digest };
  }

  // A link (or a hostile proxy) that passes a little of every download and then
  // holds the connection silent: each try moves the blob on, by a few KiB.
  it('gives up a download that trickles (16 KiB a connection, then silence) after the bounded tries, says so, and leaves no partial file', async () => {
    const TRICKLE = 16 * 1024;
    const { digest } = await published('acme/trickle', LARGE);
    proxy = await startFaultProxy(registry.host, [
      { method: 'GET', path: /\/blobs\/sha256:/, every: true, stallResponseAfter: TRICKLE },
    ]);
    const events: RetryEvent[] = [];
    const client = await RegistryClient.open(proxy.reference('acme/trickle'), {
      env: { FERRY_REGISTRY_IDLE_SECONDS: '0.25' },
      retry: FAST,
      onRetry: (event) => events.push(event),
    });
    const started = Date.now();
    const error = await client
      .pullBlob(digest, LARGE, join(dir, 'trickle.out'))
      .catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(error).toMatchObject({
      code: 'E_REGISTRY_UNREACHABLE',
      details: { repository: 'acme/trickle', reference: digest },
    });
    expect((error as { details: { hint?: string } }).details.hint).toMatch(
      /^the link to the registry, or a proxy in front of it, passes a little .* \(0\.25 s now\)$/,
    );
    const message = (error as Error).message;
    expect(message).toMatch(
      /trickled: 4 tries in a row .* less than the 1 MiB that starts the count again;/,
    );
    expect(message).toMatch(/stalled: nothing arrived for 250 ms/);
    expect(message).toContain(`${FAST.attempts * TRICKLE} of its ${LARGE} bytes arrived`);
    expect(events).toHaveLength(FAST.attempts - 1);
    expect(events.map((event) => event.reason)).toEqual(
      Array<string>(FAST.attempts - 1).fill('ETIMEDOUT'),
    );
    await expect(readFile(join(dir, 'trickle.out'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await readdir(dir)).filter((name) => name.startsWith('.trickle.out.'))).toEqual([]);
  }, 30_000);

  // A slow link behind a proxy that cuts long connections: each try brings less than the
  // minimum, but the tries add up to it, again and again.
  it('finishes a download whose every connection breaks after 768 KiB, over more tries than the attempts', async () => {
    const CUT = 768 * 1024;
    const { file, digest } = await published('acme/dribble', LARGE);
    const { client, events } = await through(
      [{ method: 'GET', path: /\/blobs\/sha256:/, every: true, cutResponseAfter: CUT }],
      'acme/dribble',
    );
    await client.pullBlob(digest, LARGE, join(dir, 'dribble.out'));
    expect((await readFile(join(dir, 'dribble.out'))).equals(await readFile(file))).toBe(true);
    expect(events.length).toBeGreaterThan(FAST.attempts);
  }, 60_000);

  it('finishes a download whose every connection breaks after a large chunk, over more tries than the attempts', async () => {
    const { file, digest } = await published('acme/flaky', LARGE);
    const { client, events } = await through(
      [
        {
          method: 'GET',
          path: /\/blobs\/sha256:/,
          every: true,
          cutResponseAfter: MiB + MiB / 2,
        },
      ],
      'acme/flaky',
    );
    const out = join(dir, 'flaky.out');
    await client.pullBlob(digest, LARGE, out);
    expect((await readFile(out)).equals(await readFile(file))).toBe(true);
    // Thirteen breaks, over FAST's four attempts: each moved it on by the minimum, and started the count again.
    expect(events.length).toBeGreaterThan(FAST.attempts);
    expect(events.every((event) => event.attempt === 1)).toBe(true);
  });

  it('gives up after the bounded tries, names the registry, and leaves no partial file', async () => {
    const file = join(dir, 'never.bin');
    const digest = await randomFile(file, 3 * MiB);
    // One more than the tries: the first try asks twice, once with pull's own
    // reader (see direct.ts), which leaves the 502 to node:http to ask again.
    const faults = Array.from({ length: FAST.attempts + 1 }, (_, i) => ({
      method: 'GET',
      path: /\/blobs\/sha256:/,
      nth: i + 1,
      status: 502,
    }));
    const uploader = await RegistryClient.open(registry.reference('acme/never'), {
      env: {},
      retry: FAST,
    });
    await uploader.pushBlob(file);
    const { client, events } = await through(faults, 'acme/never');
    const error = await client
      .pullBlob(digest, 3 * MiB, join(dir, 'never.out'))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'E_REGISTRY', details: { repository: 'acme/never' } });
    expect(events).toHaveLength(FAST.attempts - 1);
    await expect(readFile(join(dir, 'never.out'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
