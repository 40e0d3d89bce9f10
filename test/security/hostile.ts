/**
 * Builds hostile bundles at test time: a real signed bundle of a tiny
 * product, taken apart into entries that a test can rename, duplicate,
 * resize or re-sign, then packed again as tar or zip by hand.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createGzip, gzipSync } from 'node:zlib';
import { Header, Parser, Pax, type ReadEntry } from 'tar';
import { buildBundle } from '../../builder/build.js';
import {
  layoutArchive,
  tarHeader,
  zipCentralRecord,
  zipCrc,
  zipInlineData,
  zipLocalHeader,
  zipTrailer,
  type ArchiveEntry,
} from '../../bundle/layout.js';
import { keygen, trustInit } from '../../builder/signing.js';
import {
  canonicalJson,
  decodeEnvelope,
  decodeMetadata,
  envelopeBytes,
  signEnvelope,
  type BundleMetadata,
} from '../../manifest-schema/index.js';

export type EntryType = 'File' | 'Directory' | 'SymbolicLink' | 'CharacterDevice' | 'Link' | 'FIFO';

export interface CraftEntry {
  name: string;
  type: EntryType;
  data: Buffer;
  linkpath?: string;
  /** Size written in the header, when it should disagree with the data. */
  headerSize?: number;
  /** A PAX extended header before the entry carrying this size, as large-file tar writers emit. */
  paxSize?: number;
  /** The mode in the header: the base bundle's, or the builder's default for the type. */
  mode?: number;
}

export interface Base {
  dir: string;
  trust: string;
  key: KeyObject;
  entries: CraftEntry[];
  metadata: BundleMetadata;
}

/** Signed with another key, against its trust root, carrying a chain of trust roots. */
export interface Signing {
  key: string;
  trust: string;
  trustChain: string;
}

/** A tiny product with two components, a symlink and an executable, built and signed for real. */
export async function baseBundle(dir: string, signing?: Signing): Promise<Base> {
  const product = join(dir, 'tiny');
  await mkdir(join(product, 'app', 'bin'), { recursive: true });
  await mkdir(join(product, 'app', 'conf'), { recursive: true });
  await mkdir(join(product, 'lib'), { recursive: true });
  await writeFile(join(product, 'app', 'bin', 'run'), '#!/bin/sh\necho run\n', { mode: 0o755 });
  await writeFile(join(product, 'app', 'conf', 'app.conf'), 'port = 80\n');
  await symlink('conf/app.conf', join(product, 'app', 'config'));
  await writeFile(join(product, 'lib', 'lib.so'), Buffer.alloc(70_000, 7));
  await writeFile(join(product, 'update.sh'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  await writeFile(
    join(product, 'release.yaml'),
    [
      'product: tiny',
      'release: "1.0.0"',
      'platform: { name: os, range: "*" }',
      'components:',
      '  lib: { version: "1.0.0", payload: ./lib }',
      '  app: { version: "1.0.0", requires: { lib: "^1.0.0" }, payload: ./app, artifacts: { update: [./update.sh] } }',
      '',
    ].join('\n'),
  );
  let privateKey = signing?.key;
  let trust = signing?.trust;
  if (!privateKey || !trust) {
    const made = await keygen(join(dir, 'keys'), 'test');
    privateKey = made.privateKey;
    trust = join(dir, 'trust.json');
    await trustInit([made.publicKey], 1, trust);
  }
  const built = await buildBundle({
    spec: join(product, 'release.yaml'),
    out: join(dir, 'out'),
    keys: [privateKey],
    sourceDateEpoch: '1700000000',
    ...(signing ? { trustChain: signing.trustChain } : {}),
  });
  const entries = await readTarEntries(await readFile(built.bundle));
  const metadataEntry = entries[0] as CraftEntry;
  const metadata = decodeMetadata(decodeEnvelope(metadataEntry.data, 'base').payload, 'base');
  return {
    dir,
    trust,
    key: createPrivateKey(await readFile(privateKey, 'utf8')),
    entries,
    metadata,
  };
}

async function readTarEntries(bytes: Buffer): Promise<CraftEntry[]> {
  const entries: CraftEntry[] = [];
  const parser = new Parser();
  parser.on('entry', (entry: ReadEntry) => {
    const chunks: Buffer[] = [];
    entry.on('data', (chunk: Buffer) => chunks.push(chunk));
    entry.on('end', () =>
      entries.push({
        name: entry.path.replace(/\/$/, ''),
        type: entry.type as EntryType,
        data: Buffer.concat(chunks),
        mode: entry.mode ?? 0o644,
        ...(entry.linkpath ? { linkpath: entry.linkpath } : {}),
      }),
    );
  });
  await new Promise<void>((resolve) => {
    parser.on('end', resolve);
    parser.end(bytes);
  });
  return entries;
}

/** bundle.json bytes for edited metadata, signed with the trusted key: the crafted bundle passes the signature. */
export function resigned(metadata: BundleMetadata, key: KeyObject): Buffer {
  return envelopeBytes(signEnvelope(Buffer.from(canonicalJson(metadata)), [key]));
}

/** The mtime of every entry of the base bundle (its SOURCE_DATE_EPOCH). */
const MTIME = 1_700_000_000;

function archiveEntry(entry: CraftEntry, size: number): ArchiveEntry {
  const type =
    entry.type === 'Directory' ? 'dir' : entry.type === 'SymbolicLink' ? 'symlink' : 'file';
  return {
    name: entry.name,
    type,
    size,
    mode: entry.mode ?? (type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644),
    ...(entry.linkpath !== undefined ? { target: entry.linkpath } : {}),
  };
}

/**
 * A tar of the entries, each header exactly as the builder writes it (so the
 * untouched entries of the base make a bundle that verifies), but where a
 * test asks for a size, a PAX header or a type the builder never writes.
 */
export function tarBytes(entries: readonly CraftEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const size = entry.type === 'File' ? entry.data.length : 0;
    if (entry.paxSize !== undefined)
      blocks.push(new Pax({ path: entry.name, size: entry.paxSize }).encode());
    if (entry.type === 'File' || entry.type === 'Directory' || entry.type === 'SymbolicLink') {
      blocks.push(tarHeader(archiveEntry(entry, entry.headerSize ?? size), MTIME));
    } else {
      const header = new Header({
        path: entry.name,
        mode: entry.mode ?? 0o644,
        uid: 0,
        gid: 0,
        size: entry.headerSize ?? size,
        mtime: new Date(MTIME * 1000),
        type: entry.type,
        uname: '',
        gname: '',
        ...(entry.linkpath ? { linkpath: entry.linkpath } : {}),
      });
      header.encode();
      blocks.push(header.block as Buffer);
    }
    if (size > 0) {
      blocks.push(entry.data, Buffer.alloc((512 - (size % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export interface ZipTweaks {
  /** Rename an entry in the central directory only. */
  centralName?: (name: string) => string;
}

/**
 * A stored zip of the entries written by the builder's own layout functions
 * (symlinks as unix mode 0120777 with the target as data), so untouched
 * entries make a bundle that verifies; other types get a device mode.
 */
export function zipBytes(entries: readonly CraftEntry[], tweaks: ZipTweaks = {}): Buffer {
  const layout = layoutArchive(
    'zip',
    entries.map((entry) => archiveEntry(entry, entry.data.length)),
    MTIME,
  );
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  for (const [at, placed] of layout.placed.entries()) {
    const entry = entries[at] as CraftEntry;
    const data = zipInlineData(placed.entry) ?? entry.data;
    const crc = zipCrc(data);
    parts.push(zipLocalHeader(layout, placed, crc), data);
    const renamed = tweaks.centralName?.(placed.entry.name) ?? placed.entry.name;
    const record = zipCentralRecord(
      layout,
      { ...placed, entry: { ...placed.entry, name: renamed } },
      crc,
    );
    if (entry.type !== 'File' && entry.type !== 'Directory' && entry.type !== 'SymbolicLink')
      record.writeUInt32LE((0o20644 << 16) >>> 0, 38);
    central.push(record);
  }
  const directory = Buffer.concat(central);
  return Buffer.concat([...parts, directory, zipTrailer(layout, directory.length)]);
}

/** The tar of the entries, gzipped as the builder does. */
export function tarGzBytes(entries: readonly CraftEntry[], after = Buffer.alloc(0)): Buffer {
  return gzipSync(Buffer.concat([tarBytes(entries), after]), { level: 6 });
}

/**
 * A gzip of the parts in order, where a number is that many zero bytes,
 * deflated a chunk at a time: a bomb is made without holding it inflated.
 */
export async function gzipParts(parts: ReadonlyArray<Buffer | number>): Promise<Buffer> {
  const gzip = createGzip({ level: 6 });
  const out: Buffer[] = [];
  gzip.on('data', (chunk: Buffer) => out.push(chunk));
  const done = new Promise((resolve) => gzip.on('end', resolve));
  const zeros = Buffer.alloc(1024 * 1024);
  const write = (chunk: Buffer): Promise<void> =>
    new Promise((resolve) => {
      if (gzip.write(chunk)) resolve();
      else gzip.once('drain', resolve);
    });
  for (const part of parts) {
    if (Buffer.isBuffer(part)) await write(part);
    else
      for (let left = part; left > 0; left -= zeros.length)
        await write(zeros.subarray(0, Math.min(left, zeros.length)));
  }
  gzip.end();
  await done;
  return Buffer.concat(out);
}

/** Where the zip record (local `PK\x03\x04` or central `PK\x01\x02`) of `name` starts. */
export function zipRecordAt(bytes: Buffer, name: string, kind: 'local' | 'central'): number {
  const signature = kind === 'local' ? 0x04034b50 : 0x02014b50;
  const nameAt = kind === 'local' ? 30 : 46;
  for (
    let at = bytes.indexOf(Buffer.from(name));
    at >= 0;
    at = bytes.indexOf(Buffer.from(name), at + 1)
  ) {
    const start = at - nameAt;
    if (start >= 0 && bytes.readUInt32LE(start) === signature) return start;
  }
  throw new Error(`no ${kind} record of ${name}`);
}

/** Rewrites one field of a tar entry's header in place (its checksum too), where the builder would never. */
export function editTarHeader(tar: Buffer, name: string, offset: number, field: Buffer): Buffer {
  const at = tar.indexOf(Buffer.from(name));
  field.copy(tar, at + offset);
  let sum = 8 * 32;
  for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += tar[at + i] as number;
  tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'latin1');
  return tar;
}

export function find(entries: readonly CraftEntry[], name: string): CraftEntry {
  const entry = entries.find((e) => e.name === name);
  if (!entry) throw new Error(`no entry ${name}`);
  return entry;
}
