import {
  createServer,
  request,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bigBundle,
  buildAll,
  FERRY,
  ferry,
  tempDir,
  workspace,
  type RunResult,
  type Workspace,
} from '../helpers.js';
import { RegistryClient } from '../../repository/oci/client.js';
import { registryMissing, startRegistry, type Registry } from '../repository/oci/registry.js';

/**
 * The operator's side of a registry that misbehaves: bin/ferry (pull,
 * history, channels) through a proxy in front of a real registry that
 * answers some requests itself. Every refusal exits with a stable code,
 * names the repository, and leaves nothing under --out.
 */

/** Answers a request itself (returns true) or lets the proxy forward it. */
type Intercept = (req: IncomingMessage, res: ServerResponse) => boolean;

interface Proxy {
  host: string;
  intercept: Intercept;
  server: Server;
}

async function startProxy(target: string): Promise<Proxy> {
  const [hostname, port] = target.split(':');
  const proxy: Proxy = {
    host: '',
    intercept: () => false,
    server: createServer((req, res) => {
      if (proxy.intercept(req, res)) return;
      const upstream = request(
        { hostname, port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    }),
  };
  await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
  proxy.host = `127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
  return proxy;
}

let dir: string;
let ws: Workspace;
let rogue: Workspace;
let registry: Registry;
let proxy: Proxy;
const bundles: Record<string, string> = {};

function run(args: string[]): Promise<RunResult> {
  return ferry(args, { env: { FERRY_ACTOR: 'ci' } });
}

const errorOf = (result: RunResult): { code?: string; message?: string } =>
  (JSON.parse(result.stdout) as { error?: { code?: string; message?: string } }).error ?? {};

/**
 * Runs `ferry pull` with ARGS, sends it Ctrl-C once its partial download shows in
 * OUT (under a hidden name), and expects it to end by that signal having removed
 * the download and every folder it made, up to USB.
 */
async function interruptedPull(args: string[], out: string, usb: string): Promise<void> {
  const child = spawn(process.execPath, [FERRY, 'pull', ...args, '--out', out], {
    env: { PATH: process.env.PATH, HOME: dir },
    stdio: 'ignore',
  });
  const closed = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('close', (_code, signal) => resolve(signal)),
  );
  let ended = false;
  void closed.then(() => (ended = true));
  while (!(await readdir(out).catch(() => [])).some((entry) => entry.startsWith('.'))) {
    // A pull that ends first (refused, or done before its partial file was seen) fails here, not by the timeout.
    expect(ended, 'the pull ended before its partial download was seen').toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill('SIGINT');
  expect(await closed).toBe('SIGINT');
  await expect(readdir(usb)).rejects.toThrow();
}

describe.skipIf(registryMissing)('an operator pulling from a hostile registry', () => {
  beforeAll(async () => {
    dir = await tempDir('ferry-e2e-hostile-');
    ws = await workspace(join(dir, 'ours'));
    rogue = await workspace(join(dir, 'rogue'));
    bundles.ours = (await buildAll(ws, join(dir, 'out'), 'tar', ['1.0.0']))['1.0.0'] as string;
    bundles.rogue = (await buildAll(rogue, join(dir, 'rogue-out'), 'tar', ['1.0.0']))[
      '1.0.0'
    ] as string;
    registry = await startRegistry();
    proxy = await startProxy(registry.host);
    for (const [name, from] of [
      ['ours', ws],
      ['rogue', rogue],
    ] as const) {
      const published = await run([
        'publish',
        bundles[name] as string,
        '--repo',
        registry.reference(`acme/${name}`),
        '--trust',
        from.trust,
        '--key',
        from.key,
        '--channel',
        'dev',
      ]);
      if (published.code !== 0) throw new Error(published.stderr);
    }
    // The rogue registry puts our config (our trust root) in front of its own documents and
    // bundle: --trust finds its root on the chain, and only the signatures tell.
    const ours = await RegistryClient.open(registry.reference('acme/ours'), { env: {} });
    const theirs = await RegistryClient.open(registry.reference('acme/rogue'), { env: {} });
    const config = await ours.getManifest('ferry.config');
    const manifest = JSON.parse(config.bytes.toString('utf8')) as {
      layers: Array<{ digest: string; size: number }>;
    };
    for (const layer of manifest.layers)
      await theirs.pushBlob(await ours.readBlob(layer.digest, layer.size), layer);
    await theirs.putManifest('ferry.config', config.bytes, config.mediaType);
    ours.close();
    theirs.close();
  }, 300_000);
  afterAll(async () => {
    proxy.server.closeAllConnections();
    await new Promise((resolve) => proxy.server.close(resolve));
    await registry.stop();
  });

  it('history --verify through a proxy whose tag list is a login page exits 1 (E_REGISTRY), never "verified" over nothing', async () => {
    proxy.intercept = (req, res) => {
      if (!req.url?.includes('/tags/list')) return false;
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html>sign in</html>');
      return true;
    };
    try {
      const result = await run([
        'history',
        '--repo',
        `oci://${proxy.host}/acme/ours`,
        '--verify',
        '--json',
      ]);
      expect(result.code, result.stdout).toBe(1);
      expect(errorOf(result)).toMatchObject({ code: 'E_REGISTRY' });
      expect(errorOf(result).message).toContain('acme/ours');
    } finally {
      proxy.intercept = () => false;
    }
  });

  it('a pull refused at the config ends at once, not when a registry that never answers the reads it asked ahead gives up', async () => {
    const held: ServerResponse[] = [];
    proxy.intercept = (req, res) => {
      if (!req.url?.startsWith('/v2/acme/never-made/')) return false;
      if (req.url.endsWith('/manifests/ferry.config'))
        res
          .writeHead(404, { 'content-type': 'application/json' })
          .end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}');
      // Asked at once with the config; never answered (a proxy that hangs, say).
      else held.push(res);
      return true;
    };
    try {
      const started = Date.now();
      const result = await run([
        'pull',
        '--repo',
        `oci://${proxy.host}/acme/never-made`,
        '--channel',
        'dev',
        '--out',
        join(dir, 'never-made'),
        '--json',
      ]);
      expect(errorOf(result)).toMatchObject({ code: 'E_REPO_NOT_FOUND' });
      expect(result.code).not.toBe(0);
      expect(held.length).toBeGreaterThan(0);
      // Its own timeouts are minutes: the process does not wait them out.
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      proxy.intercept = () => false;
      for (const res of held) res.destroy();
    }
  });

  /**
   * Makes the proxy forward GETs of blob `digest` whole but their bodies only in
   * part: the Nth such request (0-based) passes `budget(N)` bytes of its body,
   * then nothing more, its connection held open (a registry or proxy that stopped
   * sending). Returns the Range each request asked with, and a function that
   * lets go of what it holds.
   */
  function stallBlob(
    digest: string,
    budget: (request: number) => number,
  ): { ranges: Array<string | undefined>; release: () => void } {
    const ranges: Array<string | undefined> = [];
    const held: ServerResponse[] = [];
    const [hostname, port] = registry.host.split(':');
    proxy.intercept = (req, res) => {
      if (req.method !== 'GET' || !req.url?.endsWith(`/blobs/${digest}`)) return false;
      let left = budget(ranges.length);
      ranges.push(req.headers.range);
      held.push(res);
      request({ hostname, port, path: req.url, headers: req.headers }, (answer) => {
        // The head goes at once, whatever of the body follows: the stall is mid-body.
        res.writeHead(answer.statusCode ?? 502, answer.headers).flushHeaders();
        answer.on('data', (chunk: Buffer) => {
          if (left >= chunk.length) {
            left -= chunk.length;
            res.write(chunk);
            return;
          }
          if (left > 0) res.write(chunk.subarray(0, left));
          left = 0;
          answer.destroy();
        });
        answer.on('end', () => res.end());
      })
        .on('error', () => res.destroy())
        .end();
      return true;
    };
    return {
      ranges,
      release: () => {
        proxy.intercept = () => false;
        for (const res of held) res.destroy();
      },
    };
  }

  /** Our bundle's digest and size, as the registry holds it. */
  async function ourBundle(): Promise<{ digest: string; size: number; bytes: Buffer }> {
    const bytes = await readFile(bundles.ours as string);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    return { digest, size: bytes.length, bytes };
  }

  /** `ferry pull --channel dev` of our repository through the proxy, idle limit 1 s. */
  const pullThroughProxy = (out: string) =>
    ferry(
      [
        'pull',
        '--repo',
        `oci://${proxy.host}/acme/ours`,
        '--channel',
        'dev',
        '--out',
        out,
        '--json',
      ],
      { env: { FERRY_REGISTRY_IDLE_SECONDS: '1' } },
    );

  it('a pull whose bundle stops arriving mid-body fails after six silent tries of the idle limit (FERRY_REGISTRY_IDLE_SECONDS), not after half an hour: E_REGISTRY_UNREACHABLE naming the repository, version, bytes and the stall; nothing left', async () => {
    const bundle = await ourBundle();
    const half = Math.floor(bundle.size / 2);
    const stalled = stallBlob(bundle.digest, (n) => (n === 0 ? half : 0));
    const usb = join(dir, 'usb-stalled');
    try {
      const started = Date.now();
      const result = await pullThroughProxy(join(usb, 'new'));
      const took = Date.now() - started;
      expect(result.code, result.stdout + result.stderr).toBe(1);
      const error = errorOf(result);
      expect(error).toMatchObject({ code: 'E_REGISTRY_UNREACHABLE', reference: '1.0.0' });
      expect(error.message).toContain(`oci://${proxy.host}/acme/ours: version 1.0.0`);
      expect(error.message).toContain('stalled: nothing arrived for 1 s');
      expect(error.message).toContain(`pull blob ${bundle.digest} in acme/ours;`);
      expect(error.message).toContain(`${half} of its ${bundle.size} bytes arrived`);
      expect(JSON.stringify(JSON.parse(result.stdout))).toContain('FERRY_REGISTRY_IDLE_SECONDS');
      // Six tries: the first brought half, the five after it nothing (each resumed from there).
      expect(stalled.ranges).toEqual([undefined, ...Array<string>(5).fill(`bytes=${half}-`)]);
      // Six idle limits of 1 s and the pauses between tries (0.5 s doubling to 8 s, 15.5 s and up to a quarter more).
      expect(took).toBeGreaterThan(6_000);
      expect(took).toBeLessThan(45_000);
      await expect(readdir(usb)).rejects.toThrow();
    } finally {
      stalled.release();
    }
  }, 90_000);

  it('a pull whose bundle stalls once resumes from the bytes kept (Range) and arrives whole', async () => {
    const bundle = await ourBundle();
    const half = Math.floor(bundle.size / 2);
    const stalled = stallBlob(bundle.digest, (n) => (n === 0 ? half : Number.POSITIVE_INFINITY));
    const usb = join(dir, 'usb-stalled-once');
    try {
      const result = await pullThroughProxy(usb);
      expect(result.code, result.stdout + result.stderr).toBe(0);
      expect(stalled.ranges).toEqual([undefined, `bytes=${half}-`]);
      const name = (bundles.ours as string).split('/').at(-1) as string;
      expect((await readFile(join(usb, name))).equals(bundle.bytes)).toBe(true);
    } finally {
      stalled.release();
    }
  }, 90_000);

  it('a pull over a link that stalls again and again but moves on each time finishes: tries that brought bytes do not use up the six', async () => {
    const bundle = await ourBundle();
    const tenth = Math.ceil(bundle.size / 10);
    const stalled = stallBlob(bundle.digest, () => tenth);
    const usb = join(dir, 'usb-stalling');
    try {
      const result = await pullThroughProxy(usb);
      expect(result.code, result.stdout + result.stderr).toBe(0);
      expect(stalled.ranges.length).toBe(10);
      const name = (bundles.ours as string).split('/').at(-1) as string;
      expect((await readFile(join(usb, name))).equals(bundle.bytes)).toBe(true);
    } finally {
      stalled.release();
    }
  }, 90_000);

  // A link (or a hostile proxy) that passes a few bytes of every try and then holds it
  // silent: each try moves past the furthest point, by far less than the minimum (a
  // sixteenth of this small bundle). Counted as progress, it would go on for hours.
  it('a pull over a link that trickles (a few bytes a try, then silence) fails after six tries: E_REGISTRY_UNREACHABLE saying it trickled and how many bytes came, hinting at the link; nothing left', async () => {
    const bundle = await ourBundle();
    const few = Math.max(1, Math.floor(bundle.size / 16 / 50));
    const trickle = stallBlob(bundle.digest, () => few);
    const usb = join(dir, 'usb-trickle');
    try {
      const started = Date.now();
      const result = await pullThroughProxy(join(usb, 'new'));
      const took = Date.now() - started;
      expect(result.code, result.stdout + result.stderr).toBe(1);
      const error = errorOf(result);
      expect(error).toMatchObject({ code: 'E_REGISTRY_UNREACHABLE', reference: '1.0.0' });
      expect(error.message).toContain(`oci://${proxy.host}/acme/ours: version 1.0.0`);
      expect(error.message).toContain(
        `trickled: 6 tries in a row to pull blob ${bundle.digest} in acme/ours moved it on by ${6 * few} bytes in all, less than the ${Math.ceil(bundle.size / 16)} bytes that starts the count again; the last stalled: nothing arrived for 1 s`,
      );
      expect(error.message).toContain(`${6 * few} of its ${bundle.size} bytes arrived`);
      const hint = (JSON.parse(result.stdout) as { error: { hint: string } }).error.hint;
      expect(hint).toMatch(/^the link to the registry, or a proxy in front of it, passes a little/);
      expect(hint).toContain('FERRY_REGISTRY_IDLE_SECONDS');
      expect(trickle.ranges).toHaveLength(6);
      // Six idle limits of 1 s and the pauses between tries, as a link that sends nothing.
      expect(took).toBeLessThan(45_000);
      await expect(readdir(usb)).rejects.toThrow();
    } finally {
      trickle.release();
    }
  }, 90_000);

  /** `ferry pull --version 1.0.0` of the rogue repository's bundle (signed by a key --trust does not hold). */
  const pullRogue = (out: string) =>
    run([
      'pull',
      '--repo',
      registry.reference('acme/rogue'),
      '--version',
      '1.0.0',
      '--trust',
      ws.trust,
      '--out',
      out,
      '--json',
    ]);

  it('a bundle whose bytes match the manifest but whose signature does not meet --trust is refused (exit 3), named by repository and version', async () => {
    const result = await pullRogue(join(dir, 'usb-named'));
    expect(result.code, result.stderr).toBe(3);
    const error = errorOf(result);
    expect(error).toMatchObject({ code: 'E_SIGNATURE', reference: '1.0.0' });
    expect(error.message).toContain(
      `${registry.reference('acme/rogue')}: version 1.0.0 (acme-appliance-1.0.0-install.tar)`,
    );
    // Not the temporary file it was checked in, which is gone by now.
    expect(result.stdout + result.stderr).not.toContain('.pull');
  });

  it('a refused pull removes the folders it made for --out', async () => {
    const usb = join(dir, 'usb-made');
    const result = await pullRogue(join(usb, 'stick', 'new'));
    expect(result.code).toBe(3);
    await expect(readdir(usb)).rejects.toThrow();
  });

  it('a pull refused into a folder that existed leaves the folder as it was', async () => {
    const usb = join(dir, 'usb-existing');
    await mkdir(usb);
    await writeFile(join(usb, 'README'), 'keep me');
    expect((await pullRogue(usb)).code).toBe(3);
    expect(await readdir(usb)).toEqual(['README']);
  });

  it('a channel signed by a key --trust does not hold is refused before --out is made', async () => {
    const usb = join(dir, 'usb-channel');
    const result = await run([
      'pull',
      '--repo',
      registry.reference('acme/rogue'),
      '--channel',
      'dev',
      '--trust',
      ws.trust,
      '--out',
      usb,
      '--json',
    ]);
    expect(result.code).toBe(3);
    expect(errorOf(result)).toMatchObject({ code: 'E_REPO_INVALID' });
    expect(errorOf(result).message).toContain('acme/rogue: channel dev');
    await expect(readdir(usb)).rejects.toThrow();
  });

  it('a signed event replayed under a later audit tag: a writer refuses it (exit 3) and writes nothing', async () => {
    const repo = registry.reference('acme/replayed');
    const published = await run([
      'publish', bundles.ours as string, '--repo', repo, '--trust', ws.trust, '--key', ws.key,
      '--channel', 'dev',
    ]); // prettier-ignore
    expect(published.code, published.stderr).toBe(0);
    // The registry (or whoever can write to it) puts event 1 again as event 9.
    const client = await RegistryClient.open(repo, { env: {} });
    const first = await client.getManifest('ferry.audit.00000001');
    await client.putManifest('ferry.audit.00000009', first.bytes, first.mediaType);
    const before = (await client.listTags()).sort();

    const approved = await run([
      'approve', '1.0.0', '--repo', repo, '--to', 'beta', '--by', 'alice', '--key', ws.key,
      '--json',
    ]); // prettier-ignore
    expect(approved.code, approved.stdout).toBe(3);
    expect(errorOf(approved)).toMatchObject({
      code: 'E_AUDIT_BROKEN',
      reference: 'ferry.audit.00000009',
    });
    expect(errorOf(approved).message).toContain(`${repo}: event 9 says it is event 1`);
    expect((await client.listTags()).sort()).toEqual(before);
  });

  it('Ctrl-C mid-download removes the partial bundle and the folders pull made, and ends the process by the signal', async () => {
    const bytes = await readFile(bundles.ours as string);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    // The bundle's download sends its first 64 KiB, then stalls. It says the
    // bundle's own length: a longer one is refused at once, before any Ctrl-C.
    proxy.intercept = (req, res) => {
      if (req.method !== 'GET' || !req.url?.endsWith(`/blobs/${digest}`)) return false;
      res.writeHead(200, { 'content-length': String(bytes.length) });
      res.write(Buffer.alloc(64 * 1024));
      return true;
    };
    const usb = join(dir, 'usb-interrupted');
    const out = join(usb, 'new');
    try {
      await interruptedPull(
        ['--repo', `oci://${proxy.host}/acme/ours`, '--version', '1.0.0'],
        out,
        usb,
      );
    } finally {
      proxy.intercept = () => false;
    }
  });

  it('a pull SIGKILLed mid-download leaves nothing under the bundle’s name, and the next pull removes what it left', async () => {
    const bytes = await readFile(bundles.ours as string);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    proxy.intercept = (req, res) => {
      if (req.method !== 'GET' || !req.url?.endsWith(`/blobs/${digest}`)) return false;
      res.writeHead(200, { 'content-length': String(bytes.length) });
      res.write(Buffer.alloc(64 * 1024));
      return true;
    };
    const out = join(dir, 'usb-killed');
    const args = [
      'pull',
      '--repo',
      `oci://${proxy.host}/acme/ours`,
      '--version',
      '1.0.0',
      '--out',
      out,
    ];
    try {
      const child = spawn(process.execPath, [FERRY, ...args], {
        env: { PATH: process.env.PATH, HOME: dir },
        stdio: 'ignore',
      });
      const closed = new Promise((resolve) => child.on('close', resolve));
      while (!(await readdir(out).catch(() => [])).some((entry) => entry.endsWith('.part')))
        await new Promise((resolve) => setTimeout(resolve, 20));
      child.kill('SIGKILL');
      await closed;
    } finally {
      proxy.intercept = () => false;
    }
    const left = await readdir(out);
    expect(left.length).toBeGreaterThan(0);
    expect(left.every((entry) => entry.startsWith('.'))).toBe(true);
    // Another machine's pull into the same folder (a share): its process id means nothing here.
    const theirs = '.other.tar.00000000-999999.abcdefabcdef.pull';
    await writeFile(join(out, theirs), 'partial');
    // A container's on this machine, with the host's name (its network) but its own process ids.
    const host = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
    const container = `.other.tar.${host}-999999.abcdefabcdef.pull`;
    await writeFile(join(out, container), 'partial');
    const again = await run(args);
    expect(again.code, again.stderr).toBe(0);
    const name = (bundles.ours as string).split('/').at(-1) as string;
    expect((await readdir(out)).sort()).toEqual([theirs, container, name].sort());
    expect(await readFile(join(out, name))).toEqual(bytes);
  });

  it('Ctrl-C while a directory repository copies the bundle removes the partial copy too', async () => {
    // Large enough that the copy is still under way when the partial file is seen: a FIFO in
    // the blob's place is refused at once (hashing.ts), so it left no copy to interrupt.
    const { bundle } = await bigBundle(ws, dir, 'big', '1.0.0', Buffer.alloc(272 * 1024 * 1024, 7));
    const repo = join(dir, 'dir-repo');
    const published = await run([
      'publish', bundle, '--repo', repo, '--trust', ws.trust, '--key', ws.key,
    ]); // prettier-ignore
    expect(published.code, published.stderr).toBe(0);
    const usb = join(dir, 'usb-interrupted-dir');
    const out = join(usb, 'new');
    await interruptedPull(['--repo', repo, '--version', '1.0.0'], out, usb);
  }, 120_000);

  it('a bundle of another product the same key signed, under this version: refused (E_REPO_PRODUCT), nothing left', async () => {
    // Another product, built and signed with our release key, in its own repository.
    const product = join(dir, 'other-product');
    await cp(ws.product, product, { recursive: true, verbatimSymlinks: true });
    await rm(join(product, 'history'), { recursive: true, force: true });
    const spec = join(product, 'release-1.0.0.yaml');
    await writeFile(
      spec,
      (await readFile(spec, 'utf8')).replace('product: acme-appliance', 'product: other-appliance'),
    );
    const other = (await buildAll({ ...ws, product }, join(dir, 'other-out'), 'tar', ['1.0.0']))[
      '1.0.0'
    ] as string;
    const published = await run([
      'publish', other, '--repo', registry.reference('acme/other'), '--trust', ws.trust,
      '--key', ws.key,
    ]); // prettier-ignore
    expect(published.code, published.stderr).toBe(0);
    // A mirror that mixed repositories up: acme/mixed holds ours, then 1.0.0 is the other's.
    const mixed = registry.reference('acme/mixed');
    expect((await run([
      'publish', bundles.ours as string, '--repo', mixed, '--trust', ws.trust, '--key', ws.key,
    ])).code).toBe(0); // prettier-ignore
    const from = await RegistryClient.open(registry.reference('acme/other'), { env: {} });
    const to = await RegistryClient.open(mixed, { env: {} });
    const manifest = await from.getManifest('1.0.0');
    const [metadata, bundle] = (
      JSON.parse(manifest.bytes.toString()) as { layers: Array<{ digest: string; size: number }> }
    ).layers;
    await to.pushBlob(await from.readBlob(metadata?.digest as string, metadata?.size as number));
    await to.pushBlob(other);
    expect(bundle?.size).toBe((await readFile(other)).length);
    await to.putManifest('1.0.0', manifest.bytes, manifest.mediaType);

    const usb = join(dir, 'usb-other-product');
    const pulled = await run([
      'pull', '--repo', mixed, '--version', '1.0.0', '--out', join(usb, 'new'), '--json',
    ]); // prettier-ignore
    expect(pulled.code, pulled.stdout).toBe(2);
    expect(errorOf(pulled)).toMatchObject({ code: 'E_REPO_PRODUCT', reference: '1.0.0' });
    expect(errorOf(pulled).message).toContain(`${mixed}: version 1.0.0`);
    expect(errorOf(pulled).message).toContain('other-appliance');
    await expect(readdir(usb)).rejects.toThrow();
  }, 120_000);
});
