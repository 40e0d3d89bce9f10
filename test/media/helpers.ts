import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { PARTS_INDEX, type PartsIndex } from '../../manifest-schema/index.js';
import {
  buildAll,
  EPOCH,
  ferry,
  json,
  tempDir,
  workspace,
  type RunResult,
  type Workspace,
} from '../helpers.js';
import { initAppliance } from '../e2e/appliance.js';

/** 1.0.0 (an install bundle of 3.1 MiB) cut at 1100 KiB: three volumes. */
export const VOLUME_SIZE = '1100K';

export interface MediaBase {
  ws: Workspace;
  bundle: string;
}

export async function mediaBase(dir: string): Promise<MediaBase> {
  const ws = await workspace(dir);
  const bundles = await buildAll(ws, join(dir, 'bundles'), 'tar', ['1.0.0']);
  return { ws, bundle: bundles['1.0.0'] as string };
}

export interface MediaFixture extends MediaBase {
  dir: string;
  /** The three volumes of 1.0.0, never changed: tests copy them. */
  media: string;
  /** An empty appliance trusting the bundle's key, never changed: tests copy it. */
  empty: string;
}

export async function mediaFixture(): Promise<MediaFixture> {
  const dir = await tempDir();
  const base = await mediaBase(dir);
  const media = join(dir, 'media');
  await makeMedia(base, media);
  const empty = join(dir, 'empty');
  await initAppliance(base.ws, empty);
  return { ...base, dir, media, empty };
}

/** `ferry media` of `base.bundle` into `out`, signed with its workspace key, and `args`: its run, whatever it ends in. */
export function runMedia(
  base: MediaBase,
  out: string,
  args: readonly string[],
): Promise<RunResult> {
  return ferry(['media', base.bundle, '--out', out, '--key', base.ws.key, ...args]);
}

/** `ferry media` through the CLI (of `base.bundle`, signed with its workspace key); returns its --json result. */
export async function makeMedia(
  base: MediaBase,
  out: string,
  ...extra: string[]
): Promise<{ volumes: Array<{ folder: string; part: string; sha256: string; iso?: string }> }> {
  const result = await runMedia(base, out, [
    '--volume-size',
    VOLUME_SIZE,
    '--no-installer',
    '--json',
    ...extra,
  ]);
  expect(result.code, result.stderr).toBe(0);
  return json(result);
}

/** The volumes of 1.1.0 (built into `dir`/next, cut into `dir`/next-media): another release's media. */
export async function nextReleaseMedia(base: MediaBase, dir: string): Promise<string> {
  const built = await ferry(
    ['build', join(base.ws.product, 'release-1.1.0.yaml'), '--out', join(dir, 'next'), '--key', base.ws.key, '--json'],
    { env: { SOURCE_DATE_EPOCH: EPOCH } },
  ); // prettier-ignore
  expect(built.code, built.stderr).toBe(0);
  const next = join(dir, 'next-media');
  await makeMedia({ ...base, bundle: json<{ bundle: string }>(built).bundle }, next);
  return next;
}

export async function readIndex(volume: string): Promise<PartsIndex> {
  const envelope = JSON.parse(await readFile(join(volume, PARTS_INDEX), 'utf8')) as {
    payload: string;
  };
  return JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as PartsIndex;
}
