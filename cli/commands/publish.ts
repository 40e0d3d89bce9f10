import type { PublishResult } from '../../repository/model.js';
import { list, optional, positional, type Command } from '../args.js';
import { bytes } from '../format.js';
import { terminalMeter } from '../progress.js';
import { REPO_FLAGS, WRITER_FLAGS, repoOf, repoOptions, writerOf, writerOptions } from '../repo.js';

export const command: Command = {
  usage: `ferry publish BUNDLE --repo REPO ${WRITER_FLAGS} [--channel C] [--repo-key PUB...] ${REPO_FLAGS}`,
  summary:
    'publish a bundle under its release version (a directory or oci://host/name); the same bytes again change nothing',
  options: {
    ...repoOptions,
    ...writerOptions,
    channel: {
      type: 'string',
      arg: 'C',
      help: 'also publish into channel C, one no promotion leads into (dev)',
    },
    'repo-key': {
      type: 'string',
      multiple: true,
      arg: 'PUB',
      help: 'first publish: a key besides the release keys that may sign approvals',
    },
  },
  async run({ values, positionals }) {
    const { publish } = await import('../../repository/model.js');
    const channel = optional(values, 'channel');
    const { readKeyFile } = await import('../../builder/signing.js');
    const repoKeys = await Promise.all(list(values, 'repo-key').map((file) => readKeyFile(file)));
    const progress = terminalMeter('publish: store');
    const result = await publish({
      ...repoOf(values),
      bundle: positional(positionals, 'BUNDLE'),
      ...(channel !== undefined ? { channel } : {}),
      repoKeys,
      writer: await writerOf(values),
      ...(progress ? { onProgress: progress.onProgress } : {}),
    });
    progress?.done();
    const { file, ...rest } = result;
    return { json: { ...rest, bundle: file }, human: formatPublish(result) };
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
    ...(result.root.taken
      ? [
          `  trust   took trust root version ${result.root.version} from the bundle: from now on its release keys (and the repository keys) sign, and no key it dropped`,
        ]
      : []),
  ].join('\n');
}
