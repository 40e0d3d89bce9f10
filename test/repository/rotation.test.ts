import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
import { RegistryStore } from '../../repository/store-registry.js';
import { TAGS, type Store } from '../../repository/store.js';
import { codeOf, tempDir, trustRoots, type KeyFiles } from '../helpers.js';
import { plantDocument, readConfig, rotationFixture } from './rotation-fixture.js';
import { registryMissing, startRegistry, type Registry } from './oci/registry.js';

/**
 * A repository follows its trust root as appliances do: it takes a newer
 * root from a bundle published to it whose chain walks there, and from then
 * on a key that root dropped signs nothing. Once per backend.
 *   root-1: targets key ci-1;  root-2: ci-1 revoked, ci-2 added.
 */

let dir: string;
let root1: string;
let root2: string;
let foreign: string;
let bundles: Record<string, string>;
let old: Writer;
let current: Writer;
let registry: Registry | undefined;

beforeAll(async () => {
  const made = await rotationFixture('ferry-repo-rotation-', 'other');
  ({ dir, root1, root2, old, current } = made);
  const keys = made.keys as Record<'ci-1' | 'other', KeyFiles>;
  [foreign] = (await trustRoots(join(dir, 'foreign'), [keys.other], keys['ci-1'], [])) as [string];
  // What a thief of ci-1 makes after it was revoked.
  bundles = { ...made.bundles, stolen: await made.build('1.3.0', keys['ci-1'], 'stolen') };
  if (!registryMissing) registry = await startRegistry();
}, 300_000);

afterAll(async () => registry?.stop());

const backends = [
  ['directory', async (name: string) => join(await tempDir('ferry-rot-dir-'), name)],
  [
    'registry',
    (name: string) => Promise.resolve(registry ? registry.reference(`acme/${name}`) : ''),
  ],
] as const;

/** Puts a channel document signed by ci-1 (the dropped key) in the channel's place. */
function forgeChannel(store: Store, doc: ChannelDoc): Promise<void> {
  return plantDocument(store, 'channel', TAGS.channel(doc.channel), doc, old.keys);
}

function storeOf(repo: string): Promise<Store> {
  return repo.startsWith('oci://')
    ? RegistryStore.open(repo, false)
    : DirectoryStore.open(repo, false);
}

describe.each(backends)('a repository in a %s follows a trust-root rotation', (kind, place) => {
  const skip = kind === 'registry' ? registryMissing : undefined;
  let n = 0;

  /**
   * Made at root-1 and used with ci-1: 1.0.0 in beta (approved by qa), approved
   * by qa for stable too; 1.1.0 in dev. Then 1.2.0, which carries root-2, is
   * published into dev with ci-2.
   */
  async function rotated(): Promise<string> {
    const repo = await place(`rot${++n}`);
    await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, channel: 'dev', writer: old });
    await promote({ repo, version: '1.0.0', to: 'beta', approvedBy: 'qa', writer: old });
    await approve({ repo, version: '1.0.0', to: 'stable', by: 'qa', evidence: [], writer: old });
    await publish({ repo, bundle: bundles['1.1.0'] as string, channel: 'dev', writer: old });
    const taken = await publish({ repo, bundle: bundles['1.2.0'] as string, channel: 'dev', writer: current });
    expect(taken.root).toEqual({ version: 2, taken: true });
    return repo;
  } // prettier-ignore

  it.skipIf(skip)(
    'takes root-2 from a bundle that carries it; what was written before still counts',
    async () => {
      const repo = await rotated();
      const log = await history({ repo, verify: true });
      expect(log.verified).toBe(true);
      expect(log.events.map((event) => event.op).reverse()).toEqual([
        'create', 'publish', 'approve', 'promote', 'approve', 'publish', 'trust', 'publish',
      ]); // prettier-ignore
      expect(log.events.find((event) => event.op === 'trust')?.subject.root).toBe(2);
      // beta's document was signed by ci-1 before the rotation: pinned, it still counts
      // (the channels are listed, and moved on), but the bundle it names is ci-1's.
      const listed = await channels({ repo });
      expect(listed.root).toBe(2);
      expect(listed.channels.map((c) => [c.name, c.version])).toEqual([
        ['dev', '1.2.0'], ['beta', '1.0.0'], ['stable', null],
      ]); // prettier-ignore
      const out = await tempDir();
      const refused = await pull({ repo, channel: 'beta', out }).catch((error: unknown) => error);
      expect((refused as FerryError).code).toBe('E_KEY_REVOKED');
      expect((refused as FerryError).message).toContain('version 1.0.0');
      expect((await pull({ repo, channel: 'dev', out })).version).toBe('1.2.0');
      // qa's approval for stable, signed by ci-1 and recorded before the rotation, counts;
      // the bundle's signature by ci-1 no longer does.
      const blocked = await promote({ repo, version: '1.0.0', to: 'stable', writer: current });
      expect(blocked.verdict).toBe('blocked');
      expect(blocked.excuses.map((excuse) => excuse.code)).toEqual(['E_KEY_REVOKED']);
      await promote({ repo, version: '1.2.0', to: 'beta', approvedBy: 'qa', writer: current });
      expect((await pull({ repo, channel: 'beta', out })).version).toBe('1.2.0');
      expect((await history({ repo, verify: true })).verified).toBe(true);
      // The same bundle again changes nothing, the root included.
      const again = await publish({ repo, bundle: bundles['1.2.0'] as string, writer: current });
      expect([again.changed, again.root]).toEqual([false, { version: 2, taken: false }]);
    },
  );
  it.skipIf(skip)(
    'a key root-2 dropped signs nothing more, and its bundles are refused',
    async () => {
      const repo = await rotated();
      const before = (await history({ repo })).events.length;
      let error: unknown;
      try {
        await approve({ repo, version: '1.2.0', to: 'beta', by: 'qa', evidence: [], writer: old });
      } catch (caught) {
        error = caught;
      }
      expect((error as FerryError).code).toBe('E_KEY_REVOKED');
      expect((error as FerryError).message).toContain('trust root version 2');
      expect(
        await codeOf(() => publish({ repo, bundle: bundles.stolen as string, writer: current })),
      ).toBe('E_KEY_REVOKED');
      expect((await history({ repo })).events.length).toBe(before);
    },
  );

  it.skipIf(skip)(
    'a channel document signed by the dropped key after the rotation is refused',
    async () => {
      const repo = await rotated();
      const store = await storeOf(repo);
      try {
        await promote({ repo, version: '1.2.0', to: 'beta', approvedBy: 'qa', writer: current });
        const out = await tempDir();
        const beta = await pull({ repo, channel: 'beta', out });
        // The thief of ci-1 moves beta back to 1.0.0 with a document of the next sequence.
        const forged: ChannelDoc = {
          channel: 'beta',
          sequence: 3,
          version: '1.0.0',
          digest:
            (await channels({ repo })).channels.find((c) => c.name === 'stable')?.digest ?? '',
          prev: null,
          auditHead: 'sha256:' + '0'.repeat(64),
          auditSeq: 4,
          time: '2026-06-01T08:00:00.000Z',
        };
        await forgeChannel(store, forged);
        expect(beta.version).toBe('1.2.0');
        expect(await codeOf(() => pull({ repo, channel: 'beta', out }))).toBe('E_REPO_INVALID');
        expect(await codeOf(() => channels({ repo }))).toBe('E_REPO_INVALID');
      } finally {
        store.close?.();
      }
    },
  );

  it.skipIf(skip)(
    'its trust document removed beside a channel signed by the dropped key: a machine that pulled before refuses it, as does --trust root-2',
    async () => {
      const repo = await rotated();
      const stateDir = await tempDir();
      expect((await pull({ repo, channel: 'dev', out: await tempDir(), stateDir })).version).toBe(
        '1.2.0',
      );
      const first = (await history({ repo })).events.find(
        (event) => event.op === 'publish' && event.subject.version === '1.0.0',
      );
      const store = await storeOf(repo);
      try {
        await store.deleteRef(TAGS.trust);
        await forgeChannel(
          store,
          {
            channel: 'dev', sequence: 10, version: '1.0.0', digest: first?.subject.digest ?? '',
            prev: null, auditHead: first?.digest ?? '', auditSeq: 2, time: '2026-06-01T08:00:00.000Z',
          },
        ); // prettier-ignore
      } finally {
        store.close?.();
      }
      // A machine with no record and no root of its own cannot tell (see the README).
      expect((await pull({ repo, channel: 'dev', out: await tempDir() })).version).toBe('1.0.0');
      const refused = await pull({ repo, channel: 'dev', out: await tempDir(), stateDir }).catch(
        (error: unknown) => error,
      );
      expect((refused as FerryError).code).toBe('E_CHANNEL_SET_BACK');
      expect((refused as FerryError).message).toContain(
        'follows trust root version 1, but it followed version 2 when this machine pulled from it before',
      );
      expect(await codeOf(() => pull({ repo, channel: 'dev', trust: root2, out: dir }))).toBe(
        'E_REPO_TRUST',
      );
    },
  );

  it.skipIf(skip)(
    'a repository whose trust document was removed refuses what root-2 keys signed',
    async () => {
      const repo = await rotated();
      const store = await storeOf(repo);
      await store.deleteRef(TAGS.trust);
      store.close?.();
      expect(await codeOf(() => pull({ repo, channel: 'dev', out: dir }))).toBe('E_REPO_INVALID');
      expect(await codeOf(() => history({ repo, verify: true }))).toBe('E_AUDIT_BROKEN');
    },
  );

  it.skipIf(skip)(
    'a rotation stopped after its trust document was stored is completed by the next write',
    async () => {
      const repo = await place(`stopped${++n}`);
      await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, channel: 'dev', writer: old });
      await publish({ repo, bundle: bundles['1.2.0'] as string, writer: current });
      // Back to where that publish stopped: the trust document stored, its event and the rest not.
      const store = await storeOf(repo);
      for (const seq of [4, 3]) await store.deleteRef(TAGS.event(seq));
      await store.deleteRef(TAGS.version('1.2.0'));
      store.close?.();
      expect((await history({ repo, verify: true })).events.length).toBe(2);
      // ci-1 may not write any more: the trust document already took root-2.
      expect(
        await codeOf(() =>
          approve({ repo, version: '1.0.0', to: 'beta', by: 'qa', evidence: [], writer: old }),
        ),
      ).toBe('E_KEY_REVOKED');
      await approve({ repo, version: '1.0.0', to: 'beta', by: 'qa', evidence: [], writer: current });
      const log = await history({ repo, verify: true });
      expect(log.events.map((event) => event.op)).toEqual(['approve', 'trust', 'publish', 'create']);
      expect(log.events[1]?.subject.root).toBe(2);
    },
  ); // prettier-ignore
  it.skipIf(skip)('--trust must be a root on the repository’s chain', async () => {
    const repo = await place(`anchor${++n}`);
    await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, channel: 'dev', writer: old });
    const out = await tempDir();
    // root-2, not taken yet: only a publish of a bundle that carries it goes on.
    expect(await codeOf(() => pull({ repo, channel: 'dev', trust: root2, out }))).toBe('E_REPO_TRUST');
    expect(await codeOf(() => pull({ repo, channel: 'dev', trust: foreign, out }))).toBe('E_REPO_TRUST');
    expect(
      await codeOf(() => publish({ repo, bundle: bundles['1.1.0'] as string, trust: root2, writer: old })),
    ).toBe('E_REPO_TRUST');
    const taken = await publish({ repo, bundle: bundles['1.2.0'] as string, trust: root2, channel: 'dev', writer: current });
    expect(taken.root).toEqual({ version: 2, taken: true });
    expect((await pull({ repo, channel: 'dev', trust: root2, out })).version).toBe('1.2.0');
    expect((await pull({ repo, channel: 'dev', trust: root1, out })).version).toBe('1.2.0');
    expect((await channels({ repo, trust: root2 })).channels.find((c) => c.name === 'dev')?.version).toBe('1.2.0');
  }); // prettier-ignore

  it.skipIf(skip)(
    'a new repository made with a bundle that carries root-2 starts at root-2',
    async () => {
      const repo = await place(`fresh${++n}`);
      expect(
        await codeOf(() =>
          publish({ repo, bundle: bundles['1.2.0'] as string, trust: root1, writer: old }),
        ),
      ).toBe('E_KEY_INVALID');
      const made = await publish({
        repo,
        bundle: bundles['1.2.0'] as string,
        trust: root1,
        writer: current,
      });
      expect(made.root).toEqual({ version: 2, taken: false });
      expect((await history({ repo, verify: true })).verified).toBe(true);
      // The root it was made with still works: the config keeps the roots from it to root-2.
      const out = await tempDir();
      expect((await pull({ repo, version: '1.2.0', trust: root1, out })).version).toBe('1.2.0');
      // Without them, root-1 no longer finds its way to the repository's root.
      const store = await storeOf(repo);
      try {
        const config = await readConfig(store);
        expect(config.chain).toHaveLength(1);
        await plantDocument(store, 'config', TAGS.config, { ...config, chain: undefined }, []);
      } finally {
        store.close?.();
      }
      expect(await codeOf(() => pull({ repo, version: '1.2.0', trust: root1, out }))).toBe(
        'E_REPO_TRUST',
      );
      expect((await pull({ repo, version: '1.2.0', trust: root2, out })).version).toBe('1.2.0');
    },
  );
});
