import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ferry, json } from '../helpers.js';
import { snapshot } from '../e2e/appliance.js';
import { find, tarBytes, zipBytes, type CraftEntry } from './hostile.js';
import { freshAppliance, sharedBase } from './refuse.js';

// The same attacks as the verify tests, now against `ferry install`: each is
// refused with its code and the appliance is byte-identical afterwards. Each
// test has its own appliance, so none depends on what another did before it.

type Craft = (entries: CraftEntry[]) => CraftEntry[];
const evil = (name: string, data = 'pwned\n'): CraftEntry => ({
  name,
  type: 'File',
  data: Buffer.from(data),
});

const attacks: Array<[string, 'tar' | 'zip', Craft | ((entries: CraftEntry[]) => Buffer), string]> =
  [
    [
      'path traversal',
      'tar',
      (e) => [...e.slice(0, -1), evil('payload/app/../../../../tmp/ferry-pwned'), ...e.slice(-1)],
      'E_UNSAFE_ENTRY',
    ],
    ['an absolute path', 'zip', (e) => [...e, evil('/tmp/ferry-pwned')], 'E_UNSAFE_ENTRY'],
    [
      'a symlink out of its component',
      'tar',
      (e) =>
        e.map((x) =>
          x.name === 'payload/app/config' ? { ...x, linkpath: '../../../../etc/passwd' } : x,
        ),
      'E_UNSAFE_ENTRY',
    ],
    [
      'a duplicate entry',
      'tar',
      (e) => [
        ...e,
        { ...find(e, 'payload/app/bin/run'), data: Buffer.from('#!/bin/sh\necho second\n') },
      ],
      'E_DUPLICATE_ENTRY',
    ],
    [
      'a payload larger than declared',
      'zip',
      (e) =>
        e.map((x) =>
          x.name === 'payload/lib/lib.so'
            ? { ...x, data: Buffer.concat([x.data, Buffer.alloc(10)]) }
            : x,
        ),
      'E_SIZE_MISMATCH',
    ],
    [
      'a truncated archive',
      'tar',
      (e) => {
        const whole = tarBytes(e);
        return whole.subarray(0, whole.length - 40_000);
      },
      'E_BUNDLE_CORRUPT',
    ],
    [
      'a zip whose central directory names an entry the metadata does not',
      'zip',
      (e) =>
        zipBytes(e, {
          centralName: (n) => (n === 'payload/lib/lib.so' ? 'payload/lib/lib.sx' : n),
        }),
      'E_UNLISTED_ENTRY',
    ],
    [
      'a zip whose local header names another file',
      'zip',
      (e) => {
        const bytes = zipBytes(e);
        const at = bytes.indexOf(Buffer.from('payload/lib/lib.so'));
        bytes[at + 'payload/lib/'.length] = 'L'.charCodeAt(0);
        return bytes;
      },
      'E_BUNDLE_CORRUPT',
    ],
    [
      'a changed payload byte',
      'tar',
      (e) =>
        e.map((x) =>
          x.name === 'payload/lib/lib.so'
            ? {
                ...x,
                data: Buffer.concat([
                  x.data.subarray(0, 100),
                  Buffer.from([8]),
                  x.data.subarray(101),
                ]),
              }
            : x,
        ),
      'E_HASH_MISMATCH',
    ],
  ];

describe('ferry install refuses a hostile bundle and changes nothing', () => {
  it.each(attacks)('%s (%s)', async (name, format, craft, code) => {
    const { dir, entries } = await sharedBase();
    const root = await freshAppliance();
    const crafted = craft(entries);
    const bytes = Buffer.isBuffer(crafted)
      ? crafted
      : format === 'tar'
        ? tarBytes(crafted)
        : zipBytes(crafted);
    const file = join(dir, `install-${code}-${Math.random().toString(36).slice(2)}.${format}`);
    await writeFile(file, bytes);
    const before = await snapshot(root);
    const result = await ferry(['install', file, '--root', root, '--yes', '--json']);
    expect(result.code, result.stderr).toBe(3);
    const lines = result.stdout.trim().split('\n');
    expect(
      json<{ error: { code: string } }>({
        ...result,
        stdout: lines.slice(lines.findIndex((l) => l.startsWith('{\n') || l === '{')).join('\n'),
      }).error.code,
    ).toBe(code);
    expect(await snapshot(root)).toEqual(before);
    expect(existsSync(join(root, 'var/lib/ferry/staging'))).toBe(false);
  });

  it('the untouched bundle installs (the control)', async () => {
    const { dir, entries } = await sharedBase();
    const root = await freshAppliance();
    const file = join(dir, 'install-control.tar');
    await writeFile(file, tarBytes(entries));
    const result = await ferry(['install', file, '--root', root, '--yes']);
    expect(result.code, result.stderr).toBe(0);
  });
});
