import { createHash, type KeyObject } from 'node:crypto';
import { readdirSync, rmdirSync, rmSync } from 'node:fs';
import { lstat, mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { openTrusted } from '../bundle/open.js';
import { canonicalJson } from '../manifest-schema/canonical.js';
import type { ChainWalk } from '../manifest-schema/chain.js';
import { syncDir } from '../manifest-schema/atomic.js';
import { ownTempName, removeDeadTemps } from '../manifest-schema/leftovers.js';
import { FerryError, ioError, type ErrorCode } from '../manifest-schema/errors.js';
import { decodeEnvelope, type Signer } from '../manifest-schema/envelope.js';
import { warmHashWorker } from '../manifest-schema/hashing.js';
import { checkSpace } from '../manifest-schema/space.js';
import {
  checkSignatures,
  parseTrustedRoot,
  readTrustedRoot,
  roleKeys,
  rootFileValue,
  type TrustedRoot,
} from '../manifest-schema/trust.js';
import {
  DEFAULT_POLICY,
  documentKeys,
  DOC_TYPES,
  invalid,
  openDocument,
  policyProblems,
  sealDocument,
  type ApprovalDoc,
  type AuditEvent,
  type ChannelDoc,
  type DocKind,
  type Evidence,
  type EventOp,
  type LogState,
  type Policy,
  type RepoConfig,
  type TrustDoc,
} from './documents.js';
import {
  bundleManifest,
  documentManifest,
  EMPTY_BLOB,
  EMPTY_DESCRIPTOR,
  OCI_MANIFEST,
  parseImageManifest,
  type Descriptor,
  type DocumentBlob,
  type ImageManifest,
} from './oci/artifact.js';
import { digestFile } from './oci/client.js';
import { judgePromotion, type Excuse } from './policy.js';
import {
  acceptChannelDocument,
  pulledFrom,
  recordRepositoryRoot,
  refuseRootSetBack,
  type PulledStanding,
  type RepositoryIdentity,
} from './pulled.js';
import { DirectoryStore } from './store-dir.js';
import { RegistryStore } from './store-registry.js';
import {
  aheadOf,
  anchorStanding,
  eraNotAfter,
  everyKey,
  followTrust,
  keysAt,
  sameRoot,
  type Era,
  type FollowedTrust,
} from './trust.js';
import {
  CHANNEL_TAG,
  conflict,
  EVENT_TAG,
  isVersionTag,
  TAGS,
  type Lock,
  type Progress,
  type Store,
} from './store.js';

/**
 * The bundle repository, built once over a Store (a directory or a
 * registry): immutable versions, channels that move along the policy's
 * edges, signed approvals, and the hash-chained audit log every write
 * appends to. Each write reads the audit head first and names it: the new
 * event can only be created at the next sequence number, so of two writers
 * that read the same head one wins and the other stops (E_REPO_CONFLICT).
 */

/** Who writes, and with what: every write is signed and logged under this. */
export interface Writer {
  actor: string;
  ci: string | null;
  /** What signs every document: keys Ferry holds, or --signer programs. */
  keys: readonly Signer[];
  now?: () => Date;
  /** Called after everything is read and decided, before the first write: tests hold two writers here. */
  beforeWrite?: () => Promise<void>;
  /** Called by publish, approve, promote and gc just before they read the audit head, not when deciding again: tests let another writer write there. */
  beforeHead?: () => Promise<void>;
  /** Told once when another writer holds the repository's lock and this one waits for it. */
  onWait?: (holder: string) => void;
}

export interface RepoOptions {
  repo: string;
  /** Plain HTTP to a registry that is not on loopback. */
  insecure?: boolean;
  /** A trust root file, over the one the repository recorded when it was made. */
  trust?: string;
}

interface Context {
  store: Store;
  config: RepoConfig | undefined;
  /** The config document's digest: what the first event (create) records. */
  configDigest?: string;
  /** The newest trust root the repository follows (or, for a new one, the one given). */
  trust: TrustedRoot | undefined;
  /** Who may sign the repository's documents now (undefined before the repository exists). */
  keys: Map<string, KeyObject> | undefined;
  /** The roots the repository followed and the documents pinned across them (see trust.ts). */
  followed: FollowedTrust | undefined;
  /** The trust document as stored (and verified): what a rotation extends and replaces. */
  trustDoc?: { digest: string; manifest: string; value: TrustDoc };
  /** A --trust root newer than the repository's: only a publish of a bundle that carries it goes on. */
  ahead?: { root: TrustedRoot; file: string };
  /** Set while a command decides again under the lock it waited for (see decide). */
  again?: Again;
  /**
   * The log as of the head read, once known: the head says (AuditEvent.last), or a read of
   * the log found out. The events a write appends carry it on.
   */
  last?: LogState;
}

interface Again {
  lock: Lock;
  /** The events written while the command waited, for messages. */
  moved: string;
}

interface Head {
  seq: number;
  digest: string;
  /** The version the head event published, and as what, when it is a publish. */
  published?: { version: string; digest: string };
}

interface Read<T> {
  value: T;
  /** The document's exact bytes. */
  bytes: Buffer;
  /** The manifest the tag points at: what a replace names. */
  manifest: string;
  /** The document's own digest: what chains name. */
  digest: string;
  layers: Descriptor[];
}

/** The actor and CI run from the environment CI sets (GitHub Actions, GitLab CI), or the user. */
export function writerFromEnv(
  env: NodeJS.ProcessEnv,
  actor?: string,
): { actor: string; ci: string | null } {
  const github =
    env.GITHUB_RUN_ID && env.GITHUB_REPOSITORY
      ? `${env.GITHUB_SERVER_URL ?? 'https://github.com'}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}`
      : undefined;
  return {
    actor:
      actor ??
      env.FERRY_ACTOR ??
      env.GITHUB_ACTOR ??
      env.GITLAB_USER_LOGIN ??
      env.USER ??
      'unknown',
    ci: github ?? env.CI_JOB_URL ?? env.CI_PIPELINE_URL ?? null,
  };
}

/** `ahead`: the documents the command reads next, asked for with the config (see Store.readAhead). */
async function open(
  options: RepoOptions,
  create = false,
  again?: Again,
  ahead: readonly string[] = [],
): Promise<Context> {
  const store: Store = options.repo.startsWith('oci://')
    ? await RegistryStore.open(options.repo, options.insecure === true)
    : await DirectoryStore.open(resolve(options.repo), create);
  // The trust document is read with the config, by every command.
  store.readAhead?.([TAGS.trust, ...ahead]);
  try {
    return await contextOf(store, options, create, again);
  } catch (error) {
    store.close?.();
    throw error;
  }
}

/**
 * Opens the repository, runs `command` on it, and closes it however the
 * command ends: reads it asked for ahead and never took (readAhead,
 * readsInOrder) are broken off rather than waited on, so a command that
 * failed exits with its error, not when a silent registry times out.
 */
async function withRepository<T>(
  options: RepoOptions,
  how: { again?: Again; ahead?: readonly string[]; create?: boolean },
  command: (ctx: Context) => Promise<T>,
): Promise<T> {
  const ctx = await open(options, how.create === true, how.again, how.ahead);
  try {
    return await command(ctx);
  } finally {
    ctx.store.close?.();
  }
}

async function contextOf(
  store: Store,
  options: RepoOptions,
  create: boolean,
  again: Again | undefined,
): Promise<Context> {
  const found = await readDoc<RepoConfig>(
    store,
    'config',
    TAGS.config,
    undefined,
    'the repository config',
  );
  const config = found?.value;
  if (config && config.formatVersion !== 1)
    throw invalid(
      `${store.name}: the repository config`,
      `is format ${String(config.formatVersion)}, which this Ferry does not know`,
    );
  // The config is unsigned: its shape is checked before any of it is used.
  const shape = config as unknown as Record<string, unknown> | undefined;
  if (
    shape &&
    (typeof shape !== 'object' ||
      typeof shape.product !== 'string' ||
      typeof shape.trust !== 'object' ||
      shape.trust === null ||
      !optionalStrings(shape.keys) ||
      !optionalStrings(shape.chain))
  )
    throw invalid(
      `${store.name}: the repository config`,
      'is not { formatVersion, product, trust, keys?, chain? } as Ferry writes it',
    );
  if (!create && !config)
    throw new FerryError('E_REPO_NOT_FOUND', `${store.name} holds no bundle repository`, {
      hint: 'the first `ferry publish BUNDLE --repo REPO --trust FILE` makes one',
    });
  const anchor = options.trust === undefined ? undefined : await readTrustedRoot(options.trust);
  const trustRead =
    config &&
    (await readDoc<TrustDoc>(store, 'trust', TAGS.trust, undefined, 'the trust document'));
  const followed =
    config &&
    found &&
    followTrust(
      store.name,
      config,
      found.digest,
      parseTrustedRoot(
        Buffer.from(JSON.stringify(config.trust)),
        `${store.name}: the repository config's trust root`,
      ),
      trustRead,
      (keys) =>
        openDocument(
          'trust',
          trustRead?.bytes ?? Buffer.alloc(0),
          keys,
          `${store.name}: the trust document`,
        ),
    );
  const ctx: Context = {
    store,
    config,
    ...(found ? { configDigest: found.digest } : {}),
    trust: followed?.root ?? anchor,
    keys: followed ? keysAt(followed.eras, Infinity) : anchor && documentKeys(anchor),
    followed,
    ...(trustRead
      ? {
          trustDoc: {
            digest: trustRead.digest,
            manifest: trustRead.manifest,
            value: trustRead.value,
          },
        }
      : {}),
    ...(again ? { again } : {}),
  };
  if (anchor && options.trust !== undefined && followed) {
    if (anchorStanding(store.name, followed, anchor, options.trust) === 'ahead') {
      if (!create) throw aheadOf(store.name, followed, anchor, options.trust);
      ctx.ahead = { root: anchor, file: options.trust };
    }
    // Keys the config adds are vouched for by the trust document once the repository rotated.
    if (!trustRead && config?.keys?.length && found)
      await vouchedKeys(store, followed.root, options.trust, found.digest);
  }
  return ctx;
}

/**
 * The repository keys come from the config, which is unsigned: whoever can write to the
 * storage could add a key of their own and sign channel documents with it, which `--trust`
 * alone would then accept (pull would hand out any validly signed version as stable).
 * Given --trust, the keys count only if event 1, signed by a release key of that trust
 * root, records this very config.
 */
async function vouchedKeys(
  store: Store,
  trust: TrustedRoot,
  trustFile: string,
  configDigest: string,
): Promise<void> {
  const first = await readDoc<AuditEvent>(
    store,
    'event',
    TAGS.event(1),
    documentKeys(trust),
    'event 1',
  ).catch(() => undefined);
  if (first?.value.op === 'create' && first.value.subject.config === configDigest) return;
  throw new FerryError(
    'E_REPO_INVALID',
    `${store.name}: the repository keys in its config are not vouched for by ${trustFile}: event 1, which records the config, ${first ? `records ${String(first.value.subject.config)}, not ${configDigest}` : 'is not signed by a release key of that trust root'}`,
    {
      reference: TAGS.config,
      hint: 'the config was replaced behind Ferry’s back (run `ferry history --verify`), or the repository was made by a publish not signed with a release key',
    },
  );
}

function optionalStrings(value: unknown): boolean {
  return value === undefined || (Array.isArray(value) && value.every((v) => typeof v === 'string'));
}

function needTrust(ctx: Context): TrustedRoot {
  if (ctx.trust) return ctx.trust;
  throw new FerryError('E_USAGE', `${ctx.store.name} is new: say which keys it trusts`, {
    hint: 'pass --trust trust.json (the trust root your appliances hold); the repository records it',
  });
}

async function readDoc<T>(
  store: Store,
  kind: DocKind,
  tag: string,
  keys:
    | ReadonlyMap<string, KeyObject>
    | ((digest: string) => ReadonlyMap<string, KeyObject>)
    | undefined,
  where: string,
): Promise<Read<T> | undefined> {
  const ref = await store.readRef(tag);
  if (!ref) return undefined;
  const manifest = manifestOf(ref.bytes, `${store.name}: ${where}`);
  const layer = manifest.layers[0];
  if (manifest.artifactType !== DOC_TYPES[kind].artifactType || !layer)
    throw invalid(
      `${store.name}: ${where} (${tag})`,
      `is a ${manifest.artifactType ?? 'plain image'}, not a ${kind}`,
    );
  const bytes = await store.readBlob(layer.digest, layer.size);
  return {
    value: openDocument<T>(
      kind,
      bytes,
      typeof keys === 'function' ? keys(layer.digest) : keys,
      `${store.name}: ${where}`,
    ),
    bytes,
    manifest: ref.digest,
    digest: layer.digest,
    layers: manifest.layers,
  };
}

function manifestOf(bytes: Buffer, where: string): ImageManifest {
  const parsed = parseImageManifest(bytes);
  if (!parsed.ok)
    throw invalid(
      where,
      `is not an OCI manifest (${parsed.errors.map((e) => `${e.path} ${e.message}`).join('; ')})`,
    );
  return parsed.value;
}

/**
 * Documents no repository can hold yet: each names its own time, and an
 * event or a channel document its place in a chain. A config or a policy may
 * be one stored before, byte for byte.
 */
const NAMES_ITS_TIME: ReadonlySet<DocKind> = new Set(['event', 'channel', 'approval']);

async function putDoc(
  store: Store,
  kind: DocKind,
  value: unknown,
  keys: readonly Signer[],
  tag: string,
  options: {
    replace?: { expected: string | undefined };
    attachments?: Descriptor[];
    /** The document as already sealed for its digest: a signer is asked once per document. */
    sealed?: DocumentBlob;
    /** See Store.createRef. */
    beforePut?: () => Promise<unknown>;
  } = {},
): Promise<DocumentBlob> {
  const blob = options.sealed ?? (await sealDocument(kind, value, keys));
  // At once: to a registry, one round trip rather than two.
  await allStored([
    store.putBlob(EMPTY_BLOB, EMPTY_DESCRIPTOR.digest, EMPTY_DESCRIPTOR.size),
    store.putBlob(blob.bytes, blob.digest, blob.size, { fresh: NAMES_ITS_TIME.has(kind) }),
  ]);
  const manifest = documentManifest({
    artifactType: DOC_TYPES[kind].artifactType,
    mediaType: DOC_TYPES[kind].mediaType,
    document: blob,
    ...(options.attachments ? { attachments: options.attachments } : {}),
  });
  if (options.replace) await store.replaceRef(tag, manifest, options.replace.expected);
  else await store.createRef(tag, manifest, options.beforePut);
  return blob;
}

async function eventSeqs(store: Store): Promise<number[]> {
  return (await store.listRefs())
    .map((tag) => EVENT_TAG.exec(tag)?.[1])
    .filter((seq): seq is string => seq !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

function readEvent(ctx: Context, seq: number): Promise<Read<AuditEvent> | undefined> {
  return readDoc<AuditEvent>(
    ctx.store,
    'event',
    TAGS.event(seq),
    ctx.followed ? keysAt(ctx.followed.eras, seq) : ctx.keys,
    `event ${seq}`,
  );
}

/**
 * The keys a channel or the policy document must be signed by: the newest
 * root's, or any the repository followed for one pinned when it took that root.
 */
function livingKeys(ctx: Context): (digest: string) => ReadonlyMap<string, KeyObject> {
  return (digest) =>
    ctx.followed?.pinned.has(digest) ? everyKey(ctx.followed.eras) : (ctx.keys ?? new Map());
}

/** How many documents are asked for at once while a list of them is read in order. */
const READS_AT_ONCE = 8;

/**
 * The reads of `keys`, by index, each asked for up to READS_AT_ONCE before it
 * is awaited, never more at once: a list of N documents costs about 2N/8
 * round trips, not 2N, and a repository of thousands of channel tags is not
 * asked for all of them at once (thousands of sockets, which registries
 * answer 429). Await them in order: a failure is the caller's to hear at its
 * turn. A read is let go of once taken.
 */
function readsInOrder<K, T>(
  keys: readonly K[],
  read: (key: K) => Promise<T>,
): (index: number) => Promise<T> {
  const asked = new Map<number, Promise<T>>();
  return (index) => {
    for (let k = index; k < Math.min(keys.length, index + READS_AT_ONCE); k++) {
      if (asked.has(k)) continue;
      const reading = read(keys[k] as K);
      // Heard when awaited; one asked ahead of a failure is never awaited.
      reading.catch(() => undefined);
      asked.set(k, reading);
    }
    const taken = asked.get(index) as Promise<T>;
    asked.delete(index);
    return taken;
  };
}

/** The audit log's events, read READS_AT_ONCE at a time. */
function eventReads(
  ctx: Context,
  seqs: readonly number[],
): (index: number) => Promise<Read<AuditEvent> | undefined> {
  return readsInOrder(seqs, (seq) => readEvent(ctx, seq));
}

/** The approvals the repository holds: their tags, and their reads READS_AT_ONCE at a time. */
async function approvalReads(ctx: Context): Promise<{
  tags: string[];
  readAt: (index: number) => Promise<Read<ApprovalDoc> | undefined>;
}> {
  const tags = (await ctx.store.listRefs()).filter((tag) => tag.startsWith('ferry.approval.'));
  return {
    tags,
    // An approval counts only as an event of the log records it, whoever signed it then.
    readAt: readsInOrder(tags, (tag) =>
      readDoc<ApprovalDoc>(
        ctx.store,
        'approval',
        tag,
        ctx.followed ? everyKey(ctx.followed.eras) : ctx.keys,
        `approval ${tag}`,
      ),
    ),
  };
}

async function readHead(ctx: Context): Promise<Head | undefined> {
  const seq = (await eventSeqs(ctx.store)).at(-1);
  if (seq === undefined) {
    ctx.last = { policy: 0, moves: {} };
    return undefined;
  }
  const event = await readEvent(ctx, seq);
  if (!event) throw conflict(ctx.store, TAGS.event(seq), 'vanished while it was read');
  // Its signature holds, but a signed event put under a later tag (a replay) would
  // have the next write chain onto the wrong event, and sign that.
  if (event.value.seq !== seq)
    throw new FerryError(
      'E_AUDIT_BROKEN',
      `${ctx.store.name}: event ${seq} says it is event ${event.value.seq}`,
      {
        reference: TAGS.event(seq),
        hint: 'the audit log was edited behind Ferry’s back: nothing was written; run `ferry history --verify` and restore the repository from a backup',
      },
    );
  notTakenOver(ctx, seq, event.digest);
  // A head written before events said leaves what a read of the log found.
  if (event.value.last) ctx.last = event.value.last;
  await untilMoved(ctx, event.value);
  return {
    seq,
    digest: event.digest,
    ...(event.value.op === 'publish' && event.value.subject.version !== undefined
      ? {
          published: {
            version: event.value.subject.version,
            digest: String(event.value.subject.digest),
          },
        }
      : {}),
  };
}

/**
 * A write records its event, then moves the channel the event names. A
 * reader that found the event before the move (a registry has no lock to
 * keep it out) waits for the move, so that it decides on what that write
 * did, not on the channel before it; a writer that died in between is
 * passed over after a few seconds.
 */
async function untilMoved(ctx: Context, event: AuditEvent): Promise<void> {
  const channel = movedChannel(event);
  if (channel === undefined) return;
  await whileWriting(
    () => readChannel(ctx, channel),
    (doc) => (doc?.value.auditSeq ?? 0) >= event.seq,
  );
}

/**
 * `read` again until `settled` says so, for up to 3 s: a writer records its event, then
 * what the event names (a channel's move, a version's tag), and a reader takes no lock (a
 * registry has none). After that, the writer is taken for one that stopped in between.
 */
async function whileWriting<T>(read: () => Promise<T>, settled: (value: T) => boolean): Promise<T> {
  for (let tries = 0; ; tries++) {
    const value = await read();
    if (settled(value) || tries === 20) return value;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

/** The channel an event moves (publish into a channel, promote, rollback), if any. */
function movedChannel(event: AuditEvent): string | undefined {
  const channel =
    event.op === 'publish'
      ? event.subject.channel
      : event.op === 'promote' || event.op === 'rollback'
        ? event.subject.to
        : undefined;
  return typeof channel === 'string' ? channel : undefined;
}

/**
 * The log, each event linked to the one before: an older event is checked
 * against the keys of its own era, so it is the link to the newest (signed
 * by a key of today) that keeps a key dropped since from writing into it.
 */
async function readEvents(ctx: Context): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  const seqs = await eventSeqs(ctx.store);
  const read = eventReads(ctx, seqs);
  let prev: string | null = null;
  for (const [index, seq] of seqs.entries()) {
    const event = await read(index);
    if (!event) continue;
    if (event.value.prev !== prev || event.value.seq !== seq)
      throw new FerryError(
        'E_AUDIT_BROKEN',
        `${ctx.store.name}: event ${seq} does not follow ${index === 0 ? 'nothing' : `event ${seqs[index - 1]}`} in the chain`,
        {
          reference: TAGS.event(seq),
          hint: 'the audit log was edited behind Ferry’s back: nothing was written; run `ferry history --verify`',
        },
      );
    notTakenOver(ctx, seq, event.digest);
    prev = event.digest;
    events.push(event.value);
  }
  return events;
}

/** The log as of `event`, from the log as of the event before it. */
function after(state: LogState, event: AuditEvent): LogState {
  const moved = movedChannel(event);
  return {
    policy: event.op === 'policy' ? event.seq : state.policy,
    moves: moved === undefined ? state.moves : { ...state.moves, [moved]: event.seq },
  };
}

/**
 * The end of the log, read back from the head READS_AT_ONCE events at a time until
 * `enough` (told each event, newest first) says so or the first event is read. Each
 * event is checked against the one after it, as readEvents checks the whole log, and the
 * first against nothing. Oldest first.
 */
async function eventsBack(
  ctx: Context,
  enough: (event: AuditEvent) => boolean,
): Promise<AuditEvent[]> {
  const seqs = (await eventSeqs(ctx.store)).reverse();
  const events: AuditEvent[] = [];
  const broken = (seq: number, before: number | undefined) =>
    new FerryError(
      'E_AUDIT_BROKEN',
      `${ctx.store.name}: event ${seq} does not follow ${before === undefined ? 'nothing' : `event ${before}`} in the chain`,
      {
        reference: TAGS.event(seq),
        hint: 'the audit log was edited behind Ferry’s back: nothing was written; run `ferry history --verify`',
      },
    );
  let later: AuditEvent | undefined;
  for (let start = 0; start < seqs.length; start += READS_AT_ONCE) {
    const block = seqs.slice(start, start + READS_AT_ONCE);
    // Asked at once, none past the block: a promotion that has read enough asks no more.
    const reading = block.map((seq) => {
      const read = readEvent(ctx, seq);
      read.catch(() => undefined);
      return read;
    });
    // Awaited oldest first, as the log is read forwards: a failure is heard at its turn.
    const read: Array<Read<AuditEvent> | undefined> = [];
    for (let index = block.length - 1; index >= 0; index--) read[index] = await reading[index];
    for (const [index, seq] of block.entries()) {
      const event = read[index];
      if (!event) continue;
      if (event.value.seq !== seq) throw broken(seq, seqs[start + index + 1]);
      if (later && later.prev !== event.digest) throw broken(later.seq, seq);
      notTakenOver(ctx, seq, event.digest);
      later = event.value;
      events.push(event.value);
      if (enough(event.value)) return events.reverse();
    }
  }
  if (later && later.prev !== null) throw broken(later.seq, undefined);
  return events.reverse();
}

/**
 * Refuses event `seq` when a newer root was taken right after it over another
 * event: the trust document pins the event each root was taken after, so that a
 * key the root dropped cannot rewrite the log it was taken over (which the trust
 * event, signed by a key of the root, pins only once it is written).
 */
function notTakenOver(ctx: Context, seq: number, digest: string): void {
  const era = ctx.followed && eraNotAfter(ctx.followed.eras, seq, digest);
  if (era)
    throw new FerryError(
      'E_AUDIT_BROKEN',
      `${ctx.store.name}: event ${seq} is ${digest}, but the trust document took trust root version ${era.version} after event ${seq} ${String(era.prev)}`,
      {
        reference: TAGS.event(seq),
        hint: 'the audit log was rewritten behind Ferry’s back, perhaps with a key the trust root dropped: nothing was written; restore the repository from a backup',
      },
    );
}

async function readPolicy(ctx: Context): Promise<Read<Policy> | undefined> {
  return readDoc<Policy>(ctx.store, 'policy', TAGS.policy, livingKeys(ctx), 'the policy');
}

/**
 * Why the policy the repository holds is not the one the log last set, or undefined when
 * it is. Policies are signed, so an older, laxer one (no approvals for stable) put back
 * would verify; the `policy` events record each one's digest.
 */
function policyNotLogged(
  ctx: Context,
  logged: AuditEvent | undefined,
  found: Read<Policy> | undefined,
): string | undefined {
  if ((logged?.subject.policy ?? undefined) === found?.digest) return undefined;
  return `${ctx.store.name}: the policy is ${found?.digest ?? 'the default (none is stored)'}, but ${logged ? `event ${logged.seq} set ${String(logged.subject.policy)}` : 'the log sets none'}`;
}

/**
 * Why the roots the trust document follows are not the ones the log took, or
 * undefined when they are: each root from the event that took it, the last
 * one's document the one stored. A root whose event was never written (a
 * publish stopped in between) is the next write's to record.
 */
function trustNotLogged(ctx: Context, events: readonly AuditEvent[]): string | undefined {
  const taken = events.filter((event) => event.op === 'trust');
  const eras = ctx.followed?.eras.slice(1) ?? [];
  const last = events.at(-1)?.seq ?? 0;
  const pending = eras.at(-1)?.from === last + 1 ? eras.pop() : undefined;
  const differ = eras.findIndex(
    (era, index) => taken[index]?.seq !== era.from || taken[index]?.subject.root !== era.version,
  );
  const where = `${ctx.store.name}: the trust document`;
  if (differ >= 0 || taken.length !== eras.length) {
    const era = eras[differ];
    const event = taken[differ >= 0 ? differ : eras.length];
    return era
      ? `${where} follows trust root version ${era.version} from event ${era.from}, but ${event ? `event ${event.seq} took version ${String(event.subject.root)}` : 'no event took it'}`
      : `${where} follows ${eras.length === 0 ? 'no root past the config’s' : `trust root version ${eras.at(-1)?.version}`}, but event ${event?.seq} took version ${String(event?.subject.root)}`;
  }
  const recorded = taken.at(-1)?.subject.trust;
  if (!pending && recorded !== undefined && recorded !== ctx.trustDoc?.digest)
    return `${where} is ${ctx.trustDoc?.digest ?? 'missing'}, but event ${taken.at(-1)?.seq} recorded ${recorded}`;
  return undefined;
}

async function policyOf(ctx: Context): Promise<Policy> {
  return (await readPolicy(ctx))?.value ?? DEFAULT_POLICY;
}

async function readChannel(ctx: Context, name: string): Promise<Read<ChannelDoc> | undefined> {
  const found = await readDoc<ChannelDoc>(
    ctx.store,
    'channel',
    TAGS.channel(name),
    livingKeys(ctx),
    `channel ${name}`,
  );
  if (found && found.value.channel !== name)
    throw invalid(
      `${ctx.store.name}: channel ${name}`,
      `holds the document of channel ${found.value.channel}`,
    );
  return found;
}

/**
 * Why `doc` is behind the log (the channel holds an older document than the last move the log
 * records for it), or undefined when it is not. `events` holds at least those after the
 * document's event.
 */
function channelBehind(
  ctx: Context,
  name: string,
  doc: Read<ChannelDoc> | undefined,
  events: readonly AuditEvent[],
): { last: AuditEvent; message: string } | undefined {
  const last = events.filter((event) => movedChannel(event) === name).at(-1);
  if (!last || (doc && doc.value.auditSeq >= last.seq)) return undefined;
  return {
    last,
    message: `${ctx.store.name}: channel ${name} ${doc ? `holds ${doc.value.version} from event ${doc.value.auditSeq}` : 'holds nothing'}, but event ${last.seq} moved it to ${String(last.subject.version)} after that`,
  };
}

/**
 * A write refuses a channel it moves or judges by that is behind the log. An older
 * document put back is validly signed; a move on top of it would number its document
 * as one the channel already had (a fork, which every machine that pulled the channel
 * refuses for good) and hide the set-back from `history --verify`, and a promotion would
 * judge by a version the channel no longer holds. Only the move a writer stopped before
 * making (its event written, the channel not moved) is taken: the same move, run again.
 */
function refuseSetBack(
  ctx: Context,
  name: string,
  doc: Read<ChannelDoc> | undefined,
  events: readonly AuditEvent[],
  completing?: { version: string; digest: string },
): void {
  const behind = channelBehind(ctx, name, doc, events);
  if (!behind) return;
  // A stopped writer leaves its channel one move behind; more is a set-back, whatever runs.
  const moves = events.filter(
    (event) => movedChannel(event) === name && event.seq > (doc?.value.auditSeq ?? 0),
  );
  if (
    moves.length === 1 &&
    completing !== undefined &&
    behind.last.subject.version === completing.version &&
    behind.last.subject.digest === completing.digest
  )
    return;
  throw new FerryError('E_CHANNEL_SET_BACK', `${behind.message}: nothing was written`, {
    reference: TAGS.channel(name),
    hint:
      moves.length === 1
        ? `the channel was set back behind Ferry’s back (run \`ferry history --verify\`); if the writer of event ${behind.last.seq} (${behind.last.op} ${String(behind.last.subject.version)} by ${behind.last.actor}) was stopped before it moved the channel, run that command again`
        : `the channel was set back behind Ferry’s back, ${moves.length} moves: restore its document from a backup (run \`ferry history --verify\`)`,
  });
}

/**
 * The events after `seq` up to the head, for a write that reads no more of the log, read
 * READS_AT_ONCE at a time: for a channel with no document yet, that is the whole log.
 */
async function eventsSince(
  ctx: Context,
  seq: number,
  head: Head | undefined,
): Promise<AuditEvent[]> {
  const seqs = Array.from({ length: Math.max(0, (head?.seq ?? 0) - seq) }, (_, i) => seq + 1 + i);
  const readAt = eventReads(ctx, seqs);
  const events: AuditEvent[] = [];
  for (const index of seqs.keys()) {
    const event = await readAt(index);
    if (event) events.push(event.value);
  }
  return events;
}

function knownChannel(policy: Policy, name: string, repo: string): void {
  if (!Object.hasOwn(policy.channels, name))
    throw new FerryError('E_UNKNOWN_CHANNEL', `${repo} has no channel ${name}`, {
      reference: name,
      hint: `its policy declares ${Object.keys(policy.channels).join(', ')}`,
    });
}

/** A version's manifest and its bundle layer, or undefined when it is not published. */
async function readVersion(
  ctx: Context,
  version: string,
): Promise<
  { digest: string; manifest: ImageManifest; bundle: Descriptor; metadata: Descriptor } | undefined
> {
  const ref = await ctx.store.readRef(TAGS.version(version));
  if (!ref) return undefined;
  const manifest = manifestOf(ref.bytes, `${ctx.store.name}: version ${version}`);
  const [metadata, bundle] = manifest.layers;
  if (
    !metadata ||
    !bundle ||
    manifest.annotations?.['org.opencontainers.image.version'] !== version
  )
    throw invalid(
      `${ctx.store.name}: version ${version}`,
      'is not a Ferry bundle manifest of that version',
    );
  return { digest: ref.digest, manifest, bundle, metadata };
}

async function needVersion(ctx: Context, version: string) {
  const found = await readVersion(ctx, version);
  if (found) return found;
  throw new FerryError('E_UNKNOWN_VERSION', `${ctx.store.name} holds no version ${version}`, {
    reference: version,
    hint: 'see `ferry channels --repo …` and `ferry history --repo …` for what it holds',
  });
}

/** The lock is held and the log moved since the command read it: decide again under it. */
class HeadMoved extends Error {
  readonly again: Again;
  readonly store: Store;

  constructor(store: Store, again: Again) {
    super(again.moved);
    this.store = store;
    this.again = again;
  }
}

/**
 * Runs a command's read-decide-commit. A writer that waited for the lock
 * while another wrote finds the audit head moved: it then reads and decides
 * again under that lock, as if it had started after the other. If its
 * decision still stands it writes; if not (a refusal now, or nothing left to
 * do), it stops with E_REPO_CONFLICT naming the events written meanwhile.
 */
async function decide<T>(attempt: (again?: Again) => Promise<T>): Promise<T> {
  try {
    return await attempt();
  } catch (error) {
    if (!(error instanceof HeadMoved)) throw error;
    try {
      return await attempt(error.again);
    } catch (again) {
      if (again instanceof FerryError && again.code !== 'E_REPO_CONFLICT')
        throw changedMeanwhile(error.store, error.again.moved, again.message);
      throw again;
    } finally {
      await error.again.lock.release();
    }
  }
}

function changedMeanwhile(store: Store, moved: string, now: string): FerryError {
  return conflict(store, 'the audit log', `gained ${moved} while this command waited; now ${now}`);
}

/** The events after `from`, for a message: "event 4 (promote 1.1.0 by alice)". */
async function eventsAfter(ctx: Context, from: number, to: number): Promise<string> {
  const named: string[] = [];
  for (let seq = from + 1; seq <= to; seq++) {
    // Only a message: an event signed under a root this command has not read is named so.
    const event = (await readEvent(ctx, seq).catch(() => undefined))?.value;
    const what = event
      ? `${event.op}${event.subject.version ? ` ${String(event.subject.version)}` : ''} by ${event.actor}`
      : 'unreadable';
    named.push(`event ${seq} (${what})`);
  }
  return named.join(', ');
}

/**
 * Extends the audit chain by one event; `beforeStored` runs once it is signed, just
 * before it is stored, when no other writer can store that event any more.
 */
type Append = (
  op: EventOp,
  subject: AuditEvent['subject'],
  evidence?: Evidence[],
  beforeStored?: () => Promise<unknown>,
) => Promise<Head>;

/**
 * The write phase: takes the lock (a directory's; the registry has none),
 * checks that the audit head is still the one everything was decided on,
 * and hands over an `append` that extends the chain one event at a time.
 */
async function commit(
  ctx: Context,
  read: Head | undefined,
  writer: Writer,
  steps: (append: Append) => Promise<void>,
  /** A newer trust root the repository takes first (publish, from the bundle's chain). */
  rotate?: Rotation,
): Promise<Head | undefined> {
  const keys = rotate ? documentKeys(rotate.root, ctx.config?.keys) : ctx.keys;
  // What the writer signs must verify for every later reader: refuse a key the repository does not know.
  if (keys && !writer.keys.some((signer) => keys.has(signer.keyid)))
    throw unknownWriter(
      ctx,
      writer,
      rotate?.root.version ?? ctx.trust?.version,
      rotate !== undefined,
    );
  if (rotate && !writer.keys.some((signer) => roleKeys(rotate.root, 'targets').has(signer.keyid)))
    throw new FerryError(
      'E_KEY_INVALID',
      `${ctx.store.name} takes trust root version ${rotate.root.version} from this bundle only from a writer holding a release key of it: no --key given is one`,
      {
        hint: `publish with --key set to a targets key of trust root version ${rotate.root.version} (a repository key cannot vouch for a new root)`,
      },
    );
  const again = ctx.again;
  if (!again) await writer.beforeWrite?.();
  const lock = again?.lock ?? (await ctx.store.lock(writer.actor, writer.onWait));
  let handed = false;
  try {
    // Events written meanwhile are decided on again, with the repository read again, before
    // any is checked: they may be signed under a trust root taken meanwhile, which this
    // command's keys do not know (a tampered repository, as the head's check would say).
    const last = (await eventSeqs(ctx.store)).at(-1) ?? 0;
    if ((read?.seq ?? 0) < last && !again) {
      const moved = await eventsAfter(ctx, read?.seq ?? 0, last);
      handed = true;
      throw new HeadMoved(ctx.store, { lock, moved });
    }
    let head = await readHead(ctx);
    if (head?.digest !== read?.digest) {
      throw conflict(
        ctx.store,
        'the audit log',
        `moved from event ${read?.seq ?? 0} to event ${head?.seq ?? 0} while this command decided`,
      );
    }
    await refuseCutBack(ctx, head);
    const now = writer.now ?? (() => new Date());
    /**
     * `beforeStored` runs once the event is signed (what it writes is not written if the
     * signer fails) and this writer alone may store it: of two writers that read the same
     * head, only the one whose event lands writes it.
     */
    const append = async (
      op: EventOp,
      subject: AuditEvent['subject'],
      evidence: Evidence[] = [],
      beforeStored?: () => Promise<unknown>,
    ) => {
      const seq = (head?.seq ?? 0) + 1;
      const event: AuditEvent = {
        seq,
        prev: head?.digest ?? null,
        time: now().toISOString(),
        actor: writer.actor,
        ci: writer.ci,
        op,
        subject,
        evidence,
      };
      if (ctx.last) event.last = ctx.last = after(ctx.last, event);
      const sealed = await sealDocument('event', event, writer.keys);
      const blob = await putDoc(ctx.store, 'event', event, writer.keys, TAGS.event(seq), {
        sealed,
        ...(beforeStored ? { beforePut: beforeStored } : {}),
      });
      head = { seq, digest: blob.digest };
      return head;
    };
    // The roots first: the events after them are signed by keys only the newest root may know.
    const pending = ctx.followed?.eras.at(-1);
    if (pending && ctx.trustDoc && pending.from > (head?.seq ?? 0)) {
      if (pending.from !== (head?.seq ?? 0) + 1)
        throw new FerryError(
          'E_AUDIT_BROKEN',
          `${ctx.store.name}: the trust document follows trust root version ${pending.version} from event ${pending.from}, but the log ends at event ${head?.seq ?? 0}`,
          {
            reference: TAGS.trust,
            hint: 'the audit log or the trust document was edited behind Ferry’s back: restore the repository from a backup',
          },
        );
      // A rotation stopped after its trust document was stored and before its event.
      await append('trust', { root: pending.version, trust: ctx.trustDoc.digest });
    }
    if (rotate) {
      if (!head) throw new Error('commit: a rotation of a repository with no event');
      await takeRoot(ctx, rotate, writer, head, append);
    }
    if (lock.broke) await append('lock-break', { owner: lock.broke.owner });
    await steps(append);
    return head;
  } finally {
    // A lock handed to decide() is released there, after the second decision.
    if (!handed && !again) await lock.release();
  }
}

/** `newest`: the trust root version whose keys the write needs. */
function unknownWriter(
  ctx: Context,
  writer: Writer,
  newest: number | undefined,
  /** The write would take `newest` from the bundle it publishes: the repository does not follow it yet. */
  taking = false,
): FerryError {
  const eras = ctx.followed?.eras ?? [];
  // Known to an earlier root, and not to this one: dropped by a rotation.
  const dropped = writer.keys.find((signer) => eras.some((era) => era.keys.has(signer.keyid)));
  if (dropped && newest !== undefined)
    return new FerryError(
      'E_KEY_REVOKED',
      taking
        ? `${ctx.store.name} takes trust root version ${newest} from this bundle, which no longer lists key ${dropped.keyid.slice(0, 16)}: it cannot sign the rotation, nor anything after it`
        : `${ctx.store.name} follows trust root version ${newest}, which no longer lists key ${dropped.keyid.slice(0, 16)}: it signs nothing there any more`,
      {
        hint: `sign with a release key of trust root version ${newest} (\`ferry trust show\` lists them), or a key given as --repo-key when the repository was made`,
      },
    );
  return new FerryError('E_KEY_INVALID', `no --key given may sign documents of ${ctx.store.name}`, {
    hint: "sign with a release key of the repository's trust root, or with a key given as --repo-key when it was made",
  });
}

interface Rotation {
  /** The newest root the bundle's chain walked to from the repository's. */
  root: TrustedRoot;
  /** The roots past the repository's, as the bundle carries them. */
  walked: ChainWalk['accepted'];
}

/**
 * Takes a newer trust root: the trust document (the roots, from which event
 * on the new one counts, and the channel and policy documents that stand,
 * pinned) is stored once its event is signed, then the event: a writer
 * stopped in between leaves a trust document the next write completes. On a
 * registry, only after the event was claimed: two writers taking the root at
 * once with different keys would otherwise each store their own document,
 * and the one left under the tag need not be the one the event records,
 * which history --verify refuses for good.
 */
async function takeRoot(
  ctx: Context,
  rotate: Rotation,
  writer: Writer,
  /** The event the root is taken after. */
  after: Head,
  append: Append,
): Promise<void> {
  const followed = ctx.followed;
  if (!followed || !ctx.config || !ctx.configDigest) throw new Error('takeRoot: no repository');
  const seq = after.seq + 1;
  const pinned: string[] = [];
  const policy = await readPolicy(ctx);
  if (policy) pinned.push(policy.digest);
  for (const tag of await ctx.store.listRefs()) {
    const name = CHANNEL_TAG.exec(tag)?.[1];
    const channel = name === undefined ? undefined : await readChannel(ctx, name);
    if (channel) pinned.push(channel.digest);
  }
  const before = ctx.trustDoc?.value;
  const doc: TrustDoc = {
    formatVersion: 1,
    config: ctx.configDigest,
    roots: [
      ...(before?.roots ?? []),
      ...rotate.walked.map(({ bytes }) => bytes.toString('base64')),
    ],
    eras: [...(before?.eras ?? []), { version: rotate.root.version, seq, prev: after.digest }],
    pinned: pinned.sort(),
  };
  const sealed = await sealDocument('trust', doc, writer.keys);
  await append('trust', { root: rotate.root.version, trust: sealed.digest }, [], () =>
    putDoc(ctx.store, 'trust', doc, writer.keys, TAGS.trust, {
      replace: { expected: ctx.trustDoc?.manifest },
      sealed,
    }),
  );
  const roots = new Map(followed.roots);
  for (const { root } of rotate.walked) roots.set(root.version, root);
  const era: Era = {
    from: seq,
    version: rotate.root.version,
    keys: documentKeys(rotate.root, ctx.config.keys),
    prev: after.digest,
  };
  ctx.followed = {
    root: rotate.root,
    eras: [...followed.eras, era],
    roots,
    before: followed.before,
    pinned: new Set(pinned),
  };
  ctx.trust = rotate.root;
  ctx.keys = era.keys;
  ctx.trustDoc = { digest: sealed.digest, manifest: '', value: doc };
}

/**
 * Every channel document names the event that moved it, which was written first. One that
 * names an event after the head means the log lost its end (its last events removed): a
 * write now would give the lost event's number to its own, and the record of the lost one
 * (a promotion, say) would be gone for good.
 */
async function refuseCutBack(ctx: Context, head: Head | undefined): Promise<void> {
  for (const tag of await ctx.store.listRefs()) {
    const name = CHANNEL_TAG.exec(tag)?.[1];
    // A channel that cannot be read is history --verify's to name; it cannot vouch for the log.
    const doc =
      name === undefined ? undefined : await readChannel(ctx, name).catch(() => undefined);
    if (!doc || doc.value.auditSeq <= (head?.seq ?? 0)) continue;
    // A writer without a lock (a registry) may have written that event meanwhile.
    if (((await eventSeqs(ctx.store)).at(-1) ?? 0) >= doc.value.auditSeq)
      throw conflict(
        ctx.store,
        'the audit log',
        `gained event ${doc.value.auditSeq} while this command decided`,
      );
    throw new FerryError(
      'E_AUDIT_BROKEN',
      `${ctx.store.name}: channel ${name} (${doc.value.version}) names event ${doc.value.auditSeq}, but the log ends at event ${head?.seq ?? 0}: nothing was written`,
      {
        reference: TAGS.event(doc.value.auditSeq),
        hint: 'the end of the audit log was removed behind Ferry’s back: restore it from a backup and run `ferry history --verify`',
      },
    );
  }
}

/** Under decide()'s second attempt, a command that would now write nothing stops instead. */
function nothingLeft(ctx: Context, why: string): void {
  if (ctx.again) throw changedMeanwhile(ctx.store, ctx.again.moved, why);
}

async function moveChannel(
  ctx: Context,
  writer: Writer,
  name: string,
  current: Read<ChannelDoc> | undefined,
  version: string,
  digest: string,
  event: Head,
): Promise<ChannelDoc> {
  const doc: ChannelDoc = {
    channel: name,
    sequence: (current?.value.sequence ?? 0) + 1,
    version,
    digest,
    prev: current?.digest ?? null,
    auditHead: event.digest,
    auditSeq: event.seq,
    time: (writer.now ?? (() => new Date()))().toISOString(),
  };
  await putDoc(ctx.store, 'channel', doc, writer.keys, TAGS.channel(name), {
    replace: { expected: current?.manifest },
  });
  return doc;
}

// ------------------------------------------------------------------ publish

export interface PublishResult {
  repo: string;
  version: string;
  /** The version's manifest digest (what `skopeo inspect --raw` hashes to). */
  digest: string;
  /** Hex sha256 of the bundle file (as `build --json` gives it). */
  sha256: string;
  size: number;
  file: string;
  channel: string | null;
  /** False when the same bytes were already published under this version (and the channel, if any, held it). */
  changed: boolean;
  /** The trust root the repository follows after the publish; `taken` when this bundle brought it. */
  root: { version: number; taken: boolean };
}

export interface PublishOptions extends RepoOptions {
  bundle: string;
  /** Public keys (PEM) besides the release keys that may sign documents: set once, when the repository is made. */
  repoKeys?: readonly string[];
  channel?: string;
  writer: Writer;
  onProgress?: Progress;
}

export function publish(options: PublishOptions): Promise<PublishResult> {
  // Stored once: deciding again under the lock does not store the bundle again.
  const stored: { sha256?: string } = {};
  return decide((again) => publishOnce(options, stored, again));
}

function publishOnce(
  options: PublishOptions,
  stored: { sha256?: string },
  again?: Again,
): Promise<PublishResult> {
  return withRepository(
    options,
    { ...(again ? { again } : {}), create: options.trust !== undefined },
    (ctx) => publishWith(ctx, options, stored),
  );
}

async function publishWith(
  ctx: Context,
  options: PublishOptions,
  stored: { sha256?: string },
): Promise<PublishResult> {
  const trust = needTrust(ctx);
  const repoKeys = [...(options.repoKeys ?? [])];
  if (repoKeys.length > 0 && ctx.config)
    throw new FerryError(
      'E_USAGE',
      `${ctx.store.name} exists: its repository keys were fixed when it was made`,
      {
        hint: 'drop --repo-key, or make a new repository',
      },
    );
  const opened = await openTrusted(options.bundle, { root: trust, now: new Date() });
  // A new repository starts at the newest root the bundle's chain reaches from --trust;
  // an existing one takes a newer root the bundle carries, as an appliance does.
  if (!ctx.config) ctx.keys = documentKeys(opened.root, repoKeys);
  const rotate =
    ctx.config && opened.root.version > trust.version
      ? { root: opened.root, walked: opened.walked ?? [] }
      : undefined;
  if (ctx.ahead) reaches(ctx, ctx.ahead, opened.walked ?? []);
  const { metadata } = opened;
  const metadataBytes = opened.reader.metadataBytes;
  const format = opened.reader.format;
  await opened.reader.close();
  const product = ctx.config?.product ?? metadata.product;
  if (metadata.product !== product)
    throw new FerryError(
      'E_REPO_PRODUCT',
      `${options.bundle} is a bundle of ${metadata.product}; ${ctx.store.name} holds ${product}`,
      {
        file: options.bundle,
        hint: 'publish each product to its own repository',
      },
    );
  const version = metadata.release.version;
  // The head before anything it decides on (the policy, the version's tags), and answered
  // before they are asked for: a write after it moves the head, so commit finds it and this
  // publish decides again. Read after the version's tag, a publish of the version by another
  // writer in between was in the head and not in the tag read: this one recorded the
  // version a second time (other bytes: bytes never stored, then a conflict at the tag).
  if (!ctx.again) await options.writer.beforeHead?.();
  const head = await readHead(ctx);
  const policy = await policyOf(ctx);
  if (options.channel !== undefined) {
    knownChannel(policy, options.channel, ctx.store.name);
    const into = policy.edges.find(([, to]) => to === options.channel);
    if (into)
      throw new FerryError(
        'E_PROMOTE_EDGE',
        `${options.channel} is reached by promotion from ${into[0]}, not by publishing`,
        {
          reference: options.channel,
          hint: `publish into a channel no edge leads into (${entryChannels(policy).join(', ')}), then \`ferry promote\``,
        },
      );
  }
  const size = (
    await stat(options.bundle).catch((error: unknown) => {
      throw ioError(error, options.bundle, 'read');
    })
  ).size;
  // The version record comes before any write: registries overwrite tags without asking,
  // so the refusal is Ferry's, before anything is written. Only then is the file read,
  // once: hashed alone when the version exists, else hashed as it is stored.
  // At once: to a registry, one round trip for both.
  ctx.store.readAhead?.([TAGS.version(version), TAGS.removed(version)]);
  const existing = await untilStored(ctx, version, head);
  const removed = existing ? undefined : await ctx.store.readRef(TAGS.removed(version));
  const channel =
    options.channel === undefined ? undefined : await readChannel(ctx, options.channel);
  const metadataBlob = { digest: documentBlobDigest(metadataBytes), size: metadataBytes.length };
  let sha256: string;
  if (existing) {
    sha256 = await digestFile(options.bundle, size);
    if (existing.bundle.digest !== sha256)
      throw new FerryError(
        'E_VERSION_EXISTS',
        `${ctx.store.name} already holds ${version} as ${existing.bundle.digest}; ${options.bundle} is ${sha256}`,
        {
          file: options.bundle,
          reference: version,
          hint: 'a published version never changes: give the release a new version and publish that',
        },
      );
  } else {
    const manifestFor = (bundle: { digest: string }) =>
      bundleManifest({
        version,
        created: metadata.release.createdAt,
        metadata: metadataBlob,
        bundle: { ...bundle, size, fileName: basename(options.bundle), format },
      });
    if (head?.published?.version === version)
      await sameAsHead(ctx, head, options.bundle, size, manifestFor);
    if (removed) await sameAsRemoved(ctx, version, options.bundle, size, manifestFor);
    await allStored([
      ctx.store.putBlob(EMPTY_BLOB, EMPTY_DESCRIPTOR.digest, EMPTY_DESCRIPTOR.size),
      ctx.store.putBlob(metadataBytes, metadataBlob.digest, metadataBlob.size),
    ]);
    sha256 = stored.sha256 ??= await ctx.store.putBlob(options.bundle, undefined, size, {
      onProgress: options.onProgress,
    });
  }
  const manifest = bundleManifest({
    version,
    created: metadata.release.createdAt,
    metadata: metadataBlob,
    bundle: { digest: sha256, size, fileName: basename(options.bundle), format },
  });
  const digest = existing?.digest ?? manifest.digest;
  if (options.channel !== undefined)
    refuseSetBack(
      ctx,
      options.channel,
      channel,
      await eventsSince(ctx, channel?.value.auditSeq ?? 0, head),
      { version, digest },
    );
  const result: PublishResult = {
    repo: ctx.store.name,
    version,
    digest,
    sha256: sha256.replace(/^sha256:/, ''),
    size,
    file: existing
      ? (existing.bundle.annotations?.['org.opencontainers.image.title'] ??
        basename(options.bundle))
      : basename(options.bundle),
    channel: options.channel ?? null,
    changed: false,
    root: { version: opened.root.version, taken: rotate !== undefined },
  };
  const published =
    existing !== undefined && (options.channel === undefined || channel?.value.digest === digest);
  if (published && !rotate) return result;
  await commit(
    ctx,
    head,
    options.writer,
    async (append) => {
      if (published) return;
      if (!existing) {
        // Stored before the lock, so a gc that held it meanwhile swept them: no manifest
        // named them yet. Under the lock they are checked (and, if gone, stored again)
        // before the event, or the version would be recorded without its bundle, for good.
        await allStored([
          ctx.store.putBlob(EMPTY_BLOB, EMPTY_DESCRIPTOR.digest, EMPTY_DESCRIPTOR.size),
          ctx.store.putBlob(metadataBytes, metadataBlob.digest, metadataBlob.size),
        ]);
        await ctx.store.putBlob(options.bundle, sha256, size, { onProgress: options.onProgress });
      }
      if (!ctx.config) {
        const config: RepoConfig = {
          formatVersion: 1,
          product,
          trust: rootFileValue(opened.root),
          ...(repoKeys.length > 0 ? { keys: repoKeys } : {}),
          // So that the --trust root it was made with (older) still finds its way here.
          ...(opened.walked?.length
            ? { chain: opened.walked.map(({ bytes }) => bytes.toString('base64')) }
            : {}),
        };
        // The config is stored once its event is signed: a signer that fails leaves no
        // config behind that no event records (history --verify would refuse it for good).
        const sealed = await sealDocument('config', config, []);
        await append('create', { product, config: sealed.digest }, [], () =>
          putDoc(ctx.store, 'config', config, [], TAGS.config, { sealed }),
        );
      }
      const event = await append('publish', {
        version,
        digest,
        ...(options.channel !== undefined ? { channel: options.channel } : {}),
        // Where a promotion reading the log back from its head may stop looking for the
        // publisher. A head that published this version is a publish stopped before its
        // tag, rerun here: its event, not this one, names the publisher.
        ...(existing || removed || head?.published?.version === version ? {} : { first: true }),
      });
      if (!existing) await ctx.store.createRef(TAGS.version(version), manifest);
      if (options.channel !== undefined)
        await moveChannel(ctx, options.writer, options.channel, channel, version, digest, event);
    },
    rotate,
  );
  return { ...result, changed: !published };
}

/**
 * The version's tag, and when the head is a publish of the version whose tag is not
 * there yet, the tag that publish is about to write (whileWriting); a publish that
 * stopped before it is completed by this one (sameAsHead), with the same bytes.
 */
function untilStored(
  ctx: Context,
  version: string,
  head: Head | undefined,
): ReturnType<typeof readVersion> {
  return whileWriting(
    () => readVersion(ctx, version),
    (found) => found !== undefined || head?.published?.version !== version,
  );
}

/**
 * The head is a publish of this version whose tag is not there (that publish stopped
 * before it, or its writer is slower than untilStored waits): only the bytes its event
 * records complete it. Other bytes would make that version two releases, and on a
 * registry, whose tags are overwritten without asking, a writer still under way would
 * put its own bytes back under the tag after this one's.
 */
async function sameAsHead(
  ctx: Context,
  head: Head,
  file: string,
  size: number,
  manifestOf: (bundle: { digest: string }) => { digest: string },
): Promise<void> {
  const published = head.published;
  if (!published) return;
  const digest = manifestOf({ digest: await digestFile(file, size) }).digest;
  if (digest === published.digest) return;
  throw new FerryError(
    'E_VERSION_EXISTS',
    `${ctx.store.name}: event ${head.seq} published ${published.version} as ${published.digest}, whose tag is not written yet (that publish is under way, or stopped before it); ${file} makes it ${digest}`,
    {
      file,
      reference: published.version,
      hint: 'a published version never changes: give the release a new version and publish that (publishing that same bundle file again completes a stopped publish)',
    },
  );
}

/**
 * A version gc removed was published all the same: the log records it, machines pulled and
 * installed it. Publishing it again restores those very bytes; other bytes under its
 * number would make one version two releases, which "a version never changes" rules out.
 * Asked only when gc left the version's `ferry.removed.` tag: the whole log is read then,
 * not by every publish of a new version (thousands of reads in a registry after a year).
 */
async function sameAsRemoved(
  ctx: Context,
  version: string,
  file: string,
  size: number,
  manifestOf: (bundle: { digest: string }) => { digest: string },
): Promise<void> {
  if (!ctx.config) return;
  const events = await readEvents(ctx);
  const published = events
    .filter((e) => e.op === 'publish' && e.subject.version === version)
    .at(-1);
  if (!published) return;
  const digest = manifestOf({ digest: await digestFile(file, size) }).digest;
  if (digest === published.subject.digest) return;
  const removed = events
    .filter((e) => e.op === 'gc' && e.subject.removed?.includes(version))
    .at(-1);
  throw new FerryError(
    'E_VERSION_EXISTS',
    `${ctx.store.name} held ${version} as ${String(published.subject.digest)} (event ${published.seq})${removed ? `, removed by gc at event ${removed.seq}` : ''}; ${file} makes it ${digest}`,
    {
      file,
      reference: version,
      hint: 'a published version never changes, gc or not: give the release a new version and publish that (publishing the same bundle file again restores it)',
    },
  );
}

/**
 * With --trust newer than the repository's root, the bundle must carry that
 * very root: the repository takes it from the bundle, never from the flag.
 */
function reaches(
  ctx: Context,
  ahead: { root: TrustedRoot; file: string },
  walked: ChainWalk['accepted'],
): void {
  const carried = walked.find(({ root }) => root.version === ahead.root.version)?.root;
  if (carried && sameRoot(carried, ahead.root)) return;
  if (!ctx.followed) throw new Error('reaches: no repository');
  throw aheadOf(ctx.store.name, ctx.followed, ahead.root, ahead.file);
}

/**
 * Whether the repository's newest root still accepts a version's signature
 * (its bundle.json layer): a key revoked since it was published no longer
 * signs a release that may be promoted.
 */
async function untrustedVersion(
  ctx: Context,
  version: string,
  metadata: Descriptor,
): Promise<{ untrusted?: { code: ErrorCode; message: string } }> {
  const root = ctx.trust;
  if (!root) return {};
  const where = `${ctx.store.name}: version ${version}`;
  const bytes = await ctx.store.readBlob(metadata.digest, metadata.size);
  const { envelope, payload } = decodeEnvelope(bytes, `${where} (bundle.json)`);
  const status = checkSignatures(envelope, payload, root);
  if (status.valid) return {};
  return {
    untrusted: {
      code: status.revoked.length > 0 ? 'E_KEY_REVOKED' : 'E_SIGNATURE',
      message: `${version} is signed by keys trust root version ${root.version} does not accept (${status.problems.join('; ')}): appliances that took it refuse the bundle; publish a release signed by a key of it`,
    },
  };
}

/** bundle.json's exact bytes, never a re-serialisation. */
function documentBlobDigest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function entryChannels(policy: Policy): string[] {
  return Object.keys(policy.channels).filter((name) => !policy.edges.some(([, to]) => to === name));
}

// ------------------------------------------------------------------ pull

export interface PullResult {
  bundle: string;
  version: string;
  digest: string;
  sha256: string;
  size: number;
  channel: string | null;
  /** False when the bundle was already in --out with these very bytes. */
  changed: boolean;
}

type PullOptions = RepoOptions & {
  channel?: string;
  version?: string;
  out: string;
  onProgress?: Progress;
  /** Where this machine records the channel documents it pulled (see pulled.ts); none: no record. */
  stateDir?: string;
};

export function pull(options: PullOptions): Promise<PullResult> {
  // Started while the records are read: the download would otherwise wait for it.
  warmHashWorker();
  const ahead =
    options.channel === undefined
      ? []
      : [
          TAGS.policy,
          TAGS.channel(options.channel),
          ...(options.stateDir === undefined ? [] : [TAGS.event(1)]),
        ];
  return withRepository(options, { ahead }, (ctx) => pullWith(ctx, options));
}

async function pullWith(ctx: Context, options: PullOptions): Promise<PullResult> {
  const trust = needTrust(ctx);
  let version = options.version;
  let expected: string | undefined;
  if (options.channel !== undefined) {
    // Asked at once, with the config (to a registry 50 ms away, two round trips
    // rather than eight), then judged in the order they were asked.
    const [policy, read, first] = await Promise.allSettled([
      policyOf(ctx),
      readChannel(ctx, options.channel),
      options.stateDir === undefined ? undefined : identity(ctx),
    ]);
    knownChannel(settledValue(policy), options.channel, ctx.store.name);
    const channel = settledValue(read);
    if (!channel)
      throw new FerryError(
        'E_UNKNOWN_VERSION',
        `channel ${options.channel} of ${ctx.store.name} holds no version yet`,
        {
          reference: options.channel,
          hint: 'publish or promote a version into it first',
        },
      );
    if (version !== undefined && version !== channel.value.version)
      throw new FerryError(
        'E_UNKNOWN_VERSION',
        `channel ${options.channel} holds ${channel.value.version}, not ${version}`,
        {
          reference: options.channel,
          hint: 'pass --channel or --version, not both',
        },
      );
    version = channel.value.version;
    expected = channel.value.digest;
    const here = settledValue(first);
    if (options.stateDir !== undefined && here !== undefined)
      await acceptChannelDocument(options.stateDir, here, options.channel, {
        sequence: channel.value.sequence,
        digest: channel.digest,
        version,
      });
  }
  if (version === undefined)
    throw new FerryError('E_USAGE', 'pull needs --channel C or --version V', {});
  // A pull by version keeps no channel record, but a dropped key signs bundles as well as
  // channel documents: a repository whose root went below the one recorded is refused here too.
  const byVersion = options.channel === undefined ? options.stateDir : undefined;
  if (byVersion !== undefined)
    await refuseRootSetBack(byVersion, { name: ctx.store.name, root: trust.version }, version);
  const found = await needVersion(ctx, version);
  if (expected !== undefined && found.digest !== expected)
    throw invalid(
      `${ctx.store.name}: version ${version}`,
      `is ${found.digest}, but channel ${options.channel} signed ${expected}`,
    );
  const name = found.bundle.annotations?.['org.opencontainers.image.title'] ?? '';
  if (!/^[^/\\]+$/.test(name) || name === '.' || name === '..')
    throw invalid(
      `${ctx.store.name}: version ${version}`,
      `names its bundle file ${JSON.stringify(name)}`,
    );
  const target = join(options.out, name);
  const where = `${ctx.store.name}: version ${version} (${name})`;
  // Checked where it lies, before it takes the bundle's name (or, already there, before
  // pull says so).
  const check = async (file: string): Promise<void> => {
    const opened = await openTrusted(file, { root: trust, now: new Date() }).catch(
      (error: unknown) => {
        throw asPulled(error, file, where, version);
      },
    );
    await opened.reader.close();
    if (opened.metadata.release.version !== version)
      throw invalid(
        `${ctx.store.name}: version ${version}`,
        `holds a bundle of release ${opened.metadata.release.version}`,
      );
    // As publish refuses it: a bundle of another product the same keys signed (a
    // mirror that mixed repositories up; a version manifest is not signed) is not this one.
    const product = ctx.config?.product;
    if (product !== undefined && opened.metadata.product !== product)
      throw new FerryError(
        'E_REPO_PRODUCT',
        `${where} is a bundle of ${opened.metadata.product}; ${ctx.store.name} holds ${product}`,
        {
          reference: version,
          hint: 'the repository holds another product under this version: pull by --channel, and run `ferry history --verify`',
        },
      );
    // Only once a bundle held against it: a repository that hands out none proved nothing.
    if (byVersion !== undefined)
      await recordRepositoryRoot(byVersion, {
        name: ctx.store.name,
        root: trust.version,
        created: async () => (await identity(ctx)).created,
      });
  };
  const result = {
    bundle: target,
    version,
    digest: found.digest,
    sha256: found.bundle.digest.replace(/^sha256:/, ''),
    size: found.bundle.size,
    channel: options.channel ?? null,
  };
  if (await alreadyPulled(target, found.bundle, where)) {
    await check(target);
    return { ...result, changed: false };
  }
  // First, so that the room they took counts.
  removeDeadTemps(options.out, 'pull');
  // Before a folder is made or a byte is fetched: a stick too small is said at once, not after an hour.
  await checkSpace(
    target,
    found.bundle.size,
    'free space there, or pull to a larger disk or stick (`ferry media` splits a bundle across several)',
  );
  const made = await mkdir(options.out, { recursive: true }).catch((error: unknown) => {
    throw ioError(error, options.out, 'create');
  });
  // Named with this machine and process: a pull SIGKILLed (or cut by a power loss)
  // leaves it behind, and the next pull into the folder removes it (removeDeadTemps).
  const temp = join(options.out, ownTempName(name, 'pull'));
  // Ctrl-C (or a SIGTERM, a closed terminal) mid-download would leave the partial
  // bundle under a hidden name on the stick, as large as it got: remove it (and the
  // folders made for it), then let the signal end the process as it would have.
  const interrupted = (signal: NodeJS.Signals): void => {
    for (const one of STOP_SIGNALS) process.removeListener(one, interrupted);
    const prefix = basename(temp);
    for (const entry of readdirSafe(options.out)) {
      // The temporary file, and the one the download streams into before it is renamed to it.
      if (entry === prefix || entry.startsWith(`.${prefix}.`))
        rmSync(join(options.out, entry), { force: true });
    }
    if (made !== undefined) removeEmptyFolders(options.out, made);
    process.kill(process.pid, signal);
  };
  for (const one of STOP_SIGNALS) process.on(one, interrupted);
  try {
    await ctx.store
      .pullBlob(found.bundle.digest, found.bundle.size, temp, options.onProgress)
      .catch((error: unknown) => {
        throw bundleRefused(error, ctx.store.name, where, version);
      });
    await check(temp);
    await rename(temp, target).catch((error: unknown) => {
      throw ioError(error, target, 'write');
    });
    // Without it a power cut could leave the checked bundle under its temporary name.
    await syncDir(options.out);
  } catch (error) {
    await rm(temp, { force: true });
    // The folders this pull made for the bundle go too: a refused pull leaves nothing behind.
    if (made !== undefined) removeEmptyFolders(options.out, made);
    throw error;
  } finally {
    for (const one of STOP_SIGNALS) process.removeListener(one, interrupted);
  }
  return { ...result, changed: true };
}

/** Waits for every store, then throws the first failure: no upload goes on behind an error. */
async function allStored(stores: Array<Promise<string>>): Promise<void> {
  for (const result of await Promise.allSettled(stores)) settledValue(result);
}

function settledValue<T>(result: PromiseSettledResult<T>): T {
  if (result.status === 'rejected') throw result.reason;
  return result.value;
}

/** The repository as named, and its first event's digest: one made anew, or put in its place, has another. */
async function identity(ctx: Context): Promise<RepositoryIdentity> {
  return {
    name: ctx.store.name,
    created: (await readEvent(ctx, 1))?.digest ?? 'none',
    ...(ctx.trust ? { root: ctx.trust.version } : {}),
  };
}

/**
 * Whether the bundle's name in --out already holds these very bytes (nothing to
 * download). Pull never replaces anything else there: the name comes from the
 * repository, unsigned, and a hostile or muddled one could otherwise have another
 * bundle on the stick overwritten.
 */
async function alreadyPulled(target: string, blob: Descriptor, where: string): Promise<boolean> {
  const info = await lstat(target).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(error, target, 'read');
  });
  if (!info) return false;
  if (
    info.isFile() &&
    info.size === blob.size &&
    (await digestFile(target, blob.size)) === blob.digest
  )
    return true;
  throw new FerryError(
    'E_EXISTS',
    `${target} is already there, ${info.isFile() ? `with other bytes than ${where}` : 'and is not a file'}`,
    {
      file: target,
      hint: 'pull into another folder, or move that one away first: pull replaces nothing',
    },
  );
}

/**
 * A refusal of the downloaded bundle (its signature, its archive) names the
 * repository, the version and the bundle's name, not the temporary file it
 * was checked in, which is gone by the time the operator reads the message.
 */
function asPulled(error: unknown, temp: string, where: string, version: string): unknown {
  if (!(error instanceof FerryError) || error.details.file !== temp) return error;
  const { file: _file, ...details } = error.details;
  return new FerryError(error.code, error.message.split(temp).join(where), {
    ...details,
    reference: version,
  });
}

/** What a bundle's download may fail with that bundleRefused names by version. */
const BUNDLE_REFUSALS = [
  'E_DIGEST_MISMATCH',
  'E_BLOB_UNKNOWN',
  'E_REPO_INVALID',
  'E_REGISTRY_UNREACHABLE',
];

/**
 * The bundle's bytes refused as they came (other bytes than its digest names, or
 * none at all), or stopped coming, named as asPulled names a refused bundle: by
 * the repository, the version and the bundle's name, not by a blob digest alone.
 */
function bundleRefused(error: unknown, repo: string, where: string, version: string): unknown {
  if (!(error instanceof FerryError)) return error;
  if (!BUNDLE_REFUSALS.includes(error.code)) return error;
  const what = error.message.startsWith(`${repo}: `)
    ? error.message.slice(repo.length + 2)
    : error.message;
  return new FerryError(error.code, `${where}: ${what}`, { ...error.details, reference: version });
}

/** Removes `path` and its parents up to `first` (what mkdir -p made), each only while empty. Synchronous: a signal handler calls it too. */
function removeEmptyFolders(path: string, first: string): void {
  const stop = resolve(first);
  for (let at = resolve(path); ; at = resolve(at, '..')) {
    try {
      rmdirSync(at);
    } catch {
      return;
    }
    if (at === stop || at === resolve(at, '..')) return;
  }
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function readdirSafe(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

// ------------------------------------------------------------------ channels

export interface ChannelRow {
  name: string;
  version: string | null;
  digest: string | null;
  sequence: number;
  since: string | null;
  /** Channels a promotion from this one may go to. */
  to: string[];
  /** The document this machine last pulled from the channel, and how the channel stands against it. */
  pulled: { sequence: number; version: string; digest: string; standing: PulledStanding } | null;
}

export interface ChannelsResult {
  repo: string;
  /** The trust root version the repository follows. */
  root: number;
  channels: ChannelRow[];
}

export async function channels(
  options: RepoOptions & {
    /** Where pull records what it pulled (see pulled.ts); none: no `pulled`. */
    stateDir?: string;
  },
): Promise<ChannelsResult> {
  return withRepository(options, { ahead: [TAGS.policy] }, (ctx) =>
    channelsOf(ctx, options.stateDir),
  );
}

async function channelsOf(ctx: Context, stateDir: string | undefined): Promise<ChannelsResult> {
  // The policy asked with the config, the tag list beside it, then the channels'
  // documents several at once (to a registry 50 ms away, five round trips rather
  // than eleven for three channels), judged in order.
  const [read, listed] = await Promise.allSettled([policyOf(ctx), ctx.store.listRefs()]);
  const policy = settledValue(read);
  const names = new Set(Object.keys(policy.channels));
  for (const tag of settledValue(listed)) {
    const name = CHANNEL_TAG.exec(tag)?.[1];
    if (name) names.add(name);
  }
  const list = [...names];
  const readAt = readsInOrder(list, (name) => readChannel(ctx, name));
  const held = [];
  for (const [k, name] of list.entries()) {
    const doc = await readAt(k);
    held.push({
      name,
      doc: doc?.value,
      ...(doc ? { now: { sequence: doc.value.sequence, digest: doc.digest } } : {}),
    });
  }
  const pulled =
    stateDir === undefined
      ? undefined
      : await pulledFrom(
          stateDir,
          {
            name: ctx.store.name,
            created: async () => (await identity(ctx)).created,
            ...(ctx.trust ? { root: ctx.trust.version } : {}),
          },
          held,
        );
  const rows = held.map(({ name, doc }): ChannelRow => ({
    name,
    version: doc?.version ?? null,
    digest: doc?.digest ?? null,
    sequence: doc?.sequence ?? 0,
    since: doc?.time ?? null,
    to: policy.edges.filter(([from]) => from === name).map(([, to]) => to),
    pulled: pulled?.get(name) ?? null,
  }));
  return { repo: ctx.store.name, root: ctx.trust?.version ?? 0, channels: rows };
}

// ------------------------------------------------------------------ history

export interface HistoryResult {
  repo: string;
  /** Newest first. */
  events: Array<AuditEvent & { digest: string }>;
  verified: boolean;
}

/**
 * The audit log, newest first. With `verify`, the whole chain is checked
 * from the first event: every event is there, its bytes have the digest its
 * tag names and the next event's `prev` names, its signature holds, and
 * every channel's document points at an event of the chain, and no publish
 * says it is its version's first where Ferry could not have said so. The first
 * event that fails is named (E_AUDIT_BROKEN).
 */
export async function history(
  options: RepoOptions & { verify?: boolean; channel?: string },
): Promise<HistoryResult> {
  return withRepository(options, {}, (ctx) => historyOf(ctx, options));
}

async function historyOf(
  ctx: Context,
  options: { verify?: boolean; channel?: string },
): Promise<HistoryResult> {
  const events: Array<AuditEvent & { digest: string }> = [];
  const seqs = await eventSeqs(ctx.store);
  const readAt = eventReads(ctx, seqs);
  let prev: string | null = null;
  let state: LogState = { policy: 0, moves: {} };
  const published = new PublishedVersions();
  for (const [index, seq] of seqs.entries()) {
    const broken = (what: string): FerryError =>
      new FerryError('E_AUDIT_BROKEN', `${ctx.store.name}: event ${seq} ${what}`, {
        reference: TAGS.event(seq),
        hint: 'the audit log was edited behind Ferry’s back: restore the repository from a backup and find out who changed it',
      });
    let read: Read<AuditEvent> | undefined;
    try {
      read = await readAt(index);
    } catch (error) {
      if (!options.verify || !(error instanceof FerryError)) throw error;
      throw broken(`was edited: ${error.message}`);
    }
    if (!read) continue;
    const event = read.value;
    if (options.verify) {
      if (seq !== index + 1)
        throw broken(`follows event ${seqs[index - 1] ?? 0}: events are missing before it`);
      if (event.seq !== seq) throw broken(`says it is event ${event.seq}`);
      if (event.prev !== prev)
        throw broken(
          index === 0
            ? `names a previous event, but it is the first`
            : `names ${event.prev} as the event before it, but event ${seqs[index - 1]} is ${prev}: event ${seqs[index - 1]} was edited`,
        );
      notTakenOver(ctx, seq, read.digest);
      // What a promotion takes for the log's last policy and moves, without reading back to them.
      state = after(state, event);
      if (event.last && canonicalJson(event.last) !== canonicalJson(state))
        throw broken(
          `says the log's last policy and moves are ${canonicalJson(event.last)}, but they are ${canonicalJson(state)}`,
        );
      const notFirst = published.notFirst(event, events.at(-1));
      if (notFirst)
        throw new FerryError(
          'E_AUDIT_BROKEN',
          `${ctx.store.name}: event ${seq} says it is the first publish of ${String(event.subject.version)}, but ${notFirst}`,
          {
            reference: TAGS.event(seq),
            hint: 'the audit log was edited behind Ferry’s back: its writer passes for the publisher in `ferry promote`, so approvals by the real one count; restore the repository from a backup and find out who wrote it',
          },
        );
      published.add(event);
    }
    prev = read.digest;
    events.push({ ...event, digest: read.digest });
  }
  if (options.verify) {
    const byDigest = new Map(events.map((event) => [event.digest, event]));
    // The last event that moved each channel: the channel's document must be that move. An
    // older document put back (it is validly signed, and its event is in the chain) sets the
    // channel back to a version it held, and pull would hand that out.
    const lastMove = new Map<string, AuditEvent>();
    for (const event of events) {
      const moved = movedChannel(event);
      if (moved !== undefined) lastMove.set(moved, event);
    }
    const names = new Set(lastMove.keys());
    for (const tag of await ctx.store.listRefs()) {
      const name = CHANNEL_TAG.exec(tag)?.[1];
      if (name) names.add(name);
    }
    // The config is unsigned; the first event, signed, records its digest. A config edited
    // afterwards (a repository key added, whose holder could then sign documents) is named.
    const created = events[0];
    if (created && (created.op !== 'create' || created.subject.config !== ctx.configDigest))
      throw new FerryError(
        'E_AUDIT_BROKEN',
        `${ctx.store.name}: the repository config is ${ctx.configDigest ?? 'missing'}, but event 1 (${created.op}) records ${created.subject.config ?? 'no config'}`,
        {
          reference: TAGS.config,
          hint: 'the config (its trust root and repository keys) was replaced behind Ferry’s back: restore the repository from a backup',
        },
      );
    const trustStale = trustNotLogged(ctx, events);
    if (trustStale)
      throw new FerryError('E_AUDIT_BROKEN', trustStale, {
        reference: TAGS.trust,
        hint: 'the trust document or a trust event was replaced or removed behind Ferry’s back: restore the repository from a backup',
      });
    const policyStale = policyNotLogged(
      ctx,
      events.filter((e) => e.op === 'policy').at(-1),
      await readPolicy(ctx),
    );
    if (policyStale)
      throw new FerryError('E_AUDIT_BROKEN', policyStale, {
        reference: TAGS.policy,
        hint: 'the policy was replaced behind Ferry’s back; if `ferry policy --set` was stopped before it wrote the policy, run it again',
      });
    // Every approval the repository holds is one the log records (promote counts no other).
    const recorded = recordedApprovals(events);
    const held = await approvalReads(ctx);
    for (const [index, tag] of held.tags.entries()) {
      const doc = await held.readAt(index).catch((error: unknown) => {
        throw new FerryError(
          'E_AUDIT_BROKEN',
          `${ctx.store.name}: approval ${tag} was edited: ${(error as Error).message}`,
          { reference: tag, hint: 'the repository was edited behind Ferry’s back' },
        );
      });
      if (doc && !recorded.has(doc.digest))
        throw new FerryError(
          'E_AUDIT_BROKEN',
          `${ctx.store.name}: approval ${tag} (${doc.value.by} for ${doc.value.version} ${doc.value.from} → ${doc.value.to}) is not recorded by any event of the log`,
          {
            reference: tag,
            hint: 'it was put there behind Ferry’s back (copied from another repository?), or its event was removed; promote does not count it',
          },
        );
    }
    for (const name of names) {
      const tag = TAGS.channel(name);
      const doc = await readChannel(ctx, name).catch((error: unknown) => {
        throw new FerryError(
          'E_AUDIT_BROKEN',
          `${ctx.store.name}: channel ${name} was edited: ${(error as Error).message}`,
          {
            reference: tag,
            hint: 'the channel was moved behind Ferry’s back',
          },
        );
      });
      const event = doc && byDigest.get(doc.value.auditHead);
      if (
        doc &&
        (!event ||
          event.seq !== doc.value.auditSeq ||
          (event.subject.channel ?? event.subject.to) !== name)
      )
        throw new FerryError(
          'E_AUDIT_BROKEN',
          `${ctx.store.name}: channel ${name} (${doc.value.version}) names event ${doc.value.auditSeq}, which does not record that move`,
          {
            reference: tag,
            hint: 'the channel was moved behind Ferry’s back, or by a writer that lost a race',
          },
        );
      const behind = channelBehind(ctx, name, doc, events);
      if (behind)
        throw new FerryError('E_AUDIT_BROKEN', behind.message, {
          reference: tag,
          hint: `the channel was set back behind Ferry’s back; if the writer of event ${behind.last.seq} was stopped before it moved the channel, run that command again`,
        });
    }
  }
  // The filter comes after the walk: --verify always checks the whole chain.
  const shown =
    options.channel === undefined
      ? events
      : events.filter((e) =>
          [e.subject.channel, e.subject.to, e.subject.from].includes(options.channel),
        );
  return { repo: ctx.store.name, events: shown.reverse(), verified: options.verify === true };
}

/**
 * What history --verify knows of each version's publishes, to judge a publish that says it
 * is the version's `first` (where `ferry promote` stops looking for the publisher). Ferry
 * marks one when the version has no tag, no gc record, and the head is not a publish of it.
 * So a mark is refused only where that cannot have held: right after a publish of the
 * version (a stopped publish rerun is not `first`), or after an approval, promotion or
 * rollback of it (each read its tag) with no gc removing it in between. A publish stopped
 * before its tag and run again after other writes is marked too, rightly so (README); a gc
 * by an older Ferry left no record, so a version gc removed starts afresh.
 */
class PublishedVersions {
  /** Each version's newest publish since gc last removed it. */
  private readonly publish = new Map<string, number>();
  /** A version's publish and the event after it that found the version's tag. */
  private readonly stored = new Map<string, { publish: number; by: AuditEvent }>();

  /** Why `event` cannot be its version's first publish, if it says so and cannot be. */
  notFirst(event: AuditEvent, before: AuditEvent | undefined): string | undefined {
    const version = event.subject.version;
    if (event.op !== 'publish' || event.subject.first !== true || version === undefined) return;
    if (before?.op === 'publish' && before.subject.version === version)
      return `event ${before.seq} published ${version} just before it`;
    const stored = this.stored.get(version);
    if (stored)
      return `event ${stored.publish} published ${version} and event ${stored.by.seq} (${stored.by.op}) found it stored, with no gc removing it since`;
    return undefined;
  }

  add(event: AuditEvent): void {
    const version = event.subject.version;
    if (event.op === 'gc')
      for (const removed of event.subject.removed ?? []) {
        this.publish.delete(removed);
        this.stored.delete(removed);
      }
    if (version === undefined) return;
    if (event.op === 'publish') this.publish.set(version, event.seq);
    const publish = this.publish.get(version);
    if (
      ['approve', 'promote', 'rollback'].includes(event.op) &&
      publish !== undefined &&
      !this.stored.has(version)
    )
      this.stored.set(version, { publish, by: event });
  }
}

// ------------------------------------------------------------------ approve

export interface ApproveResult {
  repo: string;
  version: string;
  digest: string;
  from: string;
  to: string;
  by: string;
  approval: string;
  evidence: Evidence[];
}

function sourceOf(policy: Policy, to: string, from: string | undefined, repo: string): string {
  if (from !== undefined) return from;
  const sources = policy.edges.filter(([, b]) => b === to).map(([a]) => a);
  if (sources.length === 1) return sources[0] as string;
  throw new FerryError(
    'E_USAGE',
    `${repo}: ${to} can be reached from ${sources.length ? sources.join(' or ') : 'no channel'}`,
    {
      hint: 'say which with --from',
    },
  );
}

/** Evidence files by digest; their bytes are stored only when the approval is written. */
async function describeEvidence(
  files: readonly string[],
): Promise<Array<Evidence & { file: string }>> {
  const evidence: Array<Evidence & { file: string }> = [];
  for (const file of files) {
    const size = (
      await stat(file).catch((error: unknown) => {
        throw ioError(error, file, 'read');
      })
    ).size;
    evidence.push({ name: basename(file), digest: await digestFile(file, size), size, file });
  }
  return evidence;
}

export interface ApproveOptions {
  version: string;
  to: string;
  /** The source channel, when more than one edge leads into `to`. */
  from?: string;
  by: string;
  evidence: readonly string[];
  writer: Writer;
}

async function approvalFor(ctx: Context, policy: Policy, options: ApproveOptions) {
  knownChannel(policy, options.to, ctx.store.name);
  const from = sourceOf(policy, options.to, options.from, ctx.store.name);
  knownChannel(policy, from, ctx.store.name);
  const version = await needVersion(ctx, options.version);
  const files = await describeEvidence(options.evidence);
  const doc: ApprovalDoc = {
    version: options.version,
    digest: version.digest,
    from,
    to: options.to,
    by: options.by,
    time: (options.writer.now ?? (() => new Date()))().toISOString(),
    ci: options.writer.ci,
    evidence: files.map(({ name, digest, size }) => ({ name, digest, size })),
  };
  return { doc, from, version, files };
}

async function writeApproval(
  ctx: Context,
  append: Parameters<Parameters<typeof commit>[3]>[0],
  { doc, files }: { doc: ApprovalDoc; files: ReadonlyArray<Evidence & { file: string }> },
  writer: Writer,
) {
  for (const item of files) await ctx.store.putBlob(item.file, item.digest, item.size);
  const blob = await sealDocument('approval', doc, writer.keys);
  const attachments = doc.evidence.map((item) => ({
    mediaType: 'application/octet-stream',
    digest: item.digest,
    size: item.size,
    annotations: { 'org.opencontainers.image.title': item.name },
  }));
  await append(
    'approve',
    {
      version: doc.version,
      digest: doc.digest,
      from: doc.from,
      to: doc.to,
      by: doc.by,
      approval: blob.digest,
    },
    doc.evidence,
  );
  await putDoc(ctx.store, 'approval', doc, writer.keys, TAGS.approval(blob.digest.slice(7, 31)), {
    attachments,
    sealed: blob,
  });
  return blob.digest;
}

export function approve(options: RepoOptions & ApproveOptions): Promise<ApproveResult> {
  return decide((again) => approveOnce(options, again));
}

function approveOnce(options: RepoOptions & ApproveOptions, again?: Again): Promise<ApproveResult> {
  return withRepository(options, { ...(again ? { again } : {}) }, (ctx) =>
    approveWith(ctx, options),
  );
}

async function approveWith(
  ctx: Context,
  options: RepoOptions & ApproveOptions,
): Promise<ApproveResult> {
  // The head first: a policy or version written after it moves it (commit decides again).
  if (!ctx.again) await options.writer.beforeHead?.();
  const head = await readHead(ctx);
  const policy = await policyOf(ctx);
  const decided = await approvalFor(ctx, policy, options);
  const { doc, from } = decided;
  let approval = '';
  await commit(ctx, head, options.writer, async (append) => {
    approval = await writeApproval(ctx, append, decided, options.writer);
  });
  return {
    repo: ctx.store.name,
    version: doc.version,
    digest: doc.digest,
    from,
    to: doc.to,
    by: doc.by,
    approval,
    evidence: doc.evidence,
  };
}

/** The digests of the approval documents the log's `approve` events record. */
function recordedApprovals(events: readonly AuditEvent[]): Set<unknown> {
  return new Set(events.filter((e) => e.op === 'approve').map((e) => e.subject.approval));
}

/**
 * The approvals of a promotion that the log records. A signed approval the log does
 * not name counts for nothing: the same bundle has the same digest in every
 * repository, so an approval copied in from another repository signed by the same
 * keys (a staging one), or one whose `approve` event was cut off the log, would
 * otherwise let a channel move that no one here approved. Only the documents the
 * log's `approve` events of this promotion name are read, by their tags: a year's
 * approvals of other versions are not (two reads each, to a registry).
 */
async function approvals(
  ctx: Context,
  events: readonly AuditEvent[],
  digest: string,
  from: string,
  to: string,
): Promise<ApprovalDoc[]> {
  const recorded = [
    ...new Set(
      events
        .filter(
          (e) =>
            e.op === 'approve' &&
            e.subject.digest === digest &&
            e.subject.from === from &&
            e.subject.to === to &&
            typeof e.subject.approval === 'string',
        )
        .map((e) => e.subject.approval as string),
    ),
  ];
  const readAt = readsInOrder(recorded, (approval) =>
    readDoc<ApprovalDoc>(
      ctx.store,
      'approval',
      TAGS.approval(approval.slice('sha256:'.length, 31)),
      ctx.followed ? everyKey(ctx.followed.eras) : ctx.keys,
      `approval ${approval}`,
    ),
  );
  const found: ApprovalDoc[] = [];
  for (const [index, approval] of recorded.entries()) {
    const doc = await readAt(index);
    if (
      doc &&
      doc.digest === approval &&
      doc.value.digest === digest &&
      doc.value.from === from &&
      doc.value.to === to
    )
      found.push(doc.value);
  }
  return found;
}

// ------------------------------------------------------------------ promote

export interface PromoteResult {
  repo: string;
  version: string;
  digest: string;
  from: string | null;
  to: string;
  verdict: 'promoted' | 'rolled-back' | 'unchanged' | 'blocked' | 'closed';
  /** Why nothing moved: E_PROMOTION_BLOCKED (exit 4) or E_PROMOTION_WINDOW (exit 5). */
  code?: 'E_PROMOTION_BLOCKED' | 'E_PROMOTION_WINDOW';
  excuses: Excuse[];
  opens?: string;
  /** The audit event that records the move. */
  event?: number;
}

export interface PromoteOptions extends RepoOptions {
  version: string;
  to: string;
  from?: string;
  approvedBy?: string;
  evidence?: readonly string[];
  rollback?: boolean;
  reason?: string;
  writer: Writer;
}

export function promote(options: PromoteOptions): Promise<PromoteResult> {
  return decide((again) => promoteOnce(options, again));
}

async function promoteOnce(options: PromoteOptions, again?: Again): Promise<PromoteResult> {
  return withRepository(options, { ...(again ? { again } : {}) }, (ctx) =>
    promoteWith(ctx, options),
  );
}

/**
 * What a promotion reads of the log: the events back from the head far enough for every
 * rule, so that it costs what happened since the version was published, not the whole
 * log. That is past the version's first publish (its publisher; its approvals and the
 * channels it held come after it), and past the newest event that says what the log
 * last did (AuditEvent.last): the policy it last set, read alone when older, and each
 * channel's last move. Only a channel behind its last move (set back, or its writer
 * stopped) is read back to its document, to count the moves. Before events said so (a
 * repository older than that), or when the version's first publish did not say it was
 * the first, the log is read back to the start, as before.
 */
async function promotionEvents(
  ctx: Context,
  digest: string,
  channels: ReadonlyArray<{ name: string; doc: Read<ChannelDoc> | undefined }>,
): Promise<{ events: AuditEvent[]; policy: AuditEvent | undefined }> {
  let published = false;
  let state: LogState | undefined;
  let since = Infinity;
  const newer: AuditEvent[] = [];
  const events = await eventsBack(ctx, (event) => {
    if (event.op === 'publish' && event.subject.digest === digest && event.subject.first === true)
      published = true;
    if (!state && event.last) {
      state = newer.reduceRight(after, event.last);
      for (const { name, doc } of channels)
        if ((state.moves[name] ?? 0) > (doc?.value.auditSeq ?? 0))
          since = Math.min(since, (doc?.value.auditSeq ?? 0) + 1);
    }
    newer.push(event);
    return published && state !== undefined && event.seq <= since;
  });
  state ??= events.reduce(after, { policy: 0, moves: {} });
  ctx.last ??= state;
  const seq = state.policy;
  if (seq === 0) return { events, policy: undefined };
  let policy = events.find((event) => event.seq === seq);
  if (!policy) {
    const read = await readEvent(ctx, seq);
    if (read) notTakenOver(ctx, seq, read.digest);
    policy = read?.value;
  }
  if (policy?.op !== 'policy' || policy.seq !== seq)
    throw new FerryError(
      'E_AUDIT_BROKEN',
      `${ctx.store.name}: the audit log names event ${seq} as the policy it last set, but event ${seq} ${policy ? `is a ${policy.op} event` : 'is missing'}`,
      {
        reference: TAGS.event(seq),
        hint: 'the audit log was edited behind Ferry’s back: nothing was written; run `ferry history --verify`',
      },
    );
  return { events, policy };
}

async function promoteWith(ctx: Context, options: PromoteOptions): Promise<PromoteResult> {
  // The head before the policy: a policy set after the head moves it (commit decides
  // again); read the other way round, the log named a policy newer than the one read, and
  // promote took it for an older one put back (E_REPO_INVALID).
  if (!ctx.again) await options.writer.beforeHead?.();
  const head = await readHead(ctx);
  const policyRead = await readPolicy(ctx);
  const policy = policyRead?.value ?? DEFAULT_POLICY;
  knownChannel(policy, options.to, ctx.store.name);
  const rollback = options.rollback === true;
  if (rollback && !options.reason)
    throw new FerryError(
      'E_USAGE',
      'a rollback needs --reason TEXT: the audit log records why',
      {},
    );
  if (rollback && options.approvedBy)
    throw new FerryError(
      'E_USAGE',
      'a rollback takes no --approved-by: it is recorded with its --reason',
      {},
    );
  const from = rollback ? undefined : sourceOf(policy, options.to, options.from, ctx.store.name);
  if (from !== undefined) knownChannel(policy, from, ctx.store.name);
  const version = await needVersion(ctx, options.version);
  const source = from === undefined ? undefined : await readChannel(ctx, from);
  const target = await readChannel(ctx, options.to);
  const { events, policy: logged } = await promotionEvents(ctx, version.digest, [
    ...(from === undefined ? [] : [{ name: from, doc: source }]),
    { name: options.to, doc: target },
  ]);
  const stale = policyNotLogged(ctx, logged, policyRead);
  if (stale)
    throw new FerryError('E_REPO_INVALID', stale, {
      reference: TAGS.policy,
      hint: 'an older policy was put back behind Ferry’s back (run `ferry history --verify`); if `ferry policy --set` was stopped before it wrote the policy, run it again',
    });
  if (from !== undefined) refuseSetBack(ctx, from, source, events);
  refuseSetBack(ctx, options.to, target, events, {
    version: options.version,
    digest: version.digest,
  });
  const found =
    from === undefined ? [] : await approvals(ctx, events, version.digest, from, options.to);
  const extra =
    options.approvedBy !== undefined && from !== undefined
      ? await approvalFor(ctx, policy, {
          version: options.version,
          to: options.to,
          from,
          by: options.approvedBy,
          evidence: options.evidence ?? [],
          writer: options.writer,
        })
      : undefined;
  const publisher = events.find(
    (e) => e.op === 'publish' && e.subject.digest === version.digest,
  )?.actor;
  const heldBefore = new Set(
    events
      .filter(
        (e) =>
          ['publish', 'promote', 'rollback'].includes(e.op) &&
          (e.subject.channel ?? e.subject.to) === options.to,
      )
      .map((e) => e.subject.version as string),
  );
  const judged = judgePromotion({
    policy,
    version: options.version,
    digest: version.digest,
    from,
    to: options.to,
    source: source?.value,
    target: target?.value,
    approvals: extra ? [...found, extra.doc] : found,
    publisher,
    heldBefore,
    rollback,
    now: (options.writer.now ?? (() => new Date()))(),
    ...(await untrustedVersion(ctx, options.version, version.metadata)),
  });
  const result: PromoteResult = {
    repo: ctx.store.name,
    version: options.version,
    digest: version.digest,
    from: from ?? null,
    to: options.to,
    verdict: judged.verdict === 'ok' ? (rollback ? 'rolled-back' : 'promoted') : judged.verdict,
    excuses: judged.excuses,
    ...(judged.verdict === 'blocked' ? { code: 'E_PROMOTION_BLOCKED' as const } : {}),
    ...(judged.verdict === 'closed' ? { code: 'E_PROMOTION_WINDOW' as const } : {}),
    ...(judged.opens ? { opens: judged.opens } : {}),
  };
  if (judged.verdict !== 'ok') {
    nothingLeft(
      ctx,
      `${options.to} ${judged.verdict === 'unchanged' ? `holds ${options.version} already` : `is ${judged.verdict}: ${judged.excuses.map((e) => e.code).join(', ')}`}`,
    );
    return result;
  }
  const last = await commit(ctx, head, options.writer, async (append) => {
    if (extra) await writeApproval(ctx, append, extra, options.writer);
    const event = await append(rollback ? 'rollback' : 'promote', {
      version: options.version,
      digest: version.digest,
      ...(from !== undefined ? { from } : {}),
      to: options.to,
      ...(options.reason ? { reason: options.reason } : {}),
    });
    await moveChannel(
      ctx,
      options.writer,
      options.to,
      target,
      options.version,
      version.digest,
      event,
    );
  });
  return { ...result, ...(last ? { event: last.seq } : {}) };
}

// ------------------------------------------------------------------ gc

export interface GcResult {
  repo: string;
  keep: string[];
  remove: string[];
  /** Bundle copies no version names, left by publishes killed before they recorded one. */
  strays: Array<{ digest: string; size: number }>;
  /** False for a dry run. */
  removed: boolean;
}

/**
 * Retention: keeps every version a channel holds, the last `keep` versions
 * each channel held, and the last `keep` versions published; the rest are
 * removed (with --yes), and a `gc` event records which. Events, approvals
 * and channel documents are never removed: the log stays whole. Bundle copies
 * killed publishes left (strays) go too, and the event names them.
 */
export function gc(
  options: RepoOptions & { keep?: number; yes?: boolean; writer: Writer },
): Promise<GcResult> {
  return decide((again) => gcOnce(options, again));
}

async function gcOnce(
  options: RepoOptions & { keep?: number; yes?: boolean; writer: Writer },
  again?: Again,
): Promise<GcResult> {
  return withRepository(options, { ...(again ? { again } : {}) }, (ctx) => gcWith(ctx, options));
}

async function gcWith(
  ctx: Context,
  options: RepoOptions & { keep?: number; yes?: boolean; writer: Writer },
): Promise<GcResult> {
  // The head first: a policy set after it moves it, so no keep count it changed is missed.
  if (!ctx.again) await options.writer.beforeHead?.();
  const head = await readHead(ctx);
  const policy = await policyOf(ctx);
  const events = (await readEvents(ctx)).reverse();
  const keep = new Set<string>();
  const versions = (await ctx.store.listRefs()).filter(isVersionTag);
  const tagOf = new Map<string, string>();
  for (const event of events)
    if (event.subject.version)
      tagOf.set(TAGS.version(event.subject.version), event.subject.version);
  const names = new Set([...Object.keys(policy.channels)]);
  for (const tag of await ctx.store.listRefs()) {
    const name = CHANNEL_TAG.exec(tag)?.[1];
    if (name) names.add(name);
  }
  for (const name of names) {
    const current = (await readChannel(ctx, name))?.value.version;
    if (current) keep.add(current);
    const limit = options.keep ?? policy.channels[name]?.keep ?? 3;
    const held = [
      ...new Set(
        events
          .filter(
            (e) =>
              ['publish', 'promote', 'rollback'].includes(e.op) &&
              (e.subject.channel ?? e.subject.to) === name,
          )
          .map((e) => e.subject.version as string),
      ),
    ];
    // With --keep 0 too, the last move the log records: what the channel holds once the
    // writer stopped before that move runs again, or held before it was set back.
    for (const version of held.slice(0, Math.max(limit, 1))) keep.add(version);
  }
  const published = [
    ...new Set(events.filter((e) => e.op === 'publish').map((e) => e.subject.version as string)),
  ];
  for (const version of published.slice(0, options.keep ?? 3)) keep.add(version);
  const remove = versions
    .map((tag) => tagOf.get(tag) ?? tag)
    .filter((version) => !keep.has(version))
    .sort();
  const strays = await ctx.store.strayBlobs();
  const result: GcResult = {
    repo: ctx.store.name,
    keep: [...keep].sort(),
    remove,
    strays,
    removed: false,
  };
  if (!options.yes || remove.length + strays.length === 0) return result;
  if (remove.length > 0) await ctx.store.checkDeletes?.();
  const swept = strays.map((stray) => stray.digest);
  await commit(ctx, head, options.writer, async (append) => {
    await append('gc', { removed: remove, ...(swept.length > 0 ? { swept } : {}) });
    // Before the tags go: a gc stopped in between leaves the versions, never a removed
    // version that a publish of other bytes would take for one never published.
    for (const version of remove) {
      // Newest first: the last found is the version's first publish, so a version restored
      // and removed again gets the very record it had (another would conflict, after the event).
      const first = events.findLast(
        (e) => e.op === 'publish' && e.subject.version === version,
      )?.seq;
      const record = first === undefined ? undefined : await ctx.store.readRef(TAGS.event(first));
      if (record)
        await ctx.store.createRef(TAGS.removed(version), {
          manifest: manifestOf(record.bytes, `${ctx.store.name}: event ${first}`),
          bytes: record.bytes,
          digest: record.digest,
          size: record.bytes.length,
          mediaType: OCI_MANIFEST,
        });
    }
    // At once: a folder rewrites its index.json and counts its blobs once, not per version.
    if (remove.length > 0)
      await ctx.store.deleteRef(...remove.map((version) => TAGS.version(version)));
    await ctx.store.sweepStrays(swept);
  });
  return { ...result, removed: true };
}

// ------------------------------------------------------------------ policy

export function showPolicy(
  options: RepoOptions,
): Promise<{ repo: string; policy: Policy; digest: string | null }> {
  return withRepository(options, {}, async (ctx) => {
    const found = await readPolicy(ctx);
    return {
      repo: ctx.store.name,
      policy: found?.value ?? DEFAULT_POLICY,
      digest: found?.digest ?? null,
    };
  });
}

export async function setPolicy(
  options: RepoOptions & { policy: unknown; file: string; writer: Writer },
): Promise<{ repo: string; policy: Policy; digest: string }> {
  const problems = policyProblems(options.policy);
  if (problems.length > 0)
    throw new FerryError('E_POLICY_INVALID', `${options.file}: ${problems.join('; ')}`, {
      file: options.file,
      hint: 'see "Publishing from CI" in the README for the policy file',
    });
  const policy = options.policy as Policy;
  return decide((again) =>
    withRepository(options, { ...(again ? { again } : {}) }, async (ctx) => {
      const head = await readHead(ctx);
      const current = await readPolicy(ctx);
      let digest = '';
      await commit(ctx, head, options.writer, async (append) => {
        const sealed = await sealDocument('policy', policy, options.writer.keys);
        digest = sealed.digest;
        await append('policy', { policy: digest });
        await putDoc(ctx.store, 'policy', policy, options.writer.keys, TAGS.policy, {
          replace: { expected: current?.manifest },
          sealed,
        });
      });
      return { repo: ctx.store.name, policy, digest };
    }),
  );
}
