import type { ErrorCode } from '../manifest-schema/errors.js';
import { nextOpening, windowOpen } from '../manifest-schema/windows.js';
import type { ApprovalDoc, ChannelDoc, Policy } from './documents.js';

/**
 * Whether a promotion may happen: a pure function of the facts (policy,
 * channels, approvals, who published, the time), read first and handed in.
 * Every unmet condition is listed, each with its code, the way Debian's
 * "excuses" say why a package did not migrate: an operator fixes them all
 * at once instead of one per run.
 */
export interface PromotionFacts {
  policy: Policy;
  version: string;
  digest: string;
  from: string | undefined;
  to: string;
  /** The source channel's current document, if it has one. */
  source: ChannelDoc | undefined;
  /** The target channel's current document, if it has one. */
  target: ChannelDoc | undefined;
  /** Valid approvals bound to this digest, from and to. */
  approvals: readonly ApprovalDoc[];
  publisher: string | undefined;
  /** For a rollback: the versions the target channel has held before. */
  heldBefore: ReadonlySet<string>;
  rollback: boolean;
  now: Date;
  /** Why the repository's trust root no longer accepts the version's signature, if it does not (a key revoked since). */
  untrusted?: { code: ErrorCode; message: string };
}

export interface Excuse {
  code: ErrorCode;
  message: string;
}

export interface PromotionVerdict {
  verdict: 'ok' | 'blocked' | 'closed' | 'unchanged';
  excuses: Excuse[];
  /** When the target's window opens next (only when it is closed now). */
  opens?: string;
}

export function judgePromotion(facts: PromotionFacts): PromotionVerdict {
  const { policy, version, to, from } = facts;
  const rules = policy.channels[to] ?? {};
  const excuses: Excuse[] = [];
  if (facts.target?.version === version && facts.target.digest === facts.digest)
    return { verdict: 'unchanged', excuses };
  // Appliances that took the repository's root refuse the bundle: a rollback to it least of all.
  if (facts.untrusted) excuses.push(facts.untrusted);
  if (facts.rollback) {
    if (!facts.heldBefore.has(version))
      excuses.push({
        code: 'E_NOT_PREVIOUS',
        message: `${version} was never in ${to}: a rollback goes back to a version the channel held`,
      });
  } else {
    if (!policy.edges.some(([a, b]) => a === from && b === to))
      excuses.push({
        code: 'E_PROMOTE_EDGE',
        message: `the policy has no edge ${from ?? '?'} → ${to} (edges: ${policy.edges.map(([a, b]) => `${a} → ${b}`).join(', ') || 'none'})`,
      });
    if (facts.source?.version !== version)
      excuses.push({
        code: 'E_NOT_IN_CHANNEL',
        message: `${version} is not in ${from ?? '?'} (it holds ${facts.source?.version ?? 'nothing'})`,
      });
    const publisher = facts.publisher === undefined ? undefined : who(facts.publisher);
    // Each person once, under one of the names they approved under.
    const named = new Map<string, string>();
    for (const { by } of facts.approvals) if (!named.has(who(by))) named.set(who(by), by);
    const approvers = [...named].filter(([id]) => id !== publisher).map(([, by]) => by);
    const needed = rules.approvals ?? 0;
    if (approvers.length < needed) {
      const self = facts.approvals.some((a) => who(a.by) === publisher)
        ? ` (${facts.publisher} published it, so their approval does not count)`
        : '';
      excuses.push({
        code: 'E_APPROVALS',
        message: `${to} needs ${needed} approval(s) of ${version} by someone other than the publisher; it has ${approvers.length}${approvers.length ? ` (${approvers.join(', ')})` : ''}${self}`,
      });
    }
    if (
      rules.evidence &&
      !facts.approvals.some((a) => who(a.by) !== publisher && a.evidence.length > 0)
    )
      excuses.push({
        code: 'E_EVIDENCE',
        message: `${to} needs an approval that carries evidence (--evidence FILE)`,
      });
    if (rules.soakHours && facts.source?.version === version) {
      const since = Date.parse(facts.source.time);
      const ready = since + rules.soakHours * 3_600_000;
      if (facts.now.getTime() < ready)
        excuses.push({
          code: 'E_SOAK',
          message: `${version} has been in ${from} since ${facts.source.time}; ${to} needs ${rules.soakHours} h there, until ${new Date(ready).toISOString()}`,
        });
    }
  }
  const windows = {
    ...(rules.allow ? { allow: rules.allow } : {}),
    ...(rules.deny ? { deny: rules.deny } : {}),
    ...(rules.timeZone ? { timeZone: rules.timeZone } : {}),
  };
  if (!windowOpen(windows, facts.now)) {
    const opens = nextOpening(windows, facts.now)?.toISOString();
    excuses.push({
      code: 'E_PROMOTION_WINDOW',
      message: `${to} is closed for promotions now (${rules.timeZone ?? 'local time'}); ${opens ? `it opens at ${opens}` : 'its windows never open'}`,
    });
    if (excuses.length === 1) return { verdict: 'closed', excuses, ...(opens ? { opens } : {}) };
  }
  return { verdict: excuses.length > 0 ? 'blocked' : 'ok', excuses };
}

/**
 * The person a name stands for: "Alice", "alice" and " alice" are one (GitHub and GitLab
 * logins ignore case, and --by is typed by hand), so neither two spellings of one approver
 * nor the publisher's own under another case count as someone else.
 */
function who(name: string): string {
  return name.normalize('NFKC').trim().toLowerCase();
}
