import { flag, integer, optional, type Command } from '../args.js';
import { REPO_FLAGS, WRITER_FLAGS, repoOf, repoOptions, writerOf, writerOptions } from '../repo.js';

export const command: Command = {
  usage: `ferry gc --repo REPO [--keep K] [--yes ${WRITER_FLAGS}] ${REPO_FLAGS}`,
  summary:
    'remove versions no channel holds and none of the last K of each channel (a dry run unless --yes)',
  options: { ...repoOptions, ...writerOptions, keep: { type: 'string' }, yes: { type: 'boolean' } },
  async run({ values }) {
    const { gc } = await import('../../repository/model.js');
    const keep = optional(values, 'keep');
    const yes = flag(values, 'yes');
    const result = await gc({
      ...repoOf(values),
      ...(keep !== undefined ? { keep: integer(keep, 'keep') } : {}),
      yes,
      writer: yes ? await writerOf(values) : { actor: '', ci: null, keys: [] },
    });
    const remove = result.remove.join(', ') || 'nothing';
    return {
      json: result,
      human: [
        result.removed
          ? `removed ${remove}`
          : `would remove ${remove}${result.remove.length ? ' (dry run: pass --yes)' : ''}`,
        `keeps ${result.keep.join(', ') || 'nothing'}`,
      ].join('\n'),
    };
  },
};
