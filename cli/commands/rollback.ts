import { flag, jsonOption, optional, type Command, root as rootOf, rootOption } from '../args.js';
import { confirm } from '../confirm.js';
import { formatFailure } from '../format.js';
import { progressPrinter } from '../progress.js';

export const command: Command = {
  usage: 'ferry rollback [--root R] [--reason TEXT] [--yes]',
  summary: 'back to the previous committed release, from the versions kept beside the active ones',
  options: {
    ...rootOption,
    yes: { type: 'boolean', help: 'go ahead without asking (for scripts and CI)' },
    reason: { type: 'string', arg: 'TEXT', help: 'why, recorded in the history' },
    ...jsonOption,
  },
  async run({ values }) {
    const root = rootOf(values);
    await confirm(flag(values, 'yes'), `roll ${root} back to its previous release`);
    const { rollback } = await import('../../installer/engine/rollback.js');
    const { catchStopSignals, exitCodeOf, failedRollbackSummary, unchangedRollbackSummary } =
      await import('../../installer/engine/events.js');
    const reason = optional(values, 'reason');
    const progress = await progressPrinter();
    const stopping = catchStopSignals((line) => process.stderr.write(`${line}\n`));
    const result = await rollback(root, {
      ...(reason !== undefined ? { reason } : {}),
      signal: stopping.signal,
      onEvent: (event) => {
        if (!flag(values, 'json')) progress.show(event);
        // --json keeps stdout one document: what an interrupt does goes to the terminal.
        else if (event.type === 'interrupt') process.stderr.write(`ferry: ${event.message}\n`);
      },
    }).finally(stopping.release);
    const human = [
      result.outcome === 'committed'
        ? `ROLLED BACK to ${result.to ?? '(empty)'} (from ${result.from ?? '(empty)'})`
        : result.outcome === 'unchanged'
          ? `UNCHANGED: ${unchangedRollbackSummary(result)}`
          : `FAILED: ${failedRollbackSummary(result)}`,
      ...formatFailure(result.failure, result.log),
    ].join('\n');
    return { json: result, human, exitCode: exitCodeOf(result) };
  },
};
