import type { ApplianceConfig } from '../manifest-schema/index.js';

type Window = NonNullable<ApplianceConfig['maintenanceWindows']>[number];
type Day = NonNullable<Window['days']>[number];
const DAYS: readonly Day[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

function minutes(clock: string): number {
  const [hours, mins] = clock.split(':').map(Number);
  return (hours ?? 0) * 60 + (mins ?? 0);
}

/** The weekday and minute of the day that a wall clock in `timeZone` shows at `now`. */
function wallClock(now: Date, timeZone: string | undefined): { day: Day; minute: number } {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    weekday: 'short',
    hour: 'numeric',
    minute: 'numeric',
    hourCycle: 'h23',
  }).formatToParts(now);
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
