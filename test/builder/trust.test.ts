import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Metadata, MetadataKind } from '@tufjs/models';
import { describe, expect, it } from 'vitest';
import { keygen, keySigner, trustInit } from '../../builder/signing.js';
import {
  firstRoot,
  nextRoot,
  signRoot,
  summariseRoot,
  trustRootInit,
  trustShow,
  trustSign,
  trustSignNext,
  unsignedRoot,
  verifyChain,
  type NamedKey,
} from '../../builder/trust.js';
import {
  assertTrusted,
  checkSignatures,
  envelopeBytes,
  MAX_ROOT_BYTES,
  parseTrustedRoot,
  readTrustedRoot,
  signEnvelope,
  walkRootChain,
  type TrustedRoot,
} from '../../manifest-schema/index.js';
import { codeOf, tempDir } from '../helpers.js';
import { newKeys, type TestKey } from '../manifest-schema/roots.js';

const NOW = new Date('2030-06-01T00:00:00Z');
const EXPIRES = new Date('2031-01-01T00:00:00Z');
const { A, B, C, D, T1, T2 } = newKeys('A', 'B', 'C', 'D', 'T1', 'T2');
const named = (key: TestKey, name: string): NamedKey => ({ key: key.publicKey, name });
const by = (key: TestKey) => keySigner(key.privateKey);

const bytesOf = (root: TrustedRoot) => envelopeBytes(root.signed?.envelope ?? unreachable());
function unreachable(): never {
  throw new Error('a root without an envelope');
}

const v1 = unsignedRoot(
  firstRoot({
    root: { keys: [named(A, 'alice'), named(B, 'bob'), named(C, 'carol')], threshold: 2 },
    targets: { keys: [named(T1, 'ci-2030')], threshold: 1 },
    expires: EXPIRES,
  }),
);

describe('making trust roots', () => {
  it('drafts version 1 that TUF reads back field for field', () => {
    const document = v1.signed?.document;
    expect(document).toMatchObject({ _type: 'root', version: 1, expires: '2031-01-01T00:00:00Z' });
    expect(Object.keys(document?.roles ?? {}).sort()).toEqual([
      'root',
      'snapshot',
      'targets',
      'timestamp',
    ]);
    expect(document?.['x-ferry']?.names?.[A.keyid]).toBe('alice');
    const tuf = Metadata.fromJSON(MetadataKind.Root, {
      signed: JSON.parse(JSON.stringify(document)) as Record<string, never>,
      signatures: [],
    });
    expect(tuf.signed.toJSON()).toEqual(document);
  });

  it('counts once a root threshold signed it; signing twice changes nothing', async () => {
    const once = await signRoot(v1, by(A));
    expect(
      summariseRoot(once).signatures.map(({ met, signed }) => ({ met, n: signed.length })),
    ).toEqual([{ met: false, n: 1 }]);
    expect(bytesOf(await signRoot(once, by(A))).equals(bytesOf(once))).toBe(true);
    const twice = await signRoot(once, by(C));
    expect(summariseRoot(twice).signatures[0]).toMatchObject({
      met: true,
      missing: [{ keyid: B.keyid, name: 'bob' }],
    });
    expect(parseTrustedRoot(bytesOf(twice), 'root-1.json').version).toBe(1);
  });

  it('refuses a signature by a key outside the root role of this root and the one before', async () => {
    expect(await codeOf(() => signRoot(v1, by(T1)))).toBe('E_ROOT_KEY_UNKNOWN');
    const trusted = await signRoot(await signRoot(v1, by(A)), by(B));
    const v2 = unsignedRoot(
      nextRoot(trusted, { revokeRoot: ['carol'], addRoot: [named(D, 'dan')], expires: EXPIRES }),
    );
    // carol is rotated out: she signs v2 only with v1 at hand, and v1 only as v1
    expect(await codeOf(() => signRoot(v2, by(C)))).toBe('E_ROOT_KEY_UNKNOWN');
    expect(await codeOf(() => signRoot(v2, by(C), v2))).toBe('E_USAGE');
    expect(summariseRoot(await signRoot(v2, by(C), trusted), trusted).signatures).toMatchObject([
      { version: 2, met: false },
      { version: 1, met: false, signed: [{ keyid: C.keyid }] },
    ]);
  });
});

const trusted = await signRoot(await signRoot(v1, by(A)), by(B));

describe('rotating', () => {
  it('adds and revokes root and targets keys, changes thresholds, and the chain walks', async () => {
    const document = nextRoot(trusted, {
      revokeRoot: [C.keyid],
      addRoot: [named(D, 'dan')],
      rootThreshold: 3,
      revokeTargets: ['ci-2030'],
      addTargets: [named(T2, 'ci-2031')],
      expires: new Date('2032-01-01T12:30:00.250Z'),
    });
    expect(document).toMatchObject({ version: 2, expires: '2032-01-01T12:30:00Z' });
    expect(document.roles.root).toEqual({ keyids: [A.keyid, B.keyid, D.keyid], threshold: 3 });
    expect(document.roles.targets.keyids).toEqual([T2.keyid]);
    expect(Object.keys(document.keys).sort()).toEqual([A.keyid, B.keyid, D.keyid, T2.keyid].sort());
    let v2 = unsignedRoot(document);
    for (const key of [A, B, D]) v2 = await signRoot(v2, by(key), trusted);
    const walk = walkRootChain(
      trusted,
      [
        { file: 'root-1.json', bytes: bytesOf(trusted) },
        { file: 'root-2.json', bytes: bytesOf(v2) },
      ],
      NOW,
    );
    expect(walk.refusal).toBeUndefined();
    expect(walk.root.version).toBe(2);
    const bundle = Buffer.from('{}');
    const old = checkSignatures(signEnvelope(bundle, [T1.privateKey]), bundle, walk.root);
    expect(() => assertTrusted(old, 'b.tar')).toThrow(
      expect.objectContaining({ code: 'E_KEY_REVOKED' }),
    );
  });

  it.each<[string, Parameters<typeof nextRoot>[1]]>([
    ['a key the role does not hold', { revokeRoot: ['dan'], expires: EXPIRES }],
    ['a key the role holds already', { addTargets: [named(T1, 'again')], expires: EXPIRES }],
    ['a threshold above the keys left', { revokeRoot: ['alice', 'bob'], expires: EXPIRES }],
    ['an empty targets role', { revokeTargets: ['ci-2030'], expires: EXPIRES }],
    ['a threshold of 0', { targetsThreshold: 0, expires: EXPIRES }],
    ['an expiry that is not a date', { expires: new Date('soon') }],
  ])('refuses %s', async (_name, changes) => {
    expect(await codeOf(() => nextRoot(trusted, changes))).toBe('E_USAGE');
  });
});

describe('the key holders’ files', () => {
  it('init, sign-next, sign on two machines, show and verify-chain, from a first-format root', async () => {
    const dir = await tempDir();
    const keys = join(dir, 'keys');
    const made = Object.fromEntries(
      await Promise.all(
        ['alice', 'bob', 'ci-2030', 'ci-2031'].map(
          async (name) => [name, await keygen(keys, name)] as const,
        ),
      ),
    );
    const pub = (name: string) => made[name]?.publicKey as string;
    const key = (name: string) => made[name]?.privateKey as string;
    const chain = join(dir, 'chain');
    await mkdir(chain);
    await writeFile(join(chain, 'README.txt'), 'files that are not root-N.json are ignored\n');

    // today's appliances hold a first-format root: it is version 1 of the chain
    const legacy = join(dir, 'trust.json');
    await trustInit([pub('ci-2030')], 1, legacy);
    const v2 = join(chain, 'root-2.json');
    expect(
      await trustSignNext({
        previous: legacy,
        addRoot: [pub('alice'), pub('bob')],
        rootThreshold: 2,
        revokeRoot: ['ci-2030'],
        expires: EXPIRES,
        signWith: [key('ci-2030')],
        out: v2,
      }),
    ).toMatchObject({
      version: 2,
      signatures: [
        { version: 2, met: false },
        { version: 1, met: true },
      ],
    });
    expect(await codeOf(() => trustSignNext({ previous: legacy, expires: EXPIRES, out: v2 }))).toBe(
      'E_EXISTS',
    );
    await trustSign(v2, { keys: [key('alice')] });
    expect((await trustShow(v2, legacy)).signatures.map((s) => s.met)).toEqual([false, true]);
    await trustSign(v2, { keys: [key('bob')] });
    expect((await trustShow(v2, legacy)).signatures.map((s) => s.met)).toEqual([true, true]);

    const v3 = join(chain, 'root-3.json');
    await trustSignNext({
      previous: v2,
      revokeTargets: ['ci-2030'],
      addTargets: [pub('ci-2031')],
      expires: EXPIRES,
      signWith: [key('alice')],
      out: v3,
    });
    expect((await verifyChain(chain, legacy, NOW)).refusal?.code).toBe('E_ROOT_THRESHOLD_OLD');
    await trustSign(v3, { keys: [key('bob')] });
    const walk = await verifyChain(chain, legacy, NOW);
    expect(walk.refusal).toBeUndefined();
    expect(walk.versions).toEqual([1, 2, 3]);
    expect(Object.keys(walk.root.revoked)).toEqual([made['ci-2030']?.keyid]);
    expect((await verifyChain(chain, v2, NOW)).versions).toEqual([2, 3]);
    expect((await verifyChain(chain, legacy, EXPIRES)).refusal?.code).toBe('E_ROOT_EXPIRED');
    expect((await readTrustedRoot(v3)).roles.targets.keyids).toEqual([made['ci-2031']?.keyid]);
  });

  it('init writes version 1; verify-chain refuses a root file over 64 KiB', async () => {
    const dir = await tempDir();
    const made = await Promise.all(['root', 'ci'].map((name) => keygen(dir, name)));
    const [root, ci] = made as [(typeof made)[0], (typeof made)[0]];
    const v1File = join(dir, 'root-1.json');
    const init = (signWith: string, out: string) =>
      trustRootInit({
        rootKeys: [root.publicKey],
        rootThreshold: 1,
        targetsKeys: [ci.publicKey],
        targetsThreshold: 1,
        expires: EXPIRES,
        signWith: [signWith],
        out,
      });
    const summary = await init(root.privateKey, v1File);
    expect(summary).toMatchObject({
      version: 1,
      format: 'tuf',
      roles: { targets: { threshold: 1, keys: [{ keyid: ci.keyid, name: 'ci' }] } },
    });
    expect(await codeOf(() => init(ci.privateKey, join(dir, 'other.json')))).toBe(
      'E_ROOT_KEY_UNKNOWN',
    );
    const text = await readFile(v1File, 'utf8');
    await writeFile(join(dir, 'root-2.json'), text + ' '.repeat(MAX_ROOT_BYTES));
    expect((await verifyChain(dir, v1File, NOW)).refusal?.code).toBe('E_ROOT_TOO_LARGE');
  });
});
