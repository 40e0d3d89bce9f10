import { createHash } from 'node:crypto';
import { cp, lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { expect } from 'vitest';
import { ferry, json, type RunResult, type Workspace } from '../helpers.js';

/** What an install may add even when it changes nothing: its history line, its log, the fixture's markers and triggers. */
export const RECORDS = [
  'var/lib/ferry/history.jsonl',
  'var/lib/ferry/logs',
  'var/log',
  'fail',
  'hang',
];

/**
 * Hex sha256, to compare file contents: toEqual on a Buffer walks it byte by
 * byte (tens of seconds for 3 MiB on a busy machine).
 */
export function sha256(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Everything under a root, byte for byte, but the `ignored` paths: what "nothing changed" means. */
export async function snapshot(
  root: string,
  ignored: readonly string[] = RECORDS,
): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const name = relative(root, path);
    if (ignored.some((prefix) => name === prefix || name.startsWith(`${prefix}/`))) continue;
    const stats = await lstat(path);
    if (stats.isSymbolicLink()) result[name] = `link ${await readlink(path)}`;
    else if (stats.isDirectory()) result[name] = `dir ${(stats.mode & 0o777).toString(8)}`;
    else result[name] = `file ${(stats.mode & 0o777).toString(8)} ${sha256(await readFile(path))}`;
  }
  return result;
}

export interface InitOptions {
  product?: string;
  platform?: string;
  trust?: string;
}

/** `ferry init` of an acme-appliance on acme-os 7.2.1 trusting the workspace key, unless told otherwise. */
export async function initAppliance(
  ws: Workspace,
  root: string,
  options: InitOptions = {},
): Promise<void> {
  const result = await init(ws, root, options);
  expect(result.code, result.stderr).toBe(0);
}

/** The same `ferry init`, for a test that expects it to be refused. */
export function init(ws: Workspace, root: string, options: InitOptions = {}): Promise<RunResult> {
  return ferry([
    'init',
    '--root',
    root,
    '--product',
    options.product ?? 'acme-appliance',
    '--platform',
    options.platform ?? 'acme-os@7.2.1',
    '--trust',
    options.trust ?? ws.trust,
  ]);
}

export async function install(
  bundle: string,
  root: string,
  ...extra: string[]
): Promise<RunResult> {
  return ferry(['install', bundle, '--root', root, '--yes', ...extra]);
}

export async function installOk(bundle: string, root: string, ...extra: string[]): Promise<void> {
  const result = await install(bundle, root, ...extra);
  expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
}

export async function status(
  root: string,
): Promise<{ release: string | null; verified: boolean; components: Record<string, string> }> {
  return json(await ferry(['status', '--root', root, '--json']));
}

/** The pass markers the fixture artifacts append: "<pass> <component> <from> <to>" or "verify <root>". */
export async function markers(root: string): Promise<string[]> {
  const text = await readFile(join(root, 'var/log/acme-markers.log'), 'utf8').catch(() => '');
  return text.split('\n').filter((line) => line !== '');
}

/** Copies an appliance (for many tests starting from the same release). */
export async function cloneAppliance(from: string, to: string): Promise<void> {
  await cp(from, to, { recursive: true, verbatimSymlinks: true });
}
