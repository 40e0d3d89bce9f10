import type { FileHandle } from 'node:fs/promises';
import {
  TAR_END_BLOCKS,
  tarHeader,
  zipCentralRecord,
  zipLocalHeader,
  zipTrailer,
  type ArchiveLayout,
} from '../bundle/layout.js';

/**
 * Writing the archive laid out by bundle/layout.ts (which the readers check
 * against): payload and bundle.json are copied to their offsets by the
 * caller; these write the rest. Zip is written by hand: archiver computes
 * CRC-32 in JavaScript and cannot write at known offsets.
 */

/** Writes every tar header and the end-of-archive blocks. Returns the archive's total size. */
export async function finishTar(handle: FileHandle, layout: ArchiveLayout): Promise<number> {
  for (const { entry, headerOffset } of layout.placed) {
    await writeAt(handle, tarHeader(entry, layout.mtime), headerOffset);
  }
  await writeAt(handle, Buffer.alloc(TAR_END_BLOCKS), layout.dataEnd);
  return layout.dataEnd + TAR_END_BLOCKS;
}

/**
 * Writes each local header (now that the CRCs are known), the central
 * directory and the end records. Returns the archive's total size.
 */
export async function finishZip(
  handle: FileHandle,
  layout: ArchiveLayout,
  crcs: ReadonlyMap<string, number>,
): Promise<number> {
  const central: Buffer[] = [];
  for (const placed of layout.placed) {
    const crc = crcs.get(placed.entry.name) ?? 0;
    await writeAt(handle, zipLocalHeader(layout, placed, crc), placed.headerOffset);
    central.push(zipCentralRecord(layout, placed, crc));
  }
  const directory = Buffer.concat(central);
  const tail = Buffer.concat([directory, zipTrailer(layout, directory.length)]);
  await writeAt(handle, tail, layout.dataEnd);
  return layout.dataEnd + tail.length;
}

export async function writeAt(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await handle.write(
      data,
      written,
      data.length - written,
      position + written,
    );
    written += bytesWritten;
  }
}
