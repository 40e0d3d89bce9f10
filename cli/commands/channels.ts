import { type Command } from '../args.js';
import { table } from '../format.js';
import { REPO_FLAGS, repoOf, repoOptions } from '../repo.js';

export const command: Command = {
  usage: `ferry channels --repo REPO ${REPO_FLAGS}`,
  summary:
    'the channels of a bundle repository, the version each holds, and where each promotes to',
  options: repoOptions,
  async run({ values }) {
    const { channels } = await import('../../repository/model.js');
    const result = await channels(repoOf(values));
    return {
      json: result,
      human: table([
        ['channel', 'version', 'since', 'seq', 'promotes to'],
        ...result.channels.map((c) => [
          c.name,
          c.version ?? '-',
          c.since ?? '-',
          String(c.sequence),
          c.to.join(', ') || '-',
        ]),
      ]),
    };
  },
};
