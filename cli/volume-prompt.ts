import type { AskForVolume } from '../bundle/media.js';

/**
 * On a terminal, the operator is asked for each volume as it is needed (one
 * drive, discs swapped in turn); without one there is nobody to ask, and
 * every volume must be attached before anything changes.
 */
export function askOnTerminal(): AskForVolume | undefined {
  if (!process.stdin.isTTY) return undefined;
  return async (request) => {
    const { createInterface } = await import('node:readline/promises');
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      if (request.problem.code === 'E_WRONG_VOLUME')
        process.stderr.write(`${request.problem.message}\n`);
      const answer = await rl.question(
        `Insert volume ${request.volume} of ${request.volumes} (${request.label}) of ${request.bundle}, then press Enter (q to stop): `,
      );
      if (/^q/i.test(answer.trim())) throw request.problem;
    } finally {
      rl.close();
    }
  };
}
