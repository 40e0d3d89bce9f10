import { spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import {
  cp,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  canonicalJson,
  decodeEnvelope,
  PARTS_ENVELOPE,
  PARTS_INDEX,
  PARTS_PAYLOAD_TYPE,
  parsePrivateKey,
  signEnvelope,
  verifiedKeys,
} from '../../manifest-schema/index.js';
import { EPOCH, ferry, json, opensslSign, signerScript } from '../helpers.js';
import { install, sha256, snapshot, status } from '../e2e/appliance.js';
import { Terminal } from '../e2e/terminal.js';
import {
  makeMedia,
  mediaFixture,
  nextReleaseMedia,
  readIndex,
  runMedia,
  type MediaFixture,
} from './helpers.js';

let dir: string;
let base: MediaFixture;
let media: string;
let empty: string;
const terminal = new Terminal();

beforeAll(async () => {
  base = await mediaFixture();
  ({ dir, media, empty } = base);
});

let counter = 0;
async function copy(from: string): Promise<string> {
  const to = join(dir, `copy-${counter++}`);
  await cp(from, to, { recursive: true });
  return to;
}

describe('ferry media', () => {
  it('cuts the bundle into one part per volume, part 1 starting with bundle.json', async () => {
    const bundle = await readFile(base.bundle);
    const index = await readIndex(join(media, 'vol1'));
    expect(index.volumes).toBe(3);
    expect(index.bundle).toMatchObject({ id: 'acme-appliance@1.0.0', format: 'tar' });
    expect(index.bundle.size).toBe(bundle.length);
    const joined: Buffer[] = [];
    for (const part of index.parts) {
      const bytes = await readFile(join(media, `vol${part.volume}`, part.name));
      expect(bytes.length).toBe(part.size);
      expect(bytes.length).toBeLessThanOrEqual(1100 * 1024);
      expect(sha256(bytes)).toBe(part.sha256);
      expect(sha256(bundle.subarray(part.offset, part.offset + part.size))).toBe(part.sha256);
      joined.push(bytes);
      // Every volume carries the same signed index.
      expect(await readIndex(join(media, `vol${part.volume}`))).toEqual(index);
    }
    expect(sha256(Buffer.concat(joined))).toBe(sha256(bundle));
    // A tar header naming bundle.json opens part 1.
    expect(joined[0]?.toString('latin1', 0, 11)).toBe('bundle.json');
  });

  it('shows what it wrote: one line redrawn on a terminal, plain lines elsewhere', async () => {
    const out = join(dir, 'progress');
    const args = ['media', base.bundle, '--out', out, '--key', base.ws.key];
    const plain = await ferry([...args, '--volume-size', '1100K', '--no-installer']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toMatch(/^media: wrote 3\.\d MiB of 3\.\d MiB \(100%\)$/m);
    expect(plain.stderr).not.toContain('\r');
    terminal.ferry('media', [
      ...args.slice(0, 3),
      `${out}-tty`,
      ...args.slice(4),
      '--no-installer',
    ]);
    const screen = await terminal.waitFor('media', /exit=\d/);
    expect(screen).toContain('exit=0');
    expect(screen.match(/media: wrote .* \(100%\)/g)).toHaveLength(1);
  });

  it('signs the parts index with the bundle key, as a DSSE envelope of canonical JSON', async () => {
    const bytes = await readFile(join(media, 'vol2', PARTS_INDEX));
    const { envelope, payload } = decodeEnvelope(bytes, 'PARTS.JSON', PARTS_ENVELOPE);
    const pub = createPublicKey(await readFile(base.ws.pub, 'utf8'));
    const keyid = envelope.signatures[0]?.keyid as string;
    expect(verifiedKeys(envelope, payload, new Map([[keyid, pub]])).keyids.has(keyid)).toBe(true);
    expect(payload.toString('utf8')).toBe(canonicalJson(JSON.parse(payload.toString('utf8'))));
  });

  it('writes checksums that coreutils sha256sum -c accepts, and a README per volume', async () => {
    for (const volume of [1, 2, 3]) {
      const folder = join(media, `vol${volume}`);
      const check = spawnSync('sha256sum', ['-c', 'FERRY/SHA256SUM.TXT'], { cwd: folder });
      expect(check.status, check.stderr.toString()).toBe(0);
      expect(check.stdout.toString()).toContain(`FERRY/BUNDLE.00${volume}: OK`);
      const readme = await readFile(join(folder, 'README.TXT'), 'utf8');
      expect(readme).toContain(`volume ${volume} of 3 (ACME_APPLIANCE_1_0_0_${volume})`);
      expect(readme).toContain('sha256sum -c FERRY/SHA256SUM.TXT');
    }
  });

  it('puts the installer on volume 1 with its checksum, or says there is none', async () => {
    const installer = join(dir, 'fake-installer');
    await writeFile(installer, '#!/bin/sh\necho ferry-installer\n');
    const out = join(dir, 'with-installer');
    const result = await runMedia(base, out, [
      '--volume-size',
      '1100K',
      '--installer',
      installer,
      '--label',
      'acme_q4',
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('ACME_Q4');
    const copied = join(out, 'vol1', 'ferry-installer');
    expect(await readFile(copied, 'utf8')).toBe(await readFile(installer, 'utf8'));
    expect((await stat(copied)).mode & 0o111).not.toBe(0);
    const check = spawnSync('sha256sum', ['-c', 'FERRY/SHA256SUM.TXT'], { cwd: join(out, 'vol1') });
    expect(check.stdout.toString()).toContain('ferry-installer: OK');
    await expect(stat(join(out, 'vol2', 'ferry-installer'))).rejects.toThrow();
    expect((await readIndex(join(out, 'vol2'))).label).toBe('ACME_Q4');

    const none = await runMedia(base, join(dir, 'no-installer'), [
      '--installer',
      join(dir, 'absent'),
    ]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('E_NOT_FOUND');
  });

  it('refuses --installer with --no-installer, naming both, before it writes anything', async () => {
    const installer = join(dir, 'both-installer');
    await writeFile(installer, '#!/bin/sh\necho ferry-installer\n');
    const out = join(dir, 'both');
    const refused = await ferry([
      'media', base.bundle, '--out', out, '--key', base.ws.key,
      '--installer', installer, '--no-installer', '--json',
    ]); // prettier-ignore
    expect(refused.code, refused.stderr).toBe(2);
    const { error } = json<{ error: { code: string; message: string; hint?: string } }>(refused);
    expect(error.code).toBe('E_USAGE');
    expect(error.message).toContain(`--installer ${installer}`);
    expect(error.message).toContain('--no-installer');
    expect(error.hint).toBeTruthy();
    await expect(stat(out)).rejects.toThrow();
  });

  it('refuses a key that did not sign the bundle, a zip, a volume too small, existing volumes', async () => {
    const other = await ferry(['keygen', '--out', join(dir, 'other-keys'), '--name', 'other']);
    expect(other.code).toBe(0);
    const run = (...args: string[]) =>
      ferry(['media', base.bundle, '--out', join(dir, 'refused'), ...args]);
    const wrongKey = await run('--key', join(dir, 'other-keys', 'other.key'));
    expect(wrongKey.code).toBe(2);
    expect(wrongKey.stderr).toContain('did not sign');
    const tooSmall = await run('--key', base.ws.key, '--volume-size', '10K');
    expect(tooSmall.code).toBe(2);
    expect(tooSmall.stderr).toContain('E_USAGE');
    const existing = await ferry(['media', base.bundle, '--out', media, '--key', base.ws.key]);
    expect(existing.code).toBe(2);
    expect(existing.stderr).toContain('E_EXISTS');
    const product = join(dir, 'zip-product');
    await cp(base.ws.product, product, { recursive: true, verbatimSymlinks: true });
    const zip = await ferry([
      'build',
      join(product, 'release-1.0.0.yaml'),
      '--first-release',
      '--out',
      join(dir, 'zip'),
      '--key',
      base.ws.key,
      '--format',
      'zip',
      '--json',
    ]);
    expect(zip.code, zip.stderr).toBe(0);
    const refusedZip = await ferry([
      'media',
      json<{ bundle: string }>(zip).bundle,
      '--out',
      join(dir, 'zip-media'),
      '--key',
      base.ws.key,
    ]);
    expect(refusedZip.code).toBe(2);
    expect(refusedZip.stderr).toContain('E_BUNDLE_FORMAT');
    // Volume 1 alone could not plan: a zip's directory is at its end.
    expect(refusedZip.stderr).toMatch(/is a zip bundle.*\n.*directory at its end.*--format tar/);
    await expect(stat(join(dir, 'zip-media'))).rejects.toThrow();
  });

  it('a signer that fails after the parts are cut leaves no volume behind, so a second run works', async () => {
    const denied = await signerScript(dir, 'kms-denied', 'cat >/dev/null; exit 7');
    const junk = await signerScript(dir, 'kms-junk', 'cat >/dev/null; echo junk');
    const fresh = join(dir, 'signer-fails', 'media');
    const existing = join(dir, 'signer-fails-existing');
    await mkdir(existing);
    for (const [signer, out] of [
      [denied, fresh],
      [junk, existing],
    ] as const) {
      const result = await ferry(['media', base.bundle, '--out', out, '--signer', signer,
        '--signer-key', base.ws.pub, '--volume-size', '1100K', '--no-installer', '--json']); // prettier-ignore
      expect(result.code).toBe(2);
      expect(json<{ error: { code: string } }>(result).error.code).toBe('E_SIGNER');
    }
    await expect(stat(join(dir, 'signer-fails'))).rejects.toThrow();
    expect(await readdir(existing)).toEqual([]);
    await makeMedia(base, existing);
  });
});

describe('reading volumes', () => {
  it('plans from volume 1 alone, and will not install without the others', async () => {
    const alone = join(dir, 'alone');
    await mkdir(alone);
    await cp(join(media, 'vol1'), join(alone, 'vol1'), { recursive: true });
    const plan = await ferry(['plan', join(alone, 'vol1'), '--root', empty, '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(json<{ verdict: string; to: string }>(plan)).toMatchObject({
      verdict: 'ok',
      to: '1.0.0',
    });
    const inspect = await ferry(['inspect', join(alone, 'vol1'), '--json']);
    expect(inspect.code, inspect.stderr).toBe(0);
    const root = await copy(empty);
    const before = await snapshot(root);
    const result = await install(join(alone, 'vol1'), root);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('E_PART_MISSING');
    expect(result.stderr).toMatch(/part 2 of 3 .*volume 2 \(ACME_APPLIANCE_1_0_0_2\)/);
    expect(await snapshot(root)).toEqual(before);
  });

  it('installs across three volumes, from the folder holding them or from any one of them, writing nothing to them', async () => {
    const volumes = await copy(media);
    const before = await snapshot(volumes, []);
    const root = await copy(empty);
    const result = await install(volumes, root);
    expect(result.code, result.stderr).toBe(0);
    expect(await status(root)).toMatchObject({ release: '1.0.0', verified: true });
    const second = await copy(empty);
    const fromVolume2 = await install(join(volumes, 'vol2'), second);
    expect(fromVolume2.code, fromVolume2.stderr).toBe(0);
    expect(await snapshot(volumes, [])).toEqual(before);
  });

  it('verify checks every part, then every entry', async () => {
    const result = await ferry(['verify', join(media, 'vol3'), '--trust', base.ws.trust]);
    expect(result.code, result.stderr).toBe(0);
    const check = await ferry(['media', 'verify', media, '--trust', base.ws.trust, '--json']);
    expect(check.code, check.stderr).toBe(0);
    expect(json<{ checked: unknown[]; missing: number[] }>(check)).toMatchObject({
      missing: [],
      metadata: true,
    });
    expect(json<{ checked: unknown[] }>(check).checked).toHaveLength(3);
  });

  it('signs the parts index through a --signer when the bundle key is in a KMS', async () => {
    const kms = await signerScript(dir, 'kms', opensslSign(base.ws.key));
    const out = join(dir, 'by-signer');
    const result = await ferry([
      'media',
      base.bundle,
      '--out',
      out,
      '--signer',
      kms,
      '--signer-key',
      base.ws.pub,
      '--volume-size',
      '1100K',
      '--no-installer',
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(out, 'vol1', PARTS_INDEX))).toEqual(
      await readFile(join(media, 'vol1', PARTS_INDEX)),
    );
    const check = await ferry(['media', 'verify', out, '--trust', base.ws.trust]);
    expect(check.code, check.stderr).toBe(0);
  });

  it('media verify checks the volumes it can see and names those it cannot', async () => {
    const two = join(dir, 'just-two');
    await mkdir(two);
    await cp(join(media, 'vol2'), join(two, 'vol2'), { recursive: true });
    const check = await ferry(['media', 'verify', two, '--trust', base.ws.trust, '--json']);
    expect(check.code, check.stderr).toBe(0);
    expect(json(check)).toMatchObject({ missing: [1, 3], metadata: false });
  });
});

describe('damaged, missing and foreign volumes leave the appliance as it was', () => {
  async function refused(
    volumes: string,
    code: string,
    exit: number,
    ...mentions: Array<string | RegExp>
  ): Promise<void> {
    const root = await copy(empty);
    const before = await snapshot(root);
    const result = await install(volumes, root, '--json');
    expect(result.code, result.stderr).toBe(exit);
    expect(result.stderr).toContain(code);
    for (const mention of mentions) expect(result.stderr).toMatch(mention);
    expect(await snapshot(root)).toEqual(before);
  }

  it('a missing volume: exit 1, naming the part and the volume', async () => {
    const volumes = await copy(media);
    await rm(join(volumes, 'vol3'), { recursive: true });
    await refused(volumes, 'E_PART_MISSING', 1, 'FERRY/BUNDLE.003', /volume 3/);
  });

  it('a part of the wrong size: exit 3, naming the part and the volume', async () => {
    const volumes = await copy(media);
    await truncate(join(volumes, 'vol2', 'FERRY/BUNDLE.002'), 1000);
    await refused(volumes, 'E_PART_MISMATCH', 3, 'BUNDLE.002', /part 2 on volume 2/);
  });

  it('a part with one byte changed: exit 3 naming the part, from install, verify and media verify', async () => {
    const volumes = await copy(media);
    const part = join(volumes, 'vol2', 'FERRY/BUNDLE.002');
    const bytes = await readFile(part);
    bytes[5000] = (bytes[5000] as number) ^ 0xff;
    await writeFile(part, bytes);
    await refused(volumes, 'E_PART_MISMATCH', 3, /part 2 on volume 2 .* has sha256/);
    const verify = await ferry(['verify', volumes, '--trust', base.ws.trust]);
    expect(verify.code).toBe(3);
    expect(verify.stderr).toContain('E_PART_MISMATCH');
    const check = await ferry(['media', 'verify', volumes, '--trust', base.ws.trust]);
    expect(check.code).toBe(3);
    expect(check.stderr).toMatch(/E_PART_MISMATCH: .*BUNDLE\.002: part 2 on volume 2/);
  });

  it('a byte changed where install stages nothing (a skipped component): the part hash alone stops it, exit 3', async () => {
    // Tar headers and padding are checked as they are read, and every staged
    // file against its signed hash; the payload of a component the install
    // leaves out is checked by nothing but its part's sha256.
    const volumes = await copy(media);
    const tiles = await readFile(join(base.ws.product, 'components/maps/5.0.0/data/tiles.bin'));
    const part = join(volumes, 'vol2', 'FERRY/BUNDLE.002');
    const bytes = await readFile(part);
    const at = bytes.indexOf(tiles.subarray(1_500_000, 1_500_064));
    expect(at).toBeGreaterThan(0);
    bytes[at] = (bytes[at] as number) ^ 0xff;
    await writeFile(part, bytes);
    const root = await copy(empty);
    const before = await snapshot(root);
    const skip = ['--skip', 'maps', '--reason', 'maps later'];
    const result = await install(volumes, root, ...skip);
    expect(result.code, result.stderr).toBe(3);
    expect(result.stderr).toMatch(
      /E_PART_MISMATCH: .*vol2\/FERRY\/BUNDLE\.002: part 2 on volume 2 \(ACME_APPLIANCE_1_0_0_2\) has sha256/,
    );
    expect(await snapshot(root)).toEqual(before);
    // The same install from the intact volumes goes through: only the changed byte stopped it.
    const intact = await install(media, root, ...skip);
    expect(intact.code, intact.stderr).toBe(0);
  });

  it('bundle.json changed in part 1: plan and install exit 3, naming part 1', async () => {
    const volumes = await copy(media);
    const part = join(volumes, 'vol1', 'FERRY/BUNDLE.001');
    const bytes = await readFile(part);
    // Inside bundle.json's envelope (after its 512-byte tar header): the signature no longer matters, the index does.
    bytes[600] = (bytes[600] as number) ^ 1;
    await writeFile(part, bytes);
    const plan = await ferry(['plan', volumes, '--root', empty]);
    expect(plan.code).toBe(3);
    expect(plan.stderr).toMatch(/E_PART_MISMATCH: .*part 1 on volume 1/);
    await refused(volumes, 'E_PART_MISMATCH', 3, /part 1 on volume 1/);
  });

  it('volume 2 of another build of the same release: exit 1, naming the volume', async () => {
    // Another build of 1.0.0: same spec, another creation time, so another bundle.json.
    const other = join(dir, 'other-build');
    const built = await ferry(
      [
        'build',
        join(base.ws.product, 'release-1.0.0.yaml'),
        '--first-release',
        '--out',
        join(other, 'bundle'),
        '--key',
        base.ws.key,
        '--json',
      ],
      { env: { SOURCE_DATE_EPOCH: String(Number(EPOCH) + 60) } },
    );
    expect(built.code, built.stderr).toBe(0);
    const otherBundle = json<{ bundle: string }>(built).bundle;
    await makeMedia({ ...base, bundle: otherBundle }, join(other, 'media'));
    const volumes = await copy(media);
    await rm(join(volumes, 'vol2'), { recursive: true });
    await rename(join(other, 'media', 'vol2'), join(volumes, 'vol2'));
    await refused(
      volumes,
      'E_WRONG_VOLUME',
      1,
      /vol2: this volume belongs to acme-appliance@1\.0\.0 \(build/,
    );
    // The check before the window refuses it too: it is attached, not missing.
    const check = await ferry(['media', 'verify', volumes, '--trust', base.ws.trust]);
    expect(check.code, check.stdout).toBe(1);
    expect(check.stderr).toMatch(/E_WRONG_VOLUME: .*vol2: this volume belongs to/);
  });

  it('volume 2 of another bundle: exit 1, naming the bundle it belongs to', async () => {
    const product = join(dir, 'other-product');
    await cp(base.ws.product, product, { recursive: true, verbatimSymlinks: true });
    const spec = join(product, 'release-1.0.0.yaml');
    await writeFile(
      spec,
      (await readFile(spec, 'utf8')).replace(/^product: .*$/m, 'product: beta-box'),
    );
    // Its own first release: none of acme's records.
    await rm(join(product, 'history'), { recursive: true, force: true });
    await mkdir(join(product, 'history'));
    const built = await ferry(
      [
        'build',
        spec,
        '--first-release',
        '--out',
        join(dir, 'beta'),
        '--key',
        base.ws.key,
        '--json',
      ],
      { env: { SOURCE_DATE_EPOCH: EPOCH } },
    );
    expect(built.code, built.stderr).toBe(0);
    const beta = join(dir, 'beta-media');
    await makeMedia({ ...base, bundle: json<{ bundle: string }>(built).bundle }, beta);
    const volumes = await copy(media);
    await rm(join(volumes, 'vol2'), { recursive: true });
    await rename(join(beta, 'vol2'), join(volumes, 'vol2'));
    await refused(
      volumes,
      'E_WRONG_VOLUME',
      1,
      /vol2: this volume belongs to beta-box@1\.0\.0 .*not to acme-appliance@1\.0\.0/,
    );
  });

  it('volume 1 of another cut where volume 2 belongs: the wrong volume, not one not attached', async () => {
    // Another `ferry media` run of the same bundle, in one volume: its only volume holds FERRY/BUNDLE.001.
    const other = join(dir, 'one-volume-cut');
    const cut = await runMedia(base, other, ['--volume-size', '8M', '--no-installer']);
    expect(cut.code, cut.stderr).toBe(0);
    const volumes = await copy(media);
    await rm(join(volumes, 'vol2'), { recursive: true });
    await cp(join(other, 'vol1'), join(volumes, 'vol2'), { recursive: true });
    const found =
      /vol2: this is volume 1 of 1 of another cut .*of acme-appliance@1\.0\.0 .*not volume 2 \(ACME_APPLIANCE_1_0_0_2\)/;
    // vol1 named: the folders beside it are looked at, and the one where volume 2 belongs is not it.
    const check = await ferry(['media', 'verify', join(volumes, 'vol1'), '--trust', base.ws.trust]);
    expect(check.code, check.stdout).toBe(1);
    expect(check.stderr).toContain('E_WRONG_VOLUME');
    expect(check.stderr).toMatch(found);
    expect(check.stdout).not.toContain('not attached');
    await refused(join(volumes, 'vol1'), 'E_WRONG_VOLUME', 1, found);
  });

  it('a folder beside with an index that is no parts index is no wrong volume: the missing one is still missing', async () => {
    const volumes = await copy(media);
    await rm(join(volumes, 'vol2'), { recursive: true });
    await mkdir(join(volumes, 'junk', 'FERRY'), { recursive: true });
    await writeFile(join(volumes, 'junk', PARTS_INDEX), 'not an index');
    await refused(
      join(volumes, 'vol1'),
      'E_PART_MISSING',
      1,
      /volume 2 \(ACME_APPLIANCE_1_0_0_2\)/,
    );
  });

  it('volume 1 of two releases in one folder: the wrong volume, naming both and where each is', async () => {
    const next = await nextReleaseMedia(base, dir);
    const volumes = await copy(media);
    await cp(join(next, 'vol1'), join(volumes, 'next1'), { recursive: true });
    const both = [
      /acme-appliance@1\.0\.0 \(build [0-9a-f]+, 3 volumes [^)]*\) in \S*\/vol1, \S*\/vol2, \S*\/vol3/,
      /acme-appliance@1\.1\.0 \(build [0-9a-f]+, \d volumes? [^)]*\) in \S*\/next1/,
      /hint: remove the volumes of the ones not to use, or name the volume 1 folder/,
    ];
    await refused(volumes, 'E_WRONG_VOLUME', 1, ...both);
    const check = await ferry(['media', 'verify', volumes, '--trust', base.ws.trust]);
    expect(check.code, check.stdout).toBe(1);
    for (const mention of both) expect(check.stderr).toMatch(mention);
  });

  it('an unsigned, altered or untrusted parts index: exit 3 before any part is read', async () => {
    const rewrite = async (
      change: (envelope: Record<string, unknown>) => void,
    ): Promise<string> => {
      const volumes = await copy(media);
      for (const volume of ['vol1', 'vol2', 'vol3']) {
        const file = join(volumes, volume, PARTS_INDEX);
        const envelope = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
        change(envelope);
        await writeFile(file, JSON.stringify(envelope));
      }
      return volumes;
    };
    const unsigned = await rewrite((envelope) => (envelope.signatures = []));
    await refused(unsigned, 'E_SIGNATURE', 3, 'PARTS.JSON');
    const altered = await rewrite((envelope) => {
      const index = JSON.parse(Buffer.from(envelope.payload as string, 'base64').toString()) as {
        parts: Array<{ sha256: string }>;
      };
      (index.parts[1] as { sha256: string }).sha256 = '0'.repeat(64);
      envelope.payload = Buffer.from(canonicalJson(index)).toString('base64');
    });
    await refused(altered, 'E_SIGNATURE', 3, 'PARTS.JSON');
    const plan = await ferry(['plan', join(altered, 'vol1'), '--root', empty]);
    expect(plan.code).toBe(3);
    const stranger = await ferry(['keygen', '--out', join(dir, 'stranger'), '--name', 'stranger']);
    expect(stranger.code).toBe(0);
    const key = parsePrivateKey(await readFile(join(dir, 'stranger', 'stranger.key'), 'utf8'), 'k');
    const untrusted = await rewrite((envelope) => {
      const payload = Buffer.from(envelope.payload as string, 'base64');
      envelope.signatures = signEnvelope(payload, [key], PARTS_PAYLOAD_TYPE).signatures;
    });
    await refused(untrusted, 'E_SIGNATURE', 3, 'not from a trusted key');
  });

  it('an altered parts index on volume 2 alone: exit 3 naming it, not taken for a wrong volume', async () => {
    const volumes = await copy(media);
    const file = join(volumes, 'vol2', PARTS_INDEX);
    const envelope = JSON.parse(await readFile(file, 'utf8')) as { payload: string };
    const index = JSON.parse(Buffer.from(envelope.payload, 'base64').toString()) as {
      parts: Array<{ sha256: string }>;
    };
    (index.parts[2] as { sha256: string }).sha256 = '0'.repeat(64);
    envelope.payload = Buffer.from(canonicalJson(index)).toString('base64');
    await writeFile(file, JSON.stringify(envelope));
    await refused(volumes, 'E_SIGNATURE', 3, /vol2\/FERRY\/PARTS\.JSON/);
    for (const args of [
      ['verify', volumes, '--trust', base.ws.trust],
      ['media', 'verify', volumes, '--trust', base.ws.trust],
    ]) {
      const result = await ferry(args);
      expect(result.code, result.stderr).toBe(3);
      expect(result.stderr).toMatch(/E_SIGNATURE: .*vol2\/FERRY\/PARTS\.JSON/);
    }
    // A validly signed index of another cut of the same build is a wrong volume, and says so.
    const other = join(dir, 'other-cut');
    await runMedia(base, other, ['--volume-size', '1000K', '--no-installer']);
    const swapped = await copy(media);
    await rm(join(swapped, 'vol2'), { recursive: true });
    await cp(join(other, 'vol2'), join(swapped, 'vol2'), { recursive: true });
    await refused(
      swapped,
      'E_WRONG_VOLUME',
      1,
      /vol2: this volume holds another cut of acme-appliance@1\.0\.0/,
      /hint: attach volume 2 .*; volumes of different `ferry media` runs never mix, even of one build/,
    );
  });
});
