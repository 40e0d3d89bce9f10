import { integer, jsonOption, list, optional, required, type Command } from '../args.js';

export const command: Command = {
  usage: 'ferry trust init --key PUB... [--threshold K] --out FILE',
  summary: 'write a trust root of public keys, K of which must sign a bundle',
  options: {
    key: { type: 'string', multiple: true, arg: 'PUB', help: 'a public key file to trust' },
    threshold: {
      type: 'string',
      arg: 'K',
      help: 'how many of the keys must sign a bundle (default 1)',
    },
    out: { type: 'string', arg: 'FILE', help: 'the trust root file to write' },
    ...jsonOption,
  },
  async run({ values }) {
    const keys = list(values, 'key');
    const threshold = integer(optional(values, 'threshold') ?? '1', 'threshold');
    const out = required(values, 'out');
    const { trustInit } = await import('../../builder/signing.js');
    const root = await trustInit(keys, threshold, out);
    const ids = root.keys.map((key) => key.keyid);
    return {
      json: { trust: out, threshold: root.threshold, keyids: ids },
      human: `wrote ${out}: ${root.threshold} of ${ids.length} key(s) must sign\n${ids.map((id) => `  ${id}`).join('\n')}`,
    };
  },
};
