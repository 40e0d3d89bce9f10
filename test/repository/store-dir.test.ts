import { execFileSync } from 'node:child_process';
import {
  mkdir,
  readdir,
  readFile,
  rm,
  symlink,
  truncate,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { documentBlob, documentManifest } from '../../repository/oci/artifact.js';
import { DirectoryStore } from '../../repository/store-dir.js';
import { codeOf, tempDir } from '../helpers.js';

const manifest = (text: string) =>
  documentManifest({
    artifactType: 'application/vnd.ferry.test.v1',
    mediaType: 'application/vnd.ferry.test.v1+json',
    document: documentBlob({ text }),
  });

afterEach(() => {
  delete process.env.FERRY_LOCK_WAIT_SECONDS;
  delete process.env.FERRY_LOCK_STALE_SECONDS;
});

describe('the directory store', () => {
  it('is an OCI image layout whose index.json names every tag', async () => {
    const dir = join(await tempDir(), 'repo');
    const store = await DirectoryStore.open(dir, true);
    const one = manifest('one');
    await store.createRef('1.0.0', one);
    await store.createRef('ferry.channel.dev', manifest('dev'));
    expect(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8'))).toEqual({
      imageLayoutVersion: '1.0.0',
    });
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; annotations: Record<string, string> }>;
    };
    expect(index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name'])).toEqual([
      '1.0.0',
      'ferry.channel.dev',
    ]);
    expect(await readFile(join(dir, 'blobs/sha256', one.digest.slice(7)))).toEqual(one.bytes);
    expect(await store.listRefs()).toEqual(['1.0.0', 'ferry.channel.dev']);
  });

  it('creates a tag once and moves one only from where the writer read it', async () => {
    const store = await DirectoryStore.open(join(await tempDir(), 'repo'), true);
    const first = manifest('first');
    await store.createRef('ferry.audit.00000001', first);
    await store.createRef('ferry.audit.00000001', first); // a rerun of the same write
    expect(await codeOf(() => store.createRef('ferry.audit.00000001', manifest('other')))).toBe(
      'E_REPO_CONFLICT',
    );
    await store.replaceRef('ferry.channel.dev', manifest('a'), undefined);
    expect(
      await codeOf(() => store.replaceRef('ferry.channel.dev', manifest('b'), undefined)),
    ).toBe('E_REPO_CONFLICT');
    await store.replaceRef('ferry.channel.dev', manifest('b'), manifest('a').digest);
    expect((await store.readRef('ferry.channel.dev'))?.digest).toBe(manifest('b').digest);
  });

  it('lets one writer hold the lock; another waits, then stops with E_REPO_LOCKED (exit 5)', async () => {
    process.env.FERRY_LOCK_WAIT_SECONDS = '0.5';
    const store = await DirectoryStore.open(join(await tempDir(), 'repo'), true);
    const held = await store.lock('one');
    expect(await codeOf(() => store.lock('two'))).toBe('E_REPO_LOCKED');
    await held.release();
    const next = await store.lock('two');
    expect(next.broke).toBeUndefined();
    await next.release();
  });

  it('FERRY_LOCK_WAIT_SECONDS=0: a writer that finds the lock held stops at once', async () => {
    process.env.FERRY_LOCK_WAIT_SECONDS = '0';
    const store = await DirectoryStore.open(join(await tempDir(), 'repo'), true);
    const held = await store.lock('one');
    const started = Date.now();
    expect(await codeOf(() => store.lock('two'))).toBe('E_REPO_LOCKED');
    expect(Date.now() - started).toBeLessThan(1000);
    await held.release();
  });

  it('takes over a lock whose holder stopped beating, and says whose it was', async () => {
    process.env.FERRY_LOCK_STALE_SECONDS = '5';
    const dir = join(await tempDir(), 'repo');
    const store = await DirectoryStore.open(dir, true);
    const lock = join(dir, 'ferry', 'lock');
    await mkdir(lock, { recursive: true });
    await writeFile(join(lock, 'owner.json'), JSON.stringify({ actor: 'crashed', pid: 1 }));
    const old = new Date(Date.now() - 60_000);
    await utimes(join(lock, 'owner.json'), old, old);
    await utimes(lock, old, old);
    const taken = await store.lock('two');
    expect(taken.broke?.owner).toMatchObject({ actor: 'crashed' });
    await taken.release();
  });

  // What a waiter on NFS may see: the folder's attributes from its client's cache, up to a
  // minute old, while the holder goes on beating; owner.json, opened, is asked of the server.
  it('does not take over a lock whose folder looks old while its owner.json was touched within the stale time', async () => {
    process.env.FERRY_LOCK_STALE_SECONDS = '5';
    process.env.FERRY_LOCK_WAIT_SECONDS = '0.5';
    const dir = join(await tempDir(), 'repo');
    const store = await DirectoryStore.open(dir, true);
    const lock = join(dir, 'ferry', 'lock');
    await mkdir(lock, { recursive: true });
    await writeFile(join(lock, 'owner.json'), JSON.stringify({ actor: 'beating', pid: 1 }));
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    expect(await codeOf(() => store.lock('two'))).toBe('E_REPO_LOCKED');
    expect(JSON.parse(await readFile(join(lock, 'owner.json'), 'utf8'))).toMatchObject({
      actor: 'beating',
    });
  });

  it("a holder whose lock was taken over does not remove the next holder's lock when it ends", async () => {
    process.env.FERRY_LOCK_STALE_SECONDS = '5';
    process.env.FERRY_LOCK_WAIT_SECONDS = '0.5';
    const dir = join(await tempDir(), 'repo');
    const store = await DirectoryStore.open(dir, true);
    const lock = join(dir, 'ferry', 'lock');
    const one = await store.lock('one');
    // "one" stalls past the stale time (a stopped VM): its lock looks abandoned.
    const old = new Date(Date.now() - 60_000);
    await utimes(join(lock, 'owner.json'), old, old);
    await utimes(lock, old, old);
    const two = await store.lock('two');
    expect(two.broke?.owner).toMatchObject({ actor: 'one' });
    // "one" wakes up and finishes: "two" still holds the lock, and a third waits.
    await one.release();
    expect(JSON.parse(await readFile(join(lock, 'owner.json'), 'utf8'))).toMatchObject({
      actor: 'two',
    });
    expect(await codeOf(() => store.lock('three'))).toBe('E_REPO_LOCKED');
    await two.release();
    await (await store.lock('three')).release();
  });

  it('a publish removes the half-copied bundles that killed publishes left, not one under way', async () => {
    const dir = join(await tempDir(), 'repo');
    const store = await DirectoryStore.open(dir, true);
    await store.putBlob(Buffer.from('first'), undefined, 5);
    const blobs = join(dir, 'blobs/sha256');
    // A publish killed mid-copy an hour and more ago, and one copying now.
    await writeFile(join(blobs, '.0123456789ab.part'), Buffer.alloc(4096));
    const old = new Date(Date.now() - 2 * 3600_000);
    await utimes(join(blobs, '.0123456789ab.part'), old, old);
    await writeFile(join(blobs, '.ba9876543210.part'), Buffer.alloc(4096));
    const bundle = join(dir, '..', 'bundle.bin');
    await writeFile(bundle, 'a bundle');
    await store.putBlob(bundle, undefined, 8);
    expect((await readdir(blobs)).filter((name) => name.startsWith('.'))).toEqual([
      '.ba9876543210.part',
    ]);
  });

  it('takes only OCI tags: "../config" or "../../etc/x" name no file of the repository', async () => {
    const dir = join(await tempDir(), 'repo');
    const store = await DirectoryStore.open(dir, true);
    await store.createRef('1.0.0', manifest('one'));
    await writeFile(
      join(dir, 'outside.json'),
      await readFile(join(dir, 'ferry/versions/1.0.0.json')),
    );
    for (const tag of ['../config', '../../outside', '..', ''])
      expect(await codeOf(() => store.readRef(tag)), tag).toBe('E_REPO_REFERENCE');
    // A file whose name no tag could have is not listed (and so breaks no write).
    await writeFile(join(dir, 'ferry/versions/not a tag.json'), '{}');
    await store.createRef('1.1.0', manifest('two'));
    expect(await store.listRefs()).toEqual(['1.0.0', '1.1.0']);
  });

  it.each(['blobs/sha256', 'ferry/audit', 'ferry/channels'])(
    '%s replaced by a link out of the repository is refused, and nothing is written there',
    async (sub) => {
      const base = await tempDir();
      const dir = join(base, 'repo');
      const store = await DirectoryStore.open(dir, true);
      await store.createRef('ferry.channel.dev', manifest('dev'));
      await store.createRef('ferry.audit.00000001', manifest('one'));
      const outside = join(base, 'outside');
      await mkdir(outside);
      await rm(join(dir, sub), { recursive: true });
      await symlink(outside, join(dir, sub));
      expect(await codeOf(() => DirectoryStore.open(dir, false))).toBe('E_REPO_INVALID');
      expect(await readdir(outside)).toEqual([]);
    },
  );

  /**
   * A repository on a share someone else can write to: a tag file or a blob
   * swapped for a FIFO (a read would block for ever), a link to /dev/zero (never
   * ends) or to a file outside, a huge file, a digest that climbs out of
   * blobs/. Each is refused by name (E_REPO_INVALID), at once.
   */
  describe('refuses a swapped file by name instead of hanging or reading it whole', () => {
    const swaps: Array<[string, (path: string) => Promise<void>]> = [
      ['a FIFO', (path) => Promise.resolve(void execFileSync('mkfifo', [path]))],
      ['a link to /dev/zero', (path) => symlink('/dev/zero', path)],
      ['a link out of the repository', (path) => symlink('/etc/passwd', path)],
      ['a folder', (path) => mkdir(path)],
      [
        'a huge file',
        async (path) => {
          await writeFile(path, '');
          await truncate(path, 8 * 1024 * 1024 * 1024);
        },
      ],
    ];
    it.each(swaps)('the tag file swapped for %s', async (_, swap) => {
      const dir = join(await tempDir(), 'repo');
      const store = await DirectoryStore.open(dir, true);
      await store.createRef('ferry.channel.dev', manifest('dev'));
      const path = join(dir, 'ferry/channels/dev.json');
      await rm(path);
      await swap(path);
      const error = await store.readRef('ferry.channel.dev').then(
        () => undefined,
        (e: unknown) => e as { code: string; message: string },
      );
      expect(error?.code).toBe('E_REPO_INVALID');
      expect(error?.message).toContain(path);
    });
    it.each(swaps)('the blob swapped for %s', async (_, swap) => {
      const dir = join(await tempDir(), 'repo');
      const store = await DirectoryStore.open(dir, true);
      const dev = manifest('dev');
      await store.createRef('ferry.channel.dev', dev);
      const path = join(dir, 'blobs/sha256', dev.digest.slice('sha256:'.length));
      await rm(path);
      await swap(path);
      expect(await codeOf(() => store.readRef('ferry.channel.dev'))).toBe('E_REPO_INVALID');
    });
    it('a descriptor whose digest climbs out of blobs/ or whose size is absurd', async () => {
      const dir = join(await tempDir(), 'repo');
      const store = await DirectoryStore.open(dir, true);
      const dev = manifest('dev');
      await store.createRef('ferry.channel.dev', dev);
      const path = join(dir, 'ferry/channels/dev.json');
      const descriptor = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
      await writeFile(
        path,
        JSON.stringify({ ...descriptor, digest: 'sha256:../../../../dev/zero' }),
      );
      expect(await codeOf(() => store.readRef('ferry.channel.dev'))).toBe('E_REPO_INVALID');
      await writeFile(path, JSON.stringify({ ...descriptor, size: 2 ** 52 }));
      expect(await codeOf(() => store.readRef('ferry.channel.dev'))).toBe('E_REPO_INVALID');
    });
    it("a FIFO as the lock holder's owner.json: the waiter still gives up with E_REPO_LOCKED", async () => {
      process.env.FERRY_LOCK_WAIT_SECONDS = '0.5';
      const dir = join(await tempDir(), 'repo');
      const store = await DirectoryStore.open(dir, true);
      const held = await store.lock('one');
      await rm(join(dir, 'ferry/lock/owner.json'));
      execFileSync('mkfifo', [join(dir, 'ferry/lock/owner.json')]);
      let told = '';
      expect(await codeOf(() => store.lock('two', (holder) => (told = holder)))).toBe(
        'E_REPO_LOCKED',
      );
      expect(told).toBe('unknown');
      await held.release();
    });
  });
});
