import { date, integer, jsonOption, list, optional, required, type Command } from '../args.js';
import { formatRoot } from '../format.js';

export const command: Command = {
  usage:
    'ferry trust sign-next --previous FILE [--add-root-key PUB...] [--revoke-root-key ID...] [--root-threshold K] [--add-targets-key PUB...] [--revoke-targets-key ID...] [--targets-threshold K] [--reset-highest-release VERSION] --expires DATE [--sign-with KEY...] --out FILE',
  summary:
    'write trust root version N+1 from version N: add or revoke keys, change thresholds; signed by --sign-with, or later with `trust sign`',
  options: {
    previous: { type: 'string', arg: 'FILE', help: 'trust root version N, the one to follow' },
    'add-root-key': {
      type: 'string',
      multiple: true,
      arg: 'PUB',
      help: 'a public key to add to the root keys',
    },
    'revoke-root-key': {
      type: 'string',
      multiple: true,
      arg: 'ID',
      help: 'the keyid (or name) of a root key to remove',
    },
    'root-threshold': {
      type: 'string',
      arg: 'K',
      help: 'how many root keys must sign the next root (default: unchanged)',
    },
    'add-targets-key': {
      type: 'string',
      multiple: true,
      arg: 'PUB',
      help: 'a public key to add to the targets keys',
    },
    'revoke-targets-key': {
      type: 'string',
      multiple: true,
      arg: 'ID',
      help: 'the keyid (or name) of a targets key to remove',
    },
    'targets-threshold': {
      type: 'string',
      arg: 'K',
      help: 'how many targets keys must sign a bundle (default: unchanged)',
    },
    'reset-highest-release': {
      type: 'string',
      arg: 'VERSION',
      help: 'the highest release appliances reset to when they walk to this root',
    },
    expires: { type: 'string', arg: 'DATE', help: 'when appliances stop accepting this root' },
    'sign-with': {
      type: 'string',
      multiple: true,
      arg: 'KEY',
      help: 'a private root key to sign with: a file, env:VAR or - (stdin)',
    },
    out: { type: 'string', arg: 'FILE', help: 'the trust root file to write' },
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
