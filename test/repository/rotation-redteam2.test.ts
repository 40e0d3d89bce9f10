import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { FerryError } from '../../manifest-schema/errors.js';
import type { ChannelDoc } from '../../repository/documents.js';
import {
  approve,
  channels,
  history,
  promote,
  publish,
  pull,
  type Writer,
} from '../../repository/model.js';
import { DirectoryStore } from '../../repository/store-dir.js';
import { TAGS, type Store } from '../../repository/store.js';
import { codeOf, tempDir, trustRoots, type KeyFiles } from '../helpers.js';
import { plantDocument, readConfig, rotationFixture } from './rotation-fixture.js';

/**
 * Second round of attacks on trust-root rotation: the config's chain (a
 * repository made past its --trust root) and the root version a machine
 * that pulls records. Directory backend.
 *   root-1: targets key ci-1;  root-2: ci-1 revoked, ci-2 added.
 *   evil-1/evil-2: the thief's own chain (root key mallory), same shape.
 */

let dir: string;
let root1: string;
let root2: string;
let evil2: string;
let bundles: Record<string, string>;
let old: Writer;
let current: Writer;
let thief: Writer;
let mallory: KeyFiles;

beforeAll(async () => {
  const made = await rotationFixture('ferry-repo-redteam2-', 'mallory');
  ({ dir, root1, root2, bundles, old, current } = made);
  const keys = made.keys as Record<'ci-2' | 'mallory', KeyFiles>;
  [, evil2] = (await trustRoots(join(dir, 'evil'), [keys.mallory], keys.mallory, [
    ['--add-targets-key', keys['ci-2'].pub],
  ])) as [string, string];
  mallory = keys.mallory;
  thief = await made.writerOf(mallory, 'mallory');
}, 300_000);

/** Made at root-1 with ci-1 (1.0.0 and 1.1.0 in dev), then rotated to root-2 by 1.2.0 into dev. */
async function rotated(): Promise<string> {
  const repo = join(await tempDir('ferry-rt2-'), 'repo');
  await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, channel: 'dev', writer: old });
  await promote({ repo, version: '1.0.0', to: 'beta', approvedBy: 'qa', writer: old });
  await publish({ repo, bundle: bundles['1.1.0'] as string, channel: 'dev', writer: old });
  const taken = await publish({ repo, bundle: bundles['1.2.0'] as string, channel: 'dev', writer: current });
  expect(taken.root).toEqual({ version: 2, taken: true });
  return repo;
} // prettier-ignore

function writeConfig(store: Store, config: Record<string, unknown>): Promise<void> {
  return plantDocument(store, 'config', TAGS.config, config, []);
}

/** Puts a channel document signed by `writer` in the channel's place. */
function forgeChannel(store: Store, doc: ChannelDoc, writer: Writer): Promise<void> {
  return plantDocument(store, 'channel', TAGS.channel(doc.channel), doc, writer.keys);
}

const b64 = async (file: string) => (await readFile(file)).toString('base64');
const envelope = async (file: string) => JSON.parse(await readFile(file, 'utf8')) as unknown;

async function madePastRoot1(): Promise<string> {
  const repo = join(await tempDir('ferry-rt2-'), 'repo');
  const made = await publish({ repo, bundle: bundles['1.2.0'] as string, trust: root1, channel: 'dev', writer: current });
  expect(made.root).toEqual({ version: 2, taken: false });
  return repo;
} // prettier-ignore

describe('the config chain (43b42d8): a thief with write access to the storage and --trust root-1', () => {
  it('cannot put its own root in the config with a chain of its own', async () => {
    const repo = await madePastRoot1();
    const store: Store = await DirectoryStore.open(repo, false);
    try {
      const config = await readConfig(store);
      await writeConfig(store, {
        ...config,
        trust: await envelope(evil2),
        chain: [await b64(evil2)],
      });
    } finally {
      store.close?.();
    }
    const out = await tempDir();
    expect(await codeOf(() => pull({ repo, channel: 'dev', trust: root1, out }))).toBe(
      'E_REPO_TRUST',
    );
  });

  it('cannot add a repository key of its own to a config made past root-1', async () => {
    const repo = await madePastRoot1();
    const store: Store = await DirectoryStore.open(repo, false);
    try {
      const config = await readConfig(store);
      const pem = await readFile(mallory.pub, 'utf8');
      await writeConfig(store, { ...config, keys: [pem] });
      await forgeChannel(
        store,
        {
          channel: 'dev', sequence: 9, version: '1.2.0', digest: 'sha256:' + '1'.repeat(64),
          prev: null, auditHead: 'sha256:' + '0'.repeat(64), auditSeq: 2, time: '2026-06-01T08:00:00.000Z',
        },
        thief,
      ); // prettier-ignore
    } finally {
      store.close?.();
    }
    for (const trust of [root1, root2])
      expect(
        await codeOf(() => pull({ repo, channel: 'dev', trust, out: join(dir, 'x') })),
      ).toBe('E_REPO_INVALID');
    expect(
      await codeOf(() =>
        approve({ repo, version: '1.2.0', to: 'beta', by: 'qa', evidence: [], trust: root1, writer: thief }),
      ),
    ).toBe('E_REPO_INVALID');
  }); // prettier-ignore

  it('a config chain that does not walk is only refused, never followed', async () => {
    const repo = await madePastRoot1();
    const store: Store = await DirectoryStore.open(repo, false);
    try {
      const config = await readConfig(store);
      // A chain whose root-2 is the thief's, in front of the real config root.
      await writeConfig(store, { ...config, chain: [await b64(evil2), 'not base64 !!', ''] });
    } finally {
      store.close?.();
    }
    const out = await tempDir();
    expect(await codeOf(() => pull({ repo, channel: 'dev', trust: root1, out }))).toBe(
      'E_REPO_TRUST',
    );
    // root-2 itself never needed the chain.
    expect((await pull({ repo, channel: 'dev', trust: root2, out })).version).toBe('1.2.0');
  });
});

describe('the root a machine records (727fe94)', () => {
  /** Removes the trust document: the repository follows root-1 again, and ci-1 signs. */
  async function setBack(repo: string): Promise<void> {
    const store: Store = await DirectoryStore.open(repo, false);
    try {
      await store.deleteRef(TAGS.trust);
    } finally {
      store.close?.();
    }
  }

  it('a pull by --version from a repository whose root was set back is refused too', async () => {
    const repo = await rotated();
    const stateDir = await tempDir();
    // Under root-2, 1.1.0 (signed by ci-1) is refused by a pull by version.
    expect(
      await codeOf(() => pull({ repo, version: '1.1.0', out: join(dir, 'no'), stateDir })),
    ).toBe('E_KEY_REVOKED');
    expect((await pull({ repo, channel: 'dev', out: await tempDir(), stateDir })).version).toBe(
      '1.2.0',
    );
    await setBack(repo);
    expect(
      await codeOf(async () => pull({ repo, channel: 'beta', out: await tempDir(), stateDir })),
    ).toBe('E_CHANNEL_SET_BACK');
    // The same machine, the same repository, the bundle the dropped key signed.
    const refused = await pull({ repo, version: '1.1.0', out: await tempDir(), stateDir }).catch(
      (error: unknown) => error,
    );
    expect((refused as FerryError).code).toBe('E_CHANNEL_SET_BACK');
    expect((refused as FerryError).message).toContain('follows trust root version 1');
  });

  it('a machine that only pulls by --version records the root too, and refuses the repository set back', async () => {
    const repo = join(await tempDir('ferry-rt2-'), 'repo');
    await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, channel: 'dev', writer: old });
    await publish({ repo, bundle: bundles['1.1.0'] as string, channel: 'dev', writer: old });
    const stateDir = await tempDir();
    const file = join(stateDir, 'pulled', createHash('sha256').update(repo).digest('hex').slice(0, 32), '_repository.json');
    const recorded = async () => (JSON.parse(await readFile(file, 'utf8')) as { root?: number }).root;
    expect((await pull({ repo, version: '1.0.0', out: await tempDir(), stateDir })).version).toBe('1.0.0');
    expect(await recorded()).toBe(1);
    await publish({ repo, bundle: bundles['1.2.0'] as string, channel: 'dev', writer: current });
    // A bundle refused under root-2 proves nothing: the record stays as it was.
    expect(await codeOf(async () => pull({ repo, version: '1.1.0', out: await tempDir(), stateDir }))).toBe('E_KEY_REVOKED');
    expect(await recorded()).toBe(1);
    expect((await pull({ repo, version: '1.2.0', out: await tempDir(), stateDir })).version).toBe('1.2.0');
    expect(await recorded()).toBe(2);
    await setBack(repo);
    // The bundle ci-1 signed, which root-2 dropped: handed out again by the repository set back.
    const refused = await pull({ repo, version: '1.1.0', out: await tempDir(), stateDir }).catch(
      (error: unknown) => error,
    );
    expect((refused as FerryError).code).toBe('E_CHANNEL_SET_BACK');
    expect((refused as FerryError).message).toContain('follows trust root version 1, but it followed version 2');
    expect(await recorded()).toBe(2);
  }); // prettier-ignore

  it('`ferry channels` shows the channels of a repository whose root was set back as set back, as pull refuses them', async () => {
    const repo = await rotated();
    const stateDir = await tempDir();
    await pull({ repo, channel: 'dev', out: await tempDir(), stateDir });
    await pull({ repo, channel: 'beta', out: await tempDir(), stateDir }).catch(() => undefined);
    const before = await channels({ repo, stateDir });
    expect(before.channels.find((c) => c.name === 'dev')?.pulled?.standing).toBe('current');
    const first = (await history({ repo })).events.find(
      (event) => event.op === 'publish' && event.subject.version === '1.1.0',
    );
    await setBack(repo);
    // dev's document was signed by ci-2 after the rotation: the thief puts one of ci-1's there.
    const store: Store = await DirectoryStore.open(repo, false);
    try {
      await forgeChannel(
        store,
        {
          channel: 'dev', sequence: 10, version: '1.1.0', digest: first?.subject.digest ?? '',
          prev: null, auditHead: first?.digest ?? '', auditSeq: 3, time: '2026-06-01T08:00:00.000Z',
        },
        old,
      ); // prettier-ignore
    } finally {
      store.close?.();
    }
    // Pull refuses both channels: the root went down.
    for (const channel of ['dev', 'beta'])
      expect(
        await codeOf(async () => pull({ repo, channel, out: await tempDir(), stateDir })),
      ).toBe('E_CHANNEL_SET_BACK');
    // channels says so too, rather than `current` (beta) and `moved` (dev).
    const after = await channels({ repo, stateDir });
    expect(after.channels.map((c) => [c.name, c.pulled?.standing ?? null])).toEqual([
      ['dev', 'set-back'],
      ['beta', 'set-back'],
      ['stable', null],
    ]);
  });

  it('legitimate flows: a first pull, a repository never rotated, two channels, a rotation, then channels', async () => {
    const repo = join(await tempDir('ferry-rt2-'), 'repo');
    await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, channel: 'dev', writer: old });
    await promote({ repo, version: '1.0.0', to: 'beta', approvedBy: 'qa', writer: old });
    const stateDir = await tempDir();
    const folder = join(stateDir, 'pulled', createHash('sha256').update(repo).digest('hex').slice(0, 32));
    expect((await pull({ repo, channel: 'dev', out: await tempDir(), stateDir })).version).toBe('1.0.0');
    expect(JSON.parse(await readFile(join(folder, '_repository.json'), 'utf8'))).toMatchObject({ root: 1 });
    expect((await pull({ repo, channel: 'beta', out: await tempDir(), stateDir })).version).toBe('1.0.0');
    // A pull by version on a repository never rotated.
    expect((await pull({ repo, version: '1.0.0', out: await tempDir(), stateDir })).version).toBe('1.0.0');
    await publish({ repo, bundle: bundles['1.2.0'] as string, channel: 'dev', writer: current });
    expect((await pull({ repo, channel: 'dev', out: await tempDir(), stateDir, trust: root1 })).version).toBe('1.2.0');
    expect(JSON.parse(await readFile(join(folder, '_repository.json'), 'utf8'))).toMatchObject({ root: 2 });
    // beta's document, signed by ci-1 before the rotation, still stands; its bundle is ci-1's.
    expect(await codeOf(() => pull({ repo, channel: 'beta', out: join(dir, 'nb'), stateDir }))).toBe('E_KEY_REVOKED');
    const listed = await channels({ repo, stateDir });
    expect(listed.channels.map((c) => [c.name, c.pulled?.standing ?? null])).toEqual([
      ['dev', 'current'], ['beta', 'current'], ['stable', null],
    ]);
    expect((await history({ repo, verify: true })).verified).toBe(true);
  }); // prettier-ignore

  it('a record written by an older Ferry (no root) is taken, and raised by the next pull', async () => {
    const repo = await rotated();
    const stateDir = await tempDir();
    await pull({ repo, channel: 'dev', out: await tempDir(), stateDir });
    const folder = join(stateDir, 'pulled', createHash('sha256').update(repo).digest('hex').slice(0, 32));
    const file = join(folder, '_repository.json');
    const { root: _root, ...older } = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    await writeFile(file, `${JSON.stringify(older)}\n`);
    await pull({ repo, channel: 'dev', out: await tempDir(), stateDir });
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ root: 2 });
    for (const damaged of [0, -1, 1.5, '2', null]) {
      await writeFile(file, `${JSON.stringify({ ...older, root: damaged })}\n`);
      expect(await codeOf(() => pull({ repo, channel: 'dev', out: join(dir, 'd'), stateDir }))).toBe('E_STATE_INVALID');
    }
  }); // prettier-ignore
});
