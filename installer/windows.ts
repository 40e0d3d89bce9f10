import type { ApplianceConfig } from '../manifest-schema/index.js';

type Window = NonNullable<ApplianceConfig['maintenanceWindows']>[number];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

function minutes(clock: string): number {
  const [hours, mins] = clock.split(':').map(Number);
  return (hours ?? 0) * 60 + (mins ?? 0);
}

/**
 * Whether `now` (the appliance's local time) falls in a maintenance window.
 * No windows means any time. A window whose end is before its start runs
 * past midnight, and belongs to the day it starts on.
 */
export function insideWindow(windows: readonly Window[], now: Date): boolean {
  if (windows.length === 0) return true;
  const minute = now.getHours() * 60 + now.getMinutes();
  const today = DAYS[now.getDay()] as Window['days'] extends Array<infer D> | undefined ? D : never;
  const yesterday = DAYS[(now.getDay() + 6) % 7] as typeof today;
  return windows.some((window) => {
    const start = minutes(window.start);
    const end = minutes(window.end);
    const on = (day: typeof today) => window.days === undefined || window.days.includes(day);
    if (start <= end) return on(today) && minute >= start && minute < end;
    return (on(today) && minute >= start) || (on(yesterday) && minute < end);
  });
}
