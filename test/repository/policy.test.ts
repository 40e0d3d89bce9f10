import { describe, expect, it } from 'vitest';
import {
  DEFAULT_POLICY,
  policyProblems,
  type ApprovalDoc,
  type ChannelDoc,
} from '../../repository/documents.js';
import { judgePromotion, type PromotionFacts } from '../../repository/policy.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const NOW = new Date('2026-06-01T12:00:00Z');

function channel(name: string, version: string, time = '2026-05-01T00:00:00Z'): ChannelDoc {
  return {
    channel: name,
    sequence: 1,
    version,
    digest: DIGEST,
    prev: null,
    auditHead: DIGEST,
    auditSeq: 1,
    time,
  };
}

function approval(by: string, evidence = 0): ApprovalDoc {
  return {
    version: '1.1.0',
    digest: DIGEST,
    from: 'dev',
    to: 'beta',
    by,
    time: NOW.toISOString(),
    ci: null,
    evidence: Array.from({ length: evidence }, (_, i) => ({
      name: `r${i}`,
      digest: DIGEST,
      size: 1,
    })),
  };
}

function facts(change: Partial<PromotionFacts> = {}): PromotionFacts {
  return {
    policy: DEFAULT_POLICY,
    version: '1.1.0',
    digest: DIGEST,
    from: 'dev',
    to: 'beta',
    source: channel('dev', '1.1.0'),
    target: undefined,
    approvals: [approval('alice')],
    publisher: 'ci',
    heldBefore: new Set(),
    rollback: false,
    now: NOW,
    ...change,
  };
}

const codes = (f: PromotionFacts) => judgePromotion(f).excuses.map((e) => e.code);

describe('judgePromotion: every unmet condition, each with its code', () => {
  it.each([
    ['everything holds', facts(), 'ok', []],
    ['no approval', facts({ approvals: [] }), 'blocked', ['E_APPROVALS']],
    [
      'only the publisher approved',
      facts({ approvals: [approval('ci')] }),
      'blocked',
      ['E_APPROVALS'],
    ],
    [
      'no edge, not in the source, no approval',
      facts({ to: 'stable', source: channel('dev', '1.0.0'), approvals: [] }),
      'blocked',
      ['E_PROMOTE_EDGE', 'E_NOT_IN_CHANNEL', 'E_APPROVALS'],
    ],
    ['already there', facts({ target: channel('beta', '1.1.0') }), 'unchanged', []],
    [
      'a rollback to a version never held',
      facts({ rollback: true, from: undefined, approvals: [] }),
      'blocked',
      ['E_NOT_PREVIOUS'],
    ],
    [
      'a rollback to a version held before, no approvals needed',
      facts({ rollback: true, from: undefined, approvals: [], heldBefore: new Set(['1.1.0']) }),
      'ok',
      [],
    ],
  ] as const)('%s', (_name, input, verdict, expected) => {
    expect(judgePromotion(input).verdict).toBe(verdict);
    expect(codes(input)).toEqual(expected);
  });

  const strict = {
    ...DEFAULT_POLICY,
    channels: {
      ...DEFAULT_POLICY.channels,
      beta: {
        approvals: 2,
        evidence: true,
        soakHours: 48,
        timeZone: 'UTC',
        allow: [{ days: ['tue' as const], start: '09:00', end: '10:00' }],
      },
    },
  };

  it('counts distinct approvers, wants evidence from one of them, and soak time', () => {
    const input = facts({
      policy: strict,
      approvals: [approval('alice'), approval('alice')],
      source: channel('dev', '1.1.0', '2026-06-01T00:00:00Z'),
    });
    expect(codes(input)).toEqual(['E_APPROVALS', 'E_EVIDENCE', 'E_SOAK', 'E_PROMOTION_WINDOW']);
    const soak = judgePromotion(input).excuses.find((e) => e.code === 'E_SOAK');
    expect(soak?.message).toContain('2026-06-03T00:00:00.000Z');
  });

  it('outside the window alone: closed, with when it opens', () => {
    const input = facts({
      policy: strict,
      approvals: [approval('alice', 1), approval('bob')],
    });
    expect(judgePromotion(input)).toMatchObject({
      verdict: 'closed',
      opens: '2026-06-02T09:00:00.000Z',
    });
  });
});

describe('policyProblems: every problem with its path', () => {
  it('accepts the default policy', () => {
    expect(policyProblems(DEFAULT_POLICY)).toEqual([]);
  });

  const cycle = (path: string): string[] => [
    `/edges: ${path} is a cycle: channels move one way (going back is \`ferry promote --rollback\`)`,
  ];
  it.each([
    [
      'a cycle past the first channel',
      [
        ['dev', 'beta'],
        ['beta', 'stable'],
        ['stable', 'beta'],
      ],
      cycle('beta → stable → beta'),
    ],
    [
      'a cycle through every channel that takes publishes',
      [
        ['dev', 'beta'],
        ['beta', 'dev'],
      ],
      cycle('dev → beta → dev'),
    ],
    [
      'two ways into one channel, which is no cycle',
      [
        ['dev', 'stable'],
        ['beta', 'stable'],
        ['dev', 'beta'],
      ],
      [],
    ],
  ] as Array<[string, Array<[string, string]>, string[]]>)('edges: %s', (_, edges, problems) => {
    const channels = { dev: {}, beta: {}, stable: {} };
    expect(policyProblems({ formatVersion: 1, channels, edges })).toEqual(problems);
  });

  it('names each broken field', () => {
    expect(
      policyProblems({
        formatVersion: 2,
        channels: {
          Dev: { approvals: -1, colour: 'red' },
          beta: {
            timeZone: 'Mars/Olympus',
            allow: [{ start: '25:00', end: '10:00', days: ['someday'] }],
          },
        },
        edges: [
          ['Dev', 'nowhere'],
          ['beta', 'beta'],
        ],
      }),
    ).toEqual([
      '/formatVersion: must be 1',
      '/channels/Dev: a channel name is lower-case letters, digits and -',
      '/channels/Dev/colour: is not a policy rule',
      '/channels/Dev/approvals: must be a whole number',
      '/channels/beta/timeZone: "Mars/Olympus" is not a time zone',
      '/channels/beta/allow/0/start: must be HH:MM',
      '/channels/beta/allow/0/days: must list mon, tue, wed, thu, fri, sat, sun',
      '/edges/0: must be [from, to], two channels the policy declares',
      '/edges/1: leads from a channel to itself',
    ]);
  });
});
