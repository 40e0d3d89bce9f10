import { createPrivateKey } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { keySigner } from '../../builder/signing.js';
import type { FerryError } from '../../manifest-schema/errors.js';
import { generateEd25519 } from '../../manifest-schema/keys.js';
import type { AuditEvent } from '../../repository/documents.js';
import { approve, history, promote, publish, pull, type Writer } from '../../repository/model.js';
import { DirectoryStore } from '../../repository/store-dir.js';
import { TAGS, type Store } from '../../repository/store.js';
import { codeOf, tempDir } from '../helpers.js';
import { plantDocument, rotationFixture } from './rotation-fixture.js';

/**
 * Attacks on a repository's trust-root rotation by someone who can write its
 * storage and holds the key root-2 revoked (ci-1). Directory backend.
 */

let dir: string;
let root1: string;
let root2: string;
let bundles: Record<string, string>;
let old: Writer;
let current: Writer;

beforeAll(async () => {
  ({ dir, root1, root2, bundles, old, current } = await rotationFixture('ferry-repo-redteam-'));
}, 300_000);

/** Puts `event` under its tag, signed by `writer`, as someone with the storage's keys would. */
function plant(store: Store, event: AuditEvent, writer: Writer): Promise<void> {
  return plantDocument(store, 'event', TAGS.event(event.seq), event, writer.keys);
}

describe('a thief of a revoked key with write access to the storage', () => {
  it('cannot rewrite the events before a rotation whose event it removed', async () => {
    const repo = join(await tempDir('ferry-rt-'), 'pending');
    await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, writer: old });
    await publish({ repo, bundle: bundles['1.2.0'] as string, writer: current });
    const events = (await history({ repo })).events;
    const publish2 = events.find((event) => event.seq === 2) as AuditEvent & { digest: string };
    // The thief cuts the log back to before the trust event (as a publish stopped there
    // would have left it), then rewrites event 2 with ci-1: valid under root-1's keys.
    const store = await DirectoryStore.open(repo, false);
    for (const seq of [4, 3]) await store.deleteRef(TAGS.event(seq));
    await store.deleteRef(TAGS.version('1.2.0'));
    const { digest: _digest, ...original } = publish2;
    await plant(store, { ...original, actor: 'mallory', time: '2026-12-31T00:00:00.000Z' }, old);
    // The trust document, signed by ci-2, says root-2 counts from event 3; event 2 is the
    // one it was written after, and the thief's is another.
    expect(await codeOf(() => history({ repo, verify: true }))).toBe('E_AUDIT_BROKEN');
    const refused = await approve({ repo, version: '1.0.0', to: 'beta', by: 'qa', evidence: [], writer: current })
      .catch((error: unknown) => error as FerryError);
    expect(refused).toMatchObject({ code: 'E_AUDIT_BROKEN', details: { reference: TAGS.event(2) } });
    expect((refused as FerryError).message).toContain('the trust document took trust root version 2 after event 2');
    expect((await history({ repo })).events.length).toBe(2);
  }); // prettier-ignore

  it('a rollback past the rotation is caught by --trust root-2, not by the repository', async () => {
    const repo = join(await tempDir('ferry-rt-'), 'rollback');
    await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, writer: old });
    await publish({ repo, bundle: bundles['1.2.0'] as string, writer: current });
    const store = await DirectoryStore.open(repo, false);
    for (const seq of [4, 3]) await store.deleteRef(TAGS.event(seq));
    await store.deleteRef(TAGS.version('1.2.0'));
    await store.deleteRef(TAGS.trust);
    // A repository at root-1 again, consistently: ci-1 writes there.
    expect((await history({ repo, verify: true })).verified).toBe(true);
    await approve({ repo, version: '1.0.0', to: 'beta', by: 'qa', evidence: [], writer: old });
    expect(await codeOf(() => pull({ repo, version: '1.0.0', trust: root2, out: dir }))).toBe('E_REPO_TRUST');
  }); // prettier-ignore
});

describe('a writer that decided before a rotation another writer made meanwhile', () => {
  it('is told the root changed meanwhile and its key was dropped, not that the repository was tampered with', async () => {
    const repo = join(await tempDir('ferry-rt-'), 'race');
    await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, writer: old });
    const late: Writer = {
      ...old,
      beforeWrite: () =>
        publish({ repo, bundle: bundles['1.2.0'] as string, writer: current }).then(() => undefined),
    };
    const refused = await approve({ repo, version: '1.0.0', to: 'beta', by: 'qa', evidence: [], writer: late })
      .catch((error: unknown) => error as FerryError);
    // Decided again, with the root taken meanwhile: the key it dropped is named.
    expect((refused as FerryError).code).toBe('E_REPO_CONFLICT');
    expect((refused as FerryError).message).toMatch(/gained event 3 .*follows trust root version 2, which no longer lists key/);
    expect((await history({ repo, verify: true })).events.map((event) => event.op)).toEqual(['publish', 'trust', 'publish', 'create']);
  }); // prettier-ignore

  it('with a repository key, goes on, and leaves no lock behind', async () => {
    const repo = join(await tempDir('ferry-rt-'), 'race-repo-key');
    const repoKey = generateEd25519();
    const signer: Writer = { actor: 'alice', ci: null, keys: [keySigner(createPrivateKey(repoKey.privatePem))] };
    await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, repoKeys: [repoKey.publicPem], writer: old });
    const late: Writer = {
      ...signer,
      beforeWrite: async () => {
        await publish({ repo, bundle: bundles['1.2.0'] as string, writer: current });
        await approve({ repo, version: '1.2.0', to: 'beta', by: 'qa', evidence: [], writer: signer });
      },
    };
    const result = await approve({ repo, version: '1.0.0', to: 'beta', by: 'bob', evidence: [], writer: late })
      .catch((error: unknown) => error as FerryError);
    const locked = await stat(join(repo, 'ferry', 'lock')).then(() => true, () => false);
    expect(locked).toBe(false);
    expect(result).not.toBeInstanceOf(Error);
    expect((await history({ repo, verify: true })).events.map((event) => event.op)).toEqual([
      'approve', 'approve', 'publish', 'trust', 'publish', 'create',
    ]);
  }); // prettier-ignore
});

describe('a trust document replaced behind Ferry’s back', () => {
  it('is named, with a hint that does not send the reader to history --verify, which refuses it too', async () => {
    const repo = join(await tempDir('ferry-rt-'), 'forged-trust');
    await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, writer: old });
    await publish({ repo, bundle: bundles['1.2.0'] as string, writer: current });
    const store = await DirectoryStore.open(repo, false);
    const held = await store.readRef(TAGS.trust);
    // The thief's own: the roots the real one holds, signed by ci-1, root-2's era moved far off.
    const layer = (JSON.parse(held?.bytes.toString() ?? '{}') as { layers: Array<{ digest: string; size: number }> }).layers[0];
    const real = (await store.readBlob(layer?.digest ?? '', layer?.size ?? 0)).toString();
    const doc = JSON.parse(Buffer.from((JSON.parse(real) as { payload: string }).payload, 'base64').toString()) as Record<string, unknown>;
    await plantDocument(store, 'trust', TAGS.trust, { ...doc, eras: [{ ...(doc.eras as object[])[0], seq: 99 }] }, old.keys);
    // Nothing reads the repository any more, history --verify included: the hint says what to do.
    for (const command of [() => pull({ repo, version: '1.2.0', out: dir }), () => history({ repo, verify: true })]) {
      const refused = await command().catch((error: unknown) => error as FerryError);
      expect(refused).toMatchObject({ code: 'E_REPO_INVALID', details: { reference: TAGS.trust } });
      expect((refused as FerryError).message).toContain(`${repo}: the trust document carries no valid signature`);
      expect((refused as FerryError).hint).toContain('restored from a backup');
      expect((refused as FerryError).hint).not.toContain('history --verify');
    }
  }); // prettier-ignore
});

describe('a careless operator', () => {
  it('who publishes the bundle that rotates with the key it revokes is told the root is being taken', async () => {
    const repo = join(await tempDir('ferry-rt-'), 'careless');
    await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, writer: old });
    const refused = await publish({ repo, bundle: bundles['1.2.0'] as string, writer: old })
      .catch((error: unknown) => error as FerryError);
    expect((refused as FerryError).code).toBe('E_KEY_REVOKED');
    expect((refused as FerryError).message).toContain(`${repo} takes trust root version 2 from this bundle`);
    expect((refused as FerryError).hint).toContain('trust root version 2');
    expect((await history({ repo })).events.length).toBe(2);
  }); // prettier-ignore
});

describe('what the thief planted with the key before the rotation revoked it', () => {
  // The rotation pins the policy that stands, recorded or not; promote still checks it against the log.
  it('does not count for promote when no event records it', async () => {
    const repo = join(await tempDir('ferry-rt-'), 'planted');
    await publish({ repo, bundle: bundles['1.0.0'] as string, trust: root1, channel: 'dev', writer: old });
    // The leaked ci-1 is still trusted: the thief stores a policy that needs no approval.
    const store = await DirectoryStore.open(repo, false);
    const lax = { formatVersion: 1, channels: { dev: {}, beta: {}, stable: {} }, edges: [['dev', 'beta'], ['beta', 'stable']] };
    await plantDocument(store, 'policy', TAGS.policy, lax, old.keys);
    // The key holders rotate ci-1 out; the policy still stands, pinned by digest.
    await publish({ repo, bundle: bundles['1.2.0'] as string, channel: 'dev', writer: current });
    const result = await promote({ repo, version: '1.2.0', to: 'beta', writer: current }).catch((error: unknown) => error as FerryError);
    expect(result).toMatchObject({ code: 'E_REPO_INVALID' });
    expect((result as FerryError).message).toContain('but the log sets none');
  }); // prettier-ignore
});
