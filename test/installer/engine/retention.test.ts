import { describe, expect, it } from 'vitest';
import { versionsToKeep } from '../../../installer/engine/retention.js';

const cases: Array<[string, string[], string | undefined, string | undefined, number, string[]]> = [
  ['only the active version', ['1.0.0'], '1.0.0', undefined, 2, ['1.0.0']],
  [
    'the active version and the newest other up to the retention',
    ['1.0.0', '1.1.0', '2.0.0'],
    '2.0.0',
    undefined,
    2,
    ['1.1.0', '2.0.0'],
  ],
  [
    'the previous release’s version before newer others',
    ['1.0.0', '1.1.0', '2.0.0'],
    '2.0.0',
    '1.0.0',
    2,
    ['1.0.0', '2.0.0'],
  ],
  [
    'the previous release’s version even at a retention of 1, for ferry rollback',
    ['1.0.0', '1.1.0', '2.0.0'],
    '2.0.0',
    '1.0.0',
    1,
    ['1.0.0', '2.0.0'],
  ],
  [
    'a larger retention fills up with the newest',
    ['1.0.0', '1.1.0', '1.2.0', '2.0.0'],
    '2.0.0',
    '1.0.0',
    3,
    ['1.0.0', '1.2.0', '2.0.0'],
  ],
  [
    'newest by version order, not by name',
    ['1.9.0', '1.10.0', '2.0.0'],
    '2.0.0',
    undefined,
    2,
    ['1.10.0', '2.0.0'],
  ],
  [
    'a release before its prerelease',
    ['1.0.0-rc.1', '1.0.0', '2.0.0'],
    '2.0.0',
    undefined,
    2,
    ['1.0.0', '2.0.0'],
  ],
  [
    'a component that is no longer installed keeps only its previous version',
    ['0.8.0', '0.9.0'],
    undefined,
    '0.9.0',
    3,
    ['0.9.0'],
  ],
  ['a component in neither state keeps nothing', ['0.9.0'], undefined, undefined, 2, []],
  [
    'folders that are not versions are ordered too, not thrown on',
    ['notes', '1.0.0', '2.0.0'],
    '2.0.0',
    undefined,
    3,
    ['1.0.0', '2.0.0', 'notes'],
  ],
];

describe('versionsToKeep', () => {
  it.each(cases)('%s', (_name, present, active, previous, retention, expected) => {
    expect([...versionsToKeep(present, active, previous, retention)].sort()).toStrictEqual(
      expected,
    );
  });
});
