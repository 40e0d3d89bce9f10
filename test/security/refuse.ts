import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { verifyBundle } from '../../bundle/verify.js';
import type { TrustContext } from '../../bundle/open.js';
import { readTrustedRoot, type FerryError } from '../../manifest-schema/index.js';
import { cloneAppliance, snapshot } from '../e2e/appliance.js';
import { ferry, FERRY, run, tempDir, type RunResult } from '../helpers.js';
import { baseBundle, tarBytes, zipBytes, type Base, type CraftEntry } from './hostile.js';

let base: Promise<Base> | undefined;

/**
 * One real signed bundle per test file, taken apart for crafting. Tests share
 * it, so its entries and metadata are frozen: a test that changed them in
 * place would change what the next test starts from. (Buffers cannot be
 * frozen: copy one before changing its bytes.)
 */
export function sharedBase(): Promise<Base> {
  base ??= tempDir()
    .then(baseBundle)
    .then((made) => ({
      ...made,
      entries: deepFreeze(made.entries),
      metadata: deepFreeze(made.metadata),
    }));
  return base;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** The trust root file as verify checks against it, now. */
export async function trustOf(file: string): Promise<TrustContext> {
  return { root: await readTrustedRoot(file), now: new Date() };
}

/** Writes the bytes as a bundle and expects verify to refuse them with `code`, naming `entry` when given. */
export async function expectRefused(
  bytes: Buffer,
  extension: 'tar' | 'tar.gz' | 'zip',
  code: string,
  entry?: string,
  base: Promise<Base> = sharedBase(),
): Promise<FerryError> {
  const { dir, trust } = await base;
  const file = join(dir, `crafted-${Math.random().toString(36).slice(2)}.${extension}`);
  await writeFile(file, bytes);
  const error = await verifyBundle(file, await trustOf(trust)).then(
    () => {
      throw new Error(`verify accepted a crafted bundle (expected ${code})`);
    },
    (caught: unknown) => caught as FerryError,
  );
  expect(error.code, error.message).toBe(code);
  if (entry !== undefined) expect(error.details.entry).toBe(entry);
  return error;
}

export const formats = [
  ['tar', tarBytes],
  ['zip', zipBytes],
] as const satisfies ReadonlyArray<readonly ['tar' | 'zip', (entries: CraftEntry[]) => Buffer]>;

/** Where a crafted bundle is written; the name is unique so tests never share a file. */
export async function craftedFile(bytes: Buffer, extension: string): Promise<string> {
  const { dir } = await sharedBase();
  const file = join(dir, `crafted-${Math.random().toString(36).slice(2)}.${extension}`);
  await writeFile(file, bytes);
  return file;
}

const templates = new Map<Promise<Base>, Promise<string>>();

/** An appliance of the base product, trusting the base's root, that nothing installed into, copied for each use. */
export async function freshAppliance(base: Promise<Base> = sharedBase()): Promise<string> {
  const { dir, trust } = await base;
  let template = templates.get(base);
  if (!template) {
    template = (async () => {
      const root = join(dir, 'appliance-template');
      const init = await ferry([
        'init',
        '--root',
        root,
        ...['--product', 'tiny', '--platform', 'os@1.0.0', '--trust', trust],
      ]);
      expect(init.code, init.stderr).toBe(0);
      return root;
    })();
    templates.set(base, template);
  }
  const root = join(dir, `appliance-${Math.random().toString(36).slice(2)}`);
  await cloneAppliance(await template, root);
  return root;
}

export interface Measured extends RunResult {
  seconds: number;
  /** The child's peak resident set, from /usr/bin/time. */
  peakMiB: number;
}

/** bin/ferry as an operator runs it, with its wall time and peak memory. */
export async function ferryMeasured(args: readonly string[]): Promise<Measured> {
  const started = process.hrtime.bigint();
  const result = await run(
    '/usr/bin/time',
    ['-f', 'ferry-peak-kib %M', process.execPath, FERRY, ...args],
    {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
    },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const peak = /ferry-peak-kib (\d+)\s*$/.exec(result.stderr);
  return { ...result, seconds, peakMiB: peak ? Number(peak[1]) / 1024 : NaN };
}

export type Command = 'verify' | 'inspect' | 'plan' | 'install';

/** The memory any refusal may cost: the installer's budget. */
export const PEAK_MIB = 200;

/**
 * Runs each command on the bundle file as an operator would and expects the
 * refusal: exit code, error code named on stderr, peak memory under the
 * budget, and (plan, install) an appliance byte-identical to before, folders
 * included. Times are reported, not asserted: the machine is shared.
 */
export async function expectRefusedEverywhere(
  file: string,
  code: string,
  exit: number,
  commands: readonly Command[] = ['verify', 'plan', 'install'],
  base: Promise<Base> = sharedBase(),
): Promise<Measured[]> {
  const { trust } = await base;
  const results: Measured[] = [];
  for (const command of commands) {
    const root = command === 'plan' || command === 'install' ? await freshAppliance(base) : null;
    const before = root ? await snapshot(root) : null;
    const args =
      command === 'verify' || command === 'inspect'
        ? [command, file, '--trust', trust]
        : command === 'plan'
          ? ['plan', file, '--root', root as string]
          : ['install', file, '--root', root as string, '--yes'];
    const result = await ferryMeasured(args);
    const said = `${command}: exit ${result.code} in ${result.seconds.toFixed(1)} s, peak ${result.peakMiB.toFixed(0)} MiB\n${result.stderr}`;
    expect(result.stderr, said).toContain(`ferry: ${code}:`);
    expect(result.code, said).toBe(exit);
    expect(result.peakMiB, said).toBeLessThan(PEAK_MIB);
    if (root) {
      expect(await snapshot(root), said).toEqual(before);
      // Folders too: a refusal leaves no staging folder behind, even an empty one.
      expect(existsSync(join(root, 'opt/ferry/.staging')), said).toBe(false);
    }
    console.log(said.split('\n')[0]);
    results.push(result);
  }
  return results;
}
