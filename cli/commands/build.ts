import type { BuildResult } from '../../builder/build.js';
import type { BundleFormat } from '../../builder/write.js';
import {
  choice,
  date,
  jsonOption,
  list,
  optional,
  positional,
  required,
  type Command,
} from '../args.js';
import { bytes } from '../format.js';

const BUNDLE_FORMATS: readonly BundleFormat[] = ['tar', 'tar.gz', 'zip'];

export const command: Command = {
  usage:
    'ferry build SPEC --out DIR --key KEY... [--format tar|tar.gz|zip] [--kind update|install] [--trust-chain DIR] [--expires DATE] [--installer FILE]',
  summary: 'build and sign a bundle from a release spec, and write its release record',
  options: {
    out: { type: 'string' },
    key: { type: 'string', multiple: true },
    format: { type: 'string' },
    kind: { type: 'string' },
    'trust-chain': { type: 'string' },
    expires: { type: 'string' },
    installer: { type: 'string' },
    ...jsonOption,
  },
  async run({ values, positionals }) {
    const format = choice(optional(values, 'format') ?? 'tar', BUNDLE_FORMATS, 'format');
    const kind = optional(values, 'kind');
    const trustChain = optional(values, 'trust-chain');
    const expires = optional(values, 'expires');
    const installer = optional(values, 'installer');
    const { buildBundle } = await import('../../builder/build.js');
    const result = await buildBundle({
      spec: positional(positionals, 'SPEC'),
      out: required(values, 'out'),
      keys: list(values, 'key'),
      format,
      ...(kind !== undefined ? { kind: choice(kind, ['update', 'install'] as const, 'kind') } : {}),
      ...(trustChain !== undefined ? { trustChain } : {}),
      ...(expires !== undefined ? { expires: date(expires, 'expires') } : {}),
      ...(installer !== undefined ? { installer } : {}),
      ...(process.env.SOURCE_DATE_EPOCH !== undefined
        ? { sourceDateEpoch: process.env.SOURCE_DATE_EPOCH }
        : {}),
    });
    return { json: result, human: formatBuild(result) };
  },
};

function formatBuild(result: BuildResult): string {
  const from =
    result.supportedFrom.length > 0
      ? `updates from ${result.supportedFrom.join(', ')}`
      : 'installs from nothing';
  return [
    `built ${result.product} ${result.release} (${result.kind}, ${result.format}): ${from}`,
    `  bundle  ${result.bundle}`,
    `  size    ${bytes(result.size)}`,
    `  sha256  ${result.sha256}`,
    `  record  ${result.record}`,
    `  carries payload of ${result.included.length > 0 ? result.included.join(', ') : 'no component'}; ${result.changes} change(s); signed by ${result.keyids.length} key(s)`,
    ...(result.installer
      ? [`  carries ferry-installer ${result.installer.version} (${result.installer.platform})`]
      : []),
    ...(result.minInstaller ? [`  needs Ferry ${result.minInstaller} or newer to install`] : []),
  ].join('\n');
}
