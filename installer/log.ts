import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { FerryError } from '../manifest-schema/index.js';
import { openAppliance } from './appliance.js';
import type { InstallEvent } from './engine/events.js';
import { recentHistory, type HistoryEntry } from './status.js';

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
  const { transactions: history } = await recentHistory(paths, Number.MAX_SAFE_INTEGER);
  const known = history.filter((entry) => entry.log !== undefined).map((entry) => entry.id);
  const hint =
    known.length > 0
      ? `the last transactions: ${known.slice(-5).join(', ')}`
      : 'nothing has been installed or rolled back on this appliance yet';
  const wanted = id ?? known.at(-1);
  if (wanted === undefined)
    throw new FerryError('E_NOT_FOUND', `${paths.root} has no transaction logs`, { hint });
  // An id is a file name in the logs folder, never a path.
  if (!/^[\w.-]+$/.test(wanted) || wanted.startsWith('.'))
    throw new FerryError('E_USAGE', `"${wanted}" is not a transaction id`, { hint });
  const file = join(paths.logs, `${wanted}.jsonl`);
  await access(file).catch(() => {
    throw new FerryError('E_NOT_FOUND', `there is no transaction ${wanted} on ${paths.root}`, {
      file,
      hint,
    });
  });
  const entry = history.findLast((e) => e.id === wanted);
  return { id: wanted, file, ...(entry ? { entry } : {}) };
}

/** The log's events one at a time, so a log of any length is read in constant memory. */
export async function* logEvents(file: string): AsyncGenerator<LoggedEvent> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    try {
      yield JSON.parse(line) as LoggedEvent;
    } catch {
      // A line cut short by a crash is the end of what was logged.
      return;
    }
  }
}
