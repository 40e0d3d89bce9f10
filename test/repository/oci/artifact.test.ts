import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  bundleManifest,
  documentBlob,
  documentManifest,
  EMPTY_BLOB,
  EMPTY_DESCRIPTOR,
  parseImageManifest,
  type BundleManifestInput,
} from '../../../repository/oci/artifact.js';

const INPUT: BundleManifestInput = {
  version: '1.2.0',
  created: '2026-11-01T10:00:00Z',
  metadata: { digest: `sha256:${'1'.repeat(64)}`, size: 1234 },
  bundle: {
    digest: `sha256:${'2'.repeat(64)}`,
    size: 1073741824,
    fileName: 'acme-appliance-1.2.0.tar.gz',
    format: 'tar.gz',
  },
};

describe('bundleManifest', () => {
  // Pinned to the byte: a version published by one Ferry must have the same
  // digest when another Ferry publishes it again, or "same bytes: no-op" breaks.
  it('is the exact canonical manifest Ferry publishes for a version', () => {
    const built = bundleManifest(INPUT);
    expect(built.bytes.toString()).toBe(
      '{"annotations":{"org.opencontainers.image.created":"2026-11-01T10:00:00Z","org.opencontainers.image.version":"1.2.0"},' +
        '"artifactType":"application/vnd.ferry.bundle.v1",' +
        '"config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","mediaType":"application/vnd.oci.empty.v1+json","size":2},' +
        '"layers":[' +
        '{"annotations":{"org.opencontainers.image.title":"bundle.json"},"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","mediaType":"application/vnd.ferry.bundle.metadata.v1+json","size":1234},' +
        '{"annotations":{"org.opencontainers.image.title":"acme-appliance-1.2.0.tar.gz"},"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","mediaType":"application/vnd.ferry.bundle.layer.v1.tar+gzip","size":1073741824}' +
        '],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}',
    );
    expect(built.digest).toBe(
      'sha256:20044b6e4abe4a662a57fe44e5dfd0af3bba151920195e6ec11649194c598776',
    );
    expect(built.size).toBe(built.bytes.length);
    expect(parseImageManifest(built.bytes)).toEqual({ ok: true, value: built.manifest });
  });

  it('gives each format its own layer type', () => {
    const types = (['tar', 'tar.gz', 'zip'] as const).map(
      (format) =>
        bundleManifest({ ...INPUT, bundle: { ...INPUT.bundle, format } }).manifest.layers[1]
          ?.mediaType,
    );
    expect(types).toEqual([
      'application/vnd.ferry.bundle.layer.v1.tar',
      'application/vnd.ferry.bundle.layer.v1.tar+gzip',
      'application/vnd.ferry.bundle.layer.v1.zip',
    ]);
  });

  it.each([
    ['a created time from no clock', { created: 'yesterday' }],
    ['a digest of another algorithm', { metadata: { digest: 'md5:abc', size: 1 } }],
    ['a path for a file name', { bundle: { ...INPUT.bundle, fileName: 'dist/a.tar' } }],
  ])('refuses %s', (_what, change) => {
    expect(() => bundleManifest({ ...INPUT, ...change })).toThrow(
      expect.objectContaining({
        code: expect.stringMatching(/^E_(MANIFEST_INVALID|REPO_REFERENCE)$/) as unknown,
      }),
    );
  });
});

describe('documents', () => {
  it('are canonical JSON, whatever the key order', () => {
    const a = documentBlob({ seq: 2, channel: 'beta', nested: { z: 1, a: 2 } });
    const b = documentBlob({ nested: { a: 2, z: 1 }, channel: 'beta', seq: 2 });
    expect(a).toEqual(b);
    expect(a.bytes.toString()).toBe('{"channel":"beta","nested":{"a":2,"z":1},"seq":2}');
    expect(a.digest).toBe(`sha256:${createHash('sha256').update(a.bytes).digest('hex')}`);
  });

  it('travel as a one-layer manifest of their own artifact type', () => {
    const doc = documentBlob({ channel: 'stable' });
    const input = {
      artifactType: 'application/vnd.ferry.channel.v1',
      mediaType: 'application/vnd.ferry.channel.v1+json',
      document: doc,
      created: '2026-11-02T08:00:00Z',
    };
    const built = documentManifest(input);
    expect(built.manifest).toEqual({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.ferry.channel.v1',
      config: EMPTY_DESCRIPTOR,
      layers: [
        { mediaType: 'application/vnd.ferry.channel.v1+json', digest: doc.digest, size: doc.size },
      ],
      annotations: { 'org.opencontainers.image.created': '2026-11-02T08:00:00Z' },
    });
    expect(documentManifest(input).bytes.equals(built.bytes)).toBe(true);
    expect(() =>
      documentManifest({ artifactType: 'channel', mediaType: 'application/json', document: doc }),
    ).toThrow(expect.objectContaining({ code: 'E_MANIFEST_INVALID' }));
  });

  it('the empty config blob is the one the image spec names', () => {
    expect(`sha256:${createHash('sha256').update(EMPTY_BLOB).digest('hex')}`).toBe(
      EMPTY_DESCRIPTOR.digest,
    );
    expect(EMPTY_BLOB.length).toBe(EMPTY_DESCRIPTOR.size);
  });
});

describe('parseImageManifest', () => {
  it.each([
    ['not JSON', '{', ''],
    [
      'an index',
      '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}',
      '/mediaType',
    ],
    [
      'a bad layer',
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: EMPTY_DESCRIPTOR,
        layers: [{ mediaType: 'x/y', digest: 'sha256:zz', size: -1 }],
      }),
      '/layers/0/digest',
    ],
    [
      'annotations that are not strings',
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: EMPTY_DESCRIPTOR,
        layers: [],
        annotations: { a: 1 },
      }),
      '/annotations',
    ],
  ])('reports %s with its path', (_what, text, path) => {
    const result = parseImageManifest(Buffer.from(text));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors.map((e) => e.path)).toContain(path);
  });
});
