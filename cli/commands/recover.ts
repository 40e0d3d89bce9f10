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
    return {
      json: result,
      human: result.recovered
        ? `recovered: the appliance is at ${result.release ?? '(empty)'}`
        : `nothing to recover: the appliance is at ${result.release ?? '(empty)'}`,
    };
  },
};
