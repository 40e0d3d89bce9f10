import { jsonOption, type Command, root, rootOption } from '../args.js';

export const command: Command = {
  usage: 'ferry recover [--root R]',
  summary:
    'resolve a transaction that a crash or power cut interrupted (install and rollback do this first themselves)',
  options: { ...rootOption, ...jsonOption },
  async run({ values }) {
    const { recover } = await import('../../installer/engine/recover.js');
    const result = await recover(root(values), (message) =>
      process.stderr.write(`warning: ${message}\n`),
    );
    const at = `the appliance is at ${result.release ?? '(empty)'}`;
    const ran = (result.notUndone ?? []).map((item) => item.component).join(', ');
    return {
      json: result,
      human: !result.recovered
        ? `nothing to recover: ${at}`
        : ran
          ? `recovered: files back at ${result.release ?? '(empty)'}; rollback artifacts of ${ran} ran and were not undone: see the warnings`
          : `recovered: ${at}`,
    };
  },
};
