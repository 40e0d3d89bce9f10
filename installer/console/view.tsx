import { Box, Text } from 'ink';
import { duration } from '../../manifest-schema/index.js';
import {
  failedRollbackSummary,
  rolledBackSummary,
  unchangedRollbackSummary,
  type Failure,
} from '../engine/events.js';
import type { ComponentPlan, Plan } from '../plan.js';
import {
  blockedBy,
  changesByComponent,
  choosable,
  logOf,
  PASS_ORDER,
  rollbackOffered,
  secondsLeft,
  standing,
  type Candidate,
  type ConsoleState,
  type PassState,
} from './model.js';

/**
 * The console's screens: a projection of ConsoleState, nothing more. Each
 * screen is a fixed top (what the appliance is, which bundle, the verdict),
 * a long part that scrolls inside the rows left, and a fixed bottom (notices,
 * prompts) above a footer of keys. Rows are wrapped here, not by the
 * terminal, so that the count of rows is known and nothing is cut unseen.
 */

export interface Size {
  columns: number;
  /** Infinity when the screen has no height to fit (a test's frame). */
  rows: number;
}

export interface Line {
  text: string;
  color?: string;
  bold?: boolean;
  inverse?: boolean;
  /** Where wrapped rows of this line start. */
  indent?: number;
  /** Put before every row of this line, wrapped ones included. */
  quote?: string;
}

export interface Layout {
  top: Line[];
  body: Line[];
  bottom: Line[];
  footer: Line;
  /** The body's rows on screen, and the first of them. */
  bodyRows: number;
  offset: number;
  maxOffset: number;
}

const UNBOUNDED: Size = { columns: 100, rows: Infinity };

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function bar(fraction: number, width = 30): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

const length = (text: string): number => [...text].length;

/**
 * One row's text: a line feed in it shown as `\u000a`, as printable() shows
 * the other controls. File names (anyone who can write a stick names them)
 * and the rows of the fixed top may hold none: the top would grow past the
 * rows the layout counted, and a name could print a line of its own, such as
 * a false "✔ COMMITTED".
 */
export function oneRow(text: string): string {
  return text.replaceAll('\n', '\\u000a');
}

/** Cut to the width, with … where something was cut. */
function fit(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, Math.max(0, width - 1)).join('')}…`;
}

/** Cut from the left (for paths, whose end names the file), with … where something was cut. */
function fitLeft(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `…${chars.slice(chars.length - width + 1).join('')}`;
}

/**
 * A line as rows of the width: its own line breaks kept, broken at spaces
 * where it can be, the rest indented (by 2 at least after a line break of its
 * own, so that no text in a line, a message naming a file, passes for a line
 * of the screen's).
 */
export function wrap(line: Line, width: number): Line[] {
  const { quote, ...rest } = line;
  if (quote !== undefined)
    return wrap(rest, Math.max(1, width - length(quote))).map((row) => ({
      ...row,
      text: `${quote}${row.text}`,
    }));
  const own = line.text.includes('\n') ? 2 : 0;
  const indent = Math.min(Math.max(line.indent ?? 0, own), Math.floor(width / 2));
  const rows: Line[] = [];
  let first = true;
  for (const part of line.text.split('\n')) {
    let rest = [...part];
    let start = true;
    while (start || rest.length > 0) {
      const room = first ? width : width - indent;
      let take = rest.length;
      if (rest.length > room) {
        const space = rest.lastIndexOf(' ', room);
        take = space > room / 3 ? space : room;
      }
      const text = rest.slice(0, take).join('').trimEnd();
      rows.push({ ...line, text: first ? text : `${' '.repeat(indent)}${text}` });
      rest = rest.slice(take);
      while (rest[0] === ' ') rest = rest.slice(1);
      first = false;
      start = false;
    }
  }
  return rows;
}

const ACTION_COLOR: Record<string, string> = {
  install: 'green',
  upgrade: 'green',
  downgrade: 'yellow',
  reinstall: 'yellow',
  remove: 'yellow',
  keep: 'gray',
  skip: 'gray',
  error: 'red',
};

/**
 * A row's reason, without what the from and to columns already say: an
 * upgrade or a kept version needs no words, the others keep the planner's.
 */
function reasonInWords(component: ComponentPlan, release: string): string {
  const errors = component.reasons.filter((r) => r.code.startsWith('E_'));
  if (errors.length > 0) return errors.map((r) => r.message).join('; ');
  return component.reasons
    .map((r) =>
      r.code === 'NEWER' || r.code === 'SAME'
        ? ''
        : r.code === 'NEW'
          ? 'new on this appliance'
          : r.code === 'DROPPED'
            ? `not in release ${release}`
            : r.message,
    )
    .filter((text) => text !== '')
    .join('; ');
}

/** What one update declares it costs; a bundle need not declare any of it. */
function costWords({ estimatedSeconds, restart, reboot }: ComponentPlan): string[] {
  return [
    ...(estimatedSeconds !== undefined ? [`about ${duration(estimatedSeconds)}`] : []),
    ...(restart && restart.length > 0 ? [`restarts ${restart.join(', ')}`] : []),
    ...(reboot ? ['needs a reboot'] : []),
  ];
}

/**
 * What the whole plan costs, said only when some update declares something
 * (as ferry plan does), so plans of bundles that declare nothing stay as they
 * were. A total that leaves out undeclared updates would read as a promise:
 * the time is then unknown, and who declared none is named.
 */
function planCostWords(plan: Plan): string[] {
  const declared = plan.components.some(
    (c) => c.estimatedSeconds !== undefined || c.restart !== undefined || c.reboot !== undefined,
  );
  if (!declared) return [];
  const { estimatedSeconds, unestimated, restart, reboot } = plan;
  return [
    unestimated.length === 0
      ? `about ${duration(estimatedSeconds)}`
      : `time unknown: no estimate from ${unestimated.join(', ')}${estimatedSeconds > 0 ? ` (the rest about ${duration(estimatedSeconds)})` : ''}`,
    ...(restart.length > 0 ? [`restarts ${restart.join(', ')}`] : []),
    ...(reboot ? ['needs a reboot'] : []),
  ];
}

/**
 * The plan's rows. Of a blocked plan, nothing will happen: the blocked rows
 * say why, the others are greyed as held back, never drawn as if they would
 * run.
 */
function planRows(plan: Plan, release: string): Line[] {
  const width = Math.min(20, Math.max(9, ...plan.components.map((c) => length(c.name))));
  const blocked = plan.verdict === 'blocked';
  const held = plan.components.some((c) => c.action === 'error')
    ? `held back: ${plan.components
        .filter((c) => c.action === 'error')
        .map((c) => c.name)
        .join(', ')} blocked`
    : 'held back: the bundle cannot be applied';
  return plan.components.map((c) => {
    const action = c.action === 'error' ? 'BLOCKED' : blocked ? `(${c.action})` : c.action;
    const versions = `${c.from ?? '-'} → ${c.to ?? '-'}`;
    const why = [
      c.action !== 'error' && blocked ? held : reasonInWords(c, release),
      ...(blocked ? [] : costWords(c)),
    ]
      .filter((text) => text !== '')
      .join('; ');
    const lead = `  ${fit(c.name, width).padEnd(width)} ${action.padEnd(9)} ${versions.padEnd(17)} `;
    return {
      text: `${lead}${why}`.trimEnd(),
      color: c.action === 'error' ? 'red' : blocked ? 'gray' : (ACTION_COLOR[c.action] ?? 'white'),
      indent: length(lead),
    };
  });
}

function signatureLine(candidate: Candidate): Line {
  const signed = candidate.signature;
  if (!signed)
    return {
      text: `Signature: not checked: ${candidate.problem?.message ?? 'unknown'}`,
      color: 'red',
    };
  const keys = signed.keys
    .map((k) => `${k.keyid.slice(0, 16)}${k.name ? ` (${k.name})` : ''}`)
    .join(', ');
  const root =
    signed.walkedFrom === null
      ? `trust root version ${signed.rootVersion}`
      : `trust root version ${signed.rootVersion}, walked from version ${signed.walkedFrom}`;
  return {
    text: `Signed by ${signed.keys.length === 1 ? 'key' : 'keys'} ${keys} (${signed.keys.length} of ${signed.threshold} needed; ${root})`,
    indent: 2,
  };
}

/**
 * A bundle's release notes: signed by its publisher, line feeds kept. Every
 * row is quoted behind a bar that no row of the console's own starts with,
 * so that no line of the notes ("✔ COMMITTED: …") passes for one of Ferry's.
 */
function notesLines(notes: string): Line[] {
  return [
    { text: 'Notes:' },
    ...notes.split('\n').map((text) => ({ text, quote: NOTES_QUOTE, color: 'gray' })),
  ];
}

export const NOTES_QUOTE = '  │ ';

/** Which of the found bundles is on screen, and its file. */
function position(index: number, candidates: readonly Candidate[], size: Size): Line {
  const at = `  bundle ${index + 1} of ${candidates.length}: `;
  const file = oneRow(candidates[index]?.file ?? '');
  return { text: `${at}${fitLeft(file, size.columns - length(at))}`, color: 'gray' };
}

/**
 * A bundle for a newer Ferry: not planned here (this Ferry may misread it),
 * so no plan rows; what Enter does about it, or why it can do nothing.
 */
function needsNewer(candidate: Candidate): Line[] {
  const { needs } = candidate;
  const lines: Line[] = [];
  if (candidate.notes) lines.push(...notesLines(candidate.notes));
  lines.push(signatureLine(candidate), { text: '' });
  if (needs?.carried)
    lines.push({
      text: `It carries Ferry ${needs.carried}. Enter checks that installer against the bundle's signature, copies it to the appliance and hands over to it: its console shows the plan, and Enter there applies.`,
    });
  else
    lines.push(
      {
        text: `✘ ${candidate.problem?.code}: ${candidate.problem?.message}`,
        color: 'red',
        indent: 2,
      },
      { text: `What to do: ${needs?.hint}`, indent: 2 },
    );
  return lines;
}

function chooseParts(state: ConsoleState, size: Size): Pick<Layout, 'top' | 'body'> {
  const index = state.chosen;
  const candidate = index === null ? undefined : state.candidates[index];
  const plan = candidate?.plan;
  const top: Line[] = [];
  const body: Line[] = [];
  if (!candidate || !choosable(candidate)) {
    top.push({
      text:
        state.candidates.length === 0
          ? 'No bundle found on the attached media.'
          : 'No bundle found that this appliance can read and trust.',
      color: 'yellow',
      bold: true,
    });
    body.push(
      {
        text: 'Attach a USB stick or DVD with a bundle: the console looks again when media are mounted or a bundle appears in these folders, or when you press r.',
        color: 'yellow',
        indent: 2,
      },
      { text: '' },
      { text: 'Searched:', bold: true },
      ...state.searched.map((s) => ({
        text: `  ${s.folder}${s.present ? '' : ' (not there)'}`,
        indent: 4,
        ...(s.present ? {} : { color: 'gray' }),
      })),
    );
  } else if (!plan) {
    const what = `${candidate.product} ${candidate.release} (${candidate.kind})`;
    const carried = Boolean(candidate.needs?.carried);
    top.push(
      {
        text: `${carried ? '▲' : '✘'} Bundle found, but it needs Ferry ${candidate.needs?.version} or newer: ${what}`,
        color: carried ? 'yellow' : 'red',
        bold: true,
      },
      position(index ?? 0, state.candidates, size),
    );
    body.push(...needsNewer(candidate));
  } else {
    const what = `${candidate.product} ${candidate.release} (${candidate.kind})`;
    top.push(
      plan.verdict === 'blocked'
        ? { text: `✘ Bundle found, but it cannot be applied: ${what}`, color: 'red', bold: true }
        : plan.order.length === 0
          ? { text: `= Nothing to do: ${what}; the appliance is at ${plan.to}`, bold: true }
          : { text: `✔ Update ready: ${what}`, color: 'green', bold: true },
    );
    const { window } = state.appliance;
    if (plan.verdict === 'ok' && plan.order.length > 0 && !window.open)
      top.push({
        text: `Outside the maintenance windows: ${window.next ? `the next opens ${window.next}` : 'none opens within a week'}.`,
        color: 'yellow',
      });
    top.push(position(index ?? 0, state.candidates, size));
    if (candidate.notes) body.push(...notesLines(candidate.notes));
    for (const reason of plan.reasons)
      body.push({ text: `✘ ${reason.message}`, color: 'red', indent: 2 });
    body.push(signatureLine(candidate));
    const groups = changesByComponent(plan.changes);
    body.push(
      { text: '' },
      { text: `Changes since ${state.appliance.release ?? 'nothing'}:`, bold: true },
    );
    if (groups.length === 0) body.push({ text: '  none' });
    for (const [component, changes] of groups) {
      body.push({ text: `  ${component}` });
      for (const change of changes)
        body.push({
          text: `    ${change.version} ${change.kind.padEnd(6)} ${change.id}: ${change.summary}`,
          indent: 6,
        });
    }
    body.push(
      { text: '' },
      {
        text:
          plan.verdict === 'blocked'
            ? 'What would happen (nothing will: the plan is blocked):'
            : 'What will happen:',
        bold: true,
      },
      ...planRows(plan, candidate.release),
      plan.verdict === 'blocked'
        ? { text: `  Blocked: ${blockedBy(plan)}`, color: 'red', indent: 2 }
        : {
            text:
              [`  Stages ${bytes(plan.stageBytes)} of payload`, ...planCostWords(plan)].join('; ') +
              '.',
            indent: 2,
          },
    );
  }
  const others = [...state.candidates.keys()].filter((i) => i !== index);
  if (others.length > 0) {
    body.push({ text: '' }, { text: 'Other bundles found:', bold: true });
    for (const i of others) {
      const other = state.candidates[i] as Candidate;
      body.push({
        text: `  ${oneRow(other.file)}: ${standing(state.candidates, i)}`,
        color: 'gray',
        indent: 4,
      });
    }
  }
  return { top, body };
}

function handingOverParts(state: ConsoleState): Pick<Layout, 'top' | 'body'> {
  const candidate = state.chosen === null ? undefined : state.candidates[state.chosen];
  const carried = candidate?.needs?.carried;
  return {
    top: [
      {
        text: `Checking the installer ${oneRow(candidate?.file ?? '')} carries (Ferry ${carried}) against the bundle's signature…`,
        bold: true,
      },
    ],
    body: [{ text: `Once it matches, this console closes and Ferry ${carried}'s opens.` }],
  };
}

const PASS_MARK: Record<PassState, string> = { pending: ' ', running: '▶', done: '✔', failed: '✘' };

function installingParts(state: ConsoleState): Pick<Layout, 'top' | 'body'> {
  const candidate = state.chosen === null ? undefined : state.candidates[state.chosen];
  const progress = state.progress;
  const left = secondsLeft(progress);
  const rollback = state.operation === 'rollback';
  const top: Line[] = [
    {
      text: rollback
        ? `Rolling back ${state.appliance.product} from ${state.appliance.release ?? '(empty)'} to ${state.appliance.previous?.release ?? '(empty)'}`
        : `Installing ${candidate?.product} ${candidate?.release} (from ${state.appliance.release ?? 'nothing'})`,
      bold: true,
    },
  ];
  for (const pass of rollback ? (['rollback'] as const) : PASS_ORDER) {
    const status = state.passes[pass] ?? 'pending';
    const staging =
      pass === 'stage' && progress && progress.total > 0
        ? `${bar(progress.bytes / progress.total)} ${bytes(progress.bytes)} of ${bytes(progress.total)}${left !== null && status === 'running' ? `, ~${left} s left` : ''}`
        : '';
    top.push({
      text: `  ${PASS_MARK[status]} ${pass.padEnd(13)}${staging}`,
      ...(status === 'failed' ? { color: 'red' } : status === 'done' ? { color: 'green' } : {}),
    });
  }
  if (!rollback && (state.passes.rollback === 'running' || state.passes.rollback === 'done'))
    top.push({ text: '  ↺ rollback', color: 'yellow' });
  const body: Line[] = Object.entries(state.components).map(([name, c]) => ({
    text: `  ${name.padEnd(14)} ${c.pass} ${c.state === 'running' ? '…' : c.state === 'done' ? '✔' : '✘'}`,
    ...(c.state === 'failed' ? { color: 'red' } : {}),
  }));
  body.push({ text: '' }, ...logLines(state.log));
  return { top, body };
}

function logLines(log: readonly string[]): Line[] {
  return [
    { text: 'Log:', bold: true },
    ...(log.length === 0
      ? [{ text: '  (nothing yet)', color: 'gray' }]
      : log.map((line) => ({ text: `  ${line}`, indent: 4 }))),
  ];
}

function failureLines(failure: Failure | undefined, log: string | undefined): Line[] {
  const lines: Line[] = [];
  if (failure) {
    lines.push({
      text: `  ${failure.component ?? 'The bundle'} failed in the ${failure.pass} pass${failure.artifact ? ` (${failure.artifact})` : ''}: ${failure.status}`,
      indent: 4,
    });
    for (const line of failure.tail
      .split('\n')
      .filter((l) => l !== '')
      .slice(-5))
      lines.push({ text: `  | ${line}`, color: 'gray', indent: 4 });
  }
  if (log) lines.push({ text: `  Log: ${log}`, indent: 4 });
  return lines;
}

function verdict(state: ConsoleState): Line {
  const { result, rolledBack, error } = state;
  const red = { color: 'red', bold: true };
  if (error)
    return {
      text: `✘ ${state.operation === 'rollback' ? 'NOT ROLLED BACK' : 'NOT APPLIED'}: ${error.code}`,
      ...red,
    };
  if (rolledBack)
    return rolledBack.outcome === 'committed'
      ? {
          text: `✔ ROLLED BACK to ${rolledBack.to ?? '(empty)'} (from ${rolledBack.from ?? '(empty)'})`,
          color: 'green',
          bold: true,
        }
      : rolledBack.outcome === 'unchanged'
        ? {
            text: `= UNCHANGED: ${unchangedRollbackSummary(rolledBack)}`,
            bold: true,
          }
        : {
            text: `✘ ROLLBACK FAILED: ${failedRollbackSummary(rolledBack)}`,
            ...red,
          };
  if (!result) return { text: '' };
  const { product } = result.plan;
  if (result.outcome === 'committed')
    return {
      text: `✔ COMMITTED: ${product} is now at ${result.to}${result.plan.reachesTarget ? '' : ' (not a verified release)'}`,
      color: 'green',
      bold: true,
    };
  if (result.outcome === 'rolled-back')
    return {
      text: `✘ ROLLED BACK: ${product} ${rolledBackSummary(result)}`,
      ...red,
    };
  return {
    text: `${result.failure ? '✘ NOT APPLIED: nothing was changed' : '= UNCHANGED: nothing to do'}; ${product} is at ${result.from ?? '(nothing)'}`,
    color: result.failure ? 'red' : 'yellow',
    bold: true,
  };
}

function resultParts(state: ConsoleState): Pick<Layout, 'top' | 'body'> {
  const { result, rolledBack, error, logView } = state;
  const body: Line[] = [];
  if (logView) {
    body.push({
      text: `Transaction ${logView.transaction} (${oneRow(logView.file)})`,
      bold: true,
      indent: 2,
    });
    if (logView.omitted > 0)
      body.push({
        text: `(${logView.omitted} earlier lines left out: ferry log ${logView.transaction} shows them all)`,
        color: 'gray',
      });
    body.push(...logView.lines.map((line) => ({ text: line, indent: 9 })));
    return { top: [verdict(state)], body };
  }
  if (error) {
    body.push({ text: `  ${error.message}`, indent: 2 });
    if (error.hint) body.push({ text: `  What to do: ${error.hint}`, indent: 4 });
    body.push({
      text: `  The appliance was not changed; it is at ${state.appliance.release ?? '(nothing installed)'}.`,
      indent: 2,
    });
    if (state.errorLog) body.push({ text: `  Log: ${oneRow(state.errorLog.file)}`, indent: 4 });
  } else if (rolledBack) body.push(...failureLines(rolledBack.failure, rolledBack.log));
  else if (result) body.push(...failureLines(result.failure, result.log));
  if (state.log.length > 0) body.push({ text: '' }, ...logLines(state.log));
  return { top: [verdict(state)], body };
}

function header(state: ConsoleState, columns: number): Line[] {
  const { appliance } = state;
  const installed = `Installed: ${appliance.release ?? '(nothing yet)'}${appliance.release && !appliance.verified ? ' (not a verified release)' : ''}`;
  // As many components as fit, and how many more there are.
  const components = Object.entries(appliance.components).map(([n, v]) => `${n} ${v}`);
  let shown = components.length;
  const line = (n: number) =>
    `${installed}   ${components.slice(0, n).join(' · ')}${n < components.length ? ` · +${components.length - n} more` : ''}`;
  while (shown > 0 && length(line(shown)) > columns) shown--;
  return [
    { text: `Ferry console — ${appliance.product} on ${appliance.platform}`, bold: true },
    { text: components.length === 0 ? installed : line(shown) },
  ];
}

function keys(state: ConsoleState): string[] {
  if (state.screen === 'installing')
    return state.volume ? ['[Enter] it is in', '[q] stop here'] : ['[Ctrl-C] stop, roll back'];
  if (state.screen === 'done') {
    if (state.confirm === 'rollback') return ['[y] roll back', '[n] no'];
    return [
      ...(logOf(state) ? [state.logView ? '[l] the result' : '[l] the log'] : []),
      ...(rollbackOffered(state) ? [`[b] back to ${state.appliance.previous?.release}`] : []),
      '[q] quit',
    ];
  }
  if (state.screen === 'handing-over') return ['[q] stop here'];
  if (state.reason !== null) return ['[Enter] install, recording why', '[Esc] back'];
  const candidate = state.chosen === null ? undefined : state.candidates[state.chosen];
  const ready = candidate?.plan?.verdict === 'ok' && candidate.plan.order.length > 0;
  const carried = candidate?.needs?.carried;
  const readable = state.candidates.filter(choosable).length;
  const { window } = state.appliance;
  return [
    ...(carried ? [`[Enter] hand over to Ferry ${carried}`] : []),
    ...(ready && window.open ? ['[Enter] apply'] : []),
    ...(ready && !window.open && window.allowOutside ? ['[Enter] install now'] : []),
    ...(readable > 1 ? ['[←→] bundle'] : []),
    '[r] rescan',
    '[q] quit',
  ];
}

/** The screen as rows: what stays, what scrolls and where it is scrolled to. */
export function layout(state: ConsoleState, size: Size = UNBOUNDED): Layout {
  const columns = Math.max(20, size.columns);
  const parts =
    state.screen === 'choose'
      ? chooseParts(state, size)
      : state.screen === 'handing-over'
        ? handingOverParts(state)
        : state.screen === 'installing'
          ? installingParts(state)
          : resultParts(state);
  // The verdict may take two rows; the rest of the top is one row each.
  const top = [
    ...header(state, columns),
    ...parts.top.flatMap((line, i) =>
      i === 0 ? wrap({ ...line, text: oneRow(line.text) }, columns).slice(0, 2) : [line],
    ),
    { text: '─'.repeat(columns), color: 'gray' },
  ].map((line) => ({ ...line, text: fit(oneRow(line.text), columns) }));
  const bottom: Line[] = [];
  if (state.volume) {
    const { wrong, volume, volumes, label, bundle } = state.volume;
    if (wrong) bottom.push(...wrap({ text: wrong, color: 'red' }, columns));
    bottom.push(
      ...wrap(
        {
          text: `Insert volume ${volume} of ${volumes} (${label}) of ${oneRow(bundle)}; nothing has been changed yet.`,
          color: 'yellow',
          bold: true,
        },
        columns,
      ),
    );
  }
  if (state.reason !== null)
    bottom.push(
      ...wrap(
        {
          text: 'Why install outside the maintenance windows? Your words are recorded in the history with the install.',
          bold: true,
        },
        columns,
      ),
      ...wrap({ text: `> ${state.reason}█`, indent: 2 }, columns),
    );
  if (state.confirm === 'rollback')
    bottom.push(
      ...wrap(
        {
          text: `Roll ${state.appliance.product} back from ${state.appliance.release ?? '(empty)'} to ${state.appliance.previous?.release ?? '(empty)'}, the release before?`,
          color: 'yellow',
          bold: true,
        },
        columns,
      ),
    );
  if (state.notice) bottom.push(...wrap({ text: state.notice, color: 'yellow' }, columns));
  const body = parts.body.flatMap((line) => wrap(line, columns));
  const room = Math.max(1, size.rows - top.length - bottom.length - 1);
  const bodyRows = Math.min(room, body.length);
  const maxOffset = body.length - bodyRows;
  const offset = state.follow ? maxOffset : Math.min(state.scroll, maxOffset);
  const scrolling = maxOffset > 0;
  const where = scrolling
    ? `${offset > 0 ? '▲' : ' '}${offset < maxOffset ? '▼' : ' '} ${offset + 1}-${offset + bodyRows}/${body.length}`
    : '';
  const room2 = columns - length(where) - 1;
  // The scroll keys in full where they fit, else in short: the other keys are never cut.
  const hints = scrolling ? ['[↑↓ PgUp/Dn] scroll', '[↑↓ PgUp/Dn]', '[↑↓]'] : [''];
  const footerKeys =
    hints
      .map((hint) => [...keys(state), hint].join(' ').trimEnd())
      .find((text) => length(text) + 2 <= room2) ?? keys(state).join(' ');
  return {
    top,
    body: body.slice(offset, offset + bodyRows),
    bottom,
    footer: {
      text: `${fit(` ${footerKeys} `, room2).padEnd(room2)} ${where}`.trimEnd(),
      inverse: true,
    },
    bodyRows,
    offset,
    maxOffset,
  };
}

function Row({ line }: { line: Line }) {
  return (
    <Text
      wrap="truncate-end"
      bold={line.bold ?? false}
      inverse={line.inverse ?? false}
      {...(line.color ? { color: line.color } : {})}
    >
      {line.text === '' ? ' ' : line.text}
    </Text>
  );
}

export function ConsoleView({ state, size = UNBOUNDED }: { state: ConsoleState; size?: Size }) {
  const { top, body, bottom, footer } = layout(state, size);
  return (
    <Box flexDirection="column">
      {[...top, ...body, ...bottom, footer].map((line, index) => (
        <Row key={index} line={line} />
      ))}
    </Box>
  );
}
