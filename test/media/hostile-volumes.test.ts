import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  addSignature,
  canonicalJson,
  envelopeBytes,
  PARTS_INDEX,
  parsePrivateKey,
  type PartsIndex,
} from '../../manifest-schema/index.js';
import { FERRY, ferry } from '../helpers.js';
import { cloneAppliance, install, snapshot } from '../e2e/appliance.js';
import { mediaFixture, runMedia, VOLUME_SIZE, type MediaFixture } from './helpers.js';

// Volumes as an unlucky or hostile operator hands them over, driven through
// bin/ferry: `media verify` and `install` must agree, name the volume and the
// part, and leave the appliance as it was.

let base: MediaFixture;
let counter = 0;

beforeAll(async () => {
  base = await mediaFixture();
}, 120_000);

/** A fresh copy of the three volumes, changed by `change`, and a fresh empty appliance. */
async function setUp(
  change: (media: string) => Promise<void> | void,
): Promise<{ media: string; root: string }> {
  const at = counter++;
  const media = join(base.dir, `hostile-${at}`);
  await cp(base.media, media, { recursive: true });
  await change(media);
  const root = join(base.dir, `hostile-root-${at}`);
  await cloneAppliance(base.empty, root);
  return { media, root };
}

describe('something other than a file where a part belongs, on its own volume', () => {
  it.each([
    ['a FIFO', 'is a FIFO', (part: string) => execFileSync('mkfifo', [part])],
    ['a folder', 'is a folder', (part: string) => mkdir(part)],
  ])(
    '%s in place of part 2: verify and install both refuse it as E_PART_MISMATCH, not a volume "not attached"',
    async (_, says, make) => {
      const { media, root } = await setUp(async (dir) => {
        const part = join(dir, 'vol2/FERRY/BUNDLE.002');
        await rm(part);
        await make(part);
      });
      const verify = await ferry(['media', 'verify', media, '--trust', base.ws.trust]);
      expect(verify.code, verify.stderr).toBe(3);
      expect(verify.stderr).toContain('E_PART_MISMATCH');
      expect(verify.stderr).toContain(`vol2/FERRY/BUNDLE.002: part 2 on volume 2`);
      expect(verify.stderr).toContain(says);
      expect(verify.stderr).toContain('hint: volume 2 is damaged');
      const before = await snapshot(root);
      const result = await install(media, root);
      expect(result.code, result.stderr).toBe(3);
      expect(result.stderr).toContain('E_PART_MISMATCH');
      expect(result.stderr).toContain(says);
      expect(result.stderr).not.toContain('not attached');
      expect(await snapshot(root)).toEqual(before);
    },
    60_000,
  );
});

describe('a parts index altered on one volume', () => {
  it('a label changed on volume 2 without its signature: E_SIGNATURE on that index, not a volume of another build', async () => {
    const { media, root } = await setUp(async (dir) => {
      const file = join(dir, 'vol2', PARTS_INDEX);
      const envelope = JSON.parse(await readFile(file, 'utf8')) as { payload: string };
      const index = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as {
        label: string;
      };
      index.label = 'FORGED_';
      envelope.payload = Buffer.from(JSON.stringify(index)).toString('base64');
      await writeFile(file, JSON.stringify(envelope));
    });
    const before = await snapshot(root);
    for (const result of [
      await ferry(['media', 'verify', media, '--trust', base.ws.trust]),
      await install(media, root),
    ]) {
      expect(result.code, result.stderr).toBe(3);
      expect(result.stderr).toContain(`E_SIGNATURE: ${join(media, 'vol2', PARTS_INDEX)}`);
      expect(result.stderr).not.toContain('E_WRONG_VOLUME');
      expect(result.stderr).toContain('hint:');
    }
    expect(await snapshot(root)).toEqual(before);
  }, 60_000);
});

describe('a part reached through a symlink', () => {
  it('media verify follows it as install does: both accept the right bytes, both refuse the wrong ones', async () => {
    const good = await setUp(async (dir) => {
      const part = join(dir, 'vol2/FERRY/BUNDLE.002');
      await rename(part, join(dir, 'part2.bin'));
      await symlink(join(dir, 'part2.bin'), part);
    });
    const verify = await ferry(['media', 'verify', good.media, '--trust', base.ws.trust]);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toContain('3 of 3 volume(s) checked');
    const installed = await install(good.media, good.root);
    expect(installed.code, installed.stderr).toBe(0);

    // Part 1's bytes (the same size) behind part 2's name: a mismatch for both, not an I/O error.
    const bad = await setUp(async (dir) => {
      const part = join(dir, 'vol2/FERRY/BUNDLE.002');
      await rm(part);
      await symlink(join(dir, 'vol1/FERRY/BUNDLE.001'), part);
    });
    const before = await snapshot(bad.root);
    for (const result of [
      await ferry(['media', 'verify', bad.media, '--trust', base.ws.trust]),
      await install(bad.media, bad.root),
    ]) {
      expect(result.code, result.stderr).toBe(3);
      expect(result.stderr).toMatch(
        /E_PART_MISMATCH: .*vol2\/FERRY\/BUNDLE\.002: part 2 on volume 2/,
      );
    }
    expect(await snapshot(bad.root)).toEqual(before);
  }, 60_000);
});

describe('a folder of links to the volumes', () => {
  it('finds every volume through its link (ln -s /media/usb0 vol1), for verify and install', async () => {
    const links = join(base.dir, `links-${counter++}`);
    await mkdir(links);
    for (const volume of ['vol1', 'vol2', 'vol3'])
      await symlink(join(base.media, volume), join(links, volume));
    const root = join(base.dir, `links-root-${counter++}`);
    await cloneAppliance(base.empty, root);
    const verify = await ferry(['media', 'verify', links, '--trust', base.ws.trust]);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toContain('3 of 3 volume(s) checked');
    const installed = await install(join(links, 'vol1'), root);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toContain('COMMITTED');
  }, 60_000);
});

describe('a stale copy of a part on another volume', () => {
  it('a short BUNDLE.003 left on volume 2 does not hide the good one on volume 3', async () => {
    const { media, root } = await setUp(async (dir) => {
      // What a large stick holding parts side by side keeps from an earlier, interrupted copy.
      const stale = await readFile(join(dir, 'vol3/FERRY/BUNDLE.003'));
      await writeFile(join(dir, 'vol2/FERRY/BUNDLE.003'), stale.subarray(0, 1000));
    });
    const verify = await ferry(['media', 'verify', media, '--trust', base.ws.trust]);
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toContain(join(media, 'vol3/FERRY/BUNDLE.003'));
    const installed = await install(media, root);
    expect(installed.code, installed.stderr).toBe(0);
  }, 60_000);

  it('with no good copy anywhere, the short one is still E_PART_MISMATCH naming it', async () => {
    const { media, root } = await setUp(async (dir) => {
      const stale = await readFile(join(dir, 'vol3/FERRY/BUNDLE.003'));
      await writeFile(join(dir, 'vol2/FERRY/BUNDLE.003'), stale.subarray(0, 1000));
      await rm(join(dir, 'vol3'), { recursive: true });
    });
    const before = await snapshot(root);
    for (const result of [
      await ferry(['media', 'verify', media, '--trust', base.ws.trust]),
      await install(media, root),
    ]) {
      expect(result.code, result.stderr).toBe(3);
      expect(result.stderr).toContain(
        `E_PART_MISMATCH: ${join(media, 'vol2/FERRY/BUNDLE.003')}: part 3 on volume 3`,
      );
      expect(result.stderr).toContain('is 1000 bytes');
    }
    expect(await snapshot(root)).toEqual(before);
  }, 60_000);
});

describe('a parts index signed for a shorter bundle than bundle.json lays out', () => {
  it('media verify refuses it (E_MEDIA_INDEX_INVALID), as install does, instead of passing every part', async () => {
    const { media, root } = await setUp(async (dir) => {
      // The release key re-signs an index that leaves out part 3: every part left matches it.
      const file = join(dir, 'vol1', PARTS_INDEX);
      const envelope = JSON.parse(await readFile(file, 'utf8')) as {
        payloadType: string;
        payload: string;
      };
      const index = JSON.parse(
        Buffer.from(envelope.payload, 'base64').toString('utf8'),
      ) as PartsIndex;
      index.parts.pop();
      index.volumes = 2;
      index.bundle.size = index.parts.reduce((sum, part) => sum + part.size, 0);
      const payload = Buffer.from(canonicalJson(index));
      const key = parsePrivateKey(await readFile(base.ws.key, 'utf8'), base.ws.key);
      const signed = addSignature(
        { payloadType: envelope.payloadType, payload: payload.toString('base64'), signatures: [] },
        payload,
        key,
      );
      for (const volume of ['vol1', 'vol2'])
        await writeFile(join(dir, volume, PARTS_INDEX), envelopeBytes(signed));
      await rm(join(dir, 'vol3'), { recursive: true });
    });
    const verify = await ferry(['media', 'verify', media, '--trust', base.ws.trust]);
    expect(verify.code, verify.stdout).toBe(3);
    expect(verify.stderr).toContain(`E_MEDIA_INDEX_INVALID: ${join(media, 'vol1', PARTS_INDEX)}`);
    expect(verify.stderr).toContain('lays out');
    expect(verify.stderr).toContain('hint:');
    const before = await snapshot(root);
    const installed = await install(media, root);
    expect(installed.code, installed.stderr).toBe(3);
    expect(await snapshot(root)).toEqual(before);
  }, 60_000);
});

describe('ferry media run again after it was interrupted', () => {
  it('names the folder the interrupted run left (no parts index) and says to remove it', async () => {
    // What an earlier Ferry's interrupted run left: the folders, part files cut short, no
    // index, and nothing to say whose they were.
    const out = join(base.dir, `interrupted-${counter++}`);
    for (const volume of [1, 2, 3]) {
      await mkdir(join(out, `vol${volume}`, 'FERRY'), { recursive: true });
      await writeFile(join(out, `vol${volume}`, `FERRY/BUNDLE.00${volume}`), Buffer.alloc(4096));
    }
    const again = await runMedia(base, out, ['--volume-size', VOLUME_SIZE, '--no-installer']);
    expect(again.code, again.stderr).toBe(2);
    expect(again.stderr).toContain(
      `E_EXISTS: ${join(out, 'vol1')} already exists and holds no ${PARTS_INDEX}`,
    );
    expect(again.stderr).toContain('interrupted');
    expect(again.stderr).toMatch(/hint: remove the volume folders an interrupted run left/);
  }, 60_000);

  it('cut just before the parts indexes go in, it leaves none (no volume passes for whole beside the others), and the next run removes what it left', async () => {
    const out = join(base.dir, `cut-${counter++}`);
    const cut = await ferry(
      [
        'media',
        base.bundle,
        '--out',
        out,
        '--key',
        base.ws.key,
        '--volume-size',
        VOLUME_SIZE,
        '--no-installer',
      ],
      { env: { FERRY_TEST_CRASH_BEFORE_RENAME: 'PARTS.JSON' } },
    );
    expect(cut.code, cut.stderr).not.toBe(0);
    const folders = (await readdir(out)).sort();
    expect(folders).toEqual(['vol1', 'vol2', 'vol3']);
    for (const folder of folders)
      expect(existsSync(join(out, folder, PARTS_INDEX)), folder).toBe(false);
    const verify = await ferry(['media', 'verify', out, '--trust', base.ws.trust]);
    expect(verify.code, verify.stdout).not.toBe(0);
    const again = await runMedia(base, out, ['--volume-size', VOLUME_SIZE, '--no-installer']);
    expect(again.code, again.stderr).toBe(0);
    expect(await readdir(out)).toEqual(folders);
    for (const folder of folders)
      expect(await readdir(join(out, folder))).toEqual(['FERRY', 'README.TXT']);
    const whole = await ferry(['media', 'verify', out, '--trust', base.ws.trust]);
    expect(whole.code, whole.stderr).toBe(0);
  }, 60_000);

  it('killed outright while it signs, it leaves volumes the next run removes; a run still going keeps its own', async () => {
    const out = join(base.dir, `killed-${counter++}`);
    const stop = join(base.dir, `killed-stop-${counter++}`);
    // A signer that waits (an HSM waiting for a touch): every part is written by then.
    const waits = `while [ ! -e '${stop}' ]; do sleep 0.05; done; exit 1`;
    const args = ['--volume-size', VOLUME_SIZE, '--no-installer'];
    const child = spawn(
      process.execPath,
      [FERRY, 'media', base.bundle, '--out', out, '--signer', waits, '--signer-key', base.ws.pub,
        ...args], // prettier-ignore
      { stdio: 'ignore' },
    );
    const closed = new Promise((resolvePromise) => child.on('close', resolvePromise));
    try {
      while (!existsSync(join(out, 'vol3', 'FERRY', 'BUNDLE.003')))
        await new Promise((resolvePromise) => setTimeout(resolvePromise, 20));
      const beside = await runMedia(base, out, args);
      expect(beside.code).toBe(2);
      expect(beside.stderr).toContain(
        `E_EXISTS: ${join(out, 'vol1')} is being written by a ferry media still running`,
      );
      expect(existsSync(join(out, 'vol3', 'FERRY', 'BUNDLE.003'))).toBe(true);
    } finally {
      child.kill('SIGKILL');
      await closed;
      await writeFile(stop, '');
    }
    expect((await readdir(out)).sort()).toEqual(['vol1', 'vol2', 'vol3']);
    const again = await runMedia(base, out, args);
    expect(again.code, again.stderr).toBe(0);
    const whole = await ferry(['media', 'verify', out, '--trust', base.ws.trust]);
    expect(whole.code, whole.stderr).toBe(0);
  }, 60_000);
});

describe('a volume attached without its part', () => {
  it('media verify and install refuse it (E_PART_MISSING naming the folder), instead of taking it for a volume not attached', async () => {
    const { media, root } = await setUp((dir) => rm(join(dir, 'vol2/FERRY/BUNDLE.002')));
    const verify = await ferry(['media', 'verify', media, '--trust', base.ws.trust]);
    expect(verify.code, verify.stdout).toBe(1);
    expect(verify.stderr).toContain(
      `E_PART_MISSING: ${join(media, 'vol2')} holds the parts index of acme-appliance@1.0.0 but none of its parts`,
    );
    expect(verify.stderr).toContain('hint: copy the whole volume folder again');
    const before = await snapshot(root);
    const installed = await install(media, root);
    expect(installed.code, installed.stderr).toBe(1);
    // Named as verify names it: "not attached" would send the operator for a stick already there.
    expect(installed.stderr).toContain(
      `E_PART_MISSING: ${join(media, 'vol2')} holds the parts index of acme-appliance@1.0.0 but none of its parts`,
    );
    expect(installed.stderr).toContain('hint: copy the whole volume folder again');
    expect(await snapshot(root)).toEqual(before);
    // A volume truly not attached is still listed, not refused.
    const partial = await setUp((dir) => rm(join(dir, 'vol3'), { recursive: true }));
    const listed = await ferry(['media', 'verify', partial.media, '--trust', base.ws.trust]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('not attached (not checked): volume 3');
  }, 60_000);
});
