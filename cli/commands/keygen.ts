import { jsonOption, optional, required, type Command } from '../args.js';

export const command: Command = {
  usage: 'ferry keygen --out DIR [--name NAME]',
  summary: 'make an Ed25519 key pair NAME.key / NAME.pub and print its key id',
  options: {
    out: { type: 'string', arg: 'DIR', help: 'the folder the key pair is written to' },
    name: { type: 'string', help: 'the key files are NAME.key and NAME.pub' },
    ...jsonOption,
  },
  async run({ values }) {
    const { keygen } = await import('../../builder/signing.js');
    const result = await keygen(required(values, 'out'), optional(values, 'name'));
    return {
      json: result,
      human: `${result.keyid}\n  private key ${result.privateKey} (keep it off appliances)\n  public key  ${result.publicKey}`,
    };
  },
};
