import { connect as connectTcp, isIP, type OnReadOpts, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';
import { silentFor, timedOut, type BodySink } from './http.js';

/**
 * A blob's body straight off its socket, for pull. node:http copies every
 * piece of a body out of the socket's read into a buffer of its own (Node
 * 20's parser), one per 64 KiB at most: with the stream around it, 0.6 s of
 * a 1 GiB pull's 2.1 s of CPU, measured here, on a machine whose two cores
 * the pull and the registry keep busy. Here the socket reads into buffers
 * the caller lends (the hashing sink's), each filled to near its end (a TLS
 * record is 16 KiB) before it moves whole to the hashing worker, which sends
 * it back to be read into again.
 *
 * Only the plainest answer is taken here: HTTP/1.1 or 1.0, 200 or 206, one
 * Content-Length, no Transfer-Encoding, a head of well-formed lines under
 * node:http's 16 KiB. Anything else (a challenge, a redirect to a blob
 * store, an error, a chunked body) is closed unread, `directGet` resolves
 * undefined, and the caller asks again through node:http, which handles
 * them all.
 */
export interface DirectAnswer {
  readonly status: 200 | 206;
  /** The body's length: its Content-Length. */
  readonly length: number;
  header(name: string): string | undefined;
  /** Streams the body into `into`; rejects on a connection that breaks before `length` bytes. */
  pipe(into: BodySink): Promise<void>;
  discard(): Promise<void>;
}

export interface DirectOptions {
  headers: Record<string, string>;
  /** A buffer to read the body into; each one handed to the sink whole or from its start. */
  lend: () => Uint8Array;
  /** The status and headers must arrive within this, once the request is sent. */
  answerTimeoutMs: number;
  /** A socket silent this long (no byte either way) fails as a broken connection. */
  idleTimeoutMs: number;
}

/** node:http's limit, so that what it would refuse is left to it to say so. */
const HEAD_LIMIT = 16 * 1024;
/** A lent buffer with less room left than a socket read can fill moves on. */
const FULL_ENOUGH = 64 * 1024;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A control character other than a tab: node:http refuses one in a header, and so does this. */
function isControl(code: number): boolean {
  return (code < 0x20 && code !== 0x09) || code === 0x7f;
}

function hasControl(text: string): boolean {
  for (let at = 0; at < text.length; at++) if (isControl(text.charCodeAt(at))) return true;
  return false;
}

/** Beyond Latin-1: node:http refuses it in a header (it writes a header one byte a character). */
function beyondLatin1(text: string): boolean {
  for (let at = 0; at < text.length; at++) if (text.charCodeAt(at) > 0xff) return true;
  return false;
}

const HTTP_1 = 'HTTP/1.';
const CR = 0x0d;
const LF = 0x0a;

/**
 * Whether `head[from, to)` holds no control character but a tab and CR LF
 * pairs, as far as can be told yet (a CR may end it, its LF still to come).
 */
function wellFormedSoFar(head: Buffer, from: number, to: number): boolean {
  for (let at = from; at < to; at++) {
    const code = head[at] as number;
    const before = at > 0 ? head[at - 1] : undefined;
    if (code === LF ? before !== CR : before === CR) return false;
    if (code !== CR && code !== LF && isControl(code)) return false;
  }
  return true;
}

/** GET `url` with Connection: close; see DirectAnswer. Rejects when the connection fails. */
export function directGet(url: URL, options: DirectOptions): Promise<DirectAnswer | undefined> {
  const request = requestHead(url, options.headers);
  if (request === undefined) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    new DirectGet(url, request, options, resolve, reject);
  });
}

function requestHead(url: URL, headers: Record<string, string>): string | undefined {
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`];
  for (const [name, value] of Object.entries(headers)) {
    // node:http refuses these with an error of its own: left to it.
    if (!TOKEN.test(name) || hasControl(value) || beyondLatin1(value)) return undefined;
    if (['host', 'connection', 'content-length', 'transfer-encoding'].includes(name.toLowerCase()))
      continue;
    lines.push(`${name}: ${value}`);
  }
  lines.push('connection: close', '', '');
  return lines.join('\r\n');
}

class DirectGet implements DirectAnswer {
  status: 200 | 206 = 200;
  length = 0;
  readonly #socket: Socket;
  readonly #lend: () => Uint8Array;
  readonly #headers = new Map<string, string>();
  #settle: ((answer: DirectAnswer | undefined) => void) | undefined;
  #reject: ((error: Error) => void) | undefined;
  /** Until the head is read, the socket reads into this. */
  #head: Buffer | undefined = Buffer.allocUnsafe(HEAD_LIMIT);
  /** The buffer the socket reads into (the head's, then a lent one), and how much of it is filled. */
  #buffer: Uint8Array;
  #filled = 0;
  /** Body bytes not yet read. */
  #remaining = 0;
  #into: BodySink | undefined;
  /** The answer is over: read whole, failed, or not one this reader takes. */
  #done = false;
  #error: Error | undefined;
  #answerTimer: NodeJS.Timeout | undefined;

  constructor(
    url: URL,
    request: string,
    options: DirectOptions,
    resolve: (answer: DirectAnswer | undefined) => void,
    reject: (error: Error) => void,
  ) {
    this.#settle = resolve;
    this.#reject = reject;
    this.#lend = options.lend;
    this.#buffer = this.#head as Buffer;
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const secure = url.protocol === 'https:';
    const port = Number(url.port || (secure ? 443 : 80));
    // Node reads into what `buffer` returns and hands the same view to `callback`
    // (tls.connect takes it too, as its documentation says; its types lag).
    // Once the answer is over, what is still read (a TLS socket decrypts what it
    // holds) lands in a scratch buffer: the last lent one may have moved.
    let scratch: Uint8Array | undefined;
    const onread: OnReadOpts = {
      buffer: (): Uint8Array =>
        this.#done
          ? (scratch ??= new Uint8Array(FULL_ENOUGH))
          : this.#buffer.subarray(this.#filled),
      callback: (bytes: number, into: Uint8Array): boolean => this.#read(bytes, into),
    };
    const tls: ConnectionOptions & { onread: OnReadOpts } = {
      host,
      port,
      onread,
      ...(isIP(host) ? {} : { servername: host }),
    };
    this.#socket = secure ? connectTls(tls) : connectTcp({ host, port, onread });
    this.#socket.setTimeout(options.idleTimeoutMs, () =>
      this.#socket.destroy(silentFor(options.idleTimeoutMs)),
    );
    this.#socket.once(secure ? 'secureConnect' : 'connect', () => {
      // As node:http writes a head: UTF-8 would send other bytes for a token with an é.
      this.#socket.write(request, 'latin1');
      this.#answerTimer = setTimeout(
        () => this.#socket.destroy(timedOut(options.answerTimeoutMs)),
        options.answerTimeoutMs,
      );
    });
    this.#socket.on('error', (error) => (this.#error ??= error));
    this.#socket.on('close', () => this.#closed());
  }

  header(name: string): string | undefined {
    return this.#headers.get(name.toLowerCase());
  }

  pipe(into: BodySink): Promise<void> {
    if (this.#into !== undefined || this.#head)
      return Promise.reject(new Error('the body is not there to pipe'));
    this.#into = into;
    return new Promise<void>((resolve, reject) => {
      this.#settle = () => resolve();
      this.#reject = reject;
      // The body's first bytes came with the head; the connection may have ended since.
      let going: boolean;
      try {
        going = this.#took(0);
      } catch (error) {
        // The sink refused them: the socket must not stay open, holding the process.
        this.#fail(error);
        return;
      }
      if (this.#done) return;
      if (this.#socket.destroyed) this.#closed();
      else if (going) this.#socket.resume();
    });
  }

  discard(): Promise<void> {
    this.#done = true;
    this.#socket.destroy();
    return Promise.resolve();
  }

  /** A read of `bytes` landed in `into`; false pauses the socket. */
  #read(bytes: number, into: Uint8Array): boolean {
    if (this.#done) return false;
    try {
      if (
        into.buffer !== this.#buffer.buffer ||
        into.byteOffset !== this.#buffer.byteOffset + this.#filled
      )
        throw new Error('a socket read landed outside the buffer it was given');
      if (this.#head) return this.#readHead(bytes);
      return this.#took(Math.min(bytes, this.#remaining));
    } catch (error) {
      this.#fail(error);
      return false;
    }
  }

  #readHead(bytes: number): boolean {
    const head = this.#head as Buffer;
    const searchFrom = Math.max(0, this.#filled - 3);
    const arrived = this.#filled;
    this.#filled += bytes;
    const end = head.subarray(0, this.#filled).indexOf('\r\n\r\n', searchFrom);
    if (end < 0) {
      // An answer that starts otherwise than HTTP/1., a line that ends otherwise
      // than in CR LF, a control character: node:http refuses them at once, and
      // the CR LF CR LF waited for here may never come (the answer timeout).
      const seen = Math.min(this.#filled, HTTP_1.length);
      if (head.toString('latin1', 0, seen) !== HTTP_1.slice(0, seen)) return this.#notMine();
      if (!wellFormedSoFar(head, arrived, this.#filled)) return this.#notMine();
      return this.#filled < HEAD_LIMIT || this.#notMine();
    }
    clearTimeout(this.#answerTimer);
    if (!this.#parseHead(head.toString('latin1', 0, end))) return this.#notMine();
    // The body's first bytes, if they came with the head, start the first lent buffer.
    const early = head.subarray(end + 4, Math.min(this.#filled, end + 4 + this.length));
    this.#head = undefined;
    this.#buffer = this.#lend();
    this.#buffer.set(early);
    this.#filled = early.length;
    this.#remaining = this.length - early.length;
    const settle = this.#settle;
    this.#settle = undefined;
    this.#reject = undefined;
    settle?.(this);
    // Paused until pipe (or discard).
    return false;
  }

  #parseHead(text: string): boolean {
    const [statusLine = '', ...lines] = text.split('\r\n');
    const status = hasControl(statusLine)
      ? undefined
      : /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine)?.[1];
    if (status !== '200' && status !== '206') return false;
    this.status = status === '200' ? 200 : 206;
    const lengths = new Set<string>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (colon < 1 || !TOKEN.test(name) || hasControl(value)) return false;
      if (name === 'transfer-encoding') return false;
      if (name === 'content-length') for (const one of value.split(',')) lengths.add(one.trim());
      const before = this.#headers.get(name);
      this.#headers.set(name, before === undefined ? value : `${before}, ${value}`);
    }
    const [length, ...others] = lengths;
    if (length === undefined || others.length > 0 || !/^\d{1,15}$/.test(length)) return false;
    this.length = Number(length);
    return true;
  }

  /** `bytes` more of the body are in the lent buffer: it moves on once full, or at the end. */
  #took(bytes: number): boolean {
    this.#filled += bytes;
    this.#remaining -= bytes;
    if (this.#remaining > 0 && this.#buffer.length - this.#filled >= FULL_ENOUGH) return true;
    const into = this.#into;
    // Before pipe, the head's read: the buffer waits for it.
    if (into === undefined) return false;
    const going = this.#handOver(into);
    if (this.#remaining === 0) {
      this.#done = true;
      this.#socket.destroy();
      const settle = this.#settle;
      this.#settle = undefined;
      this.#reject = undefined;
      settle?.(this);
      return false;
    }
    this.#buffer = this.#lend();
    if (going) return true;
    into.room().then(() => {
      if (!this.#done && !this.#socket.destroyed) this.#socket.resume();
    }, this.#fail);
    return false;
  }

  /** The filled part of the lent buffer goes to the sink; whether it has room for more. */
  #handOver(into: BodySink): boolean {
    const filled = this.#filled;
    this.#filled = 0;
    return filled === 0 || into.put(this.#buffer.subarray(0, filled));
  }

  /** Not an answer this reader takes: closed, for node:http to ask again. */
  #notMine(): boolean {
    clearTimeout(this.#answerTimer);
    this.#done = true;
    const settle = this.#settle;
    this.#settle = undefined;
    this.#reject = undefined;
    this.#socket.destroy();
    settle?.(undefined);
    return false;
  }

  #closed(): void {
    clearTimeout(this.#answerTimer);
    // Between the head and pipe: pipe takes it from here.
    if (this.#done || (this.#into === undefined && !this.#head)) return;
    // What was read before the break is kept: a resumed pull asks from there.
    if (this.#into !== undefined) {
      try {
        this.#handOver(this.#into);
      } catch (error) {
        this.#fail(error);
        return;
      }
    }
    const when = this.#head
      ? 'before its answer was whole'
      : `after ${this.length - this.#remaining} of its ${this.length} bytes`;
    this.#fail(
      this.#error ??
        Object.assign(new Error(`the connection closed ${when}`), { code: 'ECONNRESET' }),
    );
  }

  readonly #fail = (error: unknown): void => {
    const reject = this.#reject;
    this.#done = true;
    this.#settle = undefined;
    this.#reject = undefined;
    this.#socket.destroy();
    reject?.(error instanceof Error ? error : new Error(String(error)));
  };
}
