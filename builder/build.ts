import type { KeyObject } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  dependencyOrder,
  FerryError,
  isCarried,
  keyIdOf,
  keyLabel,
  trustRootEntry,
  tufTime,
  writeFileAtomic,
  type ArtifactRef,
  type BundleKind,
} from '../manifest-schema/index.js';
import { collectInputs, sourcesOf } from './collect.js';
import { composeBundle } from './compose.js';
import { readHistory, recordFileName } from './history.js';
import { bundleMetadata, PLACEHOLDER } from './metadata.js';
import { checkVersionsImmutable, releaseRecord } from './record.js';
import { readSigningKeys } from './signing.js';
import { loadSpec } from './spec.js';
import { checkChainToCarry, readChainDir } from './trust.js';
import { bundleFileName, writeBundle, type BundleFormat } from './write.js';

export interface BuildOptions {
  spec: string;
  out: string;
  keys: readonly string[];
  format?: BundleFormat;
  kind?: BundleKind;
  /** Seconds since the epoch for every timestamp (SOURCE_DATE_EPOCH); now when absent. */
  sourceDateEpoch?: string;
  /** A folder of trust roots `root-N.json` to carry, so appliances rotate to the newest. */
  trustChain?: string;
  /** When appliances stop accepting the bundle. */
  expires?: Date;
  /** The installer executable to carry, overriding the spec's `installer`. */
  installer?: string;
  /** Write zip64 records even for a small bundle (tests exercise them without 4 GiB). */
  forceZip64?: boolean;
}

export interface BuildResult {
  bundle: string;
  record: string;
  sha256: string;
  size: number;
  product: string;
  release: string;
  kind: BundleKind;
  format: BundleFormat;
  supportedFrom: string[];
  /** Components whose payload the bundle carries. */
  included: string[];
  minInstaller?: string;
  /** The installer the bundle carries: its version and platform. */
  installer?: { version: string; platform: string };
  changes: number;
  keyids: string[];
}

/**
 * Spec in, signed bundle and release record out: read the spec, the keys and
 * the history; compose the bundle (pure); collect the inputs from disk; make
 * the metadata (pure); write and sign the bundle; add its record to the history.
 */
export async function buildBundle(options: BuildOptions): Promise<BuildResult> {
  const format = options.format ?? 'tar';
  const loaded = await loadSpec(options.spec);
  const { spec } = loaded;
  const keys = await readSigningKeys(options.keys);
  const historyDir = spec.history === undefined ? undefined : resolve(loaded.dir, spec.history);
  const records = historyDir === undefined ? [] : await readHistory(historyDir, spec.product);
  const design = composeBundle(spec, records, {
    specFile: options.spec,
    ...(options.kind ? { kind: options.kind } : {}),
  });
  const collected = await collectInputs(loaded, design, options.installer);
  // A rebuild reproduces the recorded bundle: its recorded time, unless SOURCE_DATE_EPOCH says otherwise.
  const createdAt =
    design.rebuildOf && !options.sourceDateEpoch
      ? design.rebuildOf.release.createdAt
      : creationTime(options.sourceDateEpoch);
  const chain =
    options.trustChain === undefined
      ? []
      : await chainToCarry(options.trustChain, keys, new Date(createdAt));

  const bundlePath = resolve(
    options.out,
    bundleFileName(spec.product, spec.release, design.kind, format),
  );
  const { metadata, sha256, size } = await writeBundle({
    metadata: {
      ...bundleMetadata(spec, design, collected, createdAt),
      ...(chain.length > 0 ? { trustChain: chain.map(({ ref }) => ref) } : {}),
      ...(options.expires ? { expires: tufTime(options.expires) } : {}),
    },
    sources: new Map([
      ...chain.map(({ ref, file }) => [ref.path, { path: file, size: ref.size }] as const),
      ...sourcesOf(collected),
    ]),
    keys,
    format,
    path: bundlePath,
    mtime: Math.floor(Date.parse(createdAt) / 1000),
    ...(options.forceZip64 !== undefined ? { forceZip64: options.forceZip64 } : {}),
    check: (signed) => checkVersionsImmutable(signed, records, options.spec),
  });

  const recordDir = historyDir ?? resolve(options.out);
  const recordPath = join(recordDir, recordFileName(spec.product, spec.release));
  if (!design.rebuildOf) {
    // The history is append-only: a rebuild leaves the first record as it is.
    await mkdir(recordDir, { recursive: true });
    await writeFileAtomic(
      recordPath,
      `${JSON.stringify(releaseRecord(metadata, design, spec), null, 2)}\n`,
    );
  }

  return {
    bundle: bundlePath,
    record: recordPath,
    sha256,
    size,
    product: spec.product,
    release: spec.release,
    kind: design.kind,
    format,
    supportedFrom: design.supportedFrom.map((release) => release.version),
    included: dependencyOrder(metadata).filter((name) => {
      const payload = metadata.components[name]?.payload;
      return payload !== undefined && isCarried(payload);
    }),
    changes: metadata.changes.length,
    ...(metadata.minInstaller !== undefined ? { minInstaller: metadata.minInstaller } : {}),
    ...(metadata.installer
      ? {
          installer: { version: metadata.installer.version, platform: metadata.installer.platform },
        }
      : {}),
    keyids: keys.map((key) => keyIdOf(key)).sort(),
  };
}

/**
 * The roots to carry as entries, refused unless they walk from the first to
 * the last and the signing keys meet the last one's targets threshold: a
 * bundle no appliance would accept is not built.
 */
async function chainToCarry(
  dir: string,
  keys: readonly KeyObject[],
  now: Date,
): Promise<Array<{ ref: ArtifactRef; file: string }>> {
  const chain = await readChainDir(dir);
  const newest = checkChainToCarry(dir, chain, now);
  const signers = new Set(keys.map((key) => keyIdOf(key)));
  const counted = newest.roles.targets.keyids.filter((keyid) => signers.has(keyid));
  if (counted.length < newest.roles.targets.threshold) {
    throw new FerryError(
      'E_THRESHOLD',
      `the signing keys are ${counted.length} of the ${newest.roles.targets.threshold} targets keys trust root version ${newest.version} requires`,
      {
        file: dir,
        hint: `sign with targets keys of version ${newest.version}: ${newest.roles.targets.keyids.map((keyid) => keyLabel(newest, keyid)).join(', ')}`,
      },
    );
  }
  return chain.map(({ file, version, bytes }) => ({
    file,
    ref: { path: trustRootEntry(version), size: bytes.length, sha256: PLACEHOLDER },
  }));
}

function creationTime(sourceDateEpoch: string | undefined): string {
  if (sourceDateEpoch === undefined || sourceDateEpoch === '')
    return new Date(Math.floor(Date.now() / 1000) * 1000).toISOString();
  if (!/^\d{1,12}$/.test(sourceDateEpoch)) {
    throw new FerryError(
      'E_USAGE',
      `SOURCE_DATE_EPOCH "${sourceDateEpoch}" is not a number of seconds`,
      {
        hint: 'set it to the commit time, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)',
      },
    );
  }
  return new Date(Number(sourceDateEpoch) * 1000).toISOString();
}
