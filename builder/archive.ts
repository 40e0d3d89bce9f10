import { crc32 } from 'node:zlib';
import { Header, Pax } from 'tar';
import type { FileHandle } from 'node:fs/promises';

/**
 * Bundle archives are laid out before a byte is written: every entry's
 * offset follows from the sizes alone (bundle.json's size too, since its
 * hashes are fixed-length). So payload files can be hashed and copied into
 * place in one read each, two at a time, and bundle.json, written last, still
 * comes first in the file. Zip is written by hand (store, zip64 when needed):
 * archiver computes CRC-32 in JavaScript and cannot write at known offsets.
 */
export type ArchiveFormat = 'tar' | 'zip';

export interface ArchiveEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink';
  size: number;
  mode: number;
  target?: string;
}

export interface PlacedEntry {
  entry: ArchiveEntry;
  /** Where the entry's data starts in the archive. */
  dataOffset: number;
  headerOffset: number;
}

export interface ArchiveLayout {
  format: ArchiveFormat;
  placed: PlacedEntry[];
  /** Bytes up to the end of the last entry's data (before the trailer). */
  dataEnd: number;
}

const ZIP64_LIMIT = 0xffffffff;

export function layoutArchive(
  format: ArchiveFormat,
  entries: readonly ArchiveEntry[],
  mtime: number,
  forceZip64 = false,
): ArchiveLayout {
  let offset = 0;
  const placed: PlacedEntry[] = [];
  for (const entry of entries) {
    const headerLength =
      format === 'tar' ? tarHeader(entry, mtime).length : zipLocalHeaderLength(entry, forceZip64);
    const dataLength = format === 'tar' ? dataSize(entry) : zipEntrySize(entry);
    placed.push({ entry, headerOffset: offset, dataOffset: offset + headerLength });
    offset += headerLength + (format === 'tar' ? roundUp512(dataLength) : dataLength);
  }
  return { format, placed, dataEnd: offset };
}

/** The bytes an entry's data takes: file contents, or a zip symlink's target. */
function dataSize(entry: ArchiveEntry): number {
  if (entry.type === 'file') return entry.size;
  return 0;
}

function roundUp512(n: number): number {
  return Math.ceil(n / 512) * 512;
}

// ------------------------------------------------------------------ tar

/** The header block(s) of a tar entry: a PAX header first when the name or link is too long for ustar. */
export function tarHeader(entry: ArchiveEntry, mtime: number): Buffer {
  const path = entry.type === 'dir' ? `${entry.name}/` : entry.name;
  const fields = {
    path,
    mode: entry.mode,
    uid: 0,
    gid: 0,
    size: entry.type === 'file' ? entry.size : 0,
    mtime: new Date(mtime * 1000),
    type:
      entry.type === 'file'
        ? ('File' as const)
        : entry.type === 'dir'
          ? ('Directory' as const)
          : ('SymbolicLink' as const),
    uname: '',
    gname: '',
    ...(entry.target !== undefined ? { linkpath: entry.target } : {}),
  };
  const header = new Header(fields);
  const needPax = header.encode();
  const block = header.block as Buffer;
  if (!needPax) return block;
  const pax = new Pax({
    path,
    ...(entry.target !== undefined ? { linkpath: entry.target } : {}),
    size: fields.size,
    mtime: fields.mtime,
  }).encode();
  return Buffer.concat([pax, block]);
}

/** Writes every tar header and the end-of-archive blocks; file data is written by the caller. */
export async function finishTar(
  handle: FileHandle,
  layout: ArchiveLayout,
  mtime: number,
): Promise<number> {
  for (const { entry, headerOffset } of layout.placed) {
    await writeAt(handle, tarHeader(entry, mtime), headerOffset);
  }
  const end = Buffer.alloc(1024);
  await writeAt(handle, end, layout.dataEnd);
  return layout.dataEnd + end.length;
}

// ------------------------------------------------------------------ zip

const UNIX_VERSION_MADE_BY = (3 << 8) | 45;
const UTF8_FLAG = 1 << 11;

function needsZip64Size(entry: ArchiveEntry, force: boolean): boolean {
  return force || dataSize(entry) >= ZIP64_LIMIT;
}

function zipName(entry: ArchiveEntry): Buffer {
  return Buffer.from(entry.type === 'dir' ? `${entry.name}/` : entry.name, 'utf8');
}

function zipLocalHeaderLength(entry: ArchiveEntry, force: boolean): number {
  return 30 + zipName(entry).length + (needsZip64Size(entry, force) ? 20 : 0);
}

function dosDateTime(mtime: number): { date: number; time: number } {
  const when = new Date(Math.max(mtime, 315532800) * 1000); // DOS dates start in 1980
  return {
    date:
      ((when.getUTCFullYear() - 1980) << 9) | ((when.getUTCMonth() + 1) << 5) | when.getUTCDate(),
    time:
      (when.getUTCHours() << 11) |
      (when.getUTCMinutes() << 5) |
      Math.floor(when.getUTCSeconds() / 2),
  };
}

function externalAttributes(entry: ArchiveEntry): number {
  const type = entry.type === 'file' ? 0o100000 : entry.type === 'dir' ? 0o040000 : 0o120000;
  return (((type | entry.mode) << 16) >>> 0) + (entry.type === 'dir' ? 0x10 : 0);
}

/** Zip data for an entry that is not a file read from disk: a symlink's target, or nothing. */
export function zipInlineData(entry: ArchiveEntry): Buffer | null {
  return entry.type === 'symlink' ? Buffer.from(entry.target ?? '', 'utf8') : null;
}

export function zipEntrySize(entry: ArchiveEntry): number {
  return entry.type === 'symlink' ? Buffer.byteLength(entry.target ?? '') : dataSize(entry);
}

/**
 * Writes each local header (now that the CRCs are known), the central
 * directory and the end records. Returns the archive's total size.
 */
export async function finishZip(
  handle: FileHandle,
  layout: ArchiveLayout,
  crcs: ReadonlyMap<string, number>,
  mtime: number,
  forceZip64 = false,
): Promise<number> {
  const { date, time } = dosDateTime(mtime);
  const central: Buffer[] = [];
  for (const { entry, headerOffset } of layout.placed) {
    const name = zipName(entry);
    const size = zipEntrySize(entry);
    const crc = crcs.get(entry.name) ?? 0;
    const sizeZip64 = needsZip64Size(entry, forceZip64);
    const offsetZip64 = forceZip64 || headerOffset >= ZIP64_LIMIT;
    const version = sizeZip64 || offsetZip64 ? 45 : 20;

    const local = Buffer.alloc(30 + name.length + (sizeZip64 ? 20 : 0));
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(version, 4);
    local.writeUInt16LE(UTF8_FLAG, 6);
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt16LE(time, 10);
    local.writeUInt16LE(date, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(sizeZip64 ? ZIP64_LIMIT : size, 18);
    local.writeUInt32LE(sizeZip64 ? ZIP64_LIMIT : size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(sizeZip64 ? 20 : 0, 28);
    name.copy(local, 30);
    if (sizeZip64) {
      const extra = 30 + name.length;
      local.writeUInt16LE(0x0001, extra);
      local.writeUInt16LE(16, extra + 2);
      local.writeBigUInt64LE(BigInt(size), extra + 4);
      local.writeBigUInt64LE(BigInt(size), extra + 12);
    }
    await writeAt(handle, local, headerOffset);

    const zip64Fields = (sizeZip64 ? 2 : 0) + (offsetZip64 ? 1 : 0);
    const extraLength = zip64Fields > 0 ? 4 + 8 * zip64Fields : 0;
    const record = Buffer.alloc(46 + name.length + extraLength);
    record.writeUInt32LE(0x02014b50, 0);
    record.writeUInt16LE(UNIX_VERSION_MADE_BY, 4);
    record.writeUInt16LE(version, 6);
    record.writeUInt16LE(UTF8_FLAG, 8);
    record.writeUInt16LE(0, 10);
    record.writeUInt16LE(time, 12);
    record.writeUInt16LE(date, 14);
    record.writeUInt32LE(crc, 16);
    record.writeUInt32LE(sizeZip64 ? ZIP64_LIMIT : size, 20);
    record.writeUInt32LE(sizeZip64 ? ZIP64_LIMIT : size, 24);
    record.writeUInt16LE(name.length, 28);
    record.writeUInt16LE(extraLength, 30);
    record.writeUInt16LE(0, 32); // comment
    record.writeUInt16LE(0, 34); // disk
    record.writeUInt16LE(0, 36); // internal attributes
    record.writeUInt32LE(externalAttributes(entry), 38);
    record.writeUInt32LE(offsetZip64 ? ZIP64_LIMIT : headerOffset, 42);
    name.copy(record, 46);
    if (extraLength > 0) {
      let at = 46 + name.length;
      record.writeUInt16LE(0x0001, at);
      record.writeUInt16LE(8 * zip64Fields, at + 2);
      at += 4;
      if (sizeZip64) {
        record.writeBigUInt64LE(BigInt(size), at);
        record.writeBigUInt64LE(BigInt(size), at + 8);
        at += 16;
      }
      if (offsetZip64) record.writeBigUInt64LE(BigInt(headerOffset), at);
    }
    central.push(record);
  }
  const directory = Buffer.concat(central);
  const directoryOffset = layout.dataEnd;
  const count = layout.placed.length;
  const trailerZip64 =
    forceZip64 ||
    count >= 0xffff ||
    directoryOffset >= ZIP64_LIMIT ||
    directory.length >= ZIP64_LIMIT;
  const trailer: Buffer[] = [];
  if (trailerZip64) {
    const record = Buffer.alloc(56);
    record.writeUInt32LE(0x06064b50, 0);
    record.writeBigUInt64LE(44n, 4);
    record.writeUInt16LE(UNIX_VERSION_MADE_BY, 12);
    record.writeUInt16LE(45, 14);
    record.writeBigUInt64LE(BigInt(count), 24);
    record.writeBigUInt64LE(BigInt(count), 32);
    record.writeBigUInt64LE(BigInt(directory.length), 40);
    record.writeBigUInt64LE(BigInt(directoryOffset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(directoryOffset + directory.length), 8);
    locator.writeUInt32LE(1, 16);
    trailer.push(record, locator);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(trailerZip64 ? 0xffff : count, 8);
  end.writeUInt16LE(trailerZip64 ? 0xffff : count, 10);
  end.writeUInt32LE(trailerZip64 ? ZIP64_LIMIT : directory.length, 12);
  end.writeUInt32LE(trailerZip64 ? ZIP64_LIMIT : directoryOffset, 16);
  trailer.push(end);
  const tail = Buffer.concat([directory, ...trailer]);
  await writeAt(handle, tail, directoryOffset);
  return directoryOffset + tail.length;
}

export function zipCrc(data: Buffer): number {
  return crc32(data);
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
