import { createHash } from 'node:crypto';
import { cp, lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { expect } from 'vitest';
import { ferry, json, type RunResult, type Workspace } from '../helpers.js';

/** Everything Ferry owns under a root, byte for byte: what "nothing changed" means. */
export async function snapshot(root: string): Promise<Record<string, string>> {
  const ignored = ['var/lib/ferry/history.jsonl', 'var/lib/ferry/logs', 'var/log', 'fail', 'hang'];
  const result: Record<string, string> = {};
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const name = relative(root, path);
    if (ignored.some((prefix) => name === prefix || name.startsWith(`${prefix}/`))) continue;
    const stats = await lstat(path);
    if (stats.isSymbolicLink()) result[name] = `link ${await readlink(path)}`;
    else if (stats.isDirectory()) result[name] = `dir ${(stats.mode & 0o777).toString(8)}`;
    else
      result[name] = `file ${(stats.mode & 0o777).toString(8)} ${createHash('sha256')
        .update(await readFile(path))
        .digest('hex')}`;
  }
  return result;
}

export async function initAppliance(ws: Workspace, root: string): Promise<void> {
  const result = await ferry([
    'init',
    '--root',
    root,
    '--product',
    'acme-appliance',
    '--platform',
    'acme-os@7.2.1',
    '--trust',
    ws.trust,
  ]);
  expect(result.code, result.stderr).toBe(0);
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
