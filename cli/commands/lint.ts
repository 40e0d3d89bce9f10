import type { CheckOptions, CheckResult } from '../../builder/build.js';
import {
  choice,
  flag,
  jsonOption,
  optional,
  positional,
  type Command,
  type Options,
  type Parsed,
} from '../args.js';

/** The options `lint` and `build` share: what decides the bundle, not how it is signed or written. */
export const checkOptions = {
  kind: {
    type: 'string',
    arg: 'update|install',
    help: 'install when the history is empty, else update, unless given',
  },
  'first-release': {
    type: 'boolean',
    help: "this is the product's first release: its history folder may be missing or empty",
  },
  installer: {
    type: 'string',
    arg: 'FILE',
    help: "the ferry-installer executable to carry, overriding the spec's `installer`",
  },
} as const satisfies Options;

export function checkInput({ values, positionals }: Parsed): CheckOptions {
  const kind = optional(values, 'kind');
  const installer = optional(values, 'installer');
  return {
    spec: positional(positionals, 'SPEC'),
    ...(kind !== undefined ? { kind: choice(kind, ['update', 'install'] as const, 'kind') } : {}),
    ...(flag(values, 'first-release') ? { firstRelease: true } : {}),
    ...(installer !== undefined ? { installer } : {}),
    ...(process.env.SOURCE_DATE_EPOCH !== undefined
      ? { sourceDateEpoch: process.env.SOURCE_DATE_EPOCH }
      : {}),
  };
}

export const command: Command = {
  usage: 'ferry lint SPEC [--kind update|install] [--first-release] [--installer FILE]',
  summary:
    'every check a build makes (spec, history, dependencies, immutability, files), with no key and nothing written',
  options: { ...checkOptions, ...jsonOption },
  async run(args) {
    const { lintSpec } = await import('../../builder/build.js');
    const result = await lintSpec(checkInput(args));
    return { json: result, human: formatLint(result) };
  },
};

export function formatLint(result: CheckResult): string {
  const from =
    result.supportedFrom.length > 0
      ? `updates from ${result.supportedFrom.join(', ')}`
      : 'installs from nothing';
  return [
    `ok: ${result.product} ${result.release} would build as an ${result.kind} bundle: ${from}`,
    `  carries payload of ${result.included.length > 0 ? result.included.join(', ') : 'no component'}; ${result.changes.length} change(s)${result.removed.length > 0 ? `; removes ${result.removed.join(', ')}` : ''}`,
  ].join('\n');
}
