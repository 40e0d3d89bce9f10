import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  dependencyOrder,
  FerryError,
  keyLabel,
  MAX_METADATA_BYTES,
  metadataProblem,
  payloadEntry,
  payloadFiles,
  trustRootEntry,
  tufTime,
  withHashPool,
  writeFileAtomic,
  type ArtifactRef,
  type BundleKind,
  type BundleMetadata,
  type Change,
  type ReleaseRecord,
  type ReleaseSpec,
  type Signer,
} from '../manifest-schema/index.js';
import { collectInputs, sourcesOf, type Collected } from './collect.js';
import { composeBundle, type BundleDesign } from './compose.js';
import { readHistory, recordFileName } from './history.js';
import { bundleMetadata, PLACEHOLDER } from './metadata.js';
import { checkVersionsImmutable, releaseRecord } from './record.js';
import { readSigners, signedMetadataSize, type SigningOptions } from './signing.js';
import { loadSpec, specError } from './spec.js';
import { checkChainToCarry, readChainDir } from './trust.js';
import { bundleFileName, writeBundle, type BundleFormat } from './write.js';

/** What a build checks: everything but the keys. */
export interface CheckOptions {
  spec: string;
  kind?: BundleKind;
  /** This is the product's first release: its history folder may be missing or empty. */
  firstRelease?: boolean;
  /** Seconds since the epoch for every timestamp (SOURCE_DATE_EPOCH); now when absent. */
  sourceDateEpoch?: string;
  /** A folder of trust roots `root-N.json` to carry, so appliances rotate to the newest. */
  trustChain?: string;
  /** When appliances stop accepting the bundle. */
  expires?: Date;
  /** The installer executable to carry, overriding the spec's `installer`. */
  installer?: string;
}

export interface BuildOptions extends CheckOptions, SigningOptions {
  out: string;
  format?: BundleFormat;
  /** Write zip64 records even for a small bundle (tests exercise them without 4 GiB). */
  forceZip64?: boolean;
  /** Bytes of payload and artifacts read so far, of the total. */
  onProgress?: (bytes: number, total: number) => void;
  /** Build with an `expires` already past: only to reproduce an earlier bundle byte for byte. */
  allowExpired?: boolean;
}

/** What a bundle of the spec would be: `ferry lint`'s result, and the start of `build`'s. */
export interface CheckResult {
  spec: string;
  product: string;
  release: string;
  kind: BundleKind;
  supportedFrom: string[];
  /** Components whose payload the bundle carries, in dependency order. */
  included: string[];
  removed: string[];
  /** The changes the bundle brings, cumulative over the releases it updates from. */
  changes: Change[];
  minInstaller?: string;
  /** The installer the bundle carries: its version and platform. */
  installer?: { version: string; platform: string };
}

export interface BuildResult extends CheckResult {
  bundle: string;
  record: string;
  sha256: string;
  size: number;
  format: BundleFormat;
  keyids: string[];
}

interface Checked {
  result: CheckResult;
  metadata: BundleMetadata;
  design: BundleDesign;
  collected: Collected;
  spec: ReleaseSpec;
  historyDir: string | undefined;
  /** The product's history: every earlier release's record. */
  records: ReleaseRecord[];
}

/**
 * Every check of a build, with no key and nothing written: the spec, the
 * history (missing or empty only for a first release), the cumulative rule,
 * immutability, dependencies, and every file the spec names.
 */
async function checkBuild(options: CheckOptions): Promise<Checked> {
  const loaded = await loadSpec(options.spec);
  const { spec } = loaded;
  const historyDir = spec.history === undefined ? undefined : resolve(loaded.dir, spec.history);
  const records = historyDir === undefined ? [] : await readHistory(historyDir, spec.product);
  const design = composeBundle(spec, records ?? [], {
    specFile: options.spec,
    positionOf: loaded.positionOf,
    ...(options.kind ? { kind: options.kind } : {}),
    ...(historyDir !== undefined
      ? { historyDir: { path: historyDir, exists: records !== undefined } }
      : {}),
    ...(options.firstRelease ? { firstRelease: true } : {}),
  });
  const collected = await collectInputs(loaded, design, options.installer);
  // A rebuild reproduces the recorded bundle: its recorded time, unless SOURCE_DATE_EPOCH says otherwise.
  const createdAt =
    design.rebuildOf && !options.sourceDateEpoch
      ? design.rebuildOf.release.createdAt
      : creationTime(options.sourceDateEpoch);
  const metadata = bundleMetadata(spec, design, collected, createdAt);
  // The readers' own rules: what they would refuse as crafted is never signed.
  const problem = metadataProblem(metadata);
  if (problem)
    throw specError(
      loaded,
      'E_SPEC_INVALID',
      problem.field,
      `${problem.message}: every installer would refuse the bundle`,
      problem.hint ?? 'fix the field the message names',
      problem.component,
    );
  refuseOversizedMetadata(metadata, [], options.spec);
  const result: CheckResult = {
    spec: resolve(options.spec),
    product: spec.product,
    release: spec.release,
    kind: design.kind,
    supportedFrom: design.supportedFrom.map((release) => release.version),
    included: dependencyOrder(metadata).filter((name) => design.payload[name] === 'included'),
    removed: design.removed,
    changes: metadata.changes,
    ...(metadata.minInstaller !== undefined ? { minInstaller: metadata.minInstaller } : {}),
    ...(metadata.installer
      ? {
          installer: { version: metadata.installer.version, platform: metadata.installer.platform },
        }
      : {}),
  };
  return { result, metadata, design, collected, spec, historyDir, records: records ?? [] };
}

/** `ferry lint` and `build --dry-run`: what `build` would make, or the error it would stop on. */
export async function lintSpec(options: CheckOptions): Promise<CheckResult> {
  const checked = await checkBuild(options);
  await checkReusedVersions(checked, options.spec);
  return checked.result;
}

/**
 * The immutability check a build makes while it writes the bundle, made by
 * hashing only what it compares: the payload files of the components whose
 * version the history recorded with its files.
 */
async function checkReusedVersions(checked: Checked, specFile: string): Promise<void> {
  const { metadata, records, collected } = checked;
  const components = structuredClone(
    Object.fromEntries(
      Object.entries(metadata.components).filter(([name, component]) =>
        records.some((record) => record.components[name]?.version === component.version),
      ),
    ),
  );
  const sources = sourcesOf(collected);
  await withHashPool((pool) =>
    Promise.all(
      Object.entries(components).flatMap(([name, component]) =>
        (payloadFiles(component.payload) ?? []).map(async (file) => {
          const source = sources.get(payloadEntry(name, file.path));
          if (file.sha256 !== PLACEHOLDER || !source) return;
          file.sha256 = (await pool.run({ source: source.path, size: source.size })).sha256;
        }),
      ),
    ),
  );
  checkVersionsImmutable({ ...metadata, components }, records, specFile);
}

/**
 * Spec in, signed bundle and release record out: check everything a build
 * checks; read the keys; write and sign the bundle; add its record to the history.
 */
export async function buildBundle(options: BuildOptions): Promise<BuildResult> {
  if (options.expires && !options.allowExpired) refusePastExpiry(options.expires);
  const format = options.format ?? 'tar';
  const {
    result,
    metadata: unsigned,
    design,
    collected,
    spec,
    historyDir,
    records,
  } = await checkBuild(options);
  const signers = await readSigners(options);
  const chain =
    options.trustChain === undefined
      ? []
      : await chainToCarry(
          options.trustChain,
          signers.map((signer) => signer.keyid),
          new Date(unsigned.release.createdAt),
        );

  const bundlePath = resolve(
    options.out,
    bundleFileName(spec.product, spec.release, design.kind, format),
  );
  const toSign: BundleMetadata = {
    ...unsigned,
    ...(chain.length > 0 ? { trustChain: chain.map(({ ref }) => ref) } : {}),
    ...(options.expires ? { expires: tufTime(options.expires) } : {}),
  };
  refuseOversizedMetadata(toSign, signers, options.spec);
  const { metadata, sha256, size } = await writeBundle({
    metadata: toSign,
    sources: new Map([
      ...chain.map(({ ref, file }) => [ref.path, { path: file, size: ref.size }] as const),
      ...sourcesOf(collected),
    ]),
    signers,
    format,
    path: bundlePath,
    mtime: Math.floor(Date.parse(unsigned.release.createdAt) / 1000),
    ...(options.forceZip64 !== undefined ? { forceZip64: options.forceZip64 } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
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
    ...result,
    bundle: bundlePath,
    record: recordPath,
    sha256,
    size,
    format,
    keyids: signers.map((signer) => signer.keyid).sort(),
  };
}

/**
 * The roots to carry as entries, refused unless they walk from the first to
 * the last and the signing keys meet the last one's targets threshold: a
 * bundle no appliance would accept is not built.
 */
async function chainToCarry(
  dir: string,
  keyids: readonly string[],
  now: Date,
): Promise<Array<{ ref: ArtifactRef; file: string }>> {
  const chain = await readChainDir(dir);
  const newest = checkChainToCarry(dir, chain, now);
  const signers = new Set(keyids);
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

/**
 * Every reader refuses a bundle.json over MAX_METADATA_BYTES before reading
 * it, so a bundle that needs a larger one is not built (and its release not
 * recorded). Checked from the sizes alone: hashes and signatures have fixed lengths.
 */
function refuseOversizedMetadata(
  metadata: BundleMetadata,
  signers: readonly Signer[],
  specFile: string,
): void {
  const size = signedMetadataSize(metadata, signers);
  if (size <= MAX_METADATA_BYTES) return;
  const [name, files] = Object.entries(metadata.components)
    .map(([name, component]) => [name, payloadFiles(component.payload)?.length ?? 0] as const)
    .reduce((most, next) => (next[1] > most[1] ? next : most));
  throw new FerryError(
    'E_SPEC_INVALID',
    `${specFile}: bundle.json would be ${size} bytes, over the ${MAX_METADATA_BYTES} every installer reads (${name} lists the most payload entries: ${files})`,
    {
      file: specFile,
      field: `/components/${name}/payload`,
      component: name,
      hint: 'every payload entry takes about 250 bytes of bundle.json: ship many small files packed into fewer (an archive the update artifact unpacks)',
    },
  );
}

/**
 * Every installer refuses a bundle whose expiry has passed, so building one is
 * almost always a typo in the year; checked before anything is read or written.
 */
export function refusePastExpiry(expires: Date): void {
  const now = new Date();
  if (expires.getTime() > now.getTime()) return;
  throw new FerryError(
    'E_USAGE',
    `--expires ${tufTime(expires)} is already past (it is now ${tufTime(now)}): every appliance would refuse the bundle as expired`,
    {
      hint: 'give a later date; to reproduce an earlier bundle byte for byte, expiry included, add --allow-expired',
    },
  );
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
