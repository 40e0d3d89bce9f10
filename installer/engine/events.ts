import type { Plan } from '../plan.js';

/**
 * What the engine reports and returns. `--json` prints the events, the
 * console renders them, and both turn a result into an exit with `exitCodeOf`.
 */

/**
 * Set in the environment of the installer handed over to (to the version that
 * handed over): an installer started with it never hands over again, so two
 * installers can never pass a bundle back and forth.
 */
export const HANDED_OVER = 'FERRY_HANDED_OVER';

/** The signals that ask an install to stop at its next safe point (never killing it half way). */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * How long after a signal the same one is its copy, in an installer handed
 * over to: the one that handed over forwards what it gets, and a signal to
 * the process group (the terminal's Ctrl-C or hang-up, a service manager's
 * SIGTERM) reaches both. The copy trails by that process's reaction to it.
 */
const FORWARDED_WITHIN_MS = 300;

/**
 * Catches the stop signals for a command that changes the appliance, so that
 * none kills it half way: the first only aborts the returned signal (the
 * engine stops at its next safe point and says what it does), a second only
 * repeats that it is stopping. `release` puts the default handling back.
 */
export function catchStopSignals(
  say: (line: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): {
  signal: AbortSignal;
  release: () => void;
} {
  const stopping = new AbortController();
  const handedOver = env[HANDED_OVER] !== undefined;
  let last: { signal: NodeJS.Signals; at: number } | null = null;
  const onSignal = (signal: NodeJS.Signals): void => {
    const at = performance.now();
    // Not measured from the last copy: one Ctrl-C is one request, the next is the next.
    const copy = handedOver && last?.signal === signal && at - last.at < FORWARDED_WITHIN_MS;
    if (copy) {
      last = null;
      return;
    }
    last = { signal, at };
    if (stopping.signal.aborted) say(`ferry: ${signal}: already stopping; wait for the result`);
    else stopping.abort(signal);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  return {
    signal: stopping.signal,
    release: () => {
      for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    },
  };
}

export type PassName =
  'pre-validate' | 'stage' | 'update' | 'test' | 'commit' | 'rollback' | 'recover';

export type InstallEvent =
  | { type: 'plan'; plan: Plan }
  /** A transaction starts: what was asked, with every control used and the operator's reason. */
  | {
      type: 'begin';
      transaction: string;
      operation: 'install' | 'rollback';
      bundle: string | null;
      controls: Record<string, unknown>;
      reason: string | null;
    }
  | { type: 'warning'; message: string }
  /** A signal asked the install to stop: what it will do about it. */
  | { type: 'interrupt'; signal: string; message: string }
  | { type: 'pass'; pass: PassName; status: 'start' | 'done' }
  | {
      type: 'step';
      pass: PassName;
      component: string;
      status: 'start' | 'done' | 'failed';
      detail?: string;
    }
  | {
      type: 'output';
      pass: PassName;
      component: string;
      artifact: string;
      stream: 'stdout' | 'stderr';
      line: string;
    }
  | { type: 'progress'; component: string; bytes: number; total: number }
  | { type: 'result'; result: InstallResult };

/** Where a transaction stopped: the component (null for the bundle), pass and artifact, and what it said last. */
export interface Failure {
  component: string | null;
  pass: PassName;
  artifact: string | null;
  status: string;
  tail: string;
}

export type Outcome = 'committed' | 'rolled-back' | 'unchanged';

/**
 * A component whose rollback artifacts ran (or started) in a rollback that was
 * then undone, and whose update artifacts could not run again to undo them
 * (an older Ferry kept none, or one failed): its files went forward again, but
 * what the artifacts did outside Ferry's folders (a database restored) stays.
 */
export interface NotUndone {
  component: string;
  /** The artifacts' file names, in the order they ran. */
  artifacts: string[];
  /**
   * Set when they are update artifacts a rollback going forward ran, which
   * a kept rollback artifact changed on disk could not undo; or remove
   * artifacts, which nothing undoes.
   */
  pass?: 'update' | 'remove';
}

/** What ran, in words: rollback or remove artifacts when all are of that kind. */
export function notUndoneKind(items: readonly NotUndone[]): string {
  const passes = new Set(items.map((item) => item.pass ?? 'rollback'));
  const [only] = passes;
  return passes.size === 1 && only !== 'update' ? `${only} artifacts` : 'artifacts';
}

export interface InstallResult {
  verdict: Plan['verdict'];
  outcome: Outcome;
  from: string | null;
  to: string;
  transaction: string | null;
  failure?: Failure;
  log?: string;
  /** Bytes of the bundle file read, metadata included. */
  bytesRead?: number;
  plan: Plan;
  /** Set when the install was undone after remove artifacts ran: see NotUndone. */
  notUndone?: NotUndone[];
}

export interface RollbackResult {
  outcome: Outcome;
  from: string | null;
  to: string | null;
  /**
   * True when it redoes the install of the record it goes to (the second of
   * two rollbacks), false when it undoes the install of the one it leaves.
   */
  forward: boolean;
  transaction: string | null;
  failure?: Failure;
  log?: string;
  /** Set when the rollback was undone after rollback artifacts ran: see NotUndone. */
  notUndone?: NotUndone[];
}

/**
 * What an install undone left, after "ROLLED BACK: PRODUCT ": "everything was
 * undone" is false once a remove artifact ran.
 */
export function rolledBackSummary(result: InstallResult): string {
  const from = result.from ?? '(empty)';
  const ran = result.notUndone ?? [];
  if (ran.length === 0) return `is still at ${from}; everything was undone`;
  const names = ran.map((item) => item.component).join(', ');
  return `has its files at ${from} again; ${notUndoneKind(ran)} of ${names} ran and were not undone: see the warnings`;
}

/**
 * What a rollback that failed left, after "FAILED: ": "switched forward again"
 * alone reads as safe, which it is not while what rollback artifacts did stays.
 */
export function failedRollbackSummary(result: RollbackResult): string {
  const from = result.from ?? '(empty)';
  const ran = result.notUndone ?? [];
  if (ran.length === 0) {
    // A rollback going forward again (the second of two) was switched back, not forward.
    return `still at ${from}; everything was switched ${result.forward ? 'back' : 'forward'} again`;
  }
  const names = ran.map((item) => item.component).join(', ');
  return `files back at ${from}; ${notUndoneKind(ran)} of ${names} ran and were not undone: see the warnings`;
}

/**
 * The exit of an install or a rollback that ran to a result (errors map
 * through their codes instead): 4 for a blocked plan, 0 when the appliance
 * is where it was asked to be, 1 when a failure left it where it was.
 */
export function exitCodeOf(result: InstallResult | RollbackResult): number {
  if ('verdict' in result && result.verdict === 'blocked') return 4;
  return result.outcome === 'committed' || (result.outcome === 'unchanged' && !result.failure)
    ? 0
    : 1;
}

/** Why a rollback changed nothing: stopped before it began, or the previous record is the one installed. */
export function unchangedRollbackSummary(result: RollbackResult): string {
  return result.failure
    ? `still at ${result.from ?? '(empty)'}; nothing was changed`
    : 'the previous record is the release installed, with the same components';
}
