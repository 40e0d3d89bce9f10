import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, regularFileLines } from '../manifest-schema/index.js';
import { openAppliance, requireFolder } from './appliance.js';
import type { InstallEvent } from './engine/events.js';
import { historyLines, type HistoryEntry } from './status.js';

export type LoggedEvent = InstallEvent & { at: string };

export interface TransactionLog {
  id: string;
  file: string;
  /** Its line in history.jsonl; absent while it runs, or when a crash cut it short. */
  entry?: HistoryEntry;
}

/** A transaction's log: the one named, else the newest that has one. */
export async function findTransaction(root: string, id?: string): Promise<TransactionLog> {
  const { paths } = await openAppliance(root);
  // The last few with a log (for the hint and the default) and the one named: no more in memory.
  const known: string[] = [];
  let newest: HistoryEntry | undefined;
  let named: HistoryEntry | undefined;
  for await (const line of historyLines(paths)) {
    if (!('entry' in line)) continue;
    if (line.entry.log !== undefined) {
      newest = line.entry;
      if (known.push(line.entry.id) > 5) known.shift();
    }
    if (line.entry.id === id) named = line.entry;
  }
  const hint =
    known.length > 0
      ? `the last transactions: ${known.join(', ')}`
      : 'nothing has been installed or rolled back on this appliance yet';
  const wanted = id ?? known.at(-1);
  if (wanted === undefined)
    throw new FerryError('E_NOT_FOUND', `${paths.root} has no transaction logs`, { hint });
  // An id is a file name in the logs folder, never a path.
  if (!/^[\w.-]+$/.test(wanted) || wanted.startsWith('.'))
    throw new FerryError('E_USAGE', `"${wanted}" is not a transaction id`, { hint });
  const file = join(paths.logs, `${wanted}.jsonl`);
  const entry = id === undefined ? newest : named;
  // Something in the folder's place hides every log: that, not a missing transaction, is the news.
  await requireFolder(paths.logs, "keeps each transaction's log there");
  await access(file).catch(() => {
    throw new FerryError(
      'E_NOT_FOUND',
      entry
        ? `${file}, the log of transaction ${wanted}, is missing`
        : `there is no transaction ${wanted} on ${paths.root}`,
      { file, hint },
    );
  });
  return { id: wanted, file, ...(entry ? { entry } : {}) };
}

/** The log's events one at a time, so a log of any length is read in constant memory. */
export async function* logEvents(file: string): AsyncGenerator<LoggedEvent> {
  // As the appliance's other files: a FIFO or a device in the log's place would be waited on for ever.
  for await (const line of regularFileLines(file, 'E_STATE_INVALID')) {
    if (line.trim() === '') continue;
    try {
      yield JSON.parse(line) as LoggedEvent;
    } catch {
      // A line cut short by a crash is the end of what was logged.
      return;
    }
  }
}

/**
 * One plain line per event worth a line, as the person watching sees it; with
 * `everything`, as `ferry log` tells it afterwards: also the start, the plan
 * and every line the artifacts printed.
 */
export function describeEvent(event: InstallEvent, everything = false): string | null {
  switch (event.type) {
    case 'plan':
      return everything
        ? `plan: ${event.plan.product} ${event.plan.from ?? '(empty)'} → ${event.plan.to}: ${event.plan.verdict === 'ok' ? 'ready' : 'BLOCKED'}; order ${event.plan.order.join(', ') || 'nothing to do'}`
        : null;
    case 'begin':
      return everything
        ? `${event.operation} ${event.bundle ?? ''}${Object.keys(event.controls).length > 0 ? ` with ${JSON.stringify(event.controls)}` : ''}${event.reason ? ` because "${event.reason}"` : ''}`
        : null;
    case 'warning':
      return `warning: ${event.message}`;
    case 'interrupt':
      return `ferry: ${event.message}`;
    case 'pass':
      return event.status === 'start' ? `== ${event.pass}` : null;
    case 'step':
      if (event.status === 'start') return `   ${event.component}: ${event.detail ?? event.pass}…`;
      if (event.status === 'failed') return `   ${event.component}: FAILED ${event.detail ?? ''}`;
      return null;
    case 'output':
      return everything
        ? `   | ${event.component} ${event.artifact}${event.stream === 'stderr' ? ' (stderr)' : ''}: ${event.line}`
        : null;
    case 'progress':
    case 'result':
      return null;
  }
}

/** A logged event as `ferry log` and the console show it: its time, then its words. */
export function logLine(event: LoggedEvent): string | null {
  const line = describeEvent(event, true);
  return line === null ? null : `${event.at.slice(11, 19)} ${line}`;
}
