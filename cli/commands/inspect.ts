import type { InspectResult } from '../../installer/inspect.js';
import { jsonOption, optional, positional, type Command } from '../args.js';
import { duration } from '../../manifest-schema/durations.js';
import { bytes, table } from '../format.js';
import { wrap } from '../help.js';

export const command: Command = {
  usage: 'ferry inspect BUNDLE [--trust FILE]',
  summary:
    "show a bundle's metadata (reads nothing else): release, target, changes, components, signature",
  options: {
    trust: { type: 'string', arg: 'FILE', help: 'check the signature against this trust root' },
    ...jsonOption,
  },
  async run({ values, positionals }) {
    const { inspectBundle } = await import('../../installer/inspect.js');
    const result = await inspectBundle(
      positional(positionals, 'BUNDLE'),
      optional(values, 'trust'),
    );
    // An untrusted bundle never gets here: inspectBundle refuses it with its code.
    const { file, ...rest } = result;
    return { json: { bundle: file, ...rest }, human: formatInspect(result) };
  },
};

function formatInspect(result: InspectResult): string {
  const signature =
    result.signature.valid === null
      ? `not checked (signed by ${result.signature.keyids.length} key(s); pass --trust FILE to check)`
      : `valid: ${result.signature.keyids.length} trusted key(s), threshold ${result.signature.threshold}`;
  const lines = [
    `${result.product} ${result.release} (${result.kind} bundle, ${result.format}, ${bytes(result.size)})`,
    `  created    ${result.createdAt}`,
    ...(result.expires === undefined
      ? []
      : [
          result.expired
            ? `  expires    ${result.expires}: EXPIRED, appliances refuse to install it`
            : `  expires    ${result.expires}`,
        ]),
    `  platform   ${result.platform.name} ${result.platform.range}`,
    `  updates    ${result.supportedFrom.length > 0 ? `from ${result.supportedFrom.join(', ')}` : 'from nothing (install bundle)'}`,
    `  signature  ${signature}`,
  ];
  if (result.minInstaller) lines.push(`  needs      Ferry ${result.minInstaller} or newer`);
  if (result.installer)
    lines.push(
      `  carries    ferry-installer ${result.installer.version} (${result.installer.platform}, ${bytes(result.installer.size)})`,
    );
  if (result.notes)
    lines.push(
      '',
      ...result.notes
        .trimEnd()
        .split('\n')
        .map((line) => `  ${line}`),
    );
  lines.push('', 'Components (dependency order):');
  lines.push(
    table([
      ['name', 'version', 'payload', 'size', 'requires'],
      ...result.components.map((c) => [
        c.name,
        c.version,
        c.payload,
        c.payload === 'unchanged' ? '-' : bytes(c.payloadBytes),
        Object.entries(c.requires)
          .map(([dep, range]) => `${dep} ${range}`)
          .join(', ') || '-',
      ]),
    ]),
  );
  for (const c of result.components) {
    const said = [
      ...(c.estimatedSeconds !== undefined ? [`takes about ${duration(c.estimatedSeconds)}`] : []),
      ...(c.restart !== undefined ? [`restarts ${c.restart.join(', ') || 'nothing'}`] : []),
      ...(c.reboot !== undefined ? [c.reboot ? 'needs a reboot' : 'needs no reboot'] : []),
    ];
    if (said.length > 0) lines.push(wrap(`${c.name}: ${said.join('; ')}`, '  ', '    '));
  }
  if (result.removed.length > 0) lines.push(`  removed: ${result.removed.join(', ')}`);
  lines.push('', `Changes (${result.changes.length}):`);
  let component = '';
  for (const change of result.changes) {
    if (change.component !== component) {
      component = change.component;
      lines.push(`  ${component}`);
    }
    lines.push(
      `    ${change.version.padEnd(8)} ${change.kind.padEnd(6)} ${change.id}: ${change.summary}`,
    );
  }
  if (result.changes.length === 0) lines.push('  none');
  lines.push(
    '',
    `payload carried: ${bytes(result.payloadBytes)}; read ${bytes(result.bytesRead)} of the bundle`,
  );
  return lines.join('\n');
}
