import { execFile } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySigner, readPrivateKey } from '../../builder/signing.js';
import type { FerryError } from '../../manifest-schema/errors.js';
import { generateEd25519 } from '../../manifest-schema/keys.js';
import {
  approve,
  channels,
  gc,
  history,
  promote,
  publish,
  pull,
  setPolicy,
  showPolicy,
  type PublishResult,
  type Writer,
} from '../../repository/model.js';
import { DOC_TYPES, openDocument, sealDocument } from '../../repository/documents.js';
import {
  documentManifest,
  EMPTY_DESCRIPTOR,
  OCI_MANIFEST,
  type BuiltManifest,
  type Descriptor,
} from '../../repository/oci/artifact.js';
import { DirectoryStore } from '../../repository/store-dir.js';
import { RegistryStore } from '../../repository/store-registry.js';
import { TAGS } from '../../repository/store.js';
import { buildAll, codeOf, tempDir, workspace, type Workspace } from '../helpers.js';
import { startFaultProxy, type Dialect, type Fault, type FaultProxy } from './oci/proxy.js';
import { registryMissing, SKOPEO, startRegistry, type Registry } from './oci/registry.js';

/**
 * Every rule of the repository, once per backend: a directory, and a real
 * registry (Debian's docker-registry on loopback). Bundles are the fixture's,
 * built and signed by bin/ferry.
 */

let ws: Workspace;
let bundles: Record<string, string>;
let zip100: string;
let stranger: string;
let writer: Writer;
let registry: Registry | undefined;

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const at = (iso: string) => () => new Date(iso);

beforeAll(async () => {
  const dir = await tempDir('ferry-repo-');
  ws = await workspace(dir);
  bundles = await buildAll(ws, join(dir, 'out'), 'tar', ['1.0.0', '1.1.0', '1.2.0']);
  zip100 = (await buildAll(ws, join(dir, 'zip'), 'zip', ['1.0.0']))['1.0.0'] as string;
  // The same release signed by a key the repository does not trust.
  const other = await workspace(join(dir, 'other'));
  stranger = (await buildAll(other, join(dir, 'other', 'out'), 'tar', ['1.0.0']))[
    '1.0.0'
  ] as string;
  writer = {
    actor: 'ci',
    ci: 'https://ci.example/run/1',
    keys: [keySigner(await readPrivateKey(ws.key))],
  };
  if (!registryMissing) registry = await startRegistry();
}, 300_000);

afterAll(async () => registry?.stop());

const backends = [
  ['directory', async (name: string) => join(await tempDir('ferry-repo-dir-'), name)],
  [
    'registry',
    (name: string) => Promise.resolve(registry ? registry.reference(`acme/${name}`) : ''),
  ],
] as const;

describe.each(backends)('a bundle repository in a %s', (kind, place) => {
  const skip = kind === 'registry' ? registryMissing : undefined;
  let n = 0;
  /** A fresh repository holding 1.0.0 and 1.1.0 in dev. */
  async function repository(now = '2026-06-01T08:00:00Z'): Promise<string> {
    const repo = await place(`r${++n}`);
    await publish({
      repo,
      bundle: bundles['1.0.0'] as string,
      trust: ws.trust,
      channel: 'dev',
      writer: { ...writer, now: at(now) },
    });
    await publish({
      repo,
      bundle: bundles['1.1.0'] as string,
      channel: 'dev',
      writer: { ...writer, now: at(now) },
    });
    return repo;
  }
  const events = async (repo: string) => (await history({ repo })).events.length;

  it.skipIf(skip)(
    'publishes immutable versions: same bytes a no-op, other bytes refused before any write',
    async () => {
      const repo = await repository();
      const first = await publish({ repo, bundle: bundles['1.0.0'] as string, writer });
      expect(first.changed).toBe(false);
      expect(first.version).toBe('1.0.0');
      const before = await events(repo);
      let error: unknown;
      try {
        await publish({ repo, bundle: zip100, writer });
      } catch (caught) {
        error = caught;
      }
      expect((error as FerryError).code).toBe('E_VERSION_EXISTS');
      const zipSha = sha(await readFile(zip100));
      expect((error as FerryError).message).toContain(`sha256:${first.sha256}`);
      expect((error as FerryError).message).toContain(`sha256:${zipSha}`);
      expect(await events(repo)).toBe(before);
    },
  );

  /**
   * A publishes `mine` while B publishes `theirs`, the same version, whole: after A
   * read what it reads first and before A reads the audit head (a directory: the
   * writer's beforeHead; a registry: a proxy holds A's tag listing, which the head
   * is read from, until B is done). A settles; B's result is returned beside it.
   */
  async function publishedDuringHead(
    repo: string,
    mine: string,
    theirs: string,
  ): Promise<{ a: PublishResult | FerryError; b: PublishResult }> {
    let b: PublishResult | undefined;
    const other = async () => {
      b = await publish({ repo, bundle: theirs, writer: { ...writer, actor: 'b' } });
    };
    const settle = (p: Promise<PublishResult>) =>
      p.catch((caught: unknown) => caught as FerryError);
    const a =
      kind === 'directory'
        ? await settle(
            publish({ repo, bundle: mine, writer: { ...writer, actor: 'a', beforeHead: other } }),
          )
        : await throughProxy(
            repo,
            { faults: [{ method: 'GET', path: /\/tags\/list$/, heldFor: other }] },
            async (proxied, proxy) => {
              const settled = await settle(
                publish({ repo: proxied, bundle: mine, writer: { ...writer, actor: 'a' } }),
              );
              expect(proxy.fired).toHaveLength(1);
              return settled;
            },
          );
    if (!b) throw new Error('B never published');
    return { a, b };
  }

  /** The digest the version's tag points at. */
  async function versionDigest(repo: string, version: string): Promise<string | undefined> {
    const store = await (kind === 'directory'
      ? DirectoryStore.open(repo, false)
      : RegistryStore.open(repo, false));
    try {
      return (await store.readRef(TAGS.version(version)))?.digest;
    } finally {
      if ('close' in store) store.close();
    }
  }

  it.skipIf(skip)(
    'a version published by another writer just before the audit head is read is not published again: other bytes refused, the tag and the log keep its bytes alone',
    async () => {
      const repo = await place(`r${++n}`);
      await publish({ repo, bundle: bundles['1.1.0'] as string, trust: ws.trust, writer });
      const { a, b } = await publishedDuringHead(repo, zip100, bundles['1.0.0'] as string);
      expect(b.changed).toBe(true);
      expect(a).toBeInstanceOf(Error);
      expect(['E_VERSION_EXISTS', 'E_REPO_CONFLICT']).toContain((a as FerryError).code);
      expect(await versionDigest(repo, '1.0.0')).toBe(b.digest);
      const log = (await history({ repo, verify: true })).events;
      // Only B's publish of 1.0.0: A wrote no event.
      expect(log.filter((e) => e.subject.version === '1.0.0').map((e) => e.actor)).toEqual(['b']);
    },
  );

  it.skipIf(skip)(
    'the same bytes published by another writer just before the audit head is read: a no-op, one publish event, the log verifies',
    async () => {
      const same = await place(`r${++n}`);
      await publish({ repo: same, bundle: bundles['1.1.0'] as string, trust: ws.trust, writer });
      const again = await publishedDuringHead(
        same,
        bundles['1.0.0'] as string,
        bundles['1.0.0'] as string,
      );
      expect(again.b.changed).toBe(true);
      if (again.a instanceof Error) expect(again.a.code).toBe('E_REPO_CONFLICT');
      else expect(again.a).toMatchObject({ changed: false, digest: again.b.digest });
      expect(await versionDigest(same, '1.0.0')).toBe(again.b.digest);
      const sameLog = (await history({ repo: same, verify: true })).events;
      expect(sameLog.filter((e) => e.subject.version === '1.0.0').map((e) => e.actor)).toEqual([
        'b',
      ]);
    },
  );

  it.skipIf(skip)(
    "a publish whose version is the head's publish, its tag not written (that publish stopped there): other bytes refused, the same bytes complete it",
    async () => {
      const repo = await place(`r${++n}`);
      await publish({ repo, bundle: bundles['1.1.0'] as string, trust: ws.trust, writer });
      const stopped = await publish({ repo, bundle: bundles['1.0.0'] as string, writer });
      const store = await (kind === 'directory'
        ? DirectoryStore.open(repo, false)
        : RegistryStore.open(repo, false));
      // Where a publish killed after its event and before its tag leaves the repository.
      await store.deleteRef(TAGS.version('1.0.0'));
      if ('close' in store) store.close();
      const other = await publish({ repo, bundle: zip100, writer }).catch(
        (caught: unknown) => caught as FerryError,
      );
      expect(other).toMatchObject({ code: 'E_VERSION_EXISTS' });
      expect((other as FerryError).message).toContain(`as ${stopped.digest}`);
      expect(await versionDigest(repo, '1.0.0')).toBeUndefined();
      const rerun = await publish({ repo, bundle: bundles['1.0.0'] as string, writer });
      expect(rerun).toMatchObject({ changed: true, digest: stopped.digest });
      expect(await versionDigest(repo, '1.0.0')).toBe(stopped.digest);
      const log = (await history({ repo, verify: true })).events;
      expect(log.filter((e) => e.subject.version === '1.0.0').map((e) => e.subject.digest)).toEqual(
        [stopped.digest, stopped.digest],
      );
    },
    30_000,
  );

  it.skipIf(kind === 'directory' || skip)(
    'a publish of a version another writer is publishing, between its event and its tag: other bytes refused, same bytes a no-op once the tag lands',
    async () => {
      const repo = await place(`r${++n}`);
      await publish({ repo, bundle: bundles['1.1.0'] as string, trust: ws.trust, writer });
      const versionPut = /\/manifests\/1\.0\.0$/;
      // B's tag held until A has decided and settled.
      let a: Promise<PublishResult | FerryError> | undefined;
      const b = await throughProxy(
        repo,
        {
          faults: [
            {
              method: 'PUT',
              path: versionPut,
              heldFor: () => {
                a = publish({ repo, bundle: zip100, writer: { ...writer, actor: 'a' } }).catch(
                  (caught: unknown) => caught as FerryError,
                );
                return a;
              },
            },
          ],
        },
        (proxied) =>
          publish({
            repo: proxied,
            bundle: bundles['1.0.0'] as string,
            writer: { ...writer, actor: 'b' },
          }),
      );
      expect(await a).toMatchObject({ code: 'E_VERSION_EXISTS' });
      expect(await versionDigest(repo, '1.0.0')).toBe(b.digest);
      const log = (await history({ repo, verify: true })).events;
      expect(log.filter((e) => e.subject.version === '1.0.0').map((e) => e.actor)).toEqual(['b']);

      // The same bytes: A reads the version's tag once B's event is the head, and B's tag
      // lands as A first finds it missing. A waits for it and changes nothing.
      const same = await place(`r${++n}`);
      await publish({ repo: same, bundle: bundles['1.1.0'] as string, trust: ws.trust, writer });
      let release: () => void = () => undefined;
      const released = new Promise<void>((resolve) => (release = resolve));
      let again: Promise<PublishResult> | undefined;
      const first = await throughProxy(
        same,
        {
          faults: [
            {
              method: 'PUT',
              path: versionPut,
              heldFor: () => {
                again = throughProxy(
                  same,
                  {
                    faults: [
                      {
                        method: 'GET',
                        path: versionPut,
                        heldFor: () => {
                          release();
                          return Promise.resolve();
                        },
                      },
                    ],
                  },
                  (proxied) =>
                    publish({
                      repo: proxied,
                      bundle: bundles['1.0.0'] as string,
                      writer: { ...writer, actor: 'a' },
                    }),
                );
                again.catch(() => undefined);
                return released;
              },
            },
          ],
        },
        (proxied) =>
          publish({
            repo: proxied,
            bundle: bundles['1.0.0'] as string,
            writer: { ...writer, actor: 'b' },
          }),
      );
      expect(await again).toMatchObject({ changed: false, digest: first.digest });
      const sameLog = (await history({ repo: same, verify: true })).events;
      expect(sameLog.filter((e) => e.subject.version === '1.0.0').map((e) => e.actor)).toEqual([
        'b',
      ]);
    },
    30_000,
  );

  it.skipIf(skip)(
    'a policy set by another writer just before promote reads the audit head is the one promote judges by, not an older one put back',
    async () => {
      const repo = await repository();
      const policy = (keep: number) => ({
        formatVersion: 1,
        channels: { dev: { keep }, beta: { approvals: 0 }, stable: { approvals: 1 } },
        edges: [
          ['dev', 'beta'],
          ['beta', 'stable'],
        ],
      });
      await setPolicy({ repo, policy: policy(3), file: 'one.yaml', writer });
      let set = false;
      const beforeHead = async () => {
        await setPolicy({ repo, policy: policy(4), file: 'two.yaml', writer });
        set = true;
      };
      const promoted = await promote({
        repo,
        version: '1.1.0',
        to: 'beta',
        writer: { ...writer, beforeHead },
      });
      expect(set).toBe(true);
      expect(promoted.verdict).toBe('promoted');
      const [last, before] = (await history({ repo, verify: true })).events;
      expect(last?.op).toBe('promote');
      expect(before).toMatchObject({ op: 'policy', actor: writer.actor });
      expect((await showPolicy({ repo })).policy.channels.dev).toEqual({ keep: 4 });
    },
  );

  it.skipIf(skip)(
    'refuses a bundle the trust root does not accept, and an unknown repository',
    async () => {
      const repo = await repository();
      const before = await events(repo);
      expect(await codeOf(() => publish({ repo, bundle: stranger, writer }))).toBe('E_SIGNATURE');
      expect(await events(repo)).toBe(before);
      const nowhere = await place('never-made');
      expect(await codeOf(() => channels({ repo: nowhere }))).toBe('E_REPO_NOT_FOUND');
      // Refused on the first publish, which would have made the repository: nothing is made.
      expect(
        await codeOf(() => publish({ repo: nowhere, bundle: stranger, trust: ws.trust, writer })),
      ).toBe('E_SIGNATURE');
      expect(await codeOf(() => channels({ repo: nowhere }))).toBe('E_REPO_NOT_FOUND');
      if (kind === 'directory') expect(await readdir(nowhere).catch(() => 'absent')).toBe('absent');
    },
  );

  /**
   * Runs `command` on the registry's repository through a fault proxy holding
   * each of `held` until the request it names arrives: proof of concurrency
   * without timing, since a command asking one at a time never sends it. Every
   * hold must have been released (a held request that waits in vain is
   * answered 400 after 5 s, which fails the command).
   */
  async function throughHolds<T>(
    repo: string,
    held: Fault[],
    command: (proxied: string) => Promise<T>,
  ): Promise<T> {
    return throughProxy(repo, { faults: held }, async (proxied, proxy) => {
      const result = await command(proxied);
      expect(proxy.fired).toHaveLength(held.length);
      return result;
    });
  }

  /** Two promotions of 1.1.0 into beta that decide on the same head, then write at the same moment. */
  function promotionsAtOnce(repo: string): Promise<PromiseSettledResult<unknown>[]> {
    let arrived = 0;
    let go: () => void = () => undefined;
    const together = new Promise<void>((resolve) => (go = resolve));
    const beforeWrite = async () => {
      if (++arrived === 2) go();
      await together;
    };
    const promotion = (actor: string) =>
      promote({ repo, version: '1.1.0', to: 'beta', writer: { ...writer, actor, beforeWrite } });
    return Promise.allSettled([promotion('one'), promotion('two')]);
  }

  /** Runs `command` on the registry's repository (a reference, or a name in it) through a fault proxy. */
  async function throughProxy<T>(
    repo: string,
    { faults = [], dialect = {} }: { faults?: Fault[]; dialect?: Dialect },
    command: (proxied: string, proxy: FaultProxy) => Promise<T>,
  ): Promise<T> {
    const proxy = await startFaultProxy((registry as Registry).host, faults, dialect);
    try {
      return await command(proxy.reference(repo.replace(/^oci:\/\/[^/]+\//, '')), proxy);
    } finally {
      await proxy.stop();
    }
  }

  it.skipIf(kind === 'directory' || skip)(
    'pull asks for the config, the policy, the channel and the first event at once, and each layer as its manifest comes',
    async () => {
      const repo = await repository();
      const holds: Fault[] = [
        // Released by a document's layer, asked for before the config is answered.
        { method: 'GET', path: /\/manifests\/ferry\.config$/, heldUntil: /\/blobs\/sha256:/ },
        { method: 'GET', path: /\/manifests\/ferry\.policy$/, heldUntil: /\/ferry\.channel\.dev$/ },
        {
          method: 'GET',
          path: /\/manifests\/ferry\.channel\.dev$/,
          heldUntil: /\/manifests\/ferry\.audit\.00000001$/,
        },
      ];
      const out = await tempDir('ferry-pull-');
      const stateDir = await tempDir('ferry-state-');
      const pulled = await throughHolds(repo, holds, (proxied) =>
        pull({ repo: proxied, channel: 'dev', out, stateDir }),
      );
      expect(pulled.version).toBe('1.1.0');
    },
  );

  // Each document a write stores was four requests one after another: asked
  // about, then POST, PATCH and PUT, with the empty config asked about before it.
  it.skipIf(kind === 'directory' || skip)(
    'a write stores each document in two requests, beside the question about the empty config',
    async () => {
      const repo = await repository();
      const empty = `/blobs/${EMPTY_DESCRIPTOR.digest}`;
      await throughProxy(
        repo,
        // The empty config's HEAD answered only once a document's upload has started.
        {
          faults: [
            { method: 'HEAD', path: new RegExp(`${empty}$`), heldUntil: /\/blobs\/uploads\/$/ },
          ],
        },
        async (proxied, proxy) => {
          await approve({
            repo: proxied,
            version: '1.1.0',
            to: 'beta',
            by: 'alice',
            evidence: [],
            writer,
          });
          expect(proxy.fired).toHaveLength(1);
          const blobRequests = proxy.requests.filter((r) => r.path.includes('/blobs/'));
          // The approval and its event: each one POST and one PUT, asked nothing about.
          expect(
            blobRequests.filter((r) => r.method === 'HEAD' && !r.path.endsWith(empty)),
          ).toEqual([]);
          expect(blobRequests.filter((r) => r.method === 'POST')).toHaveLength(2);
          expect(blobRequests.filter((r) => r.method === 'PATCH')).toEqual([]);
        },
      );
    },
  );

  it.skipIf(kind === 'directory' || skip)(
    'channels asks for the policy with the config, lists the tags beside it, and reads the channels several at once',
    async () => {
      const repo = await repository();
      const listed = await throughHolds(
        repo,
        [
          { method: 'GET', path: /\/manifests\/ferry\.policy$/, heldUntil: /\/tags\/list/ },
          {
            method: 'GET',
            path: /\/manifests\/ferry\.channel\.dev$/,
            heldUntil: /\/manifests\/ferry\.channel\.stable$/,
          },
        ],
        (proxied) => channels({ repo: proxied }),
      );
      expect(listed.channels.map((c) => [c.name, c.version])).toEqual([
        ['dev', '1.1.0'],
        ['beta', null],
        ['stable', null],
      ]);
    },
  );

  it.skipIf(kind === 'directory' || skip)(
    'channels asks for at most eight channels at once, however many channel tags there are',
    async () => {
      const repo = await repository();
      // Forty more channel tags, each a copy of dev's document (so each is refused).
      const store = await RegistryStore.open(repo, false);
      const dev = (await store.readRef(TAGS.channel('dev'))) as { bytes: Buffer };
      const { mediaType } = JSON.parse(dev.bytes.toString('utf8')) as { mediaType: string };
      for (let k = 0; k < 40; k++)
        await store.client.putManifest(
          TAGS.channel(`c${String(k).padStart(2, '0')}`),
          dev.bytes,
          mediaType,
        );
      const first = (await store.listRefs()).find((tag) => /^ferry\.channel\.c/.test(tag));
      store.close();
      await throughProxy(repo, {}, async (proxied, proxy) => {
        const error = await channels({ repo: proxied }).catch(
          (caught: unknown) => caught as FerryError,
        );
        // The first refused in order is the one named, as when they were read one at a time.
        expect((error as FerryError).message).toContain(
          `channel ${first?.slice('ferry.channel.'.length)} holds the document of channel dev`,
        );
        expect(proxy.mostAtOnce).toBeLessThanOrEqual(8);
      });
    },
  );

  it.skipIf(kind === 'directory' || skip)(
    'promote and gc refused at an event break off the events they asked for ahead of it',
    async () => {
      const repo = await repository();
      expect(await events(repo)).toBe(3);
      const commands = {
        promote: (at: string) => promote({ repo: at, version: '1.0.0', to: 'beta', writer }),
        gc: (at: string) => gc({ repo: at, writer }),
      };
      const faults: Fault[] = [
        { method: 'GET', path: /\/manifests\/ferry\.audit\.00000002$/, status: 400 },
        // The first read of event 3 is the head's; the second, asked ahead, never answered.
        {
          method: 'GET',
          path: /\/manifests\/ferry\.audit\.00000003$/,
          nth: 2,
          neverAnswered: true,
        },
      ];
      for (const [name, command] of Object.entries(commands))
        await throughProxy(repo, { faults }, async (at, proxy) => {
          expect(await codeOf(() => command(at)), name).toBe('E_REGISTRY');
          expect(proxy.fired, name).toHaveLength(2);
          // Left open, it would hold the process for the registry's timeouts (minutes).
          for (let wait = 0; wait < 30 && proxy.brokenOff.length === 0; wait++)
            await new Promise((resolve) => setTimeout(resolve, 100));
          expect(proxy.brokenOff, name).toEqual([
            expect.stringMatching(/\/manifests\/ferry\.audit\.00000003$/),
          ]);
        });
    },
  );

  it.skipIf(kind === 'directory' || skip)(
    'history reads the log several events at once, in order',
    async () => {
      const repo = await repository();
      const read = await throughHolds(
        repo,
        [
          {
            method: 'GET',
            path: /\/manifests\/ferry\.audit\.00000001$/,
            heldUntil: /\/manifests\/ferry\.audit\.00000003$/,
          },
        ],
        (proxied) => history({ repo: proxied, verify: true }),
      );
      expect(read.events.map((e) => e.seq)).toEqual([3, 2, 1]);
    },
  );

  it.skipIf(kind === 'directory' || skip)(
    'a publish into a channel with no document yet reads the log several events at once',
    async () => {
      const repo = await place(`r${++n}`);
      await publish({ repo, bundle: bundles['1.0.0'] as string, trust: ws.trust, writer });
      await publish({ repo, bundle: bundles['1.1.0'] as string, writer });
      // Events 4 to 6, so that the head (6) is read before events 4 and 5 are.
      for (const by of ['alice', 'bob', 'carol'])
        await approve({ repo, version: '1.0.0', to: 'beta', by, evidence: [], writer });
      // Dev was never moved, or its document was deleted: only the whole log tells.
      const published = await throughHolds(
        repo,
        [
          {
            method: 'GET',
            path: /\/manifests\/ferry\.audit\.00000004$/,
            heldUntil: /\/manifests\/ferry\.audit\.00000005$/,
          },
        ],
        (proxied) =>
          publish({ repo: proxied, bundle: bundles['1.2.0'] as string, channel: 'dev', writer }),
      );
      expect(published).toMatchObject({ version: '1.2.0', channel: 'dev' });
      // Its document deleted behind Ferry's back, dev is caught all the same.
      const store = await RegistryStore.open(repo, false);
      const doc = await store.readRef(TAGS.channel('dev'));
      await store.client.deleteManifest(doc?.digest as string);
      const refused = await publish({
        repo,
        bundle: bundles['1.1.0'] as string,
        channel: 'dev',
        writer,
      }).catch((caught: unknown) => caught as FerryError);
      expect(refused).toMatchObject({ code: 'E_CHANNEL_SET_BACK' });
      expect((refused as FerryError).message).toContain('channel dev holds nothing, but event 7');
    },
  );

  it.skipIf(kind === 'directory' || skip)(
    'history --verify reads the approvals several at once too',
    async () => {
      const repo = await repository();
      for (const by of ['alice', 'bob', 'carol'])
        await approve({ repo, version: '1.1.0', to: 'beta', by, evidence: [], writer });
      const store = await RegistryStore.open(repo, false);
      const held = (await store.listRefs()).filter((tag) => tag.startsWith('ferry.approval.'));
      expect(held).toHaveLength(3);
      const path = (tag: string) => new RegExp(`/manifests/${tag.replace(/\./g, '\\.')}$`);
      const read = await throughHolds(
        repo,
        [{ method: 'GET', path: path(held[0] as string), heldUntil: path(held[2] as string) }],
        (proxied) => history({ repo: proxied, verify: true }),
      );
      expect(read.events.filter((e) => e.op === 'approve')).toHaveLength(3);
    },
  );

  it.skipIf(kind === 'directory' || skip)(
    'a document read ahead is answered once: the next read of its tag asks the registry again',
    async () => {
      const repo = await repository();
      const store = await RegistryStore.open(repo, false);
      store.readAhead([TAGS.channel('dev')]);
      const before = await store.readRef(TAGS.channel('dev'));
      await publish({ repo, bundle: bundles['1.2.0'] as string, channel: 'dev', writer });
      const after = await store.readRef(TAGS.channel('dev'));
      expect(before?.digest).toMatch(/^sha256:/);
      expect(after?.digest).toMatch(/^sha256:/);
      expect(after?.digest).not.toBe(before?.digest);
    },
  );

  it.skipIf(skip)(
    'pulls by channel and by version, checked, and refuses a damaged blob',
    async () => {
      const repo = await repository();
      const out = await tempDir('ferry-pull-');
      const byChannel = await pull({ repo, channel: 'dev', out });
      expect(byChannel.version).toBe('1.1.0');
      expect(sha(await readFile(byChannel.bundle))).toBe(byChannel.sha256);
      expect(byChannel.sha256).toBe(sha(await readFile(bundles['1.1.0'] as string)));
      const byVersion = await pull({ repo, version: '1.0.0', out });
      expect(byVersion.channel).toBeNull();
      expect(await codeOf(() => pull({ repo, version: '9.9.9', out }))).toBe('E_UNKNOWN_VERSION');
      expect(await codeOf(() => pull({ repo, channel: 'stable', out }))).toBe('E_UNKNOWN_VERSION');

      // One byte of the stored bundle changed: refused, and nothing is left in the output folder.
      const blob =
        kind === 'directory'
          ? join(repo, 'blobs/sha256', byVersion.sha256)
          : (registry as Registry).blobPath(`sha256:${byVersion.sha256}`);
      const bytes = await readFile(blob);
      bytes.writeUInt8((bytes.at(-2) ?? 0) ^ 1, bytes.length - 2);
      await writeFile(blob, bytes);
      const fresh = await tempDir('ferry-pull-');
      const refused = await pull({ repo, version: '1.0.0', out: fresh }).then(
        () => undefined,
        (error: unknown) => error as FerryError,
      );
      expect(refused?.code).toBe('E_DIGEST_MISMATCH');
      // Named as the README says a refusal is: the repository, the version and the bundle's name.
      expect(refused?.message).toContain(
        `${repo}: version 1.0.0 (${basename(bundles['1.0.0'] as string)})`,
      );
      expect(await readdir(fresh)).toEqual([]);
      // A registry keeps one copy of a blob for all its repositories: put it back for the others.
      bytes.writeUInt8((bytes.at(-2) ?? 0) ^ 1, bytes.length - 2);
      await writeFile(blob, bytes);
    },
  );

  it.skipIf(skip)('lists channels with their versions and edges', async () => {
    const repo = await repository();
    const { channels: rows } = await channels({ repo });
    expect(rows.map((c) => [c.name, c.version, c.sequence, c.to])).toEqual([
      ['dev', '1.1.0', 2, ['beta']],
      ['beta', null, 0, ['stable']],
      ['stable', null, 0, []],
    ]);
  });

  it.skipIf(skip)(
    'promotes only when the policy holds, listing every unmet condition',
    async () => {
      const repo = await repository();
      // Not in the source channel, no approval, and no such edge: all three named at once.
      const blocked = await promote({ repo, version: '1.0.0', from: 'dev', to: 'stable', writer });
      expect(blocked.verdict).toBe('blocked');
      expect(blocked.excuses.map((e) => e.code).sort()).toEqual([
        'E_APPROVALS',
        'E_NOT_IN_CHANNEL',
        'E_PROMOTE_EDGE',
      ]);
      // The publisher approving their own release does not count.
      await approve({ repo, version: '1.1.0', to: 'beta', by: 'ci', evidence: [], writer });
      const self = await promote({ repo, version: '1.1.0', to: 'beta', writer });
      expect(self.excuses.map((e) => e.code)).toEqual(['E_APPROVALS']);
      const done = await promote({
        repo,
        version: '1.1.0',
        to: 'beta',
        approvedBy: 'alice',
        writer,
      });
      expect(done.verdict).toBe('promoted');
      expect((await promote({ repo, version: '1.1.0', to: 'beta', writer })).verdict).toBe(
        'unchanged',
      );
      const { channels: rows } = await channels({ repo });
      expect(rows.find((c) => c.name === 'beta')?.version).toBe('1.1.0');
    },
  );

  it.skipIf(skip)(
    'wants evidence, soak time and an open window when the policy says so',
    async () => {
      const repo = await repository('2026-06-01T08:00:00Z');
      const policyFile = join(await tempDir('ferry-policy-'), 'policy.yaml');
      await setPolicy({
        repo,
        file: policyFile,
        writer,
        policy: {
          formatVersion: 1,
          channels: {
            dev: {},
            beta: {
              approvals: 1,
              evidence: true,
              soakHours: 24,
              timeZone: 'UTC',
              allow: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00' }],
              deny: [{ days: ['wed'], start: '00:00', end: '23:59' }],
            },
          },
          edges: [['dev', 'beta']],
        },
      });
      const report = join(await tempDir('ferry-evidence-'), 'report.xml');
      await writeFile(report, '<testsuite failures="0"/>');
      // Monday 10:00, two hours after 1.1.0 entered dev, no evidence.
      const early = await promote({
        repo,
        version: '1.1.0',
        to: 'beta',
        approvedBy: 'alice',
        writer: { ...writer, now: at('2026-06-01T10:00:00Z') },
      });
      expect(early.excuses.map((e) => e.code).sort()).toEqual(['E_EVIDENCE', 'E_SOAK']);
      // Tuesday 18:00: soaked, evidence given, but after hours; and Wednesday is denied.
      const late = await promote({
        repo,
        version: '1.1.0',
        to: 'beta',
        approvedBy: 'alice',
        evidence: [report],
        writer: { ...writer, now: at('2026-06-02T18:00:00Z') },
      });
      expect(late.verdict).toBe('closed');
      expect(late.excuses.map((e) => e.code)).toEqual(['E_PROMOTION_WINDOW']);
      expect(late.opens).toBe('2026-06-04T09:00:00.000Z');
      const before = await events(repo);
      expect(before).toBe(4); // create, two publishes, the policy: refusals write nothing
      const reportBlob = join(repo, 'blobs/sha256', sha(await readFile(report)));
      if (kind === 'directory')
        expect(await readFile(reportBlob).catch(() => 'absent')).toBe('absent');
      const ok = await promote({
        repo,
        version: '1.1.0',
        to: 'beta',
        approvedBy: 'alice',
        evidence: [report],
        writer: { ...writer, now: at('2026-06-04T09:30:00Z') },
      });
      expect(ok.verdict).toBe('promoted');
      const log = (await history({ repo, verify: true })).events;
      expect(log.map((e) => e.op).slice(0, 2)).toEqual(['promote', 'approve']);
      expect(log[1]?.evidence[0]?.name).toBe('report.xml');
      if (kind === 'directory')
        expect((await readFile(reportBlob)).toString()).toContain('testsuite');
    },
  );

  it.skipIf(skip)('rolls a channel back only to a version it held, with a reason', async () => {
    const repo = await repository();
    expect(
      await codeOf(() => promote({ repo, version: '1.0.0', to: 'dev', rollback: true, writer })),
    ).toBe('E_USAGE');
    const never = await promote({
      repo,
      version: '1.0.0',
      to: 'beta',
      rollback: true,
      reason: 'x',
      writer,
    });
    expect(never.excuses.map((e) => e.code)).toEqual(['E_NOT_PREVIOUS']);
    const back = await promote({
      repo,
      version: '1.0.0',
      to: 'dev',
      rollback: true,
      reason: 'db migration loses rows',
      writer,
    });
    expect(back.verdict).toBe('rolled-back');
    const [last] = (await history({ repo })).events;
    expect(last?.op).toBe('rollback');
    expect(last?.subject.reason).toBe('db migration loses rows');
    const dev = (await history({ repo, channel: 'dev' })).events.map((e) => e.op);
    expect(dev).toEqual(['rollback', 'publish', 'publish']);
    expect((await channels({ repo })).channels[0]?.sequence).toBe(3);
  });

  it.skipIf(skip)(
    'verifies the audit chain and names the event whose byte was edited',
    async () => {
      const repo = await repository();
      await approve({ repo, version: '1.1.0', to: 'beta', by: 'alice', evidence: [], writer });
      const verified = await history({ repo, verify: true });
      expect(verified.events.map((e) => e.seq)).toEqual([4, 3, 2, 1]);
      const third = verified.events.find((e) => e.seq === 3);
      const blob =
        kind === 'directory'
          ? join(repo, 'blobs/sha256', (third?.digest ?? '').slice(7))
          : (registry as Registry).blobPath(third?.digest ?? '');
      const bytes = await readFile(blob);
      bytes.writeUInt8((bytes.at(40) ?? 0) ^ 1, 40);
      await writeFile(blob, bytes);
      let error: unknown;
      try {
        await history({ repo, verify: true });
      } catch (caught) {
        error = caught;
      }
      expect((error as FerryError).code).toBe('E_AUDIT_BROKEN');
      expect((error as FerryError).message).toContain('event 3 ');
      bytes.writeUInt8((bytes.at(40) ?? 0) ^ 1, 40);
      await writeFile(blob, bytes);
      expect((await history({ repo, verify: true })).verified).toBe(true);
    },
  );

  it.skipIf(skip)(
    'lets exactly one of two concurrent promotions win; the other changes nothing',
    async () => {
      const repo = await repository();
      await approve({ repo, version: '1.1.0', to: 'beta', by: 'alice', evidence: [], writer });
      const results = await promotionsAtOnce(repo);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost.map((r) => (r.reason as FerryError).code)).toEqual(['E_REPO_CONFLICT']);
      expect((lost[0]?.reason as FerryError).exitCode).toBe(5);
      const log = await history({ repo, verify: true });
      expect(log.events.filter((e) => e.op === 'promote')).toHaveLength(1);
    },
  );

  it.skipIf(skip)(
    'gc keeps what channels hold and the last K, and is a dry run unless told',
    async () => {
      const repo = await repository();
      await publish({ repo, bundle: bundles['1.2.0'] as string, channel: 'dev', writer });
      const dry = await gc({ repo, keep: 1, writer });
      expect(dry).toMatchObject({ keep: ['1.2.0'], remove: ['1.0.0', '1.1.0'], removed: false });
      expect((await pull({ repo, version: '1.0.0', out: await tempDir() })).version).toBe('1.0.0');
      const done = await gc({ repo, keep: 1, yes: true, writer });
      expect(done.removed).toBe(true);
      expect(await codeOf(() => pull({ repo, version: '1.0.0', out: '/tmp' }))).toBe(
        'E_UNKNOWN_VERSION',
      );
      const [last] = (await history({ repo, verify: true })).events;
      expect(last?.subject.removed).toEqual(['1.0.0', '1.1.0']);
      expect((await pull({ repo, channel: 'dev', out: await tempDir() })).version).toBe('1.2.0');
    },
  );

  it.skipIf(skip)(
    'a version gc removed refuses other bytes by its removed record; a new version reads the audit head, not the log',
    async () => {
      const repo = await repository();
      await gc({ repo, keep: 1, yes: true, writer });
      const store = await (kind === 'directory'
        ? DirectoryStore.open(repo, false)
        : RegistryStore.open(repo, false));
      // The record points at 1.0.0's publish event, which names its digest.
      const record = await store.readRef(TAGS.removed('1.0.0'));
      expect(record?.digest).toBe((await store.readRef(TAGS.event(2)))?.digest);
      if ('close' in store) store.close();
      const other = await publish({ repo, bundle: zip100, channel: 'dev', writer }).catch(
        (caught: unknown) => caught as FerryError,
      );
      expect((other as FerryError).code).toBe('E_VERSION_EXISTS');
      expect((other as FerryError).message).toContain('removed by gc at event 4');
      const event = (seq: number) => new RegExp(`/manifests/${TAGS.event(seq)}$`);
      if (kind === 'registry')
        await throughProxy(repo, {}, async (proxied, proxy) => {
          await publish({ repo: proxied, bundle: bundles['1.2.0'] as string, writer });
          const read = proxy.requests.filter(
            (r) => r.method === 'GET' && /\/manifests\/ferry\.audit\./.test(r.path),
          );
          // The head (event 4), and event 1 that vouches for the config: none of 2 and 3.
          expect(read.some((r) => event(4).test(r.path))).toBe(true);
          expect(read.filter((r) => event(2).test(r.path) || event(3).test(r.path))).toEqual([]);
        });
      else await publish({ repo, bundle: bundles['1.2.0'] as string, writer });
      expect((await history({ repo, verify: true })).events[0]?.op).toBe('publish');
    },
  );

  it.skipIf(kind === 'directory' || skip)(
    'promote reads the approvals the log records for its version, not every approval',
    async () => {
      const repo = await repository();
      const other = await approve({
        repo,
        version: '1.0.0',
        to: 'beta',
        by: 'bob',
        evidence: [],
        writer,
      });
      const mine = await approve({
        repo,
        version: '1.1.0',
        to: 'beta',
        by: 'alice',
        evidence: [],
        writer,
      });
      await throughProxy(repo, {}, async (proxied, proxy) => {
        const promoted = await promote({ repo: proxied, version: '1.1.0', to: 'beta', writer });
        expect(promoted.version).toBe('1.1.0');
        const read = proxy.requests
          .filter((r) => r.method === 'GET' && /\/manifests\/ferry\.approval\./.test(r.path))
          .map((r) => r.path.slice(r.path.lastIndexOf('/') + 1));
        expect(read).toEqual([TAGS.approval(mine.approval.slice(7, 31))]);
        expect(read).not.toContain(TAGS.approval(other.approval.slice(7, 31)));
      });
    },
  );

  it.skipIf(kind === 'directory' || skip)(
    'promote of a version just published reads the same few events however long the log before it',
    async () => {
      const repo = await place(`r${++n}`);
      await publish({ repo, bundle: bundles['1.0.0'] as string, trust: ws.trust, writer });
      const policy = (beta: number) => ({
        formatVersion: 1,
        channels: { dev: {}, beta: { approvals: beta }, stable: { approvals: 1 } },
        edges: [
          ['dev', 'beta'],
          ['beta', 'stable'],
        ],
      });
      const store = await RegistryStore.open(repo, false);
      await setPolicy({ repo, policy: policy(0), file: 'lax.yaml', writer });
      const lax = await store.readRef(TAGS.policy);
      // Set at the start and never since: promote finds it from the head, and reads it alone.
      await setPolicy({ repo, policy: policy(1), file: 'strict.yaml', writer });
      /** Events that move nothing: a year of approvals of another version. */
      const longer = async (count: number) => {
        for (let i = 0; i < count; i++)
          await approve({ repo, version: '1.0.0', to: 'stable', by: 'qa', evidence: [], writer });
      };
      /** A new version into dev, approved and promoted to beta: the promotion's reads of the log. */
      const promoted = async (version: string) => {
        await publish({ repo, bundle: bundles[version] as string, channel: 'dev', writer });
        await approve({ repo, version, to: 'beta', by: 'alice', evidence: [], writer });
        return throughProxy(repo, {}, async (proxied, proxy) => {
          const done = await promote({ repo: proxied, version, to: 'beta', writer });
          expect(done.verdict).toBe('promoted');
          return proxy.requests.filter(
            (r) => r.method === 'GET' && /\/manifests\/ferry\.audit\./.test(r.path),
          ).length;
        });
      };
      await longer(12);
      const short = await promoted('1.1.0');
      await longer(48);
      const long = await promoted('1.2.0');
      expect((await history({ repo })).events.length).toBe(70);
      // The head (twice: deciding and writing), eight events back, the policy's event.
      expect(short).toBeLessThanOrEqual(12);
      expect(long).toBe(short);
      // Read alone, the policy event still judges the policy document: an older one put back is refused.
      if (!lax) throw new Error('no policy stored');
      await store.replaceRef(
        TAGS.policy,
        {
          manifest: JSON.parse(lax.bytes.toString()) as BuiltManifest['manifest'],
          bytes: lax.bytes,
          digest: lax.digest,
          size: lax.bytes.length,
          mediaType: OCI_MANIFEST,
        },
        (await store.readRef(TAGS.policy))?.digest,
      );
      store.close();
      const refused = await promote({ repo, version: '1.2.0', to: 'stable', writer }).catch(
        (e: unknown) => e as FerryError,
      );
      expect(refused).toMatchObject({ code: 'E_REPO_INVALID' });
      expect((refused as FerryError).message).toMatch(/but event 4 set sha256:/);
      const verify = await history({ repo, verify: true }).catch((e: unknown) => e as FerryError);
      expect(verify).toMatchObject({ code: 'E_AUDIT_BROKEN' });
    },
    180_000,
  );

  it.skipIf(kind !== 'directory')(
    'a publish stopped between its event and the version tag, rerun by another writer: its first publisher still cannot approve its own release',
    async () => {
      const repo = await place(`r${++n}`);
      const bundle = bundles['1.0.0'] as string;
      await publish({ repo, bundle, trust: ws.trust, writer: { ...writer, actor: 'alice' } });
      // Where a publish killed after its event and before its tag leaves the repository.
      await (await DirectoryStore.open(repo, false)).deleteRef(TAGS.version('1.0.0'));
      await publish({ repo, bundle, channel: 'dev', writer: { ...writer, actor: 'bob' } });
      const [rerun] = (await history({ repo, verify: true })).events;
      expect(rerun).toMatchObject({ op: 'publish', actor: 'bob' });
      expect(rerun?.subject).not.toHaveProperty('first');
      await approve({ repo, version: '1.0.0', to: 'beta', by: 'alice', evidence: [], writer });
      const self = await promote({ repo, version: '1.0.0', to: 'beta', writer });
      expect(self.excuses.map((e) => e.code)).toEqual(['E_APPROVALS']);
    },
  );

  it.skipIf(kind !== 'directory')(
    'a publish marked `first` where Ferry could not have marked it (its version published just before, or stored since) is named by history --verify; one rerun after a stop with writes in between is not',
    async () => {
      /** Appends a publish event of `version` marked `first`, signed by a key of the repository and chained onto its head. */
      const forgeFirst = async (repo: string, version: string) => {
        const log = (await history({ repo })).events;
        const [head] = log;
        const published = log.find((e) => e.op === 'publish' && e.subject.version === version);
        if (!head || !published) throw new Error('nothing to forge after');
        const event = {
          seq: head.seq + 1,
          prev: head.digest,
          time: '2026-06-02T08:00:00Z',
          actor: 'mallory',
          ci: null,
          op: 'publish',
          subject: { version, digest: published.subject.digest, first: true },
          evidence: [],
          // A publish into no channel leaves the log's last policy and moves as they were.
          ...(head.last ? { last: head.last } : {}),
        };
        const store = await DirectoryStore.open(repo, false);
        const sealed = await sealDocument('event', event, writer.keys);
        await store.putBlob(sealed.bytes, sealed.digest, sealed.size);
        await store.createRef(
          TAGS.event(event.seq),
          documentManifest({ ...DOC_TYPES.event, document: sealed }),
        );
        return event.seq;
      };
      const verifyError = (repo: string) =>
        history({ repo, verify: true }).then(
          () => undefined,
          (e: unknown) => e as FerryError,
        );
      const bundle = bundles['1.0.0'] as string;
      const alice = { ...writer, actor: 'alice' };

      // Right after the version's publish: the head a publish would have read published it.
      const next = await place(`r${++n}`);
      await publish({ repo: next, bundle, trust: ws.trust, channel: 'dev', writer: alice });
      expect(await forgeFirst(next, '1.0.0')).toBe(3);
      // What it is for: promote takes mallory for the publisher, so alice's own approval counts.
      await approve({
        repo: next,
        version: '1.0.0',
        to: 'beta',
        by: 'alice',
        evidence: [],
        writer,
      });
      const promoted = await promote({ repo: next, version: '1.0.0', to: 'beta', writer });
      expect(promoted.verdict).toBe('promoted');
      const atOnce = await verifyError(next);
      expect(atOnce).toMatchObject({
        code: 'E_AUDIT_BROKEN',
        details: { reference: TAGS.event(3) },
      });
      expect(atOnce?.message).toContain(
        'event 3 says it is the first publish of 1.0.0, but event 2 published 1.0.0 just before it',
      );

      // Later, other writes in between: an approval of 1.0.0 shows its tag was there.
      const later = await place(`r${++n}`);
      await publish({ repo: later, bundle, trust: ws.trust, channel: 'dev', writer: alice });
      await approve({ repo: later, version: '1.0.0', to: 'beta', by: 'bob', evidence: [], writer });
      await publish({ repo: later, bundle: bundles['1.1.0'] as string, channel: 'dev', writer });
      expect(await forgeFirst(later, '1.0.0')).toBe(5);
      const afterApproval = await verifyError(later);
      expect(afterApproval).toMatchObject({
        code: 'E_AUDIT_BROKEN',
        details: { reference: TAGS.event(5) },
      });
      expect(afterApproval?.message).toContain(
        'event 5 says it is the first publish of 1.0.0, but event 2 published 1.0.0 and event 3 (approve) found it stored',
      );
      expect(afterApproval?.hint).toMatch(/passes for the publisher/);

      // Ferry marks this one itself: a publish stopped before its tag, another write, the
      // rerun (README: judged from the later publish). It verifies.
      const rerun = await place(`r${++n}`);
      await publish({ repo: rerun, bundle, trust: ws.trust, writer: alice });
      await (await DirectoryStore.open(rerun, false)).deleteRef(TAGS.version('1.0.0'));
      await publish({ repo: rerun, bundle: bundles['1.1.0'] as string, writer });
      await publish({ repo: rerun, bundle, writer: { ...writer, actor: 'bob' } });
      const log = (await history({ repo: rerun, verify: true })).events;
      expect(log.filter((e) => e.op === 'publish' && e.subject.first === true).length).toBe(3);
    },
  );

  it.skipIf(kind !== 'directory')(
    'a log an older Ferry wrote (no `last`, no `first`) is read back to the start, and the promotion records `last` for the writes after it',
    async () => {
      const repo = await repository();
      await approve({ repo, version: '1.1.0', to: 'beta', by: 'alice', evidence: [], writer });
      // The same log as an older Ferry wrote it: each event re-signed without `last` and
      // `first`, each naming the one before it anew, and dev's document naming its event.
      const store = await DirectoryStore.open(repo, false);
      const keys = writer.keys;
      const valueOf = async (tag: string, kind: 'event' | 'channel') => {
        const ref = (await store.readRef(tag)) as { bytes: Buffer };
        const layer = (JSON.parse(ref.bytes.toString()) as { layers: Descriptor[] })
          .layers[0] as Descriptor;
        const bytes = await store.readBlob(layer.digest, layer.size);
        return openDocument<Record<string, unknown>>(kind, bytes, undefined, tag);
      };
      const replace = async (tag: string, kind: 'event' | 'channel', value: unknown) => {
        const sealed = await sealDocument(kind, value, keys);
        await store.putBlob(sealed.bytes, sealed.digest, sealed.size);
        await store.replaceRef(
          tag,
          documentManifest({ ...DOC_TYPES[kind], document: sealed }),
          (await store.readRef(tag))?.digest,
        );
        return sealed.digest;
      };
      let prev: string | null = null;
      const digests: string[] = [];
      for (let seq = 1; seq <= 4; seq++) {
        const { last, ...event } = await valueOf(TAGS.event(seq), 'event');
        expect(last).toBeDefined();
        const { first, ...subject } = event.subject as Record<string, unknown>;
        expect(first).toBe(seq === 2 || seq === 3 ? true : undefined);
        prev = await replace(TAGS.event(seq), 'event', { ...event, subject, prev });
        digests.push(prev);
      }
      const dev = await valueOf(TAGS.channel('dev'), 'channel');
      await replace(TAGS.channel('dev'), 'channel', { ...dev, auditHead: digests[2] });
      expect((await history({ repo, verify: true })).events.some((e) => 'last' in e)).toBe(false);

      const promoted = await promote({ repo, version: '1.1.0', to: 'beta', writer });
      expect(promoted).toMatchObject({ verdict: 'promoted', event: 5 });
      const log = (await history({ repo, verify: true })).events;
      expect(log[0]?.last).toEqual({ policy: 0, moves: { dev: 3, beta: 5 } });
      // Carried on by a write that reads only the head.
      await approve({ repo, version: '1.1.0', to: 'stable', by: 'CI', evidence: [], writer });
      const [head] = (await history({ repo, verify: true })).events;
      expect(head?.last).toEqual({ policy: 0, moves: { dev: 3, beta: 5 } });
      // The publisher, whom only an event the older Ferry wrote names, still cannot approve its own.
      const blocked = await promote({ repo, version: '1.1.0', to: 'stable', writer });
      expect(blocked.excuses.map((e) => e.code)).toEqual(['E_APPROVALS']);
      await approve({ repo, version: '1.1.0', to: 'stable', by: 'bob', evidence: [], writer });
      expect(await promote({ repo, version: '1.1.0', to: 'stable', writer })).toMatchObject({
        verdict: 'promoted',
      });
      // A `last` that does not add up (a writer's bug; only a key could sign one) is named.
      const headSeq = (await history({ repo })).events[0]?.seq as number;
      const wrong = await valueOf(TAGS.event(headSeq), 'event');
      await replace(TAGS.event(headSeq), 'event', {
        ...wrong,
        last: { policy: 0, moves: { dev: 3 } },
      });
      const verify = await history({ repo, verify: true }).catch((e: unknown) => e as FerryError);
      expect(verify).toMatchObject({ code: 'E_AUDIT_BROKEN' });
      expect((verify as FerryError).message).toContain(`event ${headSeq} says the log's last`);
    },
  );

  it.skipIf(kind === 'directory' || skip)(
    'two promotions at once where the registry deletes nothing: at most one wins, the chain holds, and a run once the claims are stale goes through',
    async () => {
      const repo = await repository();
      await approve({ repo, version: '1.1.0', to: 'beta', by: 'alice', evidence: [], writer });
      const stale = process.env.FERRY_REGISTRY_CLAIM_STALE_SECONDS;
      await throughProxy(repo, { dialect: { refusesDeletes: 405 } }, async (proxied) => {
        const results = await promotionsAtOnce(proxied);
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect(won.length).toBeLessThanOrEqual(1);
        for (const loss of lost) expect((loss.reason as FerryError).exitCode).toBe(5);
        const promotions = async () =>
          (await history({ repo: proxied, verify: true })).events.filter((e) => e.op === 'promote')
            .length;
        expect(await promotions()).toBe(won.length);
        if (won.length === 0) {
          process.env.FERRY_REGISTRY_CLAIM_STALE_SECONDS = '1';
          await new Promise((resolve) => setTimeout(resolve, 2100));
          try {
            await promote({ repo: proxied, version: '1.1.0', to: 'beta', writer });
          } finally {
            if (stale === undefined) delete process.env.FERRY_REGISTRY_CLAIM_STALE_SECONDS;
            else process.env.FERRY_REGISTRY_CLAIM_STALE_SECONDS = stale;
          }
          expect(await promotions()).toBe(1);
        }
      });
    },
  );

  it.skipIf(kind === 'directory' || skip)(
    'a first publish where the registry makes no repository on a push (ECR) says to create it',
    async () => {
      await throughProxy(
        'acme/never-created',
        { dialect: { noRepository: true } },
        async (repo) => {
          const error = await publish({
            repo,
            bundle: bundles['1.0.0'] as string,
            trust: ws.trust,
            writer,
          }).catch((caught: unknown) => caught);
          expect(error).toMatchObject({
            code: 'E_REGISTRY',
            message: /has no repository acme\/never-created and did not make one.*NAME_UNKNOWN/,
            details: { hint: /create the repository in the registry first/ },
          });
        },
      );
    },
  );

  it.skipIf(kind === 'directory' || skip)(
    'gc --yes where the registry deletes nothing through the OCI API (GHCR 405, ECR 404) records and removes nothing',
    async () => {
      const repo = await repository();
      await publish({ repo, bundle: bundles['1.2.0'] as string, channel: 'dev', writer });
      for (const refusesDeletes of [405, 404] as const)
        await throughProxy(repo, { dialect: { refusesDeletes } }, async (proxied) => {
          const before = await events(proxied);
          const error = await gc({ repo: proxied, keep: 1, yes: true, writer }).catch(
            (caught: unknown) => caught,
          );
          expect(error).toMatchObject({
            code: 'E_REGISTRY',
            message: /does not delete manifests through the OCI API/,
          });
          expect(await events(proxied)).toBe(before);
          const kept = await pull({ repo: proxied, version: '1.0.0', out: await tempDir() });
          expect(kept.version).toBe('1.0.0');
        });
      // Where deletes work, the same gc goes through.
      expect((await gc({ repo, keep: 1, yes: true, writer })).removed).toBe(true);
    },
  );

  it.skipIf(skip)(
    'takes a separate repository key for approvals, and refuses a key it does not know',
    async () => {
      const repo = await place(`r${++n}`);
      const repoKey = generateEd25519();
      await publish({
        repo,
        bundle: bundles['1.1.0'] as string,
        trust: ws.trust,
        repoKeys: [repoKey.publicPem],
        channel: 'dev',
        writer,
      });
      const approver: Writer = {
        actor: 'alice',
        ci: null,
        keys: [keySigner(createPrivateKey(repoKey.privatePem))],
      };
      await approve({
        repo,
        version: '1.1.0',
        to: 'beta',
        by: 'alice',
        evidence: [],
        writer: approver,
      });
      const outsider: Writer = {
        actor: 'mallory',
        ci: null,
        keys: [keySigner(createPrivateKey(generateEd25519().privatePem))],
      };
      const before = await events(repo);
      expect(
        await codeOf(() =>
          approve({
            repo,
            version: '1.1.0',
            to: 'beta',
            by: 'mallory',
            evidence: [],
            writer: outsider,
          }),
        ),
      ).toBe('E_KEY_INVALID');
      expect(await events(repo)).toBe(before);
      expect((await promote({ repo, version: '1.1.0', to: 'beta', writer })).verdict).toBe(
        'promoted',
      );
      expect((await history({ repo, verify: true })).events).toHaveLength(4);
    },
  );

  it.skipIf(kind !== 'directory')(
    'takes over a lock left by a writer that died, and logs whose it was',
    async () => {
      const repo = await repository();
      const lock = join(repo, 'ferry', 'lock');
      await mkdir(lock);
      await writeFile(join(lock, 'owner.json'), JSON.stringify({ actor: 'crashed-ci', pid: 1 }));
      const old = new Date(Date.now() - 120_000);
      await utimes(join(lock, 'owner.json'), old, old);
      await utimes(lock, old, old);
      await publish({ repo, bundle: bundles['1.2.0'] as string, writer });
      const [published, broke] = (await history({ repo, verify: true })).events;
      expect(published?.op).toBe('publish');
      expect(broke?.op).toBe('lock-break');
      expect(broke?.subject.owner).toMatchObject({ actor: 'crashed-ci' });
    },
  );

  it.skipIf(kind !== 'directory')(
    'a gc that runs while a publish waits for the lock leaves the new version whole',
    async () => {
      const repo = await repository();
      // The publish has stored its bundle (before the lock, as designed) and decided;
      // a gc takes the lock first and sweeps every blob no manifest names yet.
      const beforeWrite = async () => {
        const swept = await gc({ repo, keep: 1, yes: true, writer: { ...writer, actor: 'gc' } });
        expect(swept.remove).toEqual(['1.0.0']);
      };
      const published = await publish({
        repo,
        bundle: bundles['1.2.0'] as string,
        writer: { ...writer, beforeWrite },
      });
      expect(published.changed).toBe(true);
      const out = await tempDir();
      const pulled = await pull({ repo, version: '1.2.0', out });
      expect(sha(await readFile(pulled.bundle))).toBe(published.sha256);
      expect((await history({ repo, verify: true })).events.map((e) => e.op).slice(0, 2)).toEqual([
        'publish',
        'gc',
      ]);
    },
  );

  it.skipIf(kind !== 'directory')(
    'history --verify names a channel set back to an older signed document, or removed',
    async () => {
      const repo = await place(`r${++n}`);
      const file = join(repo, 'ferry/channels/dev.json');
      await publish({
        repo,
        bundle: bundles['1.0.0'] as string,
        trust: ws.trust,
        channel: 'dev',
        writer,
      });
      const older = await readFile(file);
      await publish({ repo, bundle: bundles['1.1.0'] as string, channel: 'dev', writer });
      const newer = await readFile(file);
      expect((await history({ repo, verify: true })).verified).toBe(true);
      // Someone who can write to the share puts dev's first document back: it is
      // validly signed and names an event of the chain, and pull would hand out 1.0.0.
      await writeFile(file, older);
      const setBack = await history({ repo, verify: true }).catch((e: unknown) => e as FerryError);
      expect(setBack).toMatchObject({ code: 'E_AUDIT_BROKEN' });
      expect((setBack as FerryError).message).toContain(
        'channel dev holds 1.0.0 from event 2, but event 3 moved it to 1.1.0 after that',
      );
      await rm(file);
      const gone = await history({ repo, verify: true }).catch((e: unknown) => e as FerryError);
      expect(gone).toMatchObject({ code: 'E_AUDIT_BROKEN' });
      expect((gone as FerryError).message).toContain('channel dev holds nothing, but event 3');
      await writeFile(file, newer);
      expect((await history({ repo, verify: true })).verified).toBe(true);
    },
  );

  it.skipIf(kind !== 'directory')(
    'an approval the log does not record counts for nothing, and history --verify names it',
    async () => {
      const production = await repository();
      const staging = await repository();
      // Alice approves 1.1.0 for beta in staging; the same bundle has the same digest in
      // both repositories, and both are signed by the same release key.
      await approve({
        repo: staging,
        version: '1.1.0',
        to: 'beta',
        by: 'alice',
        evidence: [],
        writer,
      });
      const [approval] = await readdir(join(staging, 'ferry/approvals'));
      await cp(join(staging, 'blobs'), join(production, 'blobs'), {
        recursive: true,
        force: false,
      });
      await cp(
        join(staging, 'ferry/approvals', approval as string),
        join(production, 'ferry/approvals', approval as string),
      );
      const refused = await promote({ repo: production, version: '1.1.0', to: 'beta', writer });
      expect(refused.verdict).toBe('blocked');
      expect(refused.excuses.map((e) => e.code)).toEqual(['E_APPROVALS']);
      const verify = await history({ repo: production, verify: true }).catch(
        (e: unknown) => e as FerryError,
      );
      expect(verify).toMatchObject({ code: 'E_AUDIT_BROKEN' });
      expect((verify as FerryError).message).toContain(
        `approval ferry.approval.${(approval as string).slice(0, -'.json'.length)} (alice for 1.1.0 dev → beta) is not recorded`,
      );
    },
  );

  it.skipIf(kind !== 'directory')(
    'a config edited into the wrong shape, huge or nested deep is E_REPO_INVALID, not a crash',
    async () => {
      const repo = await repository();
      const store = await DirectoryStore.open(repo, false);
      const held = await store.readRef('ferry.config');
      const manifest = JSON.parse((held?.bytes as Buffer).toString()) as {
        layers: Array<{ digest: string; size: number }>;
      };
      const layer = manifest.layers[0] as { digest: string; size: number };
      const config = JSON.parse(
        (await store.readBlob(layer.digest, layer.size)).toString(),
      ) as Record<string, unknown>;
      let expected = held?.digest;
      const put = async (bytes: Buffer) => {
        const edited = documentManifest({
          ...DOC_TYPES.config,
          document: { bytes, digest: `sha256:${sha(bytes)}`, size: bytes.length },
        });
        await store.putBlob(bytes, `sha256:${sha(bytes)}`, bytes.length);
        await store.replaceRef('ferry.config', edited, expected);
        expected = edited.digest;
      };
      const edits: Buffer[] = [
        Buffer.from(JSON.stringify({ ...config, trust: undefined })),
        Buffer.from(JSON.stringify({ ...config, trust: null })),
        Buffer.from(JSON.stringify({ ...config, keys: 'not a list' })),
        Buffer.from(JSON.stringify({ ...config, keys: [1] })),
        Buffer.from(JSON.stringify({ ...config, product: null })),
        Buffer.from(
          JSON.stringify({ ...config, trust: 'X' }).replace(
            '"X"',
            `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
          ),
        ),
      ];
      for (const bytes of edits) {
        await put(bytes);
        expect(await codeOf(() => channels({ repo })), bytes.toString().slice(0, 80)).toBe(
          'E_REPO_INVALID',
        );
      }
    },
  );

  it.skipIf(kind !== 'directory')(
    'history --verify names a config replaced after the repository was made (a key added)',
    async () => {
      const repo = await repository();
      const store = await DirectoryStore.open(repo, false);
      const held = await store.readRef('ferry.config');
      const layer = (
        JSON.parse((held?.bytes as Buffer).toString()) as {
          layers: Array<{ digest: string; size: number }>;
        }
      ).layers[0] as { digest: string; size: number };
      const config = JSON.parse(
        (await store.readBlob(layer.digest, layer.size)).toString(),
      ) as Record<string, unknown>;
      // Whoever can write to the share adds a repository key of their own: with it they
      // could sign channel documents and approvals every reader would take.
      const bytes = Buffer.from(JSON.stringify({ ...config, keys: [generateEd25519().publicPem] }));
      const digest = `sha256:${sha(bytes)}`;
      await store.putBlob(bytes, digest, bytes.length);
      await store.replaceRef(
        'ferry.config',
        documentManifest({ ...DOC_TYPES.config, document: { bytes, digest, size: bytes.length } }),
        held?.digest,
      );
      const verify = await history({ repo, verify: true }).catch((e: unknown) => e as FerryError);
      expect(verify).toMatchObject({ code: 'E_AUDIT_BROKEN' });
      expect((verify as FerryError).message).toContain(
        `the repository config is ${digest}, but event 1 (create) records ${layer.digest}`,
      );
    },
  );

  it.skipIf(kind !== 'directory')(
    'an older, laxer policy put back is refused by promote and named by history --verify',
    async () => {
      const repo = await repository();
      const file = join(repo, 'ferry/policy.json');
      const policy = (beta: number) => ({
        formatVersion: 1,
        channels: { dev: {}, beta: { approvals: beta } },
        edges: [['dev', 'beta']],
      });
      await setPolicy({ repo, policy: policy(0), file: 'lax.yaml', writer });
      const lax = await readFile(file);
      await setPolicy({ repo, policy: policy(1), file: 'strict.yaml', writer });
      // The lax policy is validly signed: whoever can write to the share puts it back.
      await writeFile(file, lax);
      const refused = await promote({ repo, version: '1.1.0', to: 'beta', writer }).catch(
        (e: unknown) => e as FerryError,
      );
      expect(refused).toMatchObject({ code: 'E_REPO_INVALID' });
      expect((refused as FerryError).message).toMatch(
        /the policy is sha256:\w+, but event 5 set sha256:/,
      );
      expect(
        (await channels({ repo })).channels.find((c) => c.name === 'beta')?.version,
      ).toBeNull();
      const verify = await history({ repo, verify: true }).catch((e: unknown) => e as FerryError);
      expect(verify).toMatchObject({ code: 'E_AUDIT_BROKEN' });
    },
  );

  it.skipIf(kind !== 'directory')(
    'gc sweeps only bundle copies no manifest names: never evidence, records, or a copy under an hour old',
    async () => {
      const repo = await repository();
      const blobs = join(repo, 'blobs/sha256');
      const big = 17 * 1024 * 1024;
      const report = join(await tempDir('ferry-evidence-'), 'report.bin');
      await writeFile(report, randomBytes(big));
      await approve({ repo, version: '1.1.0', to: 'beta', by: 'qa', evidence: [report], writer });
      const planted = async (bytes: Buffer) => {
        await writeFile(join(blobs, sha(bytes)), bytes);
        return `sha256:${sha(bytes)}`;
      };
      const stray = await planted(randomBytes(big));
      const small = await planted(randomBytes(1024));
      const longAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
      for (const name of await readdir(blobs)) await utimes(join(blobs, name), longAgo, longAgo);
      const young = await planted(randomBytes(big));

      const dry = await gc({ repo, writer });
      expect(dry.strays).toEqual([{ digest: stray, size: big }]);
      const done = await gc({ repo, yes: true, writer });
      expect(done).toMatchObject({ remove: [], removed: true });
      const left = new Set((await readdir(blobs)).map((name) => `sha256:${name}`));
      expect(
        [stray, small, young, `sha256:${sha(await readFile(report))}`].map((d) => left.has(d)),
      ).toEqual([false, true, true, true]);
      const [last] = (await history({ repo, verify: true })).events;
      expect(last?.subject).toEqual({ removed: [], swept: [stray] });
      expect((await pull({ repo, channel: 'dev', out: await tempDir() })).version).toBe('1.1.0');
    },
  );

  it.skipIf(kind !== 'directory' || !SKOPEO)(
    'gc never sweeps the layers of an image another tool copied into the layout, and keeps its index.json entry',
    async () => {
      const repo = await repository();
      // An image as skopeo writes one: its own layout first, then `skopeo copy` into the repository's.
      const src = await tempDir('ferry-foreign-');
      const layer = randomBytes(17 * 1024 * 1024);
      const config = Buffer.from('{}');
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: {
            mediaType: 'application/vnd.oci.image.config.v1+json',
            digest: `sha256:${sha(config)}`,
            size: 2,
          },
          layers: [
            {
              mediaType: 'application/vnd.oci.image.layer.v1.tar',
              digest: `sha256:${sha(layer)}`,
              size: layer.length,
            },
          ],
        }),
      );
      await mkdir(join(src, 'blobs/sha256'), { recursive: true });
      for (const bytes of [layer, config, manifest])
        await writeFile(join(src, 'blobs/sha256', sha(bytes)), bytes);
      await writeFile(join(src, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
      await writeFile(
        join(src, 'index.json'),
        JSON.stringify({
          schemaVersion: 2,
          manifests: [
            {
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              digest: `sha256:${sha(manifest)}`,
              size: manifest.length,
              annotations: { 'org.opencontainers.image.ref.name': 'tools' },
            },
          ],
        }),
      );
      await promisify(execFile)(
        SKOPEO as string,
        [
          '--insecure-policy',
          'copy',
          '--preserve-digests',
          `oci:${src}:tools`,
          `oci:${repo}:tools`,
        ],
        {
          env: { PATH: process.env.PATH, HOME: src },
        },
      );
      const blobs = join(repo, 'blobs/sha256');
      const longAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
      for (const name of await readdir(blobs)) await utimes(join(blobs, name), longAgo, longAgo);

      // Another write first (it rewrites index.json), then gc.
      await approve({ repo, version: '1.1.0', to: 'beta', by: 'qa', evidence: [], writer });
      expect((await gc({ repo, writer })).strays).toEqual([]);
      await gc({ repo, yes: true, writer });
      expect((await readFile(join(blobs, sha(layer)))).length).toBe(layer.length);
      const index = JSON.parse(await readFile(join(repo, 'index.json'), 'utf8')) as {
        manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
      };
      expect(
        index.manifests.find(
          (m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'tools',
        )?.digest,
      ).toBe(`sha256:${sha(manifest)}`);
      expect((await history({ repo, verify: true })).events.length).toBeGreaterThan(0);
    },
  );

  it.skipIf(kind !== 'directory')(
    'gc --yes keeps the channels’ earlier documents (each names the one before it)',
    async () => {
      const repo = await repository();
      const store = await DirectoryStore.open(repo, false);
      const layerOf = async (tag: string) =>
        (
          JSON.parse(((await store.readRef(tag))?.bytes as Buffer).toString()) as {
            layers: Array<{ digest: string; size: number }>;
          }
        ).layers[0] as { digest: string; size: number };
      const earlier = await layerOf('ferry.channel.dev');
      await publish({ repo, bundle: bundles['1.2.0'] as string, channel: 'dev', writer });
      const done = await gc({ repo, keep: 1, yes: true, writer });
      expect(done.remove).toEqual(['1.0.0', '1.1.0']);
      // The document dev held before 1.2.0 is still there, as its successor's prev names it.
      expect((await store.readBlob(earlier.digest, earlier.size)).length).toBe(earlier.size);
      expect((await pull({ repo, channel: 'dev', out: await tempDir() })).version).toBe('1.2.0');
    },
  );

  it.skipIf(kind !== 'directory')(
    'with --trust, a repository key added to the unsigned config does not let its holder move a channel',
    async () => {
      const repo = await place(`r${++n}`);
      const repoKey = generateEd25519();
      for (const [version, extra] of [
        ['1.0.0', { trust: ws.trust, repoKeys: [repoKey.publicPem] }],
        ['1.1.0', {}],
      ] as const)
        await publish({
          repo,
          bundle: bundles[version] as string,
          channel: 'dev',
          writer,
          ...extra,
        });
      expect(
        (await pull({ repo, channel: 'dev', trust: ws.trust, out: await tempDir() })).version,
      ).toBe('1.1.0');
      // Whoever can write to the share adds a key of their own to the config and signs a
      // channel document with it that sets dev back to 1.0.0.
      const store = await DirectoryStore.open(repo, false);
      const layerOf = async (tag: string) =>
        (
          JSON.parse(((await store.readRef(tag))?.bytes as Buffer).toString()) as {
            layers: Array<{ digest: string; size: number }>;
          }
        ).layers[0] as { digest: string; size: number };
      const attacker = generateEd25519();
      const configLayer = await layerOf('ferry.config');
      const config = JSON.parse(
        (await store.readBlob(configLayer.digest, configLayer.size)).toString(),
      ) as { keys: string[] };
      const replace = async (tag: string, kind: 'config' | 'channel', bytes: Buffer) => {
        const digest = `sha256:${sha(bytes)}`;
        await store.putBlob(bytes, digest, bytes.length);
        await store.replaceRef(
          tag,
          documentManifest({ ...DOC_TYPES[kind], document: { bytes, digest, size: bytes.length } }),
          (await store.readRef(tag))?.digest,
        );
      };
      await replace(
        'ferry.config',
        'config',
        Buffer.from(JSON.stringify({ ...config, keys: [...config.keys, attacker.publicPem] })),
      );
      const forged = await sealDocument(
        'channel',
        {
          channel: 'dev',
          sequence: 3,
          version: '1.0.0',
          digest: (await store.readRef('1.0.0'))?.digest,
          prev: null,
          auditHead: `sha256:${'0'.repeat(64)}`,
          auditSeq: 2,
          time: '2026-06-01T08:00:00Z',
        },
        [keySigner(createPrivateKey(attacker.privatePem))],
      );
      await replace('ferry.channel.dev', 'channel', forged.bytes);
      const refused = await pull({
        repo,
        channel: 'dev',
        trust: ws.trust,
        out: await tempDir(),
      }).catch((e: unknown) => e as FerryError);
      expect(refused).toMatchObject({ code: 'E_REPO_INVALID' });
      expect((refused as FerryError).message).toContain(
        `the repository keys in its config are not vouched for by ${ws.trust}`,
      );
    },
  );
});
