import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  EPOCH,
  ferry,
  ferryOk,
  json,
  keyPairs,
  tempDir,
  trustRoots,
  workspace,
  type KeyFiles,
  type Workspace,
} from '../helpers.js';
import { cloneAppliance, install, installOk, snapshot, status } from './appliance.js';

// Keys rotate through the bundles themselves: an appliance provisioned with
// trust root version 1 meets bundles that carry versions 1..3.
//   v1: root keys alice and bob (2 of 2), targets key ci-1
//   v2: ci-1 revoked (it leaked), ci-2 added
//   v3: ci-3 added, ci-2 kept

let dir: string;
let ws: Workspace;
let keys: Record<'alice' | 'bob' | 'ci-1' | 'ci-2' | 'ci-3', KeyFiles>;
let chain: string;
let v1: string;
/** An appliance at version 1 of the trust root, nothing installed. */
let fresh: string;
const bundles: Record<string, string> = {};

async function build(
  release: string,
  key: KeyFiles,
  out: string,
  ...extra: string[]
): Promise<string> {
  const result = await ferryOk(
    [
      'build',
      join(ws.product, `release-${release}.yaml`),
      '--out',
      join(dir, out),
      '--key',
      key.key,
      ...(release === '1.0.0' ? ['--first-release'] : []),
      '--json',
      ...extra,
    ],
    { SOURCE_DATE_EPOCH: EPOCH },
  );
  return json<{ bundle: string }>(result).bundle;
}

async function trustVersion(root: string): Promise<number> {
  const shown = await ferryOk(['trust', 'show', join(root, 'etc/ferry/trust.json'), '--json']);
  return json<{ version: number }>(shown).version;
}

beforeAll(async () => {
  dir = await tempDir('ferry-rotation-');
  ws = await workspace(dir);
  keys = await keyPairs(dir, 'alice', 'bob', 'ci-1', 'ci-2', 'ci-3');
  chain = join(dir, 'chain');
  [v1] = (await trustRoots(chain, [keys.alice, keys.bob], keys['ci-1'], [
    ['--revoke-targets-key', 'ci-1', '--add-targets-key', keys['ci-2'].pub],
    ['--add-targets-key', keys['ci-3'].pub],
  ])) as [string];

  bundles.rotating = await build('1.0.0', keys['ci-3'], 'rotating', '--trust-chain', chain);
  // Made in 2090: once installed, the appliance believes no clock before that.
  bundles.future = json<{ bundle: string }>(
    await ferryOk(
      ['build', join(ws.product, 'release-1.1.0.yaml'), '--out', join(dir, 'future'),
       '--key', keys['ci-3'].key, '--trust-chain', chain, '--json'],
      { SOURCE_DATE_EPOCH: String(Date.parse('2090-01-01T00:00:00Z') / 1000) },
    ),
  ).bundle; // prettier-ignore
  // What a thief of ci-1 makes after the key holders revoked it: a bundle with no chain.
  bundles.stolen = await build('1.0.0', keys['ci-1'], 'stolen');

  fresh = join(dir, 'fresh');
  await ferryOk([
    'init', '--root', fresh, '--product', 'acme-appliance',
    '--platform', 'acme-os@7.2.1', '--trust', v1,
  ]); // prettier-ignore
});

describe('trust roots rotate through the bundles', () => {
  it('an appliance at root v1 installs a bundle signed by a key introduced in v3, and then trusts v3', async () => {
    const root = join(dir, 'rotated');
    await cloneAppliance(fresh, root);
    const planned = await ferry(['plan', bundles.rotating as string, '--root', root, '--json']);
    expect(planned.code, planned.stderr).toBe(0);
    expect(await trustVersion(root)).toBe(1);

    const inspected = await ferryOk([
      'inspect',
      bundles.rotating as string,
      '--trust',
      v1,
      '--json',
    ]);
    expect(json<{ signature: { valid: boolean } }>(inspected).signature.valid).toBe(true);

    await installOk(bundles.rotating as string, root);
    expect((await status(root)).release).toBe('1.0.0');
    expect(await trustVersion(root)).toBe(3);
    expect(await readFile(join(root, 'etc/ferry/trust.json'), 'utf8')).toBe(
      await readFile(join(chain, 'root-3.json'), 'utf8'),
    );
  });

  it('a bundle signed by the key v2 revoked is refused with E_KEY_REVOKED, exit 3, nothing changed', async () => {
    const root = join(dir, 'revoked');
    await cloneAppliance(fresh, root);
    await installOk(bundles.rotating as string, root);
    const shown = json<{ trust: { version: number; revoked: string[] } }>(
      await ferryOk(['status', '--root', root, '--json']),
    );
    expect(shown.trust).toMatchObject({ version: 3, revoked: [keys['ci-1'].keyid] });
    const before = await snapshot(root);
    const result = await install(bundles.stolen as string, root, '--json');
    expect(result.code).toBe(3);
    expect(json<{ error: { code: string } }>(result).error.code).toBe('E_KEY_REVOKED');
    expect(await snapshot(root)).toEqual(before);
    // On a laptop, from the appliance's exported facts: the same refusal.
    const facts = join(dir, 'revoked-facts.json');
    await ferryOk(['status', '--root', root, '--export', facts]);
    const planned = await ferry(['plan', bundles.stolen as string, '--state', facts, '--json']);
    expect(planned.code).toBe(3);
    expect(json<{ error: { code: string } }>(planned).error.code).toBe('E_KEY_REVOKED');
    const verify = await ferry([
      'verify', bundles.stolen as string, '--trust', join(root, 'etc/ferry/trust.json'),
    ]); // prettier-ignore
    expect(verify.code).toBe(3);
  });

  it('an install that fails after the walk leaves the trust root as it was', async () => {
    const root = join(dir, 'failing');
    await cloneAppliance(fresh, root);
    await mkdir(join(root, 'fail'), { recursive: true });
    await writeFile(join(root, 'fail', 'api.test'), '');
    const before = await snapshot(root);
    const result = await install(bundles.rotating as string, root, '--json');
    expect(result.code).toBe(1);
    expect(await snapshot(root)).toEqual(before);
    expect(await trustVersion(root)).toBe(1);
  });

  it('a chain with a step one root key did not sign is refused before anything else', async () => {
    const broken = join(dir, 'broken-chain');
    await mkdir(broken);
    await writeFile(join(broken, 'root-1.json'), await readFile(v1));
    await ferryOk([
      'trust', 'sign-next', '--previous', v1, '--add-targets-key', keys['ci-3'].pub,
      '--expires', '2099-01-01', '--sign-with', keys.alice.key,
      '--out', join(broken, 'root-2.json'),
    ]); // prettier-ignore
    const refused = await ferry([
      'build', join(ws.product, 'release-1.0.0.yaml'), '--out', join(dir, 'broken'),
      '--key', keys['ci-3'].key, '--first-release', '--trust-chain', broken, '--json',
    ]); // prettier-ignore
    expect(refused.code).toBe(3);
    expect(json<{ error: { code: string } }>(refused).error.code).toBe('E_ROOT_THRESHOLD_OLD');
  });

  it('a bundle is refused after its expiry, judged by the later of the clock and the newest bundle installed', async () => {
    const expired = await build(
      '1.0.0',
      keys['ci-3'],
      'expired',
      '--trust-chain',
      chain,
      '--expires',
      '2024-01-01',
      // The clock's side of the rule needs a date past today; builds refuse one without this.
      '--allow-expired',
    );
    const root = join(dir, 'expiry');
    await cloneAppliance(fresh, root);
    const before = await snapshot(root);
    const refused = await install(expired, root, '--json');
    expect(refused.code).toBe(3);
    expect(json<{ error: { code: string } }>(refused).error.code).toBe('E_BUNDLE_EXPIRED');
    expect(await snapshot(root)).toEqual(before);

    // The bundle made in 2090 sets the floor: the clock (today) no longer counts.
    await installOk(bundles.rotating as string, root);
    await installOk(bundles.future as string, root);
    const until2080 = await build('1.2.0', keys['ci-3'], 'until-2080', '--expires', '2080-01-01');
    const afterFloor = await install(until2080, root, '--json');
    expect(afterFloor.code).toBe(3);
    expect(json<{ error: { code: string } }>(afterFloor).error.code).toBe('E_BUNDLE_EXPIRED');
  });

  it('the newest root expires by the later of the clock and the newest bundle installed, and the hint says so', async () => {
    const root = join(dir, 'root-expiry');
    await cloneAppliance(fresh, root);
    await installOk(bundles.rotating as string, root);
    await installOk(bundles.future as string, root); // made in 2090
    const shortChain = join(dir, 'short-chain');
    await mkdir(shortChain);
    for (const n of [1, 2, 3])
      await writeFile(
        join(shortChain, `root-${n}.json`),
        await readFile(join(chain, `root-${n}.json`)),
      );
    await ferryOk([
      'trust', 'sign-next', '--previous', join(chain, 'root-3.json'), '--expires', '2085-01-01',
      '--sign-with', keys.alice.key, '--sign-with', keys.bob.key,
      '--out', join(shortChain, 'root-4.json'),
    ]); // prettier-ignore
    const bundle = await build('1.2.0', keys['ci-3'], 'short', '--trust-chain', shortChain);
    const before = await snapshot(root);
    const refused = await install(bundle, root, '--json');
    expect(refused.code).toBe(3);
    const { error } = json<{ error: { code: string; message: string; hint: string } }>(refused);
    expect(error.code).toBe('E_ROOT_EXPIRED');
    expect(error.message).toContain('root-4.json');
    // The clock is not what expired it: setting the clock alone would not help.
    expect(error.hint).toContain('never believed');
    expect(await snapshot(root)).toEqual(before);
  });

  it('an expired trusted root refuses a bundle that carries no chain too', async () => {
    const expired = join(dir, 'expired-root.json');
    await ferryOk([
      'trust', 'init', '--root-key', keys.alice.pub, '--targets-key', keys['ci-1'].pub,
      '--expires', '2001-01-01', '--sign-with', keys.alice.key, '--out', expired,
    ]); // prettier-ignore
    const root = join(dir, 'expired-appliance');
    await ferryOk([
      'init', '--root', root, '--product', 'acme-appliance',
      '--platform', 'acme-os@7.2.1', '--trust', expired,
    ]); // prettier-ignore
    const before = await snapshot(root);
    // bundles.stolen is signed by ci-1, this root's targets key, and carries no trust roots.
    for (const result of [
      await install(bundles.stolen as string, root, '--json'),
      await ferry(['plan', bundles.stolen as string, '--root', root, '--json']),
      await ferry(['verify', bundles.stolen as string, '--trust', expired, '--json']),
    ]) {
      expect(result.code).toBe(3);
      expect(json<{ error: { code: string } }>(result).error.code).toBe('E_ROOT_EXPIRED');
    }
    expect(await snapshot(root)).toEqual(before);
  });

  it('only a root signed by the root threshold resets the highest release, and the history says so', async () => {
    const root = join(dir, 'recall');
    await cloneAppliance(fresh, root);
    await installOk(bundles.rotating as string, root);
    await installOk(bundles.future as string, root);
    await ferryOk(['rollback', '--root', root, '--yes']);
    // 1.1.0 is recalled; 1.0.5 is made on the older line, its history without 1.1.0.
    const recall = async (history: string, trustChain: string): Promise<string> => {
      const spec = (await readFile(join(ws.product, 'release-1.1.0.yaml'), 'utf8'))
        .replace("release: '1.1.0'", "release: '1.0.5'")
        .replace('history: ./history', `history: ./${history}`);
      await mkdir(join(ws.product, history));
      const record = 'acme-appliance-1.0.0.json';
      await writeFile(
        join(ws.product, history, record),
        await readFile(join(ws.product, 'history', record)),
      );
      await writeFile(join(ws.product, `recall-${history}.yaml`), spec);
      const built = await ferryOk(
        ['build', join(ws.product, `recall-${history}.yaml`), '--out', join(dir, history),
         '--key', keys['ci-3'].key, '--trust-chain', trustChain, '--json'],
        { SOURCE_DATE_EPOCH: String(Date.parse('2091-01-01T00:00:00Z') / 1000) },
      ); // prettier-ignore
      return json<{ bundle: string }>(built).bundle;
    };
    const blocked = await install(await recall('history-a', chain), root, '--json');
    expect(blocked.code).toBe(4);
    expect(blocked.stdout).toContain('E_DOWNGRADE');

    const recallChain = join(dir, 'recall-chain');
    await mkdir(recallChain);
    for (const n of [1, 2, 3])
      await writeFile(
        join(recallChain, `root-${n}.json`),
        await readFile(join(chain, `root-${n}.json`)),
      );
    await ferryOk([
      'trust', 'sign-next', '--previous', join(chain, 'root-3.json'),
      '--reset-highest-release', '1.0.0', '--expires', '2099-01-01',
      '--sign-with', keys.alice.key, '--sign-with', keys.bob.key,
      '--out', join(recallChain, 'root-4.json'),
    ]); // prettier-ignore
    await installOk(await recall('history-b', recallChain), root);
    expect((await status(root)).release).toBe('1.0.5');
    expect(await trustVersion(root)).toBe(4);
    const state = JSON.parse(await readFile(join(root, 'var/lib/ferry/state.json'), 'utf8')) as {
      highestRelease: string;
    };
    expect(state.highestRelease).toBe('1.0.5');
    const history = (await readFile(join(root, 'var/lib/ferry/history.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { trust?: unknown });
    expect(history.at(-1)?.trust).toEqual({
      from: 3,
      to: 4,
      highestRelease: { from: '1.1.0', to: '1.0.0', resetBy: 4 },
    });
  });

  it(
    'a power cut at any journal step of the rotating install ends at v1 or at v3, never between',
    { timeout: 600_000 },
    async () => {
      const before = await snapshot(fresh);
      const ends = new Set<string>();
      for (let killPoint = 1; killPoint < 200; killPoint++) {
        const root = join(dir, `cut-${killPoint}`);
        await cloneAppliance(fresh, root);
        const run = await ferry(['install', bundles.rotating as string, '--root', root, '--yes'], {
          env: { FERRY_TEST_CRASH_AT: String(killPoint) },
        });
        if (run.code !== -1) {
          expect(run.code, run.stderr).toBe(0);
          break;
        }
        expect((await ferry(['recover', '--root', root])).code).toBe(0);
        const release = (await status(root)).release;
        const version = await trustVersion(root);
        ends.add(`${release} v${version}`);
        if (release === null) expect(await snapshot(root)).toEqual(before);
        else expect([release, version], `kill point ${killPoint}`).toEqual(['1.0.0', 3]);
      }
      expect([...ends].sort()).toEqual(['1.0.0 v3', 'null v1']);
    },
  );
});

describe('a bundle repository follows the rotation too', () => {
  it('publish --key ci-3 takes root v3 from the bundle; ci-1 signs nothing more, and its version is refused by name', async () => {
    const repo = join(dir, 'repo');
    const made = json<{ root: { version: number; taken: boolean } }>(
      await ferryOk([
        'publish', bundles.stolen as string, '--repo', repo, '--trust', v1,
        '--key', keys['ci-1'].key, '--channel', 'dev', '--json',
      ]),
    ); // prettier-ignore
    expect(made.root).toEqual({ version: 1, taken: false });
    const next = await build('1.1.0', keys['ci-3'], 'repo-1.1.0', '--trust-chain', chain);
    const taken = await ferryOk([
      'publish', next, '--repo', repo, '--key', keys['ci-3'].key, '--channel', 'dev',
    ]); // prettier-ignore
    expect(taken.stdout).toContain('took trust root version 3 from the bundle');
    const log = await ferryOk(['history', '--repo', repo, '--verify']);
    expect(log.stdout).toContain('took trust root version 3');
    expect(log.stdout).toContain('chain verified: 4 event(s)');
    const listed = await ferryOk(['channels', '--repo', repo]);
    expect(listed.stdout).toContain('trust root version 3');

    const approval = await ferry([
      'approve', '1.1.0', '--repo', repo, '--to', 'beta', '--by', 'qa',
      '--key', keys['ci-1'].key, '--json',
    ]); // prettier-ignore
    expect(approval.code).toBe(3);
    expect(json<{ error: { code: string } }>(approval).error.code).toBe('E_KEY_REVOKED');

    // A version signed by ci-1 before the rotation: named, and --out left as it was.
    const out = join(dir, 'repo-pull', 'usb');
    const refused = await ferry([
      'pull', '--repo', repo, '--version', '1.0.0', '--trust', v1, '--out', out, '--json',
    ]); // prettier-ignore
    expect(refused.code).toBe(3);
    const error = json<{ error: { code: string; message: string; reference: string } }>(
      refused,
    ).error;
    expect(error).toMatchObject({ code: 'E_KEY_REVOKED', reference: '1.0.0' });
    expect(error.message).toContain(
      `${repo}: version 1.0.0 (${basename(bundles.stolen as string)}): `,
    );
    expect(error.message).not.toContain('.pull');
    expect(await readdir(join(dir, 'repo-pull')).catch(() => 'absent')).toBe('absent');
    const pulled = await ferryOk([
      'pull', '--repo', repo, '--channel', 'dev', '--trust', join(chain, 'root-3.json'),
      '--out', out, '--json',
    ]); // prettier-ignore
    expect(json<{ version: string }>(pulled).version).toBe('1.1.0');
  });
});
