import { describe, expect, it } from 'vitest';
import { resigned, tarBytes, zipBytes } from './hostile.js';
import { craftedFile, expectRefused, expectRefusedEverywhere, sharedBase } from './refuse.js';

describe('hostile metadata', () => {
  it('an oversized bundle.json is refused from its header, before it is read', async () => {
    const { entries } = await sharedBase();
    const crafted = tarBytes([
      { ...entries[0]!, headerSize: 100 * 1024 * 1024 },
      ...entries.slice(1),
    ]);
    await expectRefused(crafted, 'tar', 'E_METADATA_TOO_LARGE', 'bundle.json');
  });

  it('deeply nested metadata is refused before it is parsed', async () => {
    const { entries } = await sharedBase();
    const deep = Buffer.from(`{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`);
    await expectRefused(
      tarBytes([{ ...entries[0]!, data: deep }, ...entries.slice(1)]),
      'tar',
      'E_METADATA_TOO_LARGE',
    );
  });

  it('bundle.json must come first', async () => {
    const { entries } = await sharedBase();
    await expectRefused(tarBytes([...entries.slice(1), entries[0]!]), 'tar', 'E_METADATA_INVALID');
    await expectRefused(zipBytes([...entries.slice(1), entries[0]!]), 'zip', 'E_METADATA_INVALID');
  });

  it('an unknown format version is refused even when properly signed', async () => {
    const { entries, metadata, key } = await sharedBase();
    const future = { ...metadata, formatVersion: 2 } as unknown as typeof metadata;
    const error = await expectRefused(
      tarBytes([{ ...entries[0]!, data: resigned(future, key) }, ...entries.slice(1)]),
      'tar',
      'E_FORMAT_VERSION',
    );
    expect(error.exitCode).toBe(2);
  });

  it('a file that is no archive at all', async () => {
    await expectRefused(
      Buffer.from('MZ this is not a bundle'.padEnd(1024, '\0')),
      'tar',
      'E_BUNDLE_FORMAT',
    );
  });
});

describe('metadata an older builder let through', () => {
  it('restart lists whose union would not fit FERRY_RESTART are refused before anything runs', async () => {
    // Each list is within the schema; together they pass the 128 KiB Linux
    // allows an environment string, so verification could never start
    // ("spawn E2BIG") and every install would roll back after its updates.
    const { entries, metadata, key } = await sharedBase();
    const services = (prefix: string): string[] =>
      Array.from(
        { length: 256 },
        (_, i) => `${prefix}${String(i).padStart(3, '0')}${'x'.repeat(251)}`,
      );
    const crafted: typeof metadata = {
      ...metadata,
      components: {
        lib: { ...metadata.components.lib!, restart: services('l') },
        app: { ...metadata.components.app!, restart: services('a') },
      },
    };
    const file = await craftedFile(
      tarBytes([{ ...entries[0]!, data: resigned(crafted, key) }, ...entries.slice(1)]),
      'tar',
    );
    const [verify] = await expectRefusedEverywhere(file, 'E_METADATA_INVALID', 3);
    expect(verify!.stderr).toContain('FERRY_RESTART');
    expect(verify!.stderr).toContain('rebuild the bundle with a current Ferry');
  });
});
