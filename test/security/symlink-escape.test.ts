import { describe, expect, it } from 'vitest';
import { expectRefused, formats, sharedBase } from './refuse.js';
import { resigned } from './hostile.js';

describe('a symlink that leaves its component', () => {
  it.each(formats)(
    'is refused when only the %s entry points elsewhere',
    async (extension, pack) => {
      const { entries } = await sharedBase();
      const crafted = entries.map((e) =>
        e.name === 'payload/app/config' ? { ...e, linkpath: '../../../etc/shadow' } : e,
      );
      await expectRefused(pack(crafted), extension, 'E_UNSAFE_ENTRY', 'payload/app/config');
    },
  );

  it.each(formats)(
    'is refused in signed metadata too (%s), before any entry is read',
    async (extension, pack) => {
      const { entries, metadata, key } = await sharedBase();
      const edited = structuredClone(metadata);
      const payload = edited.components.app?.payload;
      if (payload?.type !== 'included') throw new Error('fixture changed');
      const link = payload.files.find((f) => f.type === 'symlink');
      expect(link).toBeDefined();
      if (link) link.target = '../../etc';
      const crafted = [
        { ...entries[0]!, data: resigned(edited, key) },
        ...entries
          .slice(1)
          .map((e) => (e.name === 'payload/app/config' ? { ...e, linkpath: '../../etc' } : e)),
      ];
      const error = await expectRefused(pack(crafted), extension, 'E_UNSAFE_ENTRY');
      expect(error.details.entry).toBe('bundle.json');
      expect(error.details.component).toBe('app');
    },
  );

  it('is refused in a zip before a huge link target is read into memory', async () => {
    const { entries } = await sharedBase();
    const crafted = entries.map((e) =>
      e.name === 'payload/app/config' ? { ...e, linkpath: 'x'.repeat(1_000_000) } : e,
    );
    const error = await expectRefused(
      formats[1][1](crafted),
      'zip',
      'E_UNSAFE_ENTRY',
      'payload/app/config',
    );
    expect(error.message).toContain('1000000-byte target');
  });
});
