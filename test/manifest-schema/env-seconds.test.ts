import { describe, expect, it } from 'vitest';
import { MAX_TIMER_SECONDS, secondsFromEnv } from '../../manifest-schema/durations.js';
import { FerryError } from '../../manifest-schema/errors.js';

const NAME = 'FERRY_TEST_SECONDS';

// [what, value (undefined: unset), at most, seconds taken, or 'refused']
const cases: Array<[string, string | undefined, number | undefined, number | 'refused']> = [
  ['unset: the default', undefined, undefined, 60],
  ['empty, as a shell `VAR=` sets it: the default', '', undefined, 60],
  ['whole seconds', '90', undefined, 90],
  ['a fraction', '0.5', undefined, 0.5],
  ['a fraction without its leading 0', '.5', undefined, 0.5],
  ['a trailing point', '5.', undefined, 5],
  ['large, where nothing bounds it: taken as it is', '99999999', undefined, 99999999],
  ['large, past the bound: the bound', '99999999', MAX_TIMER_SECONDS, MAX_TIMER_SECONDS],
  ['at the bound', String(MAX_TIMER_SECONDS), MAX_TIMER_SECONDS, MAX_TIMER_SECONDS],
  ['zero', '0', undefined, 'refused'],
  ['zero as a fraction', '0.000', undefined, 'refused'],
  ['negative', '-5', undefined, 'refused'],
  ['a plus sign', '+5', undefined, 'refused'],
  ['a unit', '1m', undefined, 'refused'],
  ['seconds spelled out', '90s', undefined, 'refused'],
  ['text', 'abc', undefined, 'refused'],
  ['white space only', ' ', undefined, 'refused'],
  ['white space around a number', ' 90 ', undefined, 'refused'],
  ['exponent notation', '1e3', undefined, 'refused'],
  ['hexadecimal', '0x10', undefined, 'refused'],
  ['Infinity', 'Infinity', undefined, 'refused'],
  ['NaN', 'NaN', undefined, 'refused'],
  ['more digits than a double holds (Infinity)', '9'.repeat(400), MAX_TIMER_SECONDS, 'refused'],
  ['two points', '1.2.3', undefined, 'refused'],
  ['a comma', '0,5', undefined, 'refused'],
];

describe('secondsFromEnv: a time limit an environment variable sets', () => {
  it.each(cases)('%s (%j)', (_what, value, atMost, expected) => {
    const env = value === undefined ? {} : { [NAME]: value };
    if (expected !== 'refused') {
      expect(secondsFromEnv(env, NAME, 60, { atMost })).toBe(expected);
      return;
    }
    let thrown: unknown;
    try {
      secondsFromEnv(env, NAME, 60, { atMost });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(FerryError);
    const error = thrown as FerryError;
    expect(error.code).toBe('E_USAGE');
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain(NAME);
    expect(error.message).toContain(JSON.stringify(value?.slice(0, 40)).slice(0, -1));
    expect(error.hint).toContain('seconds, e.g. 90 or 0.5');
    expect(error.hint).toContain('60 s');
  });

  it('takes 0 only where the variable says 0 means something (a lock wait: fail at once)', () => {
    expect(secondsFromEnv({ [NAME]: '0' }, NAME, 10, { orZero: true })).toBe(0);
    expect(secondsFromEnv({ [NAME]: '0.0' }, NAME, 10, { orZero: true })).toBe(0);
    expect(() => secondsFromEnv({ [NAME]: '-1' }, NAME, 10, { orZero: true })).toThrow(
      `environment variable ${NAME} is "-1", which is not a number of seconds from 0 on`,
    );
    expect(() => secondsFromEnv({ [NAME]: '0' }, NAME, 10)).toThrow('seconds above 0');
  });

  it('the bound is the longest setTimeout waits (2^31-1 ms): one more second would fire at once', () => {
    expect(MAX_TIMER_SECONDS * 1000).toBeLessThanOrEqual(2 ** 31 - 1);
    expect((MAX_TIMER_SECONDS + 1) * 1000).toBeGreaterThan(2 ** 31 - 1);
  });
});
