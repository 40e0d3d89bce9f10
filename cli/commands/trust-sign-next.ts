import { date, integer, jsonOption, list, optional, required, type Command } from '../args.js';
import { formatRoot } from '../format.js';

export const command: Command = {
  usage:
    'ferry trust sign-next --previous FILE [--add-root-key PUB...] [--revoke-root-key ID...] [--root-threshold K] [--add-targets-key PUB...] [--revoke-targets-key ID...] [--targets-threshold K] [--reset-highest-release VERSION] --expires DATE [--sign-with KEY...] --out FILE',
  summary:
    'write trust root version N+1 from version N: add or revoke keys, change thresholds; signed by --sign-with, or later with `trust sign`',
  options: {
    previous: { type: 'string' },
    'add-root-key': { type: 'string', multiple: true },
    'revoke-root-key': { type: 'string', multiple: true },
    'root-threshold': { type: 'string' },
    'add-targets-key': { type: 'string', multiple: true },
    'revoke-targets-key': { type: 'string', multiple: true },
    'targets-threshold': { type: 'string' },
    'reset-highest-release': { type: 'string' },
    expires: { type: 'string' },
    'sign-with': { type: 'string', multiple: true },
    out: { type: 'string' },
    ...jsonOption,
  },
  async run({ values }) {
    const rootThreshold = optional(values, 'root-threshold');
    const targetsThreshold = optional(values, 'targets-threshold');
    const reset = optional(values, 'reset-highest-release');
    const out = required(values, 'out');
    const { trustSignNext } = await import('../../builder/trust.js');
    const summary = await trustSignNext({
      previous: required(values, 'previous'),
      addRoot: list(values, 'add-root-key'),
      revokeRoot: list(values, 'revoke-root-key'),
      addTargets: list(values, 'add-targets-key'),
      revokeTargets: list(values, 'revoke-targets-key'),
      ...(rootThreshold !== undefined
        ? { rootThreshold: integer(rootThreshold, 'root-threshold') }
        : {}),
      ...(targetsThreshold !== undefined
        ? { targetsThreshold: integer(targetsThreshold, 'targets-threshold') }
        : {}),
      ...(reset !== undefined ? { resetHighestRelease: reset } : {}),
      expires: date(required(values, 'expires'), 'expires'),
      signWith: list(values, 'sign-with'),
      out,
    });
    return { json: { trust: out, ...summary }, human: `wrote ${out}\n${formatRoot(summary)}` };
  },
};
