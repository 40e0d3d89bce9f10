import { crc32 } from 'node:zlib';
import { Header, Pax } from 'tar';
import {
  expectedEntries,
  type BundleMetadata,
  type ExpectedEntry,
} from '../manifest-schema/index.js';

/**
 * Every byte of a bundle archive but the payload and bundle.json follows
 * from the signed metadata: the builder lays an archive out from it before a
 * byte is written, and the readers regenerate the same layout and require
 * the file to be exactly it (headers, padding, end blocks or records, size).
 * One module for both sides, so what is written and what is accepted cannot
 * drift, and no other tool can find a second archive in the same bytes.
 *
 * Each entry's offset follows from the sizes alone (bundle.json's too: its
 * hashes are fixed-length), so the builder can copy payload into place at
 * known offsets. Zip is stored, zip64 when needed (or forced, for tests).
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
  mtime: number;
  forceZip64: boolean;
}

const ZIP64_LIMIT = 0xffffffff;
/** A tar ends with two zero blocks, and nothing after them. */
export const TAR_END_BLOCKS = 1024;

/** The archive entries of a bundle, in the one order and with the modes the builder writes. */
export function archiveEntries(metadata: BundleMetadata, metadataSize: number): ArchiveEntry[] {
  return toArchiveEntries(expectedEntries(metadata, metadataSize));
}

/** The archive entries for expected entries, bundle.json first. */
export function toArchiveEntries(expected: readonly ExpectedEntry[]): ArchiveEntry[] {
  return expected.map((entry, index) => ({
    name: entry.name,
    type: entry.type,
    size: entry.size,
    // bundle.json is the one entry not read from disk
    mode:
      index === 0
        ? 0o644
        : entry.type === 'dir'
          ? 0o755
          : entry.type === 'symlink'
            ? 0o777
            : (entry.mode ?? 0o644),
    ...(entry.target !== undefined ? { target: entry.target } : {}),
  }));
}

/** Every entry's mtime: the bundle's creation time, in whole seconds. */
export function archiveTime(metadata: { release: { createdAt: string } }): number {
  return Math.floor(Date.parse(metadata.release.createdAt) / 1000);
}

/** The layout of the bundle the signed metadata describes. */
export function bundleLayout(
  format: ArchiveFormat,
  metadata: BundleMetadata,
  metadataSize: number,
  forceZip64 = false,
): ArchiveLayout {
  return layoutArchive(
    format,
    archiveEntries(metadata, metadataSize),
    archiveTime(metadata),
    forceZip64,
  );
}

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
    const dataLength = format === 'tar' ? tarDataSize(entry) : zipEntrySize(entry);
    placed.push({ entry, headerOffset: offset, dataOffset: offset + headerLength });
    offset += headerLength + (format === 'tar' ? roundUp512(dataLength) : dataLength);
  }
  return { format, placed, dataEnd: offset, mtime, forceZip64 };
}

/** The bytes an entry's data takes in a tar: a file's contents, nothing for the rest. */
export function tarDataSize(entry: ArchiveEntry): number {
  return entry.type === 'file' ? entry.size : 0;
}

export function roundUp512(n: number): number {
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
    size: tarDataSize(entry),
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

// ------------------------------------------------------------------ zip

const UNIX_VERSION_MADE_BY = (3 << 8) | 45;
const UTF8_FLAG = 1 << 11;
/** Where a zip local header keeps its CRC-32: the one field the metadata cannot predict for a file. */
export const ZIP_LOCAL_CRC_AT = 14;
export const ZIP_CENTRAL_CRC_AT = 16;

function needsZip64Size(entry: ArchiveEntry, force: boolean): boolean {
  return force || tarDataSize(entry) >= ZIP64_LIMIT;
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
  return entry.type === 'symlink' ? Buffer.byteLength(entry.target ?? '') : tarDataSize(entry);
}

export function zipCrc(data: Buffer): number {
  return crc32(data);
}

/** An entry's local header, given the CRC-32 of its data. */
export function zipLocalHeader(layout: ArchiveLayout, placed: PlacedEntry, crc: number): Buffer {
  const { entry } = placed;
  const { date, time } = dosDateTime(layout.mtime);
  const name = zipName(entry);
  const size = zipEntrySize(entry);
  const sizeZip64 = needsZip64Size(entry, layout.forceZip64);
  const local = Buffer.alloc(30 + name.length + (sizeZip64 ? 20 : 0));
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(zipVersion(layout, placed), 4);
  local.writeUInt16LE(UTF8_FLAG, 6);
  local.writeUInt16LE(0, 8); // stored
  local.writeUInt16LE(time, 10);
  local.writeUInt16LE(date, 12);
  local.writeUInt32LE(crc, ZIP_LOCAL_CRC_AT);
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
  return local;
}

function zipVersion(layout: ArchiveLayout, { entry, headerOffset }: PlacedEntry): number {
  return needsZip64Size(entry, layout.forceZip64) ||
    layout.forceZip64 ||
    headerOffset >= ZIP64_LIMIT
    ? 45
    : 20;
}

/** An entry's central directory record. */
export function zipCentralRecord(layout: ArchiveLayout, placed: PlacedEntry, crc: number): Buffer {
  const { entry, headerOffset } = placed;
  const { date, time } = dosDateTime(layout.mtime);
  const name = zipName(entry);
  const size = zipEntrySize(entry);
  const sizeZip64 = needsZip64Size(entry, layout.forceZip64);
  const offsetZip64 = layout.forceZip64 || headerOffset >= ZIP64_LIMIT;
  const zip64Fields = (sizeZip64 ? 2 : 0) + (offsetZip64 ? 1 : 0);
  const extraLength = zip64Fields > 0 ? 4 + 8 * zip64Fields : 0;
  const record = Buffer.alloc(46 + name.length + extraLength);
  record.writeUInt32LE(0x02014b50, 0);
  record.writeUInt16LE(UNIX_VERSION_MADE_BY, 4);
  record.writeUInt16LE(zipVersion(layout, placed), 6);
  record.writeUInt16LE(UTF8_FLAG, 8);
  record.writeUInt16LE(0, 10);
  record.writeUInt16LE(time, 12);
  record.writeUInt16LE(date, 14);
  record.writeUInt32LE(crc, ZIP_CENTRAL_CRC_AT);
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
  return record;
}

/** The zip64 end record and locator when needed, then the end of central directory record. */
export function zipTrailer(layout: ArchiveLayout, directoryLength: number): Buffer {
  const directoryOffset = layout.dataEnd;
  const count = layout.placed.length;
  const trailerZip64 =
    layout.forceZip64 ||
    count >= 0xffff ||
    directoryOffset >= ZIP64_LIMIT ||
    directoryLength >= ZIP64_LIMIT;
  const trailer: Buffer[] = [];
  if (trailerZip64) {
    const record = Buffer.alloc(56);
    record.writeUInt32LE(0x06064b50, 0);
    record.writeBigUInt64LE(44n, 4);
    record.writeUInt16LE(UNIX_VERSION_MADE_BY, 12);
    record.writeUInt16LE(45, 14);
    record.writeBigUInt64LE(BigInt(count), 24);
    record.writeBigUInt64LE(BigInt(count), 32);
    record.writeBigUInt64LE(BigInt(directoryLength), 40);
    record.writeBigUInt64LE(BigInt(directoryOffset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(directoryOffset + directoryLength), 8);
    locator.writeUInt32LE(1, 16);
    trailer.push(record, locator);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(trailerZip64 ? 0xffff : count, 8);
  end.writeUInt16LE(trailerZip64 ? 0xffff : count, 10);
  end.writeUInt32LE(trailerZip64 ? ZIP64_LIMIT : directoryLength, 12);
  end.writeUInt32LE(trailerZip64 ? ZIP64_LIMIT : directoryOffset, 16);
  trailer.push(end);
  return Buffer.concat(trailer);
}
