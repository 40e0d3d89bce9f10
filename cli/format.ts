import type { Failure } from '../installer/engine/events.js';
import type { Plan } from '../installer/plan.js';
import type { KeySummary, RootSummary } from '../builder/trust.js';
import { duration } from '../manifest-schema/durations.js';
import { wrap } from './help.js';

// What more than one command prints: sizes, tables, a plan (by plan, and by install when blocked).

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

/** What failed (component, pass, artifact, status, the tail of its output) and where the log is: install and rollback alike. */
export function formatFailure(failure: Failure | undefined, log: string | undefined): string[] {
  const lines: string[] = [];
  if (failure) {
    const f = failure;
    lines.push(
      `  failed: ${f.component ?? 'the bundle'}, ${f.pass} pass${f.artifact ? `, ${f.artifact}` : ''}: ${f.status}`,
    );
    if (f.tail) lines.push(...f.tail.split('\n').map((line) => `  | ${line}`));
  }
  if (log) lines.push(`  log: ${log}`);
  return lines;
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
  lines.push(`Stages ${bytes(plan.stageBytes)} of payload.`, ...formatEffects(plan));
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

/**
 * How long, which services restart, whether it reboots: said only when some
 * update declares one of them, so plans of bundles that declare none stay as
 * they were.
 */
function formatEffects(plan: Plan): string[] {
  // Only updated components carry the fields (installer/plan.ts).
  const updates = plan.components.filter(
    (c) => c.estimatedSeconds !== undefined || c.restart !== undefined || c.reboot !== undefined,
  );
  if (updates.length === 0) return [];
  const lines = [
    plan.unestimated.length === 0
      ? `Takes about ${duration(plan.estimatedSeconds)}.`
      : `Takes an unknown time: ${plan.unestimated.join(', ')} declare${plan.unestimated.length === 1 ? 's' : ''} no estimate${plan.estimatedSeconds > 0 ? ` (the rest takes about ${duration(plan.estimatedSeconds)})` : ''}.`,
  ];
  if (plan.restart.length > 0) lines.push(`Restarts ${plan.restart.join(', ')}.`);
  if (plan.reboot) lines.push('Needs a reboot.');
  else if (plan.order.every((name) => updates.find((c) => c.name === name)?.reboot === false))
    lines.push('Needs no reboot.');
  return lines.map((line) => wrap(line, '', '  '));
}

/** A trust root for its key holders: roles, and whose signatures it still needs. */
export function formatRoot(summary: RootSummary): string {
  const key = (k: KeySummary) => (k.name ? `${k.name} ${k.keyid}` : k.keyid);
  const lines = [
    `  version ${summary.version}${summary.format === 'first' ? ' (first format)' : ''}, expires ${summary.expires ?? 'never'}`,
  ];
  for (const [name, role] of Object.entries(summary.roles)) {
    lines.push(`  ${name}: ${role.threshold} of ${role.keys.length} must sign`);
    for (const k of role.keys) lines.push(`    ${key(k)}`);
  }
  if (summary.resetHighestRelease !== undefined)
    lines.push(`  resets the highest release committed to ${summary.resetHighestRelease}`);
  for (const s of summary.signatures) {
    lines.push(
      `  signatures by root keys of version ${s.version}: ${s.signed.length} of ${s.threshold} needed${s.met ? ' ✓' : ''}`,
    );
    for (const k of s.signed) lines.push(`    ✓ ${key(k)}`);
    for (const k of s.missing) lines.push(`    · ${key(k)} has not signed`);
  }
  return lines.join('\n');
}
