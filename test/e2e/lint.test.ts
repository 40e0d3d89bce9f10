import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { snapshot } from './appliance.js';
import {
  buildAll,
  copyFixture,
  ferry,
  json,
  tempDir,
  workspace,
  type RunResult,
  type Workspace,
} from '../helpers.js';

let ws: Workspace;

beforeAll(async () => {
  ws = await workspace(await tempDir());
  await buildAll(ws, join(ws.dir, 'bundles'), 'tar', ['1.0.0', '1.1.0', '1.2.0']);
});

const errorCode = (result: RunResult) => json<{ error: { code: string } }>(result).error.code;

/** A fresh copy of the fixture, with no history yet. */
async function fresh(name: string): Promise<string> {
  return copyFixture(join(ws.dir, name));
}

describe('ferry lint: every build check, no key, nothing written', () => {
  it('passes the next release with no key, and writes nothing', async () => {
    const before = await snapshot(ws.product, []);
    const result = await ferry(['lint', join(ws.product, 'release-1.3.0.yaml'), '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(json(result)).toMatchObject({
      product: 'acme-appliance',
      release: '1.3.0',
      kind: 'update',
      supportedFrom: ['1.0.0', '1.1.0', '1.2.0'],
      removed: ['legacy-agent'],
    });
    expect(await snapshot(ws.product, [])).toEqual(before);
    const human = await ferry(['lint', join(ws.product, 'release-1.3.0.yaml')]);
    expect(human.stdout).toMatch(/^ok: acme-appliance 1\.3\.0/);
  });

  it('build --dry-run is lint: no key, no bundle, no record', async () => {
    const out = join(ws.dir, 'dry');
    const result = await ferry([
      'build',
      join(ws.product, 'release-1.3.0.yaml'),
      '--out',
      out,
      '--dry-run',
      '--json',
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(json(result)).toMatchObject({ release: '1.3.0', kind: 'update' });
    await expect(readdir(out)).rejects.toThrow();
    await expect(readdir(join(ws.product, 'history'))).resolves.not.toContain(
      'acme-appliance-1.3.0.json',
    );
  });

  it('fails as build fails, with the same code and exit', async () => {
    const product = await fresh('cycle');
    const file = join(product, 'release-1.0.0.yaml');
    const spec = parse(await readFile(file, 'utf8')) as {
      components: Record<string, { requires?: Record<string, string> }>;
    };
    (spec.components.db as { requires?: Record<string, string> }).requires = { web: '^1.0.0' };
    await writeFile(file, stringify(spec));
    const lint = await ferry(['lint', file, '--first-release', '--json']);
    const build = await ferry([
      'build',
      file,
      '--first-release',
      '--out',
      join(ws.dir, 'x'),
      '--key',
      ws.key,
      '--json',
    ]);
    expect([lint.code, errorCode(lint)]).toEqual([2, 'E_CYCLE']);
    expect([build.code, errorCode(build)]).toEqual([2, 'E_CYCLE']);
  });

  it('refuses a released version built again with other files, as build does', async () => {
    const product = await fresh('reused');
    await cp(join(ws.product, 'history'), join(product, 'history'), { recursive: true });
    const file = join(product, 'release-1.3.0.yaml');
    const clean = await ferry(['lint', file, '--json']);
    expect(clean.code, clean.stderr).toBe(0);
    // web 1.0.1 was released in 1.1.0 (and again in 1.2.0): its files are fixed for good.
    await writeFile(join(product, 'components/web/1.0.1/index.html'), '<p>other</p>\n');
    const lint = await ferry(['lint', file, '--json']);
    const dry = await ferry(['build', file, '--dry-run', '--out', join(ws.dir, 'reused-out')]);
    const build = await ferry([
      'build',
      file,
      '--out',
      join(ws.dir, 'reused-out'),
      '--key',
      ws.key,
      '--json',
    ]);
    for (const result of [lint, build]) {
      expect([result.code, errorCode(result)]).toEqual([2, 'E_VERSION_REUSED']);
      const { error } = json<{ error: { component: string; message: string } }>(result);
      expect(error.component).toBe('web');
      expect(error.message).toMatch(/web 1\.0\.1 was released in 1\.1\.0 .*index\.html/);
    }
    expect(dry.code).toBe(2);
    expect(dry.stderr).toContain('E_VERSION_REUSED');
  });
});

describe('a missing history is not silent', () => {
  it('a history folder that does not exist is an error unless --first-release', async () => {
    const product = await fresh('first');
    const file = join(product, 'release-1.0.0.yaml');
    const missing = await ferry(['lint', file, '--json']);
    expect([missing.code, errorCode(missing)]).toEqual([2, 'E_HISTORY_MISSING']);
    expect(json<{ error: { message: string } }>(missing).error.message).toContain('does not exist');
    const first = await ferry(['lint', file, '--first-release', '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(json(first)).toMatchObject({ kind: 'install', supportedFrom: [] });
    await expect(readdir(join(product, 'history'))).rejects.toThrow();
  });

  it('an update built on an empty history is an error, in lint and in build', async () => {
    const product = await fresh('empty');
    await mkdir(join(product, 'history'));
    const file = join(product, 'release-1.3.0.yaml');
    const lint = await ferry(['lint', file, '--json']);
    expect([lint.code, errorCode(lint)]).toEqual([2, 'E_HISTORY_MISSING']);
    const out = join(ws.dir, 'empty-out');
    const build = await ferry(['build', file, '--out', out, '--key', ws.key, '--json']);
    expect([build.code, errorCode(build)]).toEqual([2, 'E_HISTORY_MISSING']);
    await expect(readdir(out)).rejects.toThrow();
    expect(await readdir(join(product, 'history'))).toEqual([]);
  });

  it('--first-release with earlier records is refused', async () => {
    const result = await ferry([
      'lint',
      join(ws.product, 'release-1.3.0.yaml'),
      '--first-release',
      '--json',
    ]);
    expect([result.code, errorCode(result)]).toEqual([2, 'E_USAGE']);
  });

  it('a default-location payload with nothing to hash, and a supportedFrom that matches nothing, name their line', async () => {
    const product = await fresh('positions');
    const file = join(product, 'release-1.0.0.yaml');
    const spec = parse(await readFile(file, 'utf8')) as {
      components: Record<string, { payload: unknown }>;
      supportedFrom?: string;
    };
    spec.components['maps'] = { ...spec.components['maps'], payload: { location: 'default' } };
    await writeFile(file, stringify(spec));
    const payload = await ferry(['lint', file, '--first-release', '--json']);
    const { error } = json<{ error: { code: string; message: string; line?: number } }>(payload);
    expect([payload.code, error.code]).toEqual([2, 'E_SPEC_INVALID']);
    expect(error.message).toMatch(
      /^\S+release-1\.0\.0\.yaml:\d+:\d+: maps's default-location payload/,
    );
    expect(error.line).toBeGreaterThan(0);

    await rm(join(product, 'history'), { recursive: true, force: true });
    await cp(join(ws.product, 'history'), join(product, 'history'), { recursive: true });
    const update = join(product, 'release-1.3.0.yaml');
    const later = parse(await readFile(update, 'utf8')) as { supportedFrom?: string };
    later.supportedFrom = '>=9.0.0';
    await writeFile(update, stringify(later));
    const none = await ferry(['lint', update, '--json']);
    const refused = json<{ error: { code: string; message: string; line?: number } }>(none).error;
    expect([none.code, refused.code]).toEqual([2, 'E_SPEC_INVALID']);
    expect(refused.message).toMatch(/yaml:\d+:\d+: supportedFrom ">=9\.0\.0" matches no release/);
    expect(refused.line).toBeGreaterThan(0);
  });

  it('a removed: entry that no earlier release has is an error', async () => {
    const product = await fresh('removed');
    await rm(join(product, 'history'), { recursive: true, force: true });
    await mkdir(join(product, 'history'));
    for (const name of await readdir(join(ws.product, 'history')))
      await writeFile(
        join(product, 'history', name),
        await readFile(join(ws.product, 'history', name)),
      );
    const file = join(product, 'release-1.3.0.yaml');
    const spec = parse(await readFile(file, 'utf8')) as { removed: Record<string, unknown> };
    spec.removed['never-shipped'] = {};
    await writeFile(file, stringify(spec));
    const result = await ferry(['lint', file, '--json']);
    expect([result.code, errorCode(result)]).toEqual([2, 'E_UNKNOWN_COMPONENT']);
    expect(json<{ error: { field: string } }>(result).error.field).toBe('/removed/never-shipped');
  });
});
