import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, get as httpsGet } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { isLoopbackHost } from '../../../repository/oci/reference.js';
import { join } from 'node:path';

/**
 * Debian's docker-registry (CNCF Distribution 2.8) on 127.0.0.1, on a free
 * port, storing into a temp folder: a real registry for each test file that
 * needs one. scripts/setup-system.sh installs it; without it, the registry
 * tests are skipped and say why.
 */
export const REGISTRY_BINARY = findBinary('docker-registry');
export const SKOPEO = findBinary('skopeo');
export const registryMissing = REGISTRY_BINARY
  ? undefined
  : 'docker-registry is not installed: run scripts/setup-system.sh (Debian package docker-registry)';
if (registryMissing) console.warn(`skipping the registry tests: ${registryMissing}`);

export interface Registry {
  /** `127.0.0.1:<port>`, or the TLS site's `name:<port>` */
  host: string;
  /** The storage root, to damage blobs at rest in tests. */
  storage: string;
  /** `oci://<host>/<name>` */
  reference(name: string): string;
  /** Where Distribution keeps a blob's bytes. */
  blobPath(digest: string): string;
  /** What the registry logged (stderr). */
  log(): string;
  stop(): Promise<void>;
}

export type RegistryAuth =
  | { kind: 'none' }
  /** htpasswd Basic auth: Distribution provisions user `docker` and logs its password. */
  | { kind: 'htpasswd' }
  /** The Bearer token flow against `server`, as Harbor, GHCR and ECR use it. */
  | { kind: 'token'; server: TokenServer };

/**
 * A host name this machine answers on that Ferry does not take for loopback
 * (so it speaks HTTPS to it), with a self-signed certificate for it: where a
 * registry and a token service serve TLS in the tests. Clients trust it through
 * NODE_EXTRA_CA_CERTS, as an operator would trust a private CA.
 */
export interface TlsSite {
  /** The name clients use: the machine's host name, else an address of one of its interfaces. */
  name: string;
  /** The address servers listen on. */
  address: string;
  /** PEM files. */
  certificate: string;
  key: string;
}

/** Undefined when the machine has no such name or address (the TLS tests then say so and skip). */
export async function tlsSite(dir: string): Promise<TlsSite | undefined> {
  const candidates = [hostname()];
  for (const addresses of Object.values(networkInterfaces()))
    for (const one of addresses ?? [])
      if (one.family === 'IPv4' && !one.internal) candidates.push(one.address);
  for (const name of candidates) {
    if (!name || isLoopbackHost(name)) continue;
    const address = await lookup(name, { family: 4 }).then(
      (found) => found.address,
      () => undefined,
    );
    if (!address || !(await canListen(address))) continue;
    const certificate = join(dir, 'site.crt');
    const key = join(dir, 'site.key');
    const names = name === address ? `IP:${address}` : `DNS:${name},IP:${address}`;
    selfSigned(key, certificate, name, `subjectAltName=${names}`);
    return { name, address, certificate, key };
  }
  return undefined;
}

/** A P-256 key and a self-signed certificate for it, valid two days. */
function selfSigned(key: string, certificate: string, name: string, extension?: string): void {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      certificate,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      ...(extension ? ['-addext', extension] : []),
    ],
    { stdio: 'ignore' },
  );
}

async function canListen(address: string): Promise<boolean> {
  return freePort(address).then(
    () => true,
    () => false,
  );
}

export async function startRegistry(
  auth: RegistryAuth = { kind: 'none' },
  tls?: TlsSite,
): Promise<Registry> {
  if (!REGISTRY_BINARY) throw new Error(registryMissing);
  const dir = await mkdtemp(join(tmpdir(), 'ferry-registry-'));
  const storage = join(dir, 'storage');
  for (let tries = 1; ; tries++) {
    const port = await freePort(tls?.address);
    const host = `${tls ? tls.name : '127.0.0.1'}:${port}`;
    await writeFile(
      join(dir, 'config.yml'),
      config(`${tls ? tls.address : '127.0.0.1'}:${port}`, storage, dir, auth, tls),
    );
    const child = spawn(REGISTRY_BINARY, ['serve', join(dir, 'config.yml')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const registry: Registry = {
      host,
      storage,
      reference: (name) => `oci://${host}/${name}`,
      blobPath: (digest) => {
        const hex = digest.replace(/^sha256:/, '');
        return join(storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
      },
      log: () => log,
      stop: async () => {
        await stopChild(child);
        await rm(dir, { recursive: true, force: true });
      },
    };
    if (await ready(host, child, tls)) return registry;
    await stopChild(child);
    // Another process took the port between our check and the registry's bind.
    if (tries === 3) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`docker-registry did not start on ${host}:\n${log}`);
    }
  }
}

/** The password Distribution made up for user `docker` when it found no htpasswd file. */
export function provisionedPassword(registry: Registry): string {
  const found = /password=([A-Za-z0-9_-]+)/.exec(registry.log());
  if (!found?.[1])
    throw new Error(`no provisioned password in the registry log:\n${registry.log()}`);
  return found[1];
}

function config(
  listen: string,
  storage: string,
  dir: string,
  auth: RegistryAuth,
  tls: TlsSite | undefined,
): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${listen}`,
    // A fixed secret keeps upload states valid however the test restarts things.
    `  secret: ${randomBytes(16).toString('hex')}`,
  ];
  if (tls) lines.push('  tls:', `    certificate: ${tls.certificate}`, `    key: ${tls.key}`);
  if (auth.kind === 'htpasswd') {
    lines.push(
      'auth:',
      '  htpasswd:',
      '    realm: ferry-test',
      `    path: ${join(dir, 'htpasswd')}`,
    );
  } else if (auth.kind === 'token') {
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${auth.server.realm}`,
      `    service: ${auth.server.service}`,
      `    issuer: ${auth.server.issuer}`,
      `    rootcertbundle: ${auth.server.certificate}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function ready(host: string, child: ChildProcess, tls?: TlsSite): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && child.exitCode === null) {
    const status = await (tls ? httpsStatus(`https://${host}/v2/`, tls) : httpStatus(host));
    // 401 is an answer too: the registry wants credentials.
    if (status === 200 || status === 401) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

async function httpStatus(host: string): Promise<number | undefined> {
  try {
    const response = await fetch(`http://${host}/v2/`);
    await response.body?.cancel();
    return response.status;
  } catch {
    return undefined; // not listening yet
  }
}

function httpsStatus(url: string, tls: TlsSite): Promise<number | undefined> {
  return new Promise((resolve) => {
    httpsGet(url, { ca: readFileSync(tls.certificate) }, (response) => {
      response.resume();
      resolve(response.statusCode);
    }).on('error', () => resolve(undefined));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** A file of random bytes; returns its digest. */
export async function randomFile(path: string, size: number): Promise<string> {
  const bytes = randomBytes(size);
  await writeFile(path, bytes);
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export async function freePort(address = '127.0.0.1'): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, address, resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function findBinary(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * A Docker token service (the Bearer flow's realm): checks HTTP Basic
 * credentials and answers with a JWT signed by an EC key whose self-signed
 * certificate the registry trusts (auth.token.rootcertbundle), granting the
 * scope asked for. Records what was asked, for the tests.
 */
export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certificate: string;
  /** Every token request: the scopes asked and whether its credentials were accepted. */
  requests: Array<{ scopes: string[]; user: string | undefined; granted: boolean }>;
  stop(): Promise<void>;
}

export async function startTokenServer(
  user: string,
  password: string,
  tls?: TlsSite,
): Promise<TokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-token-'));
  const keyFile = join(dir, 'token.key');
  const certificate = join(dir, 'token.crt');
  selfSigned(keyFile, certificate, 'ferry-test-token');
  const key = createPrivateKey(readFileSync(keyFile));
  const chain = readFileSync(certificate, 'utf8').replace(/-----[A-Z ]+-----|\s/g, '');
  const service = 'ferry-test-registry';
  const issuer = 'ferry-test-issuer';
  const requests: TokenServer['requests'] = [];
  const answer = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const [given, secret] = basic ? Buffer.from(basic, 'base64').toString().split(/:(.*)/s) : [];
    const scopes = url.searchParams.getAll('scope');
    const granted = given === user && secret === password;
    requests.push({ scopes, user: given, granted });
    if (!granted) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"details":"bad credentials"}');
      return;
    }
    const token = jwt(key, chain, {
      iss: issuer,
      sub: given,
      aud: service,
      access: scopes.map(parseScope).filter((s) => s !== undefined),
    });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, expires_in: 300 }));
  };
  const server: Server = tls
    ? createHttpsServer({ cert: readFileSync(tls.certificate), key: readFileSync(tls.key) }, answer)
    : createServer(answer);
  await new Promise<void>((resolve) => server.listen(0, tls?.address ?? '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: tls ? `https://${tls.name}:${port}/token` : `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certificate,
    requests,
    stop: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const match = /^([a-z]+):(.+):([a-z*,]+)$/.exec(scope);
  return match
    ? {
        type: match[1] as string,
        name: match[2] as string,
        actions: (match[3] as string).split(','),
      }
    : undefined;
}

function jwt(key: KeyObject, certificate: string, claims: Record<string, unknown>): string {
  const now = Math.floor(Date.now() / 1000);
  const encode = (value: unknown): string =>
    Buffer.from(JSON.stringify(value)).toString('base64url');
  const head = encode({ typ: 'JWT', alg: 'ES256', x5c: [certificate] });
  const body = encode({
    ...claims,
    exp: now + 300,
    nbf: now - 10,
    iat: now,
    jti: randomBytes(8).toString('hex'),
  });
  const signature = sign('sha256', Buffer.from(`${head}.${body}`), {
    key,
    dsaEncoding: 'ieee-p1363',
  });
  return `${head}.${body}.${signature.toString('base64url')}`;
}
