import { jsonOption, optional, positional, required, type Command } from '../args.js';
import { formatRoot } from '../format.js';

export const command: Command = {
  usage: 'ferry trust sign FILE --key KEY [--previous FILE]',
  summary:
    "add one root key holder's signature to a trust root, in place (--previous: root N, whose root keys sign N+1 too)",
  options: {
    key: {
      type: 'string',
      arg: 'KEY',
      help: 'the private root key to sign with: a file, env:VAR or - (stdin)',
    },
    previous: {
      type: 'string',
      arg: 'FILE',
      help: 'trust root version N, whose root keys sign N+1 too',
    },
    ...jsonOption,
  },
  async run({ values, positionals }) {
    const file = positional(positionals, 'FILE');
    const { trustSign } = await import('../../builder/trust.js');
    const summary = await trustSign(file, required(values, 'key'), optional(values, 'previous'));
    return { json: { trust: file, ...summary }, human: `signed ${file}\n${formatRoot(summary)}` };
  },
};
