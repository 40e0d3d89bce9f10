import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of a real registry that breaks things on purpose:
 * it cuts a connection after some bytes of a request or response body (a
 * dropped link mid-transfer; the registry sees its client vanish and keeps
 * what arrived), or answers one request 503 without forwarding it (a failing
 * load balancer). Each fault fires once, on the `nth` matching request; then
 * traffic flows (unless it fires on `every` one). It counts the body bytes it
 * forwards each way.
 */
export interface Fault {
  method: string;
  /** Matched against the path (query excluded). */
  path?: RegExp;
  /** 1-based: fire on this matching request (default the first). */
  nth?: number;
  /** Fire on every matching request from the `nth` on, not once: a link that is always like this. */
  every?: boolean;
  /** Forward this many request body bytes, then cut both connections. */
  cutRequestAfter?: number;
  /**
   * Forward this many request body bytes, then read no more of it and answer
   * nothing, the client's connection held open (a registry or proxy that
   * stopped taking the upload); the registry's request is cut once the client
   * goes away.
   */
  stallRequestAfter?: number;
  /** Forward this many response body bytes, then cut the client's connection. */
  cutResponseAfter?: number;
  /**
   * Forward this many response body bytes, then send nothing more, the
   * client's connection held open and silent until the client goes away (a
   * link that trickles, or a proxy that stops passing the download on).
   */
  stallResponseAfter?: number;
  /** Answer this status without forwarding. */
  status?: number;
  /**
   * With `status`: answer at once, before the request body is read, then
   * drain it as it keeps coming (as a Node server, or nginx's lingering close,
   * does), instead of answering after the body: a registry that refuses an
   * upload from its headers alone.
   */
  early?: boolean;
  /**
   * Forward, then replace the Range header of the registry's answer with this
   * (null: drop it): a registry that says it holds more, less, or nothing.
   */
  answerRange?: string | null;
  /** Answer 307 to the same path on this origin (a blob store's signed URL, say). */
  redirectTo?: string;
  /**
   * Forward it only once a request whose path matches this has arrived: proof
   * that the client had both in flight at once. One that never comes (the
   * client waits for this answer first) is answered 400 after 5 s.
   */
  heldUntil?: RegExp;
  /**
   * Forward it only once this resolves: the test runs something else (another
   * writer, straight to the registry) while this request waits.
   */
  heldFor?: () => Promise<unknown>;
  /** Never answered: held until the client goes away (then listed in `brokenOff`). */
  neverAnswered?: boolean;
  /**
   * Read the request's body and drop it: forwarded with Content-Length 0 (a
   * registry that takes the body's length but not its bytes).
   */
  dropBody?: boolean;
}

/**
 * How a registry Ferry cannot run here answers uploads, as its users report
 * it, put in front of the real one: every matching request, not once.
 */
export interface Dialect {
  /**
   * GHCR: a PATCH with a Content-Range whose body is over this many bytes is
   * refused 416 with GHCR's words, and not forwarded.
   */
  rangedPatchLimit?: number;
  /** ECR: every PATCH answer's Range is the first one its upload got. */
  staleRange?: boolean;
  /**
   * GHCR and Docker Hub answer every DELETE 405 UNSUPPORTED, ECR 404
   * (fluxcd/pkg#328): they delete only through their own APIs. Not forwarded.
   */
  refusesDeletes?: 405 | 404;
  /**
   * ECR (and Harbor without the project): a repository nobody made by hand
   * does not exist, and a push does not make it: every request answers 404
   * NAME_UNKNOWN in ECR's words. Not forwarded.
   */
  noRepository?: boolean;
  /**
   * A registry that keeps what arrived of a PATCH cut by `cutRequestAfter`
   * and says so when asked (GET on the upload's location). Distribution does
   * not (a cut leaves its upload state behind the bytes, and it refuses the
   * upload after), so here the cut ends the request to the registry cleanly
   * after those bytes (sent without a Content-Length, as a streamed PATCH),
   * only the client's connection is broken, and a GET on the cut upload's
   * location is forwarded to the location the registry then gave it.
   */
  keepsCutUploads?: boolean;
}

export interface FaultProxy {
  host: string;
  reference(name: string): string;
  /** Request body bytes forwarded to the registry, by method. */
  up: Record<string, number>;
  /** Response body bytes forwarded to the client. */
  down: number;
  /** Faults that fired. */
  fired: Fault[];
  /** Every request, in order, with the Range header it carried. */
  requests: Array<{
    method: string;
    path: string;
    range?: string;
    contentRange?: string;
    authorization: boolean;
  }>;
  /** The most requests under way at once (arrived, not yet answered). */
  mostAtOnce: number;
  /** Paths of `neverAnswered` requests whose client went away. */
  brokenOff: string[];
  stop(): Promise<void>;
}

export async function startFaultProxy(
  target: string,
  faults: Fault[],
  dialect: Dialect = {},
): Promise<FaultProxy> {
  const [targetHost, targetPort] = target.split(':');
  const seen = new Map<Fault, number>();
  const arrived: string[] = [];
  const waiting: Array<{ until: RegExp; go: () => void }> = [];
  const arrival = (until: RegExp): Promise<boolean> =>
    arrived.some((path) => until.test(path))
      ? Promise.resolve(true)
      : new Promise((resolve) => {
          const timer = setTimeout(() => resolve(false), 5000);
          waiting.push({
            until,
            go: () => {
              clearTimeout(timer);
              resolve(true);
            },
          });
        });
  const proxy: Omit<FaultProxy, 'host' | 'reference' | 'stop'> = {
    up: {},
    down: 0,
    fired: [],
    requests: [],
    mostAtOnce: 0,
    brokenOff: [],
  };
  let atOnce = 0;
  const pick = (req: IncomingMessage): Fault | undefined => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    arrived.push(path);
    for (const one of waiting.filter((w) => w.until.test(path))) {
      waiting.splice(waiting.indexOf(one), 1);
      one.go();
    }
    proxy.requests.push({
      method: req.method ?? '',
      path,
      range: req.headers.range,
      contentRange: req.headers['content-range'],
      authorization: req.headers.authorization !== undefined,
    });
    const matching = faults.filter(
      (fault) => fault.method === req.method && (!fault.path || fault.path.test(path)),
    );
    for (const fault of matching) seen.set(fault, (seen.get(fault) ?? 0) + 1);
    const fault = matching.find((one) =>
      one.every === true
        ? (seen.get(one) ?? 0) >= (one.nth ?? 1)
        : seen.get(one) === (one.nth ?? 1),
    );
    if (fault) proxy.fired.push(fault);
    return fault;
  };
  const firstRange = new Map<string, string>();
  /**
   * keepsCutUploads: a cut upload's path, and where the registry has it since
   * (known once it answered the cut request: a GET that comes first waits).
   */
  const keptAt = new Map<string, Promise<string | undefined>>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    proxy.mostAtOnce = Math.max(proxy.mostAtOnce, ++atOnce);
    res.on('close', () => atOnce--);
    const fault = pick(req);
    if (dialect.noRepository && /^\/v2\/.+\/(blobs|manifests|tags)\//.test(req.url ?? '')) {
      req.resume();
      const name = /^\/v2\/(.+?)\/(?:blobs|manifests|tags)\//.exec(req.url ?? '')?.[1] ?? '';
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          errors: [
            {
              code: 'NAME_UNKNOWN',
              message: `The repository with name '${name}' does not exist in the registry with id '123456789012'`,
            },
          ],
        }),
      );
      return;
    }
    if (dialect.refusesDeletes !== undefined && req.method === 'DELETE') {
      req.resume();
      res.writeHead(dialect.refusesDeletes, { 'content-type': 'application/json' });
      res.end(
        dialect.refusesDeletes === 405
          ? '{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}'
          : '{"errors":[]}',
      );
      return;
    }
    const limit = dialect.rangedPatchLimit;
    if (
      limit !== undefined &&
      req.method === 'PATCH' &&
      req.headers['content-range'] !== undefined &&
      Number(req.headers['content-length']) > limit
    ) {
      req.resume();
      req.on('end', () => {
        res.writeHead(416, { 'content-type': 'application/json' });
        res.end(
          `{"errors":[{"code":"REQUESTED_RANGE_NOT_SATISFIABLE","message":"the request body is too large and exceeds the maximum permissible limit of ${(limit / 1024 / 1024).toFixed(2)}MiB"}]}`,
        );
      });
      return;
    }
    if (fault?.neverAnswered) {
      const path = (req.url ?? '').split('?')[0] ?? '';
      req.resume();
      res.on('close', () => proxy.brokenOff.push(path));
      return;
    }
    if (fault?.heldFor) {
      req.pause();
      void fault.heldFor().then(
        () => {
          forward(req, res, fault);
          req.resume();
        },
        () => res.socket?.destroy(),
      );
      return;
    }
    if (fault?.heldUntil) {
      req.pause();
      void arrival(fault.heldUntil).then((came) => {
        if (came) {
          forward(req, res, fault);
          req.resume();
        }
        // Not one the client retries: a test that waits in vain fails at once.
        else
          res
            .writeHead(400, { 'content-type': 'application/json' })
            .end(
              '{"errors":[{"code":"UNSUPPORTED","message":"held: what it waited for never came"}]}',
            );
      });
      return;
    }
    forward(req, res, fault);
  });
  const forward = (req: IncomingMessage, res: ServerResponse, fault: Fault | undefined): void => {
    if (fault?.redirectTo) {
      req.resume();
      res.writeHead(307, {
        location: `${fault.redirectTo}${req.url ?? ''}`,
        'content-length': '0',
      });
      res.end();
      return;
    }
    if (fault?.status && fault.early) {
      res.writeHead(fault.status, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAVAILABLE","message":"injected by the test proxy"}]}');
      req.resume();
      return;
    }
    if (fault?.status) {
      req.resume();
      req.on('end', () => {
        res.writeHead(fault.status as number, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"UNAVAILABLE","message":"injected by the test proxy"}]}');
      });
      return;
    }
    const path = (req.url ?? '').split('?')[0] ?? '';
    const kept = req.method === 'GET' ? keptAt.get(path) : undefined;
    if (kept) {
      req.pause();
      void kept.then((url) => {
        keptAt.delete(path);
        if (url) req.url = url;
        forward(req, res, fault);
        req.resume();
      });
      return;
    }
    const keepCut = dialect.keepsCutUploads && fault?.cutRequestAfter !== undefined;
    const headers = { ...req.headers };
    if (fault?.dropBody) {
      headers['content-length'] = '0';
      delete headers['transfer-encoding'];
    }
    // Sent chunked, so the registry takes the request as whole when it ends early.
    if (keepCut) delete headers['content-length'];
    let keptAnswer: (url: string | undefined) => void = () => undefined;
    if (keepCut) keptAt.set(path, new Promise((resolve) => (keptAnswer = resolve)));
    const upstream = request(
      {
        host: targetHost,
        port: Number(targetPort),
        method: req.method,
        path: req.url,
        headers,
      },
      (answer) => {
        if (keepCut) {
          const location = answer.headers.location;
          const url = location ? new URL(location, `http://${target}`) : undefined;
          keptAnswer(url && `${url.pathname}${url.search}`);
          answer.resume();
          return;
        }
        if (fault?.answerRange !== undefined) {
          if (fault.answerRange === null) delete answer.headers.range;
          else answer.headers.range = fault.answerRange;
        }
        const range = answer.headers.range;
        if (dialect.staleRange && req.method === 'PATCH' && range !== undefined) {
          if (!firstRange.has(path)) firstRange.set(path, range);
          answer.headers.range = firstRange.get(path);
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        let sent = 0;
        answer.on('data', (chunk: Buffer) => {
          const limit = fault?.cutResponseAfter;
          if (limit !== undefined && sent + chunk.length >= limit) {
            res.write(chunk.subarray(0, limit - sent));
            proxy.down += limit - sent;
            answer.destroy();
            res.socket?.destroy();
            return;
          }
          const stall = fault?.stallResponseAfter;
          if (stall !== undefined && sent + chunk.length >= stall) {
            res.write(chunk.subarray(0, stall - sent));
            proxy.down += stall - sent;
            sent = stall;
            // Nothing more from the registry; the client's end stays open, silent.
            answer.pause();
            answer.removeAllListeners('data');
            res.once('close', () => answer.destroy());
            return;
          }
          sent += chunk.length;
          proxy.down += chunk.length;
          if (!res.write(chunk)) {
            answer.pause();
            res.once('drain', () => answer.resume());
          }
        });
        answer.on('end', () => res.end());
      },
    );
    upstream.on('error', () => {
      keptAnswer(undefined);
      res.socket?.destroy();
    });
    let forwarded = 0;
    if (fault?.dropBody) {
      req.resume();
      req.on('end', () => upstream.end());
      return;
    }
    req.on('data', (chunk: Buffer) => {
      const method = req.method ?? '';
      const stall = fault?.stallRequestAfter;
      if (stall !== undefined && forwarded + chunk.length >= stall) {
        upstream.write(chunk.subarray(0, stall - forwarded));
        proxy.up[method] = (proxy.up[method] ?? 0) + stall - forwarded;
        forwarded = stall;
        req.pause();
        req.socket.once('close', () => upstream.destroy());
        return;
      }
      const limit = fault?.cutRequestAfter;
      if (limit !== undefined && forwarded + chunk.length >= limit) {
        upstream.write(chunk.subarray(0, limit - forwarded));
        proxy.up[method] = (proxy.up[method] ?? 0) + limit - forwarded;
        forwarded = limit;
        if (keepCut) {
          // The registry takes what came as a whole PATCH; only the client is cut off.
          upstream.end();
          req.socket.destroy();
          return;
        }
        // Let the registry take in what it got, then vanish on both sides.
        setTimeout(() => {
          upstream.destroy();
          req.socket.destroy();
        }, 50);
        req.pause();
        return;
      }
      forwarded += chunk.length;
      proxy.up[method] = (proxy.up[method] ?? 0) + chunk.length;
      if (!upstream.write(chunk)) {
        req.pause();
        upstream.once('drain', () => req.resume());
      }
    });
    req.on('end', () => upstream.end());
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    fired: proxy.fired,
    requests: proxy.requests,
    brokenOff: proxy.brokenOff,
    get mostAtOnce() {
      return proxy.mostAtOnce;
    },
    get up() {
      return proxy.up;
    },
    get down() {
      return proxy.down;
    },
    host,
    reference: (name) => `oci://${host}/${name}`,
    stop: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
