import { jsonOption, type Command, root, rootOption } from '../args.js';

export const command: Command = {
  usage: 'ferry recover [--root R]',
  summary:
    'resolve a transaction that a crash or power cut interrupted (install and rollback do this first themselves)',
  options: { ...rootOption, ...jsonOption },
  async run({ values }) {
    const { recover } = await import('../../installer/engine/recover.js');
    const { catchStopSignals } = await import('../../installer/engine/events.js');
    const say = (line: string): void => void process.stderr.write(`${line}\n`);
    // Recovery is the way back to a consistent appliance: a signal never cuts it short.
    const stopping = catchStopSignals(say);
    const result = await recover(root(values), (message) => say(`warning: ${message}`), {
      signal: stopping.signal,
      interrupted: (message) => say(`ferry: ${message}`),
    }).finally(stopping.release);
    const at = `the appliance is at ${result.release ?? '(empty)'}`;
    const { notUndoneKind } = await import('../../installer/engine/events.js');
    const ran = (result.notUndone ?? []).map((item) => item.component).join(', ');
    return {
      json: result,
      human: !result.recovered
        ? `nothing to recover: ${at}`
        : ran
          ? `recovered: files back at ${result.release ?? '(empty)'}; ${notUndoneKind(result.notUndone ?? [])} of ${ran} ran and were not undone: see the warnings`
          : `recovered: ${at}`,
    };
  },
};
