import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ferry, json, tempDir } from '../helpers.js';
import { sha256, snapshot, status } from './appliance.js';

// The three payload references: a folder carried in the bundle, a folder kept
// at the appliance's default location, and one file fetched from a URL; and a
// component's own artifact timeout.

let dir: string;
let trust: string;
let key: string;
const firmware = Buffer.from('FIRMWARE-9.1.0'.repeat(1000));

async function spec(name: string, extra = ''): Promise<string> {
  const file = join(dir, 'product', `${name}.yaml`);
  await writeFile(
    file,
    [
      'product: refs',
      'release: "1.0.0"',
      'platform: { name: os, range: "*" }',
      'components:',
      '  local: { version: "1.0.0", payload: ./local }',
      '  maps: { version: "2.0.0", payload: { location: default, path: ./mirror/maps/2.0.0 } }',
      `  firmware: { version: "9.1.0", payload: { url: "file://${join(dir, 'downloads', 'fw-9.1.0.bin')}", sha256: "${sha256(firmware)}", size: ${firmware.length}, saveAs: fw.bin } }`,
      extra,
      '',
    ].join('\n'),
  );
  return file;
}

async function appliance(name: string): Promise<string> {
  const root = join(dir, name);
  const result = await ferry([
    'init',
    '--root',
    root,
    '--product',
    'refs',
    '--platform',
    'os@1.0.0',
    '--trust',
    trust,
    '--default-location',
    join(dir, name, 'srv'),
  ]);
  expect(result.code, result.stderr).toBe(0);
  await cp(join(dir, 'product', 'mirror'), join(root, 'srv'), { recursive: true });
  return root;
}

beforeAll(async () => {
  dir = await tempDir();
  await mkdir(join(dir, 'product', 'local'), { recursive: true });
  await writeFile(join(dir, 'product', 'local', 'README'), 'local payload\n');
  await mkdir(join(dir, 'product', 'mirror', 'maps', '2.0.0', 'tiles'), { recursive: true });
  await writeFile(
    join(dir, 'product', 'mirror', 'maps', '2.0.0', 'tiles', 'europe.bin'),
    Buffer.alloc(200_000, 3),
  );
  await mkdir(join(dir, 'downloads'), { recursive: true });
  await writeFile(join(dir, 'downloads', 'fw-9.1.0.bin'), firmware);
  await writeFile(join(dir, 'product', 'slow.sh'), '#!/bin/sh\nsleep 30\n', { mode: 0o755 });
  expect((await ferry(['keygen', '--out', join(dir, 'keys'), '--name', 'k'])).code).toBe(0);
  key = join(dir, 'keys', 'k.key');
  trust = join(dir, 'trust.json');
  expect(
    (await ferry(['trust', 'init', '--key', join(dir, 'keys', 'k.pub'), '--out', trust])).code,
  ).toBe(0);
});

async function build(file: string, out: string): Promise<string> {
  const result = await ferry([
    'build',
    file,
    '--out',
    join(dir, out),
    '--key',
    key,
    '--format',
    'zip',
    '--json',
  ]);
  expect(result.code, result.stderr).toBe(0);
  return json<{ bundle: string }>(result).bundle;
}

describe('payload references', () => {
  it('carries only the folder; the default-location folder and the URL file are fetched and checked at install', async () => {
    const bundle = await build(await spec('all'), 'out-all');
    const inspect = json<{
      components: Array<{ name: string; payload: string; payloadBytes: number }>;
    }>(await ferry(['inspect', bundle, '--json']));
    expect(Object.fromEntries(inspect.components.map((c) => [c.name, c.payload]))).toEqual({
      local: 'included',
      maps: 'default',
      firmware: 'url',
    });
    const root = await appliance('ok');
    const result = await ferry(['install', bundle, '--root', root, '--yes']);
    expect(result.code, result.stderr).toBe(0);
    expect(sha256(await readFile(join(root, 'opt/ferry/maps/current/tiles/europe.bin')))).toBe(
      sha256(Buffer.alloc(200_000, 3)),
    );
    expect(sha256(await readFile(join(root, 'opt/ferry/firmware/current/fw.bin')))).toBe(
      sha256(firmware),
    );
    expect((await ferry(['status', '--root', root, '--verify'])).code).toBe(0);
  });

  it('a file missing from the default location stops the install before anything changes', async () => {
    const bundle = await build(await spec('missing'), 'out-missing');
    const root = await appliance('missing');
    await rm(join(root, 'srv', 'maps', '2.0.0', 'tiles', 'europe.bin'));
    const before = await snapshot(root);
    const result = await ferry(['install', bundle, '--root', root, '--yes']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('E_NOT_FOUND');
    expect(result.stderr).toContain('europe.bin');
    expect(await snapshot(root)).toEqual(before);
  });

  it('a default-location file that differs from its signed hash is refused with exit 3', async () => {
    const bundle = await build(await spec('differs'), 'out-differs');
    const root = await appliance('differs');
    await writeFile(
      join(root, 'srv', 'maps', '2.0.0', 'tiles', 'europe.bin'),
      Buffer.alloc(200_000, 4),
    );
    const before = await snapshot(root);
    const result = await ferry(['install', bundle, '--root', root, '--yes']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('E_HASH_MISMATCH');
    expect(await snapshot(root)).toEqual(before);
    expect((await status(root)).release).toBeNull();
  });

  it("a component's own timeout overrides the appliance's", async () => {
    const bundle = await build(
      await spec(
        'slow',
        '  slow: { version: "1.0.0", timeoutSeconds: 1, payload: ./local, artifacts: { update: [./slow.sh] } }',
      ),
      'out-slow',
    );
    const root = await appliance('slow');
    const result = await ferry(['install', bundle, '--root', root, '--yes', '--json']);
    expect(result.code).toBe(1);
    const last = JSON.parse(result.stdout.trim().split('\n').at(-1) as string) as {
      outcome: string;
      failure: { component: string; status: string };
    };
    expect(last).toMatchObject({
      outcome: 'rolled-back',
      failure: { component: 'slow', status: 'timed out after 1 s (its process group was killed)' },
    });
  });
});
