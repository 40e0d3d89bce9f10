import { FerryError } from './errors.js';

/**
 * `1h30m`, the form a spec gives an estimate in: how the CLI and the console
 * both say a declared duration, so an operator reads it as it was written.
 */
export function duration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || seconds === 0 ? `${s}s` : ''}`;
}

/**
 * The longest a timer waits, in whole seconds: setTimeout and a socket's
 * timeout take at most 2^31−1 ms (24.8 days), and a longer one fires at once.
 */
export const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** Seconds as an operator writes them: `90`, `0.5`, `.5`; no sign, unit, exponent or white space. */
const SECONDS = /^(?:\d+(?:\.\d*)?|\.\d+)$/;

/**
 * The time limit the environment variable `name` sets, in seconds (fractions
 * allowed). Unset or empty (a shell's `NAME=`, as for every other Ferry
 * variable) gives `fallback`; more than `atMost` is taken as `atMost` (for a
 * timer, "as good as never"); 0 only where `orZero` says it means something
 * (a lock wait of 0: fail at once if the lock is held). Anything else (`1m`,
 * `90s`, `-5`, text) is E_USAGE naming the variable and its value: falling
 * back to the default instead would leave the operator who set it believing
 * it holds.
 */
export function secondsFromEnv(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  { atMost = Number.POSITIVE_INFINITY, orZero = false }: { atMost?: number; orZero?: boolean } = {},
): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const seconds = SECONDS.test(value) ? Number(value) : Number.NaN;
  if (!Number.isFinite(seconds) || seconds < 0 || (seconds === 0 && !orZero)) {
    const shown = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
    throw new FerryError(
      'E_USAGE',
      `environment variable ${name} is ${shown}, which is not a number of seconds ${orZero ? 'from 0 on' : 'above 0'}`,
      {
        hint: `set ${name} to seconds, e.g. 90 or 0.5, or unset it for the default, ${fallback} s`,
      },
    );
  }
  return Math.min(seconds, atMost);
}
