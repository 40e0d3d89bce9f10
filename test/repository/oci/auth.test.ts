import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../../../manifest-schema/errors.js';
import { documentBlob, RegistryClient } from '../../../repository/oci/index.js';
import { tempDir } from '../../helpers.js';
import { startFaultProxy } from './proxy.js';
import {
  provisionedPassword,
  randomFile,
  registryMissing,
  startRegistry,
  startTokenServer,
  type Registry,
  type TokenServer,
} from './registry.js';

const FAST = { attempts: 2, firstDelayMs: 10, maxDelayMs: 20 };

async function failure(promise: Promise<unknown>): Promise<FerryError> {
  const error = await promise.catch((e: unknown) => e);
  if (!(error instanceof FerryError))
    throw new Error(`expected a FerryError, got ${String(error)}`);
  return error;
}

/** A client of `registry`'s acme/appliance, with these credentials in its environment. */
function clientOf(registry: { reference(name: string): string }, user?: string, password?: string) {
  const env =
    user === undefined ? {} : { FERRY_REGISTRY_USER: user, FERRY_REGISTRY_PASSWORD: password };
  return RegistryClient.open(registry.reference('acme/appliance'), { env, retry: FAST });
}

/** Nothing a person or a log could see may hold the secret. */
function expectNoSecret(error: FerryError, secret: string): void {
  const shown = [
    error.message,
    JSON.stringify(error),
    inspect(error, { depth: 10 }),
    String(error.hint),
  ];
  for (const text of shown) expect(text).not.toContain(secret);
}

// Distribution 2.8 takes htpasswd Basic auth over plain HTTP (it does not insist on TLS).
describe.skipIf(registryMissing)('HTTP Basic (htpasswd) against a real registry', () => {
  let registry: Registry;
  let password: string;
  let dir: string;

  beforeAll(async () => {
    registry = await startRegistry({ kind: 'htpasswd' });
    password = provisionedPassword(registry);
    dir = await tempDir('ferry-oci-basic-');
  });
  afterAll(() => registry?.stop());

  it('refuses anonymous access with E_REGISTRY_AUTH and says where credentials come from', async () => {
    const client = await clientOf(registry);
    const error = await failure(client.ping());
    expect(error.code).toBe('E_REGISTRY_AUTH');
    expect(error.details.registry).toBe(registry.host);
    expect(error.hint).toMatch(/FERRY_REGISTRY_USER/);
  });

  it('pushes and pulls with FERRY_REGISTRY_USER and FERRY_REGISTRY_PASSWORD', async () => {
    const client = await clientOf(registry, 'docker', password);
    const file = join(dir, 'basic.bin');
    const digest = await randomFile(file, 100_000);
    expect((await client.pushBlob(file)).digest).toBe(digest);
    await client.pullBlob(digest, 100_000, join(dir, 'basic.out'));
  });

  it('requests sent at once, before the registry asked for credentials, all get through', async () => {
    const client = await clientOf(registry, 'docker', password);
    // Each is refused (401) before any has answered the challenge; the others then send what the first did.
    const found = await Promise.all(
      ['a', 'b', 'c', 'd'].map((c) => client.blobExists(`sha256:${c.repeat(64)}`)),
    );
    expect(found).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('reads the Docker config named by DOCKER_CONFIG', async () => {
    const config = join(dir, 'docker');
    await mkdir(config, { recursive: true });
    const auth = Buffer.from(`docker:${password}`).toString('base64');
    await writeFile(
      join(config, 'config.json'),
      JSON.stringify({ auths: { [`http://${registry.host}/v2/`]: { auth } } }),
    );
    const client = await RegistryClient.open(registry.reference('acme/appliance'), {
      env: { DOCKER_CONFIG: config },
      retry: FAST,
    });
    const doc = documentBlob({ from: 'docker config' });
    expect((await client.pushBlob(doc.bytes)).digest).toBe(doc.digest);
  });

  it('does not send the Authorization header where a redirect leads to another origin', async () => {
    // The registry answers a blob GET with a redirect to a blob store elsewhere
    // (here: another registry holding the same blob, behind a recording proxy).
    const store = await startRegistry();
    const storeProxy = await startFaultProxy(store.host, []);
    // Twice: pull asks first with its own reader (see direct.ts), which leaves a
    // redirect to node:http, which asks again and follows it.
    const front = await startFaultProxy(
      registry.host,
      [1, 2].map((nth) => ({
        method: 'GET',
        path: /\/blobs\/sha256:/,
        nth,
        redirectTo: `http://${storeProxy.host}`,
      })),
    );
    try {
      const file = join(dir, 'redirected.bin');
      const digest = await randomFile(file, 50_000);
      await (
        await RegistryClient.open(store.reference('acme/appliance'), { env: {} })
      ).pushBlob(file);
      const client = await clientOf(front, 'docker', password);
      await client.ping();
      await client.pullBlob(digest, 50_000, join(dir, 'redirected.out'));
      expect(front.requests.some((r) => r.authorization)).toBe(true);
      expect(storeProxy.requests.map((r) => [r.method, r.authorization])).toEqual([['GET', false]]);
    } finally {
      await front.stop();
      await storeProxy.stop();
      await store.stop();
    }
  });

  it('refuses a wrong password without ever showing it', async () => {
    const secret = 'not-the-password-5f2a9c';
    const client = await clientOf(registry, 'docker', secret);
    const error = await failure(client.listTags());
    expect(error.code).toBe('E_REGISTRY_AUTH');
    expect(error.message).toContain('docker');
    expectNoSecret(error, secret);
    expectNoSecret(error, Buffer.from(`docker:${secret}`).toString('base64'));
  });
});

describe.skipIf(registryMissing)(
  'Bearer tokens (the flow of Harbor, GHCR, ECR) against a real registry',
  () => {
    const user = 'ci-publisher';
    const password = 's3cret-token-value-81b7';
    let tokens: TokenServer;
    let registry: Registry;
    let dir: string;

    beforeAll(async () => {
      tokens = await startTokenServer(user, password);
      registry = await startRegistry({ kind: 'token', server: tokens });
      dir = await tempDir('ferry-oci-token-');
    });
    afterAll(async () => {
      await registry?.stop();
      await tokens?.stop();
    });

    it('gets a token for the scope the registry names, then pushes, tags and pulls', async () => {
      const client = await clientOf(registry, user, password);
      const file = join(dir, 'token.bin');
      const digest = await randomFile(file, 200_000);
      expect((await client.pushBlob(file)).uploaded).toBe(true);
      await client.pullBlob(digest, 200_000, join(dir, 'token.out'));
      expect(tokens.requests.every((r) => r.granted && r.user === user)).toBe(true);
      // The scopes the registry's challenges named: push for the upload (a file pushed
      // without its digest is hashed as it goes, so no HEAD asks first); that token
      // also serves the pull that follows. (Distribution lists the actions in any order.)
      const sorted = (scope: string) =>
        scope.replace(/[^:]+$/, (a) => a.split(',').sort().join(','));
      expect(tokens.requests.map((r) => r.scopes.map(sorted))).toEqual([
        ['repository:acme/appliance:pull,push'],
      ]);
    });

    it('requests refused at once wait for one token rather than each fetching its own', async () => {
      const client = await clientOf(registry, user, password);
      const before = tokens.requests.length;
      const found = await Promise.all(
        ['a', 'b', 'c', 'd'].map((c) => client.blobExists(`sha256:${c.repeat(64)}`)),
      );
      expect(found).toEqual([undefined, undefined, undefined, undefined]);
      expect(tokens.requests.length - before).toBe(1);
    });

    it('refuses wrong credentials at the token service, without showing them', async () => {
      const secret = 'wrong-7d1e';
      const client = await clientOf(registry, user, secret);
      const error = await failure(client.blobExists(`sha256:${'a'.repeat(64)}`));
      expect(error.code).toBe('E_REGISTRY_AUTH');
      expect(error.message).toContain(user);
      expectNoSecret(error, secret);
    });

    it('refuses anonymous access', async () => {
      const client = await clientOf(registry);
      expect((await failure(client.listTags())).code).toBe('E_REGISTRY_AUTH');
    });
  },
);
