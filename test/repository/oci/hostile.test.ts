import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../../../manifest-schema/errors.js';
import { RegistryClient, type RetryEvent } from '../../../repository/oci/index.js';
import { tempDir } from '../../helpers.js';

/**
 * A registry that misbehaves on purpose, where Distribution cannot be made
 * to: a few lines of node:http whose answer each test sets. Every failure
 * must be a FerryError with a stable code that names the registry and
 * repository, at once when retrying cannot help.
 */
type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Hostile {
  host: string;
  handler: Handler;
  requests: string[];
  server: Server;
}

async function startHostile(): Promise<Hostile> {
  const hostile: Hostile = {
    host: '',
    handler: (_req, res) => res.writeHead(404).end(),
    requests: [],
    server: createServer((req, res) => {
      hostile.requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
      hostile.handler(req, res);
    }),
  };
  await new Promise<void>((resolve) => hostile.server.listen(0, '127.0.0.1', resolve));
  hostile.host = `127.0.0.1:${(hostile.server.address() as AddressInfo).port}`;
  return hostile;
}

async function stop(hostile: Hostile): Promise<void> {
  hostile.server.closeAllConnections();
  await new Promise((resolve) => hostile.server.close(resolve));
}

async function failure(promise: Promise<unknown>): Promise<FerryError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof FerryError) return error;
    throw error;
  }
  throw new Error('expected a FerryError');
}

const FAST = { attempts: 3, firstDelayMs: 10, maxDelayMs: 50 };

describe('a hostile or broken registry', () => {
  let hostile: Hostile;
  let retries: RetryEvent[];
  const client = () =>
    RegistryClient.open(`oci://${hostile.host}/acme/app`, {
      retry: FAST,
      onRetry: (event) => retries.push(event),
      env: {},
    });

  beforeAll(async () => {
    hostile = await startHostile();
  });
  afterAll(() => stop(hostile));
  afterEach(() => {
    hostile.requests = [];
    retries = [];
  });
  retries = [];

  it.each([
    ['file:///etc/passwd', 'a file: URL'],
    ['ftp://127.0.0.1/x', 'an ftp: URL'],
    ['http://[::1', 'a Location that does not parse'],
  ])('a redirect to %s (%s) is refused at once with E_REGISTRY naming it', async (location) => {
    hostile.handler = (_req, res) => res.writeHead(307, { location, 'content-length': '0' }).end();
    const error = await failure((await client()).getManifest('1.0.0'));
    expect(error.code).toBe('E_REGISTRY');
    expect(error.message).toContain(JSON.stringify(location));
    expect(error.message).toContain('/v2/acme/app/manifests/1.0.0');
    expect(error.details).toMatchObject({ registry: hostile.host, repository: 'acme/app' });
    expect(retries).toEqual([]);
  });

  it.each([401, 403])(
    'a blob store the registry redirects to that answers %i is named as such (E_REGISTRY), not taken for refused credentials',
    async (status) => {
      const store = await startHostile();
      try {
        store.handler = (req, res) => {
          // Ferry sends its credentials to the registry only, never where it redirects.
          expect(req.headers.authorization).toBeUndefined();
          res.writeHead(status, { 'content-length': '0' }).end();
        };
        hostile.handler = (_req, res) =>
          res
            .writeHead(307, {
              location: `http://${store.host}/signed/blob?expires=1`,
              'content-length': '0',
            })
            .end();
        const digest = `sha256:${'a'.repeat(64)}`;
        const out = join(await tempDir('ferry-oci-store-'), 'blob');
        const error = await failure((await client()).pullBlob(digest, 10, out));
        expect(error.code).toBe('E_REGISTRY');
        expect(error.message).toBe(
          `http://${store.host}, where registry ${hostile.host} redirected the request to give blob ${digest}, refused it (${status})`,
        );
        expect(error.hint).toContain('signed URL that expired');
        expect(store.requests).toEqual(['GET /signed/blob?expires=1']);
        expect(retries).toEqual([]);
      } finally {
        await stop(store);
      }
    },
  );

  it.each(['[0:0:0:0:0:0:0:1]:PORT'])(
    'a registry written %s (not as URLs spell its origin) gets its credentials, and its own 401 is not taken for a redirect',
    async (written) => {
      const server = createServer((req, res) => {
        if (req.headers.authorization !== `Basic ${Buffer.from('ci:pw').toString('base64')}`)
          res
            .writeHead(401, { 'www-authenticate': 'Basic realm="r"', 'content-length': '0' })
            .end();
        else
          res
            .writeHead(200, { 'content-length': '2', 'content-type': 'application/json' })
            .end('{}');
      });
      const local = written.startsWith('[') ? '::1' : '127.0.0.1';
      await new Promise<void>((resolve) => server.listen(0, local, resolve));
      try {
        const port = (server.address() as AddressInfo).port;
        // As `registry.example.com:443` is: URLs shorten both, and the credentials go by origin.
        const registry = await RegistryClient.open(
          `oci://${written.replace('PORT', String(port))}/acme/app`,
          { retry: FAST, env: { FERRY_REGISTRY_USER: 'ci', FERRY_REGISTRY_PASSWORD: 'pw' } },
        );
        await registry.ping();
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    },
  );

  it('an upload Location that does not parse is E_REGISTRY, not an internal error', async () => {
    hostile.handler = (req, res) => {
      req.resume();
      if (req.method === 'HEAD') res.writeHead(404).end();
      else res.writeHead(202, { location: 'http://[::1', 'content-length': '0' }).end();
    };
    const error = await failure((await client()).pushBlob(Buffer.from('bytes')));
    expect(error.code).toBe('E_REGISTRY');
    expect(error.message).toMatch(/the upload of blob sha256:[0-9a-f]{64} leads to/);
    expect(retries).toEqual([]);
  });

  describe('plain HTTP to a host that is not this machine, without --insecure', () => {
    // A server on an address of this machine that is not loopback, where there is one:
    // without the refusal, the redirected request (or the bundle's PATCH) arrives there.
    let elsewhere: { origin: string; requests: string[]; server?: Server };
    beforeAll(async () => {
      const address = Object.values(networkInterfaces())
        .flat()
        .find((one) => one?.family === 'IPv4' && !one.internal)?.address;
      const requests: string[] = [];
      if (!address) {
        elsewhere = { origin: 'http://registry.invalid:5000', requests };
        return;
      }
      const server = createServer((req, res) => {
        requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
        req.resume();
        res.writeHead(404, { 'content-length': '0' }).end();
      });
      await new Promise<void>((resolve) => server.listen(0, address, resolve));
      const port = (server.address() as AddressInfo).port;
      elsewhere = { origin: `http://${address}:${port}`, requests, server };
    });
    afterAll(async () => {
      elsewhere.server?.closeAllConnections();
      await new Promise((resolve) =>
        elsewhere.server ? elsewhere.server.close(resolve) : resolve(undefined),
      );
    });

    it('a redirect there is refused at once with E_REGISTRY, and never followed', async () => {
      hostile.handler = (req, res) =>
        res
          .writeHead(307, {
            location: `${elsewhere.origin}${req.url ?? ''}`,
            'content-length': '0',
          })
          .end();
      const error = await failure((await client()).getManifest('1.0.0'));
      expect(error.code).toBe('E_REGISTRY');
      expect(error.message).toContain(`leads to ${elsewhere.origin}, over plain HTTP`);
      expect(error.details).toMatchObject({ registry: hostile.host, repository: 'acme/app' });
      expect(error.hint).toContain('--insecure');
      expect(elsewhere.requests).toEqual([]);
      expect(retries).toEqual([]);
    });

    it('with --insecure, even from a registry on this machine, it is followed', async () => {
      hostile.handler = (req, res) =>
        res
          .writeHead(307, {
            location: `${elsewhere.origin}${req.url ?? ''}`,
            'content-length': '0',
          })
          .end();
      const insecure = await RegistryClient.open(`oci://${hostile.host}/acme/app`, {
        retry: FAST,
        env: {},
        insecure: true,
      });
      const error = await failure(insecure.getManifest('1.0.0'));
      expect(error.message).not.toContain('over plain HTTP');
      if (elsewhere.server)
        expect(elsewhere.requests).toEqual(['GET /v2/acme/app/manifests/1.0.0']);
      elsewhere.requests.length = 0;
    });

    it('an upload Location there is refused before a byte of the blob is sent', async () => {
      hostile.handler = (req, res) => {
        req.resume();
        if (req.method === 'HEAD') res.writeHead(404, { 'content-length': '0' }).end();
        else if (req.method === 'DELETE') res.writeHead(204).end();
        else
          res
            .writeHead(202, { location: `${elsewhere.origin}/upload/1`, 'content-length': '0' })
            .end();
      };
      const error = await failure((await client()).pushBlob(randomBytes(2 * 1024 * 1024)));
      expect(error.code).toBe('E_REGISTRY');
      expect(error.message).toMatch(
        /the upload of blob sha256:[0-9a-f]{64} leads to .*, over plain HTTP/,
      );
      expect(elsewhere.requests).toEqual([]);
      expect(hostile.requests.filter((r) => !r.startsWith('HEAD '))).toEqual([
        'POST /v2/acme/app/blobs/uploads/',
      ]);
    });
  });

  describe('a request redirected elsewhere: a proxy’s login page', () => {
    // A proxy in front of the registry that sends every request to its login page.
    let login: Hostile;
    beforeAll(async () => {
      login = await startHostile();
      login.handler = (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/html', 'content-length': '6' }).end('log in');
      };
    });
    afterAll(() => stop(login));
    afterEach(() => {
      login.requests = [];
    });
    const manifest = Buffer.from(`{"mediaType":"application/vnd.oci.image.manifest.v1+json"}`);
    const type = 'application/vnd.oci.image.manifest.v1+json';

    it.each([
      [302, 'store manifest 1.0.0', (c: RegistryClient) => c.putManifest('1.0.0', manifest, type)],
      [
        303,
        `delete manifest sha256:${'a'.repeat(64)}`,
        (c: RegistryClient) => c.deleteManifest(`sha256:${'a'.repeat(64)}`),
      ],
      [307, 'store manifest 1.0.0', (c: RegistryClient) => c.putManifest('1.0.0', manifest, type)],
    ])(
      '%i to a login page on another host is no write done: E_REGISTRY, and the write is not sent there',
      async (status, doing, write) => {
        hostile.handler = (req, res) => {
          req.resume();
          res
            .writeHead(status, {
              location: `http://${login.host}/login?state=s3cret`,
              'content-length': '0',
            })
            .end();
        };
        const error = await failure(write(await client()));
        expect(error.code).toBe('E_REGISTRY');
        expect(error.message).toBe(
          `registry ${hostile.host} answered the request to ${doing} with ${status} (to http://${login.host}/login), and did not do it`,
        );
        expect(error.hint).toContain('login page');
        expect(login.requests).toEqual([]);
        expect(retries).toEqual([]);
      },
    );

    it.each(['1.0.0', `sha256:${'b'.repeat(64)}`])(
      'a manifest read (%s) sent there is E_REGISTRY naming where, not a repository damaged or tampered with (exit 3)',
      async (reference) => {
        hostile.handler = (_req, res) =>
          res
            .writeHead(302, { location: `http://${login.host}/login`, 'content-length': '0' })
            .end();
        const error = await failure((await client()).getManifest(reference));
        expect(error.code).toBe('E_REGISTRY');
        expect(error.message).toBe(
          `registry ${hostile.host} redirected the request for manifest ${reference} to http://${login.host}/login, which answered "text/html", not a manifest`,
        );
        expect(error.hint).toContain('login page');
      },
    );

    it('303 to the PUT that closes an upload is no blob stored, even on the registry itself', async () => {
      hostile.handler = (req, res) => {
        req.resume();
        if (req.method === 'POST')
          res
            .writeHead(202, { location: '/v2/acme/app/blobs/uploads/u1', 'content-length': '0' })
            .end();
        else if (req.method === 'PUT')
          res
            .writeHead(303, { location: '/v2/acme/app/blobs/uploads/u1', 'content-length': '0' })
            .end();
        // The upload's status: still open, nothing stored.
        else if (req.method === 'GET')
          res.writeHead(204, { range: '0-0', 'content-length': '0' }).end();
        else res.writeHead(404, { 'content-length': '0' }).end();
      };
      const error = await failure(
        (await client()).pushBlob(Buffer.from('a document'), { fresh: true }),
      );
      expect(error.code).toBe('E_REGISTRY');
      expect(error.message).toMatch(
        /answered the request to store blob sha256:[0-9a-f]{64} with 303/,
      );
      expect(hostile.requests.filter((r) => r.startsWith('GET '))).toEqual([]);
    });

    it('a 307 to the registry itself is followed, body and all', async () => {
      hostile.handler = (req, res) => {
        if (req.url === '/v2/acme/app/manifests/1.0.0')
          res
            .writeHead(307, {
              location: '/v2/acme/app/manifests/1.0.0?moved=1',
              'content-length': '0',
            })
            .end();
        else {
          const body: Buffer[] = [];
          req.on('data', (chunk: Buffer) => body.push(chunk));
          req.on('end', () =>
            res
              .writeHead(Buffer.concat(body).equals(manifest) ? 201 : 400, {
                'content-length': '0',
              })
              .end(),
          );
        }
      };
      const stored = await (await client()).putManifest('1.0.0', manifest, type);
      expect(stored.size).toBe(manifest.length);
      expect(hostile.requests).toEqual([
        'PUT /v2/acme/app/manifests/1.0.0',
        'PUT /v2/acme/app/manifests/1.0.0?moved=1',
      ]);
    });
  });

  describe('an upload asks before it sends (Expect: 100-continue)', () => {
    // A registry (or proxy) that decides on a PATCH from its head alone, as nginx does on
    // client_max_body_size: node:http hands such a request to 'checkContinue', and sends
    // no go-ahead unless told to.
    let server: Server;
    let host: string;
    let patches: Array<{ expect: string | undefined; received: number }>;
    let onPatch: (req: IncomingMessage, res: ServerResponse) => void;
    beforeAll(async () => {
      const handle = (req: IncomingMessage, res: ServerResponse): void => {
        if (req.method === 'PATCH') {
          const patch = { expect: req.headers.expect, received: 0 };
          patches.push(patch);
          req.on('data', (chunk: Buffer) => (patch.received += chunk.length));
          onPatch(req, res);
          return;
        }
        req.resume();
        const url = new URL(req.url ?? '/', 'http://registry');
        if (req.method === 'POST')
          res
            .writeHead(202, { location: '/v2/acme/app/blobs/uploads/u1', 'content-length': '0' })
            .end();
        else if (req.method === 'PUT' && url.searchParams.has('digest'))
          res.writeHead(201, { 'content-length': '0' }).end();
        else if (req.method === 'DELETE') res.writeHead(204).end();
        else res.writeHead(404, { 'content-length': '0' }).end();
      };
      server = createServer(handle);
      server.on('checkContinue', handle);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    afterEach(() => {
      patches = [];
    });
    patches = [];
    const upload = async (): Promise<{ file: string; bytes: Buffer }> => {
      const file = join(await tempDir('ferry-hostile-expect-'), 'bundle.tar');
      const bytes = randomBytes(8 * 1024 * 1024);
      await writeFile(file, bytes);
      return { file, bytes };
    };
    const open = () =>
      RegistryClient.open(`oci://${host}/acme/app`, {
        retry: FAST,
        onRetry: (event) => retries.push(event),
        env: {},
      });

    it('a size limit (413) said from the head is E_REGISTRY at once, naming it, with not a byte of the bundle sent', async () => {
      onPatch = (_req, res) => {
        const page = '<html>413 Request Entity Too Large</html>';
        res
          .writeHead(413, {
            'content-type': 'text/html',
            'content-length': page.length,
            connection: 'close',
          })
          .end(page);
      };
      const { file } = await upload();
      const error = await failure((await open()).pushBlob(file));
      expect(error.code).toBe('E_REGISTRY');
      expect(error.message).toBe(`registry ${host} refused to take a chunk of blob ${file}: 413`);
      expect(error.hint).toContain('client_max_body_size');
      expect(patches).toEqual([{ expect: '100-continue', received: 0 }]);
      expect(retries).toEqual([]);
    });

    it('one that refuses to be asked (417) gets the chunk sent without asking, then and after', async () => {
      onPatch = (req, res) => {
        if (req.headers.expect) {
          res.writeHead(417, { 'content-length': '0' }).end();
          return;
        }
        req.on('end', () => res.writeHead(202, { 'content-length': '0' }).end());
      };
      const { file, bytes } = await upload();
      const client = await open();
      const pushed = await client.pushBlob(file);
      expect(pushed.size).toBe(bytes.length);
      await client.pushBlob(file);
      expect(patches).toEqual([
        { expect: '100-continue', received: 0 },
        { expect: undefined, received: bytes.length },
        { expect: undefined, received: bytes.length },
      ]);
    });
  });

  it('a 206 with a Content-Range other than the one asked for is named as such, not as a refusal', async () => {
    hostile.handler = (_req, res) =>
      res.writeHead(206, { 'content-range': 'bytes 5-9/10', 'content-length': '5' }).end('abcde');
    const folder = await tempDir('ferry-hostile-');
    const digest = `sha256:${'1'.repeat(64)}`;
    const error = await failure((await client()).pullBlob(digest, 10, join(folder, 'blob')));
    expect(error.code).toBe('E_REGISTRY');
    expect(error.message).toContain(
      `answered a request for blob ${digest} from byte 0 with Content-Range "bytes 5-9/10"`,
    );
    expect(error.details).toMatchObject({ registry: hostile.host, repository: 'acme/app' });
    expect(await readdir(folder)).toEqual([]);
  });

  // The sink moves whole chunks to its worker 1 MiB at a time: a cut in the
  // middle of a batch, then an answer from byte 0 (Range ignored) whose first
  // bytes are dropped, must still leave exactly the blob on disk.
  it.each([
    ['answers the Range', 1000],
    ['ignores the Range', 1000],
    ['ignores the Range', 64 * 1024],
  ])(
    'a download cut mid-batch goes on from the bytes kept when the registry %s (%i-byte writes)',
    async (how, piece) => {
      const blob = randomBytes(3 * 1024 * 1024 + 4321);
      const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
      const cut = 1024 * 1024 + 777;
      const ranges: Array<string | undefined> = [];
      hostile.handler = (req, res) => {
        ranges.push(req.headers.range);
        const from =
          ranges.length > 1 && how === 'answers the Range'
            ? Number(/\d+/.exec(req.headers.range ?? '')?.[0])
            : 0;
        if (from > 0)
          res.writeHead(206, {
            'content-length': String(blob.length - from),
            'content-range': `bytes ${from}-${blob.length - 1}/${blob.length}`,
          });
        else res.writeHead(200, { 'content-length': String(blob.length) });
        const end = ranges.length === 1 ? cut : blob.length;
        for (let at = from; at < end; at += piece)
          res.write(blob.subarray(at, Math.min(end, at + piece)));
        if (ranges.length === 1) res.write(Buffer.alloc(0), () => res.socket?.destroy());
        else res.end();
      };
      const out = join(await tempDir('ferry-hostile-'), 'blob');
      await (await client()).pullBlob(digest, blob.length, out);
      expect((await readFile(out)).equals(blob)).toBe(true);
      expect(ranges[0]).toBeUndefined();
      expect(ranges.length).toBe(2);
      expect(Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1])).toBeGreaterThan(0);
    },
  );

  it('a blob whose answer has lines that end in a bare LF is E_REGISTRY at once, not a wait for the answer timeout on each try', async () => {
    hostile.handler = (_req, res) => {
      // The connection kept open: nothing but Ferry's own reading ends the answer.
      res.socket?.write('HTTP/1.1 200 OK\ncontent-length: 2\n\n{}');
    };
    const out = join(await tempDir('ferry-oci-lf-'), 'blob');
    const slow = await RegistryClient.open(`oci://${hostile.host}/acme/app`, {
      retry: FAST,
      onRetry: (event) => retries.push(event),
      env: {},
      answerTimeoutMs: 2_000,
    });
    const digest = `sha256:${createHash('sha256').update('{}').digest('hex')}`;
    const error = await failure(slow.pullBlob(digest, 2, out));
    expect(error.code).toBe('E_REGISTRY');
    expect(error.message).toContain('HPE_CR_EXPECTED');
    expect(retries).toEqual([]);
    expect(await readdir(dirname(out))).toEqual([]);
  });

  it('a progress callback that throws fails the pull with its own error, not as a broken connection retried', async () => {
    const blob = randomBytes(3 << 20);
    hostile.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': String(blob.length) });
      res.end(blob);
    };
    const out = join(await tempDir('ferry-oci-progress-'), 'blob');
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const bug = new Error('the progress line could not be drawn');
    const error = await (
      await client()
    )
      .pullBlob(digest, blob.length, out, {
        onProgress: () => {
          throw bug;
        },
      })
      .catch((e: unknown) => e);
    expect(error).toBe(bug);
    expect(retries).toEqual([]);
    expect(hostile.requests).toHaveLength(1);
    expect(await readdir(dirname(out))).toEqual([]);
  });

  it.each([
    ['a 200', 0],
    ['a 206 to a resumed pull', 5],
  ])(
    '%s whose Content-Length is more than the blob has left fails at once as E_DIGEST_MISMATCH, not after the idle timeout',
    async (_what, cut) => {
      const blob = randomBytes(100_000);
      hostile.handler = (req, res) => {
        const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
        if (from === 0 && cut > 0) {
          // The first try breaks after `cut` bytes: the second asks for the rest.
          res.writeHead(200, { 'content-length': String(blob.length) });
          res.write(blob.subarray(0, cut), () => res.destroy());
          return;
        }
        const headers: Record<string, string> = {
          'content-length': String(blob.length - from + 10),
        };
        if (from > 0)
          headers['content-range'] = `bytes ${from}-${blob.length + 9}/${blob.length + 10}`;
        res.writeHead(from > 0 ? 206 : 200, headers);
        // All of the blob, then the connection kept open: the 10 bytes more never come.
        res.write(blob.subarray(from));
      };
      const out = join(await tempDir('ferry-oci-longer-'), 'blob');
      const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
      const error = await failure((await client()).pullBlob(digest, blob.length, out));
      expect(error.code).toBe('E_DIGEST_MISMATCH');
      expect(error.message).toContain(
        `is longer than the ${blob.length} bytes its descriptor says`,
      );
      expect(retries).toHaveLength(cut > 0 ? 1 : 0);
      expect(await readdir(dirname(out))).toEqual([]);
    },
    10_000,
  );

  it('an answer that is not HTTP (headers over 16 KiB) is E_REGISTRY at once, not "cannot reach"', async () => {
    hostile.handler = (_req, res) =>
      res.writeHead(200, { 'x-big': 'a'.repeat(20_000), 'content-length': '2' }).end('{}');
    const error = await failure((await client()).getManifest('1.0.0'));
    expect(error.code).toBe('E_REGISTRY');
    expect(error.message).toContain('GET /v2/acme/app/manifests/1.0.0');
    expect(error.message).toContain('HPE_HEADER_OVERFLOW');
    expect(error.details).toMatchObject({ registry: hostile.host, repository: 'acme/app' });
    expect(retries).toEqual([]);
  });

  describe('an answer that drips in a byte at a time (never idle, never done)', () => {
    const drips = new Set<NodeJS.Timeout>();
    afterEach(() => {
      for (const drip of drips) clearInterval(drip);
      drips.clear();
    });
    /** Writes `first`, then one byte every 20 ms until the client goes away. */
    const drip = (res: ServerResponse, write: (bytes: string) => void) => {
      const timer = setInterval(() => write('a'), 20);
      drips.add(timer);
      res.socket?.on('close', () => clearInterval(timer));
    };
    const patient = () =>
      RegistryClient.open(`oci://${hostile.host}/acme/app`, {
        retry: FAST,
        onRetry: (event) => retries.push(event),
        env: {},
        answerTimeoutMs: 300,
      });

    it('headers: the answer timeout gives up, as a broken connection, after bounded tries', async () => {
      hostile.handler = (_req, res) => {
        res.socket?.write('HTTP/1.1 200 OK\r\nx-drip: ');
        drip(res, (bytes) => res.socket?.write(bytes));
      };
      const error = await failure((await patient()).getManifest('1.0.0'));
      expect(error.code).toBe('E_REGISTRY_UNREACHABLE');
      expect(error.message).toContain('ETIMEDOUT');
      expect(error.message).toContain('GET /v2/acme/app/manifests/1.0.0');
      expect(retries).toHaveLength(FAST.attempts - 1);
    });

    it.each([
      ['a manifest', (c: RegistryClient) => c.getManifest('1.0.0'), 200, 'E_REGISTRY_UNREACHABLE'],
      ['a tag list page', (c: RegistryClient) => c.listTags(), 200, 'E_REGISTRY_UNREACHABLE'],
      // What the 500 said is given up on, and the 500 retried as any other.
      [
        'an error',
        (c: RegistryClient) => c.deleteManifest(`sha256:${'0'.repeat(64)}`),
        500,
        'E_REGISTRY',
      ],
    ])(
      'the body of %s: the answer timeout gives up on it, and the tries stay bounded',
      async (_what, call, status, code) => {
        hostile.handler = (_req, res) => {
          res.writeHead(status, {
            'content-type': 'application/vnd.oci.image.manifest.v1+json',
            'content-length': '1000',
          });
          res.write('{');
          drip(res, (bytes) => res.write(bytes));
        };
        const error = await failure(call(await patient()));
        expect(error.code).toBe(code);
        expect(error.details).toMatchObject({ registry: hostile.host, repository: 'acme/app' });
        expect(retries).toHaveLength(FAST.attempts - 1);
      },
    );
  });

  describe('tag lists', () => {
    const page = (res: ServerResponse, body: string | Buffer, link?: string) =>
      res
        .writeHead(200, {
          'content-type': 'application/json',
          ...(link ? { link: `<${link}>; rel="next"` } : {}),
        })
        .end(body);

    it.each([
      ['a login page answering 200', '<html>please sign in</html>'],
      ['a JSON array', '["1.0.0"]'],
      ['tags that are not strings', '{"tags":[1,2]}'],
      ['an empty body', ''],
    ])('%s is E_REGISTRY, never an empty list', async (_what, body) => {
      hostile.handler = (_req, res) => page(res, body);
      const error = await failure((await client()).listTags());
      expect(error.code).toBe('E_REGISTRY');
      expect(error.message).toContain('the tag list of acme/app');
      expect(error.details).toMatchObject({ registry: hostile.host, repository: 'acme/app' });
    });

    it('still reads "tags": null (a repository whose tags were all deleted) as none', async () => {
      hostile.handler = (_req, res) => page(res, '{"name":"acme/app","tags":null}');
      expect(await (await client()).listTags()).toEqual([]);
    });

    it('a page over 16 MiB is E_REGISTRY, never an empty list', async () => {
      hostile.handler = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"tags":["');
        // Chunked, no Content-Length: the cap holds as the bytes arrive.
        for (let i = 0; i < 17; i++) res.write(Buffer.alloc(1024 * 1024, 'a'));
        res.end('"]}');
      };
      const error = await failure((await client()).listTags());
      expect(error.code).toBe('E_REGISTRY');
      expect(error.message).toContain('larger than 16777216 bytes');
    });

    it('pages that each link to yet another page stop after 10000 pages', async () => {
      let n = 0;
      hostile.handler = (_req, res) =>
        page(res, '{"tags":[]}', `/v2/acme/app/tags/list?n=1000&last=${++n}`);
      const error = await failure((await client()).listTags());
      expect(error.code).toBe('E_REGISTRY');
      expect(error.message).toContain('more than 10000 pages');
      expect(hostile.requests.length).toBe(10_000);
    }, 120_000);

    it('pages that each bring more tags stop at 16 MiB in all', async () => {
      let n = 0;
      const tags = JSON.stringify({
        tags: Array.from({ length: 1000 }, (_, i) => `t${String(i).padStart(99, '0')}`),
      });
      hostile.handler = (_req, res) => page(res, tags, `/v2/acme/app/tags/list?n=1000&last=${++n}`);
      const error = await failure((await client()).listTags());
      expect(error.code).toBe('E_REGISTRY');
      expect(error.message).toContain('larger than 16777216 bytes');
      expect(hostile.requests.length).toBeLessThanOrEqual(
        Math.ceil((16 * 1024 * 1024) / tags.length),
      );
    });

    it('a next page on another host or in another repository is refused, and never asked for', async () => {
      const other = await startHostile();
      try {
        for (const link of [
          `http://${other.host}/v2/acme/app/tags/list?last=a`,
          `/v2/acme/other/tags/list?last=a`,
        ]) {
          hostile.requests = [];
          hostile.handler = (_req, res) => page(res, '{"tags":["a"]}', link);
          const error = await failure((await client()).listTags());
          expect(error.code).toBe('E_REGISTRY');
          expect(error.message).toContain('links its next page to');
          expect(hostile.requests).toEqual(['GET /v2/acme/app/tags/list?n=1000']);
        }
        expect(other.requests).toEqual([]);
      } finally {
        await stop(other);
      }
    });
  });
});
