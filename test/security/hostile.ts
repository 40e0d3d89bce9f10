/**
 * Builds hostile bundles at test time: a real signed bundle of a tiny
 * product, taken apart into entries that a test can rename, duplicate,
 * resize or re-sign, then packed again as tar or zip by hand.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Header, Parser, Pax, type ReadEntry } from 'tar';
import { buildBundle } from '../../builder/build.js';
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

export function tarBytes(entries: readonly CraftEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const size = entry.type === 'File' ? entry.data.length : 0;
    const header = new Header({
      path: entry.type === 'Directory' ? `${entry.name}/` : entry.name,
      mode: entry.type === 'Directory' ? 0o755 : 0o644,
      uid: 0,
      gid: 0,
      size: entry.headerSize ?? size,
      mtime: new Date(1_700_000_000_000),
      type: entry.type,
      uname: '',
      gname: '',
      ...(entry.linkpath ? { linkpath: entry.linkpath } : {}),
    });
    if (entry.paxSize !== undefined)
      blocks.push(new Pax({ path: entry.name, size: entry.paxSize }).encode());
    header.encode();
    blocks.push(header.block as Buffer);
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

/** A stored zip of the entries, symlinks as unix mode 0120777 with the target as data. */
export function zipBytes(entries: readonly CraftEntry[], tweaks: ZipTweaks = {}): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.type === 'Directory' ? `${entry.name}/` : entry.name);
    const data = entry.type === 'SymbolicLink' ? Buffer.from(entry.linkpath ?? '') : entry.data;
    const crc = crc32(data);
    const local = Buffer.alloc(30 + name.length);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x800, 6);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    name.copy(local, 30);
    const centralName = Buffer.from(
      tweaks.centralName ? tweaks.centralName(name.toString()) : name.toString(),
    );
    const record = Buffer.alloc(46 + centralName.length);
    record.writeUInt32LE(0x02014b50, 0);
    record.writeUInt16LE((3 << 8) | 20, 4);
    record.writeUInt16LE(20, 6);
    record.writeUInt16LE(0x800, 8);
    record.writeUInt32LE(crc, 16);
    record.writeUInt32LE(data.length, 20);
    record.writeUInt32LE(data.length, 24);
    record.writeUInt16LE(centralName.length, 28);
    const kind =
      entry.type === 'SymbolicLink'
        ? 0o120777
        : entry.type === 'Directory'
          ? 0o40755
          : entry.type === 'File'
            ? 0o100644
            : 0o20644;
    record.writeUInt32LE((kind << 16) >>> 0, 38);
    record.writeUInt32LE(offset, 42);
    centralName.copy(record, 46);
    locals.push(local, data);
    central.push(record);
    offset += local.length + data.length;
  }
  const directory = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

export function find(entries: readonly CraftEntry[], name: string): CraftEntry {
  const entry = entries.find((e) => e.name === name);
  if (!entry) throw new Error(`no entry ${name}`);
  return entry;
}
