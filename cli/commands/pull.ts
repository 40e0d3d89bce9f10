import { optional, required, type Command } from '../args.js';
import { bytes } from '../format.js';
import { REPO_FLAGS, repoOf, repoOptions } from '../repo.js';

export const command: Command = {
  usage: `ferry pull --repo REPO (--channel C | --version V) --out DIR ${REPO_FLAGS}`,
  summary:
    'download a bundle, checked against its channel or version record and the trust root, written atomically',
  options: {
    ...repoOptions,
    channel: { type: 'string' },
    version: { type: 'string' },
    out: { type: 'string' },
  },
  async run({ values }) {
    const { pull } = await import('../../repository/model.js');
    const channel = optional(values, 'channel');
    const version = optional(values, 'version');
    const result = await pull({
      ...repoOf(values),
      ...(channel !== undefined ? { channel } : {}),
      ...(version !== undefined ? { version } : {}),
      out: required(values, 'out'),
    });
    return {
      json: result,
      human: [
        `pulled ${result.version}${result.channel ? ` (channel ${result.channel})` : ''}: ${result.bundle}`,
        `  ${bytes(result.size)}, digest ${result.digest}; signature and sha256 checked`,
      ].join('\n'),
    };
  },
};
