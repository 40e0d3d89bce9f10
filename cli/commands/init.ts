import { jsonOption, optional, required, type Command } from '../args.js';

export const command: Command = {
  usage:
    'ferry init --root R --product P --platform NAME@VERSION --trust FILE [--default-location DIR]',
  summary: 'provision an empty appliance under R',
  options: {
    root: { type: 'string' },
    product: { type: 'string' },
    platform: { type: 'string' },
    trust: { type: 'string' },
    'default-location': { type: 'string' },
    ...jsonOption,
  },
  async run({ values }) {
    const { initAppliance } = await import('../../installer/appliance.js');
    const location = optional(values, 'default-location');
    const appliance = await initAppliance({
      root: required(values, 'root'),
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
        trustKeyids: trust.roles.targets.keyids,
      },
      human: `provisioned ${config.product} on ${config.platform.name} ${config.platform.version} at ${paths.root}\n  settings ${paths.config}\n  trust    ${paths.trust} (version ${trust.version}: ${trust.roles.targets.threshold} of ${trust.roles.targets.keyids.length} targets key(s) sign a bundle)`,
    };
  },
};
