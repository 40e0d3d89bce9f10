import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validatorsSource } from '../../manifest-schema/codegen.js';
import { SCHEMAS } from '../../manifest-schema/declarations.js';
import { ReleaseSpecSchema, validate } from '../../manifest-schema/index.js';
import { ROOT } from '../helpers.js';

describe('schemas', () => {
  it.each(Object.keys(SCHEMAS))(
    'schemas/%s.json is generated from the declarations (run `npm run schemas`)',
    async (name) => {
      const file = join(ROOT, 'manifest-schema', 'schemas', `${name}.json`);
      const written = JSON.parse(await readFile(file, 'utf8')) as unknown;
      expect(written).toEqual(JSON.parse(JSON.stringify(SCHEMAS[name as keyof typeof SCHEMAS])));
    },
  );

  it('validators.generated.ts is compiled from the declarations (run `npm run schemas`)', async () => {
    const written = await readFile(
      join(ROOT, 'manifest-schema', 'validators.generated.ts'),
      'utf8',
    );
    expect(written === validatorsSource(), 'the generated validators are out of date').toBe(true);
  });

  it('reports every problem with its JSON path', () => {
    const result = validate(ReleaseSpecSchema, {
      product: 'Acme!',
      release: 1.1,
      platform: { name: 'acme-os', range: '>=7' },
      components: {
        db: { version: '1.0.0', payload: './db', extra: true },
        'Bad Name': { version: '1.0.0', payload: './x' },
      },
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const paths = result.errors.map((e) => e.path);
    expect(paths).toContain('/product');
    expect(paths).toContain('/release');
    expect(paths).toContain('/components/db/extra');
    expect(paths).toContain('/components/Bad Name');
    expect(result.errors.find((e) => e.path === '/release')?.message).toContain('quote it');
  });

  it('accepts each of the three payload forms and names the field when none fits', () => {
    const base = { product: 'p', release: '1.0.0', platform: { name: 'os', range: '*' } };
    const payloads = [
      './dir',
      { location: 'default' },
      { url: 'https://x/y', sha256: 'a'.repeat(64), size: 1, saveAs: 'y.bin' },
    ];
    for (const payload of payloads) {
      expect(
        validate(ReleaseSpecSchema, { ...base, components: { c: { version: '1.0.0', payload } } })
          .ok,
      ).toBe(true);
    }
    const bad = validate(ReleaseSpecSchema, {
      ...base,
      components: { c: { version: '1.0.0', payload: { url: 'x' } } },
    });
    expect(bad.ok).toBe(false);
    if (!bad.ok)
      expect(bad.errors).toEqual([
        { path: '/components/c/payload', message: expect.any(String) as string },
      ]);
  });
});
