import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAll, ferry, json, tempDir, workspace, type Workspace } from '../helpers.js';
import {
  provisionedPassword,
  registryMissing,
  startRegistry,
  startTokenServer,
  tlsSite,
  type Registry,
  type TokenServer,
} from '../repository/oci/registry.js';

/**
 * Registries as sites run them: over HTTPS, with a certificate from a
 * private CA the operator trusts through NODE_EXTRA_CA_CERTS, with Basic
 * credentials or the Bearer token flow. bin/ferry publishes and pulls as CI
 * and the machine burning USB sticks would.
 */

const siteDir = await tempDir('ferry-e2e-tls-');
const site = registryMissing ? undefined : await tlsSite(siteDir);
const tlsMissing =
  registryMissing ??
  (site ? undefined : 'this machine has no host name or address that is not loopback');
if (!registryMissing && tlsMissing) console.warn(`skipping the TLS registry tests: ${tlsMissing}`);

const user = 'ci-publisher';
const password = 's3cret-over-tls-5c2a';

describe.skipIf(tlsMissing)('publish and pull against a registry over HTTPS', () => {
  let ws: Workspace;
  let bundle: string;
  const started: Array<{ stop(): Promise<void> }> = [];

  beforeAll(async () => {
    ws = await workspace(join(siteDir, 'ws'));
    bundle = (await buildAll(ws, join(siteDir, 'out'), 'tar', ['1.0.0']))['1.0.0'] as string;
  }, 120_000);
  afterAll(async () => {
    for (const one of started.reverse()) await one.stop();
  });

  async function registryWith(
    auth: Parameters<typeof startRegistry>[0],
    ...servers: TokenServer[]
  ): Promise<Registry> {
    started.push(...servers);
    const registry = await startRegistry(auth, site);
    started.push(registry);
    return registry;
  }

  const sha256 = async (file: string): Promise<string> =>
    `sha256:${createHash('sha256')
      .update(await readFile(file))
      .digest('hex')}`;

  /** Publishes to REPO's dev channel and pulls it back; returns the pulled file. */
  async function roundTrip(repo: string, env: Record<string, string>, out: string) {
    const published = await ferry(
      ['publish', bundle, '--repo', repo, '--trust', ws.trust, '--key', ws.key, '--channel', 'dev'],
      { env: { FERRY_ACTOR: 'ci', ...env } },
    );
    expect(published.code, published.stderr).toBe(0);
    const pulled = await ferry(
      ['pull', '--repo', repo, '--channel', 'dev', '--out', out, '--json'],
      { env },
    );
    expect(pulled.code, pulled.stderr).toBe(0);
    return json<{ bundle: string; digest: string }>(pulled).bundle;
  }

  it('with Basic credentials and a private CA in NODE_EXTRA_CA_CERTS: publish, then pull the same bytes', async () => {
    const registry = await registryWith({ kind: 'htpasswd' });
    expect(registry.reference('acme/appliance')).toMatch(/^oci:\/\/[^/]+:\d+\//);
    const env = {
      NODE_EXTRA_CA_CERTS: site!.certificate,
      FERRY_REGISTRY_USER: 'docker',
      FERRY_REGISTRY_PASSWORD: provisionedPassword(registry),
    };
    const pulled = await roundTrip(registry.reference('acme/appliance'), env, join(siteDir, 'usb'));
    expect(await sha256(pulled)).toBe(await sha256(bundle));
  });

  it('without the CA, a certificate that does not verify is E_REGISTRY_UNREACHABLE naming the registry, with the NODE_EXTRA_CA_CERTS hint', async () => {
    const registry = await registryWith({ kind: 'none' });
    const result = await ferry(
      ['channels', '--repo', registry.reference('acme/appliance'), '--json'],
      {},
    );
    expect(result.code, result.stderr).toBe(1);
    const { error } = json<{ error: { code: string; message: string; hint: string } }>(result);
    expect(error.code).toBe('E_REGISTRY_UNREACHABLE');
    expect(error.message).toContain(registry.host);
    expect(error.hint).toContain('NODE_EXTRA_CA_CERTS');
  });

  it('with the Bearer flow, its token service on HTTPS too: a token for the scope, then publish and pull', async () => {
    const tokens = await startTokenServer(user, password, site);
    const registry = await registryWith({ kind: 'token', server: tokens }, tokens);
    expect(tokens.realm).toMatch(/^https:/);
    const env = {
      NODE_EXTRA_CA_CERTS: site!.certificate,
      FERRY_REGISTRY_USER: user,
      FERRY_REGISTRY_PASSWORD: password,
    };
    const pulled = await roundTrip(
      registry.reference('acme/appliance'),
      env,
      join(siteDir, 'usb-token'),
    );
    expect(await sha256(pulled)).toBe(await sha256(bundle));
    expect(tokens.requests.length).toBeGreaterThan(0);
    expect(tokens.requests.every((r) => r.granted && r.user === user)).toBe(true);
  });

  it('a registry on HTTPS that names a token service on plain HTTP, even on this machine, gets no password: E_REGISTRY_AUTH before anything is sent', async () => {
    const plain = await startTokenServer(user, password);
    const registry = await registryWith({ kind: 'token', server: plain }, plain);
    expect(plain.realm).toMatch(/^http:\/\/127\.0\.0\.1:/);
    const result = await ferry(
      ['channels', '--repo', registry.reference('acme/appliance'), '--json'],
      {
        env: {
          NODE_EXTRA_CA_CERTS: site!.certificate,
          FERRY_REGISTRY_USER: user,
          FERRY_REGISTRY_PASSWORD: password,
        },
      },
    );
    expect(result.code, result.stderr).toBe(2);
    const { error } = json<{ error: { code: string; message: string } }>(result);
    expect(error.code).toBe('E_REGISTRY_AUTH');
    expect(error.message).toContain('which is not HTTPS');
    expect(result.stdout + result.stderr).not.toContain(password);
    // The token service never heard from it: the password did not cross in clear.
    expect(plain.requests).toEqual([]);
  });

  it('behind a TLS proxy that does not say the request came over HTTPS, the registry’s http: upload location is refused (E_REGISTRY, naming the proxy’s header): the bundle never goes in clear', async () => {
    // Distribution on plain HTTP on this machine, and in front of it the site's HTTPS,
    // passing the Host on but no X-Forwarded-Proto: Distribution builds its upload
    // locations as http://site/…, as it does behind a misconfigured nginx.
    const registry = await startRegistry();
    started.push(registry);
    const [upstreamHost, upstreamPort] = registry.host.split(':');
    const plainSeen: string[] = [];
    const proxy = createHttpsServer(
      { cert: await readFile(site!.certificate), key: await readFile(site!.key) },
      (req, res) => {
        const upstream = httpRequest(
          {
            host: upstreamHost,
            port: upstreamPort,
            method: req.method,
            path: req.url,
            headers: req.headers,
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        upstream.on('error', () => res.destroy());
        req.pipe(upstream);
      },
    );
    // A plain-HTTP request to the TLS port: what the bundle's PATCH would have been.
    proxy.on('tlsClientError', () => plainSeen.push('plain HTTP on the TLS port'));
    await new Promise<void>((resolve) => proxy.listen(0, site!.address, resolve));
    started.push({
      stop: async () => {
        proxy.closeAllConnections();
        await new Promise((resolve) => proxy.close(resolve));
      },
    });
    const host = `${site!.name}:${(proxy.address() as AddressInfo).port}`;
    const published = await ferry(
      [
        'publish',
        bundle,
        '--repo',
        `oci://${host}/acme/appliance`,
        '--trust',
        ws.trust,
        '--key',
        ws.key,
        '--json',
      ],
      { env: { FERRY_ACTOR: 'ci', NODE_EXTRA_CA_CERTS: site!.certificate } },
    );
    expect(published.code, published.stderr).toBe(1);
    const { error } = json<{ error: { code: string; message: string; hint: string } }>(published);
    expect(error.code).toBe('E_REGISTRY');
    expect(error.message).toContain(
      `leads to http://${host}, over plain HTTP, from registry ${host} (https://${host})`,
    );
    expect(error.hint).toContain('X-Forwarded-Proto');
    expect(plainSeen).toEqual([]);
  });
});
