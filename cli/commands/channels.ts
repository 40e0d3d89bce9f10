import { type Command } from '../args.js';
import { table } from '../format.js';
import { pullStateDir, REPO_FLAGS, repoOf, repoOptions } from '../repo.js';

const STANDING = {
  current: '',
  moved: ', moved on since',
  'set-back': ', SET BACK since',
  replaced: ', from another repository at this name',
} as const;

export const command: Command = {
  usage: `ferry channels --repo REPO ${REPO_FLAGS}`,
  summary:
    'the channels of a bundle repository, the version each holds, where each promotes to, and what this machine pulled from each',
  options: repoOptions,
  async run({ values }) {
    const { channels } = await import('../../repository/model.js');
    const result = await channels({ ...repoOf(values), stateDir: pullStateDir(process.env) });
    const pulledHere = result.channels.some((c) => c.pulled);
    const warnings = result.channels.flatMap(({ name, pulled }) =>
      pulled?.standing === 'set-back'
        ? [
            `channel ${name} no longer holds document ${pulled.sequence} (${pulled.version}) or a later one, and this machine pulled that one from it: it was set back or forked, and pull refuses it; run \`ferry history --repo ${result.repo} --verify\``,
          ]
        : pulled?.standing === 'replaced'
          ? [
              `what this machine pulled came from another repository that stood at ${result.repo} (its first event differs): pull refuses this one until that record is removed (see \`ferry pull\`'s hint)`,
            ]
          : [],
    );
    return {
      json: result,
      human: [
        table([
          [
            'channel',
            'version',
            'since',
            'seq',
            'promotes to',
            ...(pulledHere ? ['pulled here'] : []),
          ],
          ...result.channels.map((c) => [
            c.name,
            c.version ?? '-',
            c.since ?? '-',
            String(c.sequence),
            c.to.join(', ') || '-',
            ...(pulledHere
              ? [
                  c.pulled
                    ? `${c.pulled.version} (${c.pulled.sequence})${STANDING[c.pulled.standing]}`
                    : '-',
                ]
              : []),
          ]),
        ]),
        `trust root version ${result.root}`,
        ...[...new Set(warnings)].map((warning) => `warning: ${warning}`),
      ].join('\n'),
    };
  },
};
