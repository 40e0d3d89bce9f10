import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

async function imports(dir: string): Promise<Array<{ file: string; target: string }>> {
  const found: Array<{ file: string; target: string }> = [];
  for (const entry of await readdir(join(ROOT, dir), { recursive: true })) {
    if (!/\.tsx?$/.test(entry)) continue;
    const text = await readFile(join(ROOT, dir, entry), 'utf8');
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g))
      found.push({ file: `${dir}/${entry}`, target: match[1] as string });
  }
  return found;
}

describe('package boundaries', () => {
  it.each([
    // The contract imports nothing else of ours (README), the repository included.
    ['manifest-schema', /\.\.\/(bundle|builder|installer|repository|cli)\//],
    ['builder', /\.\.\/(installer|cli)\//],
    ['installer', /\.\.\/(builder|cli|repository)\//],
    // The repository reads bundles (bundle/) but neither builds nor installs them.
    ['repository', /\.\.\/(builder|installer|cli)\//],
  ])('%s imports neither side', async (dir, forbidden) => {
    const crossing = (await imports(dir)).filter(({ target }) => forbidden.test(target));
    expect(crossing).toEqual([]);
  });

  it('bundle imports nothing of ours but manifest-schema', async () => {
    const ours = (await imports('bundle')).filter(({ target }) => target.startsWith('..'));
    expect(ours.filter(({ target }) => !target.startsWith('../manifest-schema/'))).toEqual([]);
    expect(ours.length).toBeGreaterThan(0);
  });

  it('the command line loads the builder and the installer only when a command runs', async () => {
    // `ferry inspect` must not pay for loading the builder: static imports are types only.
    const files = (await readdir(join(ROOT, 'cli'), { recursive: true })).filter((f) =>
      f.endsWith('.ts'),
    );
    const eager: string[] = [];
    for (const file of files) {
      const text = await readFile(join(ROOT, 'cli', file), 'utf8');
      for (const match of text.matchAll(
        /^import (?!type )[^;]*'((?:\.\.\/)+(?:builder|installer|bundle|repository)\/[^']*)'/gm,
      ))
        eager.push(`cli/${file}: ${match[1]}`);
    }
    expect(eager).toEqual([]);
  });

  it.each([
    'installer/plan.ts',
    'installer/engine/next-state.ts',
    'builder/compose.ts',
    'repository/policy.ts',
  ])('the pure %s imports no I/O', async (file) => {
    const text = await readFile(join(ROOT, file), 'utf8');
    const runtime = [...text.matchAll(/^import (?!type )[^;]*?'([^'\n]+)';/gm)].map((m) => m[1]);
    // manifest-schema's index re-exports file helpers too, but the pure modules may take only
    // values from it; what they must never load is node's own I/O or the engine around them.
    expect(
      runtime.filter(
        (target) => !/^(\.\.\/)+manifest-schema\/|^\.\/(plan|payload)\.js$/.test(target ?? ''),
      ),
    ).toEqual([]);
  });

  it('only manifest-schema/declarations.ts loads TypeBox at run time', async () => {
    const runtime = (await imports('manifest-schema')).filter(
      ({ target, file }) => target === 'typebox' && !file.endsWith('declarations.ts'),
    );
    const texts = await Promise.all(runtime.map(({ file }) => readFile(join(ROOT, file), 'utf8')));
    for (const text of texts) expect(text).not.toMatch(/^import (?!type)[^;]*'typebox'/m);
  });
});
