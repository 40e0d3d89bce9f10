import type { PublishResult } from '../../repository/model.js';
import { optional, positional, type Command } from '../args.js';
import { bytes } from '../format.js';
import { REPO_FLAGS, WRITER_FLAGS, repoOf, repoOptions, writerOf, writerOptions } from '../repo.js';

export const command: Command = {
  usage: `ferry publish BUNDLE --repo REPO ${WRITER_FLAGS} [--channel C] ${REPO_FLAGS}`,
  summary:
    'publish a bundle under its release version (a directory or oci://host/name); the same bytes again change nothing',
  options: { ...repoOptions, ...writerOptions, channel: { type: 'string' } },
  async run({ values, positionals }) {
    const { publish } = await import('../../repository/model.js');
    const channel = optional(values, 'channel');
    const result = await publish({
      ...repoOf(values),
      bundle: positional(positionals, 'BUNDLE'),
      ...(channel !== undefined ? { channel } : {}),
      writer: await writerOf(values),
    });
    return { json: result, human: formatPublish(result) };
  },
};

function formatPublish(result: PublishResult): string {
  const what = result.changed
    ? `published ${result.version} to ${result.repo}${result.channel ? ` (channel ${result.channel})` : ''}`
    : `${result.version} is already published in ${result.repo} with these bytes: nothing to do`;
  return [
    what,
    `  digest  ${result.digest}`,
    `  bundle  ${result.file}, ${bytes(result.size)}, sha256 ${result.sha256}`,
  ].join('\n');
}
