import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Writer } from '../repository/model.js';
import {
  flag,
  jsonOption,
  optional,
  required,
  signingInput,
  signingOptions,
  type Options,
  type Values,
} from './args.js';

/** What every repository command shares: where it is, how to reach it, and who writes. */
export const repoOptions = {
  repo: {
    type: 'string',
    arg: 'REPO',
    help: 'the bundle repository: a folder, or oci://host[:port]/ns/product',
  },
  insecure: { type: 'boolean', help: 'reach an OCI registry over plain http' },
  trust: {
    type: 'string',
    arg: 'FILE',
    help: "the trust root the repository's signatures are checked against",
  },
  ...jsonOption,
} as const satisfies Options;

/** Where pull records the channel documents it pulled: FERRY_STATE_DIR, else the XDG state folder. */
export function pullStateDir(env: NodeJS.ProcessEnv): string {
  if (env.FERRY_STATE_DIR) return resolve(env.FERRY_STATE_DIR);
  const base = env.XDG_STATE_HOME
    ? resolve(env.XDG_STATE_HOME)
    : join(homedir(), '.local', 'state');
  return join(base, 'ferry');
}

/** How usage lines spell the options above, so that help names every one. */
export const REPO_FLAGS = '[--trust FILE] [--insecure]';
export const WRITER_FLAGS = '(--key KEY... | --signer COMMAND...) [--actor NAME]';

export const writerOptions = {
  ...signingOptions,
  actor: {
    type: 'string',
    arg: 'NAME',
    help: 'who writes (default: $FERRY_ACTOR, else the CI user, else $USER)',
  },
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
export async function writerOf(values: Values): Promise<Writer> {
  const { readSigners } = await import('../builder/signing.js');
  const { writerFromEnv } = await import('../repository/model.js');
  return {
    ...writerFromEnv(process.env, optional(values, 'actor')),
    keys: await readSigners(signingInput(values)),
    // On stderr, so that --json output stays one document: a CI log shows why the job pauses.
    onWait: (holder) =>
      void process.stderr.write(
        `waiting for the lock of ${required(values, 'repo')}, held by ${holder.trim()}\n`,
      ),
  };
}
