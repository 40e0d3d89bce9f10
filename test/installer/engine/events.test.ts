import { describe, expect, it } from 'vitest';
import {
  exitCodeOf,
  failedRollbackSummary,
  type Failure,
  type InstallResult,
  type RollbackResult,
} from '../../../installer/engine/events.js';
import { NO_CONTROLS, type Plan } from '../../../installer/plan.js';

const failure: Failure = {
  component: 'db',
  pass: 'update',
  artifact: 'migrate.sh',
  status: 'exited with status 1',
  tail: '',
};

function installed(
  verdict: Plan['verdict'],
  outcome: InstallResult['outcome'],
  failed = false,
): InstallResult {
  const plan: Plan = {
    verdict,
    product: 'acme',
    kind: 'update',
    from: '1.0.0',
    to: '1.1.0',
    reasons: [],
    components: [],
    order: [],
    changes: [],
    stageBytes: 0,
    estimatedSeconds: 0,
    unestimated: [],
    restart: [],
    reboot: false,
    partial: false,
    reachesTarget: true,
    filesChecked: true,
    controls: NO_CONTROLS,
  };
  return {
    verdict,
    outcome,
    from: plan.from,
    to: plan.to,
    transaction: null,
    ...(failed ? { failure } : {}),
    plan,
  };
}

function rolledBack(outcome: RollbackResult['outcome'], failed = false): RollbackResult {
  return {
    outcome,
    from: '1.1.0',
    to: '1.0.0',
    forward: false,
    transaction: null,
    ...(failed ? { failure } : {}),
  };
}

const cases: Array<[string, InstallResult | RollbackResult, number]> = [
  ['an install committed', installed('ok', 'committed'), 0],
  ['an install with nothing to do', installed('ok', 'unchanged'), 0],
  ['an install blocked by its plan', installed('blocked', 'unchanged'), 4],
  ['an install stopped before changing anything', installed('ok', 'unchanged', true), 1],
  ['an install rolled back', installed('ok', 'rolled-back', true), 1],
  ['a rollback committed', rolledBack('committed'), 0],
  ['a rollback with nothing to change', rolledBack('unchanged'), 0],
  ['a rollback that failed and was undone', rolledBack('rolled-back', true), 1],
];

describe('exitCodeOf', () => {
  it.each(cases)('%s', (_name, result, code) => {
    expect(exitCodeOf(result)).toBe(code);
  });
});

describe('failedRollbackSummary', () => {
  // The engine's way, not the releases': both records may be of one release, or the older empty.
  it.each([
    ['going back', { from: '1.4.0', to: '1.4.0', forward: false }, 'forward'],
    ['going forward', { from: '1.4.0', to: '1.4.0', forward: true }, 'back'],
    ['going forward from an empty appliance', { from: null, to: '1.0.0', forward: true }, 'back'],
  ] as const)('%s', (_name, way, switched) => {
    const result: RollbackResult = {
      ...rolledBack('rolled-back', true),
      ...way,
    };
    expect(failedRollbackSummary(result)).toBe(
      `still at ${way.from ?? '(empty)'}; everything was switched ${switched} again`,
    );
  });
});
