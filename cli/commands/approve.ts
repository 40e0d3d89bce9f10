import { list, optional, positional, required, type Command } from '../args.js';
import { REPO_FLAGS, WRITER_FLAGS, repoOf, repoOptions, writerOf, writerOptions } from '../repo.js';

export const command: Command = {
  usage: `ferry approve VERSION --repo REPO --to C --by NAME ${WRITER_FLAGS} [--from C] [--evidence FILE...] ${REPO_FLAGS}`,
  summary: "record a signed approval of a version's digest for a promotion, with evidence files",
  options: {
    ...repoOptions,
    ...writerOptions,
    to: { type: 'string', arg: 'C', help: 'the channel the approval is for' },
    from: { type: 'string', arg: 'C', help: 'the channel the version comes from' },
    by: { type: 'string', arg: 'NAME', help: 'who approves' },
    evidence: {
      type: 'string',
      multiple: true,
      arg: 'FILE',
      help: 'a file backing the approval, stored by its digest',
    },
  },
  async run({ values, positionals }) {
    const { approve } = await import('../../repository/model.js');
    const from = optional(values, 'from');
    const by = required(values, 'by');
    const result = await approve({
      ...repoOf(values),
      version: positional(positionals, 'VERSION'),
      to: required(values, 'to'),
      ...(from !== undefined ? { from } : {}),
      by,
      evidence: list(values, 'evidence'),
      writer: await writerOf(values),
    });
    return {
      json: result,
      human: `${result.by} approved ${result.version} (${result.digest}) for ${result.from} → ${result.to}${result.evidence.length ? `, evidence ${result.evidence.map((e) => e.name).join(', ')}` : ''}`,
    };
  },
};
