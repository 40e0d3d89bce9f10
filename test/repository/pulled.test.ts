import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, rmdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FerryError } from '../../manifest-schema/errors.js';
import {
  acceptChannelDocument,
  pulledFrom,
  recordRepositoryRoot,
  refuseRootSetBack,
  type ChannelSeen,
  type RepositoryIdentity,
} from '../../repository/pulled.js';
import { tempDir } from '../helpers.js';

const repo = { name: '/srv/bundles', created: 'sha256:event-1' };
const doc = (sequence: number, digest = `sha256:doc-${sequence}`) => ({
  sequence,
  digest,
  version: `1.${sequence}.0`,
});

/** "accepted", or the refusal's code and message. */
async function outcome(
  state: string,
  identity: RepositoryIdentity,
  channel: string,
  next: ChannelSeen,
): Promise<string> {
  return acceptChannelDocument(state, identity, channel, next).then(
    () => 'accepted',
    (error: FerryError) => `${error.code}: ${error.message}`,
  );
}

describe('what a machine pulled, by channel', () => {
  it.each([
    ['a later document', doc(3), 'accepted'],
    ['the same document again', doc(2), 'accepted'],
    [
      'an older document',
      doc(1),
      'E_CHANNEL_SET_BACK: channel dev of /srv/bundles holds document 1 (1.1.0), but this machine pulled document 2 (1.2.0) from it before: the channel was set back',
    ],
    [
      'another document under the same number',
      doc(2, 'sha256:other'),
      'E_CHANNEL_SET_BACK: channel dev of /srv/bundles holds document 2 (1.2.0, sha256:other), but this machine pulled document 2 (1.2.0, sha256:doc-2) from it before: the channel was forked (another document under the same number)',
    ],
  ])('after document 2: %s is %s', async (_what, next, expected) => {
    const state = await tempDir('ferry-pulled-');
    await acceptChannelDocument(state, repo, 'dev', doc(2));
    expect(await outcome(state, repo, 'dev', next)).toBe(expected);
  });

  // What `ferry channels` shows: the channel's document now against the one pulled (document 2).
  it.each([
    ['still holds it', { sequence: 2, digest: 'sha256:doc-2' }, repo, 'current'],
    ['moved on', { sequence: 3, digest: 'sha256:doc-3' }, repo, 'moved'],
    ['went back to document 1', { sequence: 1, digest: 'sha256:doc-1' }, repo, 'set-back'],
    ['holds another document 2', { sequence: 2, digest: 'sha256:other' }, repo, 'set-back'],
    ['holds none', undefined, repo, 'set-back'],
    [
      'is of a repository made anew at that name',
      { sequence: 3, digest: 'sha256:doc-3' },
      { ...repo, created: 'sha256:another-event-1' },
      'replaced',
    ],
  ])('after document 2 was pulled, a channel that %s stands %s', async (_, now, at, standing) => {
    const state = await tempDir('ferry-pulled-');
    await acceptChannelDocument(state, repo, 'dev', doc(2));
    const found = await pulledFrom(state, { ...at, created: () => Promise.resolve(at.created) }, [
      { name: 'dev', ...(now ? { now } : {}) },
      { name: 'beta', now: { sequence: 1, digest: 'sha256:beta-1' } },
    ]);
    expect(Object.fromEntries(found)).toEqual({ dev: { ...doc(2), standing } });
  });

  it('shows nothing of a repository never pulled from, or under a HOME that is a file, asking nothing of it and writing nothing', async () => {
    const state = join(await tempDir('ferry-pulled-'), 'state');
    // Its first event is a request to a registry: not made when there is nothing to compare it with.
    const unasked = {
      name: repo.name,
      created: () => Promise.reject(new Error('the first event was read')),
    };
    expect((await pulledFrom(state, unasked, [{ name: 'dev' }])).size).toBe(0);
    await expect(readdir(state)).rejects.toThrow();
    await writeFile(state, 'not a folder');
    expect(
      (await pulledFrom(join(state, '.local/state/ferry'), unasked, [{ name: 'dev' }])).size,
    ).toBe(0);
    const other = join(await tempDir('ferry-pulled-'), 'state');
    await acceptChannelDocument(other, { name: '/srv/other', created: 'sha256:e' }, 'dev', doc(1));
    expect((await pulledFrom(other, unasked, [{ name: 'dev' }])).size).toBe(0);
  });

  it('a record it cannot write stops the pull, saying where and how to mend it', async () => {
    const state = join(await tempDir('ferry-pulled-'), 'state');
    await writeFile(state, 'a file where the folder should be');
    const error = await acceptChannelDocument(state, repo, 'dev', doc(1)).catch(
      (e: unknown) => e as FerryError,
    );
    expect(error).toMatchObject({ code: 'E_IO' });
    expect(error?.hint).toBe(
      `nothing was downloaded. Pull records what it pulled in ${state}, to refuse a channel set back later: make it writable, or set FERRY_STATE_DIR to a folder that is`,
    );
  });

  it('keeps channels and repositories apart, and refuses another repository in the place of one', async () => {
    const state = await tempDir('ferry-pulled-');
    await acceptChannelDocument(state, repo, 'stable', doc(5));
    expect(await outcome(state, repo, 'dev', doc(1))).toBe('accepted');
    expect(await outcome(state, { ...repo, name: '/srv/other' }, 'stable', doc(1))).toBe(
      'accepted',
    );
    expect(await outcome(state, repo, 'stable', doc(4))).toMatch(/^E_CHANNEL_SET_BACK/);
    expect(await outcome(state, { ...repo, created: 'sha256:new-event-1' }, 'stable', doc(6))).toBe(
      'E_CHANNEL_SET_BACK: /srv/bundles is not the repository this machine pulled from before: its first event is sha256:new-event-1, not sha256:event-1; it was made anew or replaced',
    );
    expect(await readdir(join(state, 'pulled'))).toHaveLength(2);
  });
});

describe('two pulls at once on one machine', () => {
  const folderOf = (state: string) =>
    join(state, 'pulled', createHash('sha256').update(repo.name).digest('hex').slice(0, 32));

  it('never lower the record: of documents 1 to 12 accepted at once, 12 stands, and each other was recorded or refused as set back', async () => {
    const state = await tempDir('ferry-pulled-');
    const order = [7, 2, 12, 5, 9, 1, 11, 3, 8, 4, 10, 6];
    const outcomes = await Promise.all(order.map((n) => outcome(state, repo, 'dev', doc(n))));
    for (const one of outcomes) expect(one).toMatch(/^(accepted|E_CHANNEL_SET_BACK: .* set back)$/);
    const found = await pulledFrom(
      state,
      { ...repo, created: () => Promise.resolve(repo.created) },
      [{ name: 'dev', now: { sequence: 12, digest: 'sha256:doc-12' } }],
    );
    expect(found.get('dev')).toEqual({ ...doc(12), standing: 'current' });
    expect((await readdir(folderOf(state))).sort()).toEqual(['_repository.json', 'dev.json']);
  });

  it('waits while another pull holds the lock, and writes once it is let go', async () => {
    const state = await tempDir('ferry-pulled-');
    await acceptChannelDocument(state, repo, 'dev', doc(1));
    const lock = join(folderOf(state), '.lock');
    await writeFile(lock, '');
    let done = false;
    const accepting = acceptChannelDocument(state, repo, 'dev', doc(2)).then(() => (done = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(done).toBe(false);
    await rm(lock);
    await accepting;
    expect(await outcome(state, repo, 'dev', doc(1))).toMatch(/pulled document 2 \(1\.2\.0\)/);
  });

  it('refuses a folder in the place of the lock at once (E_STATE_INVALID), leaving it as it is', async () => {
    const state = await tempDir('ferry-pulled-');
    await acceptChannelDocument(state, repo, 'dev', doc(1));
    const lock = join(folderOf(state), '.lock');
    await mkdir(lock);
    await writeFile(join(lock, 'kept'), '');
    expect(await outcome(state, repo, 'dev', doc(2))).toBe(
      `E_STATE_INVALID: ${lock} is a folder, not a lock pull made`,
    );
    expect(await readdir(lock)).toEqual(['kept']);
  });

  it('takes over a lock its holder left behind when it died (older than 10 s)', async () => {
    const state = await tempDir('ferry-pulled-');
    await acceptChannelDocument(state, repo, 'dev', doc(1));
    const lock = join(folderOf(state), '.lock');
    await writeFile(lock, '');
    const minuteAgo = new Date(Date.now() - 60_000);
    await utimes(lock, minuteAgo, minuteAgo);
    expect(await outcome(state, repo, 'dev', doc(2))).toBe('accepted');
    expect((await readdir(folderOf(state))).sort()).toEqual(['_repository.json', 'dev.json']);
  });

  // A machine whose clock was wrong (ahead) when a pull died holding the lock, and was set right since.
  it('takes over a left lock whose time is ahead of the clock, once it has waited 10 s for it', async () => {
    const state = await tempDir('ferry-pulled-');
    await acceptChannelDocument(state, repo, 'dev', doc(1));
    const lock = join(folderOf(state), '.lock');
    await writeFile(lock, '');
    const hourAhead = new Date(Date.now() + 3_600_000);
    await utimes(lock, hourAhead, hourAhead);
    const started = performance.now();
    expect(await outcome(state, repo, 'dev', doc(2))).toBe('accepted');
    expect(performance.now() - started).toBeGreaterThan(10_000);
    expect((await readdir(folderOf(state))).sort()).toEqual(['_repository.json', 'dev.json']);
  }, 30_000);
});

describe('a channel named like the record of the repository', () => {
  it('keeps its own record: a policy may declare a channel "repository"', async () => {
    const state = await tempDir('ferry-pulled-');
    await acceptChannelDocument(state, repo, 'repository', doc(1));
    expect(await outcome(state, repo, 'repository', doc(1))).toBe('accepted');
    expect(await outcome(state, repo, 'dev', doc(1))).toBe('accepted');
    expect(await outcome(state, { ...repo, created: 'sha256:new-event-1' }, 'dev', doc(2))).toMatch(
      /^E_CHANNEL_SET_BACK: \/srv\/bundles is not the repository/,
    );
  });
});

describe('the root a pull by version records', () => {
  const identityFile = (state: string) =>
    join(
      state,
      'pulled',
      createHash('sha256').update(repo.name).digest('hex').slice(0, 32),
      '_repository.json',
    );
  /** As a pull by version judges and records: how often it asked for the first event, or its refusal. */
  const byVersion = async (state: string, root: number, created = repo.created) => {
    let asked = 0;
    return refuseRootSetBack(state, { name: repo.name, root }, '1.0.0')
      .then(() =>
        recordRepositoryRoot(state, {
          name: repo.name,
          root,
          created: () => {
            asked++;
            return Promise.resolve(created);
          },
        }),
      )
      .then(
        () => asked,
        (error: FerryError) => `${error.code}: ${error.message}`,
      );
  };
  const recorded = async (state: string) =>
    JSON.parse(await readFile(identityFile(state), 'utf8')) as unknown;

  it('is raised, never lowered, and the first event is read only to write it', async () => {
    const state = await tempDir('ferry-pulled-');
    expect(await byVersion(state, 1)).toBe(1);
    expect(await recorded(state)).toEqual({ ...repo, root: 1 });
    expect(await byVersion(state, 1)).toBe(0);
    expect(await byVersion(state, 2)).toBe(1);
    expect(await recorded(state)).toEqual({ ...repo, root: 2 });
    expect(await byVersion(state, 1)).toMatch(
      /^E_CHANNEL_SET_BACK: \/srv\/bundles follows trust root version 1, but it followed version 2/,
    );
    // A channel pull of the repository at root 1 is refused by the same record.
    expect(await outcome(state, { ...repo, root: 1 }, 'dev', doc(1))).toMatch(
      /^E_CHANNEL_SET_BACK: .* trust root version 1/,
    );
  });

  // sysfs refuses a new folder even to root (EPERM), as a read-only home refuses a user;
  // chmod would not stop root, and CI runs as root.
  it.skipIf(!existsSync('/sys/kernel'))(
    'goes on in a state folder it may not write, having judged by what it could read',
    async () => {
      const state = '/sys/ferry-state-that-cannot-be';
      // Goes on without asking for the first event: there is no record to write it in.
      expect(await byVersion(state, 2)).toBe(0);
      expect(existsSync(state)).toBe(false);
    },
  );

  it('says a record it could not write for another reason, and that the bundle was not kept', async () => {
    const state = join(await tempDir('ferry-pulled-'), 'state');
    await writeFile(state, 'a file where the folder should be');
    const error = await recordRepositoryRoot(state, {
      name: repo.name,
      root: 1,
      created: () => Promise.resolve(repo.created),
    }).catch((e: unknown) => e as FerryError);
    expect(error).toMatchObject({ code: 'E_IO' });
    expect(error?.hint).toMatch(
      /^the bundle was downloaded and checked, but not kept\. Pull records/,
    );
  });

  it("leaves another repository's record as it is", async () => {
    const state = await tempDir('ferry-pulled-');
    await acceptChannelDocument(state, { ...repo, root: 1 }, 'dev', doc(1));
    expect(await byVersion(state, 2, 'sha256:new-event-1')).toBe(1);
    expect(await recorded(state)).toEqual({ ...repo, root: 1 });
  });
});

describe('a record folder something else took the place of', () => {
  it.each(['pulled', 'pulled/key'])(
    'refuses %s as a symbolic link to a folder elsewhere, writing nothing there',
    async (which) => {
      const state = await tempDir('ferry-pulled-');
      const elsewhere = await tempDir('ferry-elsewhere-');
      const key = createHash('sha256').update(repo.name).digest('hex').slice(0, 32);
      const link = join(state, which.replace('key', key));
      await mkdir(join(state, 'pulled'), { recursive: true });
      if (which === 'pulled') await rmdir(link);
      await symlink(elsewhere, link);
      const error = await acceptChannelDocument(state, repo, 'dev', doc(1)).catch(
        (e: unknown) => e as FerryError,
      );
      expect(error).toMatchObject({ code: 'E_STATE_INVALID', details: { file: link } });
      expect(await readdir(elsewhere)).toEqual([]);
    },
  );
});
