import type { BuildResult } from '../builder/build.js';
import type { InspectResult } from '../installer/inspect.js';
import type { InstallEvent, InstallResult } from '../installer/engine/events.js';
import type { Plan } from '../installer/plan.js';
import type { StatusResult } from '../installer/status.js';
import type { VerifyResult } from '../bundle/verify.js';

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function table(rows: string[][], indent = '  '): string {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map(
      (row) =>
        indent +
        row
          .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
          .join('  '),
    )
    .join('\n');
}

export function formatBuild(result: BuildResult): string {
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
    `  carries payload of ${result.included.length > 0 ? result.included.join(', ') : 'no component'}; ${result.changes} change(s); signed by ${result.keyids.length} key(s)`,
  ].join('\n');
}

export function formatInspect(result: InspectResult): string {
  const signature =
    result.signature.valid === null
      ? `not checked (signed by ${result.signature.keyids.length} key(s); pass --trust FILE to check)`
      : result.signature.valid
        ? `valid: ${result.signature.keyids.length} trusted key(s), threshold ${result.signature.threshold}`
        : `INVALID: ${(result.signature.problems ?? []).join('; ') || 'below threshold'}`;
  const lines = [
    `${result.product} ${result.release} (${result.kind} bundle, ${result.format}, ${bytes(result.size)})`,
    `  created    ${result.createdAt}`,
    `  platform   ${result.platform.name} ${result.platform.range}`,
    `  updates    ${result.supportedFrom.length > 0 ? `from ${result.supportedFrom.join(', ')}` : 'from nothing (install bundle)'}`,
    `  signature  ${signature}`,
  ];
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

export function formatVerify(result: VerifyResult): string {
  return [
    `verified ${result.file}: ${result.product} ${result.release} (${result.kind})`,
    `  signature valid: ${result.signature.keyids.length} trusted key(s), threshold ${result.signature.threshold}`,
    `  ${result.entries} entries, ${bytes(result.bytes)} checked against their signed sha256`,
  ].join('\n');
}

export function formatPlan(plan: Plan): string {
  const lines = [
    `${plan.product} ${plan.from ?? '(empty)'} → ${plan.to} (${plan.kind} bundle): ${plan.verdict === 'ok' ? (plan.partial ? 'READY, PARTIAL' : 'READY') : 'BLOCKED'}`,
  ];
  for (const reason of plan.reasons) lines.push(`  ✗ ${reason.code}: ${reason.message}`);
  lines.push('');
  lines.push(
    table([
      ['component', 'action', 'from', 'to', 'why'],
      ...plan.components.map((c) => [
        c.name,
        c.action === 'error' ? 'ERROR' : c.action,
        c.from ?? '-',
        c.to ?? '-',
        c.reasons
          .map((r) => (r.code.startsWith('E_') ? `${r.code}: ${r.message}` : r.message))
          .join('; '),
      ]),
    ]),
  );
  lines.push('', `Order: ${plan.order.length > 0 ? plan.order.join(', ') : 'nothing to do'}`);
  lines.push(`Stages ${bytes(plan.stageBytes)} of payload.`);
  if (plan.changes.length > 0) {
    lines.push('', `Changes you get (${plan.changes.length}):`);
    for (const change of plan.changes)
      lines.push(
        `  ${change.component} ${change.version} ${change.kind} ${change.id}: ${change.summary}`,
      );
  }
  if (plan.partial)
    lines.push(
      '',
      'With --partial the components in error are left as they are; the appliance will not be at a verified release.',
    );
  if (plan.verdict === 'blocked')
    lines.push(
      '',
      'Nothing will be changed. Fix the errors above, or use --force/--skip/--delete on purpose.',
    );
  return lines.join('\n');
}

export function formatStatus(status: StatusResult): string {
  const lines = [
    `${status.product} on ${status.platform.name} ${status.platform.version}`,
    `  release   ${status.release ?? '(none installed)'}${status.release && !status.verified ? ' (NOT a verified release: a partial install or drift)' : ''}`,
    `  highest   ${status.highestRelease ?? '-'} (older bundles are refused)`,
  ];
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
        `  ${t.at}  ${t.operation} ${t.from ?? '(empty)'} → ${t.to ?? '?'}: ${t.outcome}${failure}`,
      );
    }
  }
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

/** One plain line per engine event for a person (no TTY tricks): what the log of a CI job shows. */
export function formatEvent(event: InstallEvent): string | null {
  switch (event.type) {
    case 'plan':
    case 'begin':
      return null;
    case 'warning':
      return `warning: ${event.message}`;
    case 'pass':
      return event.status === 'start' ? `== ${event.pass}` : null;
    case 'step':
      if (event.status === 'start') return `   ${event.component}: ${event.detail ?? event.pass}…`;
      if (event.status === 'failed') return `   ${event.component}: FAILED ${event.detail ?? ''}`;
      return null;
    case 'output':
      return null;
    case 'progress':
      return null;
    case 'result':
      return null;
  }
}

export function formatInstall(result: InstallResult): string {
  const { plan } = result;
  const lines: string[] = [];
  if (result.outcome === 'committed') {
    lines.push(
      `COMMITTED: ${plan.product} is at ${plan.to}${plan.reachesTarget ? '' : ' (not a verified release: components were skipped, deleted or left out)'}`,
    );
  } else if (result.outcome === 'rolled-back') {
    lines.push(
      `ROLLED BACK: ${plan.product} is still at ${plan.from ?? '(empty)'}; everything was undone`,
    );
  } else if (plan.verdict === 'blocked') {
    lines.push(formatPlan(plan), '', 'UNCHANGED: the plan is blocked; nothing was changed');
  } else if (result.failure) {
    lines.push(
      `UNCHANGED: ${plan.product} is still at ${plan.from ?? '(empty)'}; nothing was changed`,
    );
  } else {
    lines.push(`UNCHANGED: ${plan.product} is already at ${plan.to}; nothing to do`);
  }
  if (result.failure) {
    const f = result.failure;
    lines.push(
      `  failed: ${f.component ?? 'the bundle'}, ${f.pass} pass${f.artifact ? `, ${f.artifact}` : ''}: ${f.status}`,
    );
    if (f.tail) lines.push(...f.tail.split('\n').map((line) => `  | ${line}`));
  }
  if (result.log) lines.push(`  log: ${result.log}`);
  return lines.join('\n');
}
