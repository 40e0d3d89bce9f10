import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { FerryError, type ErrorCode, type ErrorDetails } from '../../manifest-schema/errors.js';
import type { RegistryCredentials } from './credentials.js';
import { directGet, type DirectAnswer } from './direct.js';
import {
  ANSWER_TIMEOUT_MS,
  duration,
  IDLE_SECONDS_VARIABLE,
  IDLE_TIMEOUT_MS,
  keepAliveAgents,
  send,
  stalledFor,
  type Agents,
  type HttpResponse,
  type RequestBody,
} from './http.js';
import { isLoopbackHost, type RegistryReference } from './reference.js';

/** What a request needs the registry to allow; one token is kept per action. */
export type Action = 'ping' | 'pull' | 'push' | 'delete';

export interface RetryPolicy {
  /** Tries in all, the first included. */
  attempts: number;
  /** The wait before the second try; it doubles up to `maxDelayMs`. */
  firstDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, firstDelayMs: 500, maxDelayMs: 8_000 };

/**
 * How far past the furthest point it had when the count of tries last
 * started a resuming transfer must get to start it again
 * (Transport.resuming): 1 MiB, or a sixteenth of a smaller transfer, over as
 * many tries as it takes within the count. Not a share of a large one, nor
 * of what is left: a link that breaks every few hundred KiB (a proxy that
 * cuts long connections on a slow link) must still bring a bundle however
 * large, and a small bundle over a link that moves a tenth of it at a time
 * still arrives. A trickle of a few bytes a try then fails after the tries:
 * to keep a transfer going, a link (or a hostile proxy) must bring 1 MiB in
 * every `attempts` tries, and the count starts again at most 16 times for a
 * transfer up to 16 MiB. Only a try that ends counts: a link that sends a
 * byte just inside every idle limit keeps its one try going (see README).
 */
export const PROGRESS_BYTES = 1024 * 1024;

/** What a try of a `size`-byte transfer must move it on by (see PROGRESS_BYTES). */
export function progressNeeded(size: number): number {
  return Math.max(1, Math.min(PROGRESS_BYTES, Math.ceil(size / 16)));
}

/** A resuming transfer (Transport.resuming): bytes moved so far, and how many in all. */
export interface Transfer {
  moved: () => number;
  size: number;
}

/** Told before each wait between tries, so a command can say what is happening. */
export interface RetryEvent {
  /** What was being done, e.g. `push blob sha256:…`. */
  operation: string;
  /** The try that failed (1-based) and how many there may be. */
  attempt: number;
  attempts: number;
  delayMs: number;
  /** Why it failed: an HTTP status and registry error code, or a socket error code. Never a secret. */
  reason: string;
}

export interface TransportOptions {
  credentials?: RegistryCredentials;
  retry?: Partial<RetryPolicy>;
  onRetry?: (event: RetryEvent) => void;
  userAgent?: string;
  /** How long an answer may take to arrive (ANSWER_TIMEOUT_MS, 5 minutes, by default). */
  answerTimeoutMs?: number;
  /** How long a connection may stay silent (IDLE_TIMEOUT_MS, a minute, by default). */
  idleTimeoutMs?: number;
}

export interface RequestOptions {
  action: Action;
  headers?: Record<string, string>;
  /** Makes the body afresh for each send (after a challenge or a redirect the stream is spent). */
  body?: () => RequestBody;
}

/**
 * A failure worth another try: the connection broke, or the registry said
 * 5xx, 429 or 408. `final` is what the caller throws when the tries run out.
 */
export class Transient extends Error {
  readonly final: FerryError;
  /** The registry's Retry-After: no other try before this many milliseconds. */
  readonly notBeforeMs: number | undefined;
  constructor(reason: string, final: FerryError, notBeforeMs?: number) {
    super(reason);
    this.name = 'Transient';
    this.final = final;
    this.notBeforeMs = notBeforeMs;
  }
}

/** A registry's `{"errors":[{code,message}]}` body, as far as it could be read. */
export interface RegistryErrorBody {
  code: string;
  message: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504]);
/**
 * The longest Retry-After waited for. A registry that asks for more (Docker
 * Hub's pull limit is per six hours) gets no other try: a CI job fails at
 * once and says when to run again, rather than sitting in its queue.
 */
const RETRY_AFTER_LIMIT_MS = 60_000;
const ERROR_BODY_LIMIT = 64 * 1024;
const TOKEN_LIMIT = 1024 * 1024;

/**
 * HTTP to one registry repository: authentication (Basic, or the Bearer token
 * flow of Harbor, GHCR, ECR and Distribution), redirects (Authorization never
 * follows to another origin: blob stores hand out signed URLs), retries with
 * backoff, and registry errors mapped to Ferry's codes.
 */
export class Transport {
  readonly target: RegistryReference;
  readonly retry: RetryPolicy;
  readonly #auth: Authenticator;
  readonly #onRetry: ((event: RetryEvent) => void) | undefined;
  readonly #userAgent: string;
  readonly #answerTimeoutMs: number | undefined;
  readonly #idleTimeoutMs: number;
  readonly #agents: Agents = keepAliveAgents();
  /** Set by close: a request still under way fails with it, and none is tried again. */
  #closed: Error | undefined;
  /** Aborted by close: a wait between tries ends at once. */
  readonly #closing = new AbortController();

  constructor(target: RegistryReference, options: TransportOptions = {}) {
    this.target = target;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#auth = new Authenticator(target, options.credentials);
    this.#onRetry = options.onRetry;
    this.#userAgent = options.userAgent ?? 'ferry';
    this.#answerTimeoutMs = options.answerTimeoutMs;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    // Every request waiting to try again listens: a burst of them is no leak to warn of.
    setMaxListeners(0, this.#closing.signal);
  }

  /**
   * Breaks off every request still under way (their sockets destroyed) and
   * refuses to try any again: what a command that failed early asked for
   * ahead (Store.readAhead) would otherwise hold the process open until the
   * registry answered or the timeouts ran out, minutes after the error was said.
   */
  close(): void {
    this.#closed ??= new Error(`the client of ${this.target.registry} was closed`);
    this.#closing.abort();
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  #refuseIfClosed(): void {
    if (this.#closed) throw this.#closed;
  }

  /** `/v2/<name>/<rest>` on the registry. */
  url(rest: string): URL {
    return new URL(`/v2/${this.target.repository}/${rest}`, this.target.origin);
  }

  /**
   * Sends one request, answering an authentication challenge once and
   * following redirects. Returns the response whatever its status, except
   * that a broken connection and a 5xx, 429 or 408 throw `Transient`.
   */
  async request(method: string, url: URL, options: RequestOptions): Promise<HttpResponse> {
    for (let challenged = false; ; challenged = true) {
      // What this request showed the registry: another request may have answered a challenge since.
      let sent: string | undefined;
      const { response, at } = await this.follow(method, url, options.body, (current) => {
        const headers = this.#headersFor(current, options.action, options.headers);
        if (current.origin === this.target.origin) sent = headers.authorization;
        return headers;
      });
      if (response.status === 401 && at.origin === this.target.origin && !challenged) {
        const challenge = response.header('www-authenticate');
        await response.discard();
        if (await this.#auth.answer(challenge, options.action, this, sent)) continue;
        throw this.refused();
      }
      if (TRANSIENT_STATUS.has(response.status)) {
        const reason = describeStatus(response.status, await readErrors(response));
        const waitMs = retryAfterMs(response.header('retry-after'), Date.now());
        if (waitMs !== undefined && waitMs > RETRY_AFTER_LIMIT_MS) {
          const seconds = Math.ceil(waitMs / 1000);
          throw this.error(
            'E_REGISTRY',
            `${method} ${url.pathname}: ${reason}, and the registry asks for no other try for ${seconds} s`,
            {
              hint: `the registry limits requests (a rate limit, or maintenance): run again after ${new Date(Date.now() + seconds * 1000).toISOString()}`,
            },
          );
        }
        throw new Transient(
          reason,
          this.error('E_REGISTRY', `${method} ${url.pathname} kept failing: ${reason}`, {
            hint: 'the registry or a proxy in front of it is failing; try again later',
          }),
          waitMs,
        );
      }
      return response;
    }
  }

  /**
   * A GET of the registry whose body is read straight off its socket (see
   * direct.ts), when the answer is a plain 200 or 206; undefined when it is
   * anything else (a challenge, a redirect, an error), to be asked again with
   * `request`, which handles them. A broken connection throws `Transient`.
   */
  async direct(
    url: URL,
    options: { action: Action; headers: Record<string, string>; lend: () => Uint8Array },
  ): Promise<DirectAnswer | undefined> {
    try {
      return await directGet(url, {
        headers: {
          'user-agent': this.#userAgent,
          ...this.#headersFor(url, options.action, options.headers),
        },
        lend: options.lend,
        answerTimeoutMs: this.#answerTimeoutMs ?? ANSWER_TIMEOUT_MS,
        idleTimeoutMs: this.#idleTimeoutMs,
      });
    } catch (error) {
      throw this.broken(error, `GET ${url.pathname}`);
    }
  }

  /** `headers`, and the registry's Authorization where `at` is the registry: never to another origin. */
  #headersFor(
    at: URL,
    action: Action,
    headers: Record<string, string> = {},
  ): Record<string, string> {
    const authorization = at.origin === this.target.origin ? this.#auth.header(action) : undefined;
    return authorization ? { ...headers, authorization } : { ...headers };
  }

  /** GET of a URL outside the registry (a token realm); `headers` go to its origin only. */
  async fetchOutside(url: URL, headers: Record<string, string>): Promise<HttpResponse> {
    const { response } = await this.follow('GET', url, undefined, (current) =>
      current.origin === url.origin ? headers : {},
    );
    return response;
  }

  /**
   * One request and the redirects it leads to. `headers` is asked again for
   * each hop, so credentials go only where they belong (blob stores hand out
   * signed URLs on other hosts, which must not see the registry's Authorization).
   */
  private async follow(
    method: string,
    url: URL,
    body: (() => RequestBody) | undefined,
    headers: (at: URL) => Record<string, string>,
  ): Promise<{ response: HttpResponse; at: URL }> {
    let at = url;
    let currentMethod = method;
    for (let hops = 0; ; hops++) {
      // A hop after close (its redirect drained as the socket was destroyed) is not sent.
      this.#refuseIfClosed();
      const sendBody =
        body && currentMethod !== 'GET' && currentMethod !== 'HEAD' ? body() : undefined;
      let response: HttpResponse;
      try {
        response = await send(
          at,
          {
            method: currentMethod,
            headers: { 'user-agent': this.#userAgent, ...headers(at) },
            idleTimeoutMs: this.#idleTimeoutMs,
            ...(sendBody === undefined ? {} : { body: sendBody }),
            ...(this.#answerTimeoutMs === undefined
              ? {}
              : { answerTimeoutMs: this.#answerTimeoutMs }),
          },
          this.#agents,
        );
      } catch (error) {
        // A body that cannot be read fails with its own FerryError, not as a network error.
        if (error instanceof FerryError) throw error;
        throw this.broken(
          error,
          `${method} ${at.origin === this.target.origin ? '' : at.origin}${at.pathname}`,
        );
      }
      const location = response.header('location');
      if (!REDIRECTS.has(response.status) || !location) return { response, at };
      let next: URL;
      try {
        next = this.resolve(location, at, `the redirect from ${url.pathname}`);
      } catch (error) {
        await response.discard();
        throw error;
      }
      // A write (a manifest, a chunk, a delete) goes to the registry only, and a 303
      // (see other) to it is no write done: followed, a proxy's login page answering
      // 200 would be taken for a stored manifest or a deleted version. Left to the caller.
      if (
        currentMethod !== 'GET' &&
        currentMethod !== 'HEAD' &&
        (response.status === 303 || next.origin !== this.target.origin)
      )
        return { response, at };
      await response.discard();
      if (hops === 5) {
        throw this.error('E_REGISTRY', `redirected more than 5 times from ${url.pathname}`, {
          hint: 'check the registry and any proxy in front of it',
        });
      }
      at = next;
      if (response.status === 303) currentMethod = 'GET';
    }
  }

  /**
   * A URL the registry hands out (a redirect's Location, an upload's
   * Location, a tag list's Link), resolved against the request's URL. One
   * that does not parse, or leads off HTTP(S) (file:, ftp:, data:), is the
   * registry's fault and said so at once: left to node:http it would throw a
   * TypeError (an internal error) or be retried six times as "cannot reach".
   */
  resolve(location: string, base: URL, what: string): URL {
    let url: URL | undefined;
    try {
      url = new URL(location, base);
    } catch {
      url = undefined;
    }
    if (url?.protocol === 'https:' || (url?.protocol === 'http:' && this.plainAllowed(url)))
      return url;
    // Followed, it would carry a bundle (an upload's PATCH) or a blob in clear, where
    // an HTTPS registry promised neither: behind a TLS proxy, a misconfigured registry
    // builds its upload locations with http:.
    if (url?.protocol === 'http:')
      throw this.error(
        'E_REGISTRY',
        `${what} leads to ${url.origin}, over plain HTTP, from registry ${this.target.registry} (${this.target.origin})`,
        {
          hint: this.target.origin.startsWith('https:')
            ? 'a registry behind a TLS proxy builds http: links when the proxy does not say the request came over HTTPS: have it send X-Forwarded-Proto: https (or set Distribution’s http.relativeurls)'
            : 'Ferry speaks plain HTTP only to this machine unless --insecure is given: use it only on a network you trust',
        },
      );
    throw this.error(
      'E_REGISTRY',
      `${what} leads to ${JSON.stringify(location.slice(0, 200))}, which is not an HTTP(S) URL`,
      {
        hint: 'the registry or a proxy in front of it is misconfigured (or hostile); Ferry follows only http: and https:',
      },
    );
  }

  /**
   * Whether plain HTTP may go to `url`: only where the registry itself is spoken
   * to in clear (loopback, or --insecure), and then to loopback only, unless
   * --insecure. A registry reached over HTTPS never leads anywhere in clear.
   */
  plainAllowed(url: URL): boolean {
    return (
      this.target.origin.startsWith('http:') &&
      (isLoopbackHost(url.hostname) || this.target.insecure)
    );
  }

  /** A response body of at most `limit` bytes (undefined when larger); a broken connection is Transient. */
  async read(response: HttpResponse, limit: number, doing: string): Promise<Buffer | undefined> {
    try {
      return await readCapped(response, limit);
    } catch (error) {
      throw this.broken(error, doing);
    }
  }

  /** Runs `attempt` until it succeeds, fails for good, or the tries run out; waits with backoff between. */
  retrying<T>(operation: string, attempt: (count: number) => Promise<T>): Promise<T> {
    return this.resuming(operation, { moved: () => 0, size: 0 }, attempt);
  }

  /**
   * `retrying` for a transfer that resumes where the last try stopped:
   * `transfer.moved` (bytes moved so far) makes the tries count in a row
   * without progress. A try that moved the transfer on, past its furthest
   * point by progressNeeded (1 MiB, or a sixteenth of a smaller transfer),
   * starts the count and the backoff again, so a long download over a link
   * that keeps breaking finishes, while one that stalls for good fails after
   * `attempts` tries that moved nothing, and one that trickles (a little a
   * try, then silence or a break) after `attempts` tries that moved it less,
   * with an error that says it trickled. Each new start needs that much
   * more, so the tries stay bounded by the transfer's size.
   */
  async resuming<T>(
    operation: string,
    transfer: Transfer,
    attempt: (count: number) => Promise<T>,
  ): Promise<T> {
    const needed = progressNeeded(transfer.size);
    let mark = transfer.moved();
    // Since the count last started: the tries that moved the transfer too little, those of
    // them that moved it at all, and the furthest point it started from.
    let short = 0;
    let trickles = 0;
    let from = mark;
    for (let count = 1, failed = 0; ; count++) {
      this.#refuseIfClosed();
      try {
        return await attempt(count);
      } catch (error) {
        this.#refuseIfClosed();
        if (!(error instanceof Transient)) throw error;
        // Past the furthest point yet, not merely past the last try's: an upload the
        // registry dropped starts again from 0, and its retaking of old ground is no progress.
        // A few bytes past it are none either, or a link that trickles goes on for ever; what
        // the tries since the count last started moved adds up, so a slow link whose
        // connections break after less than that still finishes.
        const now = transfer.moved();
        if (now - from >= needed) {
          failed = 0;
          short = trickles = 0;
          from = now;
        } else {
          short++;
          if (now > mark) trickles++;
        }
        mark = Math.max(mark, now);
        failed++;
        // One short try and then nothing is a link that died, said as such; more is a trickle.
        if (failed >= this.retry.attempts)
          throw trickles > 1
            ? this.#trickled(error, operation, needed, short, mark - from)
            : error.final;
        const delayMs = Math.max(
          error.notBeforeMs ?? 0,
          Math.min(
            this.retry.maxDelayMs,
            this.retry.firstDelayMs * 2 ** (failed - 1) * (1 + Math.random() / 4),
          ),
        );
        this.#onRetry?.({
          operation,
          attempt: failed,
          attempts: this.retry.attempts,
          delayMs: Math.round(delayMs),
          reason: error.message,
        });
        // Cut short by close, after which the next turn refuses.
        await sleep(delayMs, undefined, { signal: this.#closing.signal }).catch(() => undefined);
      }
    }
  }

  /**
   * The last word of a transfer whose last `tries` tries moved it on by
   * `bytes` in all, less than `needed`: its code, with what
   * the last try ended with, and a hint at the link rather than at the registry.
   */
  #trickled(
    last: Transient,
    operation: string,
    needed: number,
    tries: number,
    bytes: number,
  ): FerryError {
    const final = last.final;
    const least = needed === PROGRESS_BYTES ? '1 MiB' : `${needed} bytes`;
    const silentMs = stalledFor(final.details.cause);
    return this.error(
      final.code,
      `registry ${this.target.registry} trickled: ${tries} tries in a row to ${operation} in ${this.target.repository} moved it on by ${bytes} bytes in all, less than the ${least} that starts the count again; the last ${silentMs === undefined ? `ended with ${last.message}` : `stalled: nothing arrived for ${duration(silentMs)}`}`,
      {
        ...final.details,
        hint: `the link to the registry, or a proxy in front of it, passes a little and then stops, again and again; check them and the network. Only moving the transfer on by ${least} starts the count of tries again${silentMs === undefined ? '' : `; on a link that can be silent longer and then go on, raise ${IDLE_SECONDS_VARIABLE} (${silentMs / 1000} s now)`}`,
        cause: final,
      },
    );
  }

  /**
   * The FerryError for an unexpected response: the status and the registry's
   * own error codes and messages, mapped to Ferry's codes.
   */
  async fail(
    response: HttpResponse,
    doing: string,
    details: ErrorDetails = {},
    notFound: ErrorCode = 'E_REGISTRY',
  ): Promise<FerryError> {
    // Where the registry redirected it (a blob store's signed URL), Ferry sends no
    // credentials: a refusal there is not about the account.
    if (
      (response.status === 401 || response.status === 403) &&
      response.url.origin !== this.target.origin
    ) {
      await response.discard();
      return this.error(
        'E_REGISTRY',
        `${response.url.origin}, where registry ${this.target.registry} redirected the request to ${doing}, refused it (${response.status})`,
        {
          ...details,
          hint: 'the registry hands out links its storage refuses: a signed URL that expired (check the clocks of the registry and its storage) or storage the registry cannot grant access to',
        },
      );
    }
    if (response.status === 401) {
      await response.discard();
      return this.refused();
    }
    if (REDIRECTS.has(response.status)) {
      await response.discard();
      // Where, without its query: a signed link or a login's state is no one's to read.
      const to = URL.parse(response.header('location') ?? '', response.url.href);
      return this.error(
        'E_REGISTRY',
        `registry ${this.target.registry} answered the request to ${doing} with ${response.status} (to ${to ? `${to.origin}${to.pathname}` : 'nowhere'}), and did not do it`,
        {
          ...details,
          hint: 'Ferry writes to the registry itself and takes a redirect for no write done: a proxy in front of the registry that sends requests to a login page must let /v2/ through',
        },
      );
    }
    const errors = await readErrors(response);
    const said = (...codes: string[]): boolean => errors.some((e) => codes.includes(e.code));
    const status = response.status;
    // The first rule that applies gives the code and the hint.
    const rules: Array<[boolean, ErrorCode, string]> = [
      [
        status === 403 || said('DENIED'),
        'E_REGISTRY_AUTH',
        `the account ${this.#auth.who()} may not do this in ${this.target.repository}; ask for push (or delete) rights`,
      ],
      [
        said('DIGEST_INVALID', 'SIZE_INVALID'),
        'E_DIGEST_MISMATCH',
        'the bytes sent are not the ones named: did the file change while it was sent?',
      ],
      [
        said('BLOB_UNKNOWN'),
        'E_BLOB_UNKNOWN',
        'the repository lacks a blob its manifests need: publish the version again',
      ],
      [
        said('MANIFEST_UNKNOWN', 'NAME_UNKNOWN'),
        'E_MANIFEST_UNKNOWN',
        'check the tag or digest, and the repository name',
      ],
      // A bare 404 means what the caller asked for is not there (or no registry is).
      [
        status === 404 && !errors.length && notFound !== 'E_REGISTRY',
        notFound,
        'check the tag or digest, and the repository name',
      ],
      [
        said('MANIFEST_BLOB_UNKNOWN'),
        'E_REGISTRY',
        'push every blob the manifest refers to before the manifest',
      ],
      // A blob goes in one request (see RegistryClient.pushBlob): a proxy's limit refuses it whole.
      [
        status === 413,
        'E_REGISTRY',
        'the request is over a size limit of the registry or a proxy in front of it (nginx: client_max_body_size); a blob is uploaded in one request, as docker push sends a layer, so the limit must allow the largest bundle',
      ],
      [
        status === 405 || said('UNSUPPORTED'),
        'E_REGISTRY',
        'the registry does not allow this operation (Distribution deletes only with storage.delete.enabled)',
      ],
      [
        status === 404,
        'E_REGISTRY',
        'is this an OCI registry? check the host, port and repository name',
      ],
    ];
    const [, code, hint] = rules.find(([applies]) => applies) ?? [
      true,
      'E_REGISTRY',
      'the registry refused the request; its own words follow the status',
    ];
    return this.error(
      code,
      `registry ${this.target.registry} refused to ${doing}: ${describeStatus(status, errors)}`,
      { ...details, hint },
    );
  }

  /** A FerryError naming this registry and repository. */
  error(code: ErrorCode, message: string, details: ErrorDetails): FerryError {
    return new FerryError(code, message, {
      registry: this.target.registry,
      repository: this.target.repository,
      ...details,
    });
  }

  /**
   * A failed connection: a Transient to retry when it may heal (refused, reset,
   * cut mid-body, timed out), the final error at once when it will not (no
   * such host, a certificate that does not verify).
   */
  broken(error: unknown, doing: string): Transient | FerryError {
    const reason = networkReason(error);
    // node:http's parser refused the answer (headers over 16 KiB, a malformed status line
    // or chunk): the registry answered, with something that is not HTTP/1.1. Trying again
    // gets the same answer, and "cannot reach" would send the operator to the network.
    if (reason.startsWith('HPE_')) {
      return this.error(
        'E_REGISTRY',
        `registry ${this.target.registry} sent an answer that is not HTTP/1.1 (${reason}) to ${doing}`,
        {
          hint:
            reason === 'HPE_HEADER_OVERFLOW'
              ? 'its headers are over 16 KiB: check the registry and any proxy in front of it'
              : 'check the registry and any proxy in front of it',
          cause: error,
        },
      );
    }
    const silentMs = stalledFor(error);
    if (silentMs !== undefined) {
      return new Transient(
        reason,
        this.error(
          'E_REGISTRY_UNREACHABLE',
          `registry ${this.target.registry} stalled: nothing arrived for ${duration(silentMs)} to ${doing} in ${this.target.repository}`,
          {
            hint: `the registry or a proxy in front of it stops sending; check them and the network. On a link that can be silent longer and then go on, raise ${IDLE_SECONDS_VARIABLE} (${silentMs / 1000} s now)`,
            cause: error,
          },
        ),
      );
    }
    const tls = /CERT|SSL|TLS|SELF_SIGNED|ALTNAME/i.test(reason);
    const final = this.error(
      'E_REGISTRY_UNREACHABLE',
      `cannot reach registry ${this.target.registry} (${reason}) to ${doing}`,
      {
        hint: tls
          ? `its certificate does not verify; for a private CA, point NODE_EXTRA_CA_CERTS at the CA's certificate`
          : `check that ${this.target.origin} is up and reachable from here (proxy, firewall, DNS)`,
        cause: error,
      },
    );
    return tls || reason === 'ENOTFOUND' ? final : new Transient(reason, final);
  }

  private refused(): FerryError {
    const who = this.#auth.who();
    return this.error(
      'E_REGISTRY_AUTH',
      who === 'anonymous'
        ? `registry ${this.target.registry} needs credentials for ${this.target.repository}`
        : `registry ${this.target.registry} refused the credentials of ${who}`,
      {
        hint:
          who === 'anonymous'
            ? `set FERRY_REGISTRY_USER and FERRY_REGISTRY_PASSWORD, or run docker login ${this.target.registry}`
            : `check the user name and password (or token), and that it may access ${this.target.repository}`,
      },
    );
  }
}

/**
 * Answers `WWW-Authenticate` challenges. Basic: the credentials, only once a
 * registry asks. Bearer: a token from the challenge's realm for the scope the
 * registry named (or this repository and action), kept until it expires.
 */
class Authenticator {
  readonly #target: RegistryReference;
  readonly #credentials: RegistryCredentials | undefined;
  #basic = false;
  /** By action: the token, until when it is good, and the challenge it answered (see `answer`). */
  readonly #tokens = new Map<Action, { value: string; until: number; key: string }>();
  /** Token requests under way, by action, realm, service and scope. */
  readonly #fetching = new Map<string, Promise<{ value: string; until: number }>>();

  constructor(target: RegistryReference, credentials: RegistryCredentials | undefined) {
    this.#target = target;
    this.#credentials = credentials;
  }

  who(): string {
    return this.#credentials ? this.#credentials.toString() : 'anonymous';
  }

  header(action: Action): string | undefined {
    if (this.#basic && this.#credentials) return this.#credentials.basic();
    const token = this.held(action);
    return token ? `Bearer ${token.value}` : undefined;
  }

  /** The token a request for `action` sends. */
  private held(action: Action): { value: string; key: string } | undefined {
    // A push token also grants pull, so a publish does not fetch a second one.
    return (
      this.valid(action) ??
      (action === 'pull' || action === 'ping' ? this.valid('push') : undefined)
    );
  }

  /**
   * True when there is something new to send; false when the request should
   * stay refused. `sent`: the Authorization the refused request carried.
   * Requests sent at once (a pull's first reads) are refused at once: the
   * first answers the challenge, the others send what it got, and a token
   * being fetched is waited for, not fetched again.
   */
  async answer(
    header: string | undefined,
    action: Action,
    transport: Transport,
    sent: string | undefined,
  ): Promise<boolean> {
    const challenge = header ? parseChallenge(header) : undefined;
    if (!challenge) return false;
    const scope = challenge.params.scope ?? defaultScope(this.#target.repository, action);
    const key = JSON.stringify([action, challenge.params.realm, challenge.params.service, scope]);
    const now = this.header(action);
    // A token got since for another challenge (a GET's pull where this POST needs pull,push)
    // would only be refused again: this one is answered for itself.
    if (
      now !== undefined &&
      now !== sent &&
      (challenge.scheme !== 'bearer' || this.#basic || this.held(action)?.key === key)
    )
      return true;
    if (challenge.scheme === 'basic') {
      if (this.#basic || !this.#credentials) return false;
      this.#basic = true;
      return true;
    }
    if (challenge.scheme !== 'bearer' || !challenge.params.realm) return false;
    let fetching = this.#fetching.get(key);
    if (!fetching) {
      this.#tokens.delete(action);
      fetching = this.fetchToken(
        challenge.params.realm,
        challenge.params.service,
        scope,
        transport,
      ).finally(() => this.#fetching.delete(key));
      this.#fetching.set(key, fetching);
    }
    this.#tokens.set(action, { ...(await fetching), key });
    return true;
  }

  private valid(action: Action): { value: string; key: string } | undefined {
    const token = this.#tokens.get(action);
    return token && token.until > Date.now() ? token : undefined;
  }

  private async fetchToken(
    realm: string,
    service: string | undefined,
    scope: string | undefined,
    transport: Transport,
  ): Promise<{ value: string; until: number }> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw transport.error(
        'E_REGISTRY_AUTH',
        `the registry's token realm ${JSON.stringify(realm)} is not a URL`,
        {
          hint: 'the registry is misconfigured (auth.token.realm)',
        },
      );
    }
    // A registry reached over HTTPS that names an http: realm would have the password
    // sent in clear, even to a port on this machine that another user may hold.
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && transport.plainAllowed(url))) {
      throw transport.error(
        'E_REGISTRY_AUTH',
        `the registry sends credentials to ${url.origin}, which is not HTTPS`,
        {
          hint: 'refused so that a password never crosses the network in clear; use --insecure only on a network you trust',
        },
      );
    }
    if (service) url.searchParams.set('service', service);
    for (const one of scope?.split(' ') ?? []) if (one) url.searchParams.append('scope', one);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#credentials) headers.authorization = this.#credentials.basic();
    const response = await transport.retrying(`get a token from ${url.origin}`, async () => {
      const answer = await transport.fetchOutside(url, headers);
      if (TRANSIENT_STATUS.has(answer.status)) {
        await answer.discard();
        throw new Transient(
          `token service said ${answer.status}`,
          transport.error(
            'E_REGISTRY_AUTH',
            `the token service ${url.origin} kept failing (${answer.status})`,
            {
              hint: 'try again later',
            },
          ),
        );
      }
      return answer;
    });
    if (response.status === 401 || response.status === 403) {
      await response.discard();
      throw transport.error(
        'E_REGISTRY_AUTH',
        `the token service ${url.origin} refused ${this.who()} for ${scope ?? 'the registry'}`,
        {
          hint: this.#credentials
            ? 'check the user name and password (or token) and the rights they carry'
            : `set FERRY_REGISTRY_USER and FERRY_REGISTRY_PASSWORD, or run docker login ${this.#target.registry}`,
        },
      );
    }
    const text = response.ok
      ? await transport.read(response, TOKEN_LIMIT, `read a token from ${url.origin}`)
      : undefined;
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown } = {};
    try {
      body = text ? (JSON.parse(text.toString('utf8')) as typeof body) : {};
    } catch {
      // reported below: no token
    }
    const value = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof value !== 'string' || !value) {
      await response.discard();
      throw transport.error(
        'E_REGISTRY_AUTH',
        `the token service ${url.origin} answered ${response.status} without a token`,
        { hint: 'the registry or its token service is misconfigured' },
      );
    }
    // Sent as it is in Authorization: one node:http refuses in a header (a control
    // character, one beyond Latin-1) failed every request, retried as "cannot reach".
    if (/[^\t\x20-\x7e\x80-\xff]/.test(value))
      throw transport.error(
        'E_REGISTRY_AUTH',
        `the token service ${url.origin} answered a token that cannot be sent in an HTTP header (it holds a control character or a character beyond Latin-1)`,
        { hint: 'the registry or its token service is misconfigured (or hostile)' },
      );
    // Docker's token spec: 60 s when unsaid. Renew a little early, never trust a huge value.
    const seconds =
      typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    return { value, until: Date.now() + Math.min(seconds, 3600) * 1000 * 0.9 };
  }
}

function defaultScope(repository: string, action: Action): string | undefined {
  if (action === 'ping') return undefined;
  return `repository:${repository}:${action === 'push' ? 'pull,push' : action}`;
}

/** `Bearer realm="…",service="…",scope="repository:a/b:pull,push"`: quoted values may hold commas. */
export function parseChallenge(
  header: string,
): { scheme: string; params: Record<string, string> } | undefined {
  const match = /^\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s*(.*)$/.exec(header);
  if (!match) return undefined;
  const [, scheme = '', rest = ''] = match;
  const params: Record<string, string> = {};
  const param = /\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*(?:,|$)/y;
  for (let found = param.exec(rest); found; found = param.exec(rest)) {
    const [, key = '', quoted, token] = found;
    params[key.toLowerCase()] =
      quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : (token ?? '');
    if (param.lastIndex >= rest.length) break;
  }
  return { scheme: scheme.toLowerCase(), params };
}

/** The body of a response, or undefined when it is larger than `limit` bytes (then left unread). */
export async function readCapped(
  response: HttpResponse,
  limit: number,
): Promise<Buffer | undefined> {
  if (Number(response.header('content-length') ?? 0) > limit) {
    await response.discard();
    return undefined;
  }
  // A body dripping in a byte at a time is never idle: the answer timeout bounds it.
  const stop = response.deadline();
  try {
    const parts: Buffer[] = [];
    let total = 0;
    for await (const chunk of response.body) {
      total += chunk.length;
      if (total > limit) {
        await response.discard();
        return undefined;
      }
      parts.push(chunk);
    }
    return Buffer.concat(parts);
  } finally {
    stop();
  }
}

async function readErrors(response: HttpResponse): Promise<RegistryErrorBody[]> {
  try {
    const body = await readCapped(response, ERROR_BODY_LIMIT);
    const parsed = body?.length ? (JSON.parse(body.toString('utf8')) as unknown) : undefined;
    const errors = (parsed as { errors?: unknown } | undefined)?.errors;
    if (!Array.isArray(errors)) return [];
    return errors
      .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null)
      .map((e) => ({
        code: typeof e.code === 'string' ? e.code : 'UNKNOWN',
        message: typeof e.message === 'string' ? e.message.slice(0, 500) : '',
      }));
  } catch {
    return [];
  }
}

/** A Retry-After header in milliseconds from `now`: delta-seconds or an HTTP date; undefined when absent or unreadable. */
function retryAfterMs(header: string | undefined, now: number): number | undefined {
  const value = header?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function describeStatus(status: number, errors: readonly RegistryErrorBody[]): string {
  const said = errors.map((e) => (e.message ? `${e.code} (${e.message})` : e.code)).join('; ');
  return said ? `${status} ${said}` : `${status}`;
}

/** The socket-level reason under fetch's "fetch failed", e.g. ECONNREFUSED or "other side closed". */
function networkReason(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && !code.startsWith('UND_ERR')) return code;
    if (!(current.cause instanceof Error)) return current.message;
    current = current.cause;
  }
  return String(current);
}
