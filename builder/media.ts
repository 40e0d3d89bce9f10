import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  access,
  constants,
  mkdir,
  open,
  readdir,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { basename, delimiter, dirname, join } from 'node:path';
import { bundleLayout } from '../bundle/layout.js';
import { openBundleMetadata } from '../bundle/open.js';
import {
  canonicalJson,
  crashBeforeRename,
  envelopeBytes,
  FerryError,
  FORMAT_VERSION,
  ioError,
  MEDIA_README,
  ownTempName,
  partName,
  PARTS_INDEX,
  PARTS_PAYLOAD_TYPE,
  PARTS_SUMS,
  verifiedKeys,
  volumeLabel,
  withHashPool,
  type PartsIndex,
  type BundleMetadata,
  signDocument,
  syncDir,
  tempState,
  type Signer,
} from '../manifest-schema/index.js';
import { refuseExisting } from './signing.js';

export { defaultInstaller } from './installer-beside.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * How much of the bundle one volume carries. FAT32 limits a file to 4 GiB − 1
 * byte (a MiB is left spare); a DVD's capacity is its sector count (DVD±R
 * single and dual layer), less room for the filesystem, the small files and,
 * on volume 1, the installer. A number is the largest part, as given.
 */
export const VOLUME_SIZES = {
  fat32: { part: 4 * GiB - MiB, capacity: null },
  dvd5: { part: 2_295_104 * 2048 - 16 * MiB, capacity: 2_295_104 * 2048 - 16 * MiB },
  dvd9: { part: 4_173_824 * 2048 - 16 * MiB, capacity: 4_173_824 * 2048 - 16 * MiB },
} as const;

/** Below this a part is a test, not a medium: it still has to hold bundle.json. */
const MIN_PART = 64 * 1024;
const MAX_PARTS = 999;
/** ISO 9660 level 2 holds files below 4 GiB; a larger part needs level 3 (multi-extent). */
const ISO_LEVEL_2_LIMIT = 4 * GiB - 1;

export interface VolumeSize {
  part: number;
  /** Set for a medium of fixed size: volume 1 then also makes room for the installer. */
  capacity: number | null;
}

/** `fat32`, `dvd5`, `dvd9`, or a size such as `700M`, `300KiB`, `4G`, `123456`. */
export function parseVolumeSize(text: string): VolumeSize {
  if (text in VOLUME_SIZES) return VOLUME_SIZES[text as keyof typeof VOLUME_SIZES];
  const match = /^(\d+)\s*(|k|kib|m|mib|g|gib)$/i.exec(text.trim());
  if (!match) {
    throw new FerryError('E_USAGE', `--volume-size "${text}" is not a size`, {
      hint: 'use fat32, dvd5, dvd9, or bytes with an optional K, M or G (powers of 1024)',
    });
  }
  const unit = (match[2] ?? '').toLowerCase().charAt(0);
  const scale = unit === 'k' ? 1024 : unit === 'm' ? MiB : unit === 'g' ? GiB : 1;
  return { part: Number(match[1]) * scale, capacity: null };
}

export interface MediaOptions {
  bundle: string;
  out: string;
  volumeSize: VolumeSize;
  /** Volume N is labelled `${label}${N}`; by default from the product and release. */
  label?: string;
  /** The keys that signed the bundle (held, or behind a --signer): they sign the parts index too. */
  signers: readonly Signer[];
  /** Copied onto volume 1; null for none. */
  installer: string | null;
  iso: boolean;
  /** Bytes of the bundle copied onto the volumes so far, of its size. */
  onProgress?: (done: number, total: number) => void;
}

export interface MediaVolume {
  volume: number;
  label: string;
  folder: string;
  part: string;
  size: number;
  sha256: string;
  iso?: string;
}

export interface MediaResult {
  bundle: string;
  id: string;
  size: number;
  volumes: MediaVolume[];
  installer: string | null;
  index: PartsIndex;
}

function defaultLabel(product: string, release: string): string {
  return `${product}_${release}`
    .toUpperCase()
    .replace(/[^A-Z0-9]+/g, '_')
    .slice(0, 26)
    .concat('_');
}

function checkLabel(label: string): string {
  const upper = label.toUpperCase();
  if (!/^[A-Z0-9_]{1,27}$/.test(upper)) {
    throw new FerryError('E_USAGE', `--label "${label}" cannot name a volume`, {
      hint: 'use up to 27 letters, digits and _ (ISO 9660 volume ids are upper case); the volume number is added',
    });
  }
  return upper;
}

/**
 * Cuts a bundle into parts, one per volume folder (`out/vol1`, `out/vol2`,
 * …), with the signed parts index, coreutils checksums and a README on each,
 * and the installer on volume 1. The index is written last, so a folder that
 * was interrupted is never taken for a volume.
 */
export async function writeMedia(options: MediaOptions): Promise<MediaResult> {
  if (options.iso) await requireXorriso();
  const stats = await stat(options.bundle).catch((error: unknown) => {
    throw ioError(error, options.bundle, 'read');
  });
  if (!stats.isFile())
    throw new FerryError('E_BUNDLE_FORMAT', `${options.bundle} is not a bundle file`, {
      file: options.bundle,
      hint: 'pass the .tar or .tar.gz file that `ferry build` wrote',
    });
  const opened = await openBundleMetadata(options.bundle);
  const { metadata, envelope, reader } = opened;
  await reader.close();
  if (reader.format === 'zip') {
    throw new FerryError(
      'E_BUNDLE_FORMAT',
      `${options.bundle} is a zip bundle, which cannot be cut into volumes`,
      {
        file: options.bundle,
        hint: 'a zip keeps its directory at its end, so it could not be planned from volume 1: build it with --format tar (or tar.gz) for media',
      },
    );
  }
  const payload = Buffer.from(envelope.payload, 'base64');
  for (const { keyid, publicKey } of options.signers) {
    const signed = verifiedKeys(envelope, payload, new Map([[keyid, publicKey]])).keyids.has(keyid);
    if (!signed) {
      throw new FerryError('E_USAGE', `key ${keyid.slice(0, 16)}… did not sign ${options.bundle}`, {
        file: options.bundle,
        hint: 'sign the parts index with the keys that signed the bundle (those of `ferry build --key`)',
      });
    }
  }
  const size = reader.size;
  const installerSize = options.installer
    ? await stat(options.installer).then(
        (stats) => stats.size,
        (error: unknown) => {
          throw ioError(error, options.installer as string, 'read');
        },
      )
    : 0;
  const parts = cut(
    size,
    options.volumeSize,
    installerSize,
    planningBytes(metadata, reader.metadataBytes.length),
  );
  const label = options.label
    ? checkLabel(options.label)
    : defaultLabel(metadata.product, metadata.release.version);
  const id = `${metadata.product}@${metadata.release.version}`;
  const made = await mkdir(options.out, { recursive: true }).catch((error: unknown) => {
    throw ioError(error, options.out, 'create');
  });
  const folders = parts.map((_, at) => join(options.out, `vol${at + 1}`));
  for (const folder of folders) {
    await refuseUnfinished(folder);
    await refuseExisting(folder, 'choose an empty --out folder: volumes are never overwritten');
    // An image is a volume too (a disc burnt from an earlier run's would be another bundle).
    if (options.iso)
      await refuseExisting(
        `${folder}.iso`,
        'choose an empty --out folder: volumes are never overwritten',
      );
  }
  let result: MediaResult;
  try {
    // Each volume says whose it is until its parts index is in: a run killed outright
    // (SIGKILL, the OOM killer, a CI timeout) leaves folders of parts as large as they
    // got, and the next run into --out removes them (refuseUnfinished).
    const markers: string[] = [];
    for (const folder of folders) {
      await mkdir(folder, { recursive: true });
      const marker = join(folder, ownTempName('ferry-media', MEDIA_MARKER));
      await writeFile(marker, '');
      markers.push(marker);
    }
    const { format, metadataBytes } = reader;
    result = await writeVolumes(options, {
      metadata,
      reader: { size, format, metadataBytes },
      parts,
      label,
      id,
      folders,
    });
    // Before an image is made of the folder: a whole volume carries none.
    for (const marker of markers) await rm(marker, { force: true });
  } catch (error) {
    // A signer that fails after the parts are cut, or a full disk, leaves nothing behind:
    // the folders are this run's alone, and a second run would refuse them as existing.
    for (const folder of made === undefined ? folders : [made])
      await rm(folder, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
  if (options.iso) {
    for (const volume of result.volumes)
      volume.iso = await writeIso(volume, `${volume.folder}.iso`);
  }
  return result;
}

async function writeVolumes(
  options: MediaOptions,
  cutting: {
    metadata: BundleMetadata;
    reader: { size: number; format: PartsIndex['bundle']['format']; metadataBytes: Buffer };
    parts: Cut[];
    label: string;
    id: string;
    folders: string[];
  },
): Promise<MediaResult> {
  const { metadata, reader, parts, label, id, folders } = cutting;
  const size = reader.size;

  const copied = parts.map(() => 0);
  const report = (at: number, bytes: number): void => {
    copied[at] = bytes;
    options.onProgress?.(
      copied.reduce((sum, n) => sum + n, 0),
      size,
    );
  };
  const written = await withHashPool((pool) =>
    Promise.all(
      parts.map(async (part, at) => {
        const file = join(folders[at] as string, partName(at + 1));
        await mkdir(dirname(file), { recursive: true });
        const handle = await open(file, 'wx');
        try {
          const result = await pool.run(
            {
              segments: [{ path: options.bundle, offset: part.offset, length: part.size }],
              fd: handle.fd,
              position: 0,
            },
            (bytes) => report(at, bytes),
          );
          report(at, result.bytes);
          if (result.bytes !== part.size)
            throw new FerryError('E_IO', `${options.bundle} changed while it was being cut`, {
              file: options.bundle,
              hint: 'wait for whatever writes the bundle to finish, then run ferry media again',
            });
          await handle.sync();
          return { ...part, sha256: result.sha256 };
        } catch (error) {
          throw error instanceof FerryError ? error : ioError(error, file, 'write');
        } finally {
          await handle.close();
        }
      }),
    ),
  );
  const installer = options.installer
    ? await copyInstaller(options.installer, folders[0] as string)
    : null;

  const index: PartsIndex = {
    formatVersion: FORMAT_VERSION,
    bundle: {
      id,
      format: reader.format,
      metadataSha256: sha256Of(reader.metadataBytes),
      size,
    },
    label,
    volumes: parts.length,
    parts: written.map((part, at) => ({
      name: partName(at + 1),
      volume: at + 1,
      offset: part.offset,
      size: part.size,
      sha256: part.sha256,
    })),
  };
  const indexBytes = envelopeBytes(
    await signDocument(Buffer.from(canonicalJson(index)), options.signers, PARTS_PAYLOAD_TYPE),
  );
  const volumes: MediaVolume[] = [];
  for (const [at, part] of index.parts.entries()) {
    const folder = folders[at] as string;
    const sums = [`${part.sha256}  ${part.name}`];
    if (at === 0 && installer) sums.push(`${installer.sha256}  ${INSTALLER_NAME}`);
    await writeSynced(join(folder, PARTS_SUMS), `${sums.join('\n')}\n`);
    await writeSynced(
      join(folder, MEDIA_README),
      readme(index, at + 1, metadata.release.notes, installer !== null),
    );
    volumes.push({
      volume: part.volume,
      label: volumeLabel(index, part.volume),
      folder,
      part: join(folder, part.name),
      size: part.size,
      sha256: part.sha256,
    });
  }
  await placeIndex(folders, indexBytes);
  return { bundle: options.bundle, id, size, volumes, installer: installer?.file ?? null, index };
}

/**
 * The parts index is what makes a folder a volume (verify and install look
 * for it; a run again names a folder without one as interrupted), so it comes
 * last and onto every volume at once: whole and synced beside its place on
 * each, then renamed in. An interrupt before the renames leaves no volume that
 * looks whole beside others that do not (`media verify` would list those as
 * not attached and pass); one between two renames is a window of microseconds.
 */
async function placeIndex(folders: readonly string[], indexBytes: Buffer): Promise<void> {
  const place = (folder: string): string => join(folder, PARTS_INDEX);
  const temps = folders.map((folder) =>
    join(dirname(place(folder)), `.${basename(PARTS_INDEX)}.tmp`),
  );
  for (const temp of temps) await writeSynced(temp, indexBytes);
  crashBeforeRename(PARTS_INDEX);
  for (const [at, temp] of temps.entries())
    await rename(temp, place(folders[at] as string)).catch((error: unknown) => {
      throw ioError(error, place(folders[at] as string), 'write');
    });
  for (const folder of folders) await syncDir(dirname(place(folder)));
}

/** A file written and fsynced: the parts are, and a volume is copied onto a stick soon after. */
async function writeSynced(file: string, data: string | Buffer): Promise<void> {
  try {
    const handle = await open(file, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw ioError(error, file, 'write');
  }
}

/** The kind of the file that names the run writing a volume (ownTempName). */
const MEDIA_MARKER = 'media';

/**
 * A volume folder without its parts index is what an interrupted run leaves
 * (the index is written last): one this machine's run killed outright left
 * (its marker's process is gone) is removed, else say so, rather than only
 * that it exists.
 */
async function refuseUnfinished(folder: string): Promise<void> {
  const isFolder = await stat(folder).then(
    (stats) => stats.isDirectory(),
    () => false,
  );
  if (!isFolder) return;
  const indexed = await stat(join(folder, PARTS_INDEX)).then(
    () => true,
    () => false,
  );
  if (indexed) return;
  const owners = (await readdir(folder).catch(() => [])).map((name) =>
    tempState(name, MEDIA_MARKER),
  );
  if (owners.includes('live'))
    throw new FerryError('E_EXISTS', `${folder} is being written by a ferry media still running`, {
      file: folder,
      hint: 'wait for it to finish, or choose another --out folder',
    });
  if (owners.includes('dead')) {
    await rm(folder, { recursive: true, force: true }).catch((error: unknown) => {
      throw ioError(error, folder, 'remove');
    });
    return;
  }
  throw new FerryError(
    'E_EXISTS',
    `${folder} already exists and holds no ${PARTS_INDEX}: an earlier \`ferry media\` into it was interrupted, so it is not a volume`,
    {
      file: folder,
      hint: `remove the volume folders an interrupted run left in ${dirname(folder)} (vol1, vol2, …) and run ferry media again; volumes are never overwritten`,
    },
  );
}

interface Cut {
  offset: number;
  size: number;
}

/** The parts' ranges: each as large as its volume allows, volume 1 less the installer on a medium of fixed size. */
/**
 * The bytes at the front of the tar that planning reads: bundle.json and the
 * trust roots after it (a rotated key is known only from them), with their
 * headers. For a tar.gz, what they take uncompressed: more than compressed.
 */
export function planningBytes(metadata: BundleMetadata, metadataSize: number): number {
  const layout = bundleLayout('tar', metadata, metadataSize);
  const next = layout.placed.find(
    (placed, at) => at > 0 && !placed.entry.name.startsWith('trust/'),
  );
  return next?.headerOffset ?? layout.dataEnd;
}

function cut(size: number, volume: VolumeSize, installerSize: number, front: number): Cut[] {
  const first =
    volume.capacity === null ? volume.part : Math.min(volume.part, volume.capacity - installerSize);
  // Part 1 must hold what planning reads whole, so volume 1 alone can plan.
  const needed = Math.max(MIN_PART, front + 4096);
  if (volume.part < MIN_PART || first < needed) {
    throw new FerryError(
      'E_USAGE',
      `a volume of ${first} bytes cannot hold part 1 (bundle.json and the trust roots after it take ${front} bytes${installerSize > 0 ? `, and the installer ${installerSize}` : ''})`,
      {
        hint: `use --volume-size of at least ${needed + (volume.capacity === null ? 0 : installerSize)} bytes${installerSize > 0 ? ', or --no-installer' : ''}`,
      },
    );
  }
  const parts: Cut[] = [];
  for (let offset = 0; offset < size;) {
    const length = Math.min(parts.length === 0 ? first : volume.part, size - offset);
    parts.push({ offset, size: length });
    offset += length;
  }
  if (parts.length > MAX_PARTS) {
    throw new FerryError(
      'E_USAGE',
      `a ${size}-byte bundle would take ${parts.length} volumes; at most ${MAX_PARTS}`,
      { hint: 'use a larger --volume-size' },
    );
  }
  return parts;
}

const INSTALLER_NAME = 'ferry-installer';

async function copyInstaller(
  file: string,
  folder: string,
): Promise<{ file: string; sha256: string }> {
  const target = join(folder, INSTALLER_NAME);
  const size = (await stat(file)).size;
  const handle = await open(target, 'wx', 0o755).catch((error: unknown) => {
    throw ioError(error, target, 'create');
  });
  try {
    const result = await withHashPool((pool) =>
      pool.run({ source: file, size, fd: handle.fd, position: 0 }),
    );
    await handle.sync();
    return { file: target, sha256: result.sha256 };
  } finally {
    await handle.close();
  }
}

function sha256Of(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The operator's page on each volume: what it is, where it goes, how to check it. */
function readme(index: PartsIndex, volume: number, notes: string, installer: boolean): string {
  const { volumes, bundle } = index;
  const label = volumeLabel(index, volume);
  const lines = [
    `${bundle.id}: volume ${volume} of ${volumes} (${label})`,
    '',
    `This volume carries part ${volume} of ${volumes} of the Ferry bundle ${bundle.id},`,
    `${bundle.size} bytes in all, ${bundle.format} format (bundle.json sha256 ${bundle.metadataSha256}).`,
    volumes === 1
      ? 'It is the only volume: it holds the whole bundle.'
      : `Volumes are labelled ${volumeLabel(index, 1)} to ${volumeLabel(index, volumes)}; volume 1 holds bundle.json,`,
    ...(volumes === 1
      ? []
      : ['so it alone is enough to plan, and every volume is needed to install.']),
    '',
    'Check this volume without Ferry (from its top folder):',
    `  sha256sum -c ${PARTS_SUMS}`,
    'Check every attached volume against the signed parts index:',
    '  ferry media verify /media --trust /etc/ferry/trust.json',
    '',
    'Install (Ferry reads the parts where they are; nothing is copied or joined):',
    '  ferry plan    /media/VOLUME --root /',
    '  ferry install /media/VOLUME --root /',
    volumes === 1
      ? ''
      : 'Mount every volume (or copy the volume folders side by side onto one disk) and name any\n' +
        'of them; on a terminal Ferry asks for each volume in turn when only one drive is free.',
    ...(installer && volume === 1
      ? [
          '',
          `${INSTALLER_NAME} on this volume is the installer itself (no Node needed): use it as ferry.`,
        ]
      : []),
    '',
    'Release notes:',
    ...notes.split('\n').map((line) => `  ${line}`),
    '',
  ];
  return lines.join('\n');
}

/** Refuses --iso before any part is written when xorriso is not on the PATH. */
async function requireXorriso(): Promise<void> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const found = await access(join(dir, 'xorriso'), constants.X_OK).then(
      () => true,
      () => false,
    );
    if (dir !== '' && found) return;
  }
  throw new FerryError('E_TOOL_MISSING', '--iso needs xorriso, which is not installed', {
    hint: 'install it (apt-get install xorriso), or leave out --iso: the volume folders are complete without it and any ISO 9660 tool can master them',
  });
}

/** An ISO 9660 image of a volume folder (Joliet and Rock Ridge for the long names), by xorriso. */
async function writeIso(volume: MediaVolume, file: string): Promise<string> {
  const level = volume.size <= ISO_LEVEL_2_LIMIT ? '2' : '3';
  const args = [
    '-as',
    'mkisofs',
    '-iso-level',
    level,
    '-J',
    '-joliet-long',
    '-r',
    '-V',
    volume.label,
    '-o',
    file,
    volume.folder,
  ];
  await new Promise<void>((resolve, reject) => {
    const child = spawn('xorriso', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    child.on('error', (error) => reject(ioError(error, 'xorriso', 'run')));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else
        reject(
          new FerryError(
            'E_IO',
            `xorriso failed (exit ${code}) writing ${file}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
            {
              file,
              hint: 'check the free space where --out is',
            },
          ),
        );
    });
  });
  return file;
}
