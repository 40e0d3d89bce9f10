/**
 * Characters a terminal acts on instead of showing: C0 controls (but line
 * feed and tab), DEL, C1 controls (0x9b is an 8-bit CSI), and Unicode's
 * invisible reorderers and line separators. Names, notes and messages taken
 * from a bundle may hold any of them.
 */
// Matching control characters is the point here.
/* eslint-disable no-control-regex */
const UNPRINTABLE =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/* eslint-enable no-control-regex */

/**
 * Text made safe to print: every such character as a `\uXXXX` escape, which
 * is also a valid JSON escape, so JSON text passed through stays the same
 * JSON value. The one helper every output boundary uses (CLI, console, logs).
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A value with every string in it made printable (for a screen's whole state). */
export function printableDeep<T>(value: T): T {
  if (typeof value === 'string') return printable(value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => printableDeep(item)) as T;
  if (
    typeof value === 'object' &&
    value !== null &&
    Object.getPrototypeOf(value) === Object.prototype
  ) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, printableDeep(item)]),
    ) as T;
  }
  return value;
}

/** One word to a POSIX shell, whatever it holds: a printed command runs as printed. */
export function shellQuoted(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
