import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bundleManifest,
  documentBlob,
  EMPTY_BLOB,
  RegistryClient,
  type BuiltManifest,
} from '../../../repository/oci/index.js';
import { tempDir } from '../../helpers.js';
import { randomFile, registryMissing, SKOPEO, startRegistry, type Registry } from './registry.js';

const run = promisify(execFile);
const skopeoMissing =
  registryMissing ?? (SKOPEO ? undefined : 'skopeo is not installed: run scripts/setup-system.sh');

/** skopeo with no Docker config or signature policy of the machine's in the way. */
async function skopeo(dir: string, args: string[]): Promise<Buffer> {
  const { stdout } = await run(SKOPEO as string, ['--insecure-policy', ...args], {
    encoding: 'buffer',
    env: { PATH: process.env.PATH, HOME: dir, REGISTRY_AUTH_FILE: join(dir, 'auth.json') },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

const sha256 = (bytes: Buffer): string =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe.skipIf(skopeoMissing)('an independent client (skopeo) reads what Ferry publishes', () => {
  let registry: Registry;
  let dir: string;
  let client: RegistryClient;
  let built: BuiltManifest;
  let bundleDigest: string;
  const BUNDLE_SIZE = 1024 * 1024 + 3;

  beforeAll(async () => {
    registry = await startRegistry();
    dir = await tempDir('ferry-oci-skopeo-');
    await writeFile(join(dir, 'auth.json'), '{}');
    client = await RegistryClient.open(registry.reference('acme/appliance'), { env: {} });
    const bundle = join(dir, 'acme-appliance-1.2.0.tar');
    bundleDigest = await randomFile(bundle, BUNDLE_SIZE);
    const metadata = documentBlob({ product: 'acme-appliance', release: '1.2.0' });
    await client.pushBlob(EMPTY_BLOB);
    await client.pushBlob(metadata.bytes);
    await client.pushBlob(bundle, { digest: bundleDigest });
    built = bundleManifest({
      version: '1.2.0',
      created: '2026-11-01T10:00:00Z',
      metadata,
      bundle: {
        digest: bundleDigest,
        size: BUNDLE_SIZE,
        fileName: 'acme-appliance-1.2.0.tar',
        format: 'tar',
      },
    });
    await client.putManifest('1.2.0', built.bytes, built.mediaType);
  });
  afterAll(() => registry?.stop());

  it('skopeo inspect --raw returns bytes whose sha256 is the digest Ferry reports', async () => {
    const raw = await skopeo(dir, [
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${registry.host}/acme/appliance:1.2.0`,
    ]);
    expect(sha256(raw)).toBe(built.digest);
    expect((await client.getManifest('1.2.0')).digest).toBe(built.digest);
  });

  it('skopeo copy --preserve-digests to an OCI layout and back keeps every digest', async () => {
    const layout = join(dir, 'layout');
    await skopeo(dir, [
      'copy',
      '--preserve-digests',
      '--src-tls-verify=false',
      `docker://${registry.host}/acme/appliance:1.2.0`,
      `oci:${layout}:1.2.0`,
    ]);
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string }>;
    };
    expect(index.manifests.map((m) => m.digest)).toEqual([built.digest]);
    // Every blob in the layout is named by its own sha256.
    const blobs = join(layout, 'blobs', 'sha256');
    const names = await readdir(blobs);
    expect(names.sort()).toEqual(
      [
        built.digest,
        bundleDigest,
        ...built.manifest.layers.map((l) => l.digest),
        built.manifest.config.digest,
      ]
        .map((d) => d.slice('sha256:'.length))
        .filter((d, i, all) => all.indexOf(d) === i)
        .sort(),
    );
    for (const name of names)
      expect(sha256(await readFile(join(blobs, name)))).toBe(`sha256:${name}`);

    await skopeo(dir, [
      'copy',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${layout}:1.2.0`,
      `docker://${registry.host}/acme/copy:1.2.0`,
    ]);
    const copy = await RegistryClient.open(registry.reference('acme/copy'), { env: {} });
    const back = await copy.getManifest('1.2.0');
    expect(back.digest).toBe(built.digest);
    expect(back.bytes.equals(built.bytes)).toBe(true);
    await copy.pullBlob(bundleDigest, BUNDLE_SIZE, join(dir, 'copied.tar'));
  });

  it('skopeo refuses a blob Ferry published once its bytes at rest are damaged', async () => {
    const stored = await readFile(registry.blobPath(bundleDigest));
    stored[10] = (stored[10] as number) ^ 0x01;
    await writeFile(registry.blobPath(bundleDigest), stored);
    const refused = await skopeo(dir, [
      'copy',
      '--src-tls-verify=false',
      `docker://${registry.host}/acme/appliance:1.2.0`,
      `oci:${join(dir, 'damaged')}:1.2.0`,
    ]).catch((error: { stderr: Buffer }) => error.stderr.toString());
    expect(refused).toMatch(/digest/i);
  });
});
