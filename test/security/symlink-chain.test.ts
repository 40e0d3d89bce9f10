import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildBundle } from '../../builder/build.js';
import { codeOf } from '../helpers.js';
import { resigned, type CraftEntry } from './hostile.js';
import {
  craftedFile,
  expectRefused,
  expectRefusedEverywhere,
  formats,
  sharedBase,
} from './refuse.js';

// Each link alone stays inside its component, lexically. But `a/b/c/l`
// points three levels up, where the kernel goes when it follows it, so
// `esc -> a/b/c/l/../../../../etc` climbs out of the component. Links are
// resolved through each other, as the kernel will, before any is accepted.
const chain = [
  { path: 'a/b/c/l', target: '../../../bin' },
  { path: 'esc', target: 'a/b/c/l/../../../../etc' },
];

describe('a symlink chain that leaves its component', () => {
  it.each(formats)(
    'is refused in validly signed metadata (%s), by every command',
    async (extension, pack) => {
      const { entries, metadata, key } = await sharedBase();
      const edited = structuredClone(metadata);
      const payload = edited.components.app?.payload;
      if (payload?.type !== 'included') throw new Error('fixture changed');
      for (const link of chain)
        payload.files.push({ path: link.path, type: 'symlink', mode: 0o777, target: link.target });
      const links: CraftEntry[] = chain.map((link) => ({
        name: `payload/app/${link.path}`,
        type: 'SymbolicLink',
        data: Buffer.alloc(0),
        linkpath: link.target,
      }));
      const bytes = pack([
        { ...entries[0]!, data: resigned(edited, key) },
        ...entries.slice(1),
        ...links,
      ]);
      const error = await expectRefused(bytes, extension, 'E_UNSAFE_ENTRY', 'bundle.json');
      expect(error.details.component).toBe('app');
      expect(error.message).toContain('esc');
      await expectRefusedEverywhere(await craftedFile(bytes, extension), 'E_UNSAFE_ENTRY', 3, [
        'verify',
        'plan',
        'install',
      ]);
    },
  );

  it('is refused by the builder, from the payload folder', async () => {
    const { dir } = await sharedBase();
    const product = join(dir, 'chain-product');
    await mkdir(join(product, 'app', 'a', 'b', 'c'), { recursive: true });
    await mkdir(join(product, 'app', 'bin'), { recursive: true });
    await writeFile(join(product, 'app', 'bin', 'run'), 'run\n');
    for (const link of chain) await symlink(link.target, join(product, 'app', link.path));
    await writeFile(
      join(product, 'release.yaml'),
      'product: chain\nrelease: "1.0.0"\nplatform: { name: os, range: "*" }\ncomponents:\n  app: { version: "1.0.0", payload: ./app }\n',
    );
    const code = await codeOf(() =>
      buildBundle({
        spec: join(product, 'release.yaml'),
        out: join(dir, 'chain-out'),
        keys: [join(dir, 'keys', 'test.key')],
        sourceDateEpoch: '1700000000',
      }),
    );
    expect(code).toBe('E_SPEC_PATH');
  });
});
