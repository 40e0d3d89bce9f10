import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FerryError } from '../../../manifest-schema/errors.js';
import { silentFor, timedOut } from '../../../repository/oci/http.js';
import { parseRegistryReference } from '../../../repository/oci/reference.js';
import {
  parseChallenge,
  PROGRESS_BYTES,
  progressNeeded,
  Transient,
  Transport,
} from '../../../repository/oci/transport.js';
import { ROOT } from '../../helpers.js';

describe('parseChallenge', () => {
  it.each([
    [
      'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:acme/app:pull,push"',
      'bearer',
      {
        realm: 'https://ghcr.io/token',
        service: 'ghcr.io',
        scope: 'repository:acme/app:pull,push',
      },
    ],
    [
      'Bearer realm="https://auth.example/token", service="reg", scope="repository:a/b:pull repository:c/d:pull", error="insufficient_scope"',
      'bearer',
      {
        realm: 'https://auth.example/token',
        service: 'reg',
        scope: 'repository:a/b:pull repository:c/d:pull',
        error: 'insufficient_scope',
      },
    ],
    ['Basic realm="basic-realm"', 'basic', { realm: 'basic-realm' }],
    ['basic realm=plain', 'basic', { realm: 'plain' }],
    ['Bearer realm="a\\"b"', 'bearer', { realm: 'a"b' }],
  ])('%s', (header, scheme, params) => {
    expect(parseChallenge(header)).toEqual({ scheme, params });
  });

  it('has no challenge in an empty header', () => {
    expect(parseChallenge('')).toBeUndefined();
  });
});

describe('a timeout says the limit as it was set', () => {
  it.each([
    [500, '500 ms'],
    [1500, '1.5 s'],
    [90_000, '90 s'],
    [60_000, '1 minute'],
    [300_000, '5 minutes'],
  ])('%i ms reads %s', (ms, said) => {
    expect(timedOut(ms).message).toBe(`the answer took more than ${said} to arrive`);
    expect(silentFor(ms).message).toBe(`the connection stayed silent for ${said}`);
  });
});

// Distribution names the scope a request needs by its method: pull for a GET, pull,push for a POST.
describe('requests of one action refused at once for different scopes', () => {
  it('each gets a token for its own scope: a POST never retries with the pull token a GET got', async () => {
    let port = 0;
    const tokensAsked: string[] = [];
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://registry');
      if (url.pathname === '/token') {
        const scope = url.searchParams.getAll('scope').join(' ');
        tokensAsked.push(scope);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token: `for ${scope}` }));
        return;
      }
      const need = `repository:a/b:${req.method === 'POST' ? 'pull,push' : 'pull'}`;
      if (req.headers.authorization === `Bearer for ${need}`) {
        res.writeHead(202).end();
        return;
      }
      // The POST is refused once the GET's token is held.
      const refuse = (): void => {
        res.writeHead(401, {
          'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="registry",scope="${need}"`,
        });
        res.end();
      };
      if (req.method === 'POST' && !req.headers.authorization) setTimeout(refuse, 100);
      else refuse();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    try {
      const transport = new Transport(parseRegistryReference(`oci://127.0.0.1:${port}/a/b`));
      const statuses = await Promise.all(
        ['GET', 'POST'].map(async (method) => {
          const response = await transport.request(method, transport.url('blobs/uploads/'), {
            action: 'push',
          });
          await response.discard();
          return response.status;
        }),
      );
      expect(statuses).toEqual([202, 202]);
      expect(tokensAsked).toEqual(['repository:a/b:pull', 'repository:a/b:pull,push']);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('a token service that answers a token no header can carry', () => {
  it.each([
    ['a CR LF', 'abc\r\nx-injected: 1'],
    ['a character beyond Latin-1', 'tok€n'],
  ])(
    'with %s: E_REGISTRY_AUTH at once, naming the token service, never retried as "cannot reach"',
    async (_what, token) => {
      let port = 0;
      const requests: string[] = [];
      const server = createServer((req, res) => {
        requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
        if (req.url?.startsWith('/token')) {
          const body = JSON.stringify({ token });
          res
            .writeHead(200, {
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(body),
            })
            .end(body);
          return;
        }
        res
          .writeHead(401, {
            'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="registry"`,
            'content-length': '0',
          })
          .end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
      const retries: unknown[] = [];
      try {
        const transport = new Transport(parseRegistryReference(`oci://127.0.0.1:${port}/a/b`), {
          retry: { attempts: 3, firstDelayMs: 10, maxDelayMs: 10 },
          onRetry: (event) => retries.push(event),
        });
        const error = await transport
          .request('GET', transport.url('tags/list'), { action: 'pull' })
          .then(
            () => undefined,
            (failure: unknown) => failure,
          );
        expect(error).toBeInstanceOf(FerryError);
        expect((error as FerryError).code).toBe('E_REGISTRY_AUTH');
        expect((error as FerryError).message).toBe(
          `the token service http://127.0.0.1:${port} answered a token that cannot be sent in an HTTP header (it holds a control character or a character beyond Latin-1)`,
        );
        expect((error as FerryError).details).toMatchObject({
          registry: `127.0.0.1:${port}`,
          repository: 'a/b',
        });
        expect(retries).toEqual([]);
        expect(requests).toEqual([
          'GET /v2/a/b/tags/list',
          'GET /token?service=registry&scope=repository%3Aa%2Fb%3Apull',
        ]);
      } finally {
        server.closeAllConnections();
        server.close();
      }
    },
  );
});

describe('a closed client', () => {
  it('sends no further hop of a request whose redirect was draining when it closed', async () => {
    let port = 0;
    const asked: string[] = [];
    let drained: () => void = () => undefined;
    const draining = new Promise<void>((resolve) => (drained = resolve));
    const server = createServer((req, res) => {
      asked.push(req.url ?? '');
      // The next hop is never answered (a blob store that hangs).
      if (req.url !== '/v2/a/b/manifests/x') return;
      // Half the redirect's body, then nothing: the client drains it to reuse the connection.
      res.writeHead(307, { location: `http://127.0.0.1:${port}/store/x`, 'content-length': '10' });
      res.write('abcde');
      setTimeout(drained, 100);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    try {
      const transport = new Transport(parseRegistryReference(`oci://127.0.0.1:${port}/a/b`));
      const read = transport.retrying('get manifest x', () =>
        transport.request('GET', transport.url('manifests/x'), { action: 'pull' }),
      );
      read.catch(() => undefined);
      await draining;
      transport.close();
      await expect(read).rejects.toThrow(/was closed/);
      expect(asked).toEqual(['/v2/a/b/manifests/x']);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('stops waiting to try again', async () => {
    const server = createServer((_req, res) => res.writeHead(503).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const transport = new Transport(parseRegistryReference(`oci://127.0.0.1:${port}/a/b`), {
        retry: { firstDelayMs: 20_000, maxDelayMs: 20_000 },
        onRetry: () => setTimeout(() => transport.close(), 50),
      });
      const started = Date.now();
      await expect(
        transport.retrying('get manifest x', () =>
          transport.request('GET', transport.url('manifests/x'), { action: 'pull' }),
        ),
      ).rejects.toThrow(/was closed/);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('a registry that says when to try again (Retry-After)', () => {
  /** A registry whose answers are `answers`, in turn (the last one for good); counts requests. */
  async function answering(answers: Array<[number, Record<string, string>]>) {
    let asked = 0;
    const server = createServer((_req, res) => {
      const [status, headers] = answers[Math.min(asked++, answers.length - 1)] ?? [500, {}];
      res.writeHead(status, headers).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const delays: number[] = [];
    const transport = new Transport(parseRegistryReference(`oci://127.0.0.1:${port}/a/b`), {
      retry: { attempts: 3, firstDelayMs: 10, maxDelayMs: 50 },
      onRetry: (event) => delays.push(event.delayMs),
    });
    const get = () =>
      transport.retrying('get manifest x', () =>
        transport.request('GET', transport.url('manifests/x'), { action: 'pull' }),
      );
    const stop = () => {
      transport.close();
      server.closeAllConnections();
      server.close();
    };
    return { get, delays, asked: () => asked, stop };
  }

  it.each([
    ['seconds', () => '1'],
    ['an HTTP date', () => new Date(Date.now() + 2000).toUTCString()],
  ])('waits at least as long as it asks, given in %s', async (_, retryAfter) => {
    const registry = await answering([
      [429, { 'retry-after': retryAfter() }],
      [200, {}],
    ]);
    try {
      expect((await registry.get()).status).toBe(200);
      expect(registry.delays).toHaveLength(1);
      expect(registry.delays[0]).toBeGreaterThanOrEqual(900);
    } finally {
      registry.stop();
    }
  });

  it('gives up at once, saying when to run again, when it asks for more than a minute', async () => {
    const registry = await answering([[429, { 'retry-after': '3600' }]]);
    try {
      await expect(registry.get()).rejects.toMatchObject({
        code: 'E_REGISTRY',
        message: /429.*no other try for 3600 s/,
        details: { hint: /run again after \d{4}-\d\d-\d\dT/ },
      });
      expect(registry.asked()).toBe(1);
      expect(registry.delays).toEqual([]);
    } finally {
      registry.stop();
    }
  });

  it('takes the usual pauses when it says nothing, or nothing readable', async () => {
    const registry = await answering([
      [503, {}],
      [503, { 'retry-after': 'soon' }],
      [200, {}],
    ]);
    try {
      expect((await registry.get()).status).toBe(200);
      expect(registry.delays.every((ms) => ms <= 50)).toBe(true);
    } finally {
      registry.stop();
    }
  });
});

describe('repository/oci boundary', () => {
  // The registry client is a transport: it knows the contract (errors, canonical
  // JSON, hashing) and nothing of how bundles are built, read or installed.
  it('imports only node: modules, manifest-schema/ and its own folder', async () => {
    const dir = join(ROOT, 'repository', 'oci');
    const imports: string[] = [];
    for (const entry of await readdir(dir)) {
      if (!entry.endsWith('.ts')) continue;
      const text = await readFile(join(dir, entry), 'utf8');
      for (const match of text.matchAll(/from\s+'([^']+)'/g)) imports.push(match[1] as string);
    }
    expect(imports.length).toBeGreaterThan(10);
    expect(
      imports.filter((target) => !/^(node:|\.\/|\.\.\/\.\.\/manifest-schema\/)/.test(target)),
    ).toEqual([]);
  });
});

describe('Transport.resuming: the tries of a transfer that resumes', () => {
  const transport = new Transport(parseRegistryReference('oci://127.0.0.1:1/a/b'), {
    retry: { attempts: 3, firstDelayMs: 1, maxDelayMs: 1 },
  });
  const stalled = (): Transient =>
    new Transient('ETIMEDOUT', new FerryError('E_REGISTRY_UNREACHABLE', 'it stalled', {}));
  /** A transfer of 1 GiB: each try must bring it PROGRESS_BYTES on. */
  const large = (moved: () => number) => ({ moved, size: 1024 * PROGRESS_BYTES });

  it('does not count a try that moved the transfer on by PROGRESS_BYTES: ten tries that each brought that much finish', async () => {
    let moved = 0;
    const tries = await transport.resuming(
      'pull blob x',
      large(() => moved),
      (count) => {
        if (count === 10) return Promise.resolve(count);
        moved += PROGRESS_BYTES;
        return Promise.reject(stalled());
      },
    );
    expect(tries).toBe(10);
  });

  it('counts a try that only won back lost ground (an upload the registry dropped, started again) as one that moved nothing', async () => {
    let tries = 0;
    await expect(
      transport.resuming(
        'push blob x',
        large(() => (tries % 2 === 1 ? PROGRESS_BYTES : 0)),
        () => {
          tries++;
          return Promise.reject(stalled());
        },
      ),
    ).rejects.toThrow('it stalled');
    expect(tries).toBe(3);
  });

  // A link that passes a little and goes silent, again and again: each try is past the
  // furthest point, and with any progress counting, the tries would never run out.
  it('counts a try that moved the transfer on by less than PROGRESS_BYTES, and says the transfer trickled', async () => {
    let moved = 0;
    let tries = 0;
    const error = await transport
      .resuming(
        'pull blob x',
        large(() => moved),
        () => {
          tries++;
          moved += PROGRESS_BYTES / 4;
          const cause = silentFor(250);
          return Promise.reject(
            new Transient(
              'ETIMEDOUT',
              new FerryError('E_REGISTRY_UNREACHABLE', 'it stalled', { cause }),
            ),
          );
        },
      )
      .catch((e: unknown) => e);
    expect(tries).toBe(3);
    expect(error).toBeInstanceOf(FerryError);
    expect(error).toMatchObject({
      code: 'E_REGISTRY_UNREACHABLE',
      message: `registry 127.0.0.1:1 trickled: 3 tries in a row to pull blob x in a/b moved it on by ${(3 * PROGRESS_BYTES) / 4} bytes in all, less than the 1 MiB that starts the count again; the last stalled: nothing arrived for 250 ms`,
      details: { registry: '127.0.0.1:1', repository: 'a/b' },
    });
    expect((error as FerryError).hint).toBe(
      'the link to the registry, or a proxy in front of it, passes a little and then stops, again and again; check them and the network. Only moving the transfer on by 1 MiB starts the count of tries again; on a link that can be silent longer and then go on, raise FERRY_REGISTRY_IDLE_SECONDS (0.25 s now)',
    );
  });

  it('counts the tries again after one that moved the transfer on by PROGRESS_BYTES, and names only the short ones after it', async () => {
    let moved = 0;
    const error = await transport
      .resuming(
        'pull blob x',
        large(() => moved),
        (count) => {
          moved += count === 2 ? PROGRESS_BYTES : 10;
          return Promise.reject(stalled());
        },
      )
      .catch((e: unknown) => e);
    // 1: short; 2: a start again (one in the new count); 3 and 4: short, the count's end.
    expect((error as Error).message).toMatch(
      /trickled: 2 tries in a row to pull blob x in a\/b moved it on by 20 bytes in all, less than the 1 MiB that starts the count again; the last ended with ETIMEDOUT$/,
    );
  });

  // A slow link behind a proxy that cuts each connection after less than the minimum: what
  // the tries move adds up, and the count starts again each time it reaches the minimum.
  it('starts the count again once the tries since it last started moved the transfer on by PROGRESS_BYTES in all, so a link that breaks after less each time finishes', async () => {
    let moved = 0;
    const done = await transport.resuming(
      'pull blob x',
      large(() => moved),
      (count) => {
        if (count === 12) return Promise.resolve(count);
        moved += (PROGRESS_BYTES * 3) / 5;
        return Promise.reject(stalled());
      },
    );
    // 11 broken tries, more than the attempts (3): never 3 in a row that moved less than 1 MiB.
    expect(done).toBe(12);
  });

  it('says a transfer that moved a little once and then nothing (a link that died) failed as the last try did, not that it trickled', async () => {
    let moved = 0;
    let tries = 0;
    await expect(
      transport.resuming(
        'pull blob x',
        large(() => moved),
        () => {
          if (++tries === 1) moved = 1000;
          return Promise.reject(stalled());
        },
      ),
    ).rejects.toThrow(/^it stalled$/);
    expect(tries).toBe(3);
  });

  // A small bundle over a link that moves a tenth of it a try still arrives.
  it('asks a transfer under 16 MiB to move on by a sixteenth of it, not by PROGRESS_BYTES', async () => {
    expect(progressNeeded(16 * PROGRESS_BYTES)).toBe(PROGRESS_BYTES);
    expect(progressNeeded(1024 * PROGRESS_BYTES)).toBe(PROGRESS_BYTES);
    expect(progressNeeded(1600)).toBe(100);
    expect(progressNeeded(0)).toBe(1);
    let moved = 0;
    const tenths = await transport.resuming(
      'pull blob x',
      { moved: () => moved, size: 1600 },
      (count) => {
        if (count === 10) return Promise.resolve(count);
        moved += 160;
        return Promise.reject(stalled());
      },
    );
    expect(tenths).toBe(10);
    moved = 0;
    const error = await transport
      .resuming('pull blob x', { moved: () => moved, size: 1600 }, () => {
        moved += 30;
        return Promise.reject(stalled());
      })
      .catch((e: unknown) => e);
    expect((error as Error).message).toMatch(
      /trickled: 3 tries in a row .* by 90 bytes in all, less than the 100 bytes that starts the count again;/,
    );
  });
});
