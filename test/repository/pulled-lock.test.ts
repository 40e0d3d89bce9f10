import { createHash } from 'node:crypto';
import { lstat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type * as Atomic from '../../manifest-schema/atomic.js';
import { acceptChannelDocument } from '../../repository/pulled.js';
import { tempDir } from '../helpers.js';

// A record write that waits until the test lets it go: a pull holding the lock as long as it likes.
const gates = vi.hoisted(() => new Map<string, Promise<void>>());
vi.mock('../../manifest-schema/atomic.js', async (original) => {
  const atomic = await original<typeof Atomic>();
  return {
    ...atomic,
    writeFileAtomic: async (file: string, data: string | Buffer, mode?: number) => {
      const sequence = String((JSON.parse(String(data)) as { sequence?: number }).sequence);
      await gates.get(sequence);
      return atomic.writeFileAtomic(file, data, mode);
    },
  };
});

const repo = { name: '/srv/bundles', created: 'sha256:event-1' };
const doc = (sequence: number) => ({
  sequence,
  digest: `sha256:doc-${sequence}`,
  version: `1.${sequence}.0`,
});
const lockOf = (state: string) =>
  join(state, 'pulled', createHash('sha256').update(repo.name).digest('hex').slice(0, 32), '.lock');
const gate = (sequence: number): (() => void) => {
  let open = (): void => undefined;
  gates.set(String(sequence), new Promise<void>((resolve) => (open = resolve)));
  return open;
};
const until = async (done: () => Promise<boolean>): Promise<void> => {
  while (!(await done())) await new Promise((resolve) => setTimeout(resolve, 5));
};

describe('a pull that held the record lock so long it was taken over', () => {
  it('leaves the lock of the pull that took it over where it is', async () => {
    const state = await tempDir('ferry-pulled-');
    await acceptChannelDocument(state, repo, 'dev', doc(1));
    const lock = lockOf(state);
    const letSlowGo = gate(2);
    const slow = acceptChannelDocument(state, repo, 'dev', doc(2));
    await until(() =>
      lstat(lock).then(
        () => true,
        () => false,
      ),
    );
    // As if it had held it for a minute (a write that took that long: fsync on a busy disk).
    const minuteAgo = new Date(Date.now() - 60_000);
    await utimes(lock, minuteAgo, minuteAgo);
    const letNextGo = gate(3);
    const next = acceptChannelDocument(state, repo, 'dev', doc(3));
    await until(() =>
      lstat(lock).then(
        (info) => info.mtimeMs > minuteAgo.getTime() + 1000,
        () => false,
      ),
    );
    letSlowGo();
    await slow;
    // The other pull still holds it: a third must wait, not read and write beside it.
    expect((await lstat(lock)).isFile()).toBe(true);
    letNextGo();
    await next;
    await expect(lstat(lock)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
