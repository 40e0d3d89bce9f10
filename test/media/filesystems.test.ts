import { execFileSync, spawnSync } from 'node:child_process';
import { cp, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ferry, tempDir } from '../helpers.js';
import { cloneAppliance, initAppliance, install, sha256, status } from '../e2e/appliance.js';
import { makeMedia, mediaBase, readIndex, runMedia, type MediaBase } from './helpers.js';

// The volumes on real filesystems: FAT32 images made and filled with
// Debian's dosfstools and mtools, ISO 9660 images made by `ferry media --iso`
// (xorriso). Each is read back by an independent tool; where FUSE is there
// (fusefat, fuseiso: this kernel has no vfat or iso9660 module), the images
// are also mounted read-only and installed from in place.

let dir: string;
let base: MediaBase;
let volumes: Array<{ folder: string; part: string; sha256: string; iso?: string }>;
let empty: string;
const mounted: string[] = [];

function tool(command: string, args: readonly string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')}: exit ${result.status}\n${result.stderr}`);
  return result.stdout;
}

function fuseWorks(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command} && test -c /dev/fuse`]).status === 0;
}

async function mount(command: string, image: string, at: string): Promise<void> {
  await mkdir(at, { recursive: true });
  tool(command, command === 'fusefat' ? ['-o', 'ro', image, at] : [image, at]);
  mounted.push(at);
}

async function files(folder: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  for (const entry of await readdir(folder, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    found[relative(folder, path)] = sha256(await readFile(path));
  }
  return found;
}

beforeAll(async () => {
  dir = await tempDir();
  base = await mediaBase(dir);
  ({ volumes } = await makeMedia(base, join(dir, 'media'), '--iso'));
  empty = join(dir, 'empty');
  await initAppliance(base.ws, empty);
});

afterAll(() => {
  for (const at of mounted) spawnSync('fusermount', ['-u', at]);
});

async function appliance(name: string): Promise<string> {
  const root = join(dir, name);
  await cloneAppliance(empty, root);
  return root;
}

describe('FAT32', () => {
  const images: string[] = [];

  beforeAll(async () => {
    for (const [at, volume] of volumes.entries()) {
      const image = join(dir, `stick${at + 1}.img`);
      // 40 MiB at one sector per cluster: enough clusters for FAT32 proper.
      tool('mkfs.fat', ['-C', '-F', '32', '-s', '1', '-n', `ACME${at + 1}`, image, '40960']);
      const top = await readdir(volume.folder);
      tool('mcopy', ['-s', '-i', image, ...top.map((name) => join(volume.folder, name)), '::/']);
      images.push(image);
    }
  });

  it('holds every file of every volume, as mtools reads it back', async () => {
    // mcopy can exit 0 without having copied a file (too big for FAT32): only reading back proves it.
    for (const [at, image] of images.entries()) {
      const back = join(dir, `back${at + 1}`);
      await mkdir(back);
      tool('mcopy', ['-s', '-i', image, '::/*', back]);
      expect(await files(back)).toEqual(await files((volumes[at] as { folder: string }).folder));
    }
  });

  it('installs from the volumes read back off the sticks', async () => {
    const sticks = join(dir, 'read-back');
    await mkdir(sticks);
    for (const at of [1, 2, 3])
      await cp(join(dir, `back${at}`), join(sticks, `usb${at}`), { recursive: true });
    const root = await appliance('from-fat-copy');
    const result = await install(join(sticks, 'usb2'), root);
    expect(result.code, result.stderr).toBe(0);
    expect(await status(root)).toMatchObject({ release: '1.0.0', verified: true });
  });

  it.skipIf(!fuseWorks('fusefat'))(
    'installs from the sticks mounted read-only, in place',
    async () => {
      const media = join(dir, 'fat-mounts');
      for (const [at, image] of images.entries())
        await mount('fusefat', image, join(media, `usb${at + 1}`));
      const root = await appliance('from-fat');
      const result = await install(media, root);
      expect(result.code, result.stderr).toBe(0);
      expect(await status(root)).toMatchObject({ release: '1.0.0', verified: true });
      const check = await ferry(['media', 'verify', media, '--trust', base.ws.trust]);
      expect(check.code, check.stderr).toBe(0);
    },
  );
});

describe('ISO 9660', () => {
  it('writes one image per volume, labelled, whose parts xorriso reads back as the index says', async () => {
    const index = await readIndex((volumes[0] as { folder: string }).folder);
    for (const [at, volume] of volumes.entries()) {
      expect(volume.iso).toBe(`${volume.folder}.iso`);
      const iso = volume.iso as string;
      const info = tool('xorriso', ['-indev', iso, '-pvd_info']);
      expect(info).toMatch(new RegExp(`Volume Id\\s*: ACME_APPLIANCE_1_0_0_${at + 1}`));
      const out = join(dir, `extracted${at + 1}`);
      const part = index.parts[at] as { name: string; sha256: string };
      execFileSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', `/${part.name}`, out], {
        stdio: 'ignore',
      });
      expect(sha256(await readFile(out))).toBe(part.sha256);
      // Rock Ridge and Joliet keep the names as written.
      const names = tool('xorriso', ['-indev', iso, '-find', '/', '-exec', 'lsdl']);
      expect(names).toContain("'/FERRY/SHA256SUM.TXT'");
    }
  });

  it.skipIf(!fuseWorks('fuseiso'))('installs from the discs mounted, in place', async () => {
    const media = join(dir, 'iso-mounts');
    for (const [at, volume] of volumes.entries())
      await mount('fuseiso', volume.iso as string, join(media, `cdrom${at + 1}`));
    const root = await appliance('from-iso');
    const result = await install(join(media, 'cdrom1'), root);
    expect(result.code, result.stderr).toBe(0);
    expect(await status(root)).toMatchObject({ release: '1.0.0', verified: true });
  });

  it('never overwrites an image: an existing volN.iso is refused before anything is written', async () => {
    const out = join(dir, 'iso-exists');
    await mkdir(out);
    // An image left from an earlier run (another release's disc, say), named as volume 2's would be.
    await writeFile(join(out, 'vol2.iso'), 'an earlier image');
    const result = await runMedia(base, out, ['--volume-size', '1100K', '--iso', '--no-installer']);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(/E_EXISTS: .*vol2\.iso already exists/);
    expect(await readFile(join(out, 'vol2.iso'), 'utf8')).toBe('an earlier image');
    expect(await readdir(out)).toEqual(['vol2.iso']);
  });

  it('says clearly when xorriso is missing, before writing anything', async () => {
    const out = join(dir, 'no-xorriso');
    const result = await ferry(
      ['media', base.bundle, '--out', out, '--key', base.ws.key, '--iso', '--no-installer'],
      { env: { PATH: '/nonexistent' } },
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('E_TOOL_MISSING');
    expect(result.stderr).toContain('xorriso');
    await expect(stat(out)).rejects.toThrow();
  });
});
