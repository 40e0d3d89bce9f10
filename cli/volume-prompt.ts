import type { AskForVolume } from '../bundle/media.js';

/** What else writes to the terminal (the progress printer): quiet while a question is on it. */
export interface TerminalLine {
  hold(): void;
  resume(): void;
}

/**
 * On a terminal, the operator is asked for each volume as it is needed (one
 * drive, discs swapped in turn); without one there is nobody to ask, and
 * every volume must be attached before anything changes. An interrupt
 * (`signal` aborted) or a terminal that closed ends the question as `q`
 * does: the install stops there, nothing changed. `output` is quiet while
 * the question is up, so that nothing it prints buries or erases it.
 */
export function askOnTerminal(
  signal?: AbortSignal,
  output?: TerminalLine,
): AskForVolume | undefined {
  if (!process.stdin.isTTY) return undefined;
  return async (request) => {
    if (signal?.aborted) throw request.problem;
    const { createInterface } = await import('node:readline/promises');
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    // The terminal is raw while it asks, so Ctrl-C is a key, not a signal: make it the
    // signal, which the install reports as an interrupt (closing would read as `q`).
    rl.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
    // The terminal closed (SIGHUP; reading it fails with EIO): nobody is left to answer.
    const closed = new Promise<never>((_, reject) =>
      rl.once('close', () => reject(request.problem)),
    );
    closed.catch(() => undefined);
    // The input then ends, and closing restores the terminal's mode in vain (EIO, an
    // 'error' on the terminal and on the interface): no news, the question is closed.
    const hungUp = (): void => undefined;
    rl.on('error', hungUp);
    process.stdin.on('error', hungUp);
    output?.hold();
    try {
      if (request.problem.code === 'E_WRONG_VOLUME')
        process.stderr.write(`${request.problem.message}\n`);
      const answer = await Promise.race([
        rl.question(
          `Insert volume ${request.volume} of ${request.volumes} (${request.label}) of ${request.bundle}, then press Enter (q to stop): `,
          signal ? { signal } : {},
        ),
        closed,
      ]).catch((error: unknown) => {
        if ((error as { name?: string }).name === 'AbortError') throw request.problem;
        throw error;
      });
      if (/^q/i.test(answer.trim())) throw request.problem;
    } finally {
      rl.close();
      process.stdin.off('error', hungUp);
      output?.resume();
    }
  };
}
