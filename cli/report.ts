import { ERROR_CODES, FerryError, isFerryError } from '../manifest-schema/errors.js';
import { printable } from '../manifest-schema/printable.js';

/**
 * Prints an error the one way Ferry does (`{"error": …}` on stdout with
 * --json, code, message and hint on stderr) and gives its exit code. The
 * packaged installer's boot script prints its own refusals with it too,
 * before the rest of Ferry loads, so it imports nothing else.
 */
export function report(error: unknown, wantsJson: boolean): number {
  const ferryError = isFerryError(error)
    ? error
    : new FerryError(
        'E_INTERNAL',
        `unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        {
          hint: 'this is a bug in Ferry: please report it with the command you ran',
        },
      );
  if (wantsJson)
    process.stdout.write(`${printable(JSON.stringify({ error: ferryError.toJSON() }, null, 2))}\n`);
  // Messages name entries and files taken from a bundle: nothing in them may drive the terminal.
  process.stderr.write(`ferry: ${ferryError.code}: ${printable(ferryError.message)}\n`);
  if (ferryError.hint) process.stderr.write(`  hint: ${printable(ferryError.hint)}\n`);
  return ERROR_CODES[ferryError.code].exit;
}
