import { describe, expect, it } from 'vitest';
import { escapingLink, unsafeLinkReason, unsafePathReason } from '../../manifest-schema/index.js';

describe('unsafePathReason', () => {
  it.each([
    ['bin/dbd', null],
    ['a/b/c.txt', null],
    ['..hidden', null],
    ['', 'is empty'],
    ['/etc/passwd', 'is absolute'],
    ['../x', 'has a ".." segment'],
    ['a/../../x', 'has a ".." segment'],
    ['a/./b', 'has a "." segment'],
    ['a//b', 'has an empty segment (// or a trailing /)'],
    ['a/', 'has an empty segment (// or a trailing /)'],
    ['a\\b', 'contains a backslash'],
    ['C:x', 'starts with a drive letter'],
    ['a\0b', 'contains a NUL byte'],
    [`${'x'.repeat(256)}`, 'has a segment longer than 255 bytes'],
  ])('%j → %s', (path, reason) => {
    expect(unsafePathReason(path)).toBe(reason);
  });
});

describe('unsafeLinkReason', () => {
  it.each([
    ['theme', 'themes/light', null],
    ['a/b/link', '../c', null],
    ['a/link', '../../etc', 'points outside its component (../../etc)'],
    ['link', '/etc/passwd', 'points at an absolute path (/etc/passwd)'],
    ['link', '..', 'points outside its component (..)'],
    ['link', '.', 'points at its component root'],
    ['link', 'a\\b', 'has a target with a NUL byte or backslash'],
  ])('%s → %s: %s', (link, target, reason) => {
    expect(unsafeLinkReason(link, target)).toBe(reason);
  });
});

describe('escapingLink', () => {
  it.each([
    [
      'links that stay inside, through each other',
      [
        ['a', 'b'],
        ['b', 'c/d'],
        ['c/d', '../e'],
      ],
      null,
    ],
    [
      'a link used as a folder that climbs out',
      [
        ['d/e/l', '../../x'],
        ['b', 'd/e/l/../..'],
      ],
      'b',
    ],
    [
      'a link to a link that leaves (the first one met is named)',
      [
        ['a', 'b'],
        ['b', 'sub/../../out'],
      ],
      'a',
    ],
    [
      'a loop',
      [
        ['a', 'b'],
        ['b', 'a'],
      ],
      'a',
    ],
    [
      'a link to a link to an absolute path',
      [
        ['a', 'b'],
        ['b', '/etc'],
      ],
      'a',
    ],
  ] as const)('%s', (_, links, path) => {
    const found = escapingLink(new Map(links.map(([from, to]) => [from, to])));
    expect(found?.path ?? null).toBe(path);
  });
});
