import { describe, expect, it } from 'vitest';
import { insideWindow, nextOpening, windowOpen } from '../../manifest-schema/windows.js';

type Windows = Parameters<typeof insideWindow>[0];

const weekendNights: Windows = [{ days: ['sat', 'sun'], start: '02:00', end: '05:00' }];
const aroundMidnight: Windows = [{ start: '23:00', end: '01:00' }];
const saturdayLate: Windows = [{ days: ['sat'], start: '23:00', end: '01:00' }];
const saturdayFirstHour: Windows = [{ days: ['sat'], start: '00:00', end: '01:00' }];
const sundayEarly: Windows = [{ days: ['sun'], start: '02:00', end: '05:00' }];
const sundayTwoToThree: Windows = [{ days: ['sun'], start: '02:00', end: '03:00' }];

// [what, windows, instant (UTC), time zone, inside?]. 2026-11-21 is a Saturday.
// The zone is always given: the result never depends on where the tests run.
// Without one, the installer reads the process's zone; test/e2e/install.test.ts
// sets TZ for bin/ferry to show that.
const cases: Array<[string, Windows, string, string, boolean]> = [
  ['no windows: any time', [], '2026-11-18T12:00:00Z', 'UTC', true],
  ['Sat 03:00, in the weekend window', weekendNights, '2026-11-21T03:00:00Z', 'UTC', true],
  [
    'Sat 02:00, the start belongs to the window',
    weekendNights,
    '2026-11-21T02:00:00Z',
    'UTC',
    true,
  ],
  ['Sat 05:00, the end does not', weekendNights, '2026-11-21T05:00:00Z', 'UTC', false],
  ['Fri 03:00, not a window day', weekendNights, '2026-11-20T03:00:00Z', 'UTC', false],
  ['23:30, across midnight, every day', aroundMidnight, '2026-11-18T23:30:00Z', 'UTC', true],
  ['00:30, across midnight, every day', aroundMidnight, '2026-11-18T00:30:00Z', 'UTC', true],
  [
    '01:00, the end of a window across midnight',
    aroundMidnight,
    '2026-11-18T01:00:00Z',
    'UTC',
    false,
  ],
  ['22:59, before it', aroundMidnight, '2026-11-18T22:59:00Z', 'UTC', false],
  [
    'Sat 23:30, a Saturday window across midnight',
    saturdayLate,
    '2026-11-21T23:30:00Z',
    'UTC',
    true,
  ],
  [
    'Sun 00:30, the same window, started on Saturday',
    saturdayLate,
    '2026-11-22T00:30:00Z',
    'UTC',
    true,
  ],
  [
    'Sat 00:30, a window that started on Friday',
    saturdayLate,
    '2026-11-21T00:30:00Z',
    'UTC',
    false,
  ],
  // The same instant on other wall clocks.
  [
    '01:30 UTC is Sat 02:30 in Berlin',
    weekendNights,
    '2026-11-21T01:30:00Z',
    'Europe/Berlin',
    true,
  ],
  ['01:30 UTC is Sat 01:30 in UTC', weekendNights, '2026-11-21T01:30:00Z', 'UTC', false],
  [
    '01:30 UTC is Fri 20:30 in New York',
    weekendNights,
    '2026-11-21T01:30:00Z',
    'America/New_York',
    false,
  ],
  [
    'Fri 23:30 UTC is already Saturday in Berlin',
    saturdayFirstHour,
    '2026-11-20T23:30:00Z',
    'Europe/Berlin',
    true,
  ],
  ['Fri 23:30 UTC is still Friday in UTC', saturdayFirstHour, '2026-11-20T23:30:00Z', 'UTC', false],
  [
    '20:15 UTC is Sat 02:00 in Kathmandu (+05:45)',
    weekendNights,
    '2026-11-20T20:15:00Z',
    'Asia/Kathmandu',
    true,
  ],
  // Daylight saving time in Berlin: 02:00 → 03:00 on 29 March, 03:00 → 02:00 on 25 October 2026.
  [
    'Sun 01:30 CET, before the clocks go forward',
    sundayEarly,
    '2026-03-29T00:30:00Z',
    'Europe/Berlin',
    false,
  ],
  ['Sun 03:30 CEST, after', sundayEarly, '2026-03-29T01:30:00Z', 'Europe/Berlin', true],
  [
    'Sun 02:30 CEST, the first of two',
    sundayTwoToThree,
    '2026-10-25T00:30:00Z',
    'Europe/Berlin',
    true,
  ],
  ['Sun 02:30 CET, the second', sundayTwoToThree, '2026-10-25T01:30:00Z', 'Europe/Berlin', true],
];

describe('insideWindow', () => {
  it.each(cases)('%s', (_what, windows, instant, timeZone, inside) => {
    expect(insideWindow(windows, new Date(instant), timeZone)).toBe(inside);
  });
});

describe('a channel’s promotion windows: allow and deny, deny wins', () => {
  const weekdays = {
    timeZone: 'UTC',
    allow: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'] as Day[], start: '09:00', end: '17:00' }],
    deny: [{ days: ['fri'] as Day[], start: '12:00', end: '17:00' }],
  };
  type Day = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';

  it.each([
    // 2026-06-01 is a Monday.
    ['2026-06-01T10:00:00Z', true, '2026-06-01T10:00:00.000Z'],
    ['2026-06-01T08:59:30Z', false, '2026-06-01T09:00:00.000Z'],
    ['2026-06-05T12:30:00Z', false, '2026-06-08T09:00:00.000Z'], // Friday afternoon is denied
    ['2026-06-06T10:00:00Z', false, '2026-06-08T09:00:00.000Z'], // Saturday
  ])('at %s open=%s, next opening %s', (now, open, next) => {
    expect(windowOpen(weekdays, new Date(now))).toBe(open);
    expect(nextOpening(weekdays, new Date(now))?.toISOString()).toBe(next);
  });

  it('no windows: always open; windows that never open: no opening', () => {
    expect(windowOpen({}, new Date())).toBe(true);
    expect(nextOpening({ allow: [{ days: [], start: '09:00', end: '10:00' }] }, new Date())).toBe(
      undefined,
    );
  });

  it('reads the wall clock of the channel’s zone', () => {
    const tokyo = { timeZone: 'Asia/Tokyo', allow: [{ start: '09:00', end: '10:00' }] };
    expect(windowOpen(tokyo, new Date('2026-06-01T00:30:00Z'))).toBe(true);
    expect(nextOpening(tokyo, new Date('2026-06-01T01:00:00Z'))?.toISOString()).toBe(
      '2026-06-02T00:00:00.000Z',
    );
  });
});
