import {
  date,
  integer,
  jsonOption,
  list,
  optional,
  required,
  usageError,
  type Command,
  type CommandResult,
  type Values,
} from '../args.js';
import { formatRoot } from '../format.js';

const TUF_OPTIONS = [
  'root-key',
  'root-threshold',
  'targets-key',
  'targets-threshold',
  'expires',
  'sign-with',
];

export const command: Command = {
  usage:
    'ferry trust init --root-key PUB... [--root-threshold K] --targets-key PUB... [--targets-threshold K] --expires DATE [--sign-with KEY...] --out FILE | --key PUB... [--threshold K] --out FILE',
  summary:
    'write version 1 of a trust root: root keys sign the next root, targets keys sign bundles (--key: the first format, one set of keys for both)',
  options: {
    'root-key': {
      type: 'string',
      multiple: true,
      arg: 'PUB',
      help: 'a public key that signs the next trust root',
    },
    'root-threshold': {
      type: 'string',
      arg: 'K',
      help: 'how many root keys must sign the next root (default 1)',
    },
    'targets-key': {
      type: 'string',
      multiple: true,
      arg: 'PUB',
      help: 'a public key that signs bundles',
    },
    'targets-threshold': {
      type: 'string',
      arg: 'K',
      help: 'how many targets keys must sign a bundle (default 1)',
    },
    expires: { type: 'string', arg: 'DATE', help: 'when appliances stop accepting this root' },
    'sign-with': {
      type: 'string',
      multiple: true,
      arg: 'KEY',
      help: 'a private root key to sign the root with: a file, env:VAR or - (stdin)',
    },
    key: {
      type: 'string',
      multiple: true,
      arg: 'PUB',
      help: 'a public key file to trust (the first format)',
    },
    threshold: {
      type: 'string',
      arg: 'K',
      help: 'how many of the keys must sign a bundle (default 1; the first format)',
    },
    out: { type: 'string', arg: 'FILE', help: 'the trust root file to write' },
    ...jsonOption,
  },
  async run({ values }) {
    const out = required(values, 'out');
    if (values.key !== undefined || values.threshold !== undefined) return firstFormat(values, out);
    const threshold = (name: string) => integer(optional(values, name) ?? '1', name);
    const { trustRootInit } = await import('../../builder/trust.js');
    const summary = await trustRootInit({
      rootKeys: list(values, 'root-key'),
      rootThreshold: threshold('root-threshold'),
      targetsKeys: list(values, 'targets-key'),
      targetsThreshold: threshold('targets-threshold'),
      expires: date(required(values, 'expires'), 'expires'),
      signWith: list(values, 'sign-with'),
      out,
    });
    return { json: { trust: out, ...summary }, human: `wrote ${out}\n${formatRoot(summary)}` };
  },
};

/** `--key`: the first format, one set of keys and a threshold, which never expires. */
async function firstFormat(values: Values, out: string): Promise<CommandResult> {
  const mixed = TUF_OPTIONS.find((name) => values[name] !== undefined);
  if (mixed !== undefined) {
    throw usageError(
      `--key makes a trust root of the first format, which has no --${mixed}`,
      'use --root-key and --targets-key for a TUF root, or --key alone',
    );
  }
  const threshold = integer(optional(values, 'threshold') ?? '1', 'threshold');
  const { trustInit } = await import('../../builder/signing.js');
  const root = await trustInit(list(values, 'key'), threshold, out);
  const ids = root.keys.map((key) => key.keyid);
  return {
    json: { trust: out, threshold: root.threshold, keyids: ids },
    human: `wrote ${out}: ${root.threshold} of ${ids.length} key(s) must sign\n${ids.map((id) => `  ${id}`).join('\n')}`,
  };
}
