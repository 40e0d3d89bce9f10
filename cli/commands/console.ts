import { list, type Command, root, rootOption } from '../args.js';

export const command: Command = {
  usage: 'ferry console [--root R] [--media DIR…]',
  summary:
    'the one-click console: finds bundles on attached media, shows what they bring and do, Enter applies',
  options: {
    ...rootOption,
    media: {
      type: 'string',
      multiple: true,
      arg: 'DIR',
      help: 'a folder to look for bundles in, besides /media, /run/media and /mnt',
    },
  },
  async run({ values }) {
    // ink reads these when it loads: a real terminal gets the live screen even
    // under CI=true (which makes ink print only the last frame), and NO_COLOR
    // is honoured (chalk only knows FORCE_COLOR).
    if (process.stdout.isTTY) delete process.env.CI;
    if (process.env.NO_COLOR !== undefined) process.env.FORCE_COLOR = '0';
    const { runConsole } = await import('../../installer/console/run.js');
    const exitCode = await runConsole({
      root: root(values),
      media: list(values, 'media'),
    });
    return { json: null, human: '', exitCode };
  },
};
