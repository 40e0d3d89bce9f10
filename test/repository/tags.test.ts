import { describe, expect, it } from 'vitest';
import { TAGS } from '../../repository/store.js';

/** The OCI distribution spec's tag grammar: at most 128 characters. */
const OCI_TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

describe('the removed record gc leaves for a version', () => {
  it('is named after the version while the name fits in a tag', () => {
    expect(TAGS.removed('1.2.0+build.7')).toBe('ferry.removed.1.2.0_build.7');
  });

  it('is a valid tag for a version whose own tag takes all 128 characters, and one per version', () => {
    const long = (last: string) => `1.0.0-${'a'.repeat(121)}${last}`;
    expect(TAGS.version(long('b'))).toMatch(OCI_TAG);
    const tags = [TAGS.removed(long('b')), TAGS.removed(long('c'))];
    for (const tag of tags) expect(tag).toMatch(OCI_TAG);
    expect(tags[0]).not.toBe(tags[1]);
  });
});
