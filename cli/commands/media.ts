import type { MediaResult } from '../../builder/media.js';
import {
  flag,
  jsonOption,
  optional,
  positional,
  required,
  signingInput,
  signingOptions,
  usageError,
  type Command,
} from '../args.js';
import { bytes } from '../format.js';
import { meterOf } from '../progress.js';

export const command: Command = {
  usage:
    'ferry media BUNDLE --out DIR (--key KEY... | --signer COMMAND... [--signer-key PUB...]) [--volume-size fat32|dvd5|dvd9|SIZE] [--label PREFIX] [--installer FILE | --no-installer] [--iso]',
  summary:
    'cut a bundle into volumes for USB sticks or DVDs: parts, a signed parts index, checksums, a README; `ferry media verify` checks them',
  options: {
    out: { type: 'string', arg: 'DIR', help: 'the folder the volume folders are written to' },
    ...signingOptions,
    'volume-size': {
      type: 'string',
      arg: 'SIZE',
      help: 'fat32 (default), dvd5, dvd9, or a size: 700M, 2G',
    },
    label: { type: 'string', arg: 'PREFIX', help: "the volumes' label prefix" },
    installer: {
      type: 'string',
      arg: 'FILE',
      help: 'the ferry-installer for volume 1 (default: the one packaged with Ferry)',
    },
    'no-installer': { type: 'boolean', help: 'put no installer on the volumes' },
    iso: { type: 'boolean', help: 'also write each volume as an ISO image' },
    ...jsonOption,
  },
  async run({ values, positionals }) {
    const { defaultInstaller, parseVolumeSize, writeMedia } =
      await import('../../builder/media.js');
    const { readSigners } = await import('../../builder/signing.js');
    const label = optional(values, 'label');
    const given = optional(values, 'installer');
    // Before anything is read or written: which was meant cannot be guessed.
    if (given !== undefined && flag(values, 'no-installer'))
      throw usageError(
        `--installer ${given} and --no-installer were both given: one asks for that installer on volume 1, the other for none`,
        'pass --installer FILE to put that installer on volume 1, or --no-installer to leave it out, not both',
      );
    const installer = flag(values, 'no-installer') ? null : (given ?? (await defaultInstaller()));
    const progress = meterOf('media: wrote');
    const result = await writeMedia({
      onProgress: progress.onProgress,
      bundle: positional(positionals, 'BUNDLE'),
      out: required(values, 'out'),
      volumeSize: parseVolumeSize(optional(values, 'volume-size') ?? 'fat32'),
      // The keys that signed the bundle sign its parts index: held, or behind a --signer.
      signers: await readSigners(signingInput(values)),
      installer,
      iso: flag(values, 'iso'),
      ...(label !== undefined ? { label } : {}),
    });
    progress.done();
    return {
      json: result,
      human: formatMedia(result, flag(values, 'no-installer')),
    };
  },
};

function formatMedia(result: MediaResult, refused: boolean): string {
  const count = result.volumes.length;
  const lines = [
    `${result.id}: ${bytes(result.size)} on ${count} volume${count === 1 ? '' : 's'}`,
    ...result.volumes.map(
      (v) =>
        `  ${v.label.padEnd(24)} ${v.folder}  part ${v.volume}, ${bytes(v.size)}${v.iso ? `  iso ${v.iso}` : ''}`,
    ),
    result.installer
      ? `  installer: ${result.installer}`
      : refused
        ? '  installer: left out (--no-installer)'
        : '  installer: none on volume 1 (dist/package/ferry-installer does not exist: run `npm run package` first, or pass --installer FILE)',
    `Copy each volume folder's contents onto its own stick or disc (or all folders onto one large stick);`,
    `check one with \`sha256sum -c FERRY/SHA256SUM.TXT\` or all with \`ferry media verify DIR --trust FILE\`.`,
  ];
  return lines.join('\n');
}
