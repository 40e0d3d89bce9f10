import { cp, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openBundleMetadata } from '../../bundle/open.js';
import { planningBytes } from '../../builder/media.js';
import {
  EPOCH,
  ferry,
  ferryOk,
  json,
  keyPairs,
  trustRoots,
  tempDir,
  workspace,
  type KeyFiles,
} from '../helpers.js';
import { cloneAppliance, install, snapshot, status } from '../e2e/appliance.js';
import { makeMedia } from './helpers.js';

// A bundle carrying its trust chain (issue 14), delivered on volumes: an
// appliance provisioned with root v1 meets a bundle and a parts index
// signed by ci-2, a key only root v2 (carried in part 1) introduces.

let dir: string;
let keys: Record<'alice' | 'bob' | 'ci-1' | 'ci-2', KeyFiles>;
let v1: string;
let media: string;
let fresh: string;

async function trustVersion(root: string): Promise<number> {
  const shown = await ferryOk(['trust', 'show', join(root, 'etc/ferry/trust.json'), '--json']);
  return json<{ version: number }>(shown).version;
}

beforeAll(async () => {
  dir = await tempDir('ferry-media-chain-');
  const ws = await workspace(dir);
  keys = await keyPairs(dir, 'alice', 'bob', 'ci-1', 'ci-2');
  const chain = join(dir, 'chain');
  [v1] = (await trustRoots(chain, [keys.alice, keys.bob], keys['ci-1'], [
    ['--revoke-targets-key', 'ci-1', '--add-targets-key', keys['ci-2'].pub],
  ])) as [string];
  const built = await ferryOk(
    [
      'build', join(ws.product, 'release-1.0.0.yaml'), '--first-release',
      '--out', join(dir, 'bundle'), '--key', keys['ci-2'].key, '--trust-chain', chain, '--json',
    ],
    { SOURCE_DATE_EPOCH: EPOCH },
  ); // prettier-ignore
  const bundle = json<{ bundle: string }>(built).bundle;
  media = join(dir, 'media');
  const cut = await makeMedia({ ws: { ...ws, key: keys['ci-2'].key }, bundle }, media);
  expect(cut.volumes).toHaveLength(3);
  fresh = join(dir, 'fresh');
  await ferryOk([
    'init', '--root', fresh, '--product', 'acme-appliance',
    '--platform', 'acme-os@7.2.1', '--trust', v1,
  ]); // prettier-ignore
});

describe('a rotated key on media', () => {
  it('keeps bundle.json and the trust roots after it in part 1, and knows where they end', async () => {
    const part = await readFile(join(media, 'vol1', 'FERRY/BUNDLE.001'));
    const opened = await openBundleMetadata(join(media, 'vol1'));
    await opened.reader.close();
    const front = planningBytes(opened.metadata, opened.reader.metadataBytes.length);
    expect(part.length).toBeGreaterThan(front);
    // The root planning walks last lies before `front`; the next entry's header starts there.
    expect(part.indexOf('trust/root-2.json')).toBeGreaterThan(0);
    expect(part.indexOf('trust/root-2.json')).toBeLessThan(front);
    expect(part.toString('latin1', front, front + 10)).toBe('artifacts/');
  });

  it('plans from volume 1 alone at root v1, changing nothing, not even the trust root', async () => {
    const alone = join(dir, 'alone');
    await mkdir(alone);
    await cp(join(media, 'vol1'), join(alone, 'vol1'), { recursive: true });
    const root = join(dir, 'planned');
    await cloneAppliance(fresh, root);
    const before = await snapshot(root);
    const plan = await ferry(['plan', join(alone, 'vol1'), '--root', root, '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(json(plan)).toMatchObject({ verdict: 'ok', to: '1.0.0' });
    expect(await snapshot(root)).toEqual(before);
    expect(await trustVersion(root)).toBe(1);
  });

  it('media verify at root v1 accepts the index signed by the key v2 brings', async () => {
    const check = await ferry(['media', 'verify', media, '--trust', v1, '--json']);
    expect(check.code, check.stderr).toBe(0);
    expect(json(check)).toMatchObject({ missing: [], metadata: true });
  });

  it('installs across the three volumes at root v1, and then trusts v2', async () => {
    const root = join(dir, 'installed');
    await cloneAppliance(fresh, root);
    const result = await install(media, root);
    expect(result.code, result.stderr).toBe(0);
    expect(await status(root)).toMatchObject({ release: '1.0.0', verified: true });
    expect(await trustVersion(root)).toBe(2);
  });

  it('refuses the same volumes at a root that never heard of the chain, changing nothing', async () => {
    // Another v1, of other root keys: the carried v2 does not follow from it.
    const stranger = await keyPairs(join(dir, 'stranger'), 'carol');
    const other = join(dir, 'other-root.json');
    await ferryOk([
      'trust', 'init', '--root-key', stranger.carol.pub, '--targets-key', keys['ci-1'].pub,
      '--expires', '2099-01-01', '--sign-with', stranger.carol.key, '--out', other,
    ]); // prettier-ignore
    const root = join(dir, 'other');
    await ferryOk([
      'init', '--root', root, '--product', 'acme-appliance',
      '--platform', 'acme-os@7.2.1', '--trust', other,
    ]); // prettier-ignore
    const before = await snapshot(root);
    const result = await install(media, root);
    expect(result.code, result.stderr).toBe(3);
    expect(await snapshot(root)).toEqual(before);
  });
});
