import type { MediaCheck } from '../../bundle/media.js';
import { jsonOption, positional, required, type Command } from '../args.js';

export const command: Command = {
  usage: 'ferry media verify DIR --trust FILE',
  summary:
    'check every part on every attached volume against the signed parts index (writes nothing)',
  options: {
    trust: {
      type: 'string',
      arg: 'FILE',
      help: 'the trust root the parts index and bundle.json are checked against',
    },
    ...jsonOption,
  },
  async run({ values, positionals }) {
    const { verifyMedia } = await import('../../bundle/media.js');
    const { readTrustedRoot } = await import('../../manifest-schema/index.js');
    const result = await verifyMedia(positional(positionals, 'DIR'), {
      root: await readTrustedRoot(required(values, 'trust')),
      now: new Date(),
    });
    return { json: { ...result, valid: true }, human: formatCheck(result) };
  },
};

function formatCheck(result: MediaCheck): string {
  const lines = [
    `${result.bundle}: ${result.checked.length} of ${result.volumes} volume(s) checked, every part matches the signed parts index`,
    ...result.checked.map((c) => `  volume ${c.volume}  ${c.path}  ok`),
  ];
  if (result.missing.length > 0)
    lines.push(`  not attached (not checked): volume ${result.missing.join(', ')}`);
  lines.push(
    result.metadata
      ? '  bundle.json on volume 1 is signed by keys the trust root accepts'
      : '  volume 1 is not attached: bundle.json was not checked',
  );
  return lines.join('\n');
}
