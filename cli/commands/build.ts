import type { BuildResult } from '../../builder/build.js';
import type { BundleFormat } from '../../builder/write.js';
import {
  choice,
  date,
  flag,
  jsonOption,
  optional,
  required,
  signingInput,
  signingOptions,
  type Command,
} from '../args.js';
import { bytes } from '../format.js';
import { meterOf } from '../progress.js';
import { checkInput, checkOptions, formatLint } from './lint.js';

const BUNDLE_FORMATS: readonly BundleFormat[] = ['tar', 'tar.gz', 'zip'];

export const command: Command = {
  usage:
    'ferry build SPEC --out DIR (--key KEY... | --signer COMMAND... [--signer-key PUB...]) [--format tar|tar.gz|zip] [--kind update|install] [--first-release] [--trust-chain DIR] [--expires DATE [--allow-expired]] [--installer FILE] [--dry-run]',
  summary: 'build and sign a bundle from a release spec, and write its release record',
  options: {
    out: { type: 'string', arg: 'DIR', help: 'the folder the bundle is written to' },
    ...signingOptions,
    format: { type: 'string', arg: 'tar|tar.gz|zip', help: 'the archive format (default tar)' },
    ...checkOptions,
    'trust-chain': {
      type: 'string',
      arg: 'DIR',
      help: 'a folder of trust roots root-N.json to carry, so appliances rotate to the newest',
    },
    expires: {
      type: 'string',
      arg: 'DATE',
      help: 'when appliances stop accepting the bundle (a date already past is refused)',
    },
    'allow-expired': {
      type: 'boolean',
      help: 'accept an --expires already past, to reproduce an earlier bundle byte for byte',
    },
    'dry-run': {
      type: 'boolean',
      help: 'check everything, as `ferry lint` does: no key needed, nothing written',
    },
    ...jsonOption,
  },
  async run(args) {
    const { values } = args;
    const { buildBundle, lintSpec, refusePastExpiry } = await import('../../builder/build.js');
    const expires = optional(values, 'expires');
    const allowExpired = flag(values, 'allow-expired');
    if (flag(values, 'dry-run')) {
      // A dry run that passes must not hide what refuses the build itself.
      if (expires !== undefined && !allowExpired) refusePastExpiry(date(expires, 'expires'));
      const result = await lintSpec(checkInput(args));
      return { json: result, human: formatLint(result) };
    }
    const format = choice(optional(values, 'format') ?? 'tar', BUNDLE_FORMATS, 'format');
    const trustChain = optional(values, 'trust-chain');
    const progress = meterOf('build: read');
    const result = await buildBundle({
      ...checkInput(args),
      onProgress: progress.onProgress,
      out: required(values, 'out'),
      ...signingInput(values),
      format,
      ...(trustChain !== undefined ? { trustChain } : {}),
      ...(expires !== undefined ? { expires: date(expires, 'expires') } : {}),
      allowExpired,
    });
    progress.done();
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
    `  carries payload of ${result.included.length > 0 ? result.included.join(', ') : 'no component'}; ${result.changes.length} change(s); signed by ${result.keyids.length} key(s)`,
    ...(result.installer
      ? [`  carries ferry-installer ${result.installer.version} (${result.installer.platform})`]
      : []),
    ...(result.minInstaller ? [`  needs Ferry ${result.minInstaller} or newer to install`] : []),
  ].join('\n');
}
