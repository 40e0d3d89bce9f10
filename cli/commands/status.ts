import type { StatusResult } from '../../installer/status.js';
import { flag, jsonOption, optional, type Command, root, rootOption } from '../args.js';
import { table } from '../format.js';

export const command: Command = {
  usage: 'ferry status [--root R] [--verify] [--export FILE]',
  summary:
    'the installed release, components and last transactions; --verify checks every installed file; --export writes the facts to plan against elsewhere',
  options: {
    ...rootOption,
    export: {
      type: 'string',
      arg: 'FILE',
      help: "write the appliance's facts, for `ferry plan --state` elsewhere",
    },
    verify: { type: 'boolean', help: 'check every installed file against its recorded hash' },
    ...jsonOption,
  },
  async run({ values }) {
    const { applianceStatus } = await import('../../installer/status.js');
    const file = optional(values, 'export');
    const result = await applianceStatus(root(values), {
      verify: flag(values, 'verify'),
      ...(file !== undefined ? { exportTo: file } : {}),
    });
    const problems = result.problems;
    return {
      json: result,
      human: formatStatus(result),
      exitCode: problems && problems.length > 0 ? 1 : 0,
    };
  },
};

function formatStatus(status: StatusResult): string {
  const lines = [
    `${status.product} on ${status.platform.name} ${status.platform.version}`,
    `  release   ${status.release ?? '(none installed)'}${status.release && !status.verified ? ' (NOT a verified release: a partial install or drift)' : ''}`,
    `  highest   ${status.highestRelease ?? '-'} (older bundles are refused)`,
    `  trust     root version ${status.trust.version}, expires ${status.trust.expires ?? 'never'}${status.trust.revoked.length > 0 ? `; ${status.trust.revoked.length} targets key(s) revoked` : ''}`,
  ];
  const open = status.open;
  if (open) {
    const what = `${open.operation} ${open.from ?? '(empty)'} → ${open.to ?? '(empty)'} (transaction ${open.id}, pid ${open.pid}, since ${open.startedAt}, ${open.steps} step(s) made)`;
    lines.push(
      '',
      open.running
        ? `UNDER WAY: ${what}`
        : `INTERRUPTED: ${what}. The next install or rollback, or \`ferry recover\`, ${open.recovery === 'roll-forward' ? 'finishes it: it was committed' : `rolls it back to ${open.from ?? '(empty)'}`}.`,
    );
  }
  const names = Object.keys(status.components);
  if (names.length > 0) {
    lines.push(
      '',
      table([
        ['component', 'version'],
        ...names.map((name) => [name, status.components[name] ?? '']),
      ]),
    );
  }
  if (status.transactions.length > 0) {
    lines.push('', 'Last transactions:');
    for (const t of status.transactions) {
      const failure = t.failure
        ? ` (${t.failure.component ?? 'bundle'} ${t.failure.pass}: ${t.failure.status})`
        : '';
      lines.push(
        `  ${t.at}  ${t.operation} ${t.from ?? '(empty)'} → ${t.to ?? '(empty)'}: ${t.outcome}${failure}`,
      );
    }
  }
  for (const line of status.tornHistoryLines ?? [])
    lines.push(
      `  (history.jsonl line ${line} was cut short, by a power cut while it was written: skipped)`,
    );
  if (status.problems) {
    lines.push(
      '',
      status.problems.length === 0
        ? 'Every installed file matches its recorded hash.'
        : `${status.problems.length} installed file(s) differ:`,
    );
    for (const p of status.problems) lines.push(`  ${p.component}: ${p.path} ${p.problem}`);
  }
  if (status.exported) lines.push('', `exported to ${status.exported}`);
  return lines.join('\n');
}
