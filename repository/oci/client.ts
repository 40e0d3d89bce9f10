import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { syncDir } from '../../manifest-schema/atomic.js';
import { MAX_METADATA_BYTES } from '../../manifest-schema/envelope.js';
import { FerryError, ioError } from '../../manifest-schema/errors.js';
import { HashingSink, withHashPool } from '../../manifest-schema/hashing.js';
import { loadRegistryCredentials } from './credentials.js';
import {
  assertDigest,
  assertTagOrDigest,
  isDigest,
  parseRegistryReference,
  type ReferenceOptions,
  type RegistryReference,
} from './reference.js';
import type { DirectAnswer } from './direct.js';
import { idleTimeoutFrom, type BodySink, type HttpResponse, type RequestBody } from './http.js';
import { Transient, Transport, type TransportOptions } from './transport.js';

/** Called as bytes move: `done` of `total`. Often (every network read): throttle before drawing. */
export type Progress = (done: number, total: number) => void;

export interface RegistryClientOptions extends TransportOptions {
  /**
   * Bytes per PATCH, each with a Content-Range (raised to the registry's
   * OCI-Chunk-Min-Length). Unset, the whole blob goes in one PATCH without
   * one, as `docker push` and skopeo send it (see pushBlob). Smaller chunks
   * cost time: Distribution fsyncs the upload after each.
   */
  chunkSize?: number;
}

export interface PushBlobOptions {
  /** The blob's digest when the caller knows it; otherwise it is taken from the bytes as they are sent. */
  digest?: string;
  /** The size the caller expects; a file of another size is refused before anything is sent. */
  size?: number;
  /**
   * Bytes no repository can hold yet (a document that names its own time and
   * its place in a chain): small ones are sent without asking first.
   */
  fresh?: boolean;
  onProgress?: Progress;
}

export interface PushedBlob {
  digest: string;
  size: number;
  /** False when the registry already held the blob and nothing was sent. */
  uploaded: boolean;
}

/** A manifest exactly as the registry holds it. */
export interface FetchedManifest {
  /** The exact bytes: their sha256 is `digest` (checked). */
  bytes: Buffer;
  /** From Content-Type, parameters dropped; equal to the manifest's own `mediaType` field when it has one. */
  mediaType: string;
  digest: string;
  size: number;
}

export interface ManifestDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export const MANIFEST_MEDIA_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
] as const;

/** Distribution refuses manifests over 4 MiB; so does Ferry, both ways. */
export const MANIFEST_LIMIT = 4 * 1024 * 1024;
/** The most tag-list bytes read, over all pages: about half a million tags, years of a busy repository. */
const TAG_LIST_LIMIT = 16 * 1024 * 1024;
/** The most tag-list pages followed: at 100 tags a page (some registries cap n), the byte limit comes first. */
const TAG_PAGE_LIMIT = 10_000;
const READ_SIZE = 1024 * 1024;
/** How long an upload given up on is waited on to be cancelled. */
const CANCEL_WAIT_MS = 10_000;
/**
 * In-memory blobs up to this size (documents, bundle.json) go in the PUT that
 * closes their upload: two round trips, not three, and a fresh one asked
 * nothing first (see pushBlob).
 */
const SMALL_BLOB = 1024 * 1024;
const WRITEBACK = 64 * 1024 * 1024;

/**
 * A client for one repository of an OCI registry (distribution spec 1.1):
 * blobs in and out as streams from and to files (memory stays flat whatever
 * their size), manifests as exact bytes, tags. Every failure is a FerryError
 * with a stable code that names the registry, repository and tag or digest;
 * broken connections and 5xx answers are retried with backoff, and uploads
 * and downloads resume where the registry says they stopped.
 */
export class RegistryClient {
  readonly reference: RegistryReference;
  readonly #transport: Transport;
  readonly #chunkSize: number;
  /** False once the registry did not store a blob sent in the PUT that closes its upload: streamed since. */
  #putsBodies = true;
  /** False once the registry (or a proxy) refused Expect: 100-continue (417): chunks go without asking since. */
  #asksFirst = true;

  constructor(reference: RegistryReference, options: RegistryClientOptions = {}) {
    this.reference = reference;
    this.#transport = new Transport(reference, options);
    this.#chunkSize = Math.max(1, options.chunkSize ?? Number.POSITIVE_INFINITY);
  }

  /**
   * Parses `oci://host[:port]/name` and finds the credentials for its host in
   * the environment or the Docker config (see loadRegistryCredentials).
   */
  static async open(
    text: string,
    options: ReferenceOptions & RegistryClientOptions & { env?: NodeJS.ProcessEnv } = {},
  ): Promise<RegistryClient> {
    const reference = parseRegistryReference(text, options);
    // Before the credentials: a bad value is refused before a credential helper runs.
    const idleTimeoutMs = options.idleTimeoutMs ?? idleTimeoutFrom(options.env ?? process.env);
    const credentials =
      options.credentials ?? (await loadRegistryCredentials(reference.registry, options.env));
    return new RegistryClient(reference, { ...options, credentials, idleTimeoutMs });
  }

  /** `GET /v2/`: the registry answers, speaks the API, and accepts the credentials (if it wants any). */
  /** See Transport.close. */
  close(): void {
    this.#transport.close();
  }

  async ping(): Promise<void> {
    const t = this.#transport;
    const url = new URL('/v2/', this.reference.origin);
    const response = await t.retrying('reach the registry', () =>
      t.request('GET', url, { action: 'ping' }),
    );
    if (!response.ok) throw await t.fail(response, 'answer GET /v2/');
    await response.discard();
  }

  /** The blob's size when the repository holds it, undefined when it does not. */
  async blobExists(digest: string): Promise<number | undefined> {
    assertDigest(digest);
    const t = this.#transport;
    const response = await t.retrying(`check blob ${digest}`, () =>
      t.request('HEAD', t.url(`blobs/${digest}`), { action: 'pull' }),
    );
    if (!response.ok && response.status !== 404) {
      throw await t.fail(response, `tell whether it holds blob ${digest}`, { reference: digest });
    }
    await response.discard();
    if (response.status === 404) return undefined;
    const size = Number(response.header('content-length'));
    return Number.isSafeInteger(size) ? size : undefined;
  }

  /**
   * Uploads a file (a path) or small in-memory bytes as a blob, unless the
   * repository already holds it: POST, then the bytes in one PATCH with no
   * Content-Range (a streamed upload), then PUT ?digest=. That is how
   * `docker push` and skopeo send a layer, so every registry that takes
   * theirs takes it. PATCHes in Content-Range chunks are what the spec
   * describes, but registries differ on them: GHCR refuses a chunk over
   * 4 MiB with 416, and ECR's Range answer stops moving after the first
   * chunk, so a client that trusts it sends a chunk again and is refused.
   * After a broken connection or a 5xx it asks the registry how far the
   * upload got (GET on the upload's location) and sends the rest as one
   * chunk with its Content-Range, or starts a new upload (cancelling the
   * old one) when the registry has dropped that one, refuses the chunk, or
   * twice in a row cannot say. The registry checks the digest of what it
   * received. Small bytes in memory (SMALL_BLOB) go in the PUT that closes
   * the upload: the spec's monolithic upload, as ORAS sends every blob.
   * `fresh` bytes are sent without asking first whether the registry holds
   * them; any others are asked about, since storing a blob again does not
   * mend a damaged copy (the registry keeps the one it has).
   */
  async pushBlob(source: string | Uint8Array, options: PushBlobOptions = {}): Promise<PushedBlob> {
    const blob = await this.describe(source, options);
    const t = this.#transport;
    const inOnePut = typeof source !== 'string' && blob.size <= SMALL_BLOB;
    if (blob.digest !== undefined && !(inOnePut && options.fresh === true)) {
      const held = await this.blobExists(blob.digest);
      if (held !== undefined) {
        // Same digest, other size: the registry's copy is damaged; never build on it.
        if (held !== blob.size)
          throw this.mismatch(blob.digest, `is held as ${held} bytes, not ${blob.size}`);
        options.onProgress?.(blob.size, blob.size);
        return { digest: blob.digest, size: blob.size, uploaded: false };
      }
    }
    let session: UploadSession | undefined;
    let digest = blob.digest;
    /** Status queries in a row that failed (see below). */
    let unanswered = 0;
    // How far the registry said the upload got: a try that moved it on is no try lost.
    const moved = (): number => session?.offset ?? 0;
    try {
      await t.resuming(`push blob ${blob.name}`, { moved, size: blob.size }, async (attempt) => {
        if (attempt > 1) {
          // The last try may have finished before its answer was lost.
          const known = blob.digest ?? blob.hashing?.complete();
          if (known !== undefined && (await this.blobExists(known)) !== undefined) {
            digest = known;
            return;
          }
          if (session) {
            const asked = session;
            try {
              session = await this.uploadStatus(session, blob);
              unanswered = 0;
            } catch (error) {
              // Asked on every try, a registry that cannot say where the upload stands
              // would fail them all: the second time in a row, the upload starts again.
              if (!(error instanceof Transient) || ++unanswered < 2) throw error;
              await this.cancelUpload(asked);
              session = undefined;
            }
          }
        }
        session ??= await this.startUpload(blob);
        if (inOnePut && this.#putsBodies && session.offset === 0) {
          try {
            digest = await this.finishUpload(session, blob, { progress: options.onProgress });
            return;
          } catch (error) {
            if (!(error instanceof BodyNotTaken)) throw error;
            // It dropped the PUT's bytes, or took them as a chunk (202): this blob and the rest go streamed, in a new upload.
            this.#putsBodies = false;
            await this.cancelUpload(session);
            session = undefined;
            session = await this.startUpload(blob);
          }
        }
        while (session.offset < blob.size) {
          try {
            session = await this.patch(session, blob, options.onProgress);
          } catch (error) {
            // Given up on, it is cancelled: the registry would keep its bytes until it times them out.
            if (error instanceof SessionLost) {
              await this.cancelUpload(error.at ?? session);
              session = undefined;
            }
            throw error;
          }
        }
        digest = await this.finishUpload(session, blob);
      });
    } catch (error) {
      if (session) await this.cancelUpload(session);
      // The transport's last word names a request (POST /v2/…/blobs/uploads/), not what was being sent.
      if (error instanceof FerryError && error.details.reference === undefined)
        throw new FerryError(error.code, `${error.message} (uploading ${blob.name})`, {
          ...error.details,
          reference: blob.name,
          cause: error,
        });
      throw error;
    }
    return { digest: digest as string, size: blob.size, uploaded: true };
  }

  /**
   * Downloads a blob into `toPath`: streamed into a temp file beside it while
   * its sha256 and size are checked, then fsynced and renamed over `toPath`,
   * so `toPath` is either absent (or as it was) or complete and verified.
   * A broken download goes on with a Range request from the last byte kept.
   */
  async pullBlob(
    digest: string,
    size: number,
    toPath: string,
    options: { onProgress?: Progress } = {},
  ): Promise<void> {
    assertDigest(digest);
    const t = this.#transport;
    const temp = join(
      dirname(toPath),
      `.${basename(toPath)}.${randomBytes(6).toString('hex')}.part`,
    );
    const sink = await DownloadSink.create(temp);
    // Straight off the socket while the registry answers plainly (see direct.ts);
    // through node:http for good once it does not (a blob store it redirects to).
    let direct = true;
    const moved = (): number => sink.written;
    try {
      await t.resuming(`pull blob ${digest}`, { moved, size }, async () => {
        const kept = sink.written;
        const url = t.url(`blobs/${digest}`);
        const headers: Record<string, string> = { 'accept-encoding': 'identity' };
        if (kept > 0) headers.range = `bytes=${kept}-`;
        let response: HttpResponse | DirectAnswer | undefined;
        if (direct) {
          response = await t.direct(url, { action: 'pull', headers, lend: () => sink.lend() });
          direct = response !== undefined;
        }
        response ??= await t.request('GET', url, { action: 'pull', headers });
        // A registry that ignores Range sends it all again: skip what is already kept.
        let skip = 0;
        if (response.status === 200) skip = kept;
        else if (response.status === 206 && rangeStart(response) !== kept) {
          // Not a refusal: the registry sent a part, but not the part asked for.
          const range = response.header('content-range');
          await response.discard();
          throw t.error(
            'E_REGISTRY',
            `registry ${this.reference.registry} answered a request for blob ${digest} from byte ${kept} with ${range === undefined ? 'no Content-Range' : `Content-Range ${JSON.stringify(range.slice(0, 100))}`}`,
            {
              reference: digest,
              hint: 'the registry or a proxy in front of it answers Range requests wrongly',
            },
          );
        } else if (response.status !== 206) {
          // Not a direct answer: those are 200 or 206, or none.
          throw await t.fail(
            response as HttpResponse,
            `give blob ${digest}`,
            { reference: digest },
            'E_BLOB_UNKNOWN',
          );
        }
        // A body longer than what is left of the blob fails before it is read: once
        // the blob's bytes are in, the rest would be waited for until the idle
        // timeout (minutes), on every try.
        const longer = (): FerryError =>
          this.mismatch(digest, `is longer than the ${size} bytes its descriptor says`);
        const declared = Number(response.header('content-length') ?? Number.NaN);
        if (declared > size - (response.status === 206 ? kept : 0)) {
          await response.discard();
          throw longer();
        }
        // What put itself threw (the caller's progress callback failing, say) is
        // not the network's doing: passed on as it is, not retried as a broken
        // connection and then named "cannot reach".
        let refusal: unknown;
        const into: BodySink = {
          put: (chunk) => {
            try {
              const fresh = skip >= chunk.length ? undefined : chunk.subarray(skip);
              skip = Math.max(0, skip - chunk.length);
              if (!fresh) return true;
              // Without a Content-Length (a chunked body through node:http), counted here.
              if (sink.written + fresh.length > size) throw longer();
              const going = sink.put(fresh);
              options.onProgress?.(sink.written, size);
              return going;
            } catch (error) {
              refusal = error;
              throw error;
            }
          },
          room: () => sink.room(),
        };
        try {
          await response.pipe(into);
        } catch (error) {
          if (error instanceof FerryError || error === refusal) throw error;
          throw t.broken(error, `pull blob ${digest}`);
        }
        if (sink.written < size) {
          throw this.mismatch(
            digest,
            `is ${sink.written} bytes, not the ${size} its descriptor says`,
          );
        }
      });
      const got = `sha256:${await sink.close()}`;
      if (got !== digest) throw this.mismatch(digest, `arrived with sha256 ${got}`);
      await rename(temp, toPath).catch((error: unknown) => {
        throw ioError(error, toPath, 'write');
      });
      await syncDir(dirname(toPath));
    } catch (error) {
      const arrived = sink.written;
      await sink.abandon();
      await rm(temp, { force: true });
      // What arrived tells a registry that sent nothing from one that stopped mid-blob.
      if (error instanceof FerryError && error.code === 'E_REGISTRY_UNREACHABLE')
        throw new FerryError(
          error.code,
          `${error.message}; ${arrived} of its ${size} bytes arrived`,
          { ...error.details, reference: digest, cause: error },
        );
      throw error;
    }
  }

  /**
   * A small blob (bundle.json, a channel document) in memory, checked
   * against its digest and size. Refuses anything over `maxBytes` (by default
   * the largest bundle.json Ferry reads): large blobs go through pullBlob to a file.
   */
  async readBlob(digest: string, size: number, maxBytes = MAX_METADATA_BYTES): Promise<Buffer> {
    assertDigest(digest);
    if (size > maxBytes) {
      throw this.#transport.error(
        'E_REGISTRY',
        `blob ${digest} is ${size} bytes, over the ${maxBytes} read into memory`,
        {
          reference: digest,
          hint: 'pull it to a file instead',
        },
      );
    }
    const t = this.#transport;
    const bytes = await t.retrying(`read blob ${digest}`, async () => {
      const response = await t.request('GET', t.url(`blobs/${digest}`), { action: 'pull' });
      if (!response.ok)
        throw await t.fail(
          response,
          `give blob ${digest}`,
          { reference: digest },
          'E_BLOB_UNKNOWN',
        );
      return t.read(response, size, `read blob ${digest}`);
    });
    if (!bytes || bytes.length !== size)
      throw this.mismatch(digest, `is not the ${size} bytes its descriptor says`);
    const got = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (got !== digest) throw this.mismatch(digest, `arrived with sha256 ${got}`);
    return bytes;
  }

  /**
   * The manifest under a tag or digest, as exact bytes. Its digest is computed
   * from the bytes received; fetched by digest, they must match it, and a
   * Docker-Content-Digest the registry sends must match too.
   */
  async getManifest(reference: string): Promise<FetchedManifest> {
    return (await this.#fetchManifest(reference, false)) as FetchedManifest;
  }

  /**
   * getManifest, or undefined when the registry has nothing under `reference`
   * (a 404): one request where a HEAD and a GET were two, and nothing can be
   * removed between them.
   */
  findManifest(reference: string): Promise<FetchedManifest | undefined> {
    return this.#fetchManifest(reference, true);
  }

  async #fetchManifest(
    reference: string,
    absentIsNothing: boolean,
  ): Promise<FetchedManifest | undefined> {
    assertTagOrDigest(reference);
    const t = this.#transport;
    const fetched = await t.retrying(`get manifest ${reference}`, async () => {
      const response = await t.request('GET', t.url(`manifests/${reference}`), {
        action: 'pull',
        headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
      });
      if (response.status === 404 && absentIsNothing) {
        await response.discard();
        return undefined;
      }
      if (!response.ok) {
        throw await t.fail(
          response,
          `give manifest ${reference}`,
          { reference },
          'E_MANIFEST_UNKNOWN',
        );
      }
      const body = await t.read(response, MANIFEST_LIMIT, `get manifest ${reference}`);
      if (!body) {
        throw t.error(
          'E_MANIFEST_INVALID',
          `manifest ${reference} is larger than ${MANIFEST_LIMIT} bytes`,
          {
            reference,
            hint: 'no Ferry manifest is this large: the repository holds something else under this name',
          },
        );
      }
      return {
        bytes: body,
        contentType: mediaTypeOf(response),
        headerDigest: response.header('docker-content-digest'),
        from: response.url,
      };
    });
    if (fetched === undefined) return undefined;
    const { bytes, contentType, headerDigest, from } = fetched;
    // A proxy in front of the registry that sends readers to its login page: not a
    // repository damaged or tampered with (exit 3), as the checks below would say.
    if (
      from.origin !== this.reference.origin &&
      (!(MANIFEST_MEDIA_TYPES as readonly string[]).includes(contentType) ||
        declaredMediaType(bytes) === null)
    )
      throw t.error(
        'E_REGISTRY',
        `registry ${this.reference.registry} redirected the request for manifest ${reference} to ${from.origin}${from.pathname}, which answered ${JSON.stringify(contentType.slice(0, 100))}, not a manifest`,
        {
          reference,
          hint: 'a proxy in front of the registry answers in its place (a login page?): it must let /v2/ through',
        },
      );
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (isDigest(reference) && digest !== reference) {
      throw this.mismatch(reference, `arrived as a manifest with sha256 ${digest}`);
    }
    if (headerDigest?.startsWith('sha256:') && headerDigest !== digest) {
      throw this.mismatch(headerDigest, `(manifest ${reference}) arrived with sha256 ${digest}`);
    }
    const declared = declaredMediaType(bytes);
    if (declared === null || (declared !== undefined && declared !== contentType)) {
      throw t.error(
        'E_MANIFEST_INVALID',
        declared === null
          ? `manifest ${reference} is not a JSON object`
          : `manifest ${reference} says it is ${declared} but was served as ${contentType}`,
        { reference, hint: 'the repository holds something Ferry did not write under this name' },
      );
    }
    return { bytes, mediaType: contentType, digest, size: bytes.length };
  }

  /**
   * What a tag or digest points at, from a HEAD request (digest as the
   * registry reports it), or undefined when there is nothing. Cheap; use
   * getManifest when the bytes matter.
   */
  async manifestDescriptor(reference: string): Promise<ManifestDescriptor | undefined> {
    assertTagOrDigest(reference);
    const t = this.#transport;
    const response = await t.retrying(`check manifest ${reference}`, () =>
      t.request('HEAD', t.url(`manifests/${reference}`), {
        action: 'pull',
        headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
      }),
    );
    if (!response.ok && response.status !== 404) {
      throw await t.fail(response, `tell whether it holds manifest ${reference}`, { reference });
    }
    await response.discard();
    if (response.status === 404) return undefined;
    const digest = response.header('docker-content-digest');
    const size = Number(response.header('content-length'));
    if (!digest || !isDigest(digest) || !Number.isSafeInteger(size)) {
      const manifest = await this.getManifest(reference);
      return { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size };
    }
    return { mediaType: mediaTypeOf(response), digest, size };
  }

  /**
   * Stores `bytes` as a manifest under a tag (or its digest). Every blob it
   * refers to must be pushed first. Registries overwrite tags without asking:
   * a caller that must not overwrite checks first, and says so in its design.
   */
  async putManifest(
    reference: string,
    bytes: Uint8Array,
    mediaType: string,
  ): Promise<ManifestDescriptor> {
    assertTagOrDigest(reference);
    const t = this.#transport;
    const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const declared = declaredMediaType(body);
    if (
      body.length > MANIFEST_LIMIT ||
      declared === null ||
      (declared !== undefined && declared !== mediaType)
    ) {
      throw t.error(
        'E_MANIFEST_INVALID',
        `the manifest for ${reference} is not a JSON object of type ${mediaType} under ${MANIFEST_LIMIT} bytes`,
        {
          reference,
          hint: 'a bug in the caller: the manifest must be JSON and its mediaType must be the type it is sent as',
        },
      );
    }
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (isDigest(reference) && reference !== digest)
      throw this.notAsSaid(reference, `the manifest bytes have sha256 ${digest}`);
    const response = await t.retrying(`put manifest ${reference}`, () =>
      t.request('PUT', t.url(`manifests/${reference}`), {
        action: 'push',
        headers: { 'content-type': mediaType },
        body: () => body,
      }),
    );
    if (response.status !== 201 && !response.ok) {
      throw await t.fail(response, `store manifest ${reference}`, { reference });
    }
    await response.discard();
    const reported = response.header('docker-content-digest');
    if (reported?.startsWith('sha256:') && reported !== digest) {
      throw this.mismatch(
        digest,
        `(manifest ${reference}) was stored by the registry as ${reported}`,
      );
    }
    return { mediaType, digest, size: body.length };
  }

  /**
   * Every tag of the repository, following the registry's Link pagination
   * (`pageSize` tags a page); an empty list for a repository never pushed to.
   * Bounded: at most TAG_LIST_LIMIT bytes of tag lists in all and
   * TAG_PAGE_LIMIT pages, each next page on the same origin and path (a Link
   * elsewhere would read another repository's tags, or another host's). A
   * page that is not a tag list is refused, never read as "no tags": the
   * audit log and the claims are found through this list, and an empty one
   * would make `history --verify` pass over nothing.
   */
  async listTags(options: { pageSize?: number } = {}): Promise<string[]> {
    const t = this.#transport;
    const tags: string[] = [];
    const first = t.url(`tags/list?n=${options.pageSize ?? 1000}`);
    let next: URL | undefined = first;
    const seen = new Set<string>();
    let bytes = 0;
    while (next) {
      const url: URL = next;
      if (seen.has(url.href)) {
        throw t.error(
          'E_REGISTRY',
          `the tag list pages loop back to ${url.pathname}${url.search}`,
          {
            hint: 'the registry paginates wrongly',
          },
        );
      }
      if (seen.size >= TAG_PAGE_LIMIT) {
        throw t.error(
          'E_REGISTRY',
          `the tag list of ${this.reference.repository} goes on for more than ${TAG_PAGE_LIMIT} pages`,
          { hint: 'the registry paginates wrongly (each page links to yet another)' },
        );
      }
      seen.add(url.href);
      const page = await t.retrying('list tags', async () => {
        const response = await t.request('GET', url, { action: 'pull' });
        if (response.status === 404) {
          const error = await t.fail(response, 'list tags', {}, 'E_REGISTRY');
          if (error.code === 'E_MANIFEST_UNKNOWN') return { tags: [], link: null, size: 0 };
          throw error;
        }
        if (!response.ok) throw await t.fail(response, 'list tags');
        const body = await t.read(response, TAG_LIST_LIMIT - bytes, 'list tags');
        if (!body) {
          throw t.error(
            'E_REGISTRY',
            `the tag list of ${this.reference.repository} is larger than ${TAG_LIST_LIMIT} bytes`,
            { hint: 'no Ferry repository holds that many tags: is this the right repository?' },
          );
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.toString('utf8'));
        } catch {
          parsed = undefined;
        }
        // Distribution says `"tags": null` for a repository whose tags were all deleted.
        const list =
          parsed && typeof parsed === 'object' && !Array.isArray(parsed)
            ? ((parsed as { tags?: unknown }).tags ?? [])
            : undefined;
        if (!Array.isArray(list) || !list.every((tag) => typeof tag === 'string')) {
          throw t.error(
            'E_REGISTRY',
            `the tag list of ${this.reference.repository} (${url.pathname}${url.search}) is not {"tags": [strings]}`,
            { hint: 'is this an OCI registry? a proxy or login page may answer in its place' },
          );
        }
        return { tags: list, link: response.header('link'), size: body.length };
      });
      bytes += page.size;
      tags.push(...page.tags);
      const target = page.link ? /<([^>]+)>\s*;\s*rel="?next"?/i.exec(page.link)?.[1] : undefined;
      next = target ? t.resolve(target, url, "the tag list's next page") : undefined;
      if (next && (next.origin !== first.origin || next.pathname !== first.pathname)) {
        throw t.error(
          'E_REGISTRY',
          `the tag list of ${this.reference.repository} links its next page to ${next.origin}${next.pathname}, not ${first.origin}${first.pathname}`,
          {
            hint: 'the registry or a proxy in front of it is misconfigured (or hostile): Ferry reads tags from this repository only',
          },
        );
      }
    }
    return tags;
  }

  /** Deletes a manifest by digest (registries delete tags only with their manifest). */
  async deleteManifest(digest: string): Promise<void> {
    assertDigest(digest);
    const t = this.#transport;
    const response = await t.retrying(`delete manifest ${digest}`, () =>
      t.request('DELETE', t.url(`manifests/${digest}`), { action: 'delete' }),
    );
    if (!response.ok)
      throw await t.fail(
        response,
        `delete manifest ${digest}`,
        { reference: digest },
        'E_MANIFEST_UNKNOWN',
      );
    await response.discard();
  }

  private async describe(
    source: string | Uint8Array,
    options: PushBlobOptions,
  ): Promise<BlobSource> {
    if (options.digest !== undefined) assertDigest(options.digest);
    if (typeof source !== 'string') {
      const digest = `sha256:${createHash('sha256').update(source).digest('hex')}`;
      if (options.digest && options.digest !== digest)
        throw this.notAsSaid(options.digest, `the bytes given have sha256 ${digest}`);
      if (options.size !== undefined && options.size !== source.length)
        throw this.notAsSaid(digest, `the bytes given are ${source.length}, not ${options.size}`);
      return {
        digest,
        name: digest,
        size: source.length,
        body: (start, end, progress) => bytesBody(source, start, end, progress),
      };
    }
    const info = await stat(source).catch((error: unknown) => {
      throw ioError(error, source, 'read');
    });
    if (!info.isFile())
      throw new FerryError('E_IO', `${source} is not a regular file`, {
        file: source,
        hint: 'name the bundle file',
      });
    if (options.size !== undefined && options.size !== info.size) {
      throw this.notAsSaid(
        options.digest ?? source,
        `${source} is ${info.size} bytes, not ${options.size}`,
      );
    }
    const path = source;
    // Without a digest, the bytes are hashed as they are sent: one read of the file, not two.
    const hashing = options.digest === undefined ? new UploadHash(path, info.size) : undefined;
    return {
      digest: options.digest,
      name: options.digest ?? path,
      size: info.size,
      ...(hashing ? { hashing } : {}),
      body: (start, end, progress) => fileBody(path, start, end, progress, hashing),
    };
  }

  private async startUpload(blob: BlobSource): Promise<UploadSession> {
    const t = this.#transport;
    const url = t.url('blobs/uploads/');
    const response = await t.request('POST', url, {
      action: 'push',
      headers: { 'content-length': '0' },
    });
    if (response.status === 404) {
      // ECR, and Harbor without the project: a repository is made by hand, not by a first push.
      const refusal = await t.fail(response, `start an upload of blob ${blob.name}`);
      throw t.error(
        'E_REGISTRY',
        `registry ${this.reference.registry} has no repository ${this.reference.repository} and did not make one for the upload (${refusal.message})`,
        {
          reference: blob.name,
          hint: 'create the repository in the registry first (ECR: `aws ecr create-repository`; Harbor: its project), then run the command again',
        },
      );
    }
    if (response.status !== 202)
      throw await t.fail(response, `start an upload of blob ${blob.name}`, {
        reference: blob.name,
      });
    await response.discard();
    const location = response.header('location');
    if (!location) {
      throw t.error(
        'E_REGISTRY',
        `the registry started an upload of ${blob.name} without a Location`,
        {
          reference: blob.name,
          hint: 'the registry does not follow the OCI distribution spec',
        },
      );
    }
    const minimum = Number(response.header('oci-chunk-min-length') ?? 0);
    return {
      location: t.resolve(location, url, `the upload of blob ${blob.name}`),
      offset: 0,
      chunk: Math.max(this.#chunkSize, Number.isSafeInteger(minimum) ? minimum : 0),
    };
  }

  private async patch(
    session: UploadSession,
    blob: BlobSource,
    progress?: Progress,
  ): Promise<UploadSession> {
    const t = this.#transport;
    const start = session.offset;
    const end = Math.min(blob.size, start + session.chunk);
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'content-length': String(end - start),
    };
    // The whole blob from its first byte is a streamed upload: no Content-Range (see pushBlob).
    if (start > 0 || end < blob.size) headers['content-range'] = `${start}-${end - 1}`;
    // A refusal (a proxy's size limit, 413) before a byte is sent: sent while the bytes
    // flow, it often came as the connection closing under them ("cannot reach", and the
    // whole chunk sent again on every try). Over 1 MiB only, as curl asks: a server that
    // never says go ahead costs a second's wait, not worth it for a document streamed.
    if (this.#asksFirst && end - start > SMALL_BLOB) headers.expect = '100-continue';
    // A source that cannot be read (or shrank) fails with its own FerryError, not as a network error.
    const response = await t.request('PATCH', session.location, {
      action: 'push',
      headers,
      body: () => blob.body(start, end, (done) => progress?.(done, blob.size)),
    });
    if (response.status === 417 && this.#asksFirst) {
      await response.discard();
      this.#asksFirst = false;
      return this.patch(session, blob, progress);
    }
    if (response.status === 202) {
      await response.discard();
      // The registry's Range is its real size: trust it over our own count,
      // as long as it moved. One that did not (ECR's stops after the first
      // chunk) would have the same bytes sent again, and a registry that
      // appends them anyway would take them for ever: start over instead.
      const next = this.sessionFrom(response, session, end);
      if (next && next.offset > start && next.offset <= end) return next;
      throw new SessionLost(
        next && next.offset <= start
          ? `the registry's Range stayed at ${next.offset} bytes after ${end - start} more were sent`
          : `the registry holds more than the ${end} bytes sent`,
        this.lostError(blob),
        next,
      );
    }
    // 404 on an upload's location: the registry no longer knows it (BLOB_UPLOAD_UNKNOWN or _INVALID).
    if (response.status === 416 || response.status === 404) {
      await response.discard();
      throw new SessionLost(`upload session lost (${response.status})`, this.lostError(blob));
    }
    throw await t.fail(response, `take a chunk of blob ${blob.name}`, { reference: blob.name });
  }

  /** Where an interrupted upload stands, or undefined when the registry dropped it. */
  private async uploadStatus(
    session: UploadSession,
    blob: BlobSource,
  ): Promise<UploadSession | undefined> {
    const response = await this.#transport.request('GET', session.location, { action: 'push' });
    await response.discard();
    if (response.status !== 204 && response.status !== 200) return undefined;
    const next = this.sessionFrom(response, session);
    return next && next.offset <= blob.size ? next : undefined;
  }

  /**
   * The session as the registry's Range and Location describe it. After a
   * chunk was taken (`sent` bytes in all), a missing Range means `sent`, and
   * "0-0" means one byte; from a status query "0-0" is also what Distribution
   * says for nothing at all, so it counts as nothing: an upload that really
   * holds one byte answers the next PATCH with 416 and starts over.
   */
  private sessionFrom(
    response: HttpResponse,
    session: UploadSession,
    sent?: number,
  ): UploadSession | undefined {
    const range = /^(?:bytes=)?0-(\d+)$/.exec(response.header('range') ?? '');
    if (!range && sent === undefined) return undefined;
    const last = range ? Number(range[1]) : undefined;
    const location = response.header('location');
    return {
      location: location
        ? this.#transport.resolve(location, session.location, 'the upload')
        : session.location,
      offset:
        last === undefined ? (sent as number) : last === 0 && sent === undefined ? 0 : last + 1,
      chunk: session.chunk,
    };
  }

  /**
   * Closes the upload under its digest (taken now, when hashed as it went)
   * and returns it; `carrying` it, the PUT sends the whole blob itself.
   */
  private async finishUpload(
    session: UploadSession,
    blob: BlobSource,
    carrying?: { progress: Progress | undefined },
  ): Promise<string> {
    const t = this.#transport;
    const digest = blob.digest ?? (await (blob.hashing as UploadHash).result());
    const url = new URL(session.location);
    url.searchParams.set('digest', digest);
    const response = await t.request('PUT', url, {
      action: 'push',
      ...(carrying === undefined
        ? { headers: { 'content-length': '0' } }
        : {
            headers: {
              'content-type': 'application/octet-stream',
              'content-length': String(blob.size),
            },
            body: () => blob.body(0, blob.size, (done) => carrying.progress?.(done, blob.size)),
          }),
    });
    if (response.status === 404) {
      await response.discard();
      throw new SessionLost('upload session lost before it closed', this.lostError(blob));
    }
    // 202 is "go on", not "stored": the upload is still open, the blob not in the repository.
    if (response.status === 202) {
      await response.discard();
      if (carrying) throw new BodyNotTaken('202 to a PUT carrying the blob');
      throw t.error(
        'E_REGISTRY',
        `registry ${this.reference.registry} answered 202 (upload still open) to the PUT closing the upload of blob ${digest}, so did not store it`,
        {
          reference: digest,
          hint: 'the registry or a proxy in front of it does not follow the OCI distribution spec (a closed upload answers 201 Created)',
        },
      );
    }
    if (response.status !== 201 && !response.ok) {
      const refusal = await t.fail(response, `store blob ${digest}`, { reference: digest });
      // A registry (or proxy) that drops a PUT's body finds the upload empty: DIGEST_INVALID, SIZE_INVALID.
      if (carrying && response.status === 400 && refusal.code === 'E_DIGEST_MISMATCH')
        throw new BodyNotTaken(refusal.message);
      throw refusal;
    }
    await response.discard();
    const reported = response.header('docker-content-digest');
    if (reported?.startsWith('sha256:') && reported !== digest) {
      throw this.mismatch(digest, `was stored by the registry as ${reported}`);
    }
    return digest;
  }

  /**
   * Spec: clients should cancel what they abandon. Failures to do so do not
   * matter, and neither does an answer that does not come: the upload goes on
   * after CANCEL_WAIT_MS, not after the 5-minute answer timeout (the request
   * is let go, and broken off when the client closes).
   */
  private async cancelUpload(session: UploadSession): Promise<void> {
    const cancelled = this.#transport
      .request('DELETE', session.location, { action: 'push' })
      .then((response) => response.discard())
      // the registry times abandoned uploads out
      .catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CANCEL_WAIT_MS);
    });
    await Promise.race([cancelled, waited]);
    clearTimeout(timer);
  }

  private lostError(blob: BlobSource): FerryError {
    return this.#transport.error(
      'E_REGISTRY',
      `the registry kept dropping the upload of blob ${blob.name}`,
      {
        reference: blob.name,
        hint: 'the registry or a proxy in front of it cuts uploads; check its logs and request size limits',
      },
    );
  }

  /** Bytes from the registry that are not what their digest or size says. */
  private mismatch(digest: string, what: string): FerryError {
    return this.#transport.error(
      'E_DIGEST_MISMATCH',
      `${digest} in ${this.reference.registry}/${this.reference.repository} ${what}`,
      {
        reference: digest,
        hint: 'the registry holds or sent other bytes than their digest names: the repository is damaged or was tampered with',
      },
    );
  }

  /** Bytes handed to pushBlob or putManifest that are not what the caller says they are. */
  private notAsSaid(digest: string, what: string): FerryError {
    return this.#transport.error('E_DIGEST_MISMATCH', `${digest}: ${what}`, {
      reference: digest,
      hint: 'the file changed since its digest was taken, or the digest or size given is wrong',
    });
  }
}

interface UploadSession {
  location: URL;
  /** Bytes the registry holds. */
  offset: number;
  chunk: number;
}

interface BlobSource {
  /** Known before the upload, or undefined: then `hashing` takes it from the bytes as they are sent. */
  digest: string | undefined;
  hashing?: UploadHash;
  /** The digest, or the file, for messages. */
  name: string;
  size: number;
  /** The bytes [start, end) for one request. */
  body(start: number, end: number, progress: (done: number) => void): RequestBody;
}

/** The registry did not store a blob sent in the PUT that closes its upload: stream it instead. */
class BodyNotTaken extends Error {}

/** The session is gone or out of step: start a new upload. */
class SessionLost extends Transient {
  /** Where the registry last said the upload is, when that is not where it was sent. */
  readonly at: UploadSession | undefined;
  constructor(reason: string, final: FerryError, at?: UploadSession) {
    super(reason, final);
    this.at = at;
  }
}

/** One streaming pass over a file, on the hashing worker like every other file hash in Ferry. */
export async function digestFile(path: string, size?: number): Promise<string> {
  const expected =
    size ??
    (
      await stat(path).catch((error: unknown) => {
        throw ioError(error, path, 'read');
      })
    ).size;
  const result = await withHashPool((pool) => pool.run({ source: path, size: expected })).catch(
    (error: unknown) => {
      throw ioError(error, path, 'read');
    },
  );
  if (result.bytes !== expected) {
    throw new FerryError('E_IO', `${path} changed size while it was hashed`, {
      file: path,
      hint: 'wait until it is complete',
    });
  }
  return `sha256:${result.sha256}`;
}

async function* fileBody(
  path: string,
  start: number,
  end: number,
  progress: (done: number) => void,
  hashing?: UploadHash,
): AsyncGenerator<Uint8Array> {
  await hashing?.seek(start);
  let position = start;
  const stream = createReadStream(path, { start, end: end - 1, highWaterMark: READ_SIZE });
  try {
    for await (const chunk of stream) {
      position += (chunk as Buffer).length;
      hashing?.update(chunk as Buffer);
      progress(position);
      yield chunk as Buffer;
    }
  } catch (error) {
    throw ioError(error, path, 'read');
  }
  if (position < end) {
    throw new FerryError('E_IO', `${path} shrank while it was uploaded`, {
      file: path,
      hint: 'do not change a bundle while it is being published',
    });
  }
}

/**
 * The sha256 of a file as it is uploaded, in the same read. A chunk that is
 * sent again (after a lost connection or an auth challenge) rewinds to the
 * state saved at its start; a resume anywhere else re-reads the file up to
 * there, which only happens after a failure.
 */
class UploadHash {
  readonly #path: string;
  readonly #size: number;
  #hash = createHash('sha256');
  #at = 0;
  #mark: { at: number; hash: Hash } | undefined;

  constructor(path: string, size: number) {
    this.#path = path;
    this.#size = size;
  }

  async seek(position: number): Promise<void> {
    if (position !== this.#at) {
      if (this.#mark?.at === position) {
        this.#hash = this.#mark.hash.copy();
        this.#at = position;
      } else {
        this.#hash = createHash('sha256');
        this.#at = 0;
        if (position > 0) {
          const stream = createReadStream(this.#path, {
            end: position - 1,
            highWaterMark: READ_SIZE,
          });
          try {
            for await (const chunk of stream) this.update(chunk as Buffer);
          } catch (error) {
            throw ioError(error, this.#path, 'read');
          }
        }
        if (this.#at !== position)
          throw new FerryError('E_IO', `${this.#path} shrank while it was uploaded`, {
            file: this.#path,
            hint: 'do not change a bundle while it is being published',
          });
      }
    }
    this.#mark = { at: position, hash: this.#hash.copy() };
  }

  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
    this.#at += chunk.length;
  }

  /** The digest once every byte was hashed, else undefined. */
  complete(): string | undefined {
    return this.#at === this.#size ? `sha256:${this.#hash.copy().digest('hex')}` : undefined;
  }

  async result(): Promise<string> {
    await this.seek(this.#size);
    return this.complete() as string;
  }
}

function bytesBody(
  bytes: Uint8Array,
  start: number,
  end: number,
  progress: (done: number) => void,
): Uint8Array {
  progress(end);
  return bytes.subarray(start, end);
}

/**
 * A download's file: the bytes are hashed and written on a worker
 * (HashingSink), so the main thread only takes them off the socket. Every
 * 64 MiB an fdatasync starts in the background: the kernel would otherwise
 * hold the whole download in dirty pages and write it all at the final
 * fsync, after the network is done; this way the two overlap.
 */
class DownloadSink {
  written = 0;
  readonly #handle: FileHandle;
  readonly #hashing: HashingSink;
  readonly #file: string;
  #failure: unknown;
  #synced = 0;
  #syncing: Promise<void> | undefined;
  #closed = false;

  static async create(file: string): Promise<DownloadSink> {
    const handle = await open(file, 'wx', 0o644).catch((error: unknown) => {
      throw ioError(error, file, 'create');
    });
    try {
      return new DownloadSink(handle, file);
    } catch (error) {
      await handle.close();
      await rm(file, { force: true });
      throw error;
    }
  }

  private constructor(handle: FileHandle, file: string) {
    this.#handle = handle;
    this.#file = file;
    this.#hashing = new HashingSink(handle.fd);
  }

  /** See HashingSink.lend. */
  lend(): Uint8Array {
    return this.#hashing.lend();
  }

  /**
   * Takes the chunk (it moves to the hashing worker, see HashingSink.put);
   * false when the worker is too far behind, until `room` resolves.
   */
  put(chunk: Uint8Array): boolean {
    this.check();
    const size = chunk.length;
    let going: boolean;
    try {
      going = this.#hashing.put(chunk);
    } catch (error) {
      throw ioError(error, this.#file, 'write');
    }
    this.written += size;
    if (this.written - this.#synced >= WRITEBACK && !this.#syncing) {
      this.#synced = this.written;
      this.#syncing = this.#handle
        .datasync()
        .catch((error: unknown) => void (this.#failure ??= error))
        .finally(() => (this.#syncing = undefined));
    }
    return going;
  }

  /** Resolves when the worker can take more; rejects with its failure (a disk full, say). */
  room(): Promise<void> {
    return this.#hashing.room().catch((error: unknown) => {
      throw ioError(error, this.#file, 'write');
    });
  }

  /** Waits for the last bytes, fsyncs and closes the file; the sha256 (hex) of what was written. */
  async close(): Promise<string> {
    const result = await this.#hashing.finish().catch((error: unknown) => {
      throw ioError(error, this.#file, 'write');
    });
    await this.#syncing;
    this.check();
    await this.#handle.sync().catch((error: unknown) => {
      throw ioError(error, this.#file, 'write');
    });
    this.#closed = true;
    await this.#handle.close().catch((error: unknown) => {
      throw ioError(error, this.#file, 'write');
    });
    if (result.bytes !== this.written)
      throw ioError(
        new Error(`wrote ${result.bytes} of ${this.written} bytes`),
        this.#file,
        'write',
      );
    return result.sha256;
  }

  /** Closes the file after a failure; it is about to be removed. */
  async abandon(): Promise<void> {
    await this.#hashing.abandon();
    await this.#syncing;
    if (!this.#closed) await this.#handle.close().catch(() => undefined);
  }

  private check(): void {
    if (this.#failure !== undefined) throw ioError(this.#failure, this.#file, 'write');
  }
}

function rangeStart(response: HttpResponse | DirectAnswer): number | undefined {
  const match = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(response.header('content-range') ?? '');
  return match ? Number(match[1]) : undefined;
}

function mediaTypeOf(response: HttpResponse): string {
  return (response.header('content-type') ?? '').split(';')[0]?.trim() ?? '';
}

/** The manifest's own `mediaType`: undefined when it has none, null when the bytes are not a JSON object. */
function declaredMediaType(bytes: Buffer): string | undefined | null {
  try {
    const parsed: unknown = JSON.parse(bytes.toString('utf8'));
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
    const mediaType = (parsed as { mediaType?: unknown }).mediaType;
    return typeof mediaType === 'string' ? mediaType : undefined;
  } catch {
    return null;
  }
}
