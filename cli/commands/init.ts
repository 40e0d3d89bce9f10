import { jsonOption, optional, required, type Command, root, rootOption } from '../args.js';

export const command: Command = {
  usage:
    'ferry init [--root R] --product P --platform NAME@VERSION --trust FILE [--default-location DIR]',
  summary: 'provision an empty appliance under R',
  options: {
    ...rootOption,
    product: { type: 'string', arg: 'P', help: 'the product this appliance runs' },
    platform: {
      type: 'string',
      arg: 'NAME@VERSION',
      help: 'the operating system the appliance runs on',
    },
    trust: { type: 'string', arg: 'FILE', help: 'the trust root bundles are checked against' },
    'default-location': {
      type: 'string',
      arg: 'DIR',
      help: 'where payload that bundles do not carry is found',
    },
    ...jsonOption,
  },
  async run({ values }) {
    const { initAppliance } = await import('../../installer/appliance.js');
    const location = optional(values, 'default-location');
    const appliance = await initAppliance({
      root: root(values),
      product: required(values, 'product'),
      platform: required(values, 'platform'),
      trust: required(values, 'trust'),
      ...(location !== undefined ? { defaultPayloadLocation: location } : {}),
    });
    const { config, paths, trust } = appliance;
    return {
      json: {
        root: paths.root,
        product: config.product,
        platform: config.platform,
        trustVersion: trust.version,
        keyids: trust.roles.targets.keyids,
      },
      human: `provisioned ${config.product} on ${config.platform.name} ${config.platform.version} at ${paths.root}\n  settings ${paths.config}\n  trust    ${paths.trust} (version ${trust.version}: ${trust.roles.targets.threshold} of ${trust.roles.targets.keyids.length} targets key(s) sign a bundle)`,
    };
  },
};
