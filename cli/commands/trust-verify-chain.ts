import { ERROR_CODES } from '../../manifest-schema/errors.js';
import { jsonOption, positional, required, type Command } from '../args.js';

export const command: Command = {
  usage: 'ferry trust verify-chain DIR --trusted FILE',
  summary:
    'walk the root-N.json files of DIR from a trusted root, as an appliance would: the verdict and the version reached',
  options: {
    trusted: {
      type: 'string',
      arg: 'FILE',
      help: 'the trust root the walk starts from, as an appliance holds it',
    },
    ...jsonOption,
  },
  async run({ values, positionals }) {
    const dir = positional(positionals, 'DIR');
    const { verifyChain } = await import('../../builder/trust.js');
    const walk = await verifyChain(dir, required(values, 'trusted'), new Date());
    const { refusal } = walk;
    const reached = walk.root.version;
    const revoked = Object.keys(walk.root.revoked).sort();
    return {
      json: {
        verdict: refusal ? 'refused' : 'accepted',
        version: reached,
        versions: walk.versions,
        revoked,
        ...(refusal ? { error: refusal.toJSON() } : {}),
      },
      human: refusal
        ? `REFUSED after version ${reached}: ${refusal.code}: ${refusal.message}${refusal.hint ? `\n  hint: ${refusal.hint}` : ''}`
        : `ACCEPTED: versions ${walk.versions.join(' → ')}; the trusted root becomes version ${reached}${revoked.length > 0 ? `\n  revoked targets keys: ${revoked.join(', ')}` : ''}`,
      ...(refusal ? { exitCode: ERROR_CODES[refusal.code].exit } : {}),
    };
  },
};
