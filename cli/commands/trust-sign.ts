import {
  jsonOption,
  optional,
  positional,
  signingInput,
  signingOptions,
  type Command,
} from '../args.js';
import { formatRoot } from '../format.js';

export const command: Command = {
  usage:
    'ferry trust sign FILE (--key KEY... | --signer COMMAND... [--signer-key PUB...]) [--previous FILE]',
  summary:
    "add root key holders' signatures to a trust root, in place (--previous: root N, whose root keys sign N+1 too)",
  options: {
    ...signingOptions,
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
    const summary = await trustSign(file, signingInput(values), optional(values, 'previous'));
    return { json: { trust: file, ...summary }, human: `signed ${file}\n${formatRoot(summary)}` };
  },
};
