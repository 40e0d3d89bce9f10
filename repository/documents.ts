import type { KeyObject } from 'node:crypto';
import { keyIdOf, parsePublicKey } from '../manifest-schema/keys.js';
import { canonicalJson, jsonDepth } from '../manifest-schema/canonical.js';
import {
  decodeEnvelope,
  MAX_METADATA_DEPTH,
  signDocument,
  verifiedKeys,
  type EnvelopeKind,
  type Signer,
} from '../manifest-schema/envelope.js';
import { FerryError } from '../manifest-schema/errors.js';
import type { Envelope, TrustRoot } from '../manifest-schema/schemas.js';
import { roleKeys, type TrustedRoot } from '../manifest-schema/trust.js';
import { nextOpening, type Window } from '../manifest-schema/windows.js';
import { documentBlob, type DocumentBlob } from './oci/artifact.js';

/**
 * The repository's own documents. Channels, approvals, audit events and the
 * policy are DSSE envelopes signed with a key of the repository's trust root
 * (the release keys), so a repository edited behind Ferry's back is found
 * out; the config (product and trust root) is written once, when the
 * repository is made, and the first audit event holds its digest.
 */
export type DocKind = 'config' | 'policy' | 'channel' | 'approval' | 'event' | 'trust';

export const DOC_TYPES: Record<
  DocKind,
  { artifactType: string; mediaType: string; payloadType: string }
> = {
  config: type('repository'),
  policy: type('policy'),
  channel: type('channel'),
  approval: type('approval'),
  event: type('event'),
  trust: type('trust'),
};

function type(name: string) {
  return {
    artifactType: `application/vnd.ferry.${name}.v1`,
    mediaType: `application/vnd.ferry.${name}.v1+json`,
    payloadType: `application/vnd.ferry.${name}+json`,
  };
}

export interface RepoConfig {
  formatVersion: 1;
  product: string;
  /** The trust root as its file holds it, in either form. */
  trust: TrustRoot | Envelope;
  /** Public keys (PEM) that may sign the repository's documents besides the trust root's targets keys. */
  keys?: string[];
  /**
   * When the first bundle's chain walked past the --trust root: the roots after that
   * one up to `trust`, as the bundle carried them (base64). Unsigned, like the rest of
   * the config, but each root proves itself: a --trust older than `trust` walks them.
   */
  chain?: string[];
}

/** The keys whose signature makes a repository document genuine: the targets keys, and the repository's own. */
export function documentKeys(
  trust: TrustedRoot,
  extra: readonly string[] = [],
): Map<string, KeyObject> {
  const keys = new Map(roleKeys(trust, 'targets'));
  for (const [index, pem] of extra.entries()) {
    const key = parsePublicKey(pem, `the repository config's key ${index}`);
    keys.set(keyIdOf(key), key);
  }
  return keys;
}

export interface Evidence {
  /** The file's name as given (no folders). */
  name: string;
  digest: string;
  size: number;
}

export type EventOp =
  | 'create'
  | 'publish'
  | 'approve'
  | 'promote'
  | 'rollback'
  | 'lock-break'
  | 'policy'
  | 'gc'
  | 'trust';

export interface AuditEvent {
  seq: number;
  /** sha256 of the previous event's exact bytes; null for the first. */
  prev: string | null;
  time: string;
  actor: string;
  /** A link to (or the id of) the CI run that wrote it. */
  ci: string | null;
  op: EventOp;
  /**
   * The log as of this event, this one included: its newest `policy` event (0: none) and
   * each channel's newest move (a publish into it, a promotion or rollback to it). A
   * promotion takes them from the head instead of reading the log back to them. Events
   * written before Ferry recorded this have none: a reader goes back past them.
   */
  last?: LogState;
  subject: {
    version?: string;
    /**
     * publish: the version had no tag and no removed record, and the head was no publish of
     * it: no publish of it comes before, but one stopped before its tag with other events
     * after it (history --verify refuses a mark where Ferry could not have written it).
     */
    first?: boolean;
    digest?: string;
    channel?: string;
    from?: string;
    to?: string;
    reason?: string;
    approval?: string;
    by?: string;
    removed?: string[];
    /** gc: the digests of bundle copies no version named. */
    swept?: string[];
    policy?: string;
    owner?: unknown;
    product?: string;
    config?: string;
    /** trust: the trust root version the repository follows from this event on, and the trust document's digest. */
    root?: number;
    trust?: string;
  };
  evidence: Evidence[];
}

export interface LogState {
  policy: number;
  moves: Record<string, number>;
}

export interface ChannelDoc {
  channel: string;
  /** Strictly increasing, from 1. */
  sequence: number;
  version: string;
  /** The version's manifest digest. */
  digest: string;
  /** The digest of the channel's previous document; null for the first. */
  prev: string | null;
  /** The audit event that moved the channel here: its digest and seq. */
  auditHead: string;
  auditSeq: number;
  /** When the channel moved here (what soak times count from). */
  time: string;
}

/**
 * The trust roots a repository took after the one its config holds, from
 * the bundles published to it (as an appliance takes them), and from which
 * event on each counts. Signed by a release key of its newest root (never
 * a repository key: it vouches for the config, which names those); each
 * root proves itself by its predecessor's root keys, so no writer can make
 * one up.
 */
export interface TrustDoc {
  formatVersion: 1;
  /** The config document's digest: a config replaced since is found out. */
  config: string;
  /** Every root past the config's, as the bundle that brought it carried it (base64), in version order. */
  roots: string[];
  /**
   * The roots the repository followed, oldest first: from event `seq` on, `version`'s keys
   * sign. `prev` is the digest of the event before `seq`: the log the root was taken over,
   * which no key of an older root may rewrite, even before the trust event is written.
   */
  eras: Array<{ version: number; seq: number; prev: string }>;
  /**
   * The digests of the channel and policy documents that stood when the
   * newest root was taken, signed by keys of earlier roots: they still
   * count, and no other document signed by a key the newest root dropped.
   */
  pinned: string[];
}

export interface ApprovalDoc {
  version: string;
  digest: string;
  from: string;
  to: string;
  by: string;
  time: string;
  ci: string | null;
  evidence: Evidence[];
}

export interface ChannelPolicy {
  /** Approvals by people other than the publisher that a promotion into this channel needs. */
  approvals?: number;
  /** At least one of those approvals carries evidence. */
  evidence?: boolean;
  /** Hours the version must have spent in the source channel. */
  soakHours?: number;
  timeZone?: string;
  allow?: Window[];
  deny?: Window[];
  /** Versions gc keeps among those that were last in this channel (default 3). */
  keep?: number;
}

export interface Policy {
  formatVersion: 1;
  channels: Record<string, ChannelPolicy>;
  /** Allowed promotions, [from, to]. Channels no edge leads into take publishes. */
  edges: Array<[string, string]>;
}

export const DEFAULT_POLICY: Policy = {
  formatVersion: 1,
  channels: { dev: {}, beta: { approvals: 1 }, stable: { approvals: 1 } },
  edges: [
    ['dev', 'beta'],
    ['beta', 'stable'],
  ],
};

/** Signs a document: the canonical JSON in a DSSE envelope, as a blob. */
export async function sealDocument(
  kind: DocKind,
  value: unknown,
  signers: readonly Signer[],
): Promise<DocumentBlob> {
  if (kind === 'config') return documentBlob(value);
  // The envelope's canonical JSON: the exact bytes stored, and what the audit chain hashes.
  return documentBlob(
    await signDocument(Buffer.from(canonicalJson(value)), signers, DOC_TYPES[kind].payloadType),
  );
}

/**
 * A document's value from its exact bytes; a signed one must carry a valid
 * signature by one of `keys`. `where` names it in messages (e.g. "event 7").
 */
export function openDocument<T>(
  kind: DocKind,
  bytes: Buffer,
  keys: ReadonlyMap<string, KeyObject> | undefined,
  where: string,
): T {
  if (kind === 'config') {
    // Unsigned, and read by everything before anything is checked: a config made huge or
    // nested thousands deep would otherwise crash the JSON.stringify of its trust root.
    const text = bytes.toString('utf8');
    if (bytes.length > CONFIG_MAX_BYTES)
      throw invalid(
        where,
        `is ${bytes.length} bytes, more than a config holds (${CONFIG_MAX_BYTES})`,
      );
    const depth = jsonDepth(text);
    if (depth > MAX_METADATA_DEPTH)
      throw invalid(
        where,
        `is nested ${depth} levels deep (a config nests at most ${MAX_METADATA_DEPTH})`,
      );
    try {
      return JSON.parse(text) as T;
    } catch {
      throw invalid(where, 'is not JSON');
    }
  }
  const envelopeKind: EnvelopeKind = {
    payloadType: DOC_TYPES[kind].payloadType,
    entry: where,
    maxBytes: 4 * 1024 * 1024,
    tooLarge: 'E_REPO_INVALID',
    invalid: 'E_REPO_INVALID',
    what: `a ${kind} document Ferry wrote`,
  };
  const { envelope, payload } = decodeEnvelope(bytes, where, envelopeKind);
  if (keys) {
    const signed = verifiedKeys(envelope, payload, keys);
    if (signed.keyids.size === 0)
      throw invalid(where, `carries no valid signature by a release or repository key it trusts`);
  }
  try {
    return JSON.parse(payload.toString('utf8')) as T;
  } catch {
    throw invalid(where, 'is not JSON');
  }
}

/** A config is the trust root (at most 64 KiB) and a few public keys. */
const CONFIG_MAX_BYTES = 1024 * 1024;

export function invalid(where: string, what: string): FerryError {
  return new FerryError('E_REPO_INVALID', `${where} ${what}`, {
    hint: 'the repository was changed behind Ferry’s back, or by a key it does not trust: run `ferry history --verify`',
  });
}

const CHANNEL_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const CLOCK = /^([01]\d|2[0-3]):[0-5]\d$/;
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

/** Every problem in a policy, with its JSON path; empty when it is usable. */
export function policyProblems(value: unknown): string[] {
  const problems: string[] = [];
  const object = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!object(value)) return ['/: must be an object'];
  if (value.formatVersion !== 1) problems.push('/formatVersion: must be 1');
  const channels = value.channels;
  if (!object(channels) || Object.keys(channels).length === 0)
    problems.push('/channels: must name at least one channel');
  else
    for (const [name, rules] of Object.entries(channels)) {
      const at = `/channels/${name}`;
      const before = problems.length;
      if (!CHANNEL_NAME.test(name))
        problems.push(`${at}: a channel name is lower-case letters, digits and -`);
      if (!object(rules)) {
        problems.push(`${at}: must be an object`);
        continue;
      }
      for (const key of Object.keys(rules))
        if (
          !['approvals', 'evidence', 'soakHours', 'timeZone', 'allow', 'deny', 'keep'].includes(key)
        )
          problems.push(`${at}/${key}: is not a policy rule`);
      for (const key of ['approvals', 'soakHours', 'keep'])
        if (
          rules[key] !== undefined &&
          !(Number.isSafeInteger(rules[key]) && (rules[key] as number) >= 0)
        )
          problems.push(`${at}/${key}: must be a whole number`);
      if (rules.evidence !== undefined && typeof rules.evidence !== 'boolean')
        problems.push(`${at}/evidence: must be true or false`);
      // Without one, each writer would read the windows on its own clock: a CI runner in UTC
      // and an operator in Berlin would find the same channel open at different hours.
      if (rules.timeZone === undefined && (rules.allow !== undefined || rules.deny !== undefined))
        problems.push(
          `${at}/timeZone: windows need a time zone (such as Europe/Berlin or UTC): each writer would read them on its own clock`,
        );
      if (rules.timeZone !== undefined) {
        try {
          if (typeof rules.timeZone !== 'string') throw new TypeError();
          new Intl.DateTimeFormat('en-US', { timeZone: rules.timeZone });
        } catch {
          problems.push(`${at}/timeZone: ${JSON.stringify(rules.timeZone)} is not a time zone`);
        }
      }
      for (const list of ['allow', 'deny']) {
        const windows = rules[list];
        if (windows === undefined) continue;
        if (!Array.isArray(windows)) {
          problems.push(`${at}/${list}: must be a list of windows`);
          continue;
        }
        windows.forEach((window: unknown, index) => {
          const w = `${at}/${list}/${index}`;
          if (!object(window)) return void problems.push(`${w}: must be { days?, start, end }`);
          for (const clock of ['start', 'end'])
            if (typeof window[clock] !== 'string' || !CLOCK.test(window[clock]))
              problems.push(`${w}/${clock}: must be HH:MM`);
          if (
            window.days !== undefined &&
            !(Array.isArray(window.days) && window.days.every((d) => DAYS.includes(d as string)))
          )
            problems.push(`${w}/days: must list ${DAYS.join(', ')}`);
        });
      }
      // A typo (start equal to end, `days: []`, a deny over every allow) would close the
      // channel for good, and promote would say "closed, try later" (exit 5) for ever. The
      // windows are a weekly wall clock: any week, read in UTC, shows whether they ever open.
      if (
        problems.length === before &&
        (rules.allow !== undefined || rules.deny !== undefined) &&
        nextOpening(
          {
            ...(rules.allow !== undefined ? { allow: rules.allow as Window[] } : {}),
            ...(rules.deny !== undefined ? { deny: rules.deny as Window[] } : {}),
            timeZone: 'UTC',
          },
          new Date(Date.UTC(2024, 0, 1)),
        ) === undefined
      )
        problems.push(
          `${at}: its windows never open (a window that ends when it starts is empty, \`days: []\` names no day, and deny wins over allow): no promotion could reach ${name}`,
        );
    }
  if (!Array.isArray(value.edges)) problems.push('/edges: must be a list of [from, to]');
  else
    value.edges.forEach((edge: unknown, index) => {
      if (
        !Array.isArray(edge) ||
        edge.length !== 2 ||
        !edge.every(
          (name) => typeof name === 'string' && object(channels) && Object.hasOwn(channels, name),
        )
      )
        problems.push(`/edges/${index}: must be [from, to], two channels the policy declares`);
      else if (edge[0] === edge[1])
        problems.push(`/edges/${index}: leads from a channel to itself`);
    });
  if (problems.length === 0) {
    // Channels move one way (going back is `promote --rollback`). A cycle leaves no channel
    // that takes publishes when it spans them all, and lets a version go round unapproved.
    const edges = value.edges as Array<[string, string]>;
    const cycle = findCycle(Object.keys(channels as object), edges);
    if (cycle)
      problems.push(
        `/edges: ${cycle.join(' → ')} is a cycle: channels move one way (going back is \`ferry promote --rollback\`)`,
      );
  }
  return problems;
}

/** A cycle of the edges as the channels on it (first repeated last), or undefined. */
function findCycle(
  names: readonly string[],
  edges: ReadonlyArray<[string, string]>,
): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'open') return [...path.slice(path.indexOf(name)), name];
    state.set(name, 'open');
    path.push(name);
    for (const [from, to] of edges) {
      if (from !== name) continue;
      const found = visit(to);
      if (found) return found;
    }
    path.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of names) {
    const found = visit(name);
    if (found) return found;
  }
  return undefined;
}
