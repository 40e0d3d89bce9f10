import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { FerryError } from '../../manifest-schema/errors.js';
import { channels, history, publish, type Writer } from '../../repository/model.js';
import { RegistryClient } from '../../repository/oci/client.js';
import { RegistryStore } from '../../repository/store-registry.js';
import { conflict, TAGS } from '../../repository/store.js';
import { trustRoots, type KeyFiles } from '../helpers.js';
import { rotationFixture } from './rotation-fixture.js';
import { registryMissing, startRegistry, type Registry } from './oci/registry.js';

/**
 * Two publishes that take the same newer trust root at once, on a registry,
 * signed by two release keys of it: their trust documents differ in bytes, and
 * the repository must end with the one its trust event records.
 *   root-1: targets key ci-1;  root-2: ci-1 revoked, ci-2 and ci-3 added.
 */

let root1: string;
let bundles: Record<'1.0.0' | 'a' | 'b', string>;
let old: Writer;
let writerA: Writer;
let writerB: Writer;
let registry: Registry | undefined;

beforeAll(async () => {
  if (registryMissing) return;
  const made = await rotationFixture('ferry-repo-race-', 'ci-3');
  const keys = made.keys as Record<'alice' | 'ci-1' | 'ci-2' | 'ci-3', KeyFiles>;
  const chain = join(made.dir, 'chain-two');
  [root1] = (await trustRoots(chain, [keys.alice], keys['ci-1'], [
    ['--revoke-targets-key', 'ci-1', '--add-targets-key', keys['ci-2'].pub, '--add-targets-key', keys['ci-3'].pub],
  ])) as [string, string]; // prettier-ignore
  bundles = {
    '1.0.0': made.bundles['1.0.0'],
    a: await made.build('1.2.0', keys['ci-2'], 'race-a', '--trust-chain', chain),
    b: await made.build('1.3.0', keys['ci-3'], 'race-b', '--trust-chain', chain),
  };
  old = made.old;
  writerA = await made.writerOf(keys['ci-2'], 'ci-a');
  writerB = await made.writerOf(keys['ci-3'], 'ci-b');
  registry = await startRegistry();
}, 300_000);

afterAll(async () => registry?.stop());
afterEach(() => vi.restoreAllMocks());

describe.skipIf(registryMissing)('two publishes rotating a registry repository at once', () => {
  it('leave the trust document their trust event records; the loser reruns', async () => {
    const repo = registry?.reference('acme/race') ?? '';
    await publish({ repo, bundle: bundles['1.0.0'], trust: root1, channel: 'dev', writer: old });
    // The trust document's puts are held so that both writers have read and checked the
    // tag before either moves it, and the second moves it only once the first is done:
    // the widest interleaving a registry without conditional writes allows. A writer
    // that never gets that far is let through after a while.
    let arrived = 0;
    let bothArrived = () => {};
    const both = new Promise<void>((resolve) => (bothArrived = resolve));
    let oneDone = () => {};
    const firstDone = new Promise<void>((resolve) => (oneDone = resolve));
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called on its own client below
    const put = RegistryClient.prototype.putManifest;
    vi.spyOn(RegistryClient.prototype, 'putManifest').mockImplementation(async function (
      this: RegistryClient,
      reference: string,
      bytes: Uint8Array,
      mediaType: string,
    ) {
      if (reference === TAGS.trust) {
        if (++arrived === 1) await Promise.race([both, firstDone, sleep(3000)]);
        else {
          bothArrived();
          await firstDone;
        }
      }
      return put.call(this, reference, bytes, mediaType);
    });
    const outcomes = await Promise.all(
      [
        publish({ repo, bundle: bundles.a, channel: 'dev', writer: writerA }),
        publish({ repo, bundle: bundles.b, channel: 'dev', writer: writerB }),
      ].map((attempt) =>
        attempt
          .then(
            (result) => ({ result, error: undefined }),
            (error: unknown) => ({ result: undefined, error }),
          )
          .finally(oneDone),
      ),
    );
    vi.restoreAllMocks();
    const won = outcomes.filter((outcome) => outcome.result);
    const lost = outcomes.filter((outcome) => outcome.error);
    expect(won).toHaveLength(1);
    expect(won[0]?.result?.root).toEqual({ version: 2, taken: true });
    expect(lost).toHaveLength(1);
    expect(lost[0]?.error).toBeInstanceOf(FerryError);
    expect((lost[0]?.error as FerryError).code).toBe('E_REPO_CONFLICT');
    // The repository holds together: the trust document is the one the trust event recorded.
    const log = await history({ repo, verify: true });
    expect(log.verified).toBe(true);
    expect(log.events.filter((event) => event.op === 'trust')).toHaveLength(1);
    expect((await channels({ repo })).root).toBe(2);
    // The loser runs its command again, under the root the winner took.
    const loser = outcomes.indexOf(lost[0] as (typeof outcomes)[number]);
    const again = await publish({
      repo,
      bundle: loser === 0 ? bundles.a : bundles.b,
      channel: 'dev',
      writer: loser === 0 ? writerA : writerB,
    });
    expect(again.root).toEqual({ version: 2, taken: false });
    expect((await history({ repo, verify: true })).verified).toBe(true);
  }, 120_000);

  it('a rotation whose trust document moved meanwhile takes its claim back', async () => {
    const repo = registry?.reference('acme/moved') ?? '';
    await publish({ repo, bundle: bundles['1.0.0'], trust: root1, channel: 'dev', writer: old });
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called on its own store below
    const replace = RegistryStore.prototype.replaceRef;
    vi.spyOn(RegistryStore.prototype, 'replaceRef').mockImplementation(function (
      this: RegistryStore,
      ...args: Parameters<RegistryStore['replaceRef']>
    ) {
      if (args[0] === TAGS.trust) throw conflict(this, TAGS.trust, 'moved to sha256:…');
      return replace.apply(this, args);
    });
    const refused = await publish({ repo, bundle: bundles.a, writer: writerA }).catch(
      (error: unknown) => error,
    );
    vi.restoreAllMocks();
    expect((refused as FerryError).code).toBe('E_REPO_CONFLICT');
    const store = await RegistryStore.open(repo, false);
    try {
      // Left behind, it would hold every writer off for a minute.
      expect((await store.listRefs()).filter((tag) => tag.startsWith(TAGS.event(3)))).toEqual([]);
    } finally {
      store.close();
    }
    expect((await publish({ repo, bundle: bundles.a, writer: writerA })).root).toEqual({
      version: 2,
      taken: true,
    });
    expect((await history({ repo, verify: true })).verified).toBe(true);
  }, 60_000);
});
