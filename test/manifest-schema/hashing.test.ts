import { createHash } from 'node:crypto';
import { open, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { markAsUntransferable, Worker } from 'node:worker_threads';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import {
  HashingSink,
  HashPool,
  hashThrough,
  LEND_SIZE,
  warmHashWorker,
  withHashPool,
} from '../../manifest-schema/index.js';
import { tempDir } from '../helpers.js';

let dir: string;

/** `chunks` of 64 KiB handed to a sink, then finish: what it was refused with (or its result). */
function refusal(sink: HashingSink, chunks: number): Promise<unknown> {
  return (async () => {
    for (let i = 0; i < chunks; i++) await sink.give(Buffer.alloc(64 * 1024));
    return sink.finish();
  })().catch((error: unknown) => error);
}
/** `chunks` through a sink into a new file from `position`: its answer, and the file's bytes from there. */
async function sunk(
  name: string,
  chunks: Iterable<Uint8Array>,
  position = 0,
): Promise<{ result: unknown; written: Buffer }> {
  const out = join(dir, name);
  const handle = await open(out, 'w');
  try {
    const sink = new HashingSink(handle.fd, position);
    for (const chunk of chunks) await sink.give(chunk);
    const result = await sink.finish();
    const file = await readFile(out);
    expect(file.subarray(0, position).equals(Buffer.alloc(position))).toBe(true);
    return { result, written: file.subarray(position) };
  } finally {
    await handle.close();
  }
}
const first = Buffer.from('0123456789'.repeat(30_000));
const second = Buffer.from('abcdefghij'.repeat(20_000));

beforeAll(async () => {
  dir = await tempDir();
  await writeFile(join(dir, 'part1'), first);
  await writeFile(join(dir, 'part2'), second);
  await symlink(join(dir, 'part1'), join(dir, 'link'));
});

const sha256 = (...chunks: Buffer[]): string => {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
};

describe('hash workers', () => {
  it('hash a range that spans two files as one stream, and copy it in the same read', async () => {
    const out = join(dir, 'joined');
    const handle = await open(out, 'w');
    try {
      const result = await withHashPool((pool) =>
        pool.run({
          segments: [
            { path: join(dir, 'part1'), offset: 250_000, length: 50_000 },
            { path: join(dir, 'part2'), offset: 0, length: 150_000 },
          ],
          fd: handle.fd,
          position: 0,
        }),
      );
      const expected = Buffer.concat([first.subarray(250_000), second.subarray(0, 150_000)]);
      expect(result).toMatchObject({ bytes: 200_000, sha256: sha256(expected) });
      expect(await readFile(out)).toEqual(expected);
    } finally {
      await handle.close();
    }
  });

  it('stop at a part that is shorter than its segment', async () => {
    const result = await withHashPool((pool) =>
      pool.run({
        segments: [
          { path: join(dir, 'part2'), offset: 190_000, length: 20_000 },
          { path: join(dir, 'part1'), offset: 0, length: 10 },
        ],
      }),
    );
    expect(result.bytes).toBe(10_000);
  });

  it('read a plain file whole, see that it grew, and never follow a link', async () => {
    await withHashPool(async (pool) => {
      const whole = await pool.run({ source: join(dir, 'part1'), size: first.length });
      expect(whole).toMatchObject({ bytes: first.length, sha256: sha256(first) });
      const grew = await pool.run({ source: join(dir, 'part1'), size: 1000 });
      expect(grew.bytes).toBeGreaterThan(1000);
      const link = await pool
        .run({ source: join(dir, 'link'), size: first.length })
        .catch((error: NodeJS.ErrnoException) => error.code);
      expect(link).toBe('ELOOP');
    });
  });

  it('report the bytes read every 8 MiB when asked', async () => {
    const big = join(dir, 'big');
    await writeFile(big, Buffer.alloc(17 << 20, 7));
    const notes: number[] = [];
    const result = await withHashPool((pool) =>
      pool.run({ source: big, size: 17 << 20 }, (bytes) => notes.push(bytes)),
    );
    expect(result.bytes).toBe(17 << 20);
    expect(notes).toEqual([8 << 20, 16 << 20]);
  });

  it('read parts once, hashing each whole part and the entries across them, copying those with a target', async () => {
    const whole = Buffer.concat([first, second]);
    // Entries cross the part boundary (300 000), and one copy crosses many 128 KiB slots.
    const entries = [
      { offset: 10, size: 5 },
      { offset: 15, size: 0, target: join(dir, 'empty') },
      { offset: 200_000, size: 250_000, target: join(dir, 'across'), mode: 0o640 },
      { offset: 450_000, size: 50_000 },
    ];
    const notes: number[] = [];
    const result = await hashThrough(
      [
        { path: join(dir, 'part1'), offset: 0, size: first.length },
        { path: join(dir, 'part2'), offset: first.length, size: second.length },
      ],
      entries,
      (at) => notes.push(at),
    );
    expect(result.parts).toEqual([
      { sha256: sha256(first), bytes: first.length },
      { sha256: sha256(second), bytes: second.length },
    ]);
    expect(result.entries).toEqual(
      entries.map((e) => ({
        sha256: sha256(whole.subarray(e.offset, e.offset + e.size)),
        bytes: e.size,
      })),
    );
    expect(notes).toEqual([0, 2, 3]);
    expect(await readFile(join(dir, 'empty'))).toHaveLength(0);
    expect(await readFile(join(dir, 'across'))).toEqual(whole.subarray(200_000, 450_000));
  });

  it('stop the read at a short part, and give up when a copy cannot be made', async () => {
    const short = await hashThrough(
      [
        { path: join(dir, 'part2'), offset: 0, size: second.length + 10 },
        { path: join(dir, 'part1'), offset: second.length + 10, size: first.length },
      ],
      [{ offset: 199_000, size: 100_000 }],
    );
    expect(short.parts).toEqual([{ sha256: sha256(second), bytes: second.length }]);
    expect(short.entries).toEqual([{ sha256: '', bytes: 1000 }]);
    const refused = await hashThrough(
      [{ path: join(dir, 'part1'), offset: 0, size: first.length }],
      [{ offset: 0, size: first.length, target: join(dir, 'part2') }],
    ).catch((error: NodeJS.ErrnoException) => error);
    expect(refused).toMatchObject({ code: 'EEXIST', path: join(dir, 'part2') });
  });

  it('hash and write bytes handed over in uneven chunks, more than the sink runs ahead, in order', async () => {
    const bytes = Buffer.alloc(10 * 1024 * 1024 + 12_345);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) % 251;
    // 1 byte, then sizes that straddle the 1 MiB batches (copied: views into one buffer).
    const chunks = [];
    for (let at = 0, size = 1; at < bytes.length; at += size, size = (size * 3 + 40_001) % 300_000)
      chunks.push(bytes.subarray(at, Math.min(bytes.length, at + size)));
    const { result, written } = await sunk('sunk', chunks, 3);
    expect(result).toEqual({ sha256: sha256(bytes), bytes: bytes.length });
    expect(written.equals(bytes)).toBe(true);
  });

  it('fail the tasks given to a pool after one of its workers stopped, instead of waiting on it', async () => {
    const pool = new HashPool(2);
    try {
      const [worker] = (pool as unknown as { workers: Worker[] }).workers;
      await worker?.terminate();
      // Two tasks: whichever worker each would have gone to, neither waits for ever.
      const task = { segments: [{ path: join(dir, 'part1'), offset: 0, length: 10 }] };
      for (const result of await Promise.allSettled([pool.run(task), pool.run(task)]))
        expect(result).toMatchObject({ status: 'rejected', reason: { message: /worker stopped/ } });
    } finally {
      await pool.close();
    }
  });

  it('give the next sink the worker started ahead of it, rather than wait for a new one', async () => {
    const threadIdOfNext = async (): Promise<number> => {
      const probe = new Worker('', { eval: true });
      const { threadId } = probe;
      await probe.terminate();
      return threadId;
    };
    const before = await threadIdOfNext();
    warmHashWorker();
    const bytes = Buffer.alloc(3 * 1024 * 1024, 7);
    const { result, written } = await sunk('warm', [Buffer.from(bytes)]);
    expect(result).toEqual({ sha256: sha256(bytes), bytes: bytes.length });
    expect(written.equals(bytes)).toBe(true);
    // One thread started between the probes: the warm one, taken by the sink.
    expect((await threadIdOfNext()) - before).toBe(2);
  });

  // A batch of small chunks is more buffers than one writev takes (IOV_MAX, 1024 here).
  it('write a batch of thousands of small moved chunks whole and in order', async () => {
    const chunks = Array.from({ length: 8000 }, (_, i) => Buffer.alloc(300, i % 251));
    const expected = Buffer.concat(chunks);
    const { result, written } = await sunk('small-chunks', chunks, 5);
    expect(result).toEqual({ sha256: sha256(expected), bytes: expected.length });
    expect(written.equals(expected)).toBe(true);
    expect(chunks.every((chunk) => chunk.length === 0)).toBe(true);
  });

  it('move a chunk that is a whole buffer, copy one that shares its buffer or may not move', async () => {
    const whole = Buffer.alloc(100_000, 'w');
    // Small Buffers are views into Node's shared pool: moving it would empty its neighbours.
    const pooled = Buffer.from('pooled');
    const neighbour = Buffer.from('neighbour');
    const pinned = Buffer.alloc(50_000, 'p');
    markAsUntransferable(pinned.buffer);
    const expected = Buffer.concat([whole, pooled, pinned]);
    const { result, written } = await sunk('moved', [whole, pooled, pinned]);
    expect(result).toEqual({ sha256: sha256(expected), bytes: expected.length });
    expect(written.equals(expected)).toBe(true);
    expect(whole.length).toBe(0);
    expect(pooled.toString()).toBe('pooled');
    expect(neighbour.toString()).toBe('neighbour');
    expect(pinned.length).toBe(50_000);
  });

  // Pull's socket reads into buffers the sink lends (repository/oci/direct.ts).
  it('move the filled start of a lent buffer, and lend the written buffers again', async () => {
    const out = join(dir, 'lent');
    const handle = await open(out, 'w');
    try {
      const sink = new HashingSink(handle.fd);
      const lent = sink.lend();
      expect(lent.length).toBe(LEND_SIZE);
      lent.fill(0xab);
      const borrowed = Buffer.alloc(LEND_SIZE - 10, 0xcd);
      // The start of a lent buffer moves; the start of anyone else's is copied.
      expect(sink.put(lent.subarray(0, LEND_SIZE - 100))).toBe(true);
      expect(sink.put(borrowed.subarray(0, 5000))).toBe(true);
      expect(lent.length).toBe(0);
      expect(borrowed.length).toBe(LEND_SIZE - 10);
      // Back from the worker, the buffer is lent again: it still holds what it carried
      // (a new one would be zeros).
      let again = sink.lend();
      for (let tries = 0; again[0] !== 0xab && tries < 200; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        again = sink.lend();
      }
      expect(again[0]).toBe(0xab);
      const expected = Buffer.concat([
        Buffer.alloc(LEND_SIZE - 100, 0xab),
        Buffer.alloc(5000, 0xcd),
      ]);
      expect(await sink.finish()).toEqual({ sha256: sha256(expected), bytes: expected.length });
      expect((await readFile(out)).equals(expected)).toBe(true);
    } finally {
      await handle.close();
    }
  });

  it('say when the worker is too far behind, and when it has caught up', async () => {
    const out = join(dir, 'room');
    const handle = await open(out, 'w');
    try {
      const sink = new HashingSink(handle.fd);
      const chunks = Array.from({ length: 12 }, (_, i) => Buffer.alloc(1 << 20, i));
      const last = Buffer.from('after the wait');
      const expected = Buffer.concat([...chunks, last]);
      // No turn of the event loop in between: no write is acknowledged yet.
      const answers = chunks.map((chunk) => sink.put(chunk));
      // 8 MiB ahead of the writes at most: from the ninth MiB on, too many.
      expect(answers).toEqual([...Array<boolean>(8).fill(true), ...Array<boolean>(4).fill(false)]);
      await sink.room();
      expect(sink.put(last)).toBe(true);
      expect(await sink.finish()).toEqual({ sha256: sha256(expected), bytes: expected.length });
      expect((await readFile(out)).equals(expected)).toBe(true);
    } finally {
      await handle.close();
    }
  });

  // From Node 21 postMessage refuses a transfer list naming a buffer marked
  // untransferable (Node 20 copies it; this stands in for 21's refusal): the
  // batch must still arrive, not leave a hole the next bytes are written into.
  it('write every byte of a batch the worker port refuses to move', async () => {
    const out = join(dir, 'refused-move');
    const handle = await open(out, 'w');
    const whole = Buffer.alloc(600_000, 'a');
    const pinned = Buffer.alloc(600_000, 'p');
    markAsUntransferable(pinned.buffer);
    const spied = vi.spyOn(Worker.prototype, 'postMessage');
    try {
      const sink = new HashingSink(handle.fd);
      const worker = spied.mock.contexts[0] as Worker;
      spied.mockRestore();
      const post = worker.postMessage.bind(worker);
      vi.spyOn(worker, 'postMessage').mockImplementation((value, transfer) => {
        if (transfer?.includes(pinned.buffer))
          throw new DOMException('An ArrayBuffer is not transferable', 'DataCloneError');
        post(value, transfer);
      });
      await sink.give(whole);
      await sink.give(pinned);
      await sink.give(Buffer.alloc(10, 'z'));
      const expected = Buffer.concat([
        Buffer.alloc(600_000, 'a'),
        Buffer.alloc(600_000, 'p'),
        Buffer.alloc(10, 'z'),
      ]);
      expect(await sink.finish()).toEqual({ sha256: sha256(expected), bytes: expected.length });
      expect((await readFile(out)).equals(expected)).toBe(true);
    } finally {
      spied.mockRestore();
      await handle.close();
    }
  });

  // A buffer given twice before its batch moved was used again after it was
  // given: what it first held is gone. postMessage refuses such a list; the
  // sink must not go on writing what follows where that batch belonged.
  it('refuse everything after a batch that names one buffer twice, never answer with a hole', async () => {
    const handle = await open(join(dir, 'given-twice'), 'w');
    const whole = Buffer.alloc(600_000, 'a');
    try {
      const sink = new HashingSink(handle.fd);
      await sink.give(whole);
      await expect(sink.give(whole)).rejects.toThrow(/given to the sink twice/);
      await expect(sink.give(Buffer.alloc(10, 'z'))).rejects.toThrow(/given to the sink twice/);
      await expect(sink.finish()).rejects.toThrow(/given to the sink twice/);
    } finally {
      await handle.close();
    }
  });

  // Abandon stops the worker where it is: it will acknowledge nothing more and
  // answer nothing, so what waits on it must be let go, not left for ever.
  it('let a give waiting for the worker, and a finish, go when the sink is abandoned', async () => {
    const handle = await open(join(dir, 'abandoned-waiting'), 'w');
    const posted = vi.spyOn(Worker.prototype, 'postMessage');
    try {
      const sink = new HashingSink(handle.fd);
      // The worker never gets the bytes (a slow disk): nothing is acknowledged.
      posted.mockImplementation(() => undefined);
      const giving = sink.give(Buffer.alloc(9 << 20)).then(
        () => 'given',
        (error: unknown) => error,
      );
      const finishing = new HashingSink(handle.fd);
      await finishing.give(Buffer.alloc(10));
      const finished = finishing.finish().then(
        () => 'finished',
        (error: unknown) => error,
      );
      posted.mockRestore();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await Promise.all([sink.abandon(), finishing.abandon()]);
      const late = (p: Promise<unknown>) =>
        Promise.race([
          p,
          new Promise((resolve) => setTimeout(() => resolve('still waiting'), 1000)),
        ]);
      expect(String(await late(giving))).toMatch(/abandoned/);
      expect(String(await late(finished))).toMatch(/abandoned/);
    } finally {
      posted.mockRestore();
      await handle.close();
    }
  });

  it('refuse a write after the sink finished: nobody would write it', async () => {
    const handle = await open(join(dir, 'finished'), 'w');
    try {
      const sink = new HashingSink(handle.fd);
      await sink.give(Buffer.from('abc'));
      expect(await sink.finish()).toEqual({ sha256: sha256(Buffer.from('abc')), bytes: 3 });
      await expect(sink.give(Buffer.from('d'))).rejects.toThrow(/after the sink was finished/);
    } finally {
      await handle.close();
    }
  });

  it.each([
    ['a file opened only for reading', () => open(join(dir, 'part1'), 'r'), 'EBADF'],
    ['a full disk (/dev/full)', () => open('/dev/full', 'w'), 'ENOSPC'],
  ])(
    'give the write error of a sink on %s, with its code, instead of waiting',
    async (_, opened, code) => {
      const handle = await opened();
      try {
        const sink = new HashingSink(handle.fd);
        expect(await refusal(sink, 64)).toMatchObject({ code });
        await sink.abandon();
      } finally {
        await handle.close();
      }
    },
  );

  // A worker killed, or out of memory, acknowledges nothing: only the pool sees it go.
  it.each([
    ['more than the sink runs ahead', 200],
    ['less than the sink runs ahead', 4],
  ])(
    'give an error, not a wait for ever, when the worker stops without an answer (%s)',
    async (_, chunks) => {
      const handle = await open(join(dir, `stopped-${chunks}`), 'w');
      const posted = vi.spyOn(Worker.prototype, 'postMessage');
      try {
        const sink = new HashingSink(handle.fd);
        const worker = posted.mock.contexts[0] as Worker;
        posted.mockRestore();
        await sink.give(Buffer.alloc(1000));
        await worker.terminate();
        const refused = await refusal(sink, chunks);
        expect(refused).toBeInstanceOf(Error);
        expect((refused as Error).message).toMatch(/worker stopped/);
        await sink.abandon();
      } finally {
        posted.mockRestore();
        await handle.close();
      }
    },
    3000,
  );
});
