import { describe, expect, it } from 'vitest';
import { zipBytes, zipRecordAt } from './hostile.js';
import { craftedFile, expectRefused, expectRefusedEverywhere, sharedBase } from './refuse.js';

// Streaming unzip tools trust the local headers; others the central
// directory. Every field of both is what Ferry writes, so neither view can
// differ from the one Ferry checked.
const LIB = 'payload/lib/lib.so';

describe('a zip whose local and central views disagree', () => {
  it('a local header with the encryption flag is refused by verify and install', async () => {
    const { entries } = await sharedBase();
    const bytes = zipBytes(entries);
    const local = zipRecordAt(bytes, LIB, 'local');
    bytes.writeUInt16LE(bytes.readUInt16LE(local + 6) | 0x1, local + 6);
    const error = await expectRefused(bytes, 'zip', 'E_BUNDLE_CORRUPT', LIB);
    expect(error.message).toContain('local header');
    await expectRefusedEverywhere(await craftedFile(bytes, 'zip'), 'E_BUNDLE_CORRUPT', 3, [
      'install',
    ]);
  });

  it('other general-purpose flags in a local header are refused', async () => {
    const { entries } = await sharedBase();
    const bytes = zipBytes(entries);
    const local = zipRecordAt(bytes, LIB, 'local');
    bytes.writeUInt16LE(bytes.readUInt16LE(local + 6) | 0x8, local + 6); // data descriptor
    await expectRefused(bytes, 'zip', 'E_BUNDLE_CORRUPT', LIB);
  });

  // Unpacked and zipped again by another tool, a bundle's entries come back
  // deflated: named as such, not read as damaged JSON or a garbled link target.
  it.each([['bundle.json'], [LIB]])(
    'a compressed entry (%s) is refused as a zip written again by another tool',
    async (name) => {
      const { entries } = await sharedBase();
      const bytes = zipBytes(entries);
      bytes.writeUInt16LE(8, zipRecordAt(bytes, name, 'local') + 8);
      const error = await expectRefused(bytes, 'zip', 'E_BUNDLE_CORRUPT', name);
      expect(error.message).toContain(`${name} is compressed (zip method 8)`);
    },
  );

  it('a zip64 extra field that lies about the size is refused', async () => {
    const { entries } = await sharedBase();
    const bytes = zipBytes(entries);
    const local = zipRecordAt(bytes, LIB, 'local');
    // An extra field Ferry did not write, in place of the name's last bytes' worth of room: a lying length.
    bytes.writeUInt16LE(20, local + 28);
    await expectRefused(bytes, 'zip', 'E_BUNDLE_CORRUPT', LIB);
  });

  it('a central record pointing at another offset is refused', async () => {
    const { entries } = await sharedBase();
    const bytes = zipBytes(entries);
    const record = zipRecordAt(bytes, LIB, 'central');
    bytes.writeUInt32LE(zipRecordAt(bytes, 'payload/app/bin/run', 'local'), record + 42);
    await expectRefused(bytes, 'zip', 'E_BUNDLE_CORRUPT', LIB);
  });

  it('an orphan local entry no central record points at is refused', async () => {
    const { entries } = await sharedBase();
    const whole = zipBytes(entries);
    const orphan = zipBytes([
      { name: 'payload/app/bin/orphan', type: 'File', data: Buffer.from('x') },
    ]);
    const centralStart = zipRecordAt(whole, 'bundle.json', 'central');
    const orphanLocal = orphan.subarray(
      0,
      zipRecordAt(orphan, 'payload/app/bin/orphan', 'central'),
    );
    // The orphan sits between the last entry and the central directory, whose offset is moved past it.
    const bytes = Buffer.concat([
      whole.subarray(0, centralStart),
      orphanLocal,
      whole.subarray(centralStart),
    ]);
    bytes.writeUInt32LE(centralStart + orphanLocal.length, bytes.length - 22 + 16);
    await expectRefused(bytes, 'zip', 'E_BUNDLE_CORRUPT');
  });

  it('an end record whose count hides a central record is refused: unzip tools would miss an entry', async () => {
    const { entries } = await sharedBase();
    const bytes = zipBytes(entries);
    const end = bytes.length - 22;
    bytes.writeUInt16LE(bytes.readUInt16LE(end + 8) - 1, end + 8);
    bytes.writeUInt16LE(bytes.readUInt16LE(end + 10) - 1, end + 10);
    await expectRefused(bytes, 'zip', 'E_MISSING_ENTRY');
  });

  it('a flood of central directory records is refused in bounded time and memory', async () => {
    const { entries } = await sharedBase();
    const whole = zipBytes(entries);
    const centralStart = zipRecordAt(whole, 'bundle.json', 'central');
    const end = whole.length - 22;
    const record = whole.subarray(
      zipRecordAt(whole, LIB, 'central'),
      zipRecordAt(whole, 'payload/app/bin/run', 'central'),
    );
    expect(record.length).toBeGreaterThan(46);
    const count = 60_000;
    const flood = Buffer.concat(Array.from({ length: count }, () => record));
    const trailer = Buffer.from(whole.subarray(end));
    trailer.writeUInt16LE(0xffff - 1, 8);
    trailer.writeUInt16LE(0xffff - 1, 10);
    trailer.writeUInt32LE(end - centralStart + flood.length, 12);
    const bytes = Buffer.concat([whole.subarray(0, end), flood, trailer]);
    const file = await craftedFile(bytes, 'zip');
    await expectRefusedEverywhere(file, 'E_DUPLICATE_ENTRY', 3, ['verify', 'install']);
  });
});
