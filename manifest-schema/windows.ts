import type { ApplianceConfig } from './schemas.js';

/**
 * Weekly time windows on a wall clock (pure: the time and zone are handed in):
 * the appliance's maintenance windows and a repository channel's promotion
 * windows are the same thing, so both read them here.
 */
export type Window = NonNullable<ApplianceConfig['maintenanceWindows']>[number];
type Day = NonNullable<Window['days']>[number];
const DAYS: readonly Day[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

function minutes(clock: string): number {
  const [hours, mins] = clock.split(':').map(Number);
  return (hours ?? 0) * 60 + (mins ?? 0);
}

// Building a formatter costs far more than using one: nextOpening asks thousands of times.
const formatters = new Map<string | undefined, Intl.DateTimeFormat>();
function formatter(timeZone: string | undefined): Intl.DateTimeFormat {
  let found = formatters.get(timeZone);
  if (!found) {
    found = new Intl.DateTimeFormat('en-US', {
      timeZone,
      weekday: 'short',
      hour: 'numeric',
      minute: 'numeric',
      hourCycle: 'h23',
    });
    formatters.set(timeZone, found);
  }
  return found;
}

/** The weekday and minute of the day that a wall clock in `timeZone` shows at `now`. */
function wallClock(now: Date, timeZone: string | undefined): { day: Day; minute: number } {
  const parts = formatter(timeZone).formatToParts(now);
  const part = (type: Intl.DateTimeFormatPartTypes) =>
    parts.find((p) => p.type === type)?.value ?? '';
  const day = part('weekday').toLowerCase() as Day;
  return { day, minute: Number(part('hour')) * 60 + Number(part('minute')) };
}

/**
 * Whether `now` falls in a maintenance window, read on the appliance's wall
 * clock: in `timeZone`, or the process's local zone (TZ, else the system's)
 * when none is given. No windows means any time. A window whose end is before
 * its start runs past midnight, and belongs to the day it starts on.
 */
export function insideWindow(windows: readonly Window[], now: Date, timeZone?: string): boolean {
  if (windows.length === 0) return true;
  const { day: today, minute } = wallClock(now, timeZone);
  const yesterday = DAYS[(DAYS.indexOf(today) + 6) % 7] as Day;
  return windows.some((window) => {
    const start = minutes(window.start);
    const end = minutes(window.end);
    const on = (day: Day) => window.days === undefined || window.days.includes(day);
    if (start <= end) return on(today) && minute >= start && minute < end;
    return (on(today) && minute >= start) || (on(yesterday) && minute < end);
  });
}

/**
 * Whether a channel's windows let a change through at `now`: inside some
 * `allow` window (or no allow windows at all) and inside no `deny` window.
 */
export function windowOpen(
  windows: { allow?: readonly Window[]; deny?: readonly Window[]; timeZone?: string },
  now: Date,
): boolean {
  const allowed = insideWindow(windows.allow ?? [], now, windows.timeZone);
  const denied =
    (windows.deny ?? []).length > 0 && insideWindow(windows.deny ?? [], now, windows.timeZone);
  return allowed && !denied;
}

/**
 * The first minute at or after `now` at which windowOpen holds, within the
 * next eight days (a weekly schedule repeats), or undefined when it never does.
 */
export function nextOpening(
  windows: { allow?: readonly Window[]; deny?: readonly Window[]; timeZone?: string },
  now: Date,
): Date | undefined {
  const start = Math.ceil(now.getTime() / 60_000) * 60_000;
  for (let minute = 0; minute <= 8 * 24 * 60; minute++) {
    const at = new Date(start + minute * 60_000);
    if (windowOpen(windows, at)) return at;
  }
  return undefined;
}
