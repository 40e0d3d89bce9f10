import { describe, expect, it } from 'vitest';
import { resigned, tarBytes, zipBytes } from './hostile.js';
import { expectRefused, sharedBase } from './refuse.js';

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
