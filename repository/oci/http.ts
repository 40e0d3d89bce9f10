import {
  Agent as HttpAgent,
  request as httpRequest,
  type ClientRequest,
  type IncomingMessage,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { MAX_TIMER_SECONDS, secondsFromEnv } from '../../manifest-schema/durations.js';

/**
 * HTTP/1.1 on node:http and node:https, not fetch: on Node 20, fetch holds a
 * streamed request body in memory (1.1 GB of RSS and ten times curl's time to
 * upload 1 GiB, measured here), where http.request streams it with
 * backpressure in under 100 MiB at curl's speed. Bodies go both ways as
 * streams; nothing here buffers a blob.
 */

export type RequestBody = Uint8Array | AsyncIterable<Uint8Array>;

/**
 * Where a body streams: `put` takes each chunk and says whether to go on at
 * once; when it says no, `room` says when. A throw from either stops the
 * body, and the pipe rejects with it.
 */
export interface BodySink {
  put(chunk: Uint8Array): boolean;
  room(): Promise<void>;
}

export interface SendOptions {
  method: string;
  headers: Record<string, string>;
  body?: RequestBody;
  /** See ANSWER_TIMEOUT_MS. */
  answerTimeoutMs?: number;
  /** See IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
}

/**
 * A socket that stays silent this long (no byte either way) is given up, as a
 * broken connection (curl's --speed-time, at a speed of nothing). A minute, not
 * five: each of the six tries waited it out, and a registry that stopped
 * sending mid-blob held a pull or a CI job for half an hour before it failed.
 * FERRY_REGISTRY_IDLE_SECONDS sets it (see idleTimeoutFrom).
 */
export const IDLE_TIMEOUT_MS = 60 * 1000;
export const IDLE_SECONDS_VARIABLE = 'FERRY_REGISTRY_IDLE_SECONDS';

/**
 * The idle limit in ms FERRY_REGISTRY_IDLE_SECONDS sets (seconds, fractions allowed;
 * at most a socket timeout's longest), or the default; another value is E_USAGE.
 */
export function idleTimeoutFrom(env: NodeJS.ProcessEnv): number {
  const seconds = secondsFromEnv(env, IDLE_SECONDS_VARIABLE, IDLE_TIMEOUT_MS / 1000, {
    atMost: MAX_TIMER_SECONDS,
  });
  return Math.ceil(seconds * 1000);
}
/**
 * The longest the registry may take to answer once the request is sent (its
 * status and headers), and to send a small body read whole (a manifest, a
 * tag list page, a token, an error). The idle timeout alone does not bound
 * them: a registry (or proxy) sending one byte every few minutes is never
 * idle, and would hold Ferry for ever. Blobs stream for as long as they take.
 */
export const ANSWER_TIMEOUT_MS = 5 * 60 * 1000;
/** Bodies up to this size are read to the end so the connection can serve the next request. */
const DRAIN_LIMIT = 64 * 1024;

export class HttpResponse {
  readonly status: number;
  /** Where it came from: after a redirect, perhaps not the registry. */
  readonly url: URL;
  readonly #message: IncomingMessage;
  readonly #request: ClientRequest;
  readonly #answerTimeoutMs: number;

  constructor(url: URL, message: IncomingMessage, request: ClientRequest, answerTimeoutMs: number) {
    this.url = url;
    this.status = message.statusCode ?? 0;
    this.#message = message;
    this.#request = request;
    this.#answerTimeoutMs = answerTimeoutMs;
  }

  /**
   * Starts the clock for a small body read whole: if it has not all arrived
   * within the answer timeout, the body fails as a timed-out connection.
   * Returns the function that stops the clock.
   */
  deadline(): () => void {
    const timer = setTimeout(
      () => this.#message.destroy(timedOut(this.#answerTimeoutMs)),
      this.#answerTimeoutMs,
    );
    return () => clearTimeout(timer);
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  header(name: string): string | undefined {
    const value = this.#message.headers[name.toLowerCase()];
    return Array.isArray(value) ? value.join(', ') : value;
  }

  /** The body as it arrives; a broken connection makes the iteration throw. */
  get body(): AsyncIterable<Buffer> {
    return this.#message;
  }

  /**
   * Streams the body into `into`; rejects on a broken connection. On 'data'
   * events, not a for-await loop over the stream: its promise per chunk cost
   * 0.1 s of CPU per GiB pulled.
   */
  pipe(into: BodySink): Promise<void> {
    const message = this.#message;
    return new Promise((resolve, reject) => {
      let failed = false;
      const fail = (error: unknown): void => {
        if (failed) return;
        failed = true;
        message.destroy();
        reject(error instanceof Error ? error : new Error(String(error)));
      };
      message.on('data', (chunk: Buffer) => {
        if (failed) return;
        try {
          if (into.put(chunk)) return;
        } catch (error) {
          fail(error);
          return;
        }
        message.pause();
        into.room().then(() => {
          if (!failed) message.resume();
        }, fail);
      });
      message.on('end', () => {
        if (!failed) resolve();
      });
      message.on('error', fail);
      message.on('close', () => {
        if (!message.complete)
          fail(Object.assign(new Error('the connection closed mid-body'), { code: 'ECONNRESET' }));
      });
    });
  }

  /** Lets go of a response whose body is not wanted: a small one is drained for reuse, a large one closed. */
  async discard(): Promise<void> {
    // An early answer (a 401 to a PATCH) arrives while the body still flows: stop sending it.
    if (!this.#request.writableFinished) this.#request.destroy();
    if (this.#message.readableEnded || this.#message.destroyed) return;
    if (Number(this.header('content-length') ?? DRAIN_LIMIT + 1) > DRAIN_LIMIT) {
      this.#message.destroy();
      return;
    }
    const stop = this.deadline();
    this.#message.resume();
    await finished(this.#message).catch(() => undefined);
    stop();
  }
}

/** One request on a keep-alive connection; resolves when the response headers arrive. */
export function send(url: URL, options: SendOptions, agents: Agents): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:';
    const request = (secure ? httpsRequest : httpRequest)(url, {
      method: options.method,
      headers: options.headers,
      agent: secure ? agents.https : agents.http,
    });
    let settled = false;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      reject(error instanceof Error ? error : new Error(String(error)));
    };
    const idleTimeoutMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    request.setTimeout(idleTimeoutMs, () => request.destroy(silentFor(idleTimeoutMs)));
    // Once the request is sent, the answer's status and headers must come within the answer timeout.
    const answerTimeoutMs = options.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
    let answer: NodeJS.Timeout | undefined;
    request.on('finish', () => {
      if (settled) return; // answered early (a 401 to an upload)
      answer = setTimeout(() => request.destroy(timedOut(answerTimeoutMs)), answerTimeoutMs);
    });
    request.on('close', () => clearTimeout(answer));
    request.on('error', fail);
    request.on('response', (message) => {
      clearTimeout(answer);
      if (settled) return;
      settled = true;
      resolve(new HttpResponse(url, message, request, answerTimeoutMs));
    });
    const body = options.body;
    if (body === undefined) request.end();
    else if (body instanceof Uint8Array) request.end(body);
    else {
      let started = false;
      let waiting: NodeJS.Timeout | undefined;
      const start = (): void => {
        clearTimeout(waiting);
        // Answered already (a 413, a 401): the body is not wanted, and stays unsent.
        if (started || settled) return;
        started = true;
        // A failing source (a file that cannot be read) rejects with its own error;
        // a registry that answers early and closes is not a failure of the body.
        pipeline(Readable.from(body, { objectMode: false }), request).catch((error: unknown) => {
          fail(error);
          request.destroy();
        });
      };
      if (options.headers.expect?.toLowerCase() === '100-continue') {
        // The body waits for the server's go-ahead, so that a refusal (a proxy's size
        // limit, a challenge) comes before a byte of it, not as a connection closed
        // under it mid-send; as curl does, it goes anyway when none comes in a second.
        request.on('continue', start);
        request.on('response', () => clearTimeout(waiting));
        request.on('close', () => clearTimeout(waiting));
        waiting = setTimeout(start, CONTINUE_WAIT_MS);
        request.flushHeaders();
      } else start();
    }
  });
}

/** How long a body sent with Expect: 100-continue waits for the go-ahead before it goes anyway. */
const CONTINUE_WAIT_MS = 1000;

/** The answer's head (or a small body) did not come within `ms`: a broken connection. */
export function timedOut(ms: number): Error {
  return Object.assign(new Error(`the answer took more than ${duration(ms)} to arrive`), {
    code: 'ETIMEDOUT',
  });
}

/** No byte either way for `ms`: a broken connection, that says it stalled (see stalledFor). */
export function silentFor(ms: number): Error {
  return Object.assign(new Error(`the connection stayed silent for ${duration(ms)}`), {
    code: 'ETIMEDOUT',
    silentMs: ms,
  });
}

/** How long the connection `error` broke stayed silent, when it broke by the idle limit. */
export function stalledFor(error: unknown): number | undefined {
  const ms = (error as { silentMs?: unknown } | undefined)?.silentMs;
  return typeof ms === 'number' ? ms : undefined;
}

/** The limit as it was set (a caller may set 500 ms, or 90 s): whole minutes as minutes. */
export function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000 || ms % 60_000 !== 0) return `${Number((ms / 1000).toFixed(1))} s`;
  return ms === 60_000 ? '1 minute' : `${ms / 60_000} minutes`;
}

export interface Agents {
  http: HttpAgent;
  https: HttpsAgent;
}

/** Keep-alive agents: a publish is dozens of requests to one host. Idle sockets do not hold the process open. */
export function keepAliveAgents(): Agents {
  return { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };
}
