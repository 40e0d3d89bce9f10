import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildAll,
  EPOCH,
  ferry,
  json,
  opensslSign,
  tempDir,
  workspace,
  type Workspace,
} from '../helpers.js';
import { registryMissing, startRegistry, type Registry } from '../repository/oci/registry.js';

/**
 * A time limit set in the environment that is not a number of seconds stops
 * the command with E_USAGE (exit 2) before it writes anything, as every other
 * Ferry error does: it used to fall back to its default silently, and the
 * operator who set it believed it held.
 */

let ws: Workspace;
let bundle: string;
let n = 0;

beforeAll(async () => {
  ws = await workspace(await tempDir('ferry-e2e-env-seconds-'));
  bundle = (await buildAll(ws, join(ws.dir, 'bundles'), 'tar', ['1.0.0']))['1.0.0'] as string;
}, 120_000);

/** What is in `dir`: [] when it holds nothing or does not exist. */
const contents = (dir: string) => readdir(dir, { recursive: true }).catch(() => []);

type Error = { code: string; message: string; hint: string };

/** Runs `args(place)` with `variable=value`, in a fresh folder `place` (its own state folder too). */
async function refused(
  variable: string,
  value: string,
  args: (place: string) => string[],
  extraEnv: Record<string, string> = {},
): Promise<{ place: string; error: Error; stderr: string; code: number }> {
  const place = join(ws.dir, `place-${n++}`);
  const result = await ferry([...args(place), '--json'], {
    env: {
      SOURCE_DATE_EPOCH: EPOCH,
      FERRY_ACTOR: 'ci',
      FERRY_STATE_DIR: join(place, 'state'),
      ...extraEnv,
      [variable]: value,
    },
  });
  return { place, error: json<{ error: Error }>(result).error, ...result };
}

const publish = (place: string) => [
  'publish', bundle, '--repo', join(place, 'repo'), '--trust', ws.trust, '--key', ws.key,
]; // prettier-ignore
const pullRegistry = (place: string) => [
  'pull', '--repo', 'oci://127.0.0.1:1/acme', '--channel', 'dev', '--out', join(place, 'out'),
]; // prettier-ignore
const buildSigned = (place: string) => [
  'build', join(ws.product, 'release-1.0.0.yaml'), '--first-release', '--out', join(place, 'out'),
  '--signer', opensslSign(ws.key), '--signer-key', ws.pub,
]; // prettier-ignore

describe('a time limit in the environment that is not a number of seconds', () => {
  // [variable, value, command, its default]. pull --repo oci://127.0.0.1:1 reaches nothing:
  // refused with E_USAGE, not E_REGISTRY_UNREACHABLE, shows the value is read before connecting.
  it.each([
    ['FERRY_LOCK_WAIT_SECONDS', '1m', 'publish to a directory', publish, '10 s'],
    ['FERRY_LOCK_STALE_SECONDS', '-5', 'publish to a directory', publish, '30 s'],
    ['FERRY_REGISTRY_IDLE_SECONDS', 'abc', 'pull from a registry', pullRegistry, '60 s'],
    ['FERRY_CREDENTIAL_HELPER_SECONDS', '0', 'pull from a registry', pullRegistry, '60 s'],
    ['FERRY_REGISTRY_CLAIM_STALE_SECONDS', '90s', 'pull from a registry', pullRegistry, '60 s'],
    ['FERRY_SIGNER_SECONDS', '5 min', 'build with --signer', buildSigned, '300 s'],
  ])(
    '%s=%j: %s stops with E_USAGE (exit 2) naming it, its value, the form and the default; nothing written',
    async (variable, value, _what, args, fallback) => {
      const { place, error, stderr, code } = await refused(variable, value, args);
      expect(code, stderr).toBe(2);
      expect(error.code).toBe('E_USAGE');
      expect(error.message).toContain(variable);
      expect(error.message).toContain(JSON.stringify(value));
      expect(error.hint).toContain('seconds, e.g. 90 or 0.5');
      expect(error.hint).toContain(fallback);
      expect(stderr).toContain(`ferry: E_USAGE: ${error.message}\n  hint: ${error.hint}\n`);
      expect(await contents(place)).toEqual([]);
    },
    60_000,
  );

  it('an empty value, as a shell `VAR=` sets it, is the default, as for other empty Ferry variables', async () => {
    const place = join(ws.dir, `place-${n++}`);
    const result = await ferry([...publish(place), '--json'], {
      env: { FERRY_ACTOR: 'ci', FERRY_LOCK_WAIT_SECONDS: '', FERRY_LOCK_STALE_SECONDS: '' },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(await contents(join(place, 'repo'))).toContain('oci-layout');
  });
});

describe.skipIf(registryMissing)('a time limit longer than a timer takes (24.8 days)', () => {
  let registry: Registry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(() => registry.stop());

  it('FERRY_REGISTRY_IDLE_SECONDS=99999999: publish and pull go through, taking it as 24.8 days, without a warning from Node', async () => {
    // Past 2^31-1 ms Node truncates a socket's timeout, printing a TimeoutOverflowWarning on
    // stderr for every connection: noise in the middle of Ferry's own output.
    const repo = registry.reference('acme/huge-idle');
    const place = join(ws.dir, `place-${n++}`);
    const env = { FERRY_ACTOR: 'ci', FERRY_REGISTRY_IDLE_SECONDS: '99999999' };
    const published = await ferry(
      ['publish', bundle, '--repo', repo, '--trust', ws.trust, '--key', ws.key, '--channel', 'dev'],
      { env },
    );
    expect(published.code, published.stderr).toBe(0);
    expect(published.stderr).not.toContain('TimeoutOverflowWarning');
    const pulled = await ferry(
      ['pull', '--repo', repo, '--trust', ws.trust, '--channel', 'dev', '--out', place],
      { env: { ...env, FERRY_STATE_DIR: join(ws.dir, 'state-huge') } },
    );
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stderr).not.toContain('TimeoutOverflowWarning');
    expect(await contents(place)).toHaveLength(1);
  }, 60_000);
});
