import { realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { FerryError, regularFileLines, writeFileAtomic } from '../manifest-schema/index.js';
import {
  exportFacts,
  factsOf,
  MAX_EXPORT_BYTES,
  openAppliance,
  type AppliancePaths,
} from './appliance.js';
import { checkedFacts } from './planning.js';
import type { ApplianceFacts } from './plan.js';
import { verifyInstalled, type FileProblem } from './engine/installed-files.js';
import { Journal } from './engine/journal.js';
import { lockHeld } from './engine/lock.js';

export interface StatusResult {
  product: string;
  platform: { name: string; version: string };
  release: string | null;
  verified: boolean;
  highestRelease: string | null;
  /** The trust root's version and expiry (null: the first format, which never expires), and the keys its chains revoked. */
  trust: { version: number; expires: string | null; revoked: string[] };
  components: Record<string, string>;
  exported?: string;
  problems?: FileProblem[];
  /** A transaction whose journal is still open: under way, or interrupted and awaiting recovery. */
  open?: OpenTransaction;
  transactions: HistoryEntry[];
  /** Lines of history.jsonl that do not parse (a power cut mid-append), skipped. */
  tornHistoryLines?: number[];
}

export interface OpenTransaction {
  id: string;
  operation: 'install' | 'rollback';
  from: string | null;
  to: string | null;
  startedAt: string;
  pid: number;
  /** Its process still runs: the transaction is under way, not interrupted. */
  running: boolean;
  /** Journaled steps made so far. */
  steps: number;
  /** What the next install, rollback or `ferry recover` does with it. */
  recovery: 'roll-forward' | 'roll-back';
}

/** What `ferry status` reports; with `verify`, every installed file checked; with `exportTo`, the facts written there. */
export async function applianceStatus(
  root: string,
  options: { verify?: boolean; exportTo?: string } = {},
): Promise<StatusResult> {
  const appliance = await openAppliance(root);
  if (options.exportTo !== undefined) {
    await requireOutside(appliance.paths, options.exportTo);
    const facts = await checkedFacts(appliance);
    const text = `${JSON.stringify(exportFacts(appliance, facts, new Date()), null, 2)}\n`;
    requireReadable(options.exportTo, text, facts);
    await writeFileAtomic(options.exportTo, text);
  }
  const facts = factsOf(appliance);
  const open = await openTransaction(appliance.paths, appliance.state.transaction);
  return {
    product: facts.product,
    platform: facts.platform,
    release: facts.release,
    verified: facts.verified,
    highestRelease: facts.highestRelease,
    trust: {
      version: appliance.trust.version,
      expires: appliance.trust.expires,
      revoked: Object.keys(appliance.trust.revoked).sort(),
    },
    components: Object.fromEntries(
      Object.entries(facts.components).map(([name, c]) => [name, c.version]),
    ),
    ...(options.exportTo !== undefined ? { exported: options.exportTo } : {}),
    ...(options.verify
      ? { problems: await verifyInstalled(appliance.paths, appliance.state) }
      : {}),
    ...(open ? { open } : {}),
    ...(await recentHistory(appliance.paths, 5)),
  };
}

/**
 * An export `plan --state` would refuse is not written: only files changed by hand by
 * the hundred thousand make one that large, and they are what to look at first.
 */
export function requireReadable(file: string, text: string, facts: ApplianceFacts): void {
  const size = Buffer.byteLength(text);
  if (size <= MAX_EXPORT_BYTES) return;
  const changed = Object.entries(facts.components)
    .map(([name, c]) => [name, c.changedFiles?.length ?? 0] as const)
    .filter(([, count]) => count > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([name, count]) => `${name} (${count})`);
  throw new FerryError(
    'E_DRIFT',
    `the export would be ${size} bytes, over the ${MAX_EXPORT_BYTES} plan --state reads; files changed outside Ferry: ${changed.join(', ') || 'none'}`,
    {
      file,
      hint: 'repair those components on the appliance (ferry install BUNDLE --force COMPONENT) and export again, or plan on the appliance itself',
    },
  );
}

/**
 * An export is for another machine: written over state.json (`--export
 * /var/lib/ferry/state.json`, "the state") it would leave the appliance
 * unreadable, and under etc/ferry or opt/ferry it would be a file Ferry never
 * put there. Compared through links, as the rename would go.
 */
async function requireOutside(paths: AppliancePaths, file: string): Promise<void> {
  const real = (path: string): Promise<string | null> => realpath(path).catch(() => null);
  const folder = await real(dirname(resolve(file)));
  if (folder === null) return; // the write names the missing folder
  for (const own of [paths.etc, paths.lib, paths.opt]) {
    const ownReal = await real(own);
    if (ownReal === null) continue;
    const inside = relative(ownReal, join(folder, basename(file)));
    if (inside === '' || (inside !== '..' && !inside.startsWith('../') && !isAbsolute(inside))) {
      throw new FerryError('E_USAGE', `--export ${file} is inside the appliance's ${own}`, {
        file,
        hint: "export to a file outside the appliance's own folders, such as /tmp/facts.json or a USB stick",
      });
    }
  }
}

/** The journal's transaction, read as recovery would judge it (rolled forward only once state.json carries its id). */
async function openTransaction(
  paths: AppliancePaths,
  committedId: string | null,
): Promise<OpenTransaction | undefined> {
  const journal = await Journal.read(paths.journal, paths.root);
  if (!journal) return undefined;
  const { header, steps } = journal;
  return {
    id: header.id,
    operation: header.operation,
    from: header.from,
    to: header.to,
    startedAt: header.startedAt,
    pid: header.pid,
    // The kernel holds the lock for a live installer only: a reused pid cannot pass for one.
    running: await lockHeld(paths.root),
    steps: steps.length,
    recovery: committedId === header.id && header.id !== 'unknown' ? 'roll-forward' : 'roll-back',
  };
}

/** One line of history.jsonl. */
export interface HistoryEntry {
  id: string;
  at: string;
  operation: 'install' | 'rollback' | 'recover';
  from: string | null;
  to: string | null;
  outcome: string;
  failure?: { component: string | null; pass: string; artifact: string | null; status: string };
  controls?: Record<string, unknown>;
  reason?: string;
  /** The transaction's log file. */
  log?: string;
}

/**
 * history.jsonl's entries in order, and the numbers of lines that do not
 * parse, read a line at a time: the history of years of updates (or a file
 * grown out of all measure) is never held in memory.
 */
export async function* historyLines(
  paths: AppliancePaths,
): AsyncGenerator<{ entry: HistoryEntry } | { torn: number }> {
  let number = 0;
  for await (const line of regularFileLines(paths.history, 'E_STATE_INVALID', { missing: true })) {
    number++;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      yield { torn: number };
      continue;
    }
    // A whole line is not torn: one that is not a transaction was edited or damaged.
    const problem = historyEntryProblem(value);
    if (problem !== null) {
      throw new FerryError(
        'E_STATE_INVALID',
        `${paths.history}:${number}: is not a transaction of this history: ${problem}`,
        {
          file: paths.history,
          line: number,
          hint: 'Ferry never writes this: history.jsonl was edited or damaged. Restore it from a backup',
        },
      );
    }
    yield { entry: value as HistoryEntry };
  }
}

/** What makes a parsed line of history.jsonl not a HistoryEntry; null when it is one. */
function historyEntryProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return 'not a JSON object';
  const entry = value as Record<string, unknown>;
  for (const field of ['id', 'at', 'outcome'] as const)
    if (typeof entry[field] !== 'string') return `${field} is not a string`;
  if (!['install', 'rollback', 'recover'].includes(entry.operation as string))
    return 'operation is not install, rollback or recover';
  for (const field of ['from', 'to'] as const)
    if (entry[field] !== null && typeof entry[field] !== 'string')
      return `${field} is not a release or null`;
  return null;
}

/** The last `count` transactions from history.jsonl, newest last, and the numbers of lines that do not parse. */
export async function recentHistory(
  paths: AppliancePaths,
  count: number,
): Promise<{ transactions: HistoryEntry[]; tornHistoryLines?: number[] }> {
  const transactions: HistoryEntry[] = [];
  const torn: number[] = [];
  for await (const line of historyLines(paths)) {
    if ('torn' in line) torn.push(line.torn);
    else if (transactions.push(line.entry) > count) transactions.shift();
  }
  return {
    transactions,
    ...(torn.length > 0 ? { tornHistoryLines: torn } : {}),
  };
}
