import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../manifest-schema/index.js';
import { exportFacts, factsOf, openAppliance, type AppliancePaths } from './appliance.js';
import { verifyInstalled, type FileProblem } from './engine/installed-files.js';

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
  transactions: HistoryEntry[];
}

/** What `ferry status` reports; with `verify`, every installed file checked; with `exportTo`, the facts written there. */
export async function applianceStatus(
  root: string,
  options: { verify?: boolean; exportTo?: string } = {},
): Promise<StatusResult> {
  const appliance = await openAppliance(root);
  if (options.exportTo !== undefined) {
    await writeFileAtomic(
      options.exportTo,
      `${JSON.stringify(exportFacts(appliance, new Date()), null, 2)}\n`,
    );
  }
  const facts = factsOf(appliance);
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
    transactions: await recentHistory(appliance.paths, 5),
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
}

/** The last `count` transactions from history.jsonl, newest last. */
export async function recentHistory(paths: AppliancePaths, count: number): Promise<HistoryEntry[]> {
  const text = await readFile(paths.history, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(-count)
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as HistoryEntry];
      } catch {
        return [];
      }
    });
}
