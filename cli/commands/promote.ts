import type { PromoteResult } from '../../repository/model.js';
import { flag, list, optional, positional, required, type Command } from '../args.js';
import { REPO_FLAGS, WRITER_FLAGS, repoOf, repoOptions, writerOf, writerOptions } from '../repo.js';

export const command: Command = {
  usage: `ferry promote VERSION --repo REPO --to C2 ${WRITER_FLAGS} [--from C1] [--approved-by NAME [--evidence FILE...]] [--rollback --reason TEXT] ${REPO_FLAGS}`,
  summary:
    "move a channel to a version when the target's policy holds; every unmet condition is listed (exit 4; 5 outside a window)",
  options: {
    ...repoOptions,
    ...writerOptions,
    to: { type: 'string' },
    from: { type: 'string' },
    'approved-by': { type: 'string' },
    evidence: { type: 'string', multiple: true },
    rollback: { type: 'boolean' },
    reason: { type: 'string' },
  },
  async run({ values, positionals }) {
    const { promote } = await import('../../repository/model.js');
    const from = optional(values, 'from');
    const approvedBy = optional(values, 'approved-by');
    const reason = optional(values, 'reason');
    const result = await promote({
      ...repoOf(values),
      version: positional(positionals, 'VERSION'),
      to: required(values, 'to'),
      ...(from !== undefined ? { from } : {}),
      ...(approvedBy !== undefined ? { approvedBy } : {}),
      evidence: list(values, 'evidence'),
      rollback: flag(values, 'rollback'),
      ...(reason !== undefined ? { reason } : {}),
      writer: await writerOf(values),
    });
    const { ERROR_CODES } = await import('../../manifest-schema/errors.js');
    const exitCode = result.code ? ERROR_CODES[result.code].exit : 0;
    return { json: result, human: formatPromote(result), exitCode };
  },
};

function formatPromote(result: PromoteResult): string {
  const move = `${result.version} ${result.from ? `${result.from} → ` : '→ '}${result.to}`;
  switch (result.verdict) {
    case 'promoted':
      return `promoted ${move} (event ${result.event})`;
    case 'rolled-back':
      return `rolled ${result.to} back to ${result.version} (event ${result.event})`;
    case 'unchanged':
      return `${result.to} already holds ${result.version}: nothing to do`;
    default:
      return [
        `${result.code}: ${move} ${result.verdict === 'closed' ? 'must wait for its window' : 'is refused'}; nothing was changed`,
        ...result.excuses.map((e) => `  ✗ ${e.code}: ${e.message}`),
      ].join('\n');
  }
}
