import type { VerifyResult } from '../../bundle/verify.js';
import { jsonOption, positional, required, type Command } from '../args.js';
import { bytes } from '../format.js';
import { meterOf } from '../progress.js';

export const command: Command = {
  usage: 'ferry verify BUNDLE --trust FILE',
  summary: 'check the signature and every byte of a bundle against its signed metadata',
  options: {
    trust: { type: 'string', arg: 'FILE', help: 'the trust root to check the signature against' },
    ...jsonOption,
  },
  async run({ values, positionals }) {
    const { verifyBundle } = await import('../../bundle/verify.js');
    const { readTrustedRoot } = await import('../../manifest-schema/index.js');
    const progress = meterOf('verify: checked');
    const result = await verifyBundle(
      positional(positionals, 'BUNDLE'),
      { root: await readTrustedRoot(required(values, 'trust')), now: new Date() },
      progress.onProgress,
    );
    progress.done();
    const { file, ...rest } = result;
    return { json: { bundle: file, ...rest, valid: true }, human: formatVerify(result) };
  },
};

function formatVerify(result: VerifyResult): string {
  return [
    `verified ${result.file}: ${result.product} ${result.release} (${result.kind})`,
    `  signature valid: ${result.signature.keyids.length} trusted key(s), threshold ${result.signature.threshold}`,
    `  ${result.entries} entries, ${bytes(result.bytes)} checked against their signed sha256`,
  ].join('\n');
}
