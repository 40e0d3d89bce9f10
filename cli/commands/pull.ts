import { optional, required, type Command } from '../args.js';
import { bytes } from '../format.js';
import { terminalMeter } from '../progress.js';
import { pullStateDir, REPO_FLAGS, repoOf, repoOptions } from '../repo.js';

export const command: Command = {
  usage: `ferry pull --repo REPO (--channel C | --version V) --out DIR ${REPO_FLAGS}`,
  summary:
    'download a bundle, checked against its channel or version record and the trust root, written atomically',
  options: {
    ...repoOptions,
    channel: { type: 'string', arg: 'C', help: 'the version channel C holds' },
    version: { type: 'string', arg: 'V', help: 'this release version' },
    out: { type: 'string', arg: 'DIR', help: 'the folder the bundle is written to' },
  },
  async run({ values }) {
    const { pull } = await import('../../repository/model.js');
    const channel = optional(values, 'channel');
    const version = optional(values, 'version');
    const progress = terminalMeter('pull: download');
    const result = await pull({
      ...repoOf(values),
      ...(channel !== undefined ? { channel } : {}),
      ...(version !== undefined ? { version } : {}),
      out: required(values, 'out'),
      ...(progress ? { onProgress: progress.onProgress } : {}),
      stateDir: pullStateDir(process.env),
    });
    progress?.done();
    return {
      json: result,
      human: [
        `${result.changed ? 'pulled' : 'already there, nothing downloaded:'} ${result.version}${result.channel ? ` (channel ${result.channel})` : ''}: ${result.bundle}`,
        `  ${bytes(result.size)}, digest ${result.digest}; signature and sha256 checked`,
      ].join('\n'),
    };
  },
};
