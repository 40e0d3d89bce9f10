import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { tarBytes, tarGzBytes, zipBytes, type CraftEntry } from './hostile.js';
import { craftedFile, expectRefused, expectRefusedEverywhere, sharedBase } from './refuse.js';

// A file that is both a tar and a zip: tar tools read the tar from the
// front, unzip finds the zip's end record at the back. Either way one of the
// two archives holds bytes the bundle's layout has no room for.
const evil: CraftEntry[] = [
  { name: 'payload/app/bin/run', type: 'File', data: Buffer.from('#!/bin/sh\nrm -rf /\n') },
];

describe('a tar that is also a zip', () => {
  it.each([
    ['tar', 'zip', tarBytes, zipBytes],
    ['zip', 'tar', zipBytes, tarBytes],
  ] as const)('a genuine %s with a %s appended is refused', async (format, _, genuine, other) => {
    const { entries } = await sharedBase();
    const file = await craftedFile(Buffer.concat([genuine(entries), other(evil)]), format);
    await expectRefusedEverywhere(file, 'E_BUNDLE_CORRUPT', 3, ['verify', 'install']);
  });
});

/** An empty gzip member whose header carries `extra` in its extra field (FEXTRA). */
function emptyMemberCarrying(extra: Buffer): Buffer {
  const empty = gzipSync(Buffer.alloc(0));
  const header = Buffer.from(empty.subarray(0, 10));
  header[3] = 0x04;
  const length = Buffer.alloc(2);
  length.writeUInt16LE(extra.length);
  return Buffer.concat([header, length, extra, empty.subarray(10)]);
}

// gunzip reads any number of members and skips a header's optional fields,
// so a member that inflates to nothing changes no byte of the tar, while
// unzip (which reads from the back) finds the zip that member's extra field
// carries: the bundle's tar for tar, a hostile zip for unzip, in one file.
describe('a tar.gz that is also a zip', () => {
  it('an empty gzip member carrying a zip after the bundle is refused', async () => {
    const { entries } = await sharedBase();
    const bytes = Buffer.concat([tarGzBytes(entries), emptyMemberCarrying(zipBytes(evil))]);
    const file = await craftedFile(bytes, 'tar.gz');
    const runs = await expectRefusedEverywhere(file, 'E_BUNDLE_CORRUPT', 3, ['verify', 'install']);
    for (const run of runs) expect(run.stderr).toContain('after its gzip member');
  });

  it('an empty gzip member before the bundle is refused', async () => {
    const { entries } = await sharedBase();
    const bytes = Buffer.concat([gzipSync(Buffer.alloc(0)), tarGzBytes(entries)]);
    await expectRefused(bytes, 'tar.gz', 'E_BUNDLE_CORRUPT');
  });

  it('a gzip header with a comment is refused', async () => {
    const { entries } = await sharedBase();
    const gz = tarGzBytes(entries);
    const header = Buffer.from(gz.subarray(0, 10));
    header[3] = 0x10;
    const bytes = Buffer.concat([header, Buffer.from('PK\x05\x06 hidden\0'), gz.subarray(10)]);
    const error = await expectRefused(bytes, 'tar.gz', 'E_BUNDLE_CORRUPT');
    expect(error.message).toContain('gzip header');
  });

  it('a gzip trailer whose CRC-32 is not the data is refused', async () => {
    const { entries } = await sharedBase();
    const bytes = Buffer.from(tarGzBytes(entries));
    bytes[bytes.length - 8] = (bytes[bytes.length - 8] as number) ^ 1;
    const error = await expectRefused(bytes, 'tar.gz', 'E_BUNDLE_CORRUPT');
    expect(error.message).toContain('gzip trailer');
  });

  // Those under 18 bytes also hold what was set aside as the trailer: the
  // header is not where they end.
  it.each([2, 9, 10, 17])('a tar.gz cut to %i bytes is said to be cut short', async (size) => {
    const { entries } = await sharedBase();
    const bytes = tarGzBytes(entries).subarray(0, size);
    const error = await expectRefused(bytes, 'tar.gz', 'E_BUNDLE_CORRUPT');
    expect(error.message).toContain(`is cut short: ${size} bytes`);
    expect(error.details.file).toMatch(/\.tar\.gz$/);
  });
});
