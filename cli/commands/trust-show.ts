import { jsonOption, optional, positional, type Command } from '../args.js';
import { formatRoot } from '../format.js';

export const command: Command = {
  usage: 'ferry trust show FILE [--previous FILE]',
  summary:
    'a trust root: its version, expiry, roles and which root keys signed it (--previous: and which of root N-1)',
  options: {
    previous: {
      type: 'string',
      arg: 'FILE',
      help: 'trust root version N-1: show which of its root keys signed too',
    },
    ...jsonOption,
  },
  async run({ values, positionals }) {
    const file = positional(positionals, 'FILE');
    const { trustShow } = await import('../../builder/trust.js');
    const summary = await trustShow(file, optional(values, 'previous'));
    return { json: { trust: file, ...summary }, human: `${file}\n${formatRoot(summary)}` };
  },
};
