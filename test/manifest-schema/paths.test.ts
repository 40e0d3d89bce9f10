import { describe, expect, it } from 'vitest';
import { unsafeLinkReason, unsafePathReason } from '../../manifest-schema/index.js';

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
