import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
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

  it('takes over a lock whose holder stopped beating, and says whose it was', async () => {
    process.env.FERRY_LOCK_STALE_SECONDS = '5';
    const dir = join(await tempDir(), 'repo');
    const store = await DirectoryStore.open(dir, true);
    const lock = join(dir, 'ferry', 'lock');
    await mkdir(lock, { recursive: true });
    await writeFile(join(lock, 'owner.json'), JSON.stringify({ actor: 'crashed', pid: 1 }));
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    const taken = await store.lock('two');
    expect(taken.broke?.owner).toMatchObject({ actor: 'crashed' });
    await taken.release();
  });
});
