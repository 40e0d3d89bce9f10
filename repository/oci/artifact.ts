import { createHash } from 'node:crypto';
import { canonicalJson } from '../../manifest-schema/canonical.js';
import { FerryError } from '../../manifest-schema/errors.js';
import type { ValidationProblem, ValidationResult } from '../../manifest-schema/validate.js';
import { assertDigest } from './reference.js';

/**
 * The manifests Ferry writes to a registry, built deterministically: the same
 * inputs give the same bytes (canonical JSON: sorted keys, no white space),
 * so the same bundle published twice has the same manifest digest, and
 * `skopeo inspect --raw` returns bytes whose sha256 is that digest.
 */

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

/** The empty config every artifact manifest points at: the blob `{}`. Push it before the manifest. */
export const EMPTY_BLOB: Buffer = Buffer.from('{}');
export const EMPTY_DESCRIPTOR: Descriptor = {
  mediaType: OCI_EMPTY,
  digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
  size: 2,
};

export const BUNDLE_ARTIFACT_TYPE = 'application/vnd.ferry.bundle.v1';
export const BUNDLE_METADATA_TYPE = 'application/vnd.ferry.bundle.metadata.v1+json';

export type BundleFormat = 'tar' | 'tar.gz' | 'zip';

/** The bundle layer's media type per format: Ferry's own, so no tool takes it for a container layer. */
export const BUNDLE_LAYER_TYPES: Record<BundleFormat, string> = {
  tar: 'application/vnd.ferry.bundle.layer.v1.tar',
  'tar.gz': 'application/vnd.ferry.bundle.layer.v1.tar+gzip',
  zip: 'application/vnd.ferry.bundle.layer.v1.zip',
};

export const ANNOTATION_CREATED = 'org.opencontainers.image.created';
export const ANNOTATION_VERSION = 'org.opencontainers.image.version';
export const ANNOTATION_TITLE = 'org.opencontainers.image.title';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: typeof OCI_MANIFEST;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** A manifest and its exact bytes, ready for RegistryClient.putManifest(tag, bytes, mediaType). */
export interface BuiltManifest {
  manifest: ImageManifest;
  bytes: Buffer;
  digest: string;
  size: number;
  mediaType: typeof OCI_MANIFEST;
}

/** A small JSON document as a blob: canonical bytes and their descriptor fields. */
export interface DocumentBlob {
  bytes: Buffer;
  digest: string;
  size: number;
}

export interface BundleManifestInput {
  /** The release version (the tag is derived from it by the caller). */
  version: string;
  /** RFC 3339, from the bundle's own metadata, never the clock: the manifest stays deterministic. */
  created: string;
  /** bundle.json's exact bytes, as a blob of their own, so a planner can fetch metadata alone. */
  metadata: { digest: string; size: number };
  /** The exact bundle file. */
  bundle: { digest: string; size: number; fileName: string; format: BundleFormat };
}

/**
 * The one manifest a bundle version is published as: an OCI image manifest
 * with `artifactType` application/vnd.ferry.bundle.v1, the empty config, and
 * two layers: bundle.json first, then the bundle's exact bytes (titled with
 * its file name); annotated with when it was created and its version.
 */
export function bundleManifest(input: BundleManifestInput): BuiltManifest {
  assertDigest(input.metadata.digest);
  assertDigest(input.bundle.digest);
  checkCreated(input.created);
  if (!input.version || !input.bundle.fileName || input.bundle.fileName.includes('/')) {
    throw new FerryError(
      'E_MANIFEST_INVALID',
      'a bundle manifest needs a version and a plain file name',
      {
        field: input.version ? 'bundle.fileName' : 'version',
        hint: 'a bug in the caller',
      },
    );
  }
  return built({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: BUNDLE_ARTIFACT_TYPE,
    config: EMPTY_DESCRIPTOR,
    layers: [
      {
        mediaType: BUNDLE_METADATA_TYPE,
        digest: input.metadata.digest,
        size: input.metadata.size,
        annotations: { [ANNOTATION_TITLE]: 'bundle.json' },
      },
      {
        mediaType: BUNDLE_LAYER_TYPES[input.bundle.format],
        digest: input.bundle.digest,
        size: input.bundle.size,
        annotations: { [ANNOTATION_TITLE]: input.bundle.fileName },
      },
    ],
    annotations: { [ANNOTATION_CREATED]: input.created, [ANNOTATION_VERSION]: input.version },
  });
}

/** Canonical JSON bytes of a small document (a channel, an approval, an audit event). */
export function documentBlob(value: unknown): DocumentBlob {
  const bytes = Buffer.from(canonicalJson(value));
  return { bytes, digest: sha256(bytes), size: bytes.length };
}

/**
 * A manifest carrying one small JSON document as its only layer, typed by
 * `artifactType` (e.g. application/vnd.ferry.channel.v1): what channels,
 * approvals and audit events are stored as. `created`, when given, is an
 * annotation; pass the document's own time, never the clock's, to stay deterministic.
 */
export function documentManifest(input: {
  artifactType: string;
  /** The layer's media type, e.g. application/vnd.ferry.channel.v1+json. */
  mediaType: string;
  document: DocumentBlob;
  created?: string;
  /** Blobs the document names (an approval's evidence): layers after it, so registry GC keeps them. */
  attachments?: Descriptor[];
}): BuiltManifest {
  for (const [field, type] of [
    ['artifactType', input.artifactType],
    ['mediaType', input.mediaType],
  ] as const) {
    if (!MEDIA_TYPE.test(type)) {
      throw new FerryError('E_MANIFEST_INVALID', `${JSON.stringify(type)} is not a media type`, {
        field,
        hint: 'type/subtype as RFC 6838 names them, e.g. application/vnd.ferry.channel.v1+json',
      });
    }
  }
  if (input.created !== undefined) checkCreated(input.created);
  return built({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: input.artifactType,
    config: EMPTY_DESCRIPTOR,
    layers: [
      { mediaType: input.mediaType, digest: input.document.digest, size: input.document.size },
      ...(input.attachments ?? []),
    ],
    ...(input.created === undefined
      ? {}
      : { annotations: { [ANNOTATION_CREATED]: input.created } }),
  });
}

/**
 * Reads an OCI image manifest from exact bytes (as RegistryClient.getManifest
 * returns them). Returns every problem with its JSON path; the caller decides.
 */
export function parseImageManifest(bytes: Uint8Array): ValidationResult<ImageManifest> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return { ok: false, errors: [{ path: '', message: 'is not JSON' }] };
  }
  const errors: ValidationProblem[] = [];
  const problem = (path: string, message: string): void => void errors.push({ path, message });
  if (!isObject(value))
    return { ok: false, errors: [{ path: '', message: 'is not a JSON object' }] };
  if (value.schemaVersion !== 2) problem('/schemaVersion', 'must be 2');
  if (value.mediaType !== OCI_MANIFEST) problem('/mediaType', `must be ${OCI_MANIFEST}`);
  if (
    value.artifactType !== undefined &&
    !(typeof value.artifactType === 'string' && MEDIA_TYPE.test(value.artifactType))
  )
    problem('/artifactType', 'must be a media type');
  checkDescriptor(value.config, '/config', problem);
  if (!Array.isArray(value.layers)) problem('/layers', 'must be an array');
  else value.layers.forEach((layer, index) => checkDescriptor(layer, `/layers/${index}`, problem));
  checkAnnotations(value.annotations, '/annotations', problem);
  return errors.length
    ? { ok: false, errors }
    : { ok: true, value: value as unknown as ImageManifest };
}

const MEDIA_TYPE =
  /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function built(manifest: ImageManifest): BuiltManifest {
  const bytes = Buffer.from(canonicalJson(manifest));
  return { manifest, bytes, digest: sha256(bytes), size: bytes.length, mediaType: OCI_MANIFEST };
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function checkCreated(created: string): void {
  if (RFC3339.test(created) && !Number.isNaN(Date.parse(created))) return;
  throw new FerryError('E_MANIFEST_INVALID', `${JSON.stringify(created)} is not an RFC 3339 time`, {
    field: 'created',
    hint: 'pass the bundle’s own creation time, e.g. 2026-01-02T03:04:05Z',
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkDescriptor(
  value: unknown,
  path: string,
  problem: (path: string, message: string) => void,
): void {
  if (!isObject(value)) return problem(path, 'must be a descriptor object');
  if (typeof value.mediaType !== 'string' || !MEDIA_TYPE.test(value.mediaType))
    problem(`${path}/mediaType`, 'must be a media type');
  if (typeof value.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(value.digest))
    problem(`${path}/digest`, 'must be sha256:<64 lower-case hex>');
  if (typeof value.size !== 'number' || !Number.isSafeInteger(value.size) || value.size < 0)
    problem(`${path}/size`, 'must be a whole number of bytes');
  checkAnnotations(value.annotations, `${path}/annotations`, problem);
}

function checkAnnotations(
  value: unknown,
  path: string,
  problem: (path: string, message: string) => void,
): void {
  if (value === undefined) return;
  if (!isObject(value) || !Object.values(value).every((item) => typeof item === 'string'))
    problem(path, 'must map strings to strings');
}
