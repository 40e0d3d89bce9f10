import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { directGet, type DirectOptions } from '../../../repository/oci/direct.js';
import type { BodySink } from '../../../repository/oci/http.js';
import { ROOT, run, tempDir } from '../../helpers.js';
import { tlsSite } from './registry.js';

/**
 * Pull's own reader of a blob's body (repository/oci/direct.ts), against a
 * server that writes exactly the bytes each test gives it: what it takes
 * must arrive whole and in order in the buffers it lent; anything else must
 * be left, unread, to node:http.
 */

interface Scripted {
  server: Server;
  url: URL;
  /** The request heads the server read, one per connection. */
  requests: string[];
  connections: number;
}

type Script = (socket: Socket) => void;

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

async function scripted(script: Script): Promise<Scripted> {
  const state: Scripted = {
    server: createServer(),
    url: new URL('http://x'),
    requests: [],
    connections: 0,
  };
  state.server.on('connection', (socket) => {
    sockets.push(socket);
    state.connections++;
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      state.requests.push(head);
      script(socket);
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
  });
  servers.push(state.server);
  await new Promise<void>((resolve) => state.server.listen(0, '127.0.0.1', resolve));
  state.url = new URL(
    `http://127.0.0.1:${(state.server.address() as AddressInfo).port}/v2/a/blobs/x`,
  );
  return state;
}

const LEND = 1 << 20;

/** A sink that keeps what it is given, and whether each chunk was the start of a buffer it lent. */
function collector(options: { room?: () => Promise<void>; putReturns?: () => boolean } = {}) {
  const lent = new Set<ArrayBufferLike>();
  const chunks: Buffer[] = [];
  const fromLentStart: boolean[] = [];
  const sink: BodySink & { lend(): Uint8Array } = {
    lend: () => {
      const buffer = new Uint8Array(LEND);
      lent.add(buffer.buffer);
      return buffer;
    },
    put: (chunk) => {
      fromLentStart.push(lent.has(chunk.buffer) && chunk.byteOffset === 0);
      chunks.push(Buffer.from(chunk));
      return options.putReturns?.() ?? true;
    },
    room: options.room ?? (() => Promise.resolve()),
  };
  return { sink, chunks, fromLentStart, bytes: () => Buffer.concat(chunks) };
}

function options(sink: { lend(): Uint8Array }, extra: Partial<DirectOptions> = {}): DirectOptions {
  return {
    headers: { 'user-agent': 'ferry-test' },
    lend: () => sink.lend(),
    answerTimeoutMs: 10_000,
    idleTimeoutMs: 10_000,
    ...extra,
  };
}

const answer200 = (body: Buffer, extra = ''): Buffer =>
  Buffer.concat([
    Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n${extra}\r\n`, 'latin1'),
    body,
  ]);

describe('pull reads a plain answer straight off its socket', () => {
  it('takes a 200 whole, in lent buffers filled from their start, and sends a request node:http would', async () => {
    const body = randomBytes(5 * LEND + 12345);
    const server = await scripted((socket) =>
      socket.end(answer200(body, 'docker-content-digest: sha256:x\r\n')),
    );
    const { sink, chunks, fromLentStart, bytes } = collector();
    const answer = await directGet(
      server.url,
      options(sink, { headers: { 'user-agent': 'ferry-test', range: 'bytes=0-' } }),
    );
    expect(answer).toMatchObject({ status: 200, length: body.length });
    expect(answer?.header('Docker-Content-Digest')).toBe('sha256:x');
    await answer?.pipe(sink);
    expect(bytes().equals(body)).toBe(true);
    expect(fromLentStart.every(Boolean)).toBe(true);
    // Filled near their end, not one per socket read.
    expect(chunks.length).toBeLessThanOrEqual(7);
    expect(server.requests[0]).toMatch(/^GET \/v2\/a\/blobs\/x HTTP\/1\.1\r\n/);
    expect(server.requests[0]).toContain(`host: ${server.url.host}\r\n`);
    expect(server.requests[0]).toContain('range: bytes=0-\r\n');
    expect(server.requests[0]).toContain('connection: close\r\n');
  });

  it('reads a head that comes a byte at a time, and keeps the body bytes that came with it', async () => {
    const body = Buffer.from('the body, some of it in the head’s last packet');
    const bytes = answer200(body, 'x-one: 1\r\nx-one: 2\r\n');
    const split = bytes.indexOf('\r\n\r\n') + 4 + 5;
    const server = await scripted((socket) => {
      const next = (at: number): void => {
        if (at === split) socket.end(bytes.subarray(split));
        else socket.write(bytes.subarray(at, at + 1), () => setTimeout(() => next(at + 1), 1));
      };
      next(0);
    });
    const got = collector();
    const answer = await directGet(server.url, options(got.sink));
    expect(answer?.header('x-one')).toBe('1, 2');
    await answer?.pipe(got.sink);
    expect(got.bytes().toString()).toBe(body.toString());
  });

  it('takes a 206 and an empty body', async () => {
    const partial = await scripted((socket) =>
      socket.end(
        'HTTP/1.1 206 Partial Content\r\ncontent-range: bytes 3-5/6\r\ncontent-length: 3\r\n\r\nabc',
      ),
    );
    const one = collector();
    const answer = await directGet(partial.url, options(one.sink));
    expect(answer).toMatchObject({ status: 206, length: 3 });
    expect(answer?.header('content-range')).toBe('bytes 3-5/6');
    await answer?.pipe(one.sink);
    expect(one.bytes().toString()).toBe('abc');

    const empty = await scripted((socket) =>
      socket.end('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n'),
    );
    const two = collector();
    await (await directGet(empty.url, options(two.sink)))?.pipe(two.sink);
    expect(two.chunks).toEqual([]);
  });

  it('takes no more than Content-Length, whatever else the server sends', async () => {
    const server = await scripted((socket) =>
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfourand then some more'),
    );
    const got = collector();
    await (await directGet(server.url, options(got.sink)))?.pipe(got.sink);
    expect(got.bytes().toString()).toBe('four');
  });

  it('waits while the sink has no room, and goes on when it has', async () => {
    const body = randomBytes(12 * LEND);
    const server = await scripted((socket) => socket.end(answer200(body)));
    let waits = 0;
    const got = collector({
      putReturns: () => false,
      room: async () => {
        waits++;
        await new Promise((resolve) => setTimeout(resolve, 5));
      },
    });
    await (await directGet(server.url, options(got.sink)))?.pipe(got.sink);
    expect(got.bytes().equals(body)).toBe(true);
    expect(waits).toBe(got.chunks.length - 1);
  });
});

describe('pull leaves every other answer to node:http', () => {
  const notPlain: Array<[string, string]> = [
    [
      'a redirect to a blob store',
      'HTTP/1.1 307 Temporary Redirect\r\nlocation: http://store/x\r\ncontent-length: 0\r\n\r\n',
    ],
    [
      'a challenge',
      'HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm="x"\r\ncontent-length: 0\r\n\r\n',
    ],
    ['a registry error', 'HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}'],
    [
      'a chunked body',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    ],
    [
      'a chunked body with a length too (request smuggling)',
      'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    ],
    ['a body without a length', 'HTTP/1.1 200 OK\r\n\r\nabc'],
    [
      'two lengths that differ',
      'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd',
    ],
    ['a length that is not a number', 'HTTP/1.1 200 OK\r\ncontent-length: 3x\r\n\r\nabc'],
    // node:http refuses these at once (HPE_CR_EXPECTED, HPE_LF_EXPECTED); waiting here for
    // a CR LF CR LF that never comes would hold each try for the answer timeout.
    ['lines that end in a bare LF', 'HTTP/1.1 200 OK\ncontent-length: 3\n\nabc'],
    ['a head that ends in a bare LF', 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\nabc'],
    ['lines that end in a bare CR', 'HTTP/1.1 200 OK\rcontent-length: 3\r\rabc'],
    ['a NUL in a head that is not over', 'HTTP/1.1 200 OK\r\nx-a: \x00'],
    ['a line without a colon', 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\nnonsense\r\n\r\nabc'],
    ['a folded header', 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\nx-a: b\r\n c\r\n\r\nabc'],
    ['a space before the colon', 'HTTP/1.1 200 OK\r\ncontent-length : 3\r\n\r\nabc'],
    [
      'a control character in a value',
      'HTTP/1.1 200 OK\r\ncontent-length: 3\r\nx-a: b\x01c\r\n\r\nabc',
    ],
    ['HTTP/2 spoken over HTTP/1.1', 'HTTP/2 200\r\ncontent-length: 3\r\n\r\nabc'],
    ['not HTTP', 'SSH-2.0-OpenSSH_9.2\r\n\r\n'],
    [
      'not HTTP, nor any line (a binary greeting), the connection kept open',
      'J\x00\x00\x00\x0b8.0',
    ],
    [
      'an informational answer first',
      'HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc',
    ],
    [
      'a head over 16 KiB',
      `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(17_000)}\r\ncontent-length: 3\r\n\r\nabc`,
    ],
  ];
  it.each(notPlain)('%s: undefined, the connection closed, nothing put', async (_name, bytes) => {
    let closed!: Promise<void>;
    const server = await scripted((socket) => {
      closed = new Promise((resolve) => socket.on('close', () => resolve()));
      socket.write(bytes);
    });
    const got = collector();
    expect(await directGet(server.url, options(got.sink))).toBeUndefined();
    await closed;
    expect(got.chunks).toEqual([]);
  });

  it('a header value node:http would refuse (a CR LF in a token): undefined without connecting', async () => {
    const server = await scripted((socket) => socket.end(answer200(Buffer.from('x'))));
    const got = collector();
    const answer = await directGet(
      server.url,
      options(got.sink, { headers: { authorization: 'Bearer a\r\nx-injected: 1' } }),
    );
    expect(answer).toBeUndefined();
    expect(server.connections).toBe(0);
  });
  it('a header value beyond ASCII goes as node:http sends it, one byte a character, and one beyond Latin-1 is left to it', async () => {
    const server = await scripted((socket) => socket.end(answer200(Buffer.from('x'))));
    const got = collector();
    const answer = await directGet(
      server.url,
      options(got.sink, { headers: { authorization: 'Bearer caf\u00e9' } }),
    );
    await answer?.pipe(got.sink);
    const sent = Buffer.from(server.requests[0] ?? '', 'latin1');
    expect(sent.includes(Buffer.from('authorization: Bearer caf\xe9\r\n', 'latin1'))).toBe(true);
    // node:http refuses it (ERR_INVALID_CHAR); UTF-8 here would send what it never would.
    const beyond = await directGet(
      server.url,
      options(got.sink, { headers: { authorization: 'Bearer \u0101' } }),
    );
    expect(beyond).toBeUndefined();
    expect(server.connections).toBe(1);
  });
});

describe('a connection that fails', () => {
  it('closed mid-body: rejects as a reset connection, after putting what it read', async () => {
    const body = randomBytes(3 * LEND);
    // Not near a buffer's end: the last, part-filled buffer must be put too.
    const sent = 2 * LEND - 200_000;
    const server = await scripted((socket) => {
      const bytes = answer200(body);
      socket.write(bytes.subarray(0, bytes.length - body.length + sent), () => socket.destroy());
    });
    const got = collector();
    const answer = await directGet(server.url, options(got.sink));
    const error = (await answer?.pipe(got.sink).catch((e: unknown) => e)) as NodeJS.ErrnoException;
    expect(error.code).toBe('ECONNRESET');
    expect(error.message).toContain(`after ${sent} of its ${body.length} bytes`);
    // Everything that arrived was kept: a resumed pull asks from there.
    expect(got.bytes().equals(body.subarray(0, sent))).toBe(true);
  });

  it('closed before the head is whole, or refused: rejects', async () => {
    const cut = await scripted((socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-le'));
    const got = collector();
    await expect(directGet(cut.url, options(got.sink))).rejects.toMatchObject({
      code: 'ECONNRESET',
    });
    const nobody = new URL(cut.url);
    await new Promise((resolve) => cut.server.close(resolve));
    servers.splice(servers.indexOf(cut.server), 1);
    await expect(directGet(nobody, options(got.sink))).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
  });

  it('an answer that does not come: rejects as timed out', async () => {
    const server = await scripted(() => undefined);
    const got = collector();
    const error = (await directGet(server.url, options(got.sink, { answerTimeoutMs: 200 })).catch(
      (e: unknown) => e,
    )) as NodeJS.ErrnoException;
    expect(error.code).toBe('ETIMEDOUT');
    expect(error.message).toContain('the answer took more than');
  });

  it('a body that stops coming: rejects as timed out', async () => {
    const server = await scripted((socket) =>
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'),
    );
    const got = collector();
    const answer = await directGet(server.url, options(got.sink, { idleTimeoutMs: 200 }));
    await expect(answer?.pipe(got.sink)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(got.bytes().toString()).toBe('abc');
  });

  it('a sink that throws: rejects with its error and closes the connection', async () => {
    let closed!: Promise<void>;
    const server = await scripted((socket) => {
      closed = new Promise((resolve) => socket.on('close', () => resolve()));
      socket.write(answer200(randomBytes(4 * LEND)).subarray(0, 2 * LEND));
    });
    const got = collector();
    const answer = await directGet(server.url, options(got.sink));
    const refusing = {
      ...got.sink,
      put: () => {
        throw new Error('the disk is full');
      },
    };
    await expect(answer?.pipe(refusing)).rejects.toThrow('the disk is full');
    await closed;
  });

  it('a sink that throws at the bytes that came with the head: rejects and closes the connection', async () => {
    let closed!: Promise<void>;
    // The whole answer in one write, the connection kept open: only Ferry can close it.
    const server = await scripted((socket) => {
      closed = new Promise((resolve) => socket.on('close', () => resolve()));
      socket.write(answer200(Buffer.from('longer than its descriptor says')));
    });
    const got = collector();
    const answer = await directGet(server.url, options(got.sink, { idleTimeoutMs: 60_000 }));
    const refusing = {
      ...got.sink,
      put: () => {
        throw new Error('longer than its descriptor says');
      },
    };
    await expect(answer?.pipe(refusing)).rejects.toThrow('longer than its descriptor says');
    // Not left to the idle timeout (minutes, in a pull), which would keep the process alive.
    await closed;
  }, 5_000);
});

describe('over TLS', () => {
  it('reads through a TLS socket as through a plain one, the certificate checked', async () => {
    const dir = await tempDir('ferry-direct-tls-');
    const site = await tlsSite(dir);
    if (!site) return expect.fail('no host name or address to serve TLS on here');
    const body = randomBytes(3 * LEND + 7);
    const server = createTlsServer({
      key: await readFile(site.key),
      cert: await readFile(site.certificate),
    });
    server.on('secureConnection', (socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end(answer200(body)));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, site.address, resolve));
    const url = `https://${site.name}:${(server.address() as AddressInfo).port}/v2/a/blobs/x`;
    // Without the site's certificate trusted, the handshake fails as https would.
    const got = collector();
    const untrusted = (await directGet(new URL(url), options(got.sink)).catch(
      (e: unknown) => e,
    )) as NodeJS.ErrnoException;
    expect(untrusted.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
    // Trusted as an operator trusts a private CA: NODE_EXTRA_CA_CERTS, read when Node starts.
    const reader = `
      import { createHash } from 'node:crypto';
      import { directGet } from ${JSON.stringify(join(ROOT, 'dist/repository/oci/direct.js'))};
      const lent = new Set();
      const hash = createHash('sha256');
      let chunks = 0, fromLentStart = 0;
      const lend = () => { const b = new Uint8Array(${LEND}); lent.add(b.buffer); return b; };
      const answer = await directGet(new URL(${JSON.stringify(url)}), { headers: {}, lend, answerTimeoutMs: 10000, idleTimeoutMs: 10000 });
      await answer.pipe({ put: (c) => { chunks++; if (lent.has(c.buffer) && c.byteOffset === 0) fromLentStart++; hash.update(c); return true; }, room: async () => {} });
      console.log(JSON.stringify({ status: answer.status, sha256: hash.digest('hex'), chunks, fromLentStart }));
    `;
    const { code, stdout, stderr } = await run(
      process.execPath,
      ['--input-type=module', '-e', reader],
      {
        env: { PATH: process.env.PATH ?? '', NODE_EXTRA_CA_CERTS: site.certificate },
      },
    );
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as {
      status: number;
      sha256: string;
      chunks: number;
      fromLentStart: number;
    };
    expect(result).toMatchObject({
      status: 200,
      sha256: createHash('sha256').update(body).digest('hex'),
    });
    // TLS records are 16 KiB: they share lent buffers rather than each moving alone.
    expect(result.chunks).toBeLessThanOrEqual(5);
    expect(result.fromLentStart).toBe(result.chunks);
  });
});
