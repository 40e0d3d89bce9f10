import type { Writer } from '../repository/model.js';
import { flag, list, optional, required, type Options, type Values } from './args.js';

/** What every repository command shares: where it is, how to reach it, and who writes. */
export const repoOptions = {
  repo: { type: 'string' },
  insecure: { type: 'boolean' },
  trust: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies Options;

/** How usage lines spell the options above, so that help names every one. */
export const REPO_FLAGS = '[--trust FILE] [--insecure]';
export const WRITER_FLAGS = '--key KEY [--actor NAME]';

export const writerOptions = {
  key: { type: 'string', multiple: true },
  actor: { type: 'string' },
} as const satisfies Options;

export function repoOf(values: Values) {
  const trust = optional(values, 'trust');
  return {
    repo: required(values, 'repo'),
    insecure: flag(values, 'insecure'),
    ...(trust !== undefined ? { trust } : {}),
  };
}

/**
 * The signing keys (every write is signed) and who is writing: `--actor`,
 * else FERRY_ACTOR, else what GitHub Actions or GitLab CI say, else $USER.
 */
export async function writerOf(values: Values, actor?: string): Promise<Writer> {
  const { readSigningKeys } = await import('../builder/signing.js');
  const { writerFromEnv } = await import('../repository/model.js');
  return {
    ...writerFromEnv(process.env, actor ?? optional(values, 'actor')),
    keys: await readSigningKeys(list(values, 'key')),
  };
}
