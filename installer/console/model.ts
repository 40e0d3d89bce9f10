import { compareVersions, type Change } from '../../manifest-schema/index.js';
import type { InstallEvent, InstallResult, PassName, RollbackResult } from '../engine/events.js';
import type { Plan } from '../plan.js';

/**
 * The console's state, and the one function that changes it: engine events
 * (and the controller's few of its own) in, state out. The view only renders
 * this; it never runs anything.
 */

export interface Candidate {
  file: string;
  product: string;
  release: string;
  kind: string;
  notes: string;
  /** The plan against this appliance; null when the bundle could not be read or trusted. */
  plan: Plan | null;
  /** Why the bundle cannot be used, when it cannot. */
  problem: { code: string; message: string } | null;
  /** Who signed it, when its signature was checked and met the trust root. */
  signature: SignedBy | null;
  /**
   * Set when the bundle needs a newer Ferry than this one (its plan is then
   * null: this Ferry may misread it). Enter hands over to the installer it
   * carries (`carried`, its version), or says why it cannot (`hint`).
   */
  needs?: NewerFerry;
}

export interface SignedBy {
  /** The keys whose signatures counted, by id and (where the trust root names them) name. */
  keys: Array<{ keyid: string; name?: string }>;
  threshold: number;
  /** The trust root version the signature met, and the appliance's own when a carried chain was walked to it. */
  rootVersion: number;
  walkedFrom: number | null;
}

export interface NewerFerry {
  version: string;
  carried: string | null;
  hint: string;
}

/** A bundle Enter can act on: one with a plan, or one that needs a newer Ferry. */
export function choosable(candidate: Candidate): boolean {
  return candidate.plan !== null || candidate.needs !== undefined;
}

export interface ApplianceView {
  product: string;
  platform: string;
  release: string | null;
  verified: boolean;
  components: Record<string, string>;
  /** The committed release before the last transaction, which a rollback returns to; null: none kept. */
  previous: { release: string | null } | null;
  /** The maintenance windows as they stand now: open, or when the next opens (null: none within a week). */
  window: { open: true } | { open: false; next: string | null; allowOutside: boolean };
}

export type Screen = 'choose' | 'handing-over' | 'installing' | 'done';
export type PassState = 'pending' | 'running' | 'done' | 'failed';

export const PASS_ORDER: PassName[] = ['pre-validate', 'stage', 'update', 'test', 'commit'];

export interface ConsoleState {
  appliance: ApplianceView;
  candidates: Candidate[];
  /** Where the console looked for bundles, and whether each folder was there. */
  searched: Searched[];
  /** Index of the bundle Enter applies: the newest that applies. */
  chosen: number | null;
  screen: Screen;
  passes: Record<string, PassState>;
  /** Per component: the pass it is in and how that went. */
  components: Record<string, { pass: PassName; state: PassState }>;
  progress: { bytes: number; total: number; startedAt: number; at: number } | null;
  log: string[];
  /** What runs or ran: an install, or the rollback the operator asked for after a failure. */
  operation: 'install' | 'rollback';
  result: InstallResult | null;
  rolledBack: RollbackResult | null;
  /** A yes-or-no question on screen (the rollback), or null. */
  confirm: 'rollback' | null;
  /** The transaction's log in words, shown instead of the result's details; null when not asked. */
  logView: LogView | null;
  error: { code: string; message: string; hint?: string } | null;
  /** The transaction under way (its `begin` event), null before one began. */
  began: string | null;
  /** The log of a transaction that began and then failed with an error (no result), or null. */
  errorLog: { transaction: string; file: string } | null;
  notice: string | null;
  /** The volume the operator is asked to insert (removable media), while the install waits. */
  volume: VolumeWanted | null;
  /** The reason being typed for an install outside the maintenance windows; null when not asked. */
  reason: string | null;
  /** First row of the scrolling part shown; `follow` keeps it at the end (the log while installing). */
  scroll: number;
  follow: boolean;
}

export interface LogView {
  transaction: string;
  file: string;
  lines: string[];
  /** Lines left out at the start of a very long log (ferry log shows them all). */
  omitted: number;
}

export interface Searched {
  folder: string;
  present: boolean;
}

export interface VolumeWanted {
  volume: number;
  volumes: number;
  label: string;
  bundle: string;
  /** Set when the volume found belongs to another bundle or build. */
  wrong: string | null;
}

export type ConsoleEvent =
  | InstallEvent
  | { type: 'start'; at: number; operation?: 'install' | 'rollback' }
  /** Enter on a bundle that carries the newer Ferry it needs: its installer is being checked. */
  | { type: 'hand-over' }
  | { type: 'rolled-back'; result: RollbackResult }
  | { type: 'confirm'; what: 'rollback' | null }
  | { type: 'log'; view: LogView | null }
  | {
      type: 'failed';
      error: { code: string; message: string; hint?: string };
      /** The log of the transaction that had begun, when one had. */
      log?: { transaction: string; file: string };
    }
  | { type: 'notice'; text: string }
  /** The install waits for a volume (null: it was inserted, or the operator gave up). */
  | { type: 'volume'; wanted: VolumeWanted | null }
  /** The operator moves to another readable bundle (+1 next, -1 previous). */
  | { type: 'choose'; step: 1 | -1 }
  /** The operator is asked why (text so far), or the question is closed (null). */
  | { type: 'reason'; text: string | null }
  /** The console looked again (a key, or media mounted): what it found now. */
  | { type: 'found'; candidates: Candidate[]; searched: Searched[] }
  /** The maintenance windows as they stand now (the console reads the clock again every minute). */
  | { type: 'window'; window: ApplianceView['window'] }
  /** The operator scrolls the long part of the screen: to a row, or to the end (and stays there). */
  | { type: 'scroll'; to: number | 'end' };

const LOG_LINES = 200;

export function initialState(
  appliance: ApplianceView,
  candidates: Candidate[],
  searched: Searched[] = [],
): ConsoleState {
  return {
    appliance,
    candidates,
    searched,
    chosen: chooseNewest(candidates),
    screen: 'choose',
    passes: Object.fromEntries(PASS_ORDER.map((pass) => [pass, 'pending'])),
    components: {},
    progress: null,
    log: [],
    operation: 'install',
    result: null,
    rolledBack: null,
    confirm: null,
    logView: null,
    error: null,
    began: null,
    errorLog: null,
    notice: null,
    volume: null,
    reason: null,
    scroll: 0,
    follow: false,
  };
}

/**
 * The newest bundle whose plan can proceed and does something, or that
 * carries the newer Ferry it needs; else the newest readable one, so its
 * plan can explain itself. Of equal releases, the
 * first found. Bundles that could not be read or trusted are never chosen.
 */
export function chooseNewest(candidates: readonly Candidate[]): number | null {
  const byRelease = [...candidates.entries()]
    .filter(([, c]) => choosable(c))
    .sort(([, a], [, b]) => compareVersions(b.release, a.release));
  const ready = byRelease.find(
    ([, c]) => (c.plan?.verdict === 'ok' && c.plan.order.length > 0) || Boolean(c.needs?.carried),
  );
  return (ready ?? byRelease[0])?.[0] ?? null;
}

export function reduce(state: ConsoleState, event: ConsoleEvent): ConsoleState {
  switch (event.type) {
    case 'notice':
      return { ...state, notice: event.text };
    case 'volume':
      return { ...state, volume: event.wanted };
    case 'reason':
      return state.screen === 'choose' ? { ...state, reason: event.text, notice: null } : state;
    case 'choose': {
      if (state.screen !== 'choose' || state.reason !== null) return state;
      const readable = [...state.candidates.keys()].filter((index) =>
        choosable(state.candidates[index] as Candidate),
      );
      if (readable.length < 2) return state;
      const at = Math.max(0, readable.indexOf(state.chosen ?? -1));
      const chosen = readable[(at + event.step + readable.length) % readable.length] as number;
      return { ...state, chosen, notice: null, scroll: 0, follow: false };
    }
    case 'hand-over':
      return { ...state, screen: 'handing-over', notice: null, scroll: 0, follow: false };
    case 'found': {
      if (state.screen !== 'choose') return state;
      // The bundle on screen stays chosen while it is still there.
      const file = state.chosen === null ? null : state.candidates[state.chosen]?.file;
      const kept = event.candidates.findIndex((c) => c.file === file && choosable(c));
      const chosen = kept >= 0 ? kept : chooseNewest(event.candidates);
      return {
        ...state,
        candidates: event.candidates,
        searched: event.searched,
        chosen,
        ...(chosen === state.chosen && kept >= 0 ? {} : { scroll: 0, follow: false }),
      };
    }
    case 'window':
      // What the result screen says is about the install that ran, not about now.
      return state.screen === 'choose'
        ? { ...state, appliance: { ...state.appliance, window: event.window } }
        : state;
    case 'scroll':
      return event.to === 'end'
        ? { ...state, follow: true }
        : { ...state, scroll: Math.max(0, event.to), follow: false };
    case 'confirm':
      return state.screen === 'done' ? { ...state, confirm: event.what, notice: null } : state;
    case 'log':
      return state.screen === 'done'
        ? { ...state, logView: event.view, scroll: 0, follow: false }
        : state;
    case 'rolled-back':
      return { ...state, screen: 'done', rolledBack: event.result, scroll: 0, follow: false };
    case 'start':
      return {
        ...state,
        screen: 'installing',
        operation: event.operation ?? 'install',
        // A rollback after a failed install starts on a clean screen.
        passes: Object.fromEntries(PASS_ORDER.map((pass) => [pass, 'pending'])),
        components: {},
        log: [],
        result: null,
        rolledBack: null,
        error: null,
        began: null,
        errorLog: null,
        confirm: null,
        logView: null,
        volume: null,
        reason: null,
        notice: null,
        scroll: 0,
        follow: true,
        progress: { bytes: 0, total: 0, startedAt: event.at, at: event.at },
      };
    case 'failed':
      return {
        ...state,
        screen: 'done',
        error: event.error,
        errorLog: event.log ?? null,
        scroll: 0,
        follow: false,
      };
    case 'begin':
      return { ...state, began: event.transaction };
    case 'plan':
      return state;
    case 'warning':
      return { ...state, log: appendLog(state.log, `warning: ${event.message}`) };
    case 'interrupt':
      return {
        ...state,
        notice: `Interrupted: ${event.message}.`,
        log: appendLog(state.log, `interrupted: ${event.message}`),
      };
    case 'pass': {
      const passes = {
        ...state.passes,
        [event.pass]: event.status === 'start' ? 'running' : 'done',
      } as Record<string, PassState>;
      return { ...state, passes };
    }
    case 'step': {
      const components = {
        ...state.components,
        [event.component]: {
          pass: event.pass,
          state: event.status === 'start' ? 'running' : event.status === 'done' ? 'done' : 'failed',
        } as const,
      };
      const passes =
        event.status === 'failed'
          ? { ...state.passes, [event.pass]: 'failed' as PassState }
          : state.passes;
      const line =
        event.status === 'failed'
          ? `${event.component}: FAILED ${event.detail ?? ''}`
          : event.status === 'start'
            ? `${event.component}: ${event.pass} ${event.detail ?? ''}`.trimEnd()
            : null;
      return { ...state, components, passes, log: line ? appendLog(state.log, line) : state.log };
    }
    case 'output':
      return { ...state, log: appendLog(state.log, `  ${event.component}: ${event.line}`) };
    case 'progress':
      return {
        ...state,
        progress: {
          ...(state.progress ?? { startedAt: Date.now() }),
          bytes: event.bytes,
          total: event.total,
          at: Date.now(),
        },
      };
    case 'result':
      return { ...state, screen: 'done', result: event.result, scroll: 0, follow: false };
  }
}

function appendLog(log: readonly string[], line: string): string[] {
  const next = [...log, line];
  return next.length > LOG_LINES ? next.slice(next.length - LOG_LINES) : next;
}

/** Changes the chosen bundle brings since the installed release, grouped by component. */
export function changesByComponent(changes: readonly Change[]): Array<[string, Change[]]> {
  const groups = new Map<string, Change[]>();
  for (const change of changes)
    groups.set(change.component, [...(groups.get(change.component) ?? []), change]);
  return [...groups.entries()];
}

/** Seconds left at the current staging rate, or null before there is a rate. */
export function secondsLeft(progress: ConsoleState['progress']): number | null {
  if (!progress || progress.total === 0 || progress.bytes === 0) return null;
  const elapsed = (progress.at - progress.startedAt) / 1000;
  if (elapsed <= 0) return null;
  return Math.max(0, Math.round(((progress.total - progress.bytes) * elapsed) / progress.bytes));
}

/** Why a plan cannot run, in words: the bundle's first problem, else its first blocked component's. */
export function blockedBy(plan: Plan): string {
  return (
    plan.reasons[0]?.message ??
    plan.components.find((c) => c.action === 'error')?.reasons.find((r) => r.code.startsWith('E_'))
      ?.message ??
    'the plan is blocked'
  );
}

/**
 * What a found bundle is, on its own terms and against the newest that
 * applies: never relative to the one on screen, which the operator moves.
 */
export function standing(candidates: readonly Candidate[], index: number): string {
  const c = candidates[index];
  if (!c) return '';
  // Short: the full E_INSTALLER_TOO_OLD message repeats the file name the list already shows.
  if (c.needs)
    return c.needs.carried
      ? `${c.release}, needs Ferry ${c.needs.version}; carries it: choose it to hand over`
      : `${c.release}, needs Ferry ${c.needs.version} and carries none that runs here`;
  if (c.problem && !c.plan) return `${c.problem.code}: ${c.problem.message}`;
  if (!c.plan) return 'unreadable';
  if (c.plan.verdict === 'blocked') return `${c.release}, cannot be applied: ${blockedBy(c.plan)}`;
  if (c.plan.order.length === 0) return `${c.release}, nothing to do: the appliance is at it`;
  const newest = chooseNewest(candidates);
  const best = newest === null ? undefined : candidates[newest];
  if (newest === index || !best) return `${c.release}, ready: the newest that applies`;
  return compareVersions(c.release, best.release) === 0
    ? `${c.release}, ready: the same release as ${best.file}`
    : `${c.release}, ready, older than ${best.release}`;
}

/** The log the result screen can show: the transaction's that just ran, when it has one. */
export function logOf(state: ConsoleState): { transaction: string; file: string } | null {
  // A transaction that began and then stopped with an error (a damaged volume) has a log too.
  if (state.screen === 'done' && state.error) return state.errorLog;
  const ran = state.rolledBack ?? state.result;
  return state.screen === 'done' && ran?.log && ran.transaction
    ? { transaction: ran.transaction, file: ran.log }
    : null;
}

/**
 * After an install that did not commit, the way back to the release before
 * the installed one, when the appliance kept it (as `ferry rollback` would).
 * Never back to an empty appliance: that removes everything, and is no remedy
 * for a failed update.
 */
export function rollbackOffered(state: ConsoleState): boolean {
  const failed =
    state.error !== null || (state.result !== null && state.result.outcome !== 'committed');
  return (
    state.screen === 'done' &&
    state.operation === 'install' &&
    failed &&
    typeof state.appliance.previous?.release === 'string'
  );
}
