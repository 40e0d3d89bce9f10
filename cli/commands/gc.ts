import { flag, integer, optional, type Command } from '../args.js';
import { bytes } from '../format.js';
import { REPO_FLAGS, WRITER_FLAGS, repoOf, repoOptions, writerOf, writerOptions } from '../repo.js';

export const command: Command = {
  usage: `ferry gc --repo REPO [--keep K] [--yes ${WRITER_FLAGS}] ${REPO_FLAGS}`,
  summary:
    'remove versions no channel holds and none of the last K of each channel, and bundle copies killed publishes left (a dry run unless --yes)',
  options: {
    ...repoOptions,
    ...writerOptions,
    keep: {
      type: 'string',
      arg: 'K',
      help: 'keep the last K versions of each channel and of publishing',
    },
    yes: {
      type: 'boolean',
      help: 'remove them (without it, only say what would go); in a registry that deletes nothing through the OCI API (GHCR, ECR, Docker Hub) it stops before recording anything',
    },
  },
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
    const pending = result.remove.length + result.strays.length > 0;
    const strays = result.strays.length
      ? `${result.strays.length} bundle ${result.strays.length === 1 ? 'copy' : 'copies'} no version names (${bytes(result.strays.reduce((sum, stray) => sum + stray.size, 0))}, left by publishes killed before they recorded one): ${result.strays.map((stray) => stray.digest).join(', ')}`
      : undefined;
    return {
      json: result,
      human: [
        result.removed
          ? `removed ${remove}`
          : `would remove ${remove}${pending ? ' (dry run: pass --yes)' : ''}`,
        ...(strays ? [`${result.removed ? 'swept' : 'would sweep'} ${strays}`] : []),
        `keeps ${result.keep.join(', ') || 'nothing'}`,
      ].join('\n'),
    };
  },
};
