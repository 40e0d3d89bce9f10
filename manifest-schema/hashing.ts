import { availableParallelism } from 'node:os';
import * as workerThreads from 'node:worker_threads';
import { Worker } from 'node:worker_threads';

/**
 * Node 21 and later: a buffer its owner marked as not to be moved makes
 * postMessage refuse the whole list it is in, so the sink copies that one
 * alone before it is sent. Node 20 has no such question, and sends a marked
 * buffer as a copy itself.
 */
const isMarkedAsUntransferable = (
  workerThreads as { isMarkedAsUntransferable?: (value: object) => boolean }
).isMarkedAsUntransferable;

/**
 * Hashing is the bottleneck of build, verify and install, so each input byte
 * is read once and hashed once, on as many cores as the machine has (two on
 * ours), and optionally copied to a position in an output file in the same
 * read. The worker is inline (eval) so it runs the same from the sources,
 * from dist/ and from a single-file bundle; getBuiltinModule works whether
 * the eval is taken as CommonJS or (with --input-type=module) as ESM.
 */
const WORKER_SOURCE = `
const { parentPort } = process.getBuiltinModule('node:worker_threads');
const fs = process.getBuiltinModule('node:fs');
const crypto = process.getBuiltinModule('node:crypto');
const zlib = process.getBuiltinModule('node:zlib');
// 128 KiB, not more: read, hash and write then touch the same bytes while they
// are still in the core's 512 KiB L2 cache. Measured on a 1 GiB bundle here:
// 0.87 s to hash with 128 KiB reads, 1.3 s with 1 MiB (openssl dgst: 0.97 s).
const buffer = Buffer.allocUnsafe(1 << 17);
// A FIFO put where a file was found (a part swapped on its volume) would
// block open until a writer came, and the read with it, for ever; with
// O_NONBLOCK it opens at once and is refused here (a regular file reads as before).
function openFile(path, flags) {
  const fd = fs.openSync(path, flags | fs.constants.O_NONBLOCK);
  const stats = fs.fstatSync(fd);
  if (stats.isFile()) return fd;
  fs.closeSync(fd);
  const error = new Error(path + ' is ' + (stats.isDirectory() ? 'a folder' : stats.isFIFO() ? 'a FIFO' : 'not a regular file'));
  // EISDIR is the system's; EFIFO and ENOTREG are ours, so a reader can say which without parsing the message.
  error.code = stats.isDirectory() ? 'EISDIR' : stats.isFIFO() ? 'EFIFO' : 'ENOTREG';
  error.path = path;
  throw error;
}
parentPort.on('message', (task) => {
  if (task.ring !== undefined) return ringTask(task);
  if (task.stream !== undefined) return streamTask(task);
  const hash = crypto.createHash('sha256');
  let crc = 0;
  let total = 0;
  let noted = 0;
  // Returns false once the bytes go past the task's size: they are counted, not hashed.
  const take = (n) => {
    if (task.size !== undefined && total + n > task.size) { total += n; return false; }
    const chunk = buffer.subarray(0, n);
    hash.update(chunk);
    if (task.crc) crc = zlib.crc32(chunk, crc);
    if (task.fd !== undefined) {
      let written = 0;
      while (written < n) written += fs.writeSync(task.fd, chunk, written, n - written, task.position + total + written);
    }
    total += n;
    if (task.notes && total - noted >= 1 << 23) {
      noted = total;
      parentPort.postMessage({ id: task.id, note: total });
    }
    return true;
  };
  let input;
  try {
    if (task.segments === undefined) {
      // A plain file: read one byte more than expected, so a file that grew is seen.
      input = openFile(task.source, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      for (;;) {
        const n = fs.readSync(input, buffer, 0, Math.min(buffer.length, task.size + 1 - total), null);
        if (n === 0 || !take(n)) break;
      }
    } else {
      for (const segment of task.segments) {
        input = openFile(segment.path, fs.constants.O_RDONLY);
        let done = 0;
        while (done < segment.length) {
          const n = fs.readSync(input, buffer, 0, Math.min(buffer.length, segment.length - done), segment.offset + done);
          if (n === 0) break;
          take(n);
          done += n;
        }
        fs.closeSync(input);
        input = undefined;
        // A part that came up short ends the range: what follows it would be misplaced.
        if (done < segment.length) break;
      }
    }
    parentPort.postMessage({ id: task.id, sha256: hash.digest('hex'), crc32: crc, bytes: total });
  } catch (error) {
    parentPort.postMessage({ id: task.id, error: { message: error.message, code: error.code } });
  } finally {
    if (input !== undefined) fs.closeSync(input);
  }
});

// The worker's side of HashingSink: a stream opens with a file and a
// position, then batches of buffers arrive in order (moved here, not copied;
// each holds its bytes from its start, as many as its length in the batch says),
// each hashed, written and acknowledged (a note of its bytes), until its end
// is answered with the sha256 of them all. After a failure, answered at
// once, the batches still on their way are dropped.
const streams = new Map();
function streamTask(task) {
  const { id } = task;
  if (task.stream === 'open') {
    streams.set(id, { fd: task.fd, position: task.position, hash: crypto.createHash('sha256'), bytes: 0 });
    return;
  }
  const stream = streams.get(id);
  if (stream === undefined) return;
  try {
    if (task.stream === 'end') {
      streams.delete(id);
      parentPort.postMessage({ id, sha256: stream.hash.digest('hex'), bytes: stream.bytes });
      return;
    }
    const chunks = task.buffers.map((buffer, k) => new Uint8Array(buffer, 0, task.lengths[k]));
    let size = 0;
    for (const chunk of chunks) {
      stream.hash.update(chunk);
      size += chunk.length;
    }
    writeAll(stream.fd, chunks, stream.position + stream.bytes);
    stream.bytes += size;
    // The buffers go back with the note, to be dropped there: the main thread
    // collects its garbage often, this worker seldom, and 1 GiB downloaded
    // left 60 MiB more resident while they waited for it here.
    parentPort.postMessage({ id, note: size, buffers: task.buffers }, task.buffers);
  } catch (error) {
    streams.delete(id);
    parentPort.postMessage({ id, error: { message: error.message, code: error.code } });
  }
}

// One writev for the batch; a short write (a signal, a disk filling up) goes on chunk by chunk from where it stopped.
function writeAll(fd, chunks, position) {
  let written = fs.writevSync(fd, chunks, position);
  for (const chunk of chunks) {
    if (written >= chunk.length) {
      written -= chunk.length;
    } else {
      for (let at = written; at < chunk.length;) at += fs.writeSync(fd, chunk, at, chunk.length - at, position + at);
      written = 0;
    }
    position += chunk.length;
  }
}

// A read in two stages through a ring of shared slots (see hashThrough): one
// worker reads whole parts in order and hashes each, the other hashes and
// copies the entries in the bytes it is handed. control: [0] slots filled,
// [1] slots emptied, [2] reader finished, [3] copier gave up, [4] and [5]
// bumped on every change by the reader and the copier, to wait on.
function ringTask(task) {
  const { ring, slots, slot } = task;
  const control = new Int32Array(ring, 0, 8);
  const where = new Float64Array(ring, 32, slots * 2);
  const data = Buffer.from(ring, 32 + slots * 16, slots * slot);
  let result;
  try {
    result = task.parts !== undefined ? fill(task, control, where, data, slots, slot) : empty(task, control, where, data, slots, slot);
    parentPort.postMessage({ id: task.id, ...result });
  } catch (error) {
    parentPort.postMessage({ id: task.id, error: { message: error.message, code: error.code, path: error.path } });
  } finally {
    Atomics.store(control, task.parts !== undefined ? 2 : 3, 1);
    Atomics.add(control, task.parts !== undefined ? 4 : 5, 1);
    Atomics.notify(control, task.parts !== undefined ? 4 : 5);
  }
}

function fill(task, control, where, data, slots, slot) {
  const parts = [];
  let filled = 0;
  for (const part of task.parts) {
    const hash = crypto.createHash('sha256');
    let input;
    let done = 0;
    try {
      input = openFile(part.path, fs.constants.O_RDONLY);
      while (done < part.size) {
        const seen = Atomics.load(control, 5);
        if (Atomics.load(control, 3) !== 0) return { parts };
        if (filled - Atomics.load(control, 1) >= slots) {
          Atomics.wait(control, 5, seen);
          continue;
        }
        const at = (filled % slots) * slot;
        const n = fs.readSync(input, data, at, Math.min(slot, part.size - done), done);
        if (n === 0) break;
        hash.update(data.subarray(at, at + n));
        where[(filled % slots) * 2] = part.offset + done;
        where[(filled % slots) * 2 + 1] = n;
        done += n;
        Atomics.store(control, 0, ++filled);
        Atomics.add(control, 4, 1);
        Atomics.notify(control, 4);
      }
    } catch (error) {
      error.path = part.path;
      throw error;
    } finally {
      if (input !== undefined) fs.closeSync(input);
    }
    parts.push({ sha256: hash.digest('hex'), bytes: done });
    // A part that came up short ends the read: what follows it would be misplaced.
    if (done < part.size) break;
  }
  return { parts };
}

// Waits until the slot after the \`emptied\` ones is filled (true) or the
// filler says it is done and every filled slot is emptied (false).
function filled(control, emptied) {
  for (;;) {
    const seen = Atomics.load(control, 4);
    if (emptied !== Atomics.load(control, 0)) return true;
    if (Atomics.load(control, 2) !== 0 && emptied === Atomics.load(control, 0)) return false;
    Atomics.wait(control, 4, seen);
  }
}

function empty(task, control, where, data, slots, slot) {
  const { entries } = task;
  const hashes = entries.map(() => null);
  const bytes = entries.map(() => 0);
  const results = entries.map(() => null);
  let fd;
  let first = 0;
  let emptied = 0;
  try {
    // Empty entries have no bytes to wait for.
    for (const [k, entry] of entries.entries()) {
      if (entry.size > 0) continue;
      if (entry.target !== undefined) fs.closeSync(fs.openSync(entry.target, 'wx', entry.mode));
      results[k] = { sha256: crypto.createHash('sha256').digest('hex'), bytes: 0 };
    }
    while (filled(control, emptied)) {
      const at = (emptied % slots) * slot;
      const start = where[(emptied % slots) * 2];
      const end = start + where[(emptied % slots) * 2 + 1];
      while (first < entries.length && entries[first].offset + entries[first].size <= start) first++;
      for (let k = first; k < entries.length && entries[k].offset < end; k++) {
        const entry = entries[k];
        const from = Math.max(start, entry.offset);
        const to = Math.min(end, entry.offset + entry.size);
        if (to <= from) continue;
        const chunk = data.subarray(at + from - start, at + to - start);
        if (hashes[k] === null) hashes[k] = crypto.createHash('sha256');
        hashes[k].update(chunk);
        if (entry.target !== undefined) {
          try {
            if (fd === undefined) fd = fs.openSync(entry.target, 'wx', entry.mode);
            let written = 0;
            while (written < chunk.length) written += fs.writeSync(fd, chunk, written, chunk.length - written, from - entry.offset + written);
          } catch (error) {
            error.path = entry.target;
            throw error;
          }
        }
        bytes[k] += chunk.length;
        if (bytes[k] === entry.size) {
          results[k] = { sha256: hashes[k].digest('hex'), bytes: bytes[k] };
          hashes[k] = null;
          if (fd !== undefined) fs.closeSync(fd);
          fd = undefined;
          parentPort.postMessage({ id: task.id, note: k });
        }
      }
      Atomics.store(control, 1, ++emptied);
      Atomics.add(control, 5, 1);
      Atomics.notify(control, 5);
    }
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  return { entries: results.map((result, k) => result ?? { sha256: '', bytes: bytes[k] }) };
}
`;

/** Where a byte range of a bundle physically lives: a stretch of one file. */
export interface Segment {
  path: string;
  offset: number;
  length: number;
}

interface HashOutput {
  /** Copy the bytes into this open file descriptor at `position` while hashing. */
  fd?: number;
  position?: number;
  /** Also compute the CRC-32 (for zip). */
  crc?: boolean;
  /** Report the bytes read so far, every 8 MiB, to `run`'s `onRead`. */
  notes?: boolean;
}

export type HashTask = HashOutput &
  (
    | {
        /** A plain file, read from its start and never through a link. */
        source: string;
        /** The size the caller expects; reading stops once more than this has been read. */
        size: number;
        segments?: never;
      }
    | {
        /** A byte range of a bundle, as its source lays it out: read in order as one stream. */
        segments: readonly Segment[];
        source?: never;
        size?: never;
      }
  );

export interface HashResult {
  sha256: string;
  crc32: number;
  /** Bytes actually read: more than `size` means the file grew, less that it (or a part) shrank. */
  bytes: number;
}

interface Pending {
  resolve: (result: HashResult) => void;
  reject: (error: Error) => void;
  /** A stream's notes also bring back the buffers it wrote. */
  note?: (note: number, buffers?: ArrayBuffer[]) => void;
}

/** A worker started ahead of need (warmHashWorker), for the next pool to take. */
let warm: Worker | undefined;

/**
 * Starts a hash worker now, for the next pool (or sink) made to take. A
 * worker takes 45-65 ms to start here, and a download cannot wait for it:
 * a HashingSink holds SINK_AHEAD (8 MiB, 10 ms of a loopback pull) before
 * the socket is paused. A command that will download calls this before its
 * metadata round trips, which hide the start. A worker never taken does not
 * keep the process alive.
 */
export function warmHashWorker(): void {
  if (warm) return;
  const worker = new Worker(WORKER_SOURCE, { eval: true });
  worker.unref();
  // A warm worker that failed before it was taken is dropped, and the pool starts one of its own.
  const drop = (): void => {
    if (warm === worker) warm = undefined;
  };
  worker.once('error', drop);
  worker.once('exit', drop);
  warm = worker;
}

function startWorker(): Worker {
  const taken = warm;
  if (taken === undefined) return new Worker(WORKER_SOURCE, { eval: true });
  warm = undefined;
  taken.ref();
  return taken;
}

export class HashPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Array<{ id: number; task: HashTask }> = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closing = false;
  /** Why a worker stopped: later tasks fail at once rather than wait on it. */
  private broken: Error | null = null;

  constructor(size = Math.max(1, Math.min(4, availableParallelism()))) {
    for (let i = 0; i < size; i++) {
      const worker = startWorker();
      worker.on(
        'message',
        (
          message: {
            id: number;
            note?: number;
            buffers?: ArrayBuffer[];
            error?: { message: string; code?: string; path?: string };
          } & HashResult,
        ) => {
          const waiting = this.pending.get(message.id);
          if (message.note !== undefined) {
            waiting?.note?.(message.note, message.buffers);
            return;
          }
          this.pending.delete(message.id);
          this.idle.push(worker);
          this.dispatch();
          if (!waiting) return;
          if (message.error) {
            waiting.reject(Object.assign(new Error(message.error.message), message.error));
          } else {
            const { id: _, ...result } = message;
            waiting.resolve(result);
          }
        },
      );
      worker.on('error', (error) => this.stopped(error));
      // A worker that stops without an answer (killed, out of memory) would
      // otherwise leave its task, or the next one given to it, waited on for ever.
      worker.on('exit', (code) => {
        if (!this.closing) this.stopped(new Error(`a hash worker stopped (exit code ${code})`));
      });
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  run(task: HashTask, onRead?: (bytes: number) => void): Promise<HashResult> {
    return this.post(onRead ? { ...task, notes: true } : task, onRead) as Promise<HashResult>;
  }

  private post(task: object, note?: Pending['note']): Promise<unknown> {
    if (this.broken) return Promise.reject(this.broken);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        resolve: resolve,
        reject,
        ...(note ? { note } : {}),
      });
      this.queue.push({ id, task: task as HashTask });
      this.dispatch();
    });
  }

  /**
   * See hashThrough: the reader and the copier, each on its own worker at
   * once (the pool must have two idle), over one ring of shared slots.
   */
  async ring(
    parts: readonly PartToRead[],
    entries: readonly EntryToCopy[],
    onEntry?: (at: number) => void,
  ): Promise<{ parts: ReadResult[]; entries: ReadResult[] }> {
    const ring = new SharedArrayBuffer(32 + RING_SLOTS * 16 + RING_SLOTS * RING_SLOT);
    const shape = { ring, slots: RING_SLOTS, slot: RING_SLOT };
    const [read, copied] = await Promise.allSettled([
      this.post({ ...shape, parts }) as Promise<{ parts: ReadResult[] }>,
      this.post({ ...shape, entries }, onEntry) as Promise<{ entries: ReadResult[] }>,
    ]);
    if (read.status === 'rejected') throw read.reason;
    if (copied.status === 'rejected') throw copied.reason;
    return { parts: read.value.parts, entries: copied.value.entries };
  }

  /**
   * The worker's side of a HashingSink: a task that stays open while batches
   * of buffers move to its worker. Needs an idle worker (a sink has a pool of its own).
   */
  stream(
    fd: number,
    position: number,
    onWritten: (bytes: number, buffers?: ArrayBuffer[]) => void,
  ): ByteStream {
    // The worker dispatch will give the task to.
    const worker = this.idle.at(-1);
    if (worker === undefined || this.queue.length > 0)
      throw new Error('a stream needs an idle worker');
    const id = this.nextId;
    const result = this.post({ stream: 'open', fd, position }, onWritten) as Promise<ReadResult>;
    return {
      result,
      send: (buffers, lengths) =>
        worker.postMessage({ id, stream: 'data', buffers, lengths }, buffers),
      end: () => worker.postMessage({ id, stream: 'end' }),
    };
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  /** Stops every task where it is (a worker copying stops mid-file): pending runs reject with `reason`. */
  async abort(reason: unknown): Promise<void> {
    this.stopped(reason instanceof Error ? reason : new Error(String(reason)));
    await this.close();
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop() as Worker;
      const job = this.queue.shift() as { id: number; task: HashTask };
      worker.postMessage({ id: job.id, ...job.task });
    }
  }

  private stopped(error: Error): void {
    this.broken ??= error;
    this.queue.length = 0;
    this.failAll(error);
  }

  private failAll(error: Error): void {
    for (const waiting of this.pending.values()) waiting.reject(error);
    this.pending.clear();
  }
}

/** 16 slots of 128 KiB (the read size above): 2 MiB however large the bundle. */
const RING_SLOTS = 16;
const RING_SLOT = 1 << 17;

/** A whole file read in order as the bytes from `offset` of a larger whole (a part of a bundle). */
export interface PartToRead {
  path: string;
  offset: number;
  size: number;
}

export type ReadResult = Pick<HashResult, 'sha256' | 'bytes'>;

/** A range of that whole to hash and, with `target`, to copy into a new file. */
export interface EntryToCopy {
  offset: number;
  size: number;
  target?: string;
  mode?: number;
}

/**
 * Reads parts once, whole and in order, hashing each, while a second worker
 * hashes (and copies) the entries that lie in them, from the same bytes: one
 * read yields the parts' hashes and the entries', on two cores, in flat
 * memory. The entries must be in order and not overlapping.
 * Each result's `bytes` says how far it got (a part or a read that came up short).
 */
export function hashThrough(
  parts: readonly PartToRead[],
  entries: readonly EntryToCopy[],
  onEntry?: (at: number) => void,
): Promise<{ parts: ReadResult[]; entries: ReadResult[] }> {
  const pool = new HashPool(2);
  return pool.ring(parts, entries, onEntry).finally(() => pool.close());
}

/** Runs `fn` with a pool and always closes it; `signal` stops its tasks where they are. */
export async function withHashPool<T>(
  fn: (pool: HashPool) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  signal?.throwIfAborted();
  const pool = new HashPool();
  const stop = (): void => void pool.abort(signal?.reason);
  signal?.addEventListener('abort', stop, { once: true });
  try {
    return await fn(pool);
  } finally {
    signal?.removeEventListener('abort', stop);
    await pool.close();
  }
}

interface ByteStream {
  /** The sha256 of every byte written and their count, once ended; the worker's error if a write failed. */
  result: Promise<ReadResult>;
  /** Moves the buffers to the worker (they are emptied here); each holds `lengths[k]` bytes from its start. */
  send(buffers: ArrayBuffer[], lengths: number[]): void;
  end(): void;
}

/** Chunks are handed to the worker 1 MiB at a time: fewer, larger messages. */
const SINK_BATCH = 1 << 20;
/** How far the main thread may run ahead of the worker's writes: the sink's memory. */
const SINK_AHEAD = 8 << 20;
/** The size of a buffer `lend` hands out: a socket reads into it until it is (nearly) full. */
export const LEND_SIZE = 1 << 20;
/** Written buffers kept to be lent again; more than this go to the garbage collector. */
const SPARE_BUFFERS = 4;

/**
 * Bytes that arrive on the main thread (a download), hashed and written to
 * `fd` from `position` on a worker, so the main thread only takes them off
 * the socket. A socket's chunks move to the worker without a copy: copying
 * them into a ring of shared memory, as this did before, took the main
 * thread 0.34 s per GiB, with both cores busy. Memory stays near SINK_AHEAD
 * however large the download: written buffers come back, to be lent again
 * (`lend`) or collected.
 */
export class HashingSink {
  readonly #pool = new HashPool(1);
  readonly #stream: ByteStream;
  #batch: ArrayBuffer[] = [];
  #lengths: number[] = [];
  #batched = 0;
  /** Bytes handed to the worker and not yet written. */
  #ahead = 0;
  #finished = false;
  /** The worker's task is over: answered, or failed by the pool when the worker died. */
  #ended = false;
  #waiting: Array<() => void> = [];
  /** Buffers this sink lent and nobody else holds: any part of one from its start may move. */
  readonly #lent = new WeakSet<ArrayBuffer>();
  readonly #spare: ArrayBuffer[] = [];

  constructor(fd: number, position = 0) {
    this.#stream = this.#pool.stream(fd, position, (written, buffers = []) => {
      this.#ahead -= written;
      // Moved back, each is a new object that only this side holds.
      for (const buffer of buffers)
        if (buffer.byteLength === LEND_SIZE && this.#spare.length < SPARE_BUFFERS)
          this.#spare.push(buffer);
      this.#wake();
    });
    // Also handles a rejection that neither give nor finish comes to see.
    const ended = (): void => {
      this.#ended = true;
      this.#wake();
    };
    this.#stream.result.then(ended, ended);
  }

  /**
   * A LEND_SIZE buffer to read into (a socket's reads, see Socket's `onread`),
   * one the worker has written and sent back when there is one. A chunk that
   * starts at its start moves to the worker without a copy however little of
   * it is filled; the caller must not touch the buffer after giving it.
   */
  lend(): Uint8Array {
    const buffer = this.#spare.pop() ?? new ArrayBuffer(LEND_SIZE);
    this.#lent.add(buffer);
    return new Uint8Array(buffer);
  }

  /**
   * Hands `chunk` over. A chunk that is the whole of its buffer (as node:http
   * gives them), or the start of a lent one, moves to the worker and is
   * emptied here: the caller must not use it, nor any other view of its
   * buffer, again. It is emptied only when its batch goes (up to 1 MiB of
   * chunks later, or at finish): until then a change to it is what gets
   * written and hashed. Any other chunk is copied. Waits while the worker is
   * SINK_AHEAD behind.
   */
  async give(chunk: Uint8Array): Promise<void> {
    if (!this.put(chunk)) await this.room();
  }

  /**
   * `give` without the wait, for a socket's read callback: false when the
   * worker is too far behind, and nothing more should be put before `room`
   * resolves (or the worker stopped: `room` says why).
   */
  put(chunk: Uint8Array): boolean {
    // After finish or abandon nobody writes what is handed over: the bytes would be lost without a word.
    if (this.#finished) throw new Error('write after the sink was finished');
    if (this.#ended) return false;
    if (chunk.length === 0) return true;
    this.#batch.push(this.#movable(chunk));
    this.#lengths.push(chunk.length);
    this.#batched += chunk.length;
    if (this.#batched >= SINK_BATCH) this.#handOver();
    return this.#ahead <= SINK_AHEAD;
  }

  /** Resolves once the worker has caught up to within SINK_AHEAD; rejects if it stopped. */
  async room(): Promise<void> {
    for (;;) {
      if (this.#ended) return this.#failure();
      if (this.#ahead <= SINK_AHEAD) return;
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  /** Hands over what is gathered and waits for the worker: the sha256 of every byte written and their count. */
  async finish(): Promise<ReadResult> {
    if (this.#finished) throw new Error('the sink was already finished');
    this.#finished = true;
    try {
      if (!this.#ended) {
        if (this.#batched > 0) this.#handOver();
        this.#stream.end();
      }
      return await this.#stream.result;
    } finally {
      await this.#pool.close();
    }
  }

  /** Stops after a failure, the worker where it is; what was written is about to be removed. */
  async abandon(): Promise<void> {
    this.#finished = true;
    // Fails the worker's task too: a give or a finish still waiting on it is let go.
    await this.#pool.abort(new Error('the sink was abandoned before the worker answered'));
  }

  #handOver(): void {
    const buffers = this.#batch;
    try {
      this.#stream.send(buffers, this.#lengths);
    } catch (error) {
      // postMessage moves nothing when it refuses the list: send copies. A
      // buffer marked as not to be moved was copied when it was put (on
      // Node 21 and later; Node 20 copies it itself), so what is left to
      // refuse is a buffer named twice: used again after it was given, and
      // what it held first is gone. The batch stays, refused at every later
      // give and at finish, so nothing after it is written where it belonged.
      if (new Set(buffers).size !== buffers.length)
        throw new Error('a chunk was given to the sink twice: its first bytes are lost', {
          cause: error,
        });
      this.#stream.send(
        buffers.map((buffer, k) => buffer.slice(0, this.#lengths[k])),
        this.#lengths,
      );
    }
    this.#ahead += this.#batched;
    this.#batch = [];
    this.#lengths = [];
    this.#batched = 0;
  }

  /** The chunk's own buffer when the chunk is all of it, or the start of a lent one (it can move); else a copy. */
  #movable(chunk: Uint8Array): ArrayBuffer {
    const { buffer } = chunk;
    if (
      buffer instanceof ArrayBuffer &&
      chunk.byteOffset === 0 &&
      (chunk.byteLength === buffer.byteLength || this.#lent.has(buffer)) &&
      !isMarkedAsUntransferable?.(buffer)
    )
      return buffer;
    return new Uint8Array(chunk).buffer;
  }

  #wake(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }

  /** The worker's error; it stopped before the download ended. */
  async #failure(): Promise<never> {
    await this.#stream.result;
    throw new Error('the hashing worker stopped before the download ended');
  }
}
