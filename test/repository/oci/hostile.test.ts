import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../../../manifest-schema/errors.js';
import { RegistryClient, type RetryEvent } from '../../../repository/oci/index.js';

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
});
