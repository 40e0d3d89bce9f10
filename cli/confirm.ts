import { FerryError } from '../manifest-schema/errors.js';

/** install and rollback change the appliance: on a TTY they ask; without one they need --yes. */
export async function confirm(yes: boolean, what: string): Promise<void> {
  if (mustAsk(yes, what)) await ask(what);
}

/** Whether to ask; refuses at once when there is no terminal to ask on. */
export function mustAsk(yes: boolean, what: string): boolean {
  if (yes) return false;
  if (!process.stdin.isTTY) {
    throw new FerryError(
      'E_USAGE',
      `refusing to ${what} without confirmation: no terminal to ask on`,
      { hint: 'pass --yes to confirm (for scripts and CI)' },
    );
  }
  return true;
}

export async function ask(what: string, signal?: AbortSignal): Promise<void> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  // Ctrl-C at the question (readline takes it as a key and rejects with an AbortError), a
  // terminal that closed (the input ends, unanswered) and a stop signal (`signal`: the install
  // asking holds the appliance's lock, which a SIGTERM must not leave held until someone
  // answers) are a no, not a bug of Ferry's.
  const closed = new Promise<string>((resolve) => rl.once('close', () => resolve('')));
  const asked = rl.question(`${what}? [y/N] `, signal ? { signal } : {});
  const answer = await Promise.race([asked, closed]).catch((error: unknown) => {
    if ((error as { name?: string }).name === 'AbortError') return '';
    throw error;
  });
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim()))
    throw new FerryError('E_USAGE', 'not confirmed; nothing was changed', {
      hint: 'answer y to go ahead, or pass --yes',
    });
}
